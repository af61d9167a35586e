import type { Logger } from 'pino';
import { describeCause, StoreError, UploadAbandonedError } from '../errors.js';
import type { ListedObject, ObjectHead, ObjectStore, PutObjectRequest, StoredObject } from './object-store.js';
import { classifyAttempt } from './request-outcome.js';

/**
 * How S3 is failing, as an operator would want to tell it apart (and alert on). `not-s3`: something other than
 * S3 answers at the endpoint (an HTML page from a proxy or a wrong endpoint): it needs an operator.
 */
export type OutageKind = 'unreachable' | 'timeout' | 'throttled' | 'server-error' | 'not-s3';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/**
 * The kind of S3 outage a StoreError shows, or undefined when it is not one (an answer such as 403 or 412,
 * a write the gate gave up on, an upload abandoned at stop). Duck-typed on the SDK's error shape, so this
 * module never loads the SDK.
 */
export function outageKind(error: unknown): OutageKind | undefined {
  if (!(error instanceof StoreError) || error instanceof UploadAbandonedError) return undefined;
  const cause = error.cause as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  if (cause === undefined || cause === null) return undefined;
  // One classification of S3's answers (request-outcome.ts, which metrics count too); only a failure with no
  // answer at all needs its network code looked at here (our own verdicts carry none).
  const kind = classifyAttempt('', cause).error;
  if (kind === 'invalid-response' && cause.code === 'E_S3_NOT_S3') return 'not-s3';
  if (kind === 'throttled') return 'throttled';
  if (kind === 'server') return 'server-error';
  if (kind === 'timeout') return 'timeout';
  if (typeof cause.code === 'string' && NETWORK_CODES.has(cause.code)) return 'unreachable';
  return undefined;
}

/**
 * Says once that S3 is failing (with the kind of the first failure) and once that it answers again, however
 * many files fail meanwhile: each file's own retry is a debug line (archive-file.ts), its backoff unchanged.
 */
export class S3Outage {
  private since: number | undefined;
  private failures = 0;
  private kinds: Partial<Record<OutageKind, number>> = {};

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /** A request failed. @returns whether the failure is an outage's (and so reported here, not per file). */
  failed(error: unknown): boolean {
    const kind = outageKind(error);
    if (kind === undefined) return false;
    if (this.since === undefined) {
      this.since = this.now();
      if (kind === 'not-s3') {
        // Said once, as an error: waiting alone will not end it (the files still wait and retry meanwhile).
        this.log.error({ kind, error: describeCause((error as StoreError).cause) }, 'S3 is failing: the endpoint does not answer as S3; files wait and retry until it does');
      } else {
        this.log.warn({ kind, error: describeCause(error) }, 'S3 is failing: files wait and retry with backoff until it answers again');
      }
    }
    this.failures += 1;
    this.kinds[kind] = (this.kinds[kind] ?? 0) + 1;
    return true;
  }

  /** S3 answered a request (whatever the answer): an outage in progress is over. */
  answered(): void {
    if (this.since === undefined) return;
    this.log.info({ outageMs: this.now() - this.since, failures: this.failures, kinds: this.kinds }, 'S3 recovered: answering again');
    this.since = undefined;
    this.failures = 0;
    this.kinds = {};
  }
}

/** An ObjectStore that reports every request's fate to an S3Outage. */
export class OutageReportingStore implements ObjectStore {
  constructor(
    private readonly store: ObjectStore,
    private readonly outage: S3Outage,
  ) {}

  put(request: PutObjectRequest): Promise<StoredObject> {
    return this.observe(this.store.put(request));
  }

  head(bucket: string, key: string): Promise<ObjectHead | undefined> {
    return this.observe(this.store.head(bucket, key));
  }

  async *list(bucket: string, prefix: string): AsyncIterable<ListedObject> {
    try {
      for await (const object of this.store.list(bucket, prefix)) {
        this.outage.answered();
        yield object;
      }
    } catch (error) {
      this.report(error);
      throw error;
    }
    this.outage.answered();
  }

  checkAccess(bucket: string, keyPrefix: string): Promise<string | undefined> {
    return this.observe(this.store.checkAccess(bucket, keyPrefix));
  }

  deleteVersion(bucket: string, key: string, versionId: string): Promise<void> {
    return this.observe(this.store.deleteVersion(bucket, key, versionId));
  }

  private async observe<T>(request: Promise<T>): Promise<T> {
    try {
      const result = await request;
      this.outage.answered();
      return result;
    } catch (error) {
      this.report(error);
      throw error;
    }
  }

  private report(error: unknown): void {
    // Anything S3 answered (a 412, a 403) ends an outage; our own verdicts (source changed, abandoned) say nothing.
    if (this.outage.failed(error)) return;
    const status = ((error as { cause?: { $metadata?: { httpStatusCode?: number } } }).cause)?.$metadata?.httpStatusCode;
    if (status !== undefined) this.outage.answered();
  }
}
