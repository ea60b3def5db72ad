-- The statements the client sends on the application's own connection, named as in the
-- store's queries.sql and read by the same parser (jqs.namedsql). They run with whatever
-- settings the application's connection has.

-- name: job_enqueue
-- One job, in one round trip: jqs_enqueue (migration 0012) writes it as POST /jobs writes it
-- (the row, its `job.enqueued` event, the workers' notification) in a subtransaction of its
-- own, and hands back either the job or, undone, what the database refused. In the caller's
-- transaction the notification is delivered when it commits, and not at all if it rolls
-- back; several for one queue in one transaction arrive as one.
-- run_at: :run_at if given, else now() + :delay seconds.
SELECT job_id, job_task, job_created_at, job_run_at, refused_code, refused_message
FROM jqs_enqueue(:payload::jsonb, :queue::text, :priority::smallint, :run_at::timestamptz,
                 :delay::float8, :max_attempts::integer, :timeout::float8, :created_by::text,
                 :channel::text);

-- name: job_enqueue_unguarded
-- job_enqueue without the subtransaction (enqueue(savepoint=False)): the same writes, as one
-- statement; an error aborts the caller's transaction, as any failed statement does.
WITH inserted AS (
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout, created_by)
    VALUES (:payload::jsonb, :queue::text, :priority::smallint,
            coalesce(:run_at::timestamptz, now() + make_interval(secs => :delay::float8)),
            :max_attempts::integer, :timeout::float8, :created_by::text)
    RETURNING id, task, created_at, run_at
),
events AS (
    INSERT INTO job_events (job_id, type) SELECT id, 'job.enqueued' FROM inserted
)
SELECT id, task, created_at, run_at, NULL::text AS refused_code, NULL::text AS refused_message,
       pg_notify(:channel, :queue::text)::text AS notified
FROM inserted;
