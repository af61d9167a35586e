/**
 * Typed errors. Every error that reaches an operator carries a stable `code`, so logs, the ledger's
 * `last_error` and `status` can be grepped and alerted on without parsing prose.
 */
export class SftppushError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration or usage mistake: the CLI exits 2 and the message names the key (or flag) and the file. */
export class ConfigError extends SftppushError {
  constructor(message: string) {
    super('E_CONFIG', message);
  }
}

/** An S3 operation failed; `retryable` says whether the same request may succeed later. */
export class StoreError extends SftppushError {
  constructor(
    readonly operation: string,
    readonly key: string,
    readonly retryable: boolean,
    options: { cause: unknown },
  ) {
    super(retryable ? 'E_S3_RETRYABLE' : 'E_S3', `${operation} ${key}: ${describeCause(options.cause)}`, options);
  }
}

/**
 * The endpoint answered, but not as S3 does: an HTML page (a proxy's error page, a captive portal, a web server
 * at a wrong endpoint URL) with none of S3's request-id headers. Not an outage that passes by itself: the
 * configuration or the network path needs an operator. Named by the endpoint, the HTTP status and the type.
 */
export class NotS3AnswerError extends SftppushError {
  constructor(
    readonly endpoint: string,
    readonly status: number,
    readonly contentType: string,
  ) {
    super(
      'E_S3_NOT_S3',
      `endpoint ${endpoint} does not answer as S3: HTTP ${status} ${contentType} without S3's request id ` +
        '(a proxy or a web server answers there: check [s3] endpoint, proxy settings and the network path)',
    );
  }
}

/** The first error of `error`'s cause chain (itself included) that is a `type`, if any. */
export function findCause<T extends Error>(error: unknown, type: abstract new (...args: never[]) => T): T | undefined {
  for (let at: unknown = error, depth = 0; at instanceof Error && depth < 10; at = at.cause, depth += 1) {
    if (at instanceof type) return at;
  }
  return undefined;
}

/**
 * The process is stopping and abandoned this upload, or a request of the same step (the grace period ran
 * out, or a second signal): its multipart upload is aborted, nothing was completed. The row is given back,
 * not counted as a failure.
 */
export class UploadAbandonedError extends StoreError {
  override readonly code = 'E_S3_ABANDONED';
  /** @param operation the request cut (`put`, or a `head` of the same archive step). */
  constructor(key: string, operation = 'put') {
    super(operation, key, true, { cause: new Error('abandoned: the service is stopping') });
  }
}

/**
 * A one-shot command was told to stop (SIGTERM, SIGINT): it stopped scanning, let the uploads in hand finish
 * within the grace period, and recorded its pass as interrupted. Exit 1: the pass is not proof of anything.
 */
export class InterruptedError extends SftppushError {
  constructor(
    readonly signal: string,
    what: string,
  ) {
    super('E_INTERRUPTED', `${what} interrupted by ${signal}: what it did is recorded; run it again to finish`);
  }
}

/**
 * The ledger file at the configured path is no longer the one this process opened (deleted, or replaced by
 * another file): writing on would record into a file nobody reads. The service stops (exit 1).
 */
export class LedgerReplacedError extends SftppushError {
  constructor(file: string, detail: string) {
    super('E_LEDGER_REPLACED', `ledger ${file} ${detail} under the running service: stopping (restart it to use the file now at that path)`);
  }
}

/**
 * The disk (or quota) under the ledger is full: SQLite answered SQLITE_FULL and rolled the write back, so the
 * ledger stays consistent but cannot record. The service stops (exit 1, for systemd to restart it once there
 * is room); nothing is lost: what was not recorded is found again by the next start's scan.
 */
export class LedgerFullError extends SftppushError {
  constructor(file: string, options: { cause: unknown }) {
    super('E_LEDGER_FULL', `ledger ${file}: the disk is full (SQLITE_FULL, ENOSPC): free space on its filesystem, then restart`, options);
  }
}

/** The source file changed or was replaced while it was being read or uploaded. */
export class SourceChangedError extends SftppushError {
  constructor(relPath: string, detail: string) {
    super('E_SOURCE_CHANGED', `${relPath}: changed while archiving (${detail})`);
  }
}

/**
 * An archive that must not be extracted (DESIGN.md, "Archive safety"): a hostile or broken member, or a
 * limit exceeded. Never retryable: the same bytes fail the same way. The whole archive is quarantined.
 */
export class ArchiveRejectedError extends SftppushError {
  constructor(
    /** The rule that rejected it, short and stable (`path traversal`, `max_ratio`, `crc`…). */
    readonly rule: string,
    /** The member at fault, when one is (a limit counts up to a member too). */
    readonly member: string | undefined,
    detail: string,
  ) {
    super('E_ARCHIVE_REJECTED', `${member === undefined ? '' : `member ${JSON.stringify(member)}: `}${rule}: ${detail}`);
  }
}

/**
 * A key another source already holds (an archive's member and a plain file, two archives' members): the
 * later source is quarantined naming the other, never written over it. Not retryable.
 */
export class KeyConflictError extends SftppushError {
  constructor(key: string, holder: string) {
    super('E_KEY_CONFLICT', `key ${JSON.stringify(key)} already belongs to ${holder}`);
  }
}

/** Short, credential-free text for an unknown thrown value. */
export function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code ?? (cause as { Code?: unknown }).Code;
    const name = typeof code === 'string' ? code : cause.name;
    return name && !cause.message.startsWith(name) ? `${name}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

/** The errno-style code of a Node.js system error, if it is one. */
export function errnoCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
