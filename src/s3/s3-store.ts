import {
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StandardRetryStrategy } from '@smithy/core/retry';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { FinalizeRequestMiddleware, Logger as SdkLogger, RetryErrorInfo, StandardRetryToken } from '@smithy/types';
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { SftppushError, StoreError } from '../errors.js';
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
  /** Where the SDK's own warnings go (it writes to the console otherwise). */
  readonly logger?: SdkLogger | undefined;
  /** Told how every request attempt ended (metrics, and whether S3 answers: /healthz). Must not throw. */
  readonly onAttempt?: ((attempt: S3Attempt) => void) | undefined;
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
 * Builds the process's one S3 client. Credentials come from the AWS default chain (env, profile, SSO,
 * instance role); they are never read, logged or stored by sftppush. Without an endpoint the SDK also
 * honours AWS_ENDPOINT_URL_S3. Writes that create an object version are never retried by the SDK.
 */
export function createS3Client(options: S3StoreOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
  const client = new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle,
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
    }),
    retryStrategy: new WritesOnceRetryStrategy(MAX_ATTEMPTS),
    ...(options.logger ? { logger: options.logger } : {}),
    // Our own checksum (SHA-256, computed while hashing) is sent instead of the SDK's default CRC32.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
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

/** ObjectStore on @aws-sdk/client-s3 and lib-storage's Upload (single PUT or multipart by size). */
export class S3Store implements ObjectStore {
  constructor(private readonly client: S3Client) {}

  async put(request: PutObjectRequest): Promise<StoredObject> {
    const inMemory = Buffer.isBuffer(request.body);
    const condition = request.condition;
    const upload = new Upload({
      client: this.client,
      // A buffer is always one PUT: its whole-object SHA-256 goes with it and S3 rejects any other bytes.
      partSize: inMemory ? Math.max(request.partSizeBytes, request.sizeBytes + 1) : request.partSizeBytes,
      queueSize: 4,
      leavePartsOnError: false,
      params: {
        Bucket: request.bucket,
        Key: request.key,
        Body: request.body,
        ContentLength: inMemory ? request.sizeBytes : undefined,
        Metadata: { ...request.metadata },
        ContentType: request.contentType,
        StorageClass: request.options?.storageClass as StorageClass | undefined,
        ServerSideEncryption: request.options?.sse,
        SSEKMSKeyId: request.options?.kmsKeyId,
        // As a parameter, not lib-storage's `tags` option: that one tags a multipart object in a second request
        // after completion (which a crash in between would skip); Tagging goes with the PUT or the creation.
        Tagging: request.options?.tags ? new URLSearchParams(Object.entries(request.options.tags)).toString() : undefined,
        ChecksumAlgorithm: 'SHA256',
        ...(inMemory ? { ChecksumSHA256: Buffer.from(request.sha256, 'hex').toString('base64') } : {}),
        // lib-storage passes these on to the single PUT or to the multipart completion.
        ...(condition && 'ifNoneMatch' in condition ? { IfNoneMatch: condition.ifNoneMatch } : {}),
        ...(condition && 'ifMatch' in condition ? { IfMatch: condition.ifMatch } : {}),
      },
    });
    const where = `s3://${request.bucket}/${request.key}`;
    let stored: StoredObject;
    try {
      const result = await upload.done();
      stored = { etag: result.ETag, versionId: result.VersionId, checksumSha256: result.ChecksumSHA256 };
    } catch (error) {
      // Our own verdict on the source (it changed while streaming) is not an S3 failure: pass it on as is.
      if (error instanceof SftppushError && !(error instanceof StoreError)) throw error;
      if (condition && isPreconditionFailure(error, condition)) throw new PreconditionFailedError(where, { cause: error });
      throw new StoreError('put', where, isRetryable(error), { cause: error });
    }
    if (stored.checksumSha256 !== undefined || inMemory) return stored;
    // Some servers leave the checksum out of the multipart completion: ask for the version we just wrote.
    return { ...stored, checksumSha256: (await this.headVersion(request.bucket, request.key, stored.versionId))?.checksumSha256 };
  }

  head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    return this.headVersion(bucket, key, undefined);
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

