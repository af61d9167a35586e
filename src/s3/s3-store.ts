import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandInput,
  S3Client,
  S3ServiceException,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StandardRetryStrategy } from '@smithy/core/retry';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type {
  DeserializeMiddleware,
  FinalizeRequestMiddleware,
  HttpHandlerOptions,
  InitializeMiddleware,
  Logger as SdkLogger,
  RetryErrorInfo,
  StandardRetryToken,
} from '@smithy/types';
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import { describeCause, NotS3AnswerError, SftppushError, StoreError, UploadAbandonedError } from '../errors.js';
import { MAX_OBJECT_BYTES, partSizeFor, partsInFlight, type MultipartJournal, type MultipartUploads, type OpenUpload } from './multipart.js';
import { classifyAttempt, type S3Attempt } from './request-outcome.js';
import {
  PreconditionFailedError,
  type BucketVersioning,
  PROBE_KEY_SEGMENT,
  type ConditionalWriteSupport,
  type ListedObject,
  type ObjectHead,
  type ObjectStore,
  type PutObjectRequest,
  type StoredObject,
} from './object-store.js';

export interface S3StoreOptions {
  readonly endpoint: string | undefined;
  readonly region: string | undefined;
  readonly forcePathStyle: boolean;
  /** Upper bound of requests in flight: sockets are kept alive and shared, one pool per process. */
  readonly maxSockets: number;
  /** Where the SDK's and its HTTP handler's own warnings go (both write to the console otherwise). */
  readonly warn?: ((detail: string) => void) | undefined;
  /** Told how every request attempt ended (metrics, and whether S3 answers: /healthz). Must not throw. */
  readonly onAttempt?: ((attempt: S3Attempt) => void) | undefined;
  /**
   * A request with no byte moving either way for this long is abandoned (a socket idle timeout): a stalled
   * answer then fails as a retryable error, and a write goes back through the gate, which finds what landed.
   */
  readonly requestTimeoutMs: number;
}

/**
 * The SDK's HTTP handler, plus a way to abandon every request in flight at once (stopping): each request gets
 * an AbortController of its own, which `abortInFlight()` fires, held until its answer's body is closed. Not one
 * signal shared by all: the SDK adds an abort listener per request to the signal it is given, and more than 10
 * on one signal make Node print a MaxListenersExceededWarning on stderr; nor AbortSignal.any() with a
 * long-lived signal, which keeps a reference per call on it (Node 20).
 */
class StoppableHttpHandler extends NodeHttpHandler {
  private readonly inFlight = new Set<AbortController>();

  override async handle(request: Parameters<NodeHttpHandler['handle']>[0], options: HttpHandlerOptions = {}): ReturnType<NodeHttpHandler['handle']> {
    const own = new AbortController();
    // The caller's signal (a put's own, or a ping's timeout) carries one request at a time: a listener is fine.
    const caller = options.abortSignal as AbortSignal | undefined;
    const follow = (): void => own.abort(caller?.reason);
    if (caller?.aborted) follow();
    else caller?.addEventListener('abort', follow, { once: true });
    this.inFlight.add(own);
    const settled = (): void => {
      this.inFlight.delete(own);
      caller?.removeEventListener('abort', follow);
    };
    try {
      const result = await super.handle(request, { ...options, abortSignal: own.signal as HttpHandlerOptions['abortSignal'] });
      // The body may still be streaming (a GetObject): abandoning must cut that too.
      const body = result.response.body as Partial<Readable> | undefined;
      if (typeof body?.once === 'function' && !body.closed) body.once('close', settled);
      else settled();
      return result;
    } catch (error) {
      settled();
      throw error;
    }
  }

  abortInFlight(): void {
    for (const controller of this.inFlight) controller.abort();
    this.inFlight.clear();
  }
}

/** Requests the SDK's default of 3 attempts applies to; writes get exactly one (see WritesOnceRetryStrategy). */
const MAX_ATTEMPTS = 3;

/**
 * S3 operations that create an object version. A lost answer to one of them may hide a write that landed,
 * so only the write gate (a conditional write, or a HEAD) may send it again, never the transport.
 */
const VERSION_WRITES = new Set(['PutObjectCommand', 'CompleteMultipartUploadCommand']);

