import type BetterSqlite3 from 'better-sqlite3';
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { errnoCode, LedgerFullError, LedgerReplacedError, SftppushError } from '../errors.js';
import { applyMigrations, readMigrations } from './migrations.js';
import { decideObservation, type FileStat, type LatestGeneration } from './observation.js';
import { FILE_COLUMNS, LedgerReader, ledgerUnreadable, type FileRow, type ReconcileScope } from './reader.js';
import { Database } from './sqlite.js';
import { isTransitionAllowed, type FileState } from './states.js';

export type ObserveOutcome = 'queued' | 'updated' | 'dirty' | 'unchanged';

/**
 * A claim as the worker holds it: every ledger write a worker makes names its claim, and succeeds only
 * while the row is still `working` under that owner (LedgerConflictError otherwise).
 */
export interface ClaimRef {
  readonly id: number;
  readonly owner: string;
}

/** A generation a worker has claimed: it owns the row until it reports an outcome. */
export interface ClaimedFile extends ClaimRef {
  readonly target: string;
  readonly relPath: string;
  readonly generation: number;
  /** Claims including this one: above 1, an earlier attempt may already have written the object. */
  readonly attempts: number;
}

/** The object the ledger last recorded at a key (any generation, any path): what a conditional write expects. */
export interface RecordedObject {
  readonly etag: string | null;
  readonly sha256: string;
}

/** How an after-archive action ended: carried out, not needed or not allowed (see planAfterAction), or an error. */
export type AfterOutcome = 'done' | 'skipped' | 'failed';

/** An after-archive action a stopped process left due, or one that failed, taken over by this one. */
export interface DueAfterAction {
  readonly fileId: number;
  /** As formatAfterAction wrote it: `delete` or `move:/abs/dir`. */
  readonly action: string;
  /** This process, which now owes it. */
  readonly owner: string;
  /** The stopped process that archived the generation, or the one whose attempt failed. */
  readonly previousOwner: string;
  /** Why the last attempt failed (its recorded detail), when this is a retry of a failed action. */
  readonly previousFailure: string | undefined;
  readonly dueAt: number;
  readonly target: string;
  readonly relPath: string;
  /** The identity of the bytes archived (the stat recorded with the archive). */
  readonly hashed: FileStat;
}

/** An object an archived generation's proof holds, as `reconcile --verify` checks it against S3. */
export interface ArchivedKey {
  /** The path's latest (archived) generation: what is reopened when the object is missing. */
  readonly fileId: number;
  readonly relPath: string;
  readonly key: string;
  /** The member of an archive the object holds; null for a whole file. */
  readonly member: string | null;
  readonly sha256: string;
  readonly sizeBytes: number;
  /** The ETag S3 answered when it took (or already held) the object. */
  readonly etag: string | null;
}

/** What S3 answered when it accepted (or, found by HEAD, already held) an object. */
export interface ArchivedObject {
  readonly bucket: string;
  readonly key: string;
  readonly sha256: string;
  readonly sizeBytes: number;
  readonly etag: string | undefined;
  readonly versionId: string | undefined;
  readonly checksumSha256: string | undefined;
  /** S3 already held this content: an earlier attempt's write (or a lost ledger's), not written again. */
  readonly foundByHead: boolean;
  /** How it was found: a HEAD before writing, or a conditional write's failed precondition (412) and its HEAD. */
  readonly foundBy?: 'head' | 'precondition' | undefined;
}

export type ArchiveProof =
  | { readonly kind: 'uploaded'; readonly objects: readonly ArchivedObject[] }
  | { readonly kind: 'duplicate'; readonly duplicateOf: number }
  /** An archive's members, each already recorded by recordObject as S3 took it. */
  | { readonly kind: 'members'; readonly count: number; readonly foundByHead: number };

/** An object recorded for a generation, as a resumed or changed archive sees it. */
export interface RecordedMember {
  readonly id: number;
  readonly bucket: string;
  readonly key: string;
  readonly sha256: string;
  readonly versionId: string | null;
  /** Found in S3 rather than written by us: never ours to withdraw. */
  readonly foundByHead: boolean;
}

/** An object a generation is about to write (planned_objects): its key reserved against every other path. */
export interface PlannedObject {
  /** Path inside the archive; undefined for the file itself (a plain file, or an archive kept whole). */
  readonly member: string | undefined;
  readonly bucket: string;
  readonly key: string;
  readonly sha256: string;
  readonly sizeBytes: number;
}

/** Another path that already holds a key: a key conflict. */
export interface KeyHolder {
  readonly key: string;
  readonly target: string;
  readonly relPath: string;
}

/** An entry a scan could not archive and skipped (reconcile/scanner.ts): what `status` lists. */
export interface ScanSkip {
  /** unreadable-directory: `relPath` is the directory; invalid-name: the directory holding it; unstatable-file: the file. */
  readonly kind: 'unreadable-directory' | 'invalid-name' | 'unstatable-file';
  readonly relPath: string;
  /** The errno name (EACCES, EIO, ENAMETOOLONG); absent for an invalid name. */
  readonly code?: string | undefined;
  /** An invalid name's bytes, as hex. */
  readonly nameHex?: string | undefined;
}

/** What a pass counted; recorded whole (JSON), with files_seen and files_queued also in their columns. */
export interface ReconcileTally {
  readonly filesSeen: number;
  readonly filesQueued: number;
}

/**
 * A row was not in the state (or held by the owner) the caller believed. Since rows are recovered only
 * from verifiably dead owners, this means a defect or an operator's hand in the ledger, never a normal race.
 */
export class LedgerConflictError extends SftppushError {
  constructor(id: number, expected: FileState, to: FileState, owner?: string) {
    super(
      'E_LEDGER_CONFLICT',
      `file #${id}: expected state ${expected}${owner === undefined ? '' : ` held by ${owner}`} before moving to ${to}`,
    );
  }
}

/** The history line of an archive: whether S3 accepted a write, or already held the content and how we knew. */
function describeProof(objects: readonly ArchivedObject[]): string {
  const found = objects.filter((o) => o.foundByHead);
  if (found.length === 0) return 'uploaded';
  return `found in S3 ${found.some((o) => o.foundBy === 'precondition') ? 'after a 412' : 'by HEAD'}, not written again`;
}

/** The longest a row waits when the caller does not say: the default retry backoff cap (upload.max_backoff_seconds). */
const DEFAULT_MAX_WAIT_MS = 900_000;

