-- Each pass records what it looked at and what it found, so `status` can tell the last full pass (every file
-- of every target) from the last partial one (`reconcile --since`, `--target`), and a dry run from a real one.
ALTER TABLE reconcile_runs ADD COLUMN scope TEXT;    -- JSON: { since, verify, dryRun, targets, partial }
ALTER TABLE reconcile_runs ADD COLUMN counts TEXT;   -- JSON: scanned, in scope, unchanged, queued, waiting, ...
ALTER TABLE reconcile_runs ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
CREATE INDEX reconcile_runs_finished ON reconcile_runs (partial, finished_at) WHERE finished_at IS NOT NULL AND error IS NULL;
