import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { StoreError } from '../errors.js';
import type { RecordedObject } from '../ledger/ledger.js';
import {
  PreconditionFailedError,
  type ObjectHead,
  type ObjectStore,
  type PutObjectRequest,
  type StoredObject,
  type WriteCondition,
} from '../s3/object-store.js';

/**
 * How every write is gated (DESIGN.md, "Exactly once, precisely"). `conditional`: the PUT or multipart
 * completion carries If-None-Match / If-Match, and a 412 leads to a HEAD. `head-first`: the endpoint has no
 * conditional writes, so a HEAD precedes every write. Neither mode ever writes blindly.
 */
export type WriteMode = 'conditional' | 'head-first';

/** A write whose preconditions keep failing for other content (another writer at the key) is retried later. */
const MAX_PRECONDITION_ROUNDS = 3;

export interface GatedWrite extends Omit<PutObjectRequest, 'body' | 'condition'> {
  /** A fresh body per attempt (a stream can be read once). */
  readonly body: () => Buffer | Readable;
  /** What the ledger last recorded at the key: the ETag S3's latest version should still have. */
  readonly expected: RecordedObject | undefined;
  /**
   * HEAD before writing even in conditional mode: content equal to the last archived generation (S3 may
   * already hold it: a duplicate), or a multipart upload (a HEAD costs less than parts a 412 would discard).
   */
  readonly headFirst: boolean;
  /**
   * Called before writing over other content S3 shows at the key (a 412, or a HEAD first): throws when the
   * source changed since it was read. Another host sharing the directory may have archived newer content
   * there meanwhile; our older bytes must never become S3's latest version on top of it.
   */
  readonly assertStillCurrent?: () => Promise<void>;
}

export interface GateResult extends StoredObject {
  /** S3 already held this content (an earlier attempt landed, or a lost ledger): nothing was written. */
  readonly foundByHead: boolean;
  /** Why the gate looked at S3: `head` before writing, or a `precondition` that failed. */
  readonly foundBy?: 'head' | 'precondition';
}

export interface GateDeps {
  readonly store: Pick<ObjectStore, 'put' | 'head'>;
  readonly mode: WriteMode;
  readonly log: Logger;
}

/**
 * Writes one object version unless S3's latest version at the key already holds this content (same
 * `sha256` metadata and size). Idempotent across crashes, lost answers and lost ledgers: whatever happened
 * before, at most one version per content is written.
 * @throws StoreError (retryable when the write may be tried again), or the body's own error.
 */
export async function writeThroughGate(write: GatedWrite, deps: GateDeps): Promise<GateResult> {
  const where = `s3://${write.bucket}/${write.key}`;
  let seen: ObjectHead | undefined | null = null; // null: not looked
  if (write.headFirst || deps.mode === 'head-first') {
    seen = await deps.store.head(write.bucket, write.key);
    if (holdsContent(seen, write)) return found(seen!, 'head');
    if (seen) await write.assertStillCurrent?.();
  }
  let condition = deps.mode === 'conditional' ? conditionFor(seen === null ? write.expected : seen) : undefined;
  for (let round = 1; ; round += 1) {
    try {
      const request: PutObjectRequest = {
        bucket: write.bucket,
        key: write.key,
        body: write.body(),
        sizeBytes: write.sizeBytes,
        sha256: write.sha256,
        metadata: write.metadata,
        options: write.options,
        contentType: write.contentType,
        partSizeBytes: write.partSizeBytes,
        condition,
      };
      return { ...(await deps.store.put(request)), foundByHead: false };
    } catch (error) {
      if (!(error instanceof PreconditionFailedError)) throw error;
      // Not an error: S3 holds something other than we believed. Look, then decide.
      seen = await deps.store.head(write.bucket, write.key);
      if (holdsContent(seen, write)) return found(seen!, 'precondition');
      if (round >= MAX_PRECONDITION_ROUNDS) {
        throw new StoreError('put', where, true, { cause: new Error(`the object at the key changed ${round} times while writing`) });
      }
      await write.assertStillCurrent?.();
      deps.log.warn(
        { key: write.key, expectedEtag: write.expected?.etag, currentEtag: seen?.etag },
        seen
          ? 'S3 holds other content at this key than the ledger recorded: writing a new version conditionally on its current ETag'
          : 'the object the ledger recorded at this key is gone from S3: writing it again',
      );
      condition = conditionFor(seen);
    }
  }
}

function conditionFor(latest: { etag?: string | null | undefined } | undefined): WriteCondition {
  return latest?.etag ? { ifMatch: latest.etag } : { ifNoneMatch: '*' };
}

function holdsContent(head: ObjectHead | undefined | null, write: GatedWrite): boolean {
  return !!head && head.metadata.sha256 === write.sha256 && head.sizeBytes === write.sizeBytes;
}

function found(head: ObjectHead, by: 'head' | 'precondition'): GateResult {
  return { etag: head.etag, versionId: head.versionId, checksumSha256: head.checksumSha256, foundByHead: true, foundBy: by };
}
