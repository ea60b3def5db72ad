-- Every job's timeline: one row per state change, written by the statement that makes the
-- change (so in its transaction), and the latest progress a handler reported.

-- `id` is global and increasing in the order ids are handed out. Within one job that is the
-- order of its changes: each change locks the job's row before it takes an id. Across jobs
-- it is not commit order (a transaction can take id 10, and commit after another took 11),
-- so whoever follows the whole log reads it by (xid, id) and only below the oldest
-- transaction still running (pg_snapshot_xmin): every transaction below that horizon has
-- ended, and every one that ends later has an xid at or above it. docs/events.md explains.
--
-- No primary key and no foreign key: each would be one more index entry or lookup in the
-- hot path of every claim and outcome, and nothing needs them (ids come from the identity
-- sequence; events are deleted with their job by the pruner).
CREATE TABLE job_events (
    id     bigint GENERATED ALWAYS AS IDENTITY,
    job_id bigint      NOT NULL,
    xid    xid8        NOT NULL DEFAULT pg_current_xact_id(),
    type   text        NOT NULL,
    at     timestamptz NOT NULL DEFAULT now(),
    data   jsonb
);

-- A job's timeline, and its SSE stream (resumed after an id).
CREATE INDEX job_events_job_idx ON job_events (job_id, id);
-- The whole log in visibility order: the stream of many jobs, waits and webhooks.
CREATE INDEX job_events_log_idx ON job_events (xid, id);

-- The latest progress of the running attempt: {"progress", "message"?, "data"?, "at"}.
ALTER TABLE jobs ADD COLUMN progress jsonb;
