import path from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { ArchiveRejectedError, SourceChangedError, StoreError } from '../errors.js';
import type { ArchiveFormat } from '../extract/classify.js';
import { eachFileEntry, inspectArchive, readWhole, type ArchiveSource } from '../extract/members.js';
import type { ArchivedObject, PlannedObject } from '../ledger/ledger.js';
import { assertNoWriter, finish, readContent, reserveKeys, withdraw, type Finished, type HeldFile } from './archive-file.js';
import { archiveStem, memberKeyFor, objectKeyFor, objectMetadata } from './key-layout.js';
import { storeObject, verifyingHash } from './store-object.js';

/**
 * Stores an archive as its members (DESIGN.md, "S3 key layout"), in two passes over the open file. The
 * first decompresses and hashes every member and applies every safety rule, writing nothing (a rejected
 * archive publishes nothing); the second stores each member through the write gate (small ones `upload.concurrency` at
 * a time) and records each in the ledger as S3 takes it. A crash resumes with the members not recorded: the
 * recorded ones are not sent again, and the few S3 took but the ledger missed are found by their conditional
 * write's 412 and HEAD, never written twice. The archive is archived only when every member is.
 * Decompressing twice costs CPU, never memory or a temp copy.
 * @throws ArchiveRejectedError, KeyConflictError (the caller quarantines); StoreError, SourceChangedError.
 */
export async function archiveMembers(held: HeldFile, format: ArchiveFormat): Promise<Finished> {
  const { claim, target, file, before, deps, log } = held;
  const fileName = path.posix.basename(claim.relPath);
  const source: ArchiveSource = { file, format, sizeBytes: before.sizeBytes, gzMemberName: archiveStem(fileName, 'gz') };
  const members = await inspectArchive(source, deps.settings.archiveLimits);
  assertNoWriter(held);
  const sha256 = await file.sha256();
  const planned: PlannedObject[] = members.map((m) => ({
    member: m.member,
    bucket: target.bucket,
    key: memberKeyFor(target.prefix, claim.relPath, format, m.member),
    sha256: m.sha256,
    sizeBytes: m.sizeBytes,
  }));
  // An archive without members is stored whole: nothing else would show it ever arrived.
  const keepOriginal = target.keepArchive || members.length === 0;
  const originalKey = objectKeyFor(target.prefix, claim.relPath);
  // A gz not named `.gz` has its member under its own name: that object is the original's content already.
  const original = keepOriginal && !planned.some((p) => p.key === originalKey)
    ? { member: undefined, bucket: target.bucket, key: originalKey, sha256, sizeBytes: before.sizeBytes }
    : undefined;
  await reserveKeys(held, original ? [...planned, original] : planned);

  const previous = deps.ledger.previousArchived(claim.target, claim.relPath, claim.generation);
  const sameAsPrevious = previous?.sha256 === sha256;
  const recorded = deps.ledger.recordedObjects(claim.id);
  // Objects this generation recorded for other content: the archive changed before every member was stored (a
  // rewrite in place, maybe across a crash). Withdraw the versions we wrote, so no torn archive stays at its keys.
  const wanted = new Map([...planned, ...(original ? [original] : [])].map((p) => [p.key, p.sha256]));
  const torn = [...recorded.values()].filter((o) => wanted.get(o.key) !== o.sha256);
  await withdraw(held.deps, held.claim, held.log, torn);
  for (const o of torn) recorded.delete(o.key);
  const byMember = new Map(planned.map((p) => [p.member!, p]));
  const tally = { stored: 0, foundByHead: 0, resumed: 0, bytes: 0 };
  const count = (object: ArchivedObject): void => {
    if (object.foundByHead) tally.foundByHead += 1;
    else tally.bytes += object.sizeBytes;
    tally.stored += 1;
  };

  // Small members are sent `upload.concurrency` at a time (S3 round trips, not zlib, are what an archive of
  // small members waits on); the window is bounded in members and bytes, so memory stays bounded whatever the
  // archive holds.
  const window = new UploadWindow(deps.settings.concurrency, Math.max(deps.settings.multipartThresholdBytes, WINDOW_BYTES));
  const storeMember = async (member: string, plan: PlannedObject, body: Buffer | (() => Readable)): Promise<void> => {
    const object = await storeObject(
      {
        bucket: plan.bucket,
        key: plan.key,
        body,
        sizeBytes: plan.sizeBytes,
        sha256: plan.sha256,
        metadata: objectMetadata({ relPath: claim.relPath, sha256: plan.sha256, sourceSha256: sha256, mtimeMs: before.mtimeMs, member }),
        headFirst: sameAsPrevious,
      },
      held.storeDeps,
    );
    deps.ledger.recordObject(claim, object, member);
    count(object);
    deps.checkpoint?.('after-member');
  };
  try {
    await eachFileEntry(source, undefined, async (member, entry) => {
      const plan = byMember.get(member);
      if (!plan) throw new SourceChangedError(claim.relPath, `member ${JSON.stringify(member)} was not there when validated`);
      if (recorded.get(plan.key)?.sha256 === plan.sha256) {
        // Stored before a crash or a retry: recorded, so never written again.
        tally.resumed += 1;
        entry.skip();
        return;
      }
      if (plan.sizeBytes <= deps.settings.multipartThresholdBytes) {
        const body = await wholeMember(await entry.open(), plan, claim.relPath);
        await window.add(plan.sizeBytes, () => storeMember(member, plan, body));
      } else {
        // A large member streams from the archive itself: the archive waits for it.
        await window.drain();
        await storeMember(member, plan, onceStream(await entry.open(), plan, claim.relPath));
      }
    });
  } catch (error) {
    // The first pass validated these very bytes: a structure error now means they changed under us.
    if (error instanceof ArchiveRejectedError) {
      throw new SourceChangedError(claim.relPath, `no longer the archive validated (${error.message})`);
    }
    throw error;
  } finally {
    // Every upload started is settled before the outcome is decided (or the file closed): none is left running.
    await window.settle();
  }
  await window.drain();
  if (original && recorded.get(original.key)?.sha256 !== sha256) {
    const content = await readContent(file, before, claim.relPath, deps.settings);
    if (content.sha256 !== sha256) throw new SourceChangedError(claim.relPath, 'changed while its members were stored');
    const object = await storeObject(
      {
        bucket: original.bucket,
        key: original.key,
        body: content.body,
        sizeBytes: before.sizeBytes,
        sha256,
        metadata: objectMetadata({ relPath: claim.relPath, sha256, sourceSha256: sha256, mtimeMs: before.mtimeMs }),
        headFirst: sameAsPrevious,
      },
      held.storeDeps,
    );
    deps.ledger.recordObject(claim, object, undefined);
    count(object);
  }
  await held.stillCurrent();

  const objects = planned.length + (original ? 1 : 0);
  const fields = { format, members: members.length, objects, ...tally };
  if (sameAsPrevious && tally.resumed === 0 && tally.foundByHead === objects) {
    await finish(held, sha256, { kind: 'duplicate', duplicateOf: previous.id });
    return { state: 'duplicate', fields: { ...fields, duplicateOf: previous.id } };
  }
  await finish(held, sha256, { kind: 'members', count: objects, foundByHead: tally.foundByHead });
  if (members.length === 0) log.warn({ format }, 'archive has no members: stored as it is');
  return { state: 'archived', fields };
}

