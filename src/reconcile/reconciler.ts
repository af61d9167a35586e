import { CronJob } from 'cron';
import type { Logger } from 'pino';
import { subtreePath, type TargetConfig, type TargetSubtree } from '../config.js';
import { describeCause, SftppushError } from '../errors.js';
import type { Ledger, ScanSkip } from '../ledger/ledger.js';
import type { Observer } from '../observe/observer.js';
import type { SourceDirs } from '../source/source-fs.js';
import { CappedList } from './capped-list.js';
import { emptyTally, scanTree, type ScanTally } from './scanner.js';

export interface ReconcilerDeps {
  readonly targets: readonly TargetConfig[];
  readonly observer: Observer;
  /** How the walk reads directories (scanner.ts). */
  readonly dirs: Pick<SourceDirs, 'openDirectory' | 'lstatNames'>;
  readonly ledger: Pick<Ledger, 'beginReconcile' | 'finishReconcile' | 'recordScanSkips'>;
  readonly log: Logger;
  readonly now: () => number;
  /**
   * Runs before every pass: the watcher heals (re-adds missing watches) first, so the scan then finds
   * whatever landed while a directory had none. Absent for a one-shot `reconcile`.
   */
  readonly beforePass?: () => void;
  /** Runs after every pass, failed or not (the watcher's health is recorded for `status`, metrics count it). */
  readonly afterPass?: (pass: FinishedPass) => void;
  /** What each pass looks at: all files of every target unless a one-shot `reconcile` says otherwise. */
  readonly scope?: PassScope;
}

/** A one-shot pass's limits (`reconcile --since --verify --dry-run --target`). */
export interface PassScope {
  readonly sinceMs?: number | undefined;
  readonly verify: boolean;
  readonly dryRun: boolean;
  /** Fewer targets than configured, or a --since: the pass is not proof that every file is archived. */
  readonly partial: boolean;
  /** What the pass walks (--target: whole targets, or directories in them); absent: every target, whole. */
  readonly subtrees?: readonly TargetSubtree[];
  /** Stops the pass's walk (SIGTERM to a one-shot `reconcile`): the pass is recorded failed with the reason. */
  readonly signal?: AbortSignal | undefined;
}

/** What the scan skipped (see scanner.ts), per target; the ledger keeps at most this many per target. */
export const SCAN_SKIPS_KEPT = 1000;

/** What a pass listed besides its counts, each list capped at SCAN_SKIPS_KEPT (the rest counted). */
export interface PassFindings {
  /** Entries the walk skipped: also recorded in the ledger (scan_skips) for `status`, unless in a dry run. */
  readonly skips: CappedList<ScanSkip & { readonly target: string }>;
  /** Files in scope queued (a dry run: that would be) or waited for (not settled yet). */
  readonly files: CappedList<{ readonly target: string; readonly relPath: string; readonly outcome: 'queued' | 'waiting' }>;
}

function emptyFindings(): PassFindings {
  return { skips: new CappedList(SCAN_SKIPS_KEPT), files: new CappedList(SCAN_SKIPS_KEPT) };
}

/** How a pass ended. */
export interface FinishedPass {
  /** Why it ran: `startup`, `schedule`, `inotify-overflow`, `command`, … */
  readonly reason: string;
  readonly durationMs: number;
  readonly failed: boolean;
}

/**
 * Full rescans of every target: at start, on the cron schedule, after an inotify overflow, on demand.
 * A scan only observes: it never takes back a claimed row (recovery runs once, at process start).
 * Never two at once: a request during a scan is folded into one more scan right after it, because the
 * running scan may already have passed the directory that prompted the request.
 */
export class Reconciler {
  private running: Promise<ScanTally> | undefined;
  private rerunReason: string | undefined;
  private job: CronJob | undefined;
  private passTally: ScanTally = emptyTally();
  private passFindings: PassFindings = emptyFindings();
  private passRunId: number | undefined;

  constructor(private readonly deps: ReconcilerDeps) {}

