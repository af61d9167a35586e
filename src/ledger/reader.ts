import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeCause, SftppushError } from '../errors.js';
import { readMigrations } from './migrations.js';
import { Database } from './sqlite.js';
import { FILE_STATES, type FileState } from './states.js';

/** What a pass looked at. Partial: limited by `--since` or `--target`, so not proof that every file is archived. */
export interface ReconcileScope {
  readonly since: string | null;
  readonly verify: boolean;
  readonly dryRun: boolean;
  readonly targets: readonly string[];
  readonly partial: boolean;
}

/** A finished pass, as status shows it. */
export interface ReconcilePass {
  readonly reason: string;
  readonly finishedAt: string;
  readonly scope: ReconcileScope | null;
  readonly counts: Record<string, number> | null;
}

export type StateCounts = Record<FileState, number>;

export interface StatusSummary {
  /** Generations per state, every target together (DESIGN.md's `status --json`). */
  counts: StateCounts;
  /** Age of the oldest generation not yet archived, quarantined or gone; 0 when there is none. */
  oldestPendingSeconds: number;
  lastReconcile: string | null;
  /** The last successful pass over every file of every target, and the last partial one (--since, --target). */
  lastFullPass: ReconcilePass | null;
  lastPartialPass: ReconcilePass | null;
  /** The last pass that failed (a target missing or unreadable), when it is newer than the last good one. */
  lastFailedPass: { reason: string; finishedAt: string; error: string } | null;
  /**
   * The watcher's health as the running (or last) `watch` recorded it at its last pass, or when a target root
   * was lost or regained since; null before any.
   */
  watch: unknown;
  /** When `watch` recorded it (ISO). */
  watchRecordedAt: string | null;
  /** Generations per state of each target, in target order. */
  targets: { target: string; counts: StateCounts }[];
  /** Generations still to archive (pending, working, retry), and the oldest of them. */
  backlog: { files: number; oldest: { target: string; relPath: string; since: string } | null };
  /** The rows that most recently went to retry, quarantined or gone. */
  lastErrors: FileRow[];
  /** After-archive actions (delete, move) that failed and wait for their retry at the next pass. */
  afterActionsFailed: number;
  /** What the passes skipped and could not archive (unreadable directories, invalid names), as kept now. */
  scanSkips: ScanSkips;
}

/** An after-archive action that failed: the source is kept, and every pass and start tries it again. */
export interface FailedAfterAction {
  target: string;
  relPath: string;
  generation: number;
  /** `delete` or `move:/abs/dir`. */
  action: string;
  /** Why it failed, as the story records it. */
  detail: string;
  /** When the last attempt failed (ISO). */
  failedAt: string;
}

export type ScanSkipKind = 'unreadable-directory' | 'invalid-name' | 'unstatable-file';

/** An entry the passes skipped, as the last pass that walked it left it (migrations/0010_scan_skips.sql). */
export interface ScanSkipRow {
  target: string;
  /** The directory (unreadable, or holding the invalid name), or the file that could not be stat-ed. */
  path: string;
  kind: ScanSkipKind;
  /** The errno name; null for an invalid name. */
  code: string | null;
  /** An invalid name's bytes, hex; null for the other kinds. */
  nameHex: string | null;
  firstSeenAt: string;
  lastSeenAt: string;
}

export interface ScanSkips {
  /** Rows kept per kind (at most SCAN_SKIPS_KEPT per target: the pass records count them all). */
  counts: Record<ScanSkipKind, number>;
  /** The most recently seen first, up to the limit asked for. */
  rows: ScanSkipRow[];
}