/**
 * The first string after every key that starts with `prefix`, or null for the empty prefix (every key).
 * The last character's code point plus one: UTF-8 byte order, which SQLite compares, is code point order.
 */
function prefixEnd(prefix: string): string | null {
  if (prefix === '') return null;
  const chars = Array.from(prefix);
  const last = chars.pop()!.codePointAt(0)!;
  return chars.join('') + String.fromCodePoint(last + 1);
}

/** A work waiting for the next group commit (Ledger.grouped). */
interface GroupedWork {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** A multipart upload a process opened and has not closed, as the ledger keeps it (see s3/multipart.ts). */
export interface RecordedUpload {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
  /** The process that opened it (ledger/ownership.ts): only a gone owner's uploads are aborted by another. */
  readonly owner: string;
}

/** service_state names of open multipart uploads: one row each, removed when the upload is closed. */
const OPEN_UPLOAD = 'multipart-upload:';

/**
 * The truth about every file: the only module that touches SQLite. Every state change goes through
 * `move()`, which checks the transition, guards against a concurrent change and writes the history row.
 * Methods are synchronous: better-sqlite3 runs each transaction to completion before any other JS runs,
 * and SQLite's locks (busy timeout below) order this process against a concurrent `reconcile` command.
 * `grouped()` lets writes made in the same turn of the event loop share one commit.
 */
export class Ledger {
  private readonly statements = new Map<string, BetterSqlite3.Statement>();
  /** One transaction function for every write (better-sqlite3 builds four wrappers per transaction() call). */
  private readonly transaction: BetterSqlite3.Transaction<(fn: () => unknown) => unknown>;
  /** Works waiting for the next group commit (grouped()). */
  private group: GroupedWork[] = [];
  /** What `status` reads, on this connection (a separate, read-only one: LedgerReader.open). */
  readonly reader: LedgerReader;

  private constructor(
    private readonly db: BetterSqlite3.Database,
    private readonly now: () => number,
    private readonly maxWaitMs: number,
    private readonly file: string,
    /** The opened file's identity: a file at the path with another is not this ledger. */
    private readonly identity: { readonly dev: number; readonly ino: number },
  ) {
    this.reader = new LedgerReader(db, now);
    this.transaction = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens (creating if needed) the ledger file and brings its schema up to date.
   * @param options.maxWaitMs the longest any row is ever told to wait (the retry backoff's cap): a row due
   *   later than that from now was scheduled by a clock that has since jumped back, and is due now.
   */
  static open(file: string, options: { migrationsDir: string; now?: () => number; maxWaitMs?: number }): Ledger {
    mkdirSync(path.dirname(file), { recursive: true });
    let db: BetterSqlite3.Database;
    try {
      db = new Database(file, { timeout: 10_000 });
    } catch (error) {
      // EACCES, a directory at the path: SQLite's message alone (SQLITE_CANTOPEN) names no file.
      throw ledgerUnreadable(file, error, 'open');
    }
    try {
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode survives a process crash (kill -9); a power loss may lose the last commits, and
      // exactly-once needs no fsync per file for that: a lost observe is found again by the next scan, and a
      // lost claim or "archived" leaves the row to be archived again through the write gate, whose
      // conditional write (or HEAD first) finds the version that landed instead of writing it twice.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      applyMigrations(db, readMigrations(options.migrationsDir), file);
    } catch (error) {
      db.close();
      throw error;
    }
    const { dev, ino } = statSync(file);
    return new Ledger(db, options.now ?? Date.now, options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS, file, { dev, ino });
  }

  /**
   * Checks that the file at the ledger's path is still the one this process opened. SQLite keeps writing
   * to an open file after it is deleted or renamed away: without this, a service would record into a file
   * nobody reads (and a new ledger at the path would not know what was archived).
   * @throws LedgerReplacedError when the path is gone or holds another file.
   */
  assertSameFile(): void {
    let now;
    try {
      now = statSync(this.file);
    } catch {
      throw new LedgerReplacedError(this.file, 'was deleted');
    }
    if (now.dev !== this.identity.dev || now.ino !== this.identity.ino) throw new LedgerReplacedError(this.file, 'was replaced by another file');
  }

  /** Whether the database is open (until close(); /healthz reports it). */
  get isOpen(): boolean {
    return this.db.open;
  }

  /** Commits what waits for a group commit, then closes the database. */
  close(): void {
    this.commitGroup();
    if (this.db.open) this.db.close();
  }

  /**
   * Runs `work` (calls of this ledger's write methods) in a group commit: in one transaction with every other
   * work queued in the same turn of the event loop, each in a savepoint of its own. 16 workers finishing
   * together then cost one commit (one append to the WAL) instead of 16. The promise settles only once that
   * transaction has committed, so whatever its caller does next (an S3 write after a key is reserved, an
   * after-action after "archived") still follows its record in the ledger.
   * @returns work's result. @throws work's own error (its writes alone are rolled back), or the commit's
   *   (LedgerFullError, every work of the group rolled back).
   */
  grouped<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.group.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (this.group.length === 1) setImmediate(() => this.commitGroup());
    });
  }

  private commitGroup(): void {
    const group = this.group;
    this.group = [];
    if (group.length === 0) return;
    let outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[];
    try {
      outcomes = this.write(() =>
        group.map(({ work }) => {
          try {
            // Inside a transaction, better-sqlite3 runs a transaction function as a savepoint.
            return { ok: true as const, value: this.transaction(work) };
          } catch (error) {
            return { ok: false as const, error };
          }
        }),
      );
    } catch (error) {
      for (const { reject } of group) reject(error);
      return;
    }
    outcomes.forEach((outcome, i) => (outcome.ok ? group[i]!.resolve(outcome.value) : group[i]!.reject(outcome.error)));
  }

