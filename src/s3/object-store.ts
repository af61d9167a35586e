import type { Readable } from 'node:stream';

/** One object to write. The store sends exactly these bytes or fails; it never retries with other bytes. */
export interface PutObjectRequest {
  readonly bucket: string;
  readonly key: string;
  /** The whole content in memory (sent in one PUT with its SHA-256 for S3 to check), or a stream (multipart). */
  readonly body: Buffer | Readable;
  readonly sizeBytes: number;
  /** Hex SHA-256 of the content; goes into the `sha256` metadata so a later attempt can recognise the object. */
  readonly sha256: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly storageClass?: string | undefined;
  readonly partSizeBytes: number;
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
}

/**
 * The slice of S3 the pipeline uses. Implementations throw `StoreError` for S3's failures; an error a
 * stream body raises with our own verdict (a `SftppushError`, e.g. the source changed) passes through as is.
 */
export interface ObjectStore {
  /**
   * Writes one object version. Resolves only when S3 has accepted the bytes with a checksum it checked.
   * @throws StoreError, with `retryable` set for throttling, 5xx and network faults.
   */
  put(request: PutObjectRequest): Promise<StoredObject>;
  /** The latest version's metadata, or undefined when the key does not exist. @throws StoreError */
  head(bucket: string, key: string): Promise<ObjectHead | undefined>;
}
