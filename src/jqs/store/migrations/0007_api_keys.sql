-- API keys, and the key that created each job.

-- One row per API key. The secret itself is never stored: only its SHA-256, which is enough
-- for a random 256-bit secret (a slow password hash protects guessable secrets; these are
-- not guessable) and cheap enough to check on every request. Revoked keys stay, so that
-- the jobs and log lines that name them still say whose they were.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    scopes      text[] NOT NULL,
    -- NULL: every queue (every task); otherwise only these.
    queues      text[],
    tasks       text[],
    -- Requests per second this key may make to one JQS process; NULL: no limit.
    rate_limit  double precision CHECK (rate_limit > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text,
    expires_at  timestamptz,
    revoked_at  timestamptz
);

-- The id of the API key whose request created the job (NULL: no key, or the scheduler).
ALTER TABLE jobs ADD COLUMN created_by text;
