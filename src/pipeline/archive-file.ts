import { createHash } from 'node:crypto';
import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import {
  ArchiveRejectedError,
  describeCause,
  errnoCode,
  KeyConflictError,
  SftppushError,
  SourceChangedError,
  StoreError,
  UploadAbandonedError,
} from '../errors.js';
import { classify, HEAD_BYTES, magicOf, type Classification } from '../extract/classify.js';
import type { ArchiveLimits } from '../extract/limits.js';
import type { KillPoint } from '../kill-points.js';
import {
  LedgerConflictError,
  type ArchiveProof,
  type ClaimedFile,
  type Ledger,
  type PlannedObject,
  type RecordedMember,
} from '../ledger/ledger.js';
import { sameStat } from '../ledger/observation.js';
import { lastChangeMs } from '../observe/completion.js';
import type { ObjectOptions, ObjectStore } from '../s3/object-store.js';
import { outageKind } from '../s3/outage.js';
import type { SourceFile, SourceFs, SourceStat } from '../source/source-fs.js';
import { carryOutAfterAction } from './after-action.js';
import { dueAfterAction } from './after-plan.js';
import { archiveMembers } from './archive-members.js';
import { retryDelayMs } from './backoff.js';
import { KeyLayoutError, objectKeyFor, objectMetadata, quarantineKeyFor } from './key-layout.js';
import { storeObject, verifyingHash, type StoreDeps } from './store-object.js';
import type { WriteMode } from './write-gate.js';

export type ArchiveLedger = Pick<
  Ledger,
  | 'markArchived'
  | 'requeue'
  | 'scheduleRetry'
  | 'markGone'
  | 'markQuarantined'
  | 'previousArchived'
  | 'lastObjectAt'
  | 'reserveKeys'
  | 'recordObject'
  | 'recordedObjects'
  | 'discardObjects'
  | 'settleAfterAction'
  | 'grouped'
>;

export interface ArchiveSettings {
  /** `upload.concurrency`: also how many small members of one archive are stored at once. */
  readonly concurrency: number;
  readonly multipartThresholdBytes: number;
  readonly partSizeBytes: number;
  readonly maxBackoffSeconds: number;
  /** `[s3]` storage_class, sse, kms_key_id, tags. */
  readonly objectOptions: ObjectOptions;
  /** `s3.quarantine_prefix`: where a rejected file's original bytes go. */
  readonly quarantinePrefix: string;
  /** `[archive]`: what one archive may expand to. */
  readonly archiveLimits: ArchiveLimits;
  /**
   * `settle_seconds`, ms: a file a writer holds open but has not changed for this long (a log a daemon never
   * closes) is archived as it is, by the scan rule, instead of being given back forever.
   */
  readonly settleMs: number;
}

/** Everything one archive step touches, passed in so tests can put a fault anywhere. */
export interface ArchiveDeps {
  readonly ledger: ArchiveLedger;
  readonly store: Pick<ObjectStore, 'put' | 'head' | 'deleteVersion'>;
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
  readonly checkpoint?: (point: Extract<KillPoint, 'after-commit' | 'after-member' | 'after-archive-record'>) => void;
  /** Called with the size of each object this step wrote to S3 (not one found there already): a byte counter. */
  /**
   * Called with the size of each object this step wrote to S3 (not one found there already) and how long its
   * gated write took (HEADs and the SDK's part retries included).
   */
  readonly onUploaded?: (bytes: number, durationMs: number) => void;
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
    const fields = { state: outcome.state, ...outcome.fields, ms: deps.now() - started };
    if (outcome.state === 'quarantined') log.error(fields, 'file quarantined');
    else log.info(fields, `file ${outcome.state}`);
    return outcome.state;
  } catch (error) {
    // The row is no longer this claim's: no outcome of ours may be recorded (the pool reports it).
    if (error instanceof LedgerConflictError) throw error;
    // Gone for good: members an earlier attempt stored of it are an archive that never completed. A failure
    // to withdraw them is the outcome instead (a retry, which finds the file gone and withdraws again).
    const failure = error instanceof SourceGoneError ? await withdrawRecorded(deps, claim, log).then(() => error, (cause: unknown) => cause) : error;
    return recordFailure(claim, deps, log, failure);
  }
}

export interface Finished {
  readonly state: 'archived' | 'duplicate' | 'quarantined';
  readonly fields: Record<string, unknown>;
}

/** A claimed generation held open for archiving: what every way of storing it reads. */
export interface HeldFile {
  readonly claim: ClaimedFile;
  readonly target: TargetConfig;
  readonly file: SourceFile;
  /** fstat when it was opened: the identity of the bytes read. */
  readonly before: SourceStat;
  readonly deps: ArchiveDeps;
  readonly log: Logger;
  /** @throws SourceChangedError when the path no longer holds the bytes opened. */
  readonly stillCurrent: () => Promise<void>;
  /** The writes' common settings and the bucket's gate mode. */
  readonly storeDeps: StoreDeps;
}

