// A ledger as years of service leave it, made fast with SQL (recursive CTEs) instead of one observe() per row:
// for the status timing test and `npm run bench:status`. Rows go through the schema's triggers like any other.
import Database from 'better-sqlite3';
import { Ledger } from '../../src/ledger/ledger.js';
import { MIGRATIONS_DIR } from './fixtures.js';

export interface BigLedgerShape {
  /** Rows in `files` (generations). */
  readonly files: number;
  /** Reconcile passes recorded (one per 5 minutes is 105,000 a year). */
  readonly passes: number;
}

export const BIG_TARGETS = ['/srv/sftp/a', '/srv/sftp/b', '/srv/sftp/c', '/srv/sftp/d'] as const;

/** Epoch of the first row; rows are one second apart from there. */
export const BIG_LEDGER_START_MS = Date.parse('2020-01-01T00:00:00Z');

/**
 * Creates (or extends) the ledger at `file`: `files` generations over four targets and 1,000 directories,
 * a history of two transitions each (one for pending rows), one object per archived row, and `passes` reconcile
 * runs. Of every 10,000 rows: 10 pending, 10 retry, 10 quarantined, 50 gone, the rest archived. Row i (from 1) is
 * `d{i % 1000}/f{i}.csv` on target `BIG_TARGETS[i % 4]`.
 */
export function fillBigLedger(file: string, shape: BigLedgerShape): void {
  Ledger.open(file, { migrationsDir: MIGRATIONS_DIR }).close();
  const db = new Database(file);
  try {
    // Built like a restore, not like a service writes: no journal, the indexes' pages in memory (random inserts
    // into a rel_path index of 10M rows otherwise read and write a page each); WAL again once done.
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -4000000');
    db.transaction(() => {
      db.prepare(
        `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < @files)
         INSERT INTO files (target, rel_path, generation, size_bytes, mtime_ms, inode, ctime_ns, sha256, state, attempts,
                            last_error, next_attempt_at, created_at, updated_at)
         SELECT '/srv/sftp/' || char(97 + i % 4), 'd' || (i % 1000) || '/f' || i || '.csv', 1,
                i, @start + i * 1000, i, (@start + i * 1000) * 1000000, printf('%064x', i),
                CASE WHEN i % 10000 < 10 THEN 'pending' WHEN i % 10000 < 20 THEN 'retry' WHEN i % 10000 < 30 THEN 'quarantined'
                     WHEN i % 10000 < 80 THEN 'gone' ELSE 'archived' END,
                1, CASE WHEN i % 10000 BETWEEN 10 AND 79 THEN 'E_TEST: failure of row ' || i END,
                CASE WHEN i % 10000 BETWEEN 10 AND 19 THEN @start + i * 1000 + 60000 END,
                @start + i * 1000, @start + i * 1000 + 500
         FROM seq`,
      ).run({ files: shape.files, start: BIG_LEDGER_START_MS });
      db.exec(
        `INSERT INTO history (file_id, from_state, to_state, at, detail)
           SELECT id, NULL, 'pending', created_at, 'observed ' || size_bytes || ' bytes' FROM files;
         INSERT INTO history (file_id, from_state, to_state, at, detail)
           SELECT id, 'working', state, updated_at, 'uploaded: b/' || rel_path FROM files WHERE state <> 'pending';
         INSERT INTO objects (file_id, bucket, key, sha256, size_bytes, etag, version_id, checksum_sha256, recorded_at)
           SELECT id, 'b', rel_path, sha256, size_bytes, '"' || id || '"', 'v' || id, NULL, updated_at FROM files WHERE state = 'archived';`,
      );
      db.prepare(
        `WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < @passes)
         INSERT INTO reconcile_runs (reason, started_at, finished_at, files_seen, files_queued, error, scope, counts, partial)
         SELECT 'schedule', @start + i * 300000, @start + i * 300000 + 2000, 1000, 0,
                CASE WHEN i % 1000 = 0 THEN 'E_TARGET_MISSING: pass ' || i END, NULL, '{"filesSeen":1000,"filesQueued":0}', i % 7 = 0
         FROM seq`,
      ).run({ passes: shape.passes, start: BIG_LEDGER_START_MS });
    })();
    db.pragma('journal_mode = WAL');
  } finally {
    db.close();
  }
}

/** The relative path of row i of a big ledger. */
export function bigLedgerPath(i: number): string {
  return `d${i % 1000}/f${i}.csv`;
}
