-- Every statement JQS sends, named noun-first and loaded once by jqs.store.queries.
-- Parameters are named (`:queues`); times come from the database clock (now()), so every
-- process agrees on them, unless a statement takes `:now` (tests pass one instead of
-- waiting).
--
-- Every store connection runs these statements with the settings below, set once when it
-- opens (jqs.store.db):
--
-- session: plan_cache_mode = force_generic_plan
-- session: enable_seqscan = off
-- session: jit = off
--
-- Why. The statements are written for generic plans: they filter on literal statuses, on
-- ids and on the indexes built for them, so one plan per connection serves every run. Left
-- to choose, PostgreSQL planned the claim afresh on every run (its custom plan always looked
-- cheaper). A generic plan is made at a statement's first run on a connection and kept; made
-- while the table held a page of rows, it would read the table whole (even a lookup by
-- primary key) and keep doing so as the table grew. With sequential scans off, every plan is
-- the one a big table gets. A statement with no index to use still scans (the planner only
-- avoids a disabled path when it has another), at a cost that looks huge before PostgreSQL
-- 18 and would trigger JIT compilation on every run: JIT is off.
--
-- A statement whose best plan depends on its values (listings, counts over the whole table)
-- says `-- plan: per-value` under its name: it then runs in a read-only transaction planned
-- for its values with every path allowed (db_plan_per_value). A test EXPLAINs every other
-- statement on a small table and fails if one reads `jobs` sequentially.

-- name: db_session_configure
-- A new connection's settings (those stated above), for the whole session.
SELECT set_config(s.name, s.value, false)
FROM unnest(:names::text[], :values::text[]) AS s(name, value);

-- name: db_plan_per_value
-- For this transaction: plan each statement for its parameter values, with sequential scans
-- allowed. A generic plan cannot use a partial index whose predicate names a value that is
-- a parameter, nor size a LIMIT that is one; and a count over the whole table is best read
-- sequentially. Two statements, sent together (the simple query protocol) in one round trip.
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_seqscan = on;

-- name: db_ping
SELECT 1;

-- name: db_in_recovery
-- Is this server a standby? A listener there would never hear a notification.
SELECT pg_catalog.pg_is_in_recovery();

-- name: db_notify
SELECT pg_notify(:channel, :message);

-- name: db_listeners_elsewhere
-- Is a JQS listener (:application: its application_name) connected to this database, other
-- than the caller's own (:own_pid, or NULL)? application_name and the database are shown to
-- every role, whatever it may see of other sessions.
SELECT EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = :application
      AND pid IS DISTINCT FROM :own_pid::integer
);

-- name: job_insert_once
-- One job under an idempotency key; when the key exists already, nothing is inserted and no
-- row returns. run_at: :run_at if given, else now() + :delay seconds.
-- Every statement that changes a job's state appends its events (job_events) in a CTE of
-- the same statement: no round trip more, and never a change without its event.
WITH inserted AS (
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout,
                      idempotency_key, request_digest, created_by, trace_context)
    VALUES (:payload::jsonb, :queue, :priority,
            coalesce(:run_at::timestamptz, now() + make_interval(secs => :delay::float8)),
            :max_attempts, :timeout, :key, :digest, :created_by, :trace_context)
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, type) SELECT id, 'job.enqueued' FROM inserted
),
-- The callback URL the job was submitted with, signed with its key's secret (migration 0010).
callbacks AS (
    INSERT INTO job_callbacks (job_id, url, key_id)
    SELECT id, :callback_url::text, :created_by::text FROM inserted
    WHERE :callback_url::text IS NOT NULL
)
SELECT * FROM inserted;

-- name: job_get_by_idempotency_key
SELECT * FROM jobs WHERE idempotency_key = :key;

-- name: job_insert_many
-- One statement for a whole batch: all rows or none. Ids follow the input order. Only what
-- the caller does not know already comes back. The rows travel as one JSON array of
-- [payload, queue, priority, run_at, delay, max_attempts, timeout, created_by,
-- trace_context, callback_url]: serialized in C by orjson and parsed once by the server,
-- where typed arrays cost the driver a Python-level type check per element. The rows are
-- read again only when one has a callback URL (:any_callback).
WITH inserted AS (
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout, created_by,
                      trace_context)
    SELECT r -> 0, r ->> 1, (r ->> 2)::smallint,
           coalesce((r ->> 3)::timestamptz, now() + make_interval(secs => (r ->> 4)::float8)),
           (r ->> 5)::integer, (r ->> 6)::float8, r ->> 7, r ->> 8
    FROM jsonb_array_elements(:rows::jsonb) WITH ORDINALITY AS x(r, n)
    ORDER BY n
    RETURNING id, task, created_at, run_at
),
events AS (
    INSERT INTO job_events (job_id, type) SELECT id, 'job.enqueued' FROM inserted ORDER BY id
),
callbacks AS (
    INSERT INTO job_callbacks (job_id, url, key_id)
    SELECT i.id, r ->> 9, r ->> 7
    FROM jsonb_array_elements(:rows::jsonb) WITH ORDINALITY AS x(r, n)
    JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM inserted) AS i USING (n)
    WHERE :any_callback::boolean AND r ->> 9 IS NOT NULL
)
SELECT id, task, created_at, run_at FROM inserted;

-- name: job_insert_many_alike
-- job_insert_many for jobs that share their options, the usual batch: the payloads travel
-- as one JSON array and the options once. One row comes back, not one per job: the ids in
-- input order, their tasks, and the timestamps every job of the statement shares (now() is
-- the transaction's time, which is what created_at defaults to).
WITH inserted AS (
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout, created_by,
                      trace_context)
    SELECT p, :queue, :priority,
           coalesce(:run_at::timestamptz, now() + make_interval(secs => :delay::float8)),
           :max_attempts, :timeout, :created_by::text, :trace_context::text
    FROM jsonb_array_elements(:payloads::jsonb) WITH ORDINALITY AS x(p, n)
    ORDER BY n
    RETURNING id, task
),
events AS (
    INSERT INTO job_events (job_id, type) SELECT id, 'job.enqueued' FROM inserted ORDER BY id
),
callbacks AS (
    INSERT INTO job_callbacks (job_id, url, key_id)
    SELECT id, :callback_url::text, :created_by::text FROM inserted
    WHERE :callback_url::text IS NOT NULL
)
SELECT array_agg(id ORDER BY id) AS ids, array_agg(task ORDER BY id) AS tasks,
       now() AS created_at,
       coalesce(:run_at::timestamptz, now() + make_interval(secs => :delay::float8)) AS run_at