  /**
   * Records what the filesystem says about a path. Idempotent: the same stat twice changes nothing.
   * This is the only way work enters the ledger; watcher and scanner both call it.
   */
  observe(target: string, relPath: string, stat: FileStat): ObserveOutcome {
    // Most observations (every file of every rescan) change nothing: decide on a plain read first, and take
    // the write lock only to act, deciding again inside it.
    if (decideObservation(this.latestGeneration(target, relPath), stat).kind === 'unchanged') return 'unchanged';
    return this.write((): ObserveOutcome => {
      const latest = this.latestGeneration(target, relPath);
      const decision = decideObservation(latest, stat);
      const now = this.now();
      switch (decision.kind) {
        case 'unchanged':
          return 'unchanged';
        case 'insert': {
          const { lastInsertRowid } = this.stmt(
            `INSERT INTO files (target, rel_path, generation, size_bytes, mtime_ms, inode, ctime_ns, state, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)`,
          ).run(target, relPath, decision.generation, stat.sizeBytes, stat.mtimeMs, stat.inode, stat.ctimeNs, now, now);
          this.addHistory(Number(lastInsertRowid), null, 'pending', `observed ${stat.sizeBytes} bytes`);
          return 'queued';
        }
        case 'update-stat':
          // A fresh close of a file that was waiting out a requeue delay: take it now.
          this.setStat(latest!.id, stat);
          this.stmt(`UPDATE files SET next_attempt_at = NULL WHERE id = ?`).run(latest!.id);
          return 'updated';
        case 'requeue':
          this.setStat(latest!.id, stat);
          // attempts is kept: an earlier attempt's PUT may have landed even though it reported failure,
          // so the next claim must still HEAD before writing.
          this.move(latest!.id, 'retry', 'pending', 'changed while waiting to retry', 'next_attempt_at = NULL');
          return 'queued';
        case 'mark-dirty':
          this.stmt(`UPDATE files SET dirty = 1 WHERE id = ?`).run(latest!.id);
          return 'dirty';
        case 'adopt-ctime':
          this.stmt(`UPDATE files SET ctime_ns = ? WHERE id = ?`).run(stat.ctimeNs, latest!.id);
          return 'unchanged';
      }
    });
  }

  /**
   * What observe() would answer, without writing anything (a plain read): for `reconcile --dry-run`, and so
   * a scan can tell a file the ledger already holds from one it must wait for.
   */
  wouldObserve(target: string, relPath: string, stat: FileStat): ObserveOutcome {
    switch (decideObservation(this.latestGeneration(target, relPath), stat).kind) {
      case 'insert':
      case 'requeue':
        return 'queued';
      case 'update-stat':
        return 'updated';
      case 'mark-dirty':
        return 'dirty';
      case 'adopt-ctime':
      case 'unchanged':
        return 'unchanged';
    }
  }

  /**
   * The latest generation of every path directly in one directory of a target (`relDir` '' for the top), in
   * one index range read: a rescan compares a directory's listing with it instead of querying file by file.
   */
  latestInDirectory(target: string, relDir: string): Map<string, LatestGeneration> {
    // A rescan reads every row of the tree through here. Rows as arrays, not objects (naming each column of
    // each row was half the cost), in index order: generations ascending, so the last row of a path is its
    // latest and no sort is needed (EXPLAIN QUERY PLAN: SEARCH files USING INDEX files_dir, no temp b-tree).
    const rows = this.stmt(
      `SELECT rel_path, id, generation, state, size_bytes, mtime_ms, inode, CAST(ctime_ns AS TEXT)
       FROM files WHERE target = ? AND dir = ? ORDER BY rel_path, generation`,
    )
      .raw(true)
      .all(target, relDir === '' ? '' : `${relDir}/`) as [string, number, number, FileState, number, number, number, string | null][];
    const latest = new Map<string, LatestGeneration>();
    for (const [relPath, id, generation, state, sizeBytes, mtimeMs, inode, ctimeNs] of rows) {
      latest.set(relPath, { id, generation, state, sizeBytes, mtimeMs, inode, ctimeNs: ctimeNs === null ? null : BigInt(ctimeNs) });
    }
    return latest;
  }

  /**
   * Claims the next row a worker should process: a retry whose backoff has passed, else the oldest pending.
   * The claim counts an attempt and records the owner, so a crash leaves evidence to recover from.
   */
  claimNext(owner: string): ClaimedFile | undefined {
    return this.claimBatch(owner, 1)[0];
  }

  /**
   * Claims up to `max` claimable rows (due retries first, then pending, oldest first) in one transaction.
   * @returns the claimed rows, `working` and owned by `owner`; empty when nothing is claimable.
   */
  claimBatch(owner: string, max: number): ClaimedFile[] {
    return this.write((): ClaimedFile[] => {
      const due = { ...this.dueWindow(), max };
      const retries = this.stmt(
        `SELECT id, state FROM files WHERE state = 'retry' AND (next_attempt_at <= @now OR next_attempt_at > @latest)
         ORDER BY next_attempt_at, id LIMIT @max`,
      ).all(due) as { id: number; state: FileState }[];
      const pending =
        retries.length < max
          ? (this.stmt(
              `SELECT id, state FROM files WHERE state = 'pending'
               AND (next_attempt_at IS NULL OR next_attempt_at <= @now OR next_attempt_at > @latest) ORDER BY id LIMIT @max`,
            ).all({ ...due, max: max - retries.length }) as { id: number; state: FileState }[])
          : [];
      return [...retries, ...pending].map((row) => {
        this.move(row.id, row.state, 'working', `claimed by ${owner}`, 'attempts = attempts + 1, owner = @claimant, dirty = 0', {
          claimant: owner,
        });
        return this.stmt(`SELECT id, owner, target, rel_path AS relPath, generation, attempts FROM files WHERE id = ?`).get(row.id) as ClaimedFile;
      });
    });
  }

  /**
   * Marks a claimed row archived with the proof that S3 holds its content.
   * @returns whether the path changed while the worker held it (the caller re-observes it).
   */
  markArchived(claim: ClaimRef, stat: FileStat, sha256: string, proof: ArchiveProof, afterAction?: string): { dirty: boolean } {
    const { id } = claim;
    return this.write(() => {
      const now = this.now();
      const { dirty } = this.stmt(`SELECT dirty FROM files WHERE id = ?`).get(id) as { dirty: number };
      // One UPDATE of the row: its state, its hash and the stat hashed (each index of files is touched once).
      const assignments = `sha256 = @sha256, owner = NULL, last_error = NULL, ${STAT_ASSIGNMENTS}`;
      const params = { sha256, ...statParams(stat) };
      if (proof.kind === 'duplicate') {
        this.move(id, 'working', 'archived', `${this.describeOriginal(proof.duplicateOf)}: not uploaded again`,
          `${assignments}, duplicate_of = @duplicateOf`, { ...params, duplicateOf: proof.duplicateOf }, claim.owner);
      } else if (proof.kind === 'members') {
        const found = proof.foundByHead > 0 ? ` (${proof.foundByHead} already in S3, found by HEAD)` : '';
        this.move(id, 'working', 'archived', `${proof.count} members stored${found}`, assignments, params, claim.owner);
      } else {
        const how = describeProof(proof.objects);
        const keys = proof.objects.map((o) => `${o.bucket}/${o.key}`).join(', ');
        this.move(id, 'working', 'archived', `${how}: ${keys}`, assignments, params, claim.owner);
        for (const object of proof.objects) this.insertObject(id, object, now);
      }
      // Due in the same commit as "archived": a crash before the unlink or rename leaves it here for the next start.
      if (afterAction !== undefined) {
        this.stmt(`INSERT INTO after_actions (file_id, action, state, owner, due_at) VALUES (?, ?, 'due', ?, ?)`).run(
          id,
          afterAction,
          claim.owner,
          now,
        );
      }
      return { dirty: dirty === 1 };
    });
  }

