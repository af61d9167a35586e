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
  /** Files in scope not archived at the end: left retrying, quarantined, gone (or, dry run, waiting). */
  readonly unfinished: readonly { target: string; path: string; state: string; error: string | null }[];
  /** What --verify found missing or replaced in S3. */
  readonly verifyFindings: readonly { target: string; path: string; key: string; reason: string }[];
  /** What --verify asked S3: objects listed (ListObjectsV2 returns up to 1000 per request) and HEADs. */
  readonly verifyRequests: { readonly listed: number; readonly heads: number } | null;
}