  /** Scans every target once (or joins the scan under way and the one queued after it). */
  async scan(reason: string): Promise<ScanTally> {
    if (this.running) {
      this.rerunReason ??= reason;
      const current = this.running;
      await current.catch(() => undefined);
      return this.running !== undefined && this.running !== current ? this.running : current;
    }
    this.running = this.scanAll(reason);
    try {
      return await this.running;
    } finally {
      this.running = undefined;
      const next = this.rerunReason;
      this.rerunReason = undefined;
      if (next !== undefined) this.scanInBackground(next);
    }
  }

  /** Starts the cron schedule. @throws Error when the expression is invalid (checked at start-up). */
  startSchedule(expression: string): void {
    this.job = CronJob.from({
      cronTime: expression,
      onTick: () => this.scanInBackground('schedule'),
      start: true,
    });
  }

  /** A scan nobody awaits: its failure is already logged and recorded, and the next scan tries again. */
  scanInBackground(reason: string): void {
    this.scan(reason).catch(() => undefined);
  }

  /** The counts of the pass under way (or of the last one), as they grow: for a progress display. */
  get tally(): Readonly<ScanTally> {
    return this.passTally;
  }

  /** What the pass under way (or the last one) listed: skips, and the files it queued or waits for. */
  get findings(): PassFindings {
    return this.passFindings;
  }

  /** The reconcile_runs row of the pass under way, or of the last one: a one-shot command completes it. */
  get runId(): number | undefined {
    return this.passRunId;
  }

  stop(): void {
    void this.job?.stop();
  }

  private async scanAll(reason: string): Promise<ScanTally> {
    this.deps.beforePass?.();
    const scope = this.deps.scope;
    const subtrees = scope?.subtrees ?? this.deps.targets.map((target) => ({ target, relDir: '' }));
    const runId = this.deps.ledger.beginReconcile(reason, {
      since: scope?.sinceMs === undefined ? null : new Date(scope.sinceMs).toISOString(),
      verify: scope?.verify ?? false,
      dryRun: scope?.dryRun ?? false,
      targets: subtrees.map(subtreePath),
      partial: scope?.partial ?? false,
    });
    this.passRunId = runId;
    const started = this.deps.now();
    const total = emptyTally();
    this.passTally = total;
    const findings = emptyFindings();
    this.passFindings = findings;
    const failed: string[] = [];
    let passFailed = true;
    try {
      for (const { target, relDir } of subtrees) {
        const skips = new CappedList<ScanSkip>(SCAN_SKIPS_KEPT);
        try {
          await scanTree(target, relDir, this.deps, {
            sinceMs: scope?.sinceMs,
            signal: scope?.signal,
            onSkip: (skip) => {
              skips.add(skip);
              findings.skips.add({ ...skip, target: target.path });
            },
            onFile: (relPath, outcome) => findings.files.add({ target: target.path, relPath, outcome }),
          }, total);
          // Only a walk that ended: one cut short (a missing target, an interrupt) must not clear what it did not see.
          if (!scope?.dryRun) this.deps.ledger.recordScanSkips(target.path, relDir, runId, skips.items, SCAN_SKIPS_KEPT);
        } catch (error) {
          // One unreadable target fails the pass (recorded, shown by status), not the other targets' scans.
          if (!(error instanceof SftppushError && error.code === 'E_TARGET_MISSING')) throw error;
          failed.push(error.message);
        }
      }
      if (failed.length > 0) throw new SftppushError('E_TARGET_MISSING', failed.join('; '));
      this.deps.ledger.finishReconcile(runId, total);
      passFailed = false;
      this.deps.log.info({ reason, ...total, ms: this.deps.now() - started }, 'reconcile scan finished');
      return total;
    } catch (error) {
      this.deps.ledger.finishReconcile(runId, total, describeCause(error));
      this.deps.log.error({ reason, error: describeCause(error) }, 'reconcile scan failed');
      throw error;
    } finally {
      this.deps.afterPass?.({ reason, durationMs: this.deps.now() - started, failed: passFailed });
    }
  }
}
