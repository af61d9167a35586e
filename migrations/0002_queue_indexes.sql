-- SQLite cannot use a partial index whose WHERE is `state IN (...)` for a query on one state, so 0001's
-- files_queue left every claim scanning the whole table. One partial index per queue state instead.
-- A pending row may now carry next_attempt_at too: a file requeued because it was still being written waits
-- before it is read again, instead of being re-read in a tight loop while its writer appends.
DROP INDEX files_queue;
CREATE INDEX files_pending ON files (id) WHERE state = 'pending';
CREATE INDEX files_retry ON files (next_attempt_at, id) WHERE state = 'retry';
