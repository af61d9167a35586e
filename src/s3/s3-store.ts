import { HeadObjectCommand, S3Client, S3ServiceException, type StorageClass } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { SftppushError, StoreError } from '../errors.js';
import type { ObjectHead, ObjectStore, PutObjectRequest, StoredObject } from './object-store.js';

export interface S3StoreOptions {
  readonly endpoint: string | undefined;
  readonly region: string | undefined;
  readonly forcePathStyle: boolean;
  /** Upper bound of requests in flight: sockets are kept alive and shared, one pool per process. */
  readonly maxSockets: number;
}

/**
 * Builds the process's one S3 client. Credentials come from the AWS default chain (env, profile, SSO,
 * instance role); they are never read, logged or stored by sftppush. Without an endpoint the SDK also
 * honours AWS_ENDPOINT_URL_S3.
 */
export function createS3Client(options: S3StoreOptions): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
  return new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    forcePathStyle: options.forcePathStyle,
    requestHandler: new NodeHttpHandler({
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: 10_000,
      requestTimeout: 120_000,
    }),
    // Our own checksum (SHA-256, computed while hashing) is sent instead of the SDK's default CRC32.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** ObjectStore on @aws-sdk/client-s3 and lib-storage's Upload (single PUT or multipart by size). */
export class S3Store implements ObjectStore {
  constructor(private readonly client: S3Client) {}

  async put(request: PutObjectRequest): Promise<StoredObject> {
    const inMemory = Buffer.isBuffer(request.body);
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
        StorageClass: request.storageClass as StorageClass | undefined,
        ChecksumAlgorithm: 'SHA256',
        ...(inMemory ? { ChecksumSHA256: Buffer.from(request.sha256, 'hex').toString('base64') } : {}),
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
      throw new StoreError('put', where, isRetryable(error), { cause: error });
    }
    if (stored.checksumSha256 !== undefined || inMemory) return stored;
    // Some servers leave the checksum out of the multipart completion: ask for the version we just wrote.
    return { ...stored, checksumSha256: (await this.headVersion(request.bucket, request.key, stored.versionId))?.checksumSha256 };
  }

  head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    return this.headVersion(bucket, key, undefined);
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
      };
    } catch (error) {
      if (error instanceof S3ServiceException && error.$metadata.httpStatusCode === 404) return undefined;
      throw new StoreError('head', `s3://${bucket}/${key}`, isRetryable(error), { cause: error });
    }
  }
}

/** Throttling, 5xx and network faults may pass; a 4xx (denied, no such bucket) needs an operator. */
function isRetryable(error: unknown): boolean {
  if (error instanceof S3ServiceException) {
    const status = error.$metadata.httpStatusCode ?? 500;
    return status >= 500 || status === 408 || status === 429 || error.$retryable !== undefined;
  }
  return true;
}
