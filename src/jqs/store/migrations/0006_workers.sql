-- Live workers, and the job's columns named as the API names them.

-- Every worker process says it is alive here (`jqs worker`, `jqs serve`, and HTTP workers
-- later): what it serves and when it last said so. `GET /queues` shows, per queue, who
-- serves it, so a job sent to a queue that nobody serves is visible as such. Rows of
-- workers that stopped are deleted on the way out, and those that vanished are forgotten
-- by maintenance once they have been silent long enough.
CREATE TABLE workers (
    id           text PRIMARY KEY,
    host         text NOT NULL,
    queues       text[] NOT NULL,
    version      text NOT NULL,
    concurrency  integer NOT NULL,
    running      integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);

-- The store maps rows onto the job's shape by column name.
ALTER TABLE jobs RENAME COLUMN timeout_seconds TO timeout;

-- Running jobs in one index instead of two. Every claim and every end of an attempt writes
-- an entry in each index whose predicate the row meets (a change of status is never a HOT
-- update): the rescuer's index on lease expiry and the concurrency limits' index on queue
-- made two per claim. Both read this one: a concurrency limit counts a queue's running jobs
-- by its first column, and the rescuer reads every running job, which are few.
DROP INDEX jobs_leased_idx;
DROP INDEX jobs_processing_queue_idx;
CREATE INDEX jobs_running_idx ON jobs (queue, lease_expires_at) WHERE status = 'processing';
