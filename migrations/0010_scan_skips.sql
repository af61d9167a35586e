-- What a pass had to skip, so `status` can list it instead of "see the log": a directory it could not read (its
-- files are unseen), a name that is not valid UTF-8 (it cannot become an S3 key), a file it could not stat.
-- Each pass replaces the rows of what it walked: a skip seen again is updated, one not seen again (readable
-- again, renamed, deleted) is cleared. At most a bounded number of rows per target are kept (the pass record's
-- counts say how many there were in all), so a tree of a million bad names cannot grow the ledger without bound.
CREATE TABLE scan_skips (
  target        TEXT    NOT NULL,
  path          TEXT    NOT NULL,             -- the directory (unreadable, or holding the bad name), or the file
  name_hex      TEXT    NOT NULL DEFAULT '',  -- a bad name's bytes, hex; '' for the other kinds
  kind          TEXT    NOT NULL CHECK (kind IN ('unreadable-directory', 'invalid-name', 'unstatable-file')),
  code          TEXT,                         -- the errno (EACCES, EIO, ...); null for a bad name
  first_seen_at INTEGER NOT NULL,
  last_seen_at  INTEGER NOT NULL,
  run_id        INTEGER NOT NULL,             -- the pass that saw it last (reconcile_runs.id)
  PRIMARY KEY (target, path, name_hex)
);
-- `status`: the counts by kind and the most recently seen first, each read along an index (no sort).
CREATE INDEX scan_skips_kind ON scan_skips (kind);
CREATE INDEX scan_skips_seen ON scan_skips (last_seen_at);