/** Marks an error as the answer to a write, which the retry strategy below must not retry. */
const WRITE_FAILED = Symbol('sftppush.writeFailed');

/**
 * The SDK's standard retries (backoff, throttling, retry quota) for reads, part uploads and multipart
 * bookkeeping (a part overwrites itself, a HEAD changes nothing), and none for a write that creates a version.
 */
class WritesOnceRetryStrategy extends StandardRetryStrategy {
  override async refreshRetryTokenForRetry(token: StandardRetryToken, errorInfo: RetryErrorInfo): Promise<StandardRetryToken> {
    const error = errorInfo.error as (Error & { [WRITE_FAILED]?: boolean }) | undefined;
    // Thrown as is: the retry middleware then hands the write's own error to the caller, unretried.
    if (error?.[WRITE_FAILED]) throw error;
    return super.refreshRetryTokenForRetry(token, errorInfo);
  }
}

/**
 * Runs inside the retry loop, once per attempt: tags the failure of a version-creating write so the retry
 * strategy hands it straight back to our gate instead of sending the same write again.
 */
const tagWriteFailures: FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next, context) => async (args) => {
  try {
    return await next(args);
  } catch (error) {
    if (VERSION_WRITES.has(context.commandName ?? '') && typeof error === 'object' && error !== null) {
      Object.defineProperty(error, WRITE_FAILED, { value: true });
    }
    throw error;
  }
};

/** Headers S3 (and S3-compatible servers: MinIO, Ceph, moto) put on every answer, error or not. */
const S3_REQUEST_ID_HEADERS = ['x-amz-request-id', 'x-amz-id-2', 'x-amzn-requestid'];

/**
 * Runs on every raw answer, before the SDK parses it: an HTML page without any of S3's request-id headers is
 * a proxy's or a web server's, not S3's (S3 itself answers text/html only for an object stored as such, with
 * its request id). Caught here, it is one clear error naming the endpoint, instead of a "success" the SDK read
 * from a 200 page's headers, a 403 taken for a denied policy, or a 502 retried as an outage forever.
 */
const rejectNonS3Answers: DeserializeMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next) => async (args) => {
  const result = await next(args);
  const response = result.response as { statusCode?: number; headers?: Record<string, string | undefined> } | undefined;
  const contentType = response?.headers?.['content-type'] ?? '';
  if (/^\s*text\/html\b/i.test(contentType) && !S3_REQUEST_ID_HEADERS.some((name) => response?.headers?.[name] !== undefined)) {
    const request = args.request as { protocol?: string; hostname?: string; port?: number };
    const endpoint = `${request.protocol ?? 'https:'}//${request.hostname ?? '?'}${request.port ? `:${request.port}` : ''}`;
    (result.response as { body?: { destroy?: () => void } }).body?.destroy?.();
    throw new NotS3AnswerError(endpoint, response?.statusCode ?? 0, contentType.split(';')[0]!.trim());
  }
  return result;
};

/** Runs once per attempt, inside the retry loop: reports how each attempt ended. */
function reportAttempts(onAttempt: (attempt: S3Attempt) => void): FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> {
  return (next, context) => async (args) => {
    const operation = context.commandName ?? 'unknown';
    try {
      const output = await next(args);
      onAttempt(classifyAttempt(operation, undefined));
      return output;
    } catch (error) {
      onAttempt(classifyAttempt(operation, error));
      throw error;
    }
  };
}

/**
 * The SDK's logger: its warnings (and its HTTP handler's: the socket pool at capacity) go to `sink`; the rest
 * nowhere. Not a NoOpLogger: the SDK writes warnings to the console exactly when its logger is one.
 */
function sdkWarnings(sink: (detail: string) => void): SdkLogger {
  const ignore = (): void => undefined;
  return {
    debug: ignore,
    info: ignore,
    error: ignore,
    warn: (...content: unknown[]) => sink(content.map((c) => (typeof c === 'string' ? c : describeCause(c))).join(' ')),
  };
}

/**
 * Builds the process's one S3 client. Credentials come from the AWS default chain (env, profile, SSO,
 * instance role); they are never read, logged or stored by sftppush. Without an endpoint the SDK also
 * honours AWS_ENDPOINT_URL_S3. Writes that create an object version are never retried by the SDK.
 */
