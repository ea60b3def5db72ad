-- Vacuum the jobs table by a fixed amount of churn, not by a share of its size.
--
-- Every job is updated two or three times on its way through, and each update leaves an
-- entry in the partial index of queued jobs that only VACUUM removes. By default autovacuum
-- waits until a fifth of the table is dead, a number that grows with the finished jobs kept:
-- with a million of them, 200,000 dead rows pile up first, and every claim steps over their
-- index entries. Measured with the history scenario of `make bench` (a million finished
-- jobs): a claim plus completion of 100 jobs took 3.9-4.0 ms with no vacuum between runs,
-- 2.7-3.0 ms with one, and 2.6-2.9 ms on an empty table.
-- A fixed threshold keeps the hot indexes small however long the history; index cleanup is
-- forced because skipping it (PostgreSQL does when few pages hold dead rows) would leave
-- exactly those queued-index entries behind.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 20000,
    vacuum_index_cleanup = on
);
