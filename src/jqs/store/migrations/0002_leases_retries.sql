-- Leases, retries, timeouts, cancellation and idempotency keys.

-- Seconds one attempt may run; NULL means no limit.
ALTER TABLE jobs ADD COLUMN timeout_seconds double precision CHECK (timeout_seconds > 0);
-- Set when cancellation of a running job is asked for; the worker running it ends it.
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
-- Idempotency-Key of the POST that created the job, and a digest of that request, so a
-- repeat with the same key is recognised as the same request or refused as another one.
ALTER TABLE jobs ADD COLUMN idempotency_key text;
ALTER TABLE jobs ADD COLUMN request_digest text;
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The API always resolves max_attempts (job option, task option, setting); 3 matches the
-- setting's default for rows written by hand.
ALTER TABLE jobs ALTER COLUMN max_attempts SET DEFAULT 3;