async function archive(claim: ClaimedFile, target: TargetConfig, deps: ArchiveDeps, log: Logger): Promise<Finished> {
  const absolutePath = path.join(target.path, claim.relPath);
  const file = await openSource(deps.source, absolutePath);
  try {
    const before = await file.stat();
    if (!before.isFile) throw new SourceGoneError('no longer a regular file');
    const stillCurrent = (): Promise<void> => assertUnchanged(deps.source, absolutePath, before, claim.relPath);
    const held: HeldFile = {
      claim,
      target,
      file,
      before,
      deps,
      log,
      stillCurrent,
      storeDeps: {
        store: deps.store,
        mode: await deps.writeMode(target.bucket),
        log,
        objectOptions: deps.settings.objectOptions,
        partSizeBytes: deps.settings.partSizeBytes,
        lastObjectAt: (bucket, key) => deps.ledger.lastObjectAt(bucket, key),
        assertStillCurrent: stillCurrent,
        onUploaded: deps.onUploaded,
        now: deps.now,
      },
    };
    assertNoWriter(held);
    try {
      // A small file is read once, before it is classified: its hash, its body and its first bytes are one buffer.
      let content = before.sizeBytes <= deps.settings.multipartThresholdBytes ? await readContent(file, before, claim.relPath, deps.settings) : undefined;
      const head = Buffer.isBuffer(content?.body) ? content.body.subarray(0, HEAD_BYTES) : undefined;
      const kind = target.extract ? await classifyFile(file, before, claim.relPath, head) : { format: 'plain' as const };
      if (kind.warning) log.warn({ reason: kind.warning }, 'archive extension, other content');
      if (kind.format === 'plain') return await archivePlain(held, content);
      // An archive is read by its members: the whole buffer is not held while they are extracted.
      content = undefined;
      return await archiveMembers(held, kind.format);
    } catch (error) {
      // Bad input retrying cannot fix: keep the original bytes in S3 and say why (DESIGN.md, "States").
      if (error instanceof ArchiveRejectedError || error instanceof KeyLayoutError || error instanceof KeyConflictError) {
        // A "broken archive" may be one being rewritten under us (truncated, replaced): only bytes that are still
        // the ones opened are judged; otherwise the file is looked at again.
        await assertSameBytes(held);
        return await quarantine(held, error);
      }
      throw error;
    }
  } finally {
    await file.close();
  }
}

/** @param read the file's content when it was read already (a small file, read once to classify it). */
async function archivePlain(held: HeldFile, read: Content | undefined): Promise<Finished> {
  const { claim, target, before, deps } = held;
  const key = objectKeyFor(target.prefix, claim.relPath);
  const content = read ?? (await readContent(held.file, before, claim.relPath, deps.settings));
  // A writer may have reopened it while we read: what we hold could be half of its next content.
  assertNoWriter(held);
  await reserveKeys(held, [{ member: undefined, bucket: target.bucket, key, sha256: content.sha256, sizeBytes: before.sizeBytes }]);
  // An archive rewritten as a plain file: the members an earlier attempt stored of it go.
  await withdrawRecorded(deps, claim, held.log, (k) => k === key);
  const previous = deps.ledger.previousArchived(claim.target, claim.relPath, claim.generation);
  const sameAsPrevious = previous?.sha256 === content.sha256;
  const object = await storeObject(
    {
      bucket: target.bucket,
      key,
      body: content.body,
      sizeBytes: before.sizeBytes,
      sha256: content.sha256,
      metadata: objectMetadata({ relPath: claim.relPath, sha256: content.sha256, sourceSha256: content.sha256, mtimeMs: before.mtimeMs }),
      headFirst: sameAsPrevious,
    },
    held.storeDeps,
  );
  await held.stillCurrent();
  if (sameAsPrevious && object.foundByHead) {
    await finish(held, content.sha256, { kind: 'duplicate', duplicateOf: previous.id });
    return { state: 'duplicate', fields: { key, bytes: before.sizeBytes, duplicateOf: previous.id } };
  }
  await finish(held, content.sha256, { kind: 'uploaded', objects: [object] });
  return {
    state: 'archived',
    fields: { key, bytes: before.sizeBytes, versionId: object.versionId, foundByHead: object.foundByHead, foundBy: object.foundBy },
  };
}

/**
 * Reserves the keys a generation will write (ledger planned_objects).
 * @throws KeyConflictError naming the other path when one of them is already another source's.
 */
