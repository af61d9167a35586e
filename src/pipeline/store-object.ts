import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import type { Logger } from 'pino';
import { SourceChangedError, StoreError } from '../errors.js';
import type { ArchivedObject, RecordedObject } from '../ledger/ledger.js';
import type { ObjectOptions, ObjectStore } from '../s3/object-store.js';
import { contentTypeFor } from './key-layout.js';
import { writeThroughGate, type WriteMode } from './write-gate.js';

/** One object to store: its bytes (in memory, or a stream read once and checked against `sha256`). */
export interface ObjectToStore {
  readonly bucket: string;
  readonly key: string;
  readonly body: Buffer | (() => Readable);
  readonly sizeBytes: number;
  /** Hex SHA-256 of the bytes, known before the write starts. */
  readonly sha256: string;
  readonly metadata: Record<string, string>;
  /** HEAD before writing: the content may already be there (a duplicate of the last generation). */
  readonly headFirst: boolean;
}

export interface StoreDeps {
  readonly store: Pick<ObjectStore, 'put' | 'head' | 'deleteVersion'>;
  readonly mode: WriteMode;
  readonly log: Logger;
  readonly objectOptions: ObjectOptions;
  readonly partSizeBytes: number;
  /** What the ledger last recorded at a key (Ledger.lastObjectAt). */
  readonly lastObjectAt: (bucket: string, key: string) => RecordedObject | undefined;
  /** Throws when the source changed since it was read: called before writing over other content. */
  readonly assertStillCurrent: () => Promise<void>;
  /** Told the size of each object written (not one found in S3 already) and how long its write took. */
  readonly onUploaded?: ((bytes: number, durationMs: number) => void) | undefined;
  readonly now: () => number;
}

/**
 * Writes one object through the gate (write-gate.ts): conditionally on what the ledger last recorded at
 * the key, so a repeat claim, a lost answer or a lost ledger finds S3's copy instead of writing another;
 * then checks that S3 verified the bytes against our checksum.
 * @throws StoreError (retryable or not); SourceChangedError when a streamed body no longer hashes the same.
 */
export async function storeObject(object: ObjectToStore, deps: StoreDeps): Promise<ArchivedObject> {
  const inMemory = Buffer.isBuffer(object.body);
  const started = deps.now();
  const result = await writeThroughGate(
    {
      bucket: object.bucket,
      key: object.key,
      body: () => (Buffer.isBuffer(object.body) ? object.body : object.body()),
      sizeBytes: object.sizeBytes,
      sha256: object.sha256,
      metadata: object.metadata,
      options: deps.objectOptions,
      contentType: contentTypeFor(object.key),
      partSizeBytes: deps.partSizeBytes,
      expected: deps.lastObjectAt(object.bucket, object.key),
      // A multipart upload HEADs first: a HEAD costs less than parts a failed precondition would discard.
      headFirst: object.headFirst || !inMemory,
      assertStillCurrent: deps.assertStillCurrent,
    },
    { store: deps.store, mode: deps.mode, log: deps.log },
  );
  if (!result.foundByHead) {
    verifyChecksum(result.checksumSha256, object, `s3://${object.bucket}/${object.key}`);
    deps.onUploaded?.(object.sizeBytes, deps.now() - started);
  }
  return { bucket: object.bucket, key: object.key, sha256: object.sha256, sizeBytes: object.sizeBytes, ...result };
}

/**
 * A single PUT must come back with exactly our SHA-256 (S3 checked the bytes against it). A multipart
 * upload's checksum is S3's checksum of the part checksums (`…-N`), each part checked on arrival; it must
 * at least be there, or S3 did not check anything.
 */
function verifyChecksum(answered: string | undefined, object: ObjectToStore, where: string): void {
  const expected = Buffer.from(object.sha256, 'hex').toString('base64');
  const ok = Buffer.isBuffer(object.body) ? answered === expected : answered !== undefined && answered !== '';
  if (!ok) {
    throw new StoreError('verify', where, true, {
      cause: new Error(`S3 answered checksum ${answered ?? 'none'}, expected ${Buffer.isBuffer(object.body) ? expected : 'one'}`),
    });
  }
}

/**
 * Passes bytes through and fails the stream at its end unless they hash to `expected`: an upload of a
 * source rewritten between its hash and its read is aborted before S3 completes it, never left torn.
 */
export function verifyingHash(expected: string, relPath: string): Transform {
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
