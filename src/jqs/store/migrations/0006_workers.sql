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