export async function reserveKeys(held: HeldFile, planned: readonly PlannedObject[]): Promise<void> {
  const { ledger } = held.deps;
  const holder = await ledger.grouped(() => ledger.reserveKeys(held.claim, planned));
  if (holder) throw new KeyConflictError(holder.key, `${holder.target}/${holder.relPath}`);
}

/**
 * Stores the original bytes under the quarantine prefix (DESIGN.md, "S3 key layout") and records the row
 * quarantined with the reason and that key: the operator finds the file in `status --failed` and its bytes
 * in S3, and nothing of it stays under the archive prefix as if it had succeeded. The quarantine key is
 * reserved like any other (a plain file `_quarantine/x.zip` wants the same key as the quarantined `x.zip`):
 * when another path holds it, the row is quarantined without its bytes in S3, the reason naming that path
 * (the file stays where it is). A failed quarantine upload is a retry like any other: the next attempt
 * decides again.
 */
async function quarantine(held: HeldFile, why: ArchiveRejectedError | KeyLayoutError | KeyConflictError): Promise<Finished> {
  const { claim, target, file, before, deps } = held;
  const key = quarantineKeyFor(deps.settings.quarantinePrefix, claim.relPath);
  // Members an earlier attempt stored of other content must not stay under the archive prefix as if it had succeeded.
  await withdrawRecorded(deps, claim, held.log);
  // The same checked read as a plain file's: a short read or a changed stat is a change, never a short body
  // sent under the old length (which S3 would wait for until the request timed out).
  const { sha256, body } = await readContent(file, before, claim.relPath, deps.settings);
  try {
    await reserveKeys(held, [{ member: undefined, bucket: target.bucket, key, sha256, sizeBytes: before.sizeBytes }]);
  } catch (error) {
    if (!(error instanceof KeyConflictError)) throw error;
    const reason = `${why.code}: ${why.message} (original bytes not stored: ${error.message}; the file stays at its path)`;
    deps.ledger.markQuarantined(claim, reason, undefined, before);
    return { state: 'quarantined', fields: { reason } };
  }
  const object = await storeObject(
    {
      bucket: target.bucket,
      key,
      body,
      sizeBytes: before.sizeBytes,
      sha256,
      metadata: objectMetadata({ relPath: claim.relPath, sha256, sourceSha256: sha256, mtimeMs: before.mtimeMs }),
      headFirst: false,
    },
    held.storeDeps,
  );
  await held.stillCurrent();
  const reason = `${why.code}: ${why.message} (original bytes at s3://${target.bucket}/${key})`;
  deps.ledger.markQuarantined(claim, reason, object, before);
  return { state: 'quarantined', fields: { reason, key } };
}

/**
 * The first bytes decide the format (extract/classify.ts); for a gzip, the first bytes of its content too.
 * @param read the first HEAD_BYTES bytes when the file was read already.
 */
async function classifyFile(file: SourceFile, stat: SourceStat, relPath: string, read: Buffer | undefined): Promise<Classification> {
  const head = read ?? (await file.readAt(0, HEAD_BYTES));
  const inflatedHead = magicOf(head) === 'gzip' ? await inflatedStart(file) : undefined;
  return classify(path.posix.basename(relPath), head, stat.sizeBytes, inflatedHead);
}

