import type { S3Attempt, S3ErrorKind } from '../s3/request-outcome.js';

/** The last failed S3 attempt, for /healthz's reason. */
export interface S3Failure {
  readonly kind: S3ErrorKind;
  readonly operation: string;
  readonly atMs: number;
}

/** Whether S3 answers: the time of its last answer and of its last failure, as the request attempts tell. */
export class S3Liveness {
  private answeredAtMs: number | undefined;
  private failure: S3Failure | undefined;

  constructor(private readonly now: () => number) {}

  record(attempt: S3Attempt): void {
    if (attempt.answered) this.answeredAtMs = this.now();
    else if (attempt.error !== undefined) this.failure = { kind: attempt.error, operation: attempt.operation, atMs: this.now() };
  }

  /** When S3 last answered (any status below 500); undefined: not since this process started. */
  get lastAnswerAtMs(): number | undefined {
    return this.answeredAtMs;
  }

  /** The last attempt that got no answer (network, timeout, 5xx, throttling). */
  get lastFailure(): S3Failure | undefined {
    return this.failure;
  }
}