FROM inserted;

-- name: job_get
SELECT * FROM jobs WHERE id = :id;

-- name: job_get_each
-- job_get for several jobs (:ids) at once: the reads of many waits answered together.
SELECT * FROM jobs WHERE id = ANY (:ids::bigint[]);

-- name: job_list
-- plan: per-value
-- Newest first, below :before_id when given. NULL filters match every row (:queues and
-- :tasks: those an API key is limited to). With the status
-- known, the planner reads the partial index holding only that status (migration 0005), or
-- the primary key backwards when there is none.
-- The JSON columns come as text, for a listing to pass on unparsed, and only for rows whose
-- JSON is small (:inline_bytes as stored) and uncompressed, so that its size as text is
-- known; the others come without it (inline false), with their stored size and whether any
-- of it is compressed, and are read afterwards a few at a time (job_get_many). The size is
-- read from the stored values' headers, not their contents; the text is made only for the
-- page's rows (above the LIMIT). One level of subquery and no LATERAL: each run is planned
-- afresh, and each level costs planning time.
SELECT j.id, j.status, j.created_at, j.updated_at, j.task, j.queue, j.priority, j.run_at,
       j.attempts, j.max_attempts, j.started_at, j.finished_at, j.timeout,
       j.cancel_requested_at, j.created_by, j.size, j.packed, j.progress::text AS progress,
       NOT j.packed AND j.size <= :inline_bytes AS inline,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.payload::text END AS payload,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.result::text END AS result,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.errors::text END AS errors
FROM (
    SELECT *,
           pg_column_size(payload) + coalesce(pg_column_size(result), 0)
               + pg_column_size(errors) AS size,
           coalesce(pg_column_compression(payload), pg_column_compression(result),
                    pg_column_compression(errors)) IS NOT NULL AS packed
    FROM jobs
    WHERE (:status::text IS NULL OR status = :status::text)
      AND (:task::text IS NULL OR task = :task::text)
      AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
      AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
      AND (:tasks::text[] IS NULL OR coalesce(task, '') = ANY(:tasks::text[]))
    ORDER BY id DESC
    LIMIT :limit OFFSET :offset
) AS j;

-- name: job_list_by_task
-- plan: per-value
-- Newest first among one task's jobs, whatever their status, below :before_id when given.
-- Finished, queued and running jobs are each indexed apart (migration 0005), so the three
-- parts are read separately, each only as far as the page reaches (:limit + :offset rows),
-- and merged. A key limited to some queues (:queues) reads only theirs. The columns are
-- job_list's.
SELECT j.id, j.status, j.created_at, j.updated_at, j.task, j.queue, j.priority, j.run_at,
       j.attempts, j.max_attempts, j.started_at, j.finished_at, j.timeout,
       j.cancel_requested_at, j.created_by, j.size, j.packed, j.progress::text AS progress,
       NOT j.packed AND j.size <= :inline_bytes AS inline,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.payload::text END AS payload,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.result::text END AS result,
       CASE WHEN NOT j.packed AND j.size <= :inline_bytes THEN j.errors::text END AS errors
FROM (
    SELECT *,
           pg_column_size(payload) + coalesce(pg_column_size(result), 0)
               + pg_column_size(errors) AS size,
           coalesce(pg_column_compression(payload), pg_column_compression(result),
                    pg_column_compression(errors)) IS NOT NULL AS packed
    FROM (
        (SELECT * FROM jobs
         WHERE task = :task AND status IN ('completed', 'failed', 'cancelled')
           AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
           AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
         ORDER BY id DESC LIMIT :limit::bigint + :offset::bigint)
        UNION ALL
        (SELECT * FROM jobs
         WHERE task = :task AND status = 'queued'
           AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
           AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
         ORDER BY id DESC LIMIT :limit::bigint + :offset::bigint)
        UNION ALL
        (SELECT * FROM jobs
         WHERE task = :task AND status = 'processing'
           AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
           AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
         ORDER BY id DESC LIMIT :limit::bigint + :offset::bigint)
    ) AS parts
    ORDER BY id DESC LIMIT :limit OFFSET :offset
) AS j;

-- name: job_get_many
-- Jobs a listing left out of job_list for their size, newest first, in job_list's columns
-- with the JSON always there, as UTF-8 bytes (bytea): these values are large, and bytes
-- pass to the client as they are, where text would be decoded and encoded again. A job
-- deleted meanwhile is simply missing.
SELECT id, status, created_at, updated_at, task, queue, priority, run_at, attempts,
       max_attempts, started_at, finished_at, timeout, cancel_requested_at, created_by,
       0 AS size, false AS packed, true AS inline,
       convert_to(payload::text, 'UTF8') AS payload,
       convert_to(result::text, 'UTF8') AS result,
       convert_to(errors::text, 'UTF8') AS errors,
       convert_to(progress::text, 'UTF8') AS progress
FROM jobs
WHERE id = ANY(:ids::bigint[])
ORDER BY id DESC;

