import type { Readable } from 'node:stream';
import { StoreError } from '../errors.js';

/**
 * The precondition of a write (S3 conditional writes). `ifNoneMatch: '*'`: only if the key holds no object;
 * `ifMatch`: only if the key's latest version still has this ETag.
 */
export type WriteCondition = { readonly ifNoneMatch: '*' } | { readonly ifMatch: string };

/**
 * How every object is stored (`[s3]` storage_class, sse, kms_key_id, tags): set on the single PUT or on the
 * multipart upload's creation alike, so a large file is never stored differently from a small one.
 */
export interface ObjectOptions {
  readonly storageClass?: string | undefined;
  /** Server-side encryption: S3-managed keys (`AES256`) or KMS (`aws:kms`, with `kmsKeyId` or the bucket's key). */
  readonly sse?: 'AES256' | 'aws:kms' | undefined;
  readonly kmsKeyId?: string | undefined;
  /** Object tags (S3 allows 10), written with the object, never in a second request. */
  readonly tags?: Readonly<Record<string, string>> | undefined;
}

/** One object to write. The store sends exactly these bytes or fails; it never retries a write with other bytes. */
export interface PutObjectRequest {
  readonly bucket: string;
  readonly key: string;
  /** The whole content in memory (sent in one PUT with its SHA-256 for S3 to check), or a stream (multipart). */
  readonly body: Buffer | Readable;
  readonly sizeBytes: number;
  /** Hex SHA-256 of the content; goes into the `sha256` metadata so a later attempt can recognise the object. */
  readonly sha256: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly options?: ObjectOptions | undefined;
  /** The Content-Type the object is served with. */
  readonly contentType?: string | undefined;
  readonly partSizeBytes: number;
  /** Sent as If-None-Match / If-Match on the PUT or the multipart completion; absent: an unconditional write. */
  readonly condition?: WriteCondition | undefined;
}

/** S3's own receipt for an object: what the ledger records as proof. */
export interface StoredObject {
  readonly etag: string | undefined;
  readonly versionId: string | undefined;
  /** Base64 SHA-256 that S3 computed and checked (for multipart: the checksum of part checksums, `…-N`). */
  readonly checksumSha256: string | undefined;
}

export interface ObjectHead extends StoredObject {
  readonly sizeBytes: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly contentType?: string | undefined;
  /** The server-side encryption S3 applied (`AES256`, `aws:kms`), if it says. */
  readonly sse?: string | undefined;
}

/** One key's latest version as a listing shows it (ListObjectsV2: 1000 per request). */
export interface ListedObject {
  readonly key: string;
  readonly sizeBytes: number;
  readonly etag: string | undefined;
}

/** A bucket's versioning status, as GetBucketVersioning answers it (`Off`: never enabled). */
export type BucketVersioning = 'Enabled' | 'Suspended' | 'Off';

/** How the endpoint treats conditional writes, as probed once (`s3.conditional_writes = "auto"`). */
export type ConditionalWriteSupport = 'honoured' | 'refused' | 'ignored';

/** The key segment of the conditional-write probe's object (never a file's: its name starts with a dot). */
export const PROBE_KEY_SEGMENT = '.sftppush-probe/';

/**
 * A conditional write's precondition did not hold (HTTP 412, or 404 for If-Match on a key with no object):
 * S3 holds something other than the writer believed. Not a failure: the write gate HEADs and decides.
 */
export class PreconditionFailedError extends StoreError {
  override readonly code = 'E_S3_PRECONDITION';
  constructor(key: string, options: { cause: unknown }) {
    super('put', key, false, options);
  }
}

/**
 * The slice of S3 the pipeline uses. Implementations throw `StoreError` for S3's failures; an error a
 * stream body raises with our own verdict (a `SftppushError`, e.g. the source changed) passes through as is.
 * A write (single PUT or multipart completion) is sent once: a lost answer is a retryable StoreError, and
 * the caller's gate, not the transport, decides whether to write again.
 */
export interface ObjectStore {
  /**
   * Writes one object version. Resolves only when S3 has accepted the bytes with a checksum it checked.
   * @throws PreconditionFailedError when `request.condition` did not hold (nothing was written).
   * @throws StoreError, with `retryable` set for throttling, 5xx and network faults (the write may have landed).
   */
  put(request: PutObjectRequest): Promise<StoredObject>;
  /** The latest version's metadata, or undefined when the key does not exist. @throws StoreError */
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
  /** Every key under `prefix` with its latest version's size and ETag, in key order. @throws StoreError */
  list(bucket: string, prefix: string): AsyncIterable<ListedObject>;
  /**
   * Whether this service can use `bucket` under `keyPrefix` (exists, not denied, a missing key answers "not
   * found"), asked at start. Reads only.
   * @returns undefined when it can, else what is wrong, naming the bucket and the permission, for a person.
   * @throws StoreError (retryable) when the store cannot be asked now.
   */
  checkAccess(bucket: string, keyPrefix: string): Promise<string | undefined>;
  /**
   * Removes one version this service wrote (DeleteObject with its VersionId): a torn archive's members are
   * withdrawn, and the key's previous version is S3's latest again. Idempotent: a version already gone is no
   * error. @throws StoreError
   */
  deleteVersion(bucket: string, key: string, versionId: string): Promise<void>;
}
