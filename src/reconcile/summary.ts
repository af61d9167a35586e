/** An entry the scan skipped, shaped as `status` lists them (ScanSkipRow, without its times). */
export interface SkippedEntry {
  readonly target: string;
  /** The directory (unreadable, or holding the invalid name), or the file that could not be stat-ed. */
  readonly path: string;
  readonly kind: 'unreadable-directory' | 'invalid-name' | 'unstatable-file';
  readonly code: string | null;
  /** An invalid name's bytes, hex. */
  readonly nameHex: string | null;
}

/**
 * A file a dry run would queue, wait for until it settles, or upload because the ledger holds it queued
 * already (an interrupted run's, or one a stopped process left working).
 */
export interface PlannedFile {
  readonly target: string;
  readonly path: string;
  readonly action: 'queue' | 'wait' | 'upload';
}

/** What one `sftppush reconcile` did: printed as a summary line, or as one JSON object with --json. */
export interface ReconcileSummary {
  readonly scope: { since: string | null; verify: boolean; dryRun: boolean; targets: readonly string[] };
  readonly counts: {
    scanned: number;
    dirsScanned: number;
    inScope: number;
    /** In scope, and archived (or a duplicate) before this run: never a row quarantined, retrying or queued. */
    alreadyArchived: number;
    queued: number;
    /**
     * In scope and already queued in the ledger when the run began (an interrupted run's, a stopped process's):
     * this run archives them, a dry run would. Not counted in `queued`, which is what the scan found new.
     */
    resumed: number;
    /** In scope and being archived by another live sftppush process (a `watch`) when the run began: waited for. */
    byOthers: number;
    /** Archived by this run: written, or found in S3 already (a 412 or a HEAD), as the log line tells. */
    uploaded: number;
    /** Bytes of the objects uploaded (not of those found in S3 already). */
    bytesUploaded: number;
    duplicates: number;
    verified: number;
    reUploaded: number;
    waiting: number;
    /** In scope and not archived at the end (every one, where `unfinished` lists the first 1000), and of them: */
    failed: number;
    retrying: number;
    quarantined: number;
    gone: number;
    /** Directories that could not be read, and entries skipped (non-UTF-8 names, unstat-able files). */
    dirsUnreadable: number;
    entriesSkipped: number;
  };
  readonly durationMs: number;
  /** Files in scope not archived at the end: left retrying, quarantined, gone (the first 1000). */
  readonly unfinished: readonly { target: string; path: string; state: string; error: string | null }[];
  /** Beyond `unfinished`: counted only. */
  readonly unfinishedMore: number;
  /** What the scan skipped, so could not archive (unreadable directories, invalid names, unstat-able files). */
  readonly skipped: { readonly listed: readonly SkippedEntry[]; /** Beyond the list: counted only. */ readonly more: number };
  /** A dry run: each file it would queue, or wait for (not settled yet); null for a real run. */
  readonly planned: { readonly files: readonly PlannedFile[]; /** Beyond the list: counted only. */ readonly more: number } | null;
  /** What --verify found missing or replaced in S3. */
  readonly verifyFindings: readonly { target: string; path: string; key: string; reason: string }[];
  /** What --verify asked S3: objects listed (ListObjectsV2 returns up to 1000 per request) and HEADs. */
  readonly verifyRequests: { readonly listed: number; readonly heads: number } | null;
}