export function createS3Client(options: S3StoreOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
  const logger = options.warn ? sdkWarnings(options.warn) : undefined;
  const client = new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle,
    requestHandler: new StoppableHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 10_000,
      // Not `requestTimeout`: without throwOnRequestTimeout it only prints a console warning, and it would
      // also cut a large part that is slow but moving. An idle socket is what a stalled answer looks like.
      socketTimeout: options.requestTimeoutMs,
      // The handler's warnings (socket pool at capacity) default to console.warn: they go to pino instead.
      ...(logger ? { logger } : {}),
    }),
    retryStrategy: new WritesOnceRetryStrategy(MAX_ATTEMPTS),
    ...(logger ? { logger } : {}),
    // Our own checksum (SHA-256, computed while hashing) is sent instead of the SDK's default CRC32.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  // Inside the SDK's deserializer: sees the raw answer first.
  client.middlewareStack.add(rejectNonS3Answers, { step: 'deserialize', name: 'sftppushRejectNonS3Answers', priority: 'low' });
  client.middlewareStack.addRelativeTo(tagWriteFailures, {
    name: 'sftppushTagWriteFailures',
    relation: 'after',
    toMiddleware: 'retryMiddleware',
  });
  if (options.onAttempt) {
    client.middlewareStack.addRelativeTo(reportAttempts(options.onAttempt), {
      name: 'sftppushReportAttempts',
      relation: 'after',
      toMiddleware: 'retryMiddleware',
    });
  }
  return client;
}

/** ObjectStore on @aws-sdk/client-s3: a buffer in one PutObject, a stream through lib-storage's Upload (one PUT or multipart by size). */
export class S3Store implements ObjectStore, MultipartUploads {
  /** Multipart uploads this process opened and has not closed, by upload id. */
  private readonly open = new Map<string, OpenUpload>();
  /** Of those, the uploads whose CompleteMultipartUpload was sent and not answered. */
  private readonly completing = new Set<string>();
  /** One per put in flight: abandonUploads() stops each (lib-storage between requests; the handler cuts those in flight). */
  private readonly uploads = new Set<AbortController>();
  private abandoning = false;

  /** @param journal told of every multipart upload this client opens and closes (the ledger keeps them). */
  constructor(
    private readonly client: S3Client,
    private readonly journal?: MultipartJournal,
  ) {
    client.middlewareStack.add(this.trackMultipart, { step: 'initialize', name: 'sftppushTrackMultipart', override: true });
  }

  async put(request: PutObjectRequest): Promise<StoredObject> {
    const where = `s3://${request.bucket}/${request.key}`;
    if (this.abandoning) throw new UploadAbandonedError(where);
    if (request.sizeBytes > MAX_OBJECT_BYTES) {
      throw new StoreError('put', where, false, { cause: new Error(`${request.sizeBytes} bytes: larger than S3's largest object (5 TiB)`) });
    }
    const { body } = request;
    const inMemory = Buffer.isBuffer(body);
    const condition = request.condition;
    const params = {
      Bucket: request.bucket,
      Key: request.key,
      Metadata: { ...request.metadata },
      ContentType: request.contentType,
      StorageClass: request.options?.storageClass as StorageClass | undefined,
      ServerSideEncryption: request.options?.sse,
      SSEKMSKeyId: request.options?.kmsKeyId,
      // As a parameter, not lib-storage's `tags` option: that one tags a multipart object in a second request
      // after completion (which a crash in between would skip); Tagging goes with the PUT or the creation.
      Tagging: request.options?.tags ? new URLSearchParams(Object.entries(request.options.tags)).toString() : undefined,
      ChecksumAlgorithm: 'SHA256' as const,
      // lib-storage passes these on to the single PUT or to the multipart completion.
      ...(condition && 'ifNoneMatch' in condition ? { IfNoneMatch: condition.ifNoneMatch } : {}),
      ...(condition && 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : {}),
    };
    const abandon = new AbortController();
    let stored: StoredObject;
    this.uploads.add(abandon);
    try {
      const result = inMemory
        ? // A buffer is always one PUT, without lib-storage's machinery: its whole-object SHA-256 goes with it
          // and S3 rejects any other bytes.
          await this.client.send(
            new PutObjectCommand({
              ...params,
              Body: body,
              ContentLength: request.sizeBytes,
              ChecksumSHA256: Buffer.from(request.sha256, 'hex').toString('base64'),
            }),
            { abortSignal: abandon.signal },
          )
        : await this.upload(body, request.sizeBytes, request.partSizeBytes, params, abandon);
      stored = { etag: result.ETag, versionId: result.VersionId, checksumSha256: result.ChecksumSHA256 };
    } catch (error) {
      if (this.abandoning) throw new UploadAbandonedError(where);
      // Our own verdict on the source (it changed while streaming) is not an S3 failure: pass it on as is.
      if (error instanceof SftppushError && !(error instanceof StoreError) && !(error instanceof NotS3AnswerError)) throw error;
      if (condition && isPreconditionFailure(error, condition)) throw new PreconditionFailedError(where, { cause: error });
      throw new StoreError('put', where, isRetryable(error), { cause: error });
    } finally {
      this.uploads.delete(abandon);
    }
    if (stored.checksumSha256 !== undefined || inMemory) return stored;
    // Some servers leave the checksum out of the multipart completion: ask for the version we just wrote.
    return { ...stored, checksumSha256: (await this.headVersion(request.bucket, request.key, stored.versionId))?.checksumSha256 };
  }