/** Up to HEAD_BYTES bytes of a gzip's content; a corrupt stream yields what it gave before failing. */
async function inflatedStart(file: SourceFile): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  const gunzip = createGunzip();
  const input = file.stream();
  try {
    for await (const chunk of input.pipe(gunzip)) {
      chunks.push(chunk as Buffer);
      length += (chunk as Buffer).length;
      if (length >= HEAD_BYTES) break;
    }
  } catch {
    // A corrupt gzip is still a gzip: the extraction pass rejects it with the member and the rule.
  } finally {
    input.destroy();
    gunzip.destroy();
  }
  return Buffer.concat(chunks).subarray(0, HEAD_BYTES);
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
export async function readContent(file: SourceFile, before: SourceStat, relPath: string, settings: ArchiveSettings): Promise<Content> {
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

/**
 * A close is not proof (DESIGN.md, "When is a file complete?"): a client may reopen the file for writing
 * at once. The kernel's answer (a read lease refused while any process has it open for writing) where we
 * may ask it, and the watcher's IN_MODIFY since the last close everywhere. Giving the row back costs a wait
 * for the writer's next close, which re-observes it.
 */
export function assertNoWriter(held: HeldFile): void {
  const { claim, target, file, before, deps } = held;
  // Quiet for the settle time while held open (a log never closed): the scan rule takes it as it is.
  if (deps.now() - lastChangeMs(before) >= deps.settings.settleMs) return;
  if (deps.isBeingWritten?.(target, claim.relPath) || file.writerProbe() === 'writer') {
    throw new SourceChangedError(claim.relPath, 'a writer has it open again');
  }
}

/** The open descriptor and the path still hold the bytes opened. @throws SourceChangedError otherwise. */
async function assertSameBytes(held: HeldFile): Promise<void> {
  if (!sameStat(held.before, await held.file.stat())) throw new SourceChangedError(held.claim.relPath, 'written to while being read');
  await held.stillCurrent();
}

/** Stat by path after the upload: a replaced or rewritten file must be archived again, not marked done. */
async function assertUnchanged(source: SourceFs, absolutePath: string, before: SourceStat, relPath: string): Promise<void> {
  const now = await source.stat(absolutePath);
  // Vanished after a complete upload: its content is archived; the path's absence is the next observation.
  if (now && !sameStat(before, now)) throw new SourceChangedError(relPath, 'changed during upload');
}

/**
 * Records the archive, and in the same commit the target's `after` action as due; the path changed meanwhile
 * (dirty) is looked at again. Then carries out the action, on the source only if it still holds the bytes
 * hashed: a crash before it ends leaves the action due for the next start (Core.finishDueAfterActions).
 */
export async function finish(held: HeldFile, sha256: string, proof: ArchiveProof): Promise<void> {
  const { claim, target, deps } = held;
  const after = dueAfterAction(target.after);
  const { dirty } = await deps.ledger.grouped(() => deps.ledger.markArchived(claim, held.before, sha256, proof, after));
  deps.checkpoint?.('after-commit');
  if (dirty) deps.reobserve(target, claim.relPath);
  if (after === undefined) return;
  await carryOutAfterAction(
    { fileId: claim.id, owner: claim.owner, target: claim.target, relPath: claim.relPath, action: target.after, hashed: held.before },
    { ledger: deps.ledger, source: deps.source, log: deps.log, targetFor: deps.targetFor, checkpoint: deps.checkpoint },
  );
}

/**
 * Deletes the versions of `objects` (members this generation stored of content it no longer has) and forgets
 * them in the ledger: the key's previous version, if any, is S3's latest again, and no torn archive stays at
 * its keys. Found-by-HEAD ones are deleted too: they carry this very content's sha256, so an earlier attempt
 * of ours wrote them (a lost answer, a crash).
 * @throws StoreError (the attempt is retried and withdraws again).
 */
export async function withdraw(
  deps: Pick<ArchiveDeps, 'store' | 'ledger'>,
  claim: ClaimedFile,
  log: Logger,
  objects: readonly RecordedMember[],
): Promise<void> {
  if (objects.length === 0) return;
  for (const object of objects) {
    if (object.versionId) await deps.store.deleteVersion(object.bucket, object.key, object.versionId);
  }
  const reason = 'the archive changed before every member was stored';
  deps.ledger.discardObjects(claim, objects, reason);
  log.warn({ withdrawn: objects.length, keys: objects.slice(0, 5).map((o) => o.key) }, `members withdrawn: ${reason}`);
}

/** Withdraws every object this generation recorded but `keep`: it ends other than as their archive. */
async function withdrawRecorded(deps: ArchiveDeps, claim: ClaimedFile, log: Logger, keep: (key: string) => boolean = () => false): Promise<void> {
  const recorded = [...deps.ledger.recordedObjects(claim.id).values()];
  await withdraw(deps, claim, log, recorded.filter((o) => !keep(o.key)));
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
  if (error instanceof UploadAbandonedError) {
    // Stopping: the row is given back as it was, no attempt held against it; the next start takes it.
    log.info({ state: 'pending', reason: error.message }, 'upload abandoned: the service is stopping');
    deps.ledger.requeue(claim, error.message, deps.now());
    return 'requeued';
  }
  // S3 itself failing is said once for all files (s3/outage.ts); each file's retry is then a detail.
  const level = outageKind(error) ? 'debug' : error instanceof StoreError && !error.retryable ? 'error' : 'warn';
  return retry(claim, deps, log, describeFailure(error), level);
}

function describeFailure(error: unknown): string {
  if (error instanceof SftppushError) return `${error.code}: ${error.message}`;
  const code = errnoCode(error);
  return code ? `${code}: ${describeCause(error)}` : describeCause(error);
}

/** @param level `error`: an operator must act (denied, no such bucket); `debug`: part of an outage logged once. */
function retry(claim: ClaimedFile, deps: ArchiveDeps, log: Logger, reason: string, level: 'error' | 'warn' | 'debug' = 'warn'): 'retry' {
  const delayMs = retryDelayMs(claim.attempts, deps.settings.maxBackoffSeconds, deps.random);
  const fields = { state: 'retry', attempts: claim.attempts, retryInMs: delayMs, error: reason };
  if (level === 'error') log.error(fields, 'archive failed: needs attention, will retry');
  else log[level](fields, 'archive failed: will retry');
  deps.ledger.scheduleRetry(claim, reason, deps.now() + delayMs);
  return 'retry';
}
