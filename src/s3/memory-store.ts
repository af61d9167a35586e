import { createHash, randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { SftppushError, StoreError } from '../errors.js';
import { PreconditionFailedError } from './object-store.js';
import type { ListedObject, ObjectHead, ObjectStore, PutObjectRequest, StoredObject } from './object-store.js';

export type StoreOperation = 'put' | 'head';

/** One stored object version, bytes included, so tests can check exactly what "S3" holds. */
export interface StoredVersion extends ObjectHead {
  readonly versionId: string;
  readonly body: Buffer;
  readonly options: PutObjectRequest['options'];
}

/** One call the store received, in order: lets a test assert e.g. that a first attempt never HEADs. */
export interface StoreCall {
  readonly operation: StoreOperation;
  readonly bucket: string;
  readonly key: string;
}

/** A fault to inject into the next call of one operation. */
export interface Fault {
  readonly error: StoreError;
  /**
   * For `put`: store the version first, then reject — S3 accepted the bytes but the answer was lost (a
   * network drop or a crash between PUT and ledger commit), the case a later attempt's HEAD exists for.
   */
  readonly afterStoring?: boolean;
}

export interface MemoryStoreOptions {
  /** When given, only these buckets exist and a put elsewhere fails like S3's NoSuchBucket; by default every bucket exists. */
  readonly buckets?: readonly string[];
  /** False: the store ignores If-None-Match / If-Match, as an endpoint without conditional writes does. */
  readonly conditionalWrites?: boolean;
}

/** S3's limit on user metadata: the UTF-8 bytes of every key and value together. */
export const MAX_METADATA_BYTES = 2048;

/**
 * An in-memory ObjectStore for fast tests. It keeps every version of every key and holds itself to the
 * checks real S3 makes, so a test that passes here does not pass only because the fake is lenient:
 * a buffer's bytes must match its declared SHA-256 and size (x-amz-checksum-sha256, Content-Length),
 * metadata must be header-safe ASCII within S3's 2 KB, and a failed stream stores nothing.
 */
export class MemoryStore implements ObjectStore {
  /** Every call received, faulted ones included. */
  readonly calls: StoreCall[] = [];
  /** Runs at the start of every put (after the call is recorded): lets a test act while an upload is in flight. */
  onPut: ((request: PutObjectRequest) => void | Promise<void>) | undefined;

  private readonly objects = new Map<string, StoredVersion[]>();
  private readonly faults: Record<StoreOperation, Fault[]> = { put: [], head: [] };
  private readonly buckets: ReadonlySet<string> | undefined;
  private readonly conditionalWrites: boolean;

  constructor(options: MemoryStoreOptions = {}) {
    this.buckets = options.buckets ? new Set(options.buckets) : undefined;
    this.conditionalWrites = options.conditionalWrites ?? true;
  }

  /** Makes the next call of `operation` reject with `error` (queued: several calls fail in turn). */
  failNext(operation: StoreOperation, error: StoreError = transientError(operation), options: { afterStoring?: boolean } = {}): void {
    this.faults[operation].push({ error, ...options });
  }

  /** Every version of a key, oldest first (empty when the key was never written). */
  versions(bucket: string, key: string): readonly StoredVersion[] {
    return [...(this.objects.get(objectId(bucket, key)) ?? [])];
  }

  /** Every key in a bucket with at least one version, sorted. */
  keys(bucket: string): string[] {
    const prefix = objectId(bucket, '');
    return [...this.objects.keys()].filter((id) => id.startsWith(prefix)).map((id) => id.slice(prefix.length)).sort();
  }

  async put(request: PutObjectRequest): Promise<StoredObject> {
    const where = `s3://${request.bucket}/${request.key}`;
    this.calls.push({ operation: 'put', bucket: request.bucket, key: request.key });
    const fault = this.faults.put.shift();
    try {
      await this.onPut?.(request);
      if (fault && !fault.afterStoring) throw fault.error;
      this.checkRequest(request, where);
      const body = Buffer.isBuffer(request.body) ? request.body : await readStream(request.body);
      if (Buffer.isBuffer(request.body)) checkDeclaredContent(request, body, where);
      // As S3: the precondition is checked when the write completes (for multipart, at the completion).
      this.checkCondition(request, where);
      // A copy: what S3 holds must not change if the caller reuses its buffer.
      const version = this.store(request, Buffer.from(body));
      if (fault) throw fault.error;
      return { etag: version.etag, versionId: version.versionId, checksumSha256: version.checksumSha256 };
    } catch (error) {
      // A stream the store never read still holds a file descriptor open: release it as S3Store's abort does.
      if (!Buffer.isBuffer(request.body)) request.body.destroy();
      // As S3Store: our own errors (a source that changed while streaming) pass as they are, all else is a StoreError.
      throw error instanceof SftppushError ? error : new StoreError('put', where, true, { cause: error });
    }
  }

  head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    this.calls.push({ operation: 'head', bucket, key });
    const fault = this.faults.head.shift();
    if (fault) return Promise.reject(fault.error);
    const latest = this.objects.get(objectId(bucket, key))?.at(-1);
    if (!latest) return Promise.resolve(undefined);
    const { etag, versionId, checksumSha256, sizeBytes, metadata, contentType, sse } = latest;
    return Promise.resolve({ etag, versionId, checksumSha256, sizeBytes, metadata: { ...metadata }, contentType, sse });
  }

  deleteVersion(bucket: string, key: string, versionId: string): Promise<void> {
    const id = objectId(bucket, key);
    const kept = (this.objects.get(id) ?? []).filter((v) => v.versionId !== versionId);
    if (kept.length > 0) this.objects.set(id, kept);
    else this.objects.delete(id);
    return Promise.resolve();
  }

  checkAccess(bucket: string): Promise<string | undefined> {
    const exists = !this.buckets || this.buckets.has(bucket);
    return Promise.resolve(exists ? undefined : `bucket ${bucket} does not exist (create it, with versioning on)`);
  }

  async *list(bucket: string, prefix: string): AsyncIterable<ListedObject> {
    await Promise.resolve();
    for (const key of this.keys(bucket).filter((k) => k.startsWith(prefix))) {
      const latest = this.objects.get(objectId(bucket, key))?.at(-1);
      if (latest) yield { key, sizeBytes: latest.sizeBytes, etag: latest.etag };
    }
  }

  /** Removes a key's latest version (an object deleted behind the archive's back, for tests of `--verify`). */
  deleteLatest(bucket: string, key: string): void {
    const versions = this.objects.get(objectId(bucket, key));
    versions?.pop();
    if (versions?.length === 0) this.objects.delete(objectId(bucket, key));
  }

  /** If-None-Match: * needs no object at the key; If-Match needs the latest version's ETag (S3's 412, or 404). */
  private checkCondition(request: PutObjectRequest, where: string): void {
    const condition = request.condition;
    if (!condition || !this.conditionalWrites) return;
    const latest = this.objects.get(objectId(request.bucket, request.key))?.at(-1);
    const holds = 'ifNoneMatch' in condition ? latest === undefined : latest?.etag === condition.ifMatch;
    if (!holds) throw new PreconditionFailedError(where, { cause: new Error(latest ? 'PreconditionFailed (412)' : 'NoSuchKey (404)') });
  }

  /** The request-level checks S3 makes before it looks at the body. */
  private checkRequest(request: PutObjectRequest, where: string): void {
    if (this.buckets && !this.buckets.has(request.bucket)) throw rejected(where, 'NoSuchBucket: the specified bucket does not exist');
    if (request.key === '' || Buffer.byteLength(request.key, 'utf8') > 1024) throw rejected(where, 'KeyTooLongError or empty key');
    let metadataBytes = 0;
    for (const [name, value] of Object.entries(request.metadata)) {
      // Names and values travel as HTTP headers (x-amz-meta-NAME): printable ASCII only, so callers must encode.
      if (!/^[\w!#$%&'*+.^`|~-]+$/.test(name) || !/^[\x20-\x7e]*$/.test(value)) {
        throw rejected(where, `metadata ${JSON.stringify(name)}: not a valid HTTP header name and value`);
      }
      metadataBytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value, 'utf8');
    }
    if (metadataBytes > MAX_METADATA_BYTES) {
      throw rejected(where, `MetadataTooLarge: ${metadataBytes} bytes of metadata, over S3's ${MAX_METADATA_BYTES}`);
    }
  }

  private store(request: PutObjectRequest, body: Buffer): StoredVersion {
    const version: StoredVersion = {
      etag: `"${createHash('md5').update(body).digest('hex')}"`,
      versionId: randomUUID().replaceAll('-', ''),
      checksumSha256: createHash('sha256').update(body).digest('base64'),
      sizeBytes: body.length,
      // Header names are case-insensitive: S3 answers with them in lower case.
      metadata: Object.freeze(Object.fromEntries(Object.entries(request.metadata).map(([n, v]) => [n.toLowerCase(), v]))),
      body,
      options: request.options,
      contentType: request.contentType,
      sse: request.options?.sse,
    };
    const id = objectId(request.bucket, request.key);
    this.objects.set(id, [...(this.objects.get(id) ?? []), Object.freeze(version)]);
    return version;
  }
}

