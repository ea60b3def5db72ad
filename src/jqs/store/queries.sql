-- Every statement JQS sends, named noun-first and loaded once by jqs.store.queries.
-- Times come from the database clock (now()), so every process agrees on them.

-- name: job_insert
-- With an idempotency key that already exists, nothing is inserted and no row returns.
-- run_at: $4 if given, else now() + $5 seconds (the database's clock, not the caller's).
INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout_seconds,
                  idempotency_key, request_digest)
VALUES ($1::jsonb, $2, $3, coalesce($4::timestamptz, now() + make_interval(secs => $5)),
        $6, $7, $8, $9)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *;

-- name: job_insert_many
-- One statement for a whole batch: all rows or none. Ids follow the input order. Only what
-- the caller does not know already comes back (decoding the payloads again is wasted work).
-- The rows travel as one JSON array of [payload, queue, priority, run_at, delay,
-- max_attempts, timeout]: serialized in C by orjson and parsed once by the server, where
-- seven typed arrays cost the driver a Python-level type check per element.
INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout_seconds)
SELECT r -> 0, r ->> 1, (r ->> 2)::smallint,
       coalesce((r ->> 3)::timestamptz, now() + make_interval(secs => (r ->> 4)::float8)),
       (r ->> 5)::integer, (r ->> 6)::float8
FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(r, n)
ORDER BY n
RETURNING id, task, created_at, run_at;

