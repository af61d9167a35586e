import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StatusSummary } from '../ledger/reader.js';
import { FILE_STATES } from '../ledger/states.js';
import type { ArchiveOutcome } from '../pipeline/archive-file.js';
import type { FinishedPass } from '../reconcile/reconciler.js';
import { S3_ERROR_KINDS, type S3Attempt } from '../s3/request-outcome.js';
import type { WatchHealth } from '../watch/watcher.js';
import type { Metrics } from './metrics.js';
import { S3Liveness } from './s3-liveness.js';

/** What the gauges read at scrape time. */
export interface ScrapeSources {
  /** LedgerReader.status(): counts by state and the oldest pending file, read once per scrape. */
  readonly ledgerStatus: () => Pick<StatusSummary, 'counts' | 'oldestPendingSeconds'>;
  /** The watcher's health; undefined until its watches are set up. */
  readonly watchHealth: () => WatchHealth | undefined;
}

const BACKLOG_STATES = ['pending', 'working', 'retry'] as const;

/** Counters of a claimed generation's outcome, by outcome. */
const OUTCOME_METRICS: Record<ArchiveOutcome, { name: string; help: string }> = {
  archived: { name: 'sftppush_files_archived_total', help: 'Generations archived: uploaded and verified in S3' },
  duplicate: { name: 'sftppush_files_duplicate_total', help: 'Generations with the content of the last archived one: recorded, not uploaded' },
  quarantined: { name: 'sftppush_files_quarantined_total', help: 'Generations quarantined: bad input, original bytes under the quarantine prefix' },
  gone: { name: 'sftppush_files_gone_total', help: 'Generations that vanished before they could be archived' },
  retry: { name: 'sftppush_retries_total', help: 'Archive attempts that failed and were scheduled to retry with backoff' },
  requeued: { name: 'sftppush_files_requeued_total', help: 'Archive attempts given back because the file changed or a writer had it open' },
};

/**
 * The Metrics port on prom-client, with its own registry (never the global one): counters for the events the
 * core reports, gauges read from the ledger and the watcher at scrape time, and prom-client's process and
 * Node.js defaults. Every per-target series starts at 0, so `increase()` sees the first event.
 */
export class PrometheusMetrics implements Metrics {
  readonly registry = new Registry();
  /** Whether S3 answers, as every request attempt tells: /healthz reads it. */
  readonly s3: S3Liveness;
  private readonly observed: Counter<'target'>;
  private readonly outcomes: Record<ArchiveOutcome, Counter<'target'>>;
  private readonly uploadedBytes: Counter<'target'>;
  private readonly uploadSeconds: Histogram;
  private readonly s3Attempts: Counter<'operation'>;
  private readonly s3Errors: Counter<'kind'>;
  private readonly s3LastAnswer: Gauge;
  private readonly overflows: Counter;
  private readonly passes: Counter<'reason' | 'result'>;
  private readonly passSeconds: Histogram;
  private readonly ledgerFiles: Gauge<'state'>;
  private readonly backlog: Gauge;
  private readonly oldestPending: Gauge;
  private readonly watched: Gauge<'target'>;
  private readonly unwatched: Gauge<'target'>;
  private readonly rootWatched: Gauge<'target'>;

