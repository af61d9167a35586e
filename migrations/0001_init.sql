-- One row per (target, path, generation): a generation is one content of one path, from first sight to its end.
CREATE TABLE files (
  id              INTEGER PRIMARY KEY,
  target          TEXT    NOT NULL,               -- absolute path of the watched directory
  rel_path        TEXT    NOT NULL,               -- path under the target, '/'-separated
  generation      INTEGER NOT NULL,
  size_bytes      INTEGER NOT NULL,
  mtime_ms        REAL    NOT NULL,               -- fs.Stats.mtimeMs: sub-millisecond, compared exactly
  inode           INTEGER NOT NULL,
  sha256          TEXT,                           -- hex, known once a worker has read the file
  state           TEXT    NOT NULL CHECK (state IN ('pending','working','retry','archived','quarantined','gone')),
  attempts        INTEGER NOT NULL DEFAULT 0,     -- claims so far; a claim after the first HEADs before writing
  last_error      TEXT,
  next_attempt_at INTEGER,                        -- ms since epoch, for state 'retry'
  owner           TEXT,                           -- 'pid:<n>' of the process holding a 'working' row
  dirty           INTEGER NOT NULL DEFAULT 0,     -- the path changed while a worker held the row
  duplicate_of    INTEGER REFERENCES files(id),   -- same content as this earlier archived generation
  created_at      INTEGER NOT NULL,
  updated_at      INTEGER NOT NULL,
  UNIQUE (target, rel_path, generation)
);
CREATE INDEX files_queue ON files (state, next_attempt_at, id) WHERE state IN ('pending', 'retry');
CREATE INDEX files_working ON files (target, rel_path) WHERE state = 'working';

-- The S3 objects that prove a generation archived: what S3 answered when it accepted (or already held) the bytes.
CREATE TABLE objects (
  id              INTEGER PRIMARY KEY,
  file_id         INTEGER NOT NULL REFERENCES files(id),
  bucket          TEXT    NOT NULL,
  key             TEXT    NOT NULL,
  sha256          TEXT    NOT NULL,
  size_bytes      INTEGER NOT NULL,
  etag            TEXT,
  version_id      TEXT,
  checksum_sha256 TEXT,                           -- base64, as S3 returned it
  found_by_head   INTEGER NOT NULL DEFAULT 0,     -- an earlier attempt's upload, found instead of writing again
  recorded_at     INTEGER NOT NULL
);
CREATE INDEX objects_file ON objects (file_id);

-- Every state change, so `status PATH` can tell a file's whole story.
CREATE TABLE history (
  id         INTEGER PRIMARY KEY,
  file_id    INTEGER NOT NULL REFERENCES files(id),
  from_state TEXT,
  to_state   TEXT    NOT NULL,
  at         INTEGER NOT NULL,
  detail     TEXT
);
CREATE INDEX history_file ON history (file_id, id);

CREATE TABLE reconcile_runs (
  id           INTEGER PRIMARY KEY,
  reason       TEXT    NOT NULL,
  started_at   INTEGER NOT NULL,
  finished_at  INTEGER,
  files_seen   INTEGER NOT NULL DEFAULT 0,
  files_queued INTEGER NOT NULL DEFAULT 0,
  error        TEXT
);