-- name: job_insert_many_alike
-- job_insert_many for jobs that share their options, the usual batch: the payloads travel
-- as one JSON array and the options once. One row comes back, not one per job: the ids in
-- input order, their tasks, and the timestamps every job of the statement shares (now()
-- is the transaction's time, which is what created_at defaults to). Measured against
-- job_insert_many, 500 jobs a statement from four connections: 1.5x the rows per second.
WITH inserted AS (
    INSERT INTO jobs (payload, queue, priority, run_at, max_attempts, timeout_seconds)
    SELECT p, $2, $3, coalesce($4::timestamptz, now() + make_interval(secs => $5)), $6, $7
    FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(p, n)
    ORDER BY n
    RETURNING id, task
)
SELECT array_agg(id ORDER BY id) AS ids, array_agg(task ORDER BY id) AS tasks,
       now() AS created_at, coalesce($4::timestamptz, now() + make_interval(secs => $5)) AS run_at
FROM inserted;

-- name: job_get
SELECT * FROM jobs WHERE id = $1;

-- name: job_get_by_idempotency_key
SELECT * FROM jobs WHERE idempotency_key = $1;

-- name: job_list
-- Newest first. NULL filters match every row. Planned for the values given (the store asks
-- for custom plans): with the status known, the planner reads the partial index holding
-- only that status (migration 0005), or the primary key backwards when there is none.
SELECT * FROM jobs
WHERE ($1::text IS NULL OR status = $1)
  AND ($2::text IS NULL OR task = $2)
ORDER BY id DESC
LIMIT $3 OFFSET $4;

-- name: job_list_by_task
-- Newest first among one task's jobs, whatever their status. Finished, queued and running
-- jobs are each indexed apart (migration 0005), so the three parts are read separately,
-- each only as far as the page reaches ($2 + $3 rows), and merged.
SELECT * FROM (
    (SELECT * FROM jobs
     WHERE task = $1 AND status IN ('completed', 'failed', 'cancelled')
     ORDER BY id DESC LIMIT $2::bigint + $3::bigint)
    UNION ALL
    (SELECT * FROM jobs
     WHERE task = $1 AND status = 'queued'
     ORDER BY id DESC LIMIT $2::bigint + $3::bigint)
    UNION ALL
    (SELECT * FROM jobs
     WHERE task = $1 AND status = 'processing'
     ORDER BY id DESC LIMIT $2::bigint + $3::bigint)
) AS j
ORDER BY id DESC LIMIT $2 OFFSET $3;

-- name: db_plan_freely
-- For this transaction: plan each statement for its parameter values, with sequential scans
-- allowed (JQS's sessions turn them off; see SESSION_SETTINGS in database.py). A generic
-- plan cannot use a partial index whose predicate names a value that is a parameter, nor
-- size a LIMIT that is one; and a count over the whole table is best read sequentially.
-- Two statements, sent together (the simple query protocol) in one round trip.
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_seqscan = on;

-- name: job_claim
-- Claims across the served queues ($1), each capped ($2: free slots, rate tokens) and,
-- where it has a concurrency limit ($3), by the room left under it. Strict priority, then
-- run_at, then id; rows other workers hold are skipped. Each claim statement brings a fresh
-- lease token ($9, one per statement: a job's id and its claim's token are unique together)
-- that every write ending the attempt must present. $7: the caller's clock (tests).
-- $8 (the fast path, outside any transaction): skip queues that are limited or paused now;
-- those are claimed only by the locked path, whatever a cache of their settings says.
-- `relaxed`: the claim's own transaction commits without waiting for its WAL to reach disk
-- (about half of a claim's round trip here). A crash of PostgreSQL can undo only a claim
-- made in the last moments; its job is then queued again and runs again, as after a lost
-- lease. The enqueue before it and the outcome after it stay synchronous, and WAL is
-- flushed in order, so a job whose outcome is on disk has its claim on disk as well.
WITH relaxed AS (
    SELECT set_config('synchronous_commit', 'off', true) AS setting
),
served AS (
    SELECT s.name, s.cap, s.max_running
    FROM unnest($1::text[], $2::integer[], $3::integer[]) AS s(name, cap, max_running)
    CROSS JOIN relaxed
    WHERE NOT $8::boolean OR NOT EXISTS (
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
    SELECT c.id, c.priority, c.run_at
    FROM allowance AS a
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at FROM jobs
        WHERE status = 'queued' AND queue = a.name
          AND run_at <= coalesce($7::timestamptz, now())
        ORDER BY priority DESC, run_at, id
        LIMIT a.n
        FOR UPDATE SKIP LOCKED
    ) AS c
),
picked AS (
    SELECT id FROM candidates ORDER BY priority DESC, run_at, id LIMIT $4
),
claimed AS (
    UPDATE jobs AS j
    SET status = 'processing',
        attempts = j.attempts + 1,
        lease_token = $9::uuid,
        lease_expires_at = now() + make_interval(secs => $5),
        worker_id = $6,
        started_at = now(),
        updated_at = now()
    -- An array of ids, not a join: the rows are found through the primary key whatever
    -- the estimates say (a join may be planned as a hash join over the whole table).
    WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING j.id, j.payload, j.task, j.queue, j.attempts, j.max_attempts, j.timeout_seconds,
              j.priority, j.run_at
)
-- RETURNING has no order of its own: hand the jobs over in the order they should start.
SELECT id, payload, task, queue, attempts, max_attempts, timeout_seconds
FROM claimed
ORDER BY priority DESC, run_at, id;

-- name: queue_lock_limited
-- The served queues that are limited or paused, locked so that claims on a limited queue
-- take turns (the next statement then counts running jobs after the previous claim
-- committed). Rate tokens refill on the wall clock and keep at most 100 ms worth, so a claim
-- that came late can catch up without letting a long idle spell turn into a burst.
SELECT name, concurrency_limit, rate_limit, paused,
       CASE WHEN rate_limit IS NULL THEN NULL
            ELSE least(greatest(1.0, rate_limit / 10),
                       tokens + rate_limit * extract(epoch FROM clock_timestamp() - refilled_at))
       END AS tokens_now,
       clock_timestamp() AS at
FROM queues
WHERE name = ANY($1::text[])
  AND (paused OR concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL)
ORDER BY name
FOR UPDATE;

-- name: queue_tokens_spend
UPDATE queues AS q
SET tokens = x.tokens, refilled_at = x.at
FROM unnest($1::text[], $2::float8[], $3::timestamptz[]) AS x(name, tokens, at)
WHERE q.name = x.name;

-- name: queue_upsert
-- PATCH semantics: $5/$6/$7 say whether the limit, rate or paused flag was given at all.
INSERT INTO queues (name, concurrency_limit, rate_limit, paused)
VALUES ($1, $2, $3, coalesce($4, false))
ON CONFLICT (name) DO UPDATE
SET concurrency_limit = CASE WHEN $5 THEN EXCLUDED.concurrency_limit
                             ELSE queues.concurrency_limit END,
    rate_limit = CASE WHEN $6 THEN EXCLUDED.rate_limit ELSE queues.rate_limit END,
    tokens = CASE WHEN $6 THEN 0 ELSE queues.tokens END,
    refilled_at = CASE WHEN $6 THEN now() ELSE queues.refilled_at END,
    paused = CASE WHEN $7 THEN EXCLUDED.paused ELSE queues.paused END,
    updated_at = now()
RETURNING name, concurrency_limit, rate_limit, paused;

-- name: queue_limited_names
SELECT name FROM queues WHERE paused OR concurrency_limit IS NOT NULL OR rate_limit IS NOT NULL;

-- name: queue_settings
SELECT name, concurrency_limit, rate_limit, paused FROM queues;

-- name: queue_counts
-- Jobs per queue and status, and how long the oldest runnable queued job has waited.
SELECT queue, status, count(*) AS n,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())) AS oldest_wait
FROM jobs
GROUP BY queue, status;

-- name: job_complete
-- Fenced by the lease token: a worker that lost its lease changes nothing.
UPDATE jobs
SET status = 'completed', result = $3::jsonb, lease_token = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_token = $2 AND status = 'processing';

-- name: job_complete_many
-- Many attempts finished at once, each fenced by its own lease token; returns those applied.
-- The rows are found by the array of ids ($1) through the primary key, not by a join with
-- the arrays: with no running jobs in its statistics, the generic plan of a join could be a
-- nested loop that unnests the arrays again for every row (measured on a million-row
-- table: 3-4 ms for 100 jobs instead of 1). Each row's token and result sit at its id's
-- place in $2 and $3. A lease token is set only while its job is processing (every way out
-- clears it), so the token is the whole fence; naming the status as well would let the
-- planner read a partial index of processing jobs instead, with a bitmap scan that visits
-- every dead entry left there since the last vacuum, on every batch.
UPDATE jobs AS j
SET status = 'completed', result = ($3::jsonb[])[array_position($1::bigint[], j.id)],
    lease_token = NULL, lease_expires_at = NULL, finished_at = now(), updated_at = now()
WHERE j.id = ANY ($1::bigint[])
  AND j.lease_token = ($2::uuid[])[array_position($1::bigint[], j.id)]
RETURNING j.id;

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

-- name: job_prune
-- Delete finished jobs older than $1 seconds, $2 at most, one process at a time ($3).
WITH leader AS (
    SELECT pg_try_advisory_xact_lock($3) AS ok
),
doomed AS (
    SELECT jobs.id FROM jobs, leader
    WHERE leader.ok
      AND jobs.status IN ('completed', 'failed', 'cancelled')
      AND jobs.finished_at < now() - make_interval(secs => $1)
    ORDER BY jobs.finished_at
    LIMIT $2
    FOR UPDATE OF jobs SKIP LOCKED
)
-- By primary key, whatever the estimates (as the claim's UPDATE).
DELETE FROM jobs WHERE id = ANY (ARRAY(SELECT id FROM doomed));

-- name: cron_schedule_register
-- A new schedule, or one whose expression changed, starts from $3 (its latest time
-- before now), so it does not fire at once for a time before it existed.
INSERT INTO cron_schedules (name, expression, last_fire)
VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE
SET expression = EXCLUDED.expression,
    last_fire = CASE WHEN cron_schedules.expression = EXCLUDED.expression
                     THEN cron_schedules.last_fire ELSE EXCLUDED.last_fire END,
    updated_at = now();

-- name: cron_fire
-- Enqueue the schedule's time $2 exactly once across all processes: only the process whose
-- UPDATE moves last_fire forward inserts; the others find it moved and insert nothing.
WITH advanced AS (
    UPDATE cron_schedules
    SET last_fire = $2, updated_at = now()
    WHERE name = $1 AND (last_fire IS NULL OR last_fire < $2)
    RETURNING name
)
INSERT INTO jobs (payload, queue, priority, max_attempts, timeout_seconds, idempotency_key)
SELECT $3::jsonb, $4, $5, $6, $7, $8
FROM advanced
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: job_count_by_status
SELECT status, count(*) AS n FROM jobs GROUP BY status;

-- name: db_session_configure
-- A new connection's settings ($1: names, $2: values), for the whole session. Why these, in
-- database.py (SESSION_SETTINGS).
SELECT set_config(s.name, s.value, false)
FROM unnest($1::text[], $2::text[]) AS s(name, value);

-- name: db_ping
SELECT 1;

-- name: db_notify
SELECT pg_notify($1, $2);

-- name: db_listeners_elsewhere
-- Is a JQS listener ($1: its application_name) connected to this database, other than the
-- caller's own ($2: its backend pid, or NULL)? application_name and the database are
-- shown to every role, whatever it may see of other sessions.
SELECT EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE datname = current_database() AND application_name = $1
      AND pid IS DISTINCT FROM $2
);