  constructor(targets: readonly string[], now: () => number) {
    this.s3 = new S3Liveness(now);
    const registers = [this.registry];
    const perTarget = (name: string, help: string): Counter<'target'> => {
      const counter = new Counter({ name, help, labelNames: ['target'], registers });
      for (const target of targets) counter.inc({ target }, 0);
      return counter;
    };
    this.observed = perTarget('sftppush_files_observed_total', 'Generations queued: a new file or new content seen (or a retrying file that changed)');
    this.outcomes = Object.fromEntries(
      Object.entries(OUTCOME_METRICS).map(([outcome, { name, help }]) => [outcome, perTarget(name, help)]),
    ) as Record<ArchiveOutcome, Counter<'target'>>;
    this.uploadedBytes = perTarget('sftppush_uploaded_bytes_total', 'Bytes of the objects written to S3 (not those found there already)');
    this.uploadSeconds = new Histogram({
      name: 'sftppush_upload_duration_seconds',
      help: 'Time to write one object through the write gate, HEADs and part retries included',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.s3Attempts = new Counter({ name: 'sftppush_s3_requests_total', help: 'S3 request attempts (each SDK retry counts), by operation', labelNames: ['operation'], registers });
    this.s3Errors = new Counter({ name: 'sftppush_s3_errors_total', help: 'S3 request attempts that failed, by kind', labelNames: ['kind'], registers });
    for (const kind of S3_ERROR_KINDS) this.s3Errors.inc({ kind }, 0);
    this.s3LastAnswer = new Gauge({ name: 'sftppush_s3_last_answer_timestamp_seconds', help: 'When S3 last answered (any status below 500), Unix time', registers });
    this.overflows = new Counter({ name: 'sftppush_inotify_overflows_total', help: 'inotify queue overflows (each triggers a full rescan)', registers });
    this.passes = new Counter({ name: 'sftppush_reconcile_passes_total', help: 'Reconcile passes, by reason and result (ok, failed)', labelNames: ['reason', 'result'], registers });
    this.passSeconds = new Histogram({
      name: 'sftppush_reconcile_duration_seconds',
      help: 'Duration of reconcile passes (the scan; uploads run beside it)',
      buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600],
      registers,
    });
    this.ledgerFiles = new Gauge({ name: 'sftppush_ledger_files', help: 'Latest and past generations in the ledger, by state', labelNames: ['state'], registers });
    this.backlog = new Gauge({ name: 'sftppush_backlog_files', help: 'Generations not archived yet: pending, working or retry', registers });
    this.oldestPending = new Gauge({ name: 'sftppush_oldest_pending_seconds', help: 'Age of the oldest generation pending, working or retrying (0: none)', registers });
    this.watched = new Gauge({ name: 'sftppush_watched_directories', help: 'Directories with an inotify watch, by target', labelNames: ['target'], registers });
    this.unwatched = new Gauge({ name: 'sftppush_unwatched_directories', help: 'Directories that could not be watched (ENOSPC, EACCES…), by target', labelNames: ['target'], registers });
    this.rootWatched = new Gauge({ name: 'sftppush_target_root_watched', help: '1 when the target root is watched, 0 when it is not (deleted, unmounted)', labelNames: ['target'], registers });
    collectDefaultMetrics({ register: this.registry });
  }

  fileQueued(target: string): void {
    this.observed.inc({ target });
  }

  fileFinished(target: string, outcome: ArchiveOutcome): void {
    this.outcomes[outcome].inc({ target });
  }

  objectUploaded(target: string, sizeBytes: number, durationMs: number): void {
    this.uploadedBytes.inc({ target }, sizeBytes);
    this.uploadSeconds.observe(durationMs / 1000);
  }

  s3Attempt(attempt: S3Attempt): void {
    this.s3.record(attempt);
    this.s3Attempts.inc({ operation: attempt.operation.replace(/Command$/, '') });
    if (attempt.error !== undefined) this.s3Errors.inc({ kind: attempt.error });
    const answeredAt = this.s3.lastAnswerAtMs;
    if (attempt.answered && answeredAt !== undefined) this.s3LastAnswer.set(answeredAt / 1000);
  }

  inotifyOverflow(): void {
    this.overflows.inc();
  }

  reconcilePassFinished(pass: FinishedPass): void {
    this.passes.inc({ reason: pass.reason, result: pass.failed ? 'failed' : 'ok' });
    this.passSeconds.observe(pass.durationMs / 1000);
  }

  /** Reads the gauges (one ledger status query, the watcher's health) and renders the Prometheus text. */
  async scrape(sources: ScrapeSources): Promise<string> {
    const status = sources.ledgerStatus();
    for (const state of FILE_STATES) this.ledgerFiles.set({ state }, status.counts[state]);
    this.backlog.set(BACKLOG_STATES.reduce((sum, state) => sum + status.counts[state], 0));
    this.oldestPending.set(status.oldestPendingSeconds);
    const health = sources.watchHealth();
    for (const target of health?.targets ?? []) {
      this.watched.set({ target: target.target }, target.directoriesWatched);
      this.unwatched.set({ target: target.target }, target.unwatchedCount);
      this.rootWatched.set({ target: target.target }, target.rootWatched ? 1 : 0);
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