  /** A duplicate's original as an operator knows it: its generation and when it was archived, not its row id. */
  private describeOriginal(originalId: number): string {
    const original = this.stmt(`SELECT generation, updated_at AS archivedAt FROM files WHERE id = ?`).get(originalId) as
      | { generation: number; archivedAt: number }
      | undefined;
    if (!original) throw new SftppushError('E_LEDGER_NO_ROW', `the original of a duplicate is not in the ledger (row ${originalId})`);
    return `same content as generation ${original.generation} (archived at ${new Date(original.archivedAt).toISOString()})`;
  }

  /**
   * Takes over the after-archive actions owed and not in hand: those left due by an owner verifiably gone (a
   * crash between the archive's commit and the unlink or rename), and those that failed (a taken name, EXDEV,
   * EACCES: the operator may have fixed it since). They become `owner`'s, due, to carry out now. Called when a
   * process starts and after every pass; a live process's due actions (it is carrying them out) are left alone,
   * and two processes never take the same one (one transaction).
   */
  adoptDueAfterActions(owner: string, isOwnerAlive: (owner: string) => boolean): DueAfterAction[] {
    return this.write(() => {
      // Two partial-index reads (due, failed), never a scan of the actions done over the years.
      const select = (state: 'due' | 'failed') =>
        this.stmt(
          `SELECT a.file_id AS fileId, a.action, a.owner, a.state, a.detail, a.due_at AS dueAt, f.target, f.rel_path AS relPath,
           f.size_bytes AS sizeBytes, f.mtime_ms AS mtimeMs, f.inode, CAST(f.ctime_ns AS TEXT) AS ctimeNs
           FROM after_actions a JOIN files f ON f.id = a.file_id WHERE a.state = '${state}' ORDER BY a.file_id`,
        ).all() as (Omit<DueAfterAction, 'hashed' | 'previousOwner' | 'previousFailure'> & { owner: string; state: 'due' | 'failed'; detail: string | null } & Omit<FileStat, 'ctimeNs'> & { ctimeNs: string })[];
      const adopted = [
        ...select('due').filter((row) => row.owner !== owner && !isOwnerAlive(row.owner)),
        ...select('failed'),
      ];
      const take = this.stmt(
        `UPDATE after_actions SET owner = ?, state = 'due', settled_at = NULL WHERE file_id = ? AND state = ? AND owner = ?`,
      );
      for (const row of adopted) take.run(owner, row.fileId, row.state, row.owner);
      return adopted.map(({ fileId, action, owner: previousOwner, state, detail, dueAt, target, relPath, sizeBytes, mtimeMs, inode, ctimeNs }) => ({
        fileId,
        action,
        owner,
        previousOwner,
        previousFailure: state === 'failed' ? (detail ?? 'failed') : undefined,
        dueAt,
        target,
        relPath,
        hashed: { sizeBytes, mtimeMs, inode, ctimeNs: BigInt(ctimeNs) },
      }));
    });
  }

  /**
   * Records how a due after-archive action ended, as a step of the file's story (a history row). Only the
   * owner of a due action may settle it. A retry that fails again for the same reason (`detail` unchanged)
   * adds no history row: a name taken for a month is one step of the story, not one per pass.
   * @returns false (nothing written) when it was not due under `owner`.
   */
  settleAfterAction(fileId: number, owner: string, outcome: AfterOutcome, detail: string): boolean {
    return this.write(() => {
      const before = this.stmt(`SELECT detail FROM after_actions WHERE file_id = ? AND state = 'due' AND owner = ?`).get(fileId, owner) as
        | { detail: string | null }
        | undefined;
      const { changes } = this.stmt(
        `UPDATE after_actions SET state = ?, detail = ?, settled_at = ? WHERE file_id = ? AND state = 'due' AND owner = ?`,
      ).run(outcome, detail, this.now(), fileId, owner);
      const repeated = outcome === 'failed' && before?.detail === detail;
      if (changes === 1 && !repeated) this.addHistory(fileId, 'archived', 'archived', `after: ${detail}`);
      return changes === 1;
    });
  }

  /**
   * The file changed under the worker: start the same generation over with what is on disk now, not before
   * `notBefore` (a writer still appending would otherwise have the file re-read in a tight loop; its close
   * event clears the wait).
   */
  requeue(claim: ClaimRef, reason: string, notBefore: number): void {
    this.release(claim, 'pending', reason, notBefore);
  }

  /** A transient failure: try again at `nextAttemptAt`, never give up silently. */
  scheduleRetry(claim: ClaimRef, error: string, nextAttemptAt: number): void {
    this.release(claim, 'retry', error, nextAttemptAt);
  }

  /** The file vanished before it could be archived. */
  markGone(claim: ClaimRef, reason: string): void {
    this.release(claim, 'gone', reason);
  }

  /**
   * Bad input that retrying cannot fix: the source stays where it is, the reason goes to `status`, and the
   * copy of its original bytes under the quarantine prefix, when one was stored, to the row's objects.
   */
  markQuarantined(claim: ClaimRef, reason: string, original?: ArchivedObject, stat?: FileStat): void {
    this.write(() => {
      this.move(claim.id, 'working', 'quarantined', reason, 'owner = NULL, last_error = @reason, next_attempt_at = NULL', {
        reason,
      }, claim.owner);
      if (original) this.insertObject(claim.id, original, this.now());
      // The stat of the bytes judged: the next scan sees them as they are, not as a new generation to judge again.
      if (stat) this.setStat(claim.id, stat);
    });
  }