-- name: job_claim
-- Claims across the served queues (:queues), each capped (:caps: free slots, rate tokens)
-- and, where it has a concurrency limit (:max_running), by the room left under it. Strict
-- priority, then run_at, then id; rows other workers hold are skipped. Each claim brings a
-- fresh lease token (:token, one per statement: a job's id and its claim's token are unique
-- together) that every write ending the attempt must present.
-- :tasks (NULL: every task) keeps to jobs of those tasks; a job without one counts as ''.
-- :skip_limited (the fast path, outside any transaction): skip queues that are limited or
-- paused now; those are claimed only in the locked path, whatever a cache of their settings
-- says.
-- `relaxed`: the claim's own transaction commits without waiting for its WAL to reach disk.
-- A crash of PostgreSQL can undo only a claim made in the last moments; its job is then
-- queued again and runs again, as after a lost lease. The enqueue before it and the outcome
-- after it stay synchronous, and WAL is flushed in order, so a job whose outcome is on disk
-- has its claim on disk as well.
WITH relaxed AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
),
served AS (
    SELECT s.name, s.cap, s.max_running
    FROM unnest(:queues::text[], :caps::integer[], :max_running::integer[])
         AS s(name, cap, max_running)
    CROSS JOIN relaxed
    WHERE NOT :skip_limited::boolean OR NOT EXISTS (
        SELECT 1 FROM queues AS c
        WHERE c.name = s.name
          AND (c.paused OR c.concurrency_limit IS NOT NULL OR c.rate_limit IS NOT NULL))
),
allowance AS (
    SELECT served.name,
           CASE WHEN served.max_running IS NULL THEN served.cap
                ELSE least(served.cap, greatest(served.max_running - (
                         SELECT count(*) FROM jobs AS r
                         WHERE r.status = 'processing' AND r.queue = served.name), 0))
           END AS n
    FROM served
),
candidates AS (
    SELECT c.ctid, c.id, c.priority, c.run_at
    FROM allowance AS a
    CROSS JOIN LATERAL (
        SELECT ctid, id, priority, run_at FROM jobs
        WHERE status = 'queued' AND queue = a.name
          AND run_at <= coalesce(:now::timestamptz, now())
          AND (:tasks::text[] IS NULL OR coalesce(task, '') = ANY (:tasks::text[]))
        ORDER BY priority DESC, run_at, id
        LIMIT a.n
        FOR UPDATE SKIP LOCKED
    ) AS c
),
picked AS (
    SELECT ctid FROM candidates ORDER BY priority DESC, run_at, id LIMIT :limit
),
claimed AS (
    UPDATE jobs AS j
    SET status = 'processing',
        attempts = j.attempts + 1,
        lease_token = :token::uuid,
        lease_expires_at = now() + make_interval(secs => :lease_seconds::float8),
        worker_id = :worker_id,
        started_at = now(),
        updated_at = now()
    -- The row versions just locked, by their physical address (ctid): no walk down the
    -- primary key, whose entries for a job pile up with each of its updates until vacuum.
    -- An array, not a join: a join may be planned as a hash join over the whole table. A
    -- version that another transaction replaced after this statement's snapshot was taken
    -- (the lock follows it to the newest one) is not visible to the UPDATE, which then
    -- leaves that job queued for the next claim.
    WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM picked))
    RETURNING j.id, j.payload, j.task, j.queue, j.attempts, j.max_attempts, j.timeout,
              j.priority, j.run_at, j.trace_context, j.lease_expires_at
),
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT id, 'job.started', jsonb_build_object('attempt', attempts, 'worker', :worker_id::text)
    FROM claimed
)
-- RETURNING has no order of its own: hand the jobs over in the order they should start.
-- waited: seconds since the job became due (its queue wait, for metrics).
SELECT id, payload, task, queue, attempts AS attempt, max_attempts, timeout,
       extract(epoch FROM now() - run_at)::float8 AS waited, trace_context,
       lease_expires_at
FROM claimed
ORDER BY priority DESC, run_at, id;

-- name: job_finish_many
-- Every end of an attempt, from any worker, in one statement: completed, queued again for a
-- retry, failed or cancelled. Each is written only where its lease token still holds: a
-- worker that lost its lease changes nothing. A lease token is set only while its job is
-- processing (every way out clears it), so the token is the whole fence.
-- The ends come as parallel arrays, one element per job, each job once: :ids, :tokens,
-- :statuses, :results and :errors (JSON or NULL), :retry_in (seconds, for a retry). Arrays,
-- not one JSON document: PostgreSQL reads a typed array's elements as they are, where a
-- document would be parsed and each of its fields parsed again into its column's type.
-- The rows are found by the array of their ids through the primary key: joined by id
-- alone, a generic plan made while the table was small could walk the whole primary key (a
-- merge join). A retry (status queued) keeps the job's result and runs again in retry_in
-- seconds; every other end replaces the result (absent: JSON null). `error` joins the
-- history.
-- Its event: job.completed, job.failed, job.cancelled ({attempt}), or job.retry_scheduled
-- ({attempt, at, error}); an error without its traceback (the job keeps that).
WITH ended AS (
    UPDATE jobs AS j
    SET status = e.status,
        result = CASE WHEN e.status = 'queued' THEN j.result
                      ELSE coalesce(e.result, 'null'::jsonb) END,
        errors = CASE WHEN e.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(e.error) END,
        run_at = CASE WHEN e.status = 'queued' THEN now() + make_interval(secs => e.retry_in)
                      ELSE j.run_at END,
        finished_at = CASE WHEN e.status = 'queued' THEN NULL ELSE now() END,
        progress = NULL,
        lease_token = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM unnest(:ids::bigint[], :tokens::uuid[], :statuses::text[], :results::jsonb[],
                :errors::jsonb[], :retry_in::float8[])
         AS e(id, token, status, result, error, retry_in)
    WHERE j.id = ANY (:ids::bigint[]) AND j.id = e.id AND j.lease_token = e.token
    RETURNING j.id, j.status, j.attempts, j.run_at, e.error
),
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT id,
           CASE WHEN status = 'queued' THEN 'job.retry_scheduled' ELSE 'job.' || status END,
           CASE WHEN status = 'queued'
                THEN jsonb_build_object('attempt', attempts, 'at', run_at,
                                        'error', error - 'traceback')
                WHEN status = 'failed'
                THEN jsonb_build_object('attempt', attempts, 'error', error - 'traceback')
                ELSE jsonb_build_object('attempt', attempts) END
    FROM ended
)
SELECT id FROM ended;