  /**
   * A stream through lib-storage's Upload: one PUT when it fits one part, else a multipart upload whose parts
   * grow with the file (partSizeFor) and go partsInFlight() at a time; the completion carries the condition.
   * lib-storage copies each part into a buffer of its own, which it holds until the part is sent.
   */
  private async upload(
    body: Readable,
    sizeBytes: number,
    preferredPartBytes: number,
    params: Omit<PutObjectCommandInput, 'Body'>,
    abandon: AbortController,
  ): Promise<{ ETag?: string | undefined; VersionId?: string | undefined; ChecksumSHA256?: string | undefined }> {
    const partSize = partSizeFor(sizeBytes, preferredPartBytes);
    const upload = new Upload({
      client: this.client,
      partSize,
      queueSize: partsInFlight(partSize),
      leavePartsOnError: false,
      abortController: abandon,
      // ContentLength: lib-storage then refuses to complete with fewer or more parts than the size makes.
      params: { ...params, Body: body, ContentLength: sizeBytes },
    });
    return upload.done();
  }

  head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    return this.headVersion(bucket, key, undefined);
  }

  async *listOpen(bucket: string, prefix: string): AsyncIterable<OpenUpload> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (error) {
        throw new StoreError('list-multipart', `s3://${bucket}/${prefix}`, isRetryable(error), { cause: error });
      }
      for (const upload of page.Uploads ?? []) {
        if (upload.Key !== undefined && upload.UploadId !== undefined) yield { bucket, key: upload.Key, uploadId: upload.UploadId };
      }
      [keyMarker, uploadIdMarker] = page.IsTruncated ? [page.NextKeyMarker, page.NextUploadIdMarker] : [undefined, undefined];
    } while (keyMarker !== undefined);
  }

  async abort(upload: OpenUpload): Promise<boolean> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: upload.bucket, Key: upload.key, UploadId: upload.uploadId }));
      return true;
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) {
        this.closed(upload.uploadId);
        return false;
      }
      throw new StoreError('abort-multipart', `s3://${upload.bucket}/${upload.key}`, isRetryable(error), { cause: error });
    }
  }

  /**
   * Stopping now: abandons every upload in flight (their puts reject with UploadAbandonedError; a single PUT
   * that landed anyway is found by the gate next time), fails every later put at once, and aborts each
   * multipart upload this process opened and did not close, so no parts are left behind.
   * @returns `aborted`: by this call, or by lib-storage's own abort of an upload whose parts were cut (S3 then
   *   no longer knows it); `completed`: S3 no longer knows an upload whose CompleteMultipartUpload had been
   *   sent, so the completion landed and the object stands (the next attempt's gate finds it); `failed`: S3
   *   could not be asked to abort (the next start does).
   */
  async abandonUploads(): Promise<{ aborted: OpenUpload[]; completed: OpenUpload[]; failed: { upload: OpenUpload; error: StoreError }[] }> {
    this.abandoning = true;
    for (const upload of this.uploads) upload.abort();
    const handler = this.client.config.requestHandler;
    if (handler instanceof StoppableHttpHandler) handler.abortInFlight();
    const aborted: OpenUpload[] = [];
    const completed: OpenUpload[] = [];
    const failed: { upload: OpenUpload; error: StoreError }[] = [];
    await Promise.all(
      [...this.open.values()].map(async (upload) => {
        const completionSent = this.completing.has(upload.uploadId);
        try {
          if ((await this.abort(upload)) || !completionSent) aborted.push(upload);
          else completed.push(upload);
        } catch (error) {
          failed.push({ upload, error: error as StoreError });
        }
      }),
    );
    return { aborted, completed, failed };
  }

  /** Records multipart uploads as S3 opens and closes them, whoever sends the request (lib-storage, abort()). */
  private readonly trackMultipart: InitializeMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next, context) => async (args) => {
    const input = args.input as { Bucket?: string; Key?: string; UploadId?: string };
    // Sent, the completion may land whatever becomes of its answer (lost, or cut by abandonUploads()).
    if (context.commandName === 'CompleteMultipartUploadCommand' && input.UploadId !== undefined) this.completing.add(input.UploadId);
    const result = await next(args);
    if (context.commandName === 'CreateMultipartUploadCommand') {
      const uploadId = (result.output as { UploadId?: string }).UploadId;
      if (uploadId !== undefined && input.Bucket !== undefined && input.Key !== undefined) {
        const upload = { bucket: input.Bucket, key: input.Key, uploadId };
        this.open.set(uploadId, upload);
        this.journal?.opened(upload);
      }
    } else if (
      (context.commandName === 'CompleteMultipartUploadCommand' || context.commandName === 'AbortMultipartUploadCommand') &&
      input.UploadId !== undefined
    ) {
      this.closed(input.UploadId);
    }
    return result;
  };

  private closed(uploadId: string): void {
    this.open.delete(uploadId);
    this.completing.delete(uploadId);
    this.journal?.closed(uploadId);
  }

  async *list(bucket: string, prefix: string): AsyncIterable<ListedObject> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
      } catch (error) {
        throw new StoreError('list', `s3://${bucket}/${prefix}`, isRetryable(error), { cause: error });
      }
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield { key: object.Key, sizeBytes: object.Size ?? 0, etag: object.ETag };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Finds out once how the endpoint treats conditional writes: an empty PUT with `If-Match` on a random key
   * that cannot exist. S3, MinIO and moto answer 404 NoSuchKey (or 412) and write nothing; an endpoint that
   * refuses the header answers 501 or 400; one that ignores it writes the object, which is deleted again.
   * @param keyPrefix where the probe key goes (the configured prefix, so the IAM policy covers it).
   * @throws StoreError when S3 cannot be asked (unreachable, denied): the answer is unknown.
   */
  async probeConditionalWrites(bucket: string, keyPrefix: string): Promise<ConditionalWriteSupport> {
    const key = `${keyPrefix}${PROBE_KEY_SEGMENT}${randomUUID()}`;
    let written;
    try {
      written = await this.client.send(
        new PutObjectCommand({ Bucket: bucket, Key: key, Body: '', ContentLength: 0, IfMatch: '"sftppush-probe"' }),
      );
    } catch (error) {
      const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
      // A missing bucket answers 404 too, and says nothing about the headers: undecided, asked again later.
      if (error instanceof S3ServiceException && error.name === 'NoSuchBucket') {
        throw new StoreError('probe', `s3://${bucket}/${key}`, true, { cause: error });
      }
      if (status === 404 || status === 412) return 'honoured';
      if (status === 501 || status === 400) return 'refused';
      throw new StoreError('probe', `s3://${bucket}/${key}`, isRetryable(error), { cause: error });
    }
    // The header was ignored and an empty object written: remove that very version (best effort; under our
    // prefix), so a versioned bucket keeps no probe litter.
    await this.client
      .send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: written.VersionId }))
      .catch(() => undefined);
    return 'ignored';
  }

  /**
   * What this service may do with a bucket, asked once at start: HeadBucket (missing: 404; denied: 403), then a
   * HEAD of a random key under `keyPrefix` that cannot exist, which must answer 404: S3 answers 403 instead when
   * the policy lacks s3:ListBucket, and every "is it there yet?" of the write gate would then fail forever.
   * @returns undefined when all is well, else what is wrong, for a person.
   * @throws StoreError (retryable) when S3 cannot be asked now (unreachable, 5xx): the answer is unknown.
   */
  async checkAccess(bucket: string, keyPrefix: string): Promise<string | undefined> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (error) {
      const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
      if (status === 404) return `bucket ${bucket} does not exist (create it, with versioning on)`;
      if (status === 403) return `access to bucket ${bucket} is denied (the policy needs s3:ListBucket on it: see README "Install")`;
      throw new StoreError('head-bucket', bucket, true, { cause: error });
    }
    const key = `${keyPrefix}${PROBE_KEY_SEGMENT}${randomUUID()}`;
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return undefined;
    } catch (error) {
      const status = error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
      if (status === 404) return undefined;
      if (status === 403) {
        return `a HEAD of a missing key in bucket ${bucket} answers 403, not 404: the policy lacks s3:ListBucket (or s3:GetObject) on ${keyPrefix}* (see README "Install")`;
      }
      throw new StoreError('head', `s3://${bucket}/${key}`, true, { cause: error });
    }
  }

  /**
   * The bucket's versioning (GetBucketVersioning): `Off` for a bucket where it was never turned on.
   * @throws StoreError when S3 cannot be asked (unreachable, denied, no such bucket).
   */
  async versioning(bucket: string): Promise<BucketVersioning> {
    try {
      const { Status } = await this.client.send(new GetBucketVersioningCommand({ Bucket: bucket }));
      return Status ?? 'Off';
    } catch (error) {
      throw new StoreError('get bucket versioning', `s3://${bucket}`, isRetryable(error), { cause: error });
    }
  }

  /**
   * Asks S3 something cheap (a HEAD of a key under `keyPrefix` that is never written), so an idle service
   * still knows whether S3 answers. The answer itself does not matter (404, or 403 without s3:ListBucket):
   * the client's onAttempt hears how it ended. Never throws; gives up after `timeoutMs`.
   */
  async ping(bucket: string, keyPrefix: string, timeoutMs: number): Promise<void> {
    const key = `${keyPrefix}${PROBE_KEY_SEGMENT}ping`;
    await this.client
      .send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: AbortSignal.timeout(timeoutMs) })
      .catch(() => undefined);
  }

  async deleteVersion(bucket: string, key: string, versionId: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) return;
      throw new StoreError('delete version', `s3://${bucket}/${key}?versionId=${versionId}`, isRetryable(error), { cause: error });
    }
  }

  private async headVersion(bucket: string, key: string, versionId: string | undefined): Promise<ObjectHead | undefined> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId, ChecksumMode: 'ENABLED' }),
      );
      return {
        etag: head.ETag,
        versionId: head.VersionId,
        checksumSha256: head.ChecksumSHA256,
        sizeBytes: head.ContentLength ?? 0,
        metadata: head.Metadata ?? {},
        contentType: head.ContentType,
        sse: head.ServerSideEncryption,
      };
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) return undefined;
      // Cut by abandonUploads(): the file's step is abandoned, not failing (no retry counted, no warning).
      if (this.abandoning) throw new UploadAbandonedError(`s3://${bucket}/${key}`, 'head');
      throw new StoreError('head', `s3://${bucket}/${key}`, isRetryable(error), { cause: error });
    }
  }
}

/** 412, or S3's answer to If-Match on a key that holds no object (404 NoSuchKey). */
function isPreconditionFailure(error: unknown, condition: NonNullable<PutObjectRequest['condition']>): boolean {
  if (!(error instanceof S3ServiceException)) return false;
  const status = error.$metadata.httpStatusCode;
  return status === 412 || (status === 404 && 'ifMatch' in condition && error.name !== 'NoSuchBucket');
}

/**
 * Throttling, 5xx and network faults may pass; so may a 409 ConditionalRequestConflict (a conditional write
 * raced another operation on the key: S3 says retry). Other 4xx (denied, no such bucket) need an operator.
 */
function isRetryable(error: unknown): boolean {
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode ?? 500;
    return status >= 500 || status === 408 || status === 409 || status === 429 || error.$retryable !== undefined;
  }
  return true;
}