  /**
   * Reserves the keys a claimed generation is about to write, replacing what it reserved before (an earlier
   * attempt saw other content), unless another path holds one of them: reserved by a row that may still
   * write it (not gone or quarantined), or recorded in objects (S3 has it).
   * @returns the first holder found (nothing is reserved then), or undefined once all are reserved.
   * @throws LedgerConflictError when the row is no longer this claim's.
   */
  reserveKeys(claim: ClaimedFile, planned: readonly PlannedObject[]): KeyHolder | undefined {
    return this.write((): KeyHolder | undefined => {
      this.assertHeld(claim);
      for (const object of planned) {
        const holder = this.keyHolder(claim, object.bucket, object.key);
        if (holder) return holder;
      }
      this.stmt(`DELETE FROM planned_objects WHERE file_id = ?`).run(claim.id);
      const insert = this.stmt(
        `INSERT INTO planned_objects (file_id, member, bucket, key, sha256, size_bytes) VALUES (?, ?, ?, ?, ?, ?)`,
      );
      for (const object of planned) {
        insert.run(claim.id, object.member ?? null, object.bucket, object.key, object.sha256, object.sizeBytes);
      }
      return undefined;
    });
  }

  private keyHolder(claim: ClaimedFile, bucket: string, key: string): KeyHolder | undefined {
    const other = `(f.target <> @target OR f.rel_path <> @relPath)`;
    const params = { bucket, key, target: claim.target, relPath: claim.relPath };
    return (
      (this.stmt(
        `SELECT p.key, f.target, f.rel_path AS relPath FROM planned_objects p JOIN files f ON f.id = p.file_id
         WHERE p.bucket = @bucket AND p.key = @key AND ${other} AND f.state NOT IN ('gone', 'quarantined') LIMIT 1`,
      ).get(params) as KeyHolder | undefined) ??
      (this.stmt(
        `SELECT o.key, f.target, f.rel_path AS relPath FROM objects o JOIN files f ON f.id = o.file_id
         WHERE o.bucket = @bucket AND o.key = @key AND ${other} LIMIT 1`,
      ).get(params) as KeyHolder | undefined)
    );
  }

  /**
   * Records one object of a claimed generation as soon as S3 holds it (an archive's member): a crash after
   * this resumes with the next member, never writes this one again.
   * @throws LedgerConflictError when the row is no longer this claim's.
   */
  recordObject(claim: ClaimRef, object: ArchivedObject, member: string | undefined): void {
    this.write(() => {
      this.assertHeld(claim);
      this.insertObject(claim.id, object, this.now(), member);
    });
  }

  /** The objects recorded for a generation so far, by key: what a resumed archive need not write again. */
  recordedObjects(fileId: number): Map<string, RecordedMember> {
    const rows = this.stmt(
      `SELECT id, bucket, key, sha256, version_id AS versionId, found_by_head AS foundByHead FROM objects WHERE file_id = ? ORDER BY id`,
    ).all(fileId) as (Omit<RecordedMember, 'foundByHead'> & { foundByHead: number })[];
    // By key, the last recorded wins: an earlier attempt's object at the same key was other content.
    return new Map(rows.map((row) => [row.key, { ...row, foundByHead: row.foundByHead === 1 }]));
  }

  /**
   * Forgets objects of a claimed generation that S3 no longer holds for it (withdrawn: its content changed
   * before every member was stored), with a history note. @throws LedgerConflictError when not this claim's.
   */
  discardObjects(claim: ClaimRef, objects: readonly RecordedMember[], reason: string): void {
    if (objects.length === 0) return;
    this.write(() => {
      this.assertHeld(claim);
      const remove = this.stmt(`DELETE FROM objects WHERE id = ? AND file_id = ?`);
      for (const object of objects) remove.run(object.id, claim.id);
      this.addHistory(claim.id, 'working', 'working', `${objects.length} objects withdrawn: ${reason}`);
    });
  }

  private assertHeld(claim: ClaimRef): void {
    const row = this.stmt(`SELECT state, owner FROM files WHERE id = ?`).get(claim.id) as
      | { state: FileState; owner: string | null }
      | undefined;
    if (row?.state !== 'working' || row.owner !== claim.owner) {
      throw new LedgerConflictError(claim.id, 'working', 'working', claim.owner);
    }
  }

  /**
   * Lets go of a claimed row without archiving it: the reason goes to `last_error`, and when to look again,
   * if ever. @throws LedgerConflictError when the row is no longer this claim's.
   */
  private release(claim: ClaimRef, to: FileState, reason: string, nextAttemptAt: number | null = null): void {
    this.write(() =>
      this.move(claim.id, 'working', to, reason, 'owner = NULL, last_error = @reason, next_attempt_at = @nextAttemptAt', {
        reason,
        nextAttemptAt,
      }, claim.owner),
    );
  }

  /**
   * Returns rows left `working` by processes that no longer run (a crash, kill -9) to `pending`.
   * Called once when a process starts, before its workers claim anything; never by a scan. A row held by a
   * live process (a concurrent `reconcile`, or this very process) is left alone: `isOwnerAlive` must answer
   * true whenever it cannot prove the owner gone.
   */
  recoverAbandoned(isOwnerAlive: (owner: string) => boolean): number {
    return this.write(() => {
      const rows = this.stmt(`SELECT id, owner FROM files WHERE state = 'working'`).all() as {
        id: number;
        owner: string | null;
      }[];
      const abandoned = rows.filter((row) => row.owner === null || !isOwnerAlive(row.owner));
      for (const row of abandoned) {
        this.move(row.id, 'working', 'pending', `recovered after ${row.owner ?? 'unknown owner'} stopped`, 'owner = NULL');
      }
      return abandoned.length;
    });
  }

  /**
   * The object last recorded at a key, whichever generation or path wrote it: a conditional write expects
   * S3's latest version to be this one (If-Match its ETag), or, when there is none, no object at all.
   */
  lastObjectAt(bucket: string, key: string): RecordedObject | undefined {
    return this.stmt(`SELECT etag, sha256 FROM objects WHERE bucket = ? AND key = ? ORDER BY id DESC LIMIT 1`).get(
      bucket,
      key,
    ) as RecordedObject | undefined;
  }