-- name: job_leases_extend
-- Extend the leases still held. A row locked by another statement meanwhile (the worker's
-- own outcome being written, an operator's cancel) is skipped, not waited for: waiting on
-- rows taken in another order is how two statements deadlock. Rows that do not come back
-- were lost, or skipped: the caller reads those again without locking (job_leases_read).
-- Keeping a lease is also its worker's sign of life: the worker's row (if it has one) is
-- seen now, unless another statement holds it (a beat of its own, just then).
WITH held AS (
    SELECT j.ctid
    FROM jobs AS j
    JOIN unnest(:ids::bigint[], :tokens::uuid[]) AS r(id, token)
      ON j.id = r.id AND j.lease_token = r.token
    WHERE j.status = 'processing'
    FOR UPDATE OF j SKIP LOCKED
),
extended AS (
    UPDATE jobs AS j
    SET lease_expires_at = now() + make_interval(secs => :seconds::float8)
    WHERE j.ctid = ANY (ARRAY(SELECT ctid FROM held))
    RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested, j.worker_id,
              j.lease_expires_at
),
seen AS (
    UPDATE workers SET last_seen_at = now()
    WHERE id = ANY (ARRAY(
        SELECT w.id FROM workers AS w
        WHERE w.id = ANY (ARRAY(SELECT DISTINCT worker_id FROM extended))
        FOR UPDATE SKIP LOCKED
    ))
)
SELECT id, cancel_requested, lease_expires_at FROM extended;

-- name: job_leases_held
-- The running attempts these leases still hold, as an outcome needs them (nothing written).
SELECT j.id, j.task, j.queue, j.attempts AS attempt, j.max_attempts,
       j.cancel_requested_at IS NOT NULL AS cancel_requested, j.lease_expires_at, j.worker_id
FROM jobs AS j
JOIN unnest(:ids::bigint[], :tokens::uuid[]) AS r(id, token)
  ON j.id = r.id AND j.lease_token = r.token
WHERE j.status = 'processing';

-- name: job_leases_read
-- The leases still held, and whether each job was asked to cancel (nothing is written).
SELECT j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested, j.lease_expires_at
FROM jobs AS j
JOIN unnest(:ids::bigint[], :tokens::uuid[]) AS r(id, token)
  ON j.id = r.id AND j.lease_token = r.token
WHERE j.status = 'processing';

-- name: job_release
-- Shutdown hand-back: the attempt did not really happen, so it is not counted.
WITH released AS (
    UPDATE jobs AS j
    SET status = CASE WHEN j.cancel_requested_at IS NOT NULL THEN 'cancelled' ELSE 'queued' END,
        finished_at = CASE WHEN j.cancel_requested_at IS NOT NULL THEN now() END,
        attempts = greatest(j.attempts - 1, 0), lease_token = NULL, lease_expires_at = NULL,
        worker_id = NULL, started_at = NULL, progress = NULL, updated_at = now()
    FROM unnest(:ids::bigint[], :tokens::uuid[]) AS r(id, token)
    WHERE j.id = r.id AND j.lease_token = r.token AND j.status = 'processing'
    RETURNING j.id, j.status
),
events AS (
    INSERT INTO job_events (job_id, type)
    SELECT id, CASE WHEN status = 'cancelled' THEN 'job.cancelled' ELSE 'job.released' END
    FROM released
)
SELECT count(*) FROM released;

-- name: job_cancel
-- A queued job is cancelled at once; a running one is marked, and its worker ends it.
-- No row returns for a finished or unknown job.
-- A second request for a running job changes nothing and adds no event.
WITH target AS (
    SELECT id, status, cancel_requested_at AS asked FROM jobs WHERE id = :id FOR UPDATE
),
changed AS (
    UPDATE jobs AS j
    SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE j.status END,
        result = CASE WHEN t.status = 'queued' THEN :result::jsonb ELSE j.result END,
        finished_at = CASE WHEN t.status = 'queued' THEN now() ELSE j.finished_at END,
        cancel_requested_at = coalesce(j.cancel_requested_at, now()),
        updated_at = now()
    FROM target AS t
    WHERE j.id = t.id AND t.status IN ('queued', 'processing')
    RETURNING j.*, t.status AS was, t.asked
),
events AS (
    INSERT INTO job_events (job_id, type)
    SELECT id, CASE WHEN was = 'queued' THEN 'job.cancelled' ELSE 'job.cancel_requested' END
    FROM changed
    WHERE was = 'queued' OR asked IS NULL
)
SELECT * FROM changed;

-- name: job_retry
-- A failed or cancelled job runs again with a fresh set of attempts; its error history stays.
-- Its event is job.enqueued, {"retry": true}.
WITH queued AS (
    UPDATE jobs
    SET status = 'queued', attempts = 0, run_at = now(), result = NULL,
        cancel_requested_at = NULL, lease_token = NULL, lease_expires_at = NULL,
        worker_id = NULL, started_at = NULL, finished_at = NULL, progress = NULL,
        updated_at = now()
    WHERE id = :id AND status IN ('failed', 'cancelled')
    RETURNING *
),
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT id, 'job.enqueued', '{"retry": true}'::jsonb FROM queued
)
SELECT * FROM queued;

-- name: job_cancel_many
-- job_cancel for several jobs (:ids) in one statement, the dashboard's "cancel all": queued
-- ones end cancelled, running ones are asked to stop; the others are left as they are and
-- do not come back. Rows are locked in id order, so two such statements cannot deadlock.
WITH target AS (
    SELECT id, status, cancel_requested_at AS asked FROM jobs
    WHERE id = ANY(:ids::bigint[]) AND status IN ('queued', 'processing')
    ORDER BY id
    FOR UPDATE
),
changed AS (
    UPDATE jobs AS j
    SET status = CASE WHEN t.status = 'queued' THEN 'cancelled' ELSE j.status END,
        result = CASE WHEN t.status = 'queued' THEN :result::jsonb ELSE j.result END,
        finished_at = CASE WHEN t.status = 'queued' THEN now() ELSE j.finished_at END,
        cancel_requested_at = coalesce(j.cancel_requested_at, now()),
        updated_at = now()
    FROM target AS t
    WHERE j.id = t.id
    RETURNING j.id, j.queue, t.status AS was, t.asked
),
events AS (
    INSERT INTO job_events (job_id, type)
    SELECT id, CASE WHEN was = 'queued' THEN 'job.cancelled' ELSE 'job.cancel_requested' END
    FROM changed
    WHERE was = 'queued' OR asked IS NULL
)
SELECT id, queue, was = 'queued' AS ended FROM changed WHERE was = 'queued' OR asked IS NULL;

