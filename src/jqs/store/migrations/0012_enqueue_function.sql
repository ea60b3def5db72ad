-- jqs_enqueue: one job written in the caller's transaction, for jqs.enqueue (jqs.client),
-- which calls it on the application's own connection. It writes what POST /jobs writes
-- (the store's job_insert_many): the row, its `job.enqueued` event, and a notification on
-- the workers' channel naming its queue, which PostgreSQL delivers when the caller commits.
--
-- The writes run in a block with an exception handler, which PostgreSQL runs as a
-- subtransaction: what the database refuses (a trigger, a lock or statement timeout, a
-- full notification queue) is undone to where the block began and comes back as
-- refused_code (the SQLSTATE) and refused_message, and the caller's transaction goes on.
-- A SAVEPOINT and a RELEASE sent by the client would do the same for two more round trips.
--
-- Cancellation (query_canceled) is caught too, which OTHERS leaves out: a statement
-- timeout that fires while the job is written is the caller's limit on this call, and the
-- promise is that a refused job leaves the transaction usable. Nothing runs after the
-- handler, so a cancelled call still ends at once.
CREATE FUNCTION jqs_enqueue(
    p_payload jsonb,
    p_queue text,
    p_priority smallint,
    p_run_at timestamptz,
    p_delay float8,
    p_max_attempts integer,
    p_timeout float8,
    p_created_by text,
    p_channel text,
    OUT job_id bigint,
    OUT job_task text,
    OUT job_created_at timestamptz,
    OUT job_run_at timestamptz,
    OUT refused_code text,
    OUT refused_message text
) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout, created_by)
    VALUES (p_payload, p_queue, p_priority,
            coalesce(p_run_at, now() + make_interval(secs => p_delay)),
            p_max_attempts, p_timeout, p_created_by)
    RETURNING id, task, created_at, run_at
    INTO job_id, job_task, job_created_at, job_run_at;
    INSERT INTO job_events (job_id, type) VALUES (jqs_enqueue.job_id, 'job.enqueued');
    PERFORM pg_notify(p_channel, p_queue);
EXCEPTION WHEN OTHERS OR query_canceled THEN
    -- Undone: no id to hand back, even if the row was written before the error.
    job_id := NULL;
    job_task := NULL;
    job_created_at := NULL;
    job_run_at := NULL;
    refused_code := SQLSTATE;
    refused_message := SQLERRM;
END
$$;
