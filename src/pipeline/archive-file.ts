import { createHash } from 'node:crypto';
import path from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { describeCause, errnoCode, SftppushError, SourceChangedError, StoreError } from '../errors.js';
import { LedgerConflictError, type ArchivedObject, type ArchiveProof, type ClaimedFile, type Ledger } from '../ledger/ledger.js';
import { sameStat } from '../ledger/observation.js';
import type { ObjectStore } from '../s3/object-store.js';
import { retryDelayMs } from './backoff.js';
import { KeyLayoutError, objectKeyFor, objectMetadata } from './key-layout.js';
import type { SourceFile, SourceFs, SourceStat } from './source-file.js';
import { lastChangeMs } from '../observe/completion.js';
import { writeThroughGate, type WriteMode } from './write-gate.js';

export type ArchiveLedger = Pick<
  Ledger,
  'markArchived' | 'requeue' | 'scheduleRetry' | 'markGone' | 'markQuarantined' | 'previousArchived' | 'lastObjectAt'
>;

export interface ArchiveSettings {
  readonly multipartThresholdBytes: number;
  readonly partSizeBytes: number;
  readonly maxBackoffSeconds: number;
  readonly storageClass: string | undefined;
  /**
   * `settle_seconds`, ms: a file a writer holds open but has not changed for this long (a log a daemon never
   * closes) is archived as it is, by the scan rule, instead of being given back forever. Default 30 s.
   */
  readonly settleMs?: number;
}

/** Everything one archive step touches, passed in so tests can put a fault anywhere. */
export interface ArchiveDeps {
  readonly ledger: ArchiveLedger;
  readonly store: Pick<ObjectStore, 'put' | 'head'>;
  readonly source: SourceFs;
  readonly log: Logger;
  readonly now: () => number;
  readonly random: () => number;
  readonly settings: ArchiveSettings;
  /** Looks up a claimed row's target by its path (as the ledger stores it). */
  readonly targetFor: (targetPath: string) => TargetConfig | undefined;
  /** The path changed while we held it: look at it again. */
  readonly reobserve: (target: TargetConfig, relPath: string) => void;
  /** How writes to a bucket are gated (probed once per bucket; see write-gate.ts). @throws StoreError */
  readonly writeMode: (bucket: string) => Promise<WriteMode>;
  /** Named instants a crash test may kill the process at (kill-points.ts); a no-op in production. */
  readonly checkpoint?: (point: 'after-commit') => void;
  /** Called with the size of each object this step wrote to S3 (not one found there already): a byte counter. */
  readonly onUploaded?: (bytes: number) => void;
  /** Whether the watcher has seen a writer at work on the path since its last close (Observer.isBeingWritten). */
  readonly isBeingWritten?: (target: TargetConfig, relPath: string) => boolean;
}

export type ArchiveOutcome = 'archived' | 'duplicate' | 'requeued' | 'retry' | 'gone' | 'quarantined';

/** A file that keeps changing is looked at again at least this often, close event or not. */
const MAX_REQUEUE_DELAY_SECONDS = 60;

/** The file vanished or is no longer a regular file: nothing left to archive. */
class SourceGoneError extends SftppushError {
  constructor(detail: string) {
    super('E_SOURCE_GONE', detail);
  }
}

/**
 * Archives one claimed generation and records the outcome in the ledger. Never throws for a file's own
 * problems (those become retry/gone/requeue rows); throws only when the ledger itself fails.
 */
export async function archiveClaimed(claim: ClaimedFile, deps: ArchiveDeps): Promise<ArchiveOutcome> {
  const started = deps.now();
  const log = deps.log.child({ path: claim.relPath, target: claim.target, generation: claim.generation });
  const target = deps.targetFor(claim.target);
  if (!target) {
    return retry(claim, deps, log, `target ${claim.target} is no longer configured`);
  }
  try {
    const outcome = await archive(claim, target, deps, log);
    log.info({ state: outcome.state, ...outcome.fields, ms: deps.now() - started }, `file ${outcome.state}`);
    return outcome.state;
  } catch (error) {
    // The row is no longer this claim's: no outcome of ours may be recorded (the pool reports it).
    if (error instanceof LedgerConflictError) throw error;
    return recordFailure(claim, deps, log, error);
  }
}

interface Finished {
  state: 'archived' | 'duplicate';
  fields: Record<string, unknown>;
}