-- name: job_retry_many
-- job_retry for several jobs (:ids) in one statement, the dashboard's "retry all": failed and
-- cancelled ones are queued again; the others are left as they are and do not come back.
WITH target AS (
    SELECT id FROM jobs
    WHERE id = ANY(:ids::bigint[]) AND status IN ('failed', 'cancelled')
    ORDER BY id
    FOR UPDATE
),
queued AS (
    UPDATE jobs AS j
    SET status = 'queued', attempts = 0, run_at = now(), result = NULL,
        cancel_requested_at = NULL, lease_token = NULL, lease_expires_at = NULL,
        worker_id = NULL, started_at = NULL, finished_at = NULL, progress = NULL,
        updated_at = now()
    FROM target AS t
    WHERE j.id = t.id
    RETURNING j.id, j.queue
),
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT id, 'job.enqueued', '{"retry": true}'::jsonb FROM queued
)
SELECT id, queue FROM queued;

-- name: job_rescue_expired
-- Jobs whose worker stopped heartbeating go back to the queue, or end failed when their
-- attempts are spent (cancelled when cancellation was asked for). The transaction-scoped
-- try-lock (:lock) makes one process at a time do this; the others skip the round.
WITH leader AS (
    SELECT pg_try_advisory_xact_lock(:lock) AS ok
),
expired AS (
    SELECT jobs.id FROM jobs, leader
    WHERE leader.ok AND jobs.status = 'processing'
      AND jobs.lease_expires_at < coalesce(:now::timestamptz, now())
    ORDER BY jobs.lease_expires_at
    LIMIT :limit
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
),
rescued AS (
    UPDATE jobs AS j
    SET status = d.next_status,
        run_at = CASE WHEN d.next_status = 'queued' THEN now() ELSE j.run_at END,
        result = CASE WHEN d.next_status = 'queued' THEN j.result ELSE d.error END,
        finished_at = CASE WHEN d.next_status = 'queued' THEN NULL ELSE now() END,
        errors = j.errors || jsonb_build_array(d.error),
        progress = NULL,
        lease_token = NULL,
        lease_expires_at = NULL,
        updated_at = now()
    FROM decided AS d
    WHERE j.id = d.id AND j.status = 'processing'
    RETURNING j.id, j.task, j.queue, j.attempts AS attempt, j.status, d.error
),
-- job.rescued ({attempt, worker, status}: what became of the job), then its end when it
-- ended (job.failed or job.cancelled), in that order.
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT r.id, x.type, x.data
    FROM rescued AS r
    CROSS JOIN LATERAL (VALUES
        (1, 'job.rescued', jsonb_build_object('attempt', r.attempt, 'worker', r.error -> 'worker',
                                              'status', r.status)),
        (2, 'job.' || r.status, CASE WHEN r.status = 'failed'
                                     THEN jsonb_build_object('attempt', r.attempt,
                                                             'error', r.error)
                                     ELSE jsonb_build_object('attempt', r.attempt) END)
    ) AS x(n, type, data)
    WHERE x.n = 1 OR r.status <> 'queued'
    ORDER BY r.id, x.n
)
SELECT id, task, queue, attempt, status, error ->> 'worker' AS worker FROM rescued;

-- name: job_prune
-- Delete finished jobs older than :older_than seconds, :limit at most, one process at a
-- time (:lock).
WITH leader AS (
    SELECT pg_try_advisory_xact_lock(:lock) AS ok
),
doomed AS (
    SELECT jobs.id FROM jobs, leader
    WHERE leader.ok
      AND jobs.status IN ('completed', 'failed', 'cancelled')
      AND jobs.finished_at < now() - make_interval(secs => :older_than::float8)
    ORDER BY jobs.finished_at
    LIMIT :limit
    FOR UPDATE OF jobs SKIP LOCKED
),
deleted AS (
    -- By primary key, whatever the estimates (as the claim's UPDATE).
    DELETE FROM jobs WHERE id = ANY (ARRAY(SELECT id FROM doomed))
    RETURNING 1
),
-- A job's events go with it, and its webhook deliveries and callback.
events AS (
    DELETE FROM job_events WHERE job_id = ANY (ARRAY(SELECT id FROM doomed))
),
deliveries AS (
    DELETE FROM webhook_deliveries WHERE job_id = ANY (ARRAY(SELECT id FROM doomed))
),
callbacks AS (
    DELETE FROM job_callbacks WHERE job_id = ANY (ARRAY(SELECT id FROM doomed))
)
SELECT count(*) FROM deleted;

-- name: queue_lock_limited
-- The served queues that are limited or paused, locked so that claims on a limited queue
-- take turns (the next statement then counts running jobs after the previous claim
-- committed), with the state of each rate limit's token bucket (jqs.store.limits).
SELECT name, concurrency_limit, rate_limit, paused, tokens, refilled_at,
       clock_timestamp() AS at
FROM queues
WHERE name = ANY(:names::text[])
  AND (paused OR concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR UPDATE;

-- name: queue_tokens_spend
UPDATE queues AS q
SET tokens = x.tokens, refilled_at = x.at
FROM unnest(:names::text[], :tokens::float8[], :ats::timestamptz[]) AS x(name, tokens, at)
WHERE q.name = x.name;

-- name: queue_upsert
-- PATCH semantics: :set_limit, :set_rate, :set_paused and :set_max_queued say whether each
-- was given at all.
INSERT INTO queues (name, concurrency_limit, rate_limit, paused, max_queued)
VALUES (:name, :concurrency_limit, :rate_limit, coalesce(:paused, false), :max_queued)
ON CONFLICT (name) DO UPDATE
SET concurrency_limit = CASE WHEN :set_limit THEN EXCLUDED.concurrency_limit
                             ELSE queues.concurrency_limit END,
    rate_limit = CASE WHEN :set_rate THEN EXCLUDED.rate_limit ELSE queues.rate_limit END,
    tokens = CASE WHEN :set_rate THEN 0 ELSE queues.tokens END,
    refilled_at = CASE WHEN :set_rate THEN now() ELSE queues.refilled_at END,
    paused = CASE WHEN :set_paused THEN EXCLUDED.paused ELSE queues.paused END,
    max_queued = CASE WHEN :set_max_queued THEN EXCLUDED.max_queued
                      ELSE queues.max_queued END,
    updated_at = now()
RETURNING name, concurrency_limit, rate_limit, paused, max_queued;

-- name: queue_delete
-- A queue's settings go only while none of its jobs is queued or running (a queue needs no
-- row to be used: a job submitted meanwhile runs without the removed limits). Its running
-- jobs are counted by their index (migration 0006), its queued ones by theirs (0001).
WITH unfinished AS (
    SELECT (SELECT count(*) FROM jobs WHERE queue = :name AND status = 'queued')
         + (SELECT count(*) FROM jobs WHERE queue = :name AND status = 'processing') AS n
), removed AS (
    DELETE FROM queues
    WHERE name = :name AND (SELECT n FROM unfinished) = 0
    RETURNING name
)
SELECT EXISTS (SELECT 1 FROM queues WHERE name = :name) AS found,
       (SELECT n FROM unfinished) AS unfinished;

-- name: queue_depths
-- The bounded queues' queued jobs, each counted no further than its bound: the cost of a
-- count is capped by the bound, whatever the backlog.
SELECT q.name, q.max_queued,
       (SELECT count(*) FROM (
            SELECT 1 FROM jobs j
            WHERE j.queue = q.name AND j.status = 'queued'
            LIMIT q.max_queued
        ) AS upto) AS queued
FROM queues AS q
WHERE q.max_queued IS NOT NULL
ORDER BY q.name;

-- name: queue_limited_names
SELECT name FROM queues WHERE paused OR concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL;

-- name: queue_settings
SELECT name, concurrency_limit, rate_limit, paused, max_queued FROM queues;

-- name: queue_counts
-- plan: per-value
-- Jobs per queue and status, and how long the oldest runnable queued job has waited.
SELECT queue, status, count(*) AS n,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())) AS oldest_wait
FROM jobs
GROUP BY queue, status;

