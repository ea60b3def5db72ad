-- Indexes for listing jobs that cost the hot path (almost) nothing.
--
-- A job's row is written three times (queued, processing, completed), and as `status` is in
-- index predicates no update is HOT: each version gets an entry in every index whose
-- predicate it meets. The full indexes on (status, id) and (task, id) of 0001 made six of a
-- job's thirteen index entries, for listings alone; what replaces them makes one (a failed
-- or cancelled job two). Measured with `python -m bench.drain_cpu --variant "0001 list
-- indexes=DROP INDEX jobs_unsuccessful_idx; DROP INDEX jobs_finished_task_idx; CREATE INDEX
-- jobs_task_id_idx ON jobs (task, id DESC); CREATE INDEX jobs_status_id_idx ON jobs
-- (status, id DESC)"` (embedded PostgreSQL 18, 2 cores, medians of three 50,000-job
-- drains): PostgreSQL's CPU per job 78.4 us with the old indexes, 64.6 us with these.
--
-- What each listing reads now (the job_list queries, planned for their values):
-- - no filter, or status completed: the primary key backwards (completed rows are most);
-- - status queued or processing: the claim's and the rescuer's partial indexes of 0001 and
--   0003, which hold only those rows;
-- - status failed or cancelled: jobs_unsuccessful_idx, which the happy path never writes;
-- - a task: its finished jobs from jobs_finished_task_idx (one entry per job, from its last
--   write), its queued and running ones from those partial indexes.
-- (A backward index scan gives newest first, so the columns need no DESC.)
DROP INDEX jobs_status_id_idx;
DROP INDEX jobs_task_id_idx;
CREATE INDEX jobs_unsuccessful_idx ON jobs (status, id)
    WHERE status IN ('failed', 'cancelled');
CREATE INDEX jobs_finished_task_idx ON jobs (task, id)
    WHERE status IN ('completed', 'failed', 'cancelled');