async function archive(claim: ClaimedFile, target: TargetConfig, deps: ArchiveDeps, log: Logger): Promise<Finished> {
  const absolutePath = path.join(target.path, claim.relPath);
  const key = objectKeyFor(target.prefix, claim.relPath);
  const file = await openSource(deps.source, absolutePath);
  try {
    const before = await file.stat();
    if (!before.isFile) throw new SourceGoneError('no longer a regular file');
    assertNoWriter(claim, target, file, before, deps);
    const content = await readContent(file, before, claim.relPath, deps.settings);
    // A writer may have reopened it while we read: what we hold could be half of its next content.
    assertNoWriter(claim, target, file, before, deps);

    const previous = deps.ledger.previousArchived(claim.target, claim.relPath, claim.generation);
    const sameAsPrevious = previous?.sha256 === content.sha256;
    const stillCurrent = (): Promise<void> => assertUnchanged(deps.source, absolutePath, before, claim.relPath);
    const object = await putOnce(claim, target, key, before, content, sameAsPrevious, deps, log, stillCurrent);
    await stillCurrent();
    if (sameAsPrevious && object.foundByHead) {
      finish(claim, deps, before, content.sha256, { kind: 'duplicate', duplicateOf: previous.id }, target);
      return { state: 'duplicate', fields: { key, bytes: before.sizeBytes, duplicateOf: previous.id } };
    }
    finish(claim, deps, before, content.sha256, { kind: 'uploaded', objects: [object] }, target);
    return {
      state: 'archived',
      fields: { key, bytes: before.sizeBytes, versionId: object.versionId, foundByHead: object.foundByHead, foundBy: object.foundBy },
    };
  } finally {
    await file.close();
  }
}

async function openSource(source: SourceFs, absolutePath: string): Promise<SourceFile> {
  try {
    return await source.open(absolutePath);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new SourceGoneError('vanished before it could be archived');
    if (code === 'ELOOP') throw new SourceGoneError('replaced by a symlink, which is never followed');
    throw error;
  }
}

interface Content {
  readonly sha256: string;
  /** In memory (small files), or a factory for a verified second read (large files). */
  readonly body: Buffer | (() => Readable);
}

/**
 * Small files are read once: hashed in memory and sent from the same buffer, so the object is exactly the
 * bytes hashed. Large files are hashed in a first pass and streamed in a second whose hash must match, or
 * the upload is aborted before S3 completes it: a file written to meanwhile can never leave a torn object.
 */
async function readContent(file: SourceFile, before: SourceStat, relPath: string, settings: ArchiveSettings): Promise<Content> {
  if (before.sizeBytes <= settings.multipartThresholdBytes) {
    const buffer = await file.readAll(before.sizeBytes);
    const after = await file.stat();
    if (buffer.length !== before.sizeBytes || !sameStat(before, after)) {
      throw new SourceChangedError(relPath, 'written to while being read');
    }
    return { sha256: createHash('sha256').update(buffer).digest('hex'), body: buffer };
  }
  const sha256 = await file.sha256();
  // pipeline(), not pipe(): a read error (EIO) must fail the upload, not leave it waiting forever.
  return { sha256, body: () => pipeline(file.stream(), verifyingHash(sha256, relPath), () => undefined) };
}

function verifyingHash(expected: string, relPath: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
    flush(callback) {
      const actual = hash.digest('hex');
      callback(actual === expected ? null : new SourceChangedError(relPath, 'content differs between hash and upload'));
    },
  });
}

/**
 * Writes the object through the gate (write-gate.ts): conditionally on what the ledger last recorded at
 * the key, so a repeat claim, a lost answer or a lost ledger finds S3's copy instead of writing another.
 * Content equal to the last archived generation may be a duplicate, but only S3 can say whether its latest
 * version is still that content (an unrecorded upload of other bytes may have landed since): HEAD first.
 */
async function putOnce(
  claim: ClaimedFile,
  target: TargetConfig,
  key: string,
  stat: SourceStat,
  content: Content,
  sameAsPrevious: boolean,
  deps: ArchiveDeps,
  log: Logger,
  assertStillCurrent: () => Promise<void>,
): Promise<ArchivedObject> {
  const inMemory = Buffer.isBuffer(content.body);
  const result = await writeThroughGate(
    {
      bucket: target.bucket,
      key,
      body: () => (Buffer.isBuffer(content.body) ? content.body : content.body()),
      sizeBytes: stat.sizeBytes,
      sha256: content.sha256,
      metadata: objectMetadata({ relPath: claim.relPath, sha256: content.sha256, sourceSha256: content.sha256, mtimeMs: stat.mtimeMs }),
      storageClass: deps.settings.storageClass,
      partSizeBytes: deps.settings.partSizeBytes,
      expected: deps.ledger.lastObjectAt(target.bucket, key),
      headFirst: sameAsPrevious || !inMemory,
      assertStillCurrent,
    },
    { store: deps.store, mode: await deps.writeMode(target.bucket), log },
  );
  if (!result.foundByHead) {
    verifyChecksum(result.checksumSha256, content, `s3://${target.bucket}/${key}`);
    deps.onUploaded?.(stat.sizeBytes);
  }
  return { bucket: target.bucket, key, sha256: content.sha256, sizeBytes: stat.sizeBytes, ...result };
}