-- name: job_search
-- plan: per-value
-- The dashboard's search: the jobs of an id window (above :above_id, below :before_id when
-- given) that match, newest first. The window bounds what is read, whatever matches: a
-- payload search (@>) has no index to use, since a GIN index on payloads would slow every
-- insert; NULL filters match every row.
SELECT * FROM jobs
WHERE id > :above_id::bigint
  AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
  AND (:status::text IS NULL OR status = :status::text)
  AND (:queue::text IS NULL OR queue = :queue::text)
  AND (:task::text IS NULL OR task = :task::text)
  AND (:contains::jsonb IS NULL OR payload @> :contains::jsonb)
  AND (:since::timestamptz IS NULL OR created_at >= :since::timestamptz)
  AND (:until::timestamptz IS NULL OR created_at < :until::timestamptz)
  AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
  AND (:tasks::text[] IS NULL OR coalesce(task, '') = ANY(:tasks::text[]))
ORDER BY id DESC
LIMIT :limit;

-- name: job_search_count
-- plan: per-value
-- How many jobs of job_search's window match (a count bounded by the window), and when the
-- window's oldest job was created (the primary key's first entry above the floor).
SELECT (SELECT count(*) FROM jobs
WHERE id > :above_id::bigint
  AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
  AND (:status::text IS NULL OR status = :status::text)
  AND (:queue::text IS NULL OR queue = :queue::text)
  AND (:task::text IS NULL OR task = :task::text)
  AND (:contains::jsonb IS NULL OR payload @> :contains::jsonb)
  AND (:since::timestamptz IS NULL OR created_at >= :since::timestamptz)
  AND (:until::timestamptz IS NULL OR created_at < :until::timestamptz)
  AND (:queues::text[] IS NULL OR queue = ANY(:queues::text[]))
  AND (:tasks::text[] IS NULL OR coalesce(task, '') = ANY(:tasks::text[]))) AS matching,
       (SELECT created_at FROM jobs WHERE id > :above_id::bigint ORDER BY id LIMIT 1)
           AS oldest_at;

-- name: job_newest_id
SELECT coalesce(max(id), 0) FROM jobs;

-- name: job_throughput
-- plan: per-value
-- Completed and failed jobs per minute since :minutes minutes before this minute began,
-- from the newest :rows finished jobs at most (the finished_at index, read backwards). The
-- minute is computed below the LIMIT, so the rows are counted by hashing, not sorted.
SELECT minute,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM (
    SELECT date_trunc('minute', finished_at) AS minute, status FROM jobs
    WHERE status IN ('completed', 'failed', 'cancelled')
      AND finished_at >= date_trunc('minute', now()) - make_interval(mins => :minutes::int)
    ORDER BY finished_at DESC
    LIMIT :rows
) AS recent
GROUP BY 1
ORDER BY 1;

-- name: queue_activity
-- Queued and running jobs per queue, and how long the oldest due queued job has waited:
-- read from the partial indexes that hold only those rows (never the finished history).
SELECT queue, count(*) AS queued, 0::bigint AS running,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8
           AS oldest_wait
FROM jobs WHERE status = 'queued'
GROUP BY queue
UNION ALL
SELECT queue, 0, count(*), NULL FROM jobs WHERE status = 'processing'
GROUP BY queue;

-- name: cron_schedule_register
-- A new schedule, or one whose expression changed, starts from :start_after (its latest
-- time before now), so it does not fire at once for a time before it existed.
INSERT INTO cron_schedules (name, expression, last_fire)
VALUES (:name, :expression, :start_after)
ON CONFLICT (name) DO UPDATE
SET expression = EXCLUDED.expression,
    last_fire = CASE WHEN cron_schedules.expression = EXCLUDED.expression
                     THEN cron_schedules.last_fire ELSE EXCLUDED.last_fire END,
    updated_at = now();

-- name: cron_fire
-- Enqueue the schedule's time :at exactly once across all processes: only the process whose
-- UPDATE moves last_fire forward inserts; the others find it moved and insert nothing.
WITH advanced AS (
    UPDATE cron_schedules
    SET last_fire = :at, updated_at = now()
    WHERE name = :name AND (last_fire IS NULL OR last_fire < :at)
    RETURNING name
),
inserted AS (
    INSERT INTO jobs (payload, queue, priority, max_attempts, timeout, idempotency_key)
    SELECT :payload::jsonb, :queue, :priority, :max_attempts, :timeout, :key
    FROM advanced
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
),
events AS (
    INSERT INTO job_events (job_id, type, data)
    SELECT id, 'job.enqueued', jsonb_build_object('schedule', :name::text) FROM inserted
)
SELECT id FROM inserted;

