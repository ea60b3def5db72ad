-- Every statement JQS sends, named noun-first and loaded once by jqs.store.queries.
-- Times come from the database clock (now()), so every process agrees on them.

-- name: job_insert
-- With an idempotency key that already exists, nothing is inserted and no row returns.
INSERT INTO jobs (payload, max_attempts, timeout_seconds, idempotency_key, request_digest)
VALUES ($1::jsonb, $2, $3, $4, $5)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- name: job_get
SELECT * FROM jobs WHERE id = $1;

-- name: job_get_by_idempotency_key
SELECT * FROM jobs WHERE idempotency_key = $1;

-- name: job_list
-- Newest first. NULL filters match every row.
SELECT * FROM jobs
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR task = $2)
ORDER BY id DESC
LIMIT $3 OFFSET $4;

-- name: job_claim
-- Priority, then run_at, then id, skipping rows other workers hold: the FIFO claim.
-- Each claim gets a fresh lease token; every write that ends the attempt must present it.
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
RETURNING j.id, j.payload, j.task, j.queue, j.attempts, j.max_attempts, j.timeout_seconds,
          j.lease_token;

-- name: job_complete
-- Fenced by the lease token: a worker that lost its lease changes nothing.
UPDATE jobs
SET status = 'completed', result = $3::jsonb, lease_token = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'processing';

-- name: job_fail_attempt
-- $4: may the job run again at all (false fails it now). $5: seconds until the retry.
-- The error joins the history; it becomes the result only when the job has failed for good.
WITH decided AS (
    SELECT id, ($4::boolean AND attempts < max_attempts) AS again
    FROM jobs
    WHERE id = $1 AND lease_token = $2 AND status = 'processing'
)
UPDATE jobs AS j
SET status = CASE WHEN d.again THEN 'queued' ELSE 'failed' END,
    run_at = CASE WHEN d.again THEN now() + make_interval(secs => $5) ELSE j.run_at END,
    result = CASE WHEN d.again THEN j.result ELSE $3::jsonb END,
    finished_at = CASE WHEN d.again THEN NULL ELSE now() END,
    errors = j.errors || jsonb_build_array($3::jsonb),
    lease_token = NULL,
    lease_expires_at = NULL,
    updated_at = now()
FROM decided AS d
-- The fence again: a row changed since the snapshot above is re-checked against this.
WHERE j.id = d.id AND j.lease_token = $2 AND j.status = 'processing'
RETURNING j.status, j.run_at;

-- name: job_cancel_finish
-- The worker's side of cancelling a running job, fenced like every finishing write.
UPDATE jobs
SET status = 'cancelled', result = $3::jsonb, lease_token = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'processing';

-- name: job_cancel
-- A queued job is cancelled at once; a running one is marked, and its worker ends it.
-- No row returns for a finished or unknown job.
WITH target AS (
    SELECT id, status FROM jobs WHERE id = $1 FOR UPDATE
)
UPDATE jobs AS j
SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE j.status END,
    result = CASE WHEN t.status = 'queued' THEN $2::jsonb ELSE j.result END,
    finished_at = CASE WHEN t.status = 'queued' THEN now() ELSE j.finished_at END,
    cancel_requested_at = coalesce(j.cancel_requested_at, now()),
    updated_at = now()
FROM target AS t
WHERE j.id = t.id AND t.status IN ('queued', 'processing')
RETURNING j.*;

-- name: job_retry
-- A failed or cancelled job runs again with a fresh set of attempts; its error history stays.
UPDATE jobs
SET status = 'queued', attempts = 0, run_at = now(), result = NULL, cancel_requested_at = NULL,
    lease_token = NULL, lease_expires_at = NULL, worker_id = NULL, started_at = NULL,
    finished_at = NULL, updated_at = now()
WHERE id = $1 AND status IN ('failed', 'cancelled')
RETURNING *;

-- name: job_heartbeat_many
-- Extend the leases this worker still holds; rows that do not come back were lost.
UPDATE jobs AS j
SET lease_expires_at = now() + make_interval(secs => $3)
FROM unnest($1::bigint[], $2::uuid[]) AS r(id, token)
WHERE j.id = r.id AND j.lease_token = r.token AND j.status = 'processing'
RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: job_cancel_requested_many
-- Which of this worker's running jobs someone asked to cancel (a read, no row is written).
SELECT j.id
FROM jobs AS j
JOIN unnest($1::bigint[], $2::uuid[]) AS r(id, token) ON j.id = r.id AND j.lease_token = r.token
WHERE j.status = 'processing' AND j.cancel_requested_at IS NOT NULL;

-- name: job_rescue_expired
-- Jobs whose worker stopped heartbeating go back to the queue, or end failed when their
-- attempts are spent (cancelled when cancellation was asked for). The transaction-scoped
-- try-lock makes one process at a time do this; the others skip the round.
WITH leader AS (
    SELECT pg_try_advisory_xact_lock($2) AS ok
),
expired AS (
    SELECT jobs.id FROM jobs, leader
    WHERE leader.ok AND jobs.status = 'processing' AND jobs.lease_expires_at < now()
    ORDER BY jobs.lease_expires_at
    LIMIT $1
    FOR UPDATE OF jobs SKIP LOCKED
),
decided AS (
    SELECT j.id,
           CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled'
                WHEN j.attempts >= j.max_attempts THEN 'failed'
                ELSE 'queued' END AS next_status,
           jsonb_build_object(
               'error', 'the lease expired: the worker running this attempt stopped '
                        || 'heartbeating (it crashed, was killed or stalled)',
               'type', 'LeaseExpired',
               'attempt', j.attempts,
               'worker', j.worker_id
           ) AS error
    FROM jobs AS j JOIN expired USING (id)
)
UPDATE jobs AS j
SET status = d.next_status,
    run_at = CASE WHEN d.next_status = 'queued' THEN now() ELSE j.run_at END,
    result = CASE WHEN d.next_status = 'queued' THEN j.result ELSE d.error END,
    finished_at = CASE WHEN d.next_status = 'queued' THEN NULL ELSE now() END,
    errors = j.errors || jsonb_build_array(d.error),
    lease_token = NULL,
    lease_expires_at = NULL,
    updated_at = now()
FROM decided AS d
WHERE j.id = d.id AND j.status = 'processing'
RETURNING j.id, j.task, j.queue, j.attempts, j.status, d.error ->> 'worker' AS worker;

-- name: job_release
-- Shutdown hand-back: the attempt did not really happen, so it is not counted.
UPDATE jobs AS j
SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'queued' END,
    finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
    attempts = greatest(j.attempts - 1, 0), lease_token = NULL, lease_expires_at = NULL,
    worker_id = NULL, started_at = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::uuid[]) AS r(id, token)
WHERE j.id = r.id AND j.lease_token = r.token AND j.status = 'processing';

-- name: job_count_by_status
SELECT status, count(*) AS n FROM jobs GROUP BY status;

-- name: db_ping
SELECT 1;