  /**
   * The objects that prove the archived latest generation of every path of a target (mtime at or after
   * `sinceMs`): a plain file's object, each member of an archive, a kept original; a duplicate's are its
   * original generation's. Only the last object the path recorded at each key (another path's object recorded
   * later at the key, as quarantined originals were before their keys were reserved, must not hide it: S3's
   * latest version there is then foreign, which is what verify is for), and only keys that start with `prefix`
   * (the target's, or a subtree's). In key order (UTF-8 byte order, as S3 lists), a page at a time along the
   * objects (bucket, key) index: memory does not grow with the ledger.
   */
  *archivedObjectsInScope(target: string, bucket: string, prefix: string, sinceMs: number, pageSize = 1000): Generator<ArchivedKey> {
    // Read a page at a time (keyset on key), never holding a statement open across the caller's awaits:
    // the worker pool shares this connection, and SQLite refuses a query while another one is mid-iteration.
    const end = prefixEnd(prefix);
    for (let after: string | null = null; ; ) {
      const page = this.stmt(
        `SELECT l.id AS fileId, l.rel_path AS relPath, o.key, o.member, o.sha256, o.size_bytes AS sizeBytes, o.etag
         FROM objects o
         JOIN files f ON f.id = o.file_id
         JOIN files l ON l.target = f.target AND l.rel_path = f.rel_path
           AND l.generation = (SELECT MAX(g.generation) FROM files g WHERE g.target = f.target AND g.rel_path = f.rel_path)
         WHERE o.bucket = @bucket AND o.key >= @prefix AND (@end IS NULL OR o.key < @end) AND (@after IS NULL OR o.key > @after)
           AND f.target = @target
           AND NOT EXISTS (SELECT 1 FROM objects x JOIN files xf ON xf.id = x.file_id
                           WHERE x.bucket = o.bucket AND x.key = o.key AND x.id > o.id
                             AND xf.target = f.target AND xf.rel_path = f.rel_path)
           AND l.state = 'archived' AND (l.id = f.id OR l.duplicate_of = f.id) AND l.mtime_ms >= @sinceMs
         ORDER BY o.key LIMIT @pageSize`,
      ).all({ bucket, prefix, end, after, target, sinceMs, pageSize }) as ArchivedKey[];
      yield* page;
      if (page.length < pageSize) return;
      after = page.at(-1)!.key;
    }
  }

  /**
   * Starts an archived path over as a new pending generation with the same stat: `reconcile --verify` found
   * its object missing from S3 or replaced by other content. The worker's write gate then restores it.
   */
  reopen(fileId: number, reason: string): boolean {
    return this.write(() => {
      const now = this.now();
      const { lastInsertRowid, changes } = this.stmt(
        `INSERT INTO files (target, rel_path, generation, size_bytes, mtime_ms, inode, ctime_ns, state, created_at, updated_at)
         SELECT target, rel_path, generation + 1, size_bytes, mtime_ms, inode, ctime_ns, 'pending', ?, ? FROM files
         WHERE id = ? AND state = 'archived'
           AND NOT EXISTS (SELECT 1 FROM files n WHERE n.target = files.target AND n.rel_path = files.rel_path
                           AND n.generation > files.generation)`,
      ).run(now, now, fileId);
      // A newer generation appeared meanwhile (the watcher saw new content): it will be archived anyway.
      if (changes === 1) this.addHistory(Number(lastInsertRowid), null, 'pending', reason);
      return changes === 1;
    });
  }

  /**
   * The latest generation of every path in these subtrees (a target's directory, relDir '' for all of it),
   * with mtime at or after `sinceMs`, that is not archived: what a one-shot `reconcile` reports (and exits 1
   * for) once it has drained what it could.
   */
  unfinishedInScope(subtrees: readonly ScopeSubtree[], sinceMs: number, limit = 1000): FileRow[] {
    const scope = latestInScope(subtrees, sinceMs);
    return this.db
      .prepare(`SELECT ${FILE_COLUMNS} FROM ${UNFINISHED_ROWS} WHERE ${scope.where} ORDER BY f.target, f.rel_path LIMIT ?`)
      .all(...scope.params, limit) as FileRow[];
  }

  /** How many latest generations in scope (as unfinishedInScope) are in each unfinished state: the whole count, not a page. */
  unfinishedCountsInScope(subtrees: readonly ScopeSubtree[], sinceMs: number): Partial<Record<FileState, number>> {
    const scope = latestInScope(subtrees, sinceMs);
    const rows = this.db
      .prepare(`SELECT f.state, COUNT(*) AS n FROM ${UNFINISHED_ROWS} WHERE ${scope.where} GROUP BY f.state`)
      .all(...scope.params) as { state: FileState; n: number }[];
    return Object.fromEntries(rows.map((row) => [row.state, row.n]));
  }

  /**
   * The owners of the rows in scope (as unfinishedInScope) that are `working`: a one-shot `reconcile` waits for
   * those held by another live process (a `watch` archiving them) instead of reporting them unfinished.
   */
  workingOwnersInScope(subtrees: readonly ScopeSubtree[], sinceMs: number): string[] {
    const scope = latestInScope(subtrees, sinceMs);
    const rows = this.db
      .prepare(`SELECT DISTINCT f.owner FROM ${UNFINISHED_ROWS} WHERE f.state = 'working' AND f.owner IS NOT NULL AND ${scope.where}`)
      .all(...scope.params) as { owner: string }[];
    return rows.map((row) => row.owner);
  }

  /** How many rows in scope (as unfinishedInScope) are `working` under one of `owners`. */
  workingCountInScope(subtrees: readonly ScopeSubtree[], sinceMs: number, owners: readonly string[]): number {
    const scope = latestInScope(subtrees, sinceMs);
    const row = this.db
      .prepare(
        `SELECT COUNT(*) AS n FROM ${UNFINISHED_ROWS} WHERE f.state = 'working' AND f.owner IN (${owners.map(() => '?').join(',')}) AND ${scope.where}`,
      )
      .get(...owners, ...scope.params) as { n: number };
    return row.n;
  }

  /** The most recent archived generation of a path before `generation`, for duplicate detection. */
  previousArchived(target: string, relPath: string, generation: number): { id: number; sha256: string } | undefined {
    return this.stmt(
      `SELECT id, sha256 FROM files WHERE target = ? AND rel_path = ? AND generation < ? AND state = 'archived'
       ORDER BY generation DESC LIMIT 1`,
    ).get(target, relPath, generation) as { id: number; sha256: string } | undefined;
  }

