-- `status` answers in milliseconds after years of service (10 million rows): every query it makes is a lookup in a
-- small table or a range read along an index, never a scan of files or history.

-- Rows per (target, state), kept by triggers in the same transaction as the change: counts without a count.
CREATE TABLE file_counts (
  target TEXT    NOT NULL,
  state  TEXT    NOT NULL,
  n      INTEGER NOT NULL,
  PRIMARY KEY (target, state)
) WITHOUT ROWID;
INSERT INTO file_counts (target, state, n) SELECT target, state, COUNT(*) FROM files GROUP BY target, state;

CREATE TRIGGER files_counts_insert AFTER INSERT ON files BEGIN
  INSERT INTO file_counts (target, state, n) VALUES (NEW.target, NEW.state, 1)
    ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER files_counts_update AFTER UPDATE OF state, target ON files
  WHEN OLD.state IS NOT NEW.state OR OLD.target IS NOT NEW.target BEGIN
  UPDATE file_counts SET n = n - 1 WHERE target = OLD.target AND state = OLD.state;
  INSERT INTO file_counts (target, state, n) VALUES (NEW.target, NEW.state, 1)
    ON CONFLICT (target, state) DO UPDATE SET n = n + 1;
END;
-- Nothing in sftppush deletes files rows; an operator's hand may.
CREATE TRIGGER files_counts_delete AFTER DELETE ON files BEGIN
  UPDATE file_counts SET n = n - 1 WHERE target = OLD.target AND state = OLD.state;
END;

-- `status PATH` names a path, not always its target: rel_path leads (the UNIQUE index leads with target).
CREATE INDEX files_path ON files (rel_path, target, generation);
-- The oldest unfinished row (the backlog's age): MIN(created_at) is the first entry. The query repeats this WHERE
-- exactly, which is what lets SQLite use a partial index with IN (see 0002).
CREATE INDEX files_unfinished ON files (created_at) WHERE state IN ('pending', 'working', 'retry');
-- `status --failed` and the summary's last errors: the most recently changed first, read backwards.
CREATE INDEX files_failed ON files (updated_at) WHERE state IN ('retry', 'quarantined', 'gone');
-- The last failed pass, without reading every pass of ten years of a five-minute schedule.
CREATE INDEX reconcile_runs_failed ON reconcile_runs (finished_at) WHERE error IS NOT NULL;
-- History retention (ledger.history_days): the running service deletes the oldest rows, a range at a time.
CREATE INDEX history_at ON history (at);

-- A duplicate's history said `same content as #<row id>`: an id means nothing to an operator. Say which
-- generation, and when it was archived (an archived row's updated_at is when it was archived).
UPDATE history
SET detail = COALESCE(
  (SELECT 'same content as generation ' || f.generation || ' (archived at '
            || strftime('%Y-%m-%dT%H:%M:%fZ', f.updated_at / 1000.0, 'unixepoch') || ')'
            || substr(history.detail, instr(history.detail, ':'))
   FROM files f WHERE f.id = CAST(substr(history.detail, 18) AS INTEGER)),
  detail)
WHERE detail LIKE 'same content as #%';