-- name: worker_beat
INSERT INTO workers (id, host, queues, version, concurrency, running)
VALUES (:id, :host, :queues, :version, :concurrency, :running)
ON CONFLICT (id) DO UPDATE
SET queues = EXCLUDED.queues, running = EXCLUDED.running, last_seen_at = now();

-- name: worker_gone
DELETE FROM workers WHERE id = :id;

-- name: worker_list
-- plan: per-value
SELECT id, host, queues, version, concurrency, running, started_at, last_seen_at
FROM workers
WHERE last_seen_at >= now() - make_interval(secs => :silent_for::float8)
ORDER BY id;

-- name: worker_forget
WITH forgotten AS (
    DELETE FROM workers
    WHERE last_seen_at < now() - make_interval(secs => :silent_for::float8)
    RETURNING 1
)
SELECT count(*) FROM forgotten;

-- name: key_create
INSERT INTO api_keys (id, name, secret_hash, scopes, queues, tasks, rate_limit, expires_at,
                      created_by, webhook_secret)
VALUES (:id, :name, :secret_hash, :scopes, :queues, :tasks, :rate_limit, :expires_at,
        :created_by, :webhook_secret)
RETURNING id, name, scopes, queues, tasks, rate_limit, created_at, created_by, expires_at,
          revoked_at;

-- name: key_list
SELECT id, name, scopes, queues, tasks, rate_limit, created_at, created_by, expires_at,
       revoked_at
FROM api_keys
ORDER BY created_at, id;

-- name: key_revoke
-- A key revoked already keeps the time it was first revoked.
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
WHERE id = :id
RETURNING id, name, scopes, queues, tasks, rate_limit, created_at, created_by, expires_at,
          revoked_at;

-- name: key_list_active
-- Every API process reads this every few seconds: the keys are few, and a revocation must
-- reach every process without anyone telling it.
SELECT secret_hash, id, name, scopes, queues, tasks, rate_limit, created_at, created_by,
       expires_at, revoked_at
FROM api_keys
WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now());

-- name: job_progress
-- The running attempt's latest progress, written only while its lease holds, with its
-- job.progress event.
WITH reported AS (
    UPDATE jobs
    SET progress = :progress::jsonb || jsonb_build_object('at', now()), updated_at = now()
    WHERE id = :id AND lease_token = :token::uuid AND status = 'processing'
    RETURNING id
),
events AS (
    INSERT INTO job_events (job_id, type, data) SELECT id, 'job.progress', :progress::jsonb
    FROM reported
)
SELECT count(*) FROM reported;

-- name: event_list_for_job
-- A job's events after :after_id, oldest first (its own order: see migration 0009).
SELECT e.id, e.job_id, e.xid::text::bigint AS xid, e.type, e.at, e.data, j.queue, j.task
FROM job_events AS e
LEFT JOIN jobs AS j ON j.id = e.job_id
WHERE e.job_id = :job_id AND e.id > :after_id
ORDER BY e.id
LIMIT :limit;

-- name: event_ended_above
-- Which of the jobs :ids have a committed final event written by a transaction at or above
-- :xid (the log's horizon, below which event_read_log has read everything already): ends
-- that a waiter may take now, since it needs no order.
SELECT DISTINCT job_id FROM job_events
WHERE xid >= :xid::text::xid8 AND job_id = ANY (:ids::bigint[])
  AND type IN ('job.completed', 'job.failed', 'job.cancelled');

-- name: event_horizon
-- Where the log stands: an xid below which no event may still commit. That is the oldest
-- transaction running now in this database (pg_stat_activity.backend_xid, a top-level xid,
-- set from the moment it is assigned until the transaction has ended), or else the next
-- xid to be handed out; autovacuum never writes events and is left out. Transactions of
-- other databases on the same server are left out too: pg_snapshot_xmin would count them,
-- and a long one anywhere on the server would hold up this database's readers.
-- The horizon must be read before, and in another statement than, the events below it:
-- a transaction that ends between the two has ended before the second one's snapshot, so
-- that snapshot sees its events.
-- backend_xid is 32 bits; it is widened against the snapshot's xmax (xid8), from which a
-- running xid is less than 2^31 away, on either side: xmax is one past the latest xid to
-- have ended, and transactions that took their xids after that one may still be running.
-- (Widened as if always below xmax, such an xid came out 2^32 too low, a negative
-- horizon that the log's read took for a huge one: it read past transactions still open,
-- and missed their events once they committed.)
WITH s AS (
    SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax
)
SELECT least(s.xmax, min(s.xmax + (a.backend_xid::text::bigint - s.xmax % 4294967296
                                   + 6442450944) % 4294967296 - 2147483648))
FROM s
LEFT JOIN pg_stat_activity AS a
  ON a.datname = current_database() AND a.backend_xid IS NOT NULL
 AND a.backend_type NOT LIKE 'autovacuum%'
GROUP BY s.xmax;

-- name: event_read_log
-- The log after the position (:xid, :id), in visibility order, below :horizon (read by
-- event_horizon in an earlier statement). Always one row at least: `pending`, whether
-- events at or above the horizon exist already (read again shortly); then the events, if
-- any (id NULL when none), each with its job's queue and task (NULL once the job is gone).
SELECT EXISTS (SELECT 1 FROM job_events AS p WHERE p.xid >= :horizon::text::xid8) AS pending,
       e.id, e.job_id, e.xid, e.type, e.at, e.data, e.queue, e.task
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT l.id, l.job_id, l.xid::text::bigint AS xid, l.type, l.at, l.data, j.queue, j.task
    FROM job_events AS l
    LEFT JOIN jobs AS j ON j.id = l.job_id
    WHERE (l.xid, l.id) > (:xid::text::xid8, :id::bigint) AND l.xid < :horizon::text::xid8
    ORDER BY l.xid, l.id
    LIMIT :limit
) AS e ON true
ORDER BY e.xid, e.id;

-- name: webhook_create
INSERT INTO webhooks (id, url, events, queues, tasks, secret, created_by)
VALUES (:id, :url, :events, :queues, :tasks, :secret, :created_by)
RETURNING id, url, events, queues, tasks, created_at, created_by, previous_until,
          disabled_at, disabled_reason;

-- name: webhook_list
SELECT id, url, events, queues, tasks, created_at, created_by, previous_until, disabled_at,
       disabled_reason
FROM webhooks
ORDER BY created_at, id;

