-- The statements the client sends on the application's own connection, named as in the
-- store's queries.sql and read by the same parser (jqs.namedsql). They run with whatever
-- settings the application's connection has.

-- name: job_enqueue
-- One job, written as POST /jobs writes it (the store's job_insert_many): the row, its
-- `job.enqueued` event, and a notification on the workers' channel naming its queue. In the
-- caller's transaction the notification is delivered when it commits, and not at all if it
-- rolls back; several for one queue in one transaction arrive as one.
-- run_at: :run_at if given, else now() + :delay seconds.
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
SELECT id, task, created_at, run_at, pg_notify(:channel, :queue::text)::text AS notified
FROM inserted;
