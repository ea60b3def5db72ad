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