/** A buffer is sent with its SHA-256 and length: S3 refuses the PUT when the bytes disagree with either. */
function checkDeclaredContent(request: PutObjectRequest, body: Buffer, where: string): void {
  if (body.length !== request.sizeBytes) {
    throw rejected(where, `IncompleteBody: ${body.length} bytes sent, Content-Length ${request.sizeBytes}`);
  }
  const actual = createHash('sha256').update(body).digest('hex');
  if (actual !== request.sha256) {
    throw rejected(where, `BadDigest: the SHA-256 you specified did not match the calculated checksum (${actual})`);
  }
}

/**
 * Reads a whole stream; its error rejects and nothing is stored, as an aborted multipart upload leaves nothing.
 * An I/O error becomes a retryable StoreError, as S3Store classifies a failed body (a later attempt reads the
 * source afresh); our own SftppushError is passed on as is by the caller.
 */
async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(chunks);
}

/** A 4xx: the same request will fail again. */
function rejected(where: string, reason: string): StoreError {
  return new StoreError('put', where, false, { cause: new Error(reason) });
}

function transientError(operation: StoreOperation): StoreError {
  return new StoreError(operation, 'memory-store', true, { cause: new Error('SlowDown: injected fault') });
}

function objectId(bucket: string, key: string): string {
  return `${bucket}\0${key}`;
}
