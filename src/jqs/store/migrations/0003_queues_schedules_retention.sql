-- Queues with limits enforced in the database, periodic schedules, retention.

-- Settings of a queue. A queue needs no row to be used; a row holds its limits.
CREATE TABLE queues (
    name              text PRIMARY KEY,
    -- At most this many of the queue's jobs run at once, across every process.
    concurrency_limit integer CHECK (concurrency_limit >= 1),
    -- At most this many of the queue's jobs start per second (a token bucket).
    rate_limit        double precision CHECK (rate_limit > 0),
    tokens            double precision NOT NULL DEFAULT 0,
    refilled_at       timestamptz NOT NULL DEFAULT now(),
    paused            boolean NOT NULL DEFAULT false,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One row per periodic schedule: the last time it was enqueued. Updating this row is how
-- exactly one process enqueues each scheduled time.
CREATE TABLE cron_schedules (
    name        text PRIMARY KEY,
    expression  text NOT NULL,
    last_fire   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Running jobs per queue: what a concurrency limit counts.
CREATE INDEX jobs_processing_queue_idx ON jobs (queue) WHERE status = 'processing';
-- Finished jobs by age: what retention deletes, oldest first.
CREATE INDEX jobs_finished_at_idx ON jobs (finished_at)
    WHERE status IN ('completed', 'failed', 'cancelled');