export interface FileRow {
  id: number;
  target: string;
  relPath: string;
  generation: number;
  sizeBytes: number;
  mtimeMs: number;
  inode: number;
  /** Nanoseconds since the epoch, as a decimal string (JSON has no 64-bit integers); null before it was kept. */
  ctimeNs: string | null;
  sha256: string | null;
  state: FileState;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: number | null;
  duplicateOf: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface HistoryRow {
  fileId: number;
  fromState: FileState | null;
  toState: FileState;
  at: number;
  detail: string | null;
}

export interface ObjectRow {
  fileId: number;
  /** An archive member's path inside the archive; null for a whole file. */
  member: string | null;
  bucket: string;
  key: string;
  sha256: string;
  sizeBytes: number;
  etag: string | undefined;
  versionId: string | undefined;
  checksumSha256: string | undefined;
  foundByHead: boolean;
  recordedAt: number;
}

export interface FileStory {
  generations: FileRow[];
  history: HistoryRow[];
  objects: ObjectRow[];
}

/** The slice of a better-sqlite3 statement the reader uses. */
export interface ReaderStatement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** The slice of a better-sqlite3 connection the reader uses: reads only. */
export interface ReaderDb {
  prepare(sql: string): ReaderStatement;
  pragma(sql: string, options: { simple: true }): unknown;
  close(): void;
}

export const FILE_COLUMNS = `id, target, rel_path AS relPath, generation, size_bytes AS sizeBytes, mtime_ms AS mtimeMs,
  inode, CAST(ctime_ns AS TEXT) AS ctimeNs, sha256, state, attempts, last_error AS lastError, next_attempt_at AS nextAttemptAt,
  duplicate_of AS duplicateOf, created_at AS createdAt, updated_at AS updatedAt`;

/** The schema that brought counters (file_counts); the one before it is read too, with counts by a full count. */
const COUNTERS_SCHEMA = 8;

/** The schema that brought after_actions; a ledger older than it has none to list. */
const AFTER_ACTIONS_SCHEMA = 9;
/** The schema that brought scan_skips; before it there is nothing to list. */
const SCAN_SKIPS_SCHEMA = 10;

/** How many of the latest failures the summary shows. */
const LAST_ERRORS = 5;

function zeroCounts(): StateCounts {
  return Object.fromEntries(FILE_STATES.map((state) => [state, 0])) as StateCounts;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/**
 * Everything `status` shows, read from the ledger. Every query is an index lookup or a range read (see
 * migrations/0008_status.sql), so it answers in milliseconds whatever the ledger's size. Never writes.
 */
export class LedgerReader {
  private readonly statements = new Map<string, ReaderStatement>();
  private readonly schemaVersion: number;

  constructor(
    private readonly db: ReaderDb,
    private readonly now: () => number,
  ) {
    this.schemaVersion = Number(db.pragma('user_version', { simple: true }));
  }

  /**
   * Opens a ledger read-only, for `status`: it never migrates, never changes the journal mode, never takes a
   * lock a running service could wait for, and works for a user who may only read the ledger and its directory.
   * @throws SftppushError E_LEDGER_MISSING (no file), E_LEDGER_NEWER (written by a newer sftppush),
   *   E_LEDGER_OLDER (older than the schema before this one: the service upgrades it at its next start),
   *   E_LEDGER_UNREADABLE (anything else SQLite refuses, with its reason).
   */
  static open(file: string, options: { migrationsDir: string; now?: () => number }): LedgerReader {
    const resolved = path.resolve(file);
    if (!existsSync(resolved)) {
      throw new SftppushError('E_LEDGER_MISSING', `${resolved}: no ledger here (has the service run yet?)`);
    }
    const latest = readMigrations(options.migrationsDir).length;
    const db = openReadOnly(resolved);
    try {
      const reader = new LedgerReader(db, options.now ?? Date.now);
      checkSchema(resolved, reader.schemaVersion, latest);
      return reader;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * @param configuredTargets the targets the configuration names (when status knows it): those without a row yet
   *   are listed too, with zero counts, so a target that never received a file is seen as such, not as missing.
   */
  status(configuredTargets: readonly string[] = []): StatusSummary {
    const targets = this.targetCounts(configuredTargets);
    const counts = zeroCounts();
    for (const { counts: byState } of targets) for (const state of FILE_STATES) counts[state] += byState[state];
    const oldest = this.stmt(
      `SELECT target, rel_path AS relPath, created_at AS createdAt FROM files
       WHERE state IN ('pending', 'working', 'retry') ORDER BY created_at LIMIT 1`,
    ).get() as { target: string; relPath: string; createdAt: number } | undefined;
    const last = this.stmt(
      `SELECT MAX(finished_at) AS at FROM reconcile_runs WHERE partial = 0 AND finished_at IS NOT NULL AND error IS NULL`,
    ).get() as { at: number | null };
    const watch = this.stmt(`SELECT value, updated_at AS updatedAt FROM service_state WHERE name = 'watch'`).get() as
      | { value: string; updatedAt: number }
      | undefined;
    return {
      counts,
      oldestPendingSeconds: oldest ? Math.max(0, Math.round((this.now() - oldest.createdAt) / 1000)) : 0,
      lastReconcile: last.at === null ? null : iso(last.at),
      lastFullPass: this.lastPass(false),
      lastPartialPass: this.lastPass(true),
      lastFailedPass: this.lastFailedPass(last.at),
      watch: watch ? (JSON.parse(watch.value) as unknown) : null,
      watchRecordedAt: watch ? iso(watch.updatedAt) : null,
      targets,
      backlog: {
        files: counts.pending + counts.working + counts.retry,
        oldest: oldest ? { target: oldest.target, relPath: oldest.relPath, since: iso(oldest.createdAt) } : null,
      },
      lastErrors: this.failures(LAST_ERRORS),
      afterActionsFailed:
        this.schemaVersion < AFTER_ACTIONS_SCHEMA
          ? 0
          : (this.stmt(`SELECT COUNT(*) AS n FROM after_actions WHERE state = 'failed'`).get() as { n: number }).n,
      scanSkips: this.scanSkips(LAST_ERRORS),
    };
  }

  /** After-archive actions that failed, most recent first (a range read of their partial index). */
  failedAfterActions(limit: number): FailedAfterAction[] {
    if (this.schemaVersion < AFTER_ACTIONS_SCHEMA) return [];
    const rows = this.stmt(
      `SELECT f.target, f.rel_path AS relPath, f.generation, a.action, a.detail, a.settled_at AS settledAt
       FROM after_actions a JOIN files f ON f.id = a.file_id WHERE a.state = 'failed' ORDER BY a.settled_at DESC LIMIT ?`,
    ).all(limit) as (Omit<FailedAfterAction, 'failedAt' | 'detail'> & { detail: string | null; settledAt: number })[];
    return rows.map(({ settledAt, detail, ...row }) => ({ ...row, detail: detail ?? 'failed', failedAt: iso(settledAt) }));
  }

  /** What the passes skipped: counts by kind, and up to `limit` rows, the most recently seen first. */
  scanSkips(limit: number): ScanSkips {
    const counts: Record<ScanSkipKind, number> = { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 };
    // A ledger a running older service still uses has no such table: nothing recorded yet.
    if (this.schemaVersion < SCAN_SKIPS_SCHEMA) return { counts, rows: [] };
    for (const row of this.stmt(`SELECT kind, COUNT(*) AS n FROM scan_skips GROUP BY kind`).all() as { kind: ScanSkipKind; n: number }[]) {
      counts[row.kind] = row.n;
    }
    const rows = this.stmt(
      `SELECT target, path, kind, code, NULLIF(name_hex, '') AS nameHex, first_seen_at AS firstSeenAt, last_seen_at AS lastSeenAt
       FROM scan_skips ORDER BY last_seen_at DESC LIMIT ?`,
    ).all(limit) as (Omit<ScanSkipRow, 'firstSeenAt' | 'lastSeenAt'> & { firstSeenAt: number; lastSeenAt: number })[];
    return { counts, rows: rows.map((row) => ({ ...row, firstSeenAt: iso(row.firstSeenAt), lastSeenAt: iso(row.lastSeenAt) })) };
  }

  /** Rows that need an operator's eye: retrying, quarantined or gone, most recently changed first. */
  failures(limit: number): FileRow[] {
    return this.stmt(
      `SELECT ${FILE_COLUMNS} FROM files WHERE state IN ('retry', 'quarantined', 'gone') ORDER BY updated_at DESC LIMIT ?`,
    ).all(limit) as FileRow[];
  }

  /** Every generation, transition and object of a path (matched on any target, or on `target`). */
  story(relPath: string, target?: string): FileStory {
    const generations = this.stmt(
      `SELECT ${FILE_COLUMNS} FROM files WHERE rel_path = ? AND (? IS NULL OR target = ?) ORDER BY target, generation`,
    ).all(relPath, target ?? null, target ?? null) as FileRow[];
    const ids = generations.map((g) => g.id);
    const inList = ids.map(() => '?').join(',') || 'NULL';
    // One path's own rows, sorted: a handful, whatever the ledger's size.
    const history = this.db
      .prepare(
        `SELECT file_id AS fileId, from_state AS fromState, to_state AS toState, at, detail FROM history
         WHERE file_id IN (${inList}) ORDER BY id`,
      )
      .all(...ids) as HistoryRow[];
    const objects = (
      this.db
        .prepare(
          `SELECT file_id AS fileId, bucket, key, sha256, size_bytes AS sizeBytes, etag, version_id AS versionId,
           checksum_sha256 AS checksumSha256, found_by_head AS foundByHead, recorded_at AS recordedAt, member
           FROM objects WHERE file_id IN (${inList}) ORDER BY id`,
        )
        .all(...ids) as (Omit<ObjectRow, 'foundByHead'> & { foundByHead: number })[]
    ).map((o) => ({ ...o, foundByHead: o.foundByHead === 1 }));
    return { generations, history, objects };
  }

  private targetCounts(configuredTargets: readonly string[]): { target: string; counts: StateCounts }[] {
    const sql =
      this.schemaVersion >= COUNTERS_SCHEMA
        ? `SELECT target, state, n FROM file_counts WHERE n <> 0 ORDER BY target, state`
        : // A ledger a running older service still uses: counted the slow way, never migrated from here.
          `SELECT target, state, COUNT(*) AS n FROM files GROUP BY target, state ORDER BY target, state`;
    const byTarget = new Map<string, StateCounts>();
    for (const row of this.stmt(sql).all() as { target: string; state: FileState; n: number }[]) {
      let counts = byTarget.get(row.target);
      if (!counts) byTarget.set(row.target, (counts = zeroCounts()));
      counts[row.state] = row.n;
    }
    for (const target of configuredTargets) if (!byTarget.has(target)) byTarget.set(target, zeroCounts());
    // In target order, as SQLite sorts them (bytes of UTF-8): rows and configured targets interleaved.
    return [...byTarget]
      .sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .map(([target, counts]) => ({ target, counts }));
  }

  private lastFailedPass(after: number | null): StatusSummary['lastFailedPass'] {
    const row = this.stmt(
      `SELECT reason, finished_at AS finishedAt, error FROM reconcile_runs WHERE error IS NOT NULL AND finished_at > ?
       ORDER BY finished_at DESC LIMIT 1`,
    ).get(after ?? 0) as { reason: string; finishedAt: number; error: string } | undefined;
    return row ? { reason: row.reason, finishedAt: iso(row.finishedAt), error: row.error } : null;
  }

  private lastPass(partial: boolean): ReconcilePass | null {
    const row = this.stmt(
      `SELECT reason, finished_at AS finishedAt, scope, counts FROM reconcile_runs
       WHERE partial = ? AND finished_at IS NOT NULL AND error IS NULL ORDER BY finished_at DESC LIMIT 1`,
    ).get(partial ? 1 : 0) as { reason: string; finishedAt: number; scope: string | null; counts: string | null } | undefined;
    if (!row) return null;
    return {
      reason: row.reason,
      finishedAt: iso(row.finishedAt),
      scope: row.scope ? (JSON.parse(row.scope) as ReconcileScope) : null,
      counts: row.counts ? (JSON.parse(row.counts) as Record<string, number>) : null,
    };
  }

  private stmt(sql: string): ReaderStatement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/**
 * A read-only connection whose first read has succeeded, that creates nothing next to the ledger.
 * A WAL ledger in use has its -wal and -shm (every open connection keeps them): SQLite (3.22+) reads through them,
 * even where they are not writable. With no -wal, no connection is open (the last one to close checkpoints and
 * deletes it), so the main file alone is the whole ledger: it is opened `immutable`, with no locks and no -wal
 * or -shm, which a reader in a read-only directory could not create anyway (SQLITE_READONLY_DIRECTORY) and one
 * in a writable directory would leave behind, owned by the wrong user. A service starting meanwhile writes to
 * its new -wal, not to that file, until its first checkpoint, a thousand pages later.
 */
function openReadOnly(file: string): ReaderDb {
  if (existsSync(`${file}-wal`)) {
    try {
      return firstRead(() => new Database(file, { readonly: true, fileMustExist: true, timeout: 5000 }));
    } catch (error) {
      // The service stopped between the check and the read, and took its -wal with it: read as stopped.
      if (existsSync(`${file}-wal`)) throw ledgerUnreadable(file, error);
    }
  }
  try {
    return firstRead(() => new Database(`${pathToFileURL(file).href}?immutable=1`, { readonly: true, timeout: 5000 }));
  } catch (error) {
    throw ledgerUnreadable(file, error);
  }
}

/**
 * Opens and reads once: SQLite refuses a file it may not read (SQLITE_CANTOPEN) when opening, and one that is no
 * ledger (SQLITE_NOTADB) at the first read. @throws what SQLite threw, the connection closed.
 */
function firstRead(open: () => ReaderDb): ReaderDb {
  const db = open();
  try {
    db.pragma('user_version', { simple: true });
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/**
 * What SQLite refused of a ledger file, naming it: SQLite's own message (SQLITE_CANTOPEN: unable to open
 * database file) does not say which file. `doing`: `read` (status) or `open` (the service).
 */
export function ledgerUnreadable(file: string, cause: unknown, doing: 'read' | 'open' = 'read'): SftppushError {
  return new SftppushError('E_LEDGER_UNREADABLE', `${file}: cannot ${doing} the ledger: ${describeCause(cause)}`, { cause });
}

function checkSchema(file: string, version: number, latest: number): void {
  if (version > latest) {
    throw new SftppushError(
      'E_LEDGER_NEWER',
      `${file}: ledger schema version ${version} is newer than this sftppush understands (${latest}); upgrade sftppush`,
    );
  }
  if (version < COUNTERS_SCHEMA - 1) {
    throw new SftppushError(
      'E_LEDGER_OLDER',
      `${file}: ledger schema version ${version} is older than this status reads (${COUNTERS_SCHEMA - 1} or later): ` +
        'start the service once (it upgrades the ledger), or use the sftppush that wrote it',
    );
  }
}
