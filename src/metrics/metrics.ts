import type { ArchiveOutcome } from '../pipeline/archive-file.js';
import type { FinishedPass } from '../reconcile/reconciler.js';
import type { S3Attempt } from '../s3/request-outcome.js';

/**
 * What the service reports as it works: the port the core calls. The Prometheus adapter (prometheus.ts)
 * counts these events; `noMetrics` drops them when `[metrics]` is off. Every method is cheap and never throws.
 * Gauges (backlog, watches) are not reported: the adapter reads them from the ledger and the watcher at scrape time.
 */
export interface Metrics {
  /** A path has a new generation to archive (a new file, new content, or a retrying file that changed). */
  fileQueued(target: string): void;
  /** A claimed generation's outcome. */
  fileFinished(target: string, outcome: ArchiveOutcome): void;
  /** One object written to S3 (not one found there already): its size and how long its gated write took. */
  objectUploaded(target: string, sizeBytes: number, durationMs: number): void;
  /** One S3 request attempt ended. */
  s3Attempt(attempt: S3Attempt): void;
  /** The inotify queue overflowed: events were lost (a full rescan follows). */
  inotifyOverflow(): void;
  /** A reconcile pass ended, failed or not. */
  reconcilePassFinished(pass: FinishedPass): void;
}

/** Metrics off: every event is dropped. */
export const noMetrics: Metrics = {
  fileQueued: () => undefined,
  fileFinished: () => undefined,
  objectUploaded: () => undefined,
  s3Attempt: () => undefined,
  inotifyOverflow: () => undefined,
  reconcilePassFinished: () => undefined,
};