  /** Milliseconds since epoch at which the earliest waiting row (retry, or delayed pending) becomes due. */
  nextRetryAt(): number | undefined {
    const retry = this.stmt(`SELECT MIN(next_attempt_at) AS at FROM files WHERE state = 'retry'`).get() as {
      at: number | null;
    };
    const pending = this.stmt(
      `SELECT MIN(next_attempt_at) AS at FROM files WHERE state = 'pending' AND next_attempt_at IS NOT NULL`,
    ).get() as { at: number | null };
    const times = [retry.at, pending.at].filter((at): at is number => at !== null);
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  hasClaimableWork(): boolean {
    return (
      this.stmt(
        `SELECT EXISTS (SELECT 1 FROM files WHERE state = 'pending'
                        AND (next_attempt_at IS NULL OR next_attempt_at <= @now OR next_attempt_at > @latest))
             OR EXISTS (SELECT 1 FROM files WHERE state = 'retry' AND (next_attempt_at <= @now OR next_attempt_at > @latest)) AS any`,
      ).get(this.dueWindow()) as { any: number }
    ).any === 1;
  }

  /**
   * A row is due at or before `now`, or when its time lies beyond any wait we ever set (`latest`): then the
   * clock that set it was ahead of today's, and waiting for it would stall the row for as long as the jump.
   */
  private dueWindow(): { now: number; latest: number } {
    const now = this.now();
    return { now, latest: now + this.maxWaitMs };
  }

  beginReconcile(reason: string, scope?: ReconcileScope): number {
    const { lastInsertRowid } = this.write(() =>
      this.stmt(`INSERT INTO reconcile_runs (reason, started_at, scope, partial) VALUES (?, ?, ?, ?)`).run(
        reason,
        this.now(),
        scope ? JSON.stringify(scope) : null,
        scope?.partial || scope?.dryRun ? 1 : 0,
      ),
    );
    return Number(lastInsertRowid);
  }

  /** Closes a pass's record: two counts in columns, `tally` whole (a scan's, a command's summary too) as JSON. */
  finishReconcile<T extends ReconcileTally>(runId: number, tally: T, error?: string): void {
    this.write(() =>
      this.stmt(
        `UPDATE reconcile_runs SET finished_at = ?, files_seen = ?, files_queued = ?, counts = ?, error = ? WHERE id = ?`,
      ).run(this.now(), tally.filesSeen, tally.filesQueued, JSON.stringify(tally), error ?? null, runId),
    );
  }

  /**
   * Records what a pass had to skip while walking a target's directory (`relDir`, '' for the whole target):
   * each skip is kept (first seen, last seen, by pass `runId`), and every row under `relDir` this pass did not
   * see again is cleared (readable again, renamed, gone). Then the target keeps at most `maxRows`, the most
   * recently seen: the pass record counts them all.
   */
  recordScanSkips(target: string, relDir: string, runId: number, skips: readonly ScanSkip[], maxRows: number): void {
    this.db.transaction(() => {
      const now = this.now();
      const upsert = this.stmt(
        `INSERT INTO scan_skips (target, path, name_hex, kind, code, first_seen_at, last_seen_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (target, path, name_hex) DO UPDATE SET kind = excluded.kind, code = excluded.code,
           last_seen_at = excluded.last_seen_at, run_id = excluded.run_id`,
      );
      for (const skip of skips) upsert.run(target, skip.relPath, skip.nameHex ?? '', skip.kind, skip.code ?? null, now, now, runId);
      const range = subtreeRange(relDir);
      this.stmt(
        `DELETE FROM scan_skips WHERE target = @target AND run_id <> @runId
         AND (path = @relDir OR (path > @after AND (@before IS NULL OR path < @before)))`,
      ).run({ target, runId, relDir, ...range });
      const { n } = this.stmt(`SELECT COUNT(*) AS n FROM scan_skips WHERE target = ?`).get(target) as { n: number };
      if (n <= maxRows) return;
      this.stmt(
        `DELETE FROM scan_skips WHERE target = @target AND rowid NOT IN
         (SELECT rowid FROM scan_skips WHERE target = @target ORDER BY last_seen_at DESC, rowid LIMIT @maxRows)`,
      ).run({ target, maxRows });
    }).immediate();
  }

  /**
   * Deletes up to `maxRows` history rows older than `beforeMs`, oldest first (ledger.history_days): the running
   * service calls it after each pass, so a first prune of years of history never holds the write lock for long.
   * Files rows, with their current state, and objects are never pruned.
   * @returns the rows deleted; fewer than `maxRows` means none older is left.
   */
  pruneHistory(beforeMs: number, maxRows: number): number {
    return this.write(
      () => this.stmt(`DELETE FROM history WHERE id IN (SELECT id FROM history WHERE at < ? ORDER BY at LIMIT ?)`).run(beforeMs, maxRows).changes,
    );
  }

  /** A multipart upload was opened: until forgetOpenUpload, a crash leaves it to the next start to abort. */
  recordOpenUpload(upload: RecordedUpload): void {
    this.recordServiceState(`${OPEN_UPLOAD}${upload.uploadId}`, upload);
  }

  forgetOpenUpload(uploadId: string): void {
    this.write(() => this.stmt(`DELETE FROM service_state WHERE name = ?`).run(`${OPEN_UPLOAD}${uploadId}`));
  }

  /** Every multipart upload recorded open, by any process that used this ledger. */
  openUploads(): RecordedUpload[] {
    const rows = this.stmt(`SELECT value FROM service_state WHERE name >= ? AND name < ?`).all(OPEN_UPLOAD, prefixEnd(OPEN_UPLOAD)) as {
      value: string;
    }[];
    return rows.map((row) => JSON.parse(row.value) as RecordedUpload);
  }

  /** Records one piece of the service's own state (JSON) for `status`, replacing the previous value. */
  recordServiceState(name: string, value: unknown): void {
    this.write(() =>
      this.stmt(
        `INSERT INTO service_state (name, value, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      ).run(name, JSON.stringify(value), this.now()),
    );
  }

  private latestGeneration(target: string, relPath: string): LatestGeneration | undefined {
    const row = this.stmt(
      `SELECT id, generation, state, size_bytes AS sizeBytes, mtime_ms AS mtimeMs, inode,
       CAST(ctime_ns AS TEXT) AS ctimeNs FROM files WHERE target = ? AND rel_path = ? ORDER BY generation DESC LIMIT 1`,
    ).get(target, relPath) as (Omit<LatestGeneration, 'ctimeNs'> & { ctimeNs: string | null }) | undefined;
    // Read as text: a nanosecond timestamp does not fit a JS number, and BigInt reads would turn every column.
    return row && { ...row, ctimeNs: row.ctimeNs === null ? null : BigInt(row.ctimeNs) };
  }

  /**
   * The one place a row changes state: checks the transition is legal, updates only if the row is still
   * in `from` (so two claimants cannot both win) and, for a worker's write, still held by its `owner`,
   * and appends the history row.
   */
  private move(
    id: number,
    from: FileState,
    to: FileState,
    detail: string,
    assignments = '',
    params: Record<string, unknown> = {},
    owner?: string,
  ): void {
    if (!isTransitionAllowed(from, to)) {
      throw new SftppushError('E_ILLEGAL_TRANSITION', `file #${id}: ${from} -> ${to} is not a legal transition`);
    }
    const extra = assignments ? `, ${assignments}` : '';
    const ownerGuard = owner === undefined ? '' : ' AND owner = @owner';
    const result = this.stmt(
      `UPDATE files SET state = @to, updated_at = @now${extra} WHERE id = @id AND state = @from${ownerGuard}`,
    ).run({ ...params, id, from, to, now: this.now(), ...(owner === undefined ? {} : { owner }) });
    if (result.changes !== 1) throw new LedgerConflictError(id, from, to, owner);
    this.addHistory(id, from, to, detail);
  }

  private addHistory(fileId: number, from: FileState | null, to: FileState, detail: string): void {
    this.stmt(`INSERT INTO history (file_id, from_state, to_state, at, detail) VALUES (?, ?, ?, ?, ?)`).run(
      fileId,
      from,
      to,
      this.now(),
      detail,
    );
  }

  private setStat(id: number, stat: FileStat): void {
    this.stmt(`UPDATE files SET ${STAT_ASSIGNMENTS}, updated_at = @now WHERE id = @id`).run({ ...statParams(stat), now: this.now(), id });
  }

  private insertObject(fileId: number, object: ArchivedObject, now: number, member?: string): void {
    this.stmt(
      `INSERT INTO objects (file_id, bucket, key, sha256, size_bytes, etag, version_id, checksum_sha256, found_by_head, recorded_at, member)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      fileId,
      object.bucket,
      object.key,
      object.sha256,
      object.sizeBytes,
      object.etag ?? null,
      object.versionId ?? null,
      object.checksumSha256 ?? null,
      object.foundByHead ? 1 : 0,
      now,
      member ?? null,
    );
  }

  /**
   * Runs `fn` as one write transaction (BEGIN IMMEDIATE). Every write of the ledger goes through here, so a
   * disk that cannot take it is one typed error naming the file, whichever write met it first.
   * @throws LedgerFullError (SQLITE_FULL: the disk or the quota is full; SQLite rolled the transaction back).
   */
  private write<T>(fn: () => T): T {
    try {
      return this.transaction.immediate(fn) as T;
    } catch (error) {
      if (errnoCode(error) === 'SQLITE_FULL') throw new LedgerFullError(this.file, { cause: error });
      throw error;
    }
  }

  private stmt(sql: string): BetterSqlite3.Statement {
    let statement = this.statements.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }
}

/** A target (its path) and a directory in it, '' for the whole target: what a one-shot pass covers. */
export interface ScopeSubtree {
  readonly target: string;
  readonly relDir: string;
}

/** The states a one-shot pass reports as not archived. */
/**
 * Every row in an unfinished state (pending, working, retry, quarantined, gone) as `f`, found through the two partial indexes that hold them
 * (files_unfinished: pending, working, retry; files_failed: retry, quarantined, gone; retry taken once), then
 * by rowid: a question about a scope's unfinished rows costs what they number, not what the scope holds (a
 * range scan of a target's rows cost 20 ms per 100,000, twice per one-shot reconcile).
 */
const UNFINISHED_ROWS = `(SELECT id AS uid FROM files WHERE state IN ('pending', 'working', 'retry')
  UNION ALL SELECT id AS uid FROM files WHERE state IN ('retry', 'quarantined', 'gone') AND state <> 'retry') u
  CROSS JOIN files f ON f.id = u.uid`;

/**
 * The WHERE clause (on `files f`) of the latest generation of every path in these subtrees with mtime at or
 * after `sinceMs`, and its parameters: each subtree is one index range (subtreeRange).
 */
function latestInScope(subtrees: readonly ScopeSubtree[], sinceMs: number): { where: string; params: unknown[] } {
  const inScope = subtrees.map(() => '(f.target = ? AND f.rel_path > ? AND (? IS NULL OR f.rel_path < ?))').join(' OR ') || 'FALSE';
  const params = subtrees.flatMap(({ target, relDir }) => {
    const range = subtreeRange(relDir);
    return [target, range.after, range.before, range.before];
  });
  return {
    where: `(${inScope}) AND f.mtime_ms >= ?
      AND NOT EXISTS (SELECT 1 FROM files n WHERE n.target = f.target AND n.rel_path = f.rel_path AND n.generation > f.generation)`,
    params: [...params, sinceMs],
  };
}

/**
 * The rel_path range of a target's directory ('' for the whole target), as bounds exclusive of both ends:
 * every path under 'a/b' sorts after 'a/b/' and before 'a/b0' ('0' follows '/' in byte order, SQLite's
 * BINARY collation), so a subtree is one index range. `before` is null for the whole target.
 */
function subtreeRange(relDir: string): { after: string; before: string | null } {
  return relDir === '' ? { after: '', before: null } : { after: `${relDir}/`, before: prefixEnd(`${relDir}/`) };
}

/** The columns a stat sets (Ledger.setStat, markArchived): named parameters from statParams. */
const STAT_ASSIGNMENTS = 'size_bytes = @sizeBytes, mtime_ms = @mtimeMs, inode = @inode, ctime_ns = @ctimeNs';

function statParams(stat: FileStat): { sizeBytes: number; mtimeMs: number; inode: number; ctimeNs: bigint } {
  return { sizeBytes: stat.sizeBytes, mtimeMs: stat.mtimeMs, inode: stat.inode, ctimeNs: stat.ctimeNs };
}
