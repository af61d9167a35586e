-- A rescan compares a whole directory's listing with the ledger in one query instead of one query per file:
-- the directory part of rel_path ('a/b/' for 'a/b/c.csv', '' at the top), a virtual column with its index.
-- rtrim(x, chars) strips trailing characters found in chars: every character of the last segment, up to '/'.
ALTER TABLE files ADD COLUMN dir TEXT GENERATED ALWAYS AS (rtrim(rel_path, replace(rel_path, '/', ''))) VIRTUAL;
CREATE INDEX files_dir ON files (target, dir, rel_path, generation);
