-- What the running service knows about itself that `status` (another process, maybe read-only) must show:
-- today the watcher's health (directories watched, those that could not be, the last overflow), as JSON.
CREATE TABLE service_state (
  name       TEXT    PRIMARY KEY,
  value      TEXT    NOT NULL,                    -- JSON
  updated_at INTEGER NOT NULL
);
