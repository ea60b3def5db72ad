-- Signed webhooks from a transactional outbox: subscriptions, each API key's signing
-- secret, the callback URL a job was submitted with, and the deliveries.
--
-- A delivery row is written by a trigger on job_events, so in the transaction that writes
-- the event and the change it tells of: an outcome commits with its deliveries, or neither
-- commits. The secrets are kept in the clear: an HMAC signature needs the secret itself.

CREATE TABLE webhooks (
    id              text PRIMARY KEY,
    url             text NOT NULL,
    events          text[] NOT NULL,
    -- NULL: every queue (every task); otherwise only these.
    queues          text[],
    tasks           text[],
    secret          text NOT NULL,
    -- After a rotation the old secret signs too, until previous_until.
    previous_secret text,
    previous_until  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    -- Set when the receiver answered 410 Gone: no new deliveries, none retried.
    disabled_at     timestamptz,
    disabled_reason text
);

-- Signs the callbacks of the jobs a key submits (NULL for keys made before this migration:
-- rotating gives one).
ALTER TABLE api_keys
    ADD COLUMN webhook_secret text,
    ADD COLUMN previous_webhook_secret text,
    ADD COLUMN previous_webhook_until timestamptz;

-- The callback URL a job was submitted with, and the key whose secret signs it.
CREATE TABLE job_callbacks (
    job_id bigint PRIMARY KEY,
    url    text NOT NULL,
    key_id text NOT NULL
);

CREATE TABLE webhook_deliveries (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A subscription's delivery names it; a callback's names its key and URL instead.
    webhook_id  text,
    key_id      text,
    url         text,
    job_id      bigint NOT NULL,
    event_id    bigint NOT NULL,
    event_type  text NOT NULL,
    event_at    timestamptz NOT NULL,
    event_data  jsonb,
    -- pending, delivered, failed (given up) or dropped (its subscription was disabled).
    state       text NOT NULL DEFAULT 'pending',
    attempts    integer NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due. While an attempt runs it is the end of the
    -- attempt's lease (lease_token holds it): past that, another process may take over.
    next_at     timestamptz NOT NULL DEFAULT now(),
    lease_token uuid,
    -- The body as first sent, so that every retry sends the same bytes.
    body        text,
    -- One object per attempt: {at, status_code, error, duration_ms}.
    history     jsonb NOT NULL DEFAULT '[]',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_job_idx ON webhook_deliveries (job_id);
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, id);

-- One call per statement that writes events, whatever the number of rows. With no enabled
-- subscription and no job having a callback (the usual case) it reads two tiny indexes
-- and returns.
CREATE FUNCTION jqs_webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL) THEN
        INSERT INTO webhook_deliveries (webhook_id, job_id, event_id, event_type, event_at,
                                        event_data)
        SELECT w.id, e.job_id, e.id, e.type, e.at, e.data
        FROM new_events AS e
        JOIN jobs AS j ON j.id = e.job_id
        JOIN webhooks AS w
          ON w.disabled_at IS NULL AND e.type = ANY (w.events)
         AND (w.queues IS NULL OR j.queue = ANY (w.queues))
         AND (w.tasks IS NULL OR coalesce(j.task, '') = ANY (w.tasks))
        ORDER BY e.id, w.id;
    END IF;
    IF EXISTS (SELECT 1 FROM job_callbacks) THEN
        INSERT INTO webhook_deliveries (key_id, url, job_id, event_id, event_type, event_at,
                                        event_data)
        SELECT c.key_id, c.url, e.job_id, e.id, e.type, e.at, e.data
        FROM new_events AS e
        JOIN job_callbacks AS c ON c.job_id = e.job_id
        WHERE e.type IN ('job.completed', 'job.failed', 'job.cancelled')
        ORDER BY e.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_webhook_outbox
    AFTER INSERT ON job_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION jqs_webhook_outbox();