/**
 * A single PUT must come back with exactly our SHA-256 (S3 checked the bytes against it). A multipart
 * upload's checksum is S3's checksum of the part checksums (`…-N`), each part checked on arrival; it must
 * at least be there, or S3 did not check anything.
 */
function verifyChecksum(answered: string | undefined, content: Content, where: string): void {
  const expected = Buffer.from(content.sha256, 'hex').toString('base64');
  const ok = Buffer.isBuffer(content.body) ? answered === expected : answered !== undefined && answered !== '';
  if (!ok) {
    throw new StoreError('verify', where, true, {
      cause: new Error(`S3 answered checksum ${answered ?? 'none'}, expected ${Buffer.isBuffer(content.body) ? expected : 'one'}`),
    });
  }
}

/**
 * A close is not proof (DESIGN.md, "When is a file complete?"): a client may reopen the file for writing
 * at once. The kernel's answer (a read lease refused while any process has it open for writing) where we
 * may ask it, and the watcher's IN_MODIFY since the last close everywhere. Giving the row back costs a wait
 * for the writer's next close, which re-observes it.
 */
function assertNoWriter(claim: ClaimedFile, target: TargetConfig, file: SourceFile, stat: SourceStat, deps: ArchiveDeps): void {
  // Quiet for the settle time while held open (a log never closed): the scan rule takes it as it is.
  if (deps.now() - lastChangeMs(stat) >= (deps.settings.settleMs ?? DEFAULT_SETTLE_MS)) return;
  if (deps.isBeingWritten?.(target, claim.relPath) || file.writerProbe() === 'writer') {
    throw new SourceChangedError(claim.relPath, 'a writer has it open again');
  }
}

const DEFAULT_SETTLE_MS = 30_000;

/** Stat by path after the upload: a replaced or rewritten file must be archived again, not marked done. */
async function assertUnchanged(source: SourceFs, absolutePath: string, before: SourceStat, relPath: string): Promise<void> {
  const now = await source.stat(absolutePath);
  // Vanished after a complete upload: its content is archived; the path's absence is the next observation.
  if (now && !sameStat(before, now)) throw new SourceChangedError(relPath, 'changed during upload');
}

function finish(
  claim: ClaimedFile,
  deps: ArchiveDeps,
  stat: SourceStat,
  sha256: string,
  proof: ArchiveProof,
  target: TargetConfig,
): void {
  const { dirty } = deps.ledger.markArchived(claim, stat, sha256, proof);
  deps.checkpoint?.('after-commit');
  if (dirty) deps.reobserve(target, claim.relPath);
}

function recordFailure(claim: ClaimedFile, deps: ArchiveDeps, log: Logger, error: unknown): ArchiveOutcome {
  if (error instanceof SourceGoneError) {
    log.warn({ state: 'gone', reason: error.message }, 'file gone before it was archived');
    deps.ledger.markGone(claim, error.message);
    return 'gone';
  }
  if (error instanceof SourceChangedError) {
    // Still being written (a resumed upload appending): wait before reading it again; its close clears the wait.
    const delayMs = retryDelayMs(claim.attempts, Math.min(deps.settings.maxBackoffSeconds, MAX_REQUEUE_DELAY_SECONDS), deps.random);
    log.info({ state: 'pending', reason: error.message, retryInMs: delayMs }, 'file changed: queued again');
    deps.ledger.requeue(claim, error.message, deps.now() + delayMs);
    return 'requeued';
  }
  if (error instanceof KeyLayoutError) {
    log.error({ state: 'quarantined', reason: error.message }, 'file cannot be stored under its key');
    deps.ledger.markQuarantined(claim, `${error.code}: ${error.message}`);
    return 'quarantined';
  }
  return retry(claim, deps, log, describeFailure(error), error instanceof StoreError && !error.retryable);
}

function describeFailure(error: unknown): string {
  if (error instanceof SftppushError) return `${error.code}: ${error.message}`;
  const code = errnoCode(error);
  return code ? `${code}: ${describeCause(error)}` : describeCause(error);
}

function retry(claim: ClaimedFile, deps: ArchiveDeps, log: Logger, reason: string, needsOperator = false): 'retry' {
  const delayMs = retryDelayMs(claim.attempts, deps.settings.maxBackoffSeconds, deps.random);
  const fields = { state: 'retry', attempts: claim.attempts, retryInMs: delayMs, error: reason };
  if (needsOperator) log.error(fields, 'archive failed: needs attention, will retry');
  else log.warn(fields, 'archive failed: will retry');
  deps.ledger.scheduleRetry(claim, reason, deps.now() + delayMs);
  return 'retry';
}