-- name: webhook_delete
-- A subscription goes with its deliveries, pending or not.
WITH deleted AS (
    DELETE FROM webhooks WHERE id = :id RETURNING id
),
deliveries AS (
    DELETE FROM webhook_deliveries WHERE webhook_id = (SELECT id FROM deleted)
)
SELECT count(*) FROM deleted;

-- name: webhook_rotate
-- The new secret signs from now on; the old one signs as well for :overlap seconds.
UPDATE webhooks
SET previous_secret = secret, secret = :secret,
    previous_until = now() + make_interval(secs => :overlap::float8)
WHERE id = :id
RETURNING id, url, events, queues, tasks, created_at, created_by, previous_until,
          disabled_at, disabled_reason;

-- name: key_webhook_secret_rotate
-- A key's webhook secret: the new one signs from now on, the old one (if any) as well for
-- :overlap seconds.
UPDATE api_keys
SET previous_webhook_secret = webhook_secret, webhook_secret = :secret,
    previous_webhook_until = CASE WHEN webhook_secret IS NULL THEN NULL
                                  ELSE now() + make_interval(secs => :overlap::float8) END
WHERE id = :id
RETURNING id, previous_webhook_until;

-- name: key_webhook_secret_set
UPDATE api_keys SET webhook_secret = :secret WHERE id = :id;

-- name: key_has_webhook_secret
SELECT webhook_secret IS NOT NULL FROM api_keys WHERE id = :id;

-- name: webhook_armed
-- Whether any delivery can be made at all: an enabled subscription, or a job with a
-- callback. While neither exists, events need not wake the dispatcher.
SELECT EXISTS (SELECT 1 FROM webhooks WHERE disabled_at IS NULL)
    OR EXISTS (SELECT 1 FROM job_callbacks);

-- name: webhook_delivery_claim
-- Due deliveries, each taken under a lease: next_at moves to the lease's end and the
-- claim's token (:token) fences the write of its outcome. Another process takes a delivery
-- only once its lease has run out, which is after the attempt's own timeout: one attempt at
-- a time. Each comes with where it goes and the secrets that sign it (a rotated secret
-- while it still signs), and with its job when the body is yet to be made (the job as a
-- row, which the store maps as it maps any job).
WITH due AS (
    SELECT id FROM webhook_deliveries
    WHERE state = 'pending' AND next_at <= now()
    ORDER BY next_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    UPDATE webhook_deliveries AS d
    SET next_at = now() + make_interval(secs => :lease_seconds::float8),
        lease_token = :token::uuid
    WHERE d.id = ANY (ARRAY(SELECT id FROM due))
    RETURNING d.id, d.webhook_id, d.key_id, d.url, d.job_id, d.event_id, d.event_type,
              d.event_at, d.event_data, d.attempts, d.body
)
SELECT c.id, c.webhook_id, c.job_id, c.event_id, c.event_type, c.event_at, c.event_data,
       c.attempts, c.body,
       CASE WHEN c.webhook_id IS NULL THEN c.url ELSE w.url END AS url,
       CASE WHEN c.webhook_id IS NULL THEN k.webhook_secret ELSE w.secret END AS secret,
       CASE WHEN c.webhook_id IS NULL
            THEN CASE WHEN k.previous_webhook_until > now() THEN k.previous_webhook_secret END
            ELSE CASE WHEN w.previous_until > now() THEN w.previous_secret END
       END AS previous_secret,
       c.webhook_id IS NOT NULL AND (w.id IS NULL OR w.disabled_at IS NOT NULL) AS disabled,
       CASE WHEN c.body IS NULL THEN j END AS job
FROM claimed AS c
LEFT JOIN webhooks AS w ON w.id = c.webhook_id
LEFT JOIN api_keys AS k ON k.id = c.key_id
LEFT JOIN jobs AS j ON j.id = c.job_id
ORDER BY c.id;

-- name: webhook_delivery_record
-- The outcomes of attempts, each written only while its claim's lease holds (:token).
-- :outcomes is one JSON array of {"id", "token", "state", "retry_in"?, "status_code"?,
-- "error"?, "duration_ms", "body"?}. A pending one is due again in retry_in seconds. A 410
-- from a subscription's receiver disables the subscription (:gone) and drops its other
-- pending deliveries.
WITH o AS (
    SELECT * FROM jsonb_to_recordset(:outcomes::jsonb)
        AS o(id bigint, token uuid, state text, retry_in float8, status_code integer,
             error text, duration_ms float8, body text)
),
recorded AS (
    UPDATE webhook_deliveries AS d
    SET state = o.state,
        attempts = d.attempts + 1,
        next_at = CASE WHEN o.state = 'pending'
                       THEN now() + make_interval(secs => o.retry_in) ELSE d.next_at END,
        lease_token = NULL,
        body = coalesce(d.body, o.body),
        history = d.history || jsonb_build_array(jsonb_build_object(
            'at', now(), 'status_code', o.status_code, 'error', o.error,
            'duration_ms', o.duration_ms)),
        finished_at = CASE WHEN o.state = 'pending' THEN NULL ELSE now() END
    FROM o
    WHERE d.id = ANY (:ids::bigint[]) AND d.id = o.id AND d.lease_token = o.token
    RETURNING d.id
),
disabled AS (
    UPDATE webhooks
    SET disabled_at = now(), disabled_reason = 'the receiver answered 410 Gone'
    WHERE id = ANY (:gone::text[]) AND disabled_at IS NULL
    RETURNING id
),
dropped AS (
    UPDATE webhook_deliveries
    SET state = 'dropped', finished_at = now(), lease_token = NULL
    WHERE webhook_id = ANY (:gone::text[]) AND state = 'pending'
      AND NOT (id = ANY (:ids::bigint[]))
)
SELECT id FROM recorded;

-- name: webhook_delivery_list
-- plan: per-value
-- A subscription's deliveries, newest first, below :before_id when given.
SELECT id, job_id, event_id, event_type, event_at, state, attempts,
       CASE WHEN state = 'pending' THEN next_at END AS next_attempt_at, history, created_at,
       finished_at
FROM webhook_deliveries
WHERE webhook_id = :webhook_id
  AND (:before_id::bigint IS NULL OR id < :before_id::bigint)
ORDER BY id DESC
LIMIT :limit;