/**
 * Bytes of small members held for upload at once, per archive (one member above it still goes alone): the
 * service's peak RSS with a 200 MB archive of 1 MB members stays under 150 MB (`npm run bench`).
 */
const WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Runs uploads concurrently, at most `maxTasks` at a time and `maxBytes` of bodies held; the first failure is
 * thrown by the next add() or drain(), after which no new upload starts.
 */
class UploadWindow {
  private readonly running = new Set<Promise<void>>();
  private bytes = 0;
  private failure: { error: unknown } | undefined;

  constructor(
    private readonly maxTasks: number,
    private readonly maxBytes: number,
  ) {}

  async add(sizeBytes: number, task: () => Promise<void>): Promise<void> {
    while (this.running.size > 0 && (this.running.size >= this.maxTasks || this.bytes + sizeBytes > this.maxBytes)) {
      await Promise.race(this.running);
    }
    this.rethrow();
    this.bytes += sizeBytes;
    const promise = task()
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => {
        this.bytes -= sizeBytes;
        this.running.delete(promise);
      });
    this.running.add(promise);
  }

  /** Waits for every upload; throws the first failure. */
  async drain(): Promise<void> {
    await this.settle();
    this.rethrow();
  }

  /** Waits for every upload, failed or not. */
  async settle(): Promise<void> {
    await Promise.all(this.running);
  }

  private rethrow(): void {
    if (this.failure) throw this.failure.error;
  }
}

/** A member small enough to send from memory, checked against the validating pass's hash. */
async function wholeMember(stream: Readable, plan: PlannedObject, relPath: string): Promise<Buffer> {
  const bytes = await readWhole(stream);
  const check = verifyingHash(plan.sha256, relPath);
  await new Promise<void>((resolve, reject) => {
    check.on('error', reject).on('finish', resolve).resume();
    check.end(bytes);
  });
  return bytes;
}

/**
 * A large member streams from the archive once, through a hash check that aborts the upload on a
 * mismatch. A second call (a write that lost a race for its key and must be sent again) cannot re-read a
 * tar's stream: it fails as a retry, and the next attempt's HEAD finds what S3 holds.
 */
function onceStream(stream: Readable, plan: PlannedObject, relPath: string): () => Readable {
  let used = false;
  return () => {
    if (used) {
      throw new StoreError('put', plan.key, true, { cause: new Error('a member streamed from its archive cannot be sent twice in one attempt') });
    }
    used = true;
    return pipeline(stream, verifyingHash(plan.sha256, relPath), () => undefined);
  };
}
