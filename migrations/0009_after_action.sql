-- What happens to a source once its archive is verified in S3 and recorded (a target's `after`): delete it, or
-- move it under another directory. The row is written in the same transaction that marks the generation
-- archived, so "archived" and "the action is due" are one fact: a crash between that commit and the unlink or
-- rename leaves the row `due`, and the next start carries it out (only rows whose owner is verifiably gone).
CREATE TABLE after_actions (
  file_id    INTEGER PRIMARY KEY REFERENCES files(id),
  action     TEXT    NOT NULL,                    -- 'delete' or 'move:<absolute directory>'
  state      TEXT    NOT NULL CHECK (state IN ('due', 'done', 'skipped', 'failed')),
  owner      TEXT    NOT NULL,                    -- the process that archived the generation and owes the action
  detail     TEXT,                                -- what was done, or why not
  due_at     INTEGER NOT NULL,
  settled_at INTEGER
);
CREATE INDEX after_actions_due ON after_actions (file_id) WHERE state = 'due';
