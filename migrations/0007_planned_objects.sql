-- The objects a generation is about to write, reserved before its first write: a plain file reserves its key, an
-- archive one key per member once its validating pass has read them all. A key another path holds (reserved by a
-- live row, or recorded in objects) is a key conflict: the later source is quarantined naming the other, so two
-- sources can never silently write the same key (an archive's member and a plain file, or two archives' members).
CREATE TABLE planned_objects (
  id          INTEGER PRIMARY KEY,
  file_id     INTEGER NOT NULL REFERENCES files(id),
  member      TEXT,                               -- path inside the archive; NULL for the file itself
  bucket      TEXT    NOT NULL,
  key         TEXT    NOT NULL,
  sha256      TEXT    NOT NULL,
  size_bytes  INTEGER NOT NULL,
  UNIQUE (file_id, bucket, key)
);
CREATE INDEX planned_objects_key ON planned_objects (bucket, key);

-- An archive member's object names its member; each is recorded as soon as S3 holds it, so a crash in the middle
-- of a 10,000-member archive resumes at the first member not yet recorded.
ALTER TABLE objects ADD COLUMN member TEXT;
