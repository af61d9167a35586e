-- The inode change time joins a file's identity: clients can restore an mtime (sftp put -p, cp -p, rsync -t),
-- never a ctime. Nanoseconds since the epoch, as the kernel keeps it. NULL on rows from before this migration:
-- the first observation records what it sees instead of treating every upgraded file as new content.
ALTER TABLE files ADD COLUMN ctime_ns INTEGER;

-- The write gate asks "which ETag did we last record at this key?" before every conditional PUT.
CREATE INDEX objects_key ON objects (bucket, key, id);
