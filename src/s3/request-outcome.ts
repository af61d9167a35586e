/**
 * Why an S3 request attempt failed, in words an operator alerts on. `network`: no connection or a reset;
 * `timeout`: no answer in time; `throttled`: SlowDown, 429 and the like; `server`: another 5xx; `denied`: 403;
 * `no-such-bucket`; `client`: any other 4xx (a 404 of an object read or one S3 names NoSuchKey/NoSuchUpload,
 * or a 412 of a conditional write, is an answer, not an error; a PUT's plain 404 is an error); `invalid-response`: an answer that is not S3's (an HTML page from a
 * proxy or a wrong endpoint, NotS3AnswerError), or a 2xx/3xx the SDK could not read.
 */
export type S3ErrorKind = 'network' | 'timeout' | 'throttled' | 'server' | 'denied' | 'no-such-bucket' | 'client' | 'invalid-response';

export const S3_ERROR_KINDS: readonly S3ErrorKind[] = [
  'network', 'timeout', 'throttled', 'server', 'denied', 'no-such-bucket', 'client', 'invalid-response',
];

/** How one attempt of one S3 request ended (each SDK retry is an attempt of its own). */
export interface S3Attempt {
  /** The SDK command, e.g. `PutObjectCommand`. */
  readonly operation: string;
  /** S3 answered with a status of its own below 500: it is reachable and serving (a 404 or 403 counts, a 503 not). */
  readonly answered: boolean;
  /** Set when the attempt failed in a way worth counting. */
  readonly error: S3ErrorKind | undefined;
}

const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'TooManyRequestsException']);
const TIMEOUTS = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'AbortError']);

/** Classifies one attempt from the error it threw (undefined: it succeeded). Pure. */
export function classifyAttempt(operation: string, error: unknown): S3Attempt {
  if (error === undefined) return { operation, answered: true, error: undefined };
  const failure = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } };
  const name = typeof failure.name === 'string' ? failure.name : '';
  const code = typeof failure.code === 'string' ? failure.code : '';
  const status = failure.$metadata?.httpStatusCode;
  // Something answered, not S3 (errors.ts NotS3AnswerError, duck-typed: this module loads nothing).
  if (code === 'E_S3_NOT_S3') return { operation, answered: false, error: 'invalid-response' };
  if (status === undefined) {
    const timedOut = TIMEOUTS.has(name) || code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT';
    return { operation, answered: false, error: timedOut ? 'timeout' : 'network' };
  }
  const answered = status < 500;
  if (THROTTLING.has(name) || status === 429) return { operation, answered, error: 'throttled' };
  if (status >= 500) return { operation, answered, error: 'server' };
  if (status < 400) return { operation, answered: false, error: 'invalid-response' };
  if (status === 403) return { operation, answered, error: 'denied' };
  if (status === 408) return { operation, answered, error: 'timeout' };
  if (name === 'NoSuchBucket' || (status === 404 && operation === 'HeadBucketCommand')) {
    return { operation, answered, error: 'no-such-bucket' };
  }
  // A failed precondition, and a missing key asked about on purpose, are how S3 answers our questions.
  if (status === 412 || status === 304 || (status === 404 && expectedNotFound(operation, name))) {
    return { operation, answered, error: undefined };
  }
  return { operation, answered, error: 'client' };
}

/** Reads of an object, whose 404 (a HEAD's has no body to name it) says the key or version is not there. */
const OBJECT_READS = new Set(['HeadObjectCommand', 'GetObjectCommand']);
/** What S3 itself names a missing key, version or upload, whatever was asked (an abort of a finished upload). */
const NOT_FOUND_CODES = new Set(['NoSuchKey', 'NoSuchVersion', 'NoSuchUpload']);

/**
 * Whether a 404 is an answer: to an object read, or named by S3 as a missing key, version or upload. Any other
 * 404 (a PUT answered by a web server's or a misrouted gateway's page) is a failure worth counting.
 */
function expectedNotFound(operation: string, name: string): boolean {
  return OBJECT_READS.has(operation) || NOT_FOUND_CODES.has(name);
}
