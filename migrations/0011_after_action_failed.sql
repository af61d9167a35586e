-- After-archive actions that failed (a move's name taken, EXDEV, EACCES...) are owed still: every pass and every
-- start tries them again, and `status --failed` lists them with their reason. Both read them by this index, a
-- range read whatever the number of actions done over the years.
CREATE INDEX after_actions_failed ON after_actions (settled_at) WHERE state = 'failed';
