-- A bound on a queue's queued jobs: past it, submitting to the queue answers 429.

-- NULL: no bound. The API compares it with a count it refreshes every second or so (see
-- jqs.api.bounds), not inside the INSERT: submitting to an unbounded queue costs nothing.
ALTER TABLE queues ADD COLUMN max_queued integer CHECK (max_queued >= 1);
