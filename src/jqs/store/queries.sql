-- Every statement JQS sends, named noun-first and loaded once by jqs.store.queries.
-- Times come from the database clock (now()), so every process agrees on them.

-- name: job_insert
INSERT INTO jobs (payload)
VALUES ($1::jsonb)
RETURNING *;

-- name: job_get
SELECT * FROM jobs WHERE id = $1;

-- name: job_list
-- Newest first. NULL filters match every row.
SELECT * FROM jobs
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR task = $2)
ORDER BY id DESC
LIMIT $3 OFFSET $4;

-- name: job_claim
-- Priority, then run_at, then id, skipping rows other workers hold: the FIFO claim.
WITH picked AS (
    SELECT id FROM jobs
    WHERE status = 'queued' AND queue = $1 AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET status = 'processing',
    attempts = j.attempts + 1,
    lease_token = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => $3),
    worker_id = $4,
    started_at = now(),
    updated_at = now()
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.payload, j.task, j.queue, j.attempts, j.lease_token;

-- name: job_complete
-- Fenced by the lease token: a worker that lost its lease changes nothing.
UPDATE jobs
SET status = 'completed', result = $3::jsonb, lease_token = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'processing';

-- name: job_fail
UPDATE jobs
SET status = 'failed', result = $3::jsonb,
    errors = errors || jsonb_build_array($3::jsonb),
    lease_token = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'processing';

-- name: job_release
-- Shutdown hand-back: the attempt did not really happen, so it is not counted.
UPDATE jobs AS j
SET status = 'queued', attempts = greatest(j.attempts - 1, 0), lease_token = NULL,
    lease_expires_at = NULL, worker_id = NULL, started_at = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::uuid[]) AS r(id, token)
WHERE j.id = r.id AND j.lease_token = r.token AND j.status = 'processing';

-- name: job_count_by_status
SELECT status, count(*) AS n FROM jobs GROUP BY status;

-- name: db_ping
SELECT 1;
