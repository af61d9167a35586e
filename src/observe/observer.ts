import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { errnoCode } from '../errors.js';
import type { Ledger, ObserveOutcome } from '../ledger/ledger.js';
import { decideObservation } from '../ledger/observation.js';
import type { FileState } from '../ledger/states.js';
import type { SourceDirs, SourceFs, SourceStat } from '../source/source-fs.js';
import { scanTree } from '../reconcile/scanner.js';
import { decideCompletion, lastChangeMs, type CompletionDecision, type Sighting, type Waiting } from './completion.js';
import { createIgnoreMatcher, type IgnoreMatcher } from './ignore.js';

export type ObservationResult = ObserveOutcome | 'ignored' | 'missing' | 'not-a-file' | 'waiting';

/** How a writer finished a file, as the watcher saw it. */
export type FinishedBy = 'closed' | 'moved-in' | 'linked';

export interface ObserverDeps {
  readonly ledger: Pick<Ledger, 'observe' | 'wouldObserve' | 'latestInDirectory' | 'grouped'>;
  readonly source: Pick<SourceFs, 'stat'>;
  /** How scans read directories (scanner.ts). */
  readonly dirs: Pick<SourceDirs, 'openDirectory' | 'lstatNames'>;
  readonly log: Logger;
  /** `settle_seconds` in ms: how old a file found without an event must be (completion.ts). */
  readonly settleMs: number;
  readonly now: () => number;
  /** Called when a generation became claimable, so idle workers wake at once instead of polling. */
  readonly onQueued: (target: TargetConfig) => void;
  /** The ledger failed while recording an observation made in the background: the service must stop. */
  readonly onFatal: (error: unknown) => void;
  /** `reconcile --dry-run`: decide and count, never write the ledger, never wait. */
  readonly dryRun?: boolean;
}

interface Pending {
  readonly target: TargetConfig;
  readonly relPath: string;
  waiting: Waiting;
  timer: NodeJS.Timeout | undefined;
  dueAt: number | undefined;
}

/**
 * The single door into the ledger for "look at this path". The watcher (events), the new-directory scan and
 * every rescan come through here, and one completion rule (completion.ts) decides when a file is taken;
 * the ledger's observe() then decides what the stat means.
 */
export class Observer {
  private readonly ignoreByTarget = new Map<string, IgnoreMatcher>();
  private readonly pending = new Map<string, Pending>();
  private readonly warnedFuture = new Set<string>();
  private closed = false;

  constructor(private readonly deps: ObserverDeps) {}

  isIgnored(target: TargetConfig, relPath: string): boolean {
    return this.ignoreMatcher(target)(relPath);
  }

  /** isIgnored for an entry `name` of a directory a walk found not ignored: only what the entry adds is tested. */
  isIgnoredEntry(target: TargetConfig, relPath: string, name: string): boolean {
    return this.ignoreMatcher(target).entry(relPath, name);
  }

  /** A writer finished the file (IN_CLOSE_WRITE, IN_MOVED_TO, or a name linked in): quiet_ms, then taken. */
  noteFinished(target: TargetConfig, relPath: string, how: FinishedBy): void {
    if (this.closed || this.isIgnored(target, relPath)) return;
    this.inBackground(
      this.statQuietly(target, relPath).then(async (stat) => {
        if (!stat?.isFile) return;
        this.deps.log.trace({ target: target.path, path: relPath, how }, 'finished by its writer');
        // A burst of closes (a client uploading a directory) shares one commit.
        await this.deps.ledger.grouped(() => this.apply(target, relPath, stat, { kind: 'finished', at: this.deps.now(), stat }));
      }),
    );
  }

  /** A writer is at work on the file (IN_MODIFY): any close seen before is stale; wait for the next. */
  noteWriting(target: TargetConfig, relPath: string): void {
    if (this.closed || this.isIgnored(target, relPath)) return;
    this.apply(target, relPath, undefined, { kind: 'writing', at: this.deps.now() });
  }

  /**
   * Whether a writer has been seen at work on the path since it last finished it: a worker holding a claim
   * on it gives it back rather than archive what may be half-written.
   */
  isBeingWritten(target: TargetConfig, relPath: string): boolean {
    return this.pending.get(pathId(target, relPath))?.waiting.evidence === 'writing';
  }

  /** A scan found the file with no event (`stat` already in hand): the settle rule. */
  noteScanned(target: TargetConfig, relPath: string, stat: SourceStat): ObservationResult {
    if (!stat.isFile) return 'not-a-file';
    if (this.closed || this.isIgnored(target, relPath)) return 'ignored';
    // What the ledger already holds as it is needs no wait: most files of most rescans.
    if (!this.pending.has(pathId(target, relPath)) && this.deps.ledger.wouldObserve(target.path, relPath, stat) === 'unchanged') {
      // Still recorded: a row from before ctimes were kept adopts the one seen (no new work either way).
      if (!this.deps.dryRun) this.deps.ledger.observe(target.path, relPath, stat);
      return 'unchanged';
    }
    return this.apply(target, relPath, stat, { kind: 'seen', at: this.deps.now(), stat });
  }

  /**
   * For a scan of one directory: a test of "the ledger already holds this file exactly as it is", answered
   * from one read of the directory's rows: the state it holds it in (archived, quarantined, ...), or undefined
   * when it does not. A path with a wait pending is never "unchanged" here.
   */
  unchangedIn(target: TargetConfig, relDir: string): (relPath: string, stat: SourceStat) => FileState | undefined {
    const latest = this.deps.ledger.latestInDirectory(target.path, relDir);
    return (relPath, stat) => {
      if (this.pending.size > 0 && this.pending.has(pathId(target, relPath))) return undefined;
      const row = latest.get(relPath);
      return row && decideObservation(row, stat).kind === 'unchanged' ? row.state : undefined;
    };
  }

  /** Resolves once no path waits for its quiet or settle period (a one-shot `reconcile` drains them). */
  async settled(pollMs = 200): Promise<void> {
    while (!this.closed && this.waiting > 0) await new Promise((resolve) => setTimeout(resolve, pollMs));
  }

  /** Scans a directory subtree (a new directory's files, written before its watch existed) by the same rule. */
  async scanDirectory(target: TargetConfig, relDir: string): Promise<void> {
    await scanTree(target, relDir, { observer: this, log: this.deps.log, dirs: this.deps.dirs });
  }

  /**
   * Records what is on disk now, without waiting: for a path a worker found changed while it held the row
   * (its writer's close was already seen, and consumed, while the row was taken). Never throws.
   */
  async observePath(target: TargetConfig, relPath: string): Promise<ObservationResult> {
    if (this.closed || this.isIgnored(target, relPath)) return 'ignored';
    const stat = await this.statQuietly(target, relPath);
    if (!stat) return 'missing';
    if (!stat.isFile) return 'not-a-file';
    return this.take(target, relPath, stat);
  }

  /** Paths waiting for their quiet or settle period (for tests and status). */
  get waiting(): number {
    return [...this.pending.values()].filter((p) => p.timer !== undefined).length;
  }

  close(): void {
    this.closed = true;
    for (const entry of this.pending.values()) clearTimeout(entry.timer);
    this.pending.clear();
  }

  private ignoreMatcher(target: TargetConfig): IgnoreMatcher {
    let matcher = this.ignoreByTarget.get(target.path);
    if (!matcher) {
      matcher = createIgnoreMatcher(target.ignore);
      this.ignoreByTarget.set(target.path, matcher);
    }
    return matcher;
  }

  private apply(target: TargetConfig, relPath: string, stat: SourceStat | undefined, sighting: Sighting): ObservationResult {
    const id = pathId(target, relPath);
    const entry = this.pending.get(id);
    const decision = decideCompletion(entry?.waiting, sighting, { quietMs: target.quietMs, settleMs: this.deps.settleMs });
    if (decision.action === 'take') {
      this.forget(id);
      return stat ? this.take(target, relPath, stat) : 'waiting';
    }
    if (this.deps.dryRun) return 'waiting'; // counted, never waited for
    this.remember(id, target, relPath, decision);
    if (stat && sighting.kind === 'seen') this.warnIfFuture(target, relPath, stat, sighting.at);
    return 'waiting';
  }

  private remember(id: string, target: TargetConfig, relPath: string, decision: Exclude<CompletionDecision, { action: 'take' }>): void {
    const entry = this.pending.get(id) ?? { target, relPath, waiting: decision.waiting, timer: undefined, dueAt: undefined };
    entry.waiting = decision.waiting;
    this.pending.set(id, entry);
    const dueAt = decision.action === 'wait' ? decision.dueAt : undefined;
    if (entry.dueAt === dueAt) return;
    clearTimeout(entry.timer);
    entry.dueAt = dueAt;
    entry.timer =
      dueAt === undefined
        ? undefined
        : setTimeout(() => {
            entry.timer = undefined;
            entry.dueAt = undefined;
            this.inBackground(this.recheck(id));
          }, Math.max(0, dueAt - this.deps.now()));
  }

  private async recheck(id: string): Promise<void> {
    const entry = this.pending.get(id);
    if (!entry || this.closed) return;
    const stat = await this.statQuietly(entry.target, entry.relPath);
    if (!stat?.isFile) {
      this.forget(id);
      return;
    }
    await this.deps.ledger.grouped(() => this.apply(entry.target, entry.relPath, stat, { kind: 'seen', at: this.deps.now(), stat }));
  }

  private take(target: TargetConfig, relPath: string, stat: SourceStat): ObservationResult {
    if (this.deps.dryRun) return this.deps.ledger.wouldObserve(target.path, relPath, stat);
    const outcome = this.deps.ledger.observe(target.path, relPath, stat);
    this.warnedFuture.delete(pathId(target, relPath));
    if (outcome === 'queued' || outcome === 'updated') {
      this.deps.log.debug({ target: target.path, path: relPath, bytes: stat.sizeBytes, outcome }, 'observed');
    }
    if (outcome === 'queued' || outcome === 'updated') this.deps.onQueued(target);
    return outcome;
  }

  private forget(id: string): void {
    clearTimeout(this.pending.get(id)?.timer);
    this.pending.delete(id);
  }

  /** Once per file: its times are ahead of this clock, so its wait counts from when it was first seen. */
  private warnIfFuture(target: TargetConfig, relPath: string, stat: SourceStat, at: number): void {
    const id = pathId(target, relPath);
    if (lastChangeMs(stat) <= at || this.warnedFuture.has(id)) return;
    this.warnedFuture.add(id);
    this.deps.log.warn(
      { target: target.path, path: relPath, mtime: new Date(stat.mtimeMs).toISOString() },
      'file times are in the future (a client clock, cp -p from such a machine): settle time counted from now',
    );
  }

  /** Runs an observation nobody awaits; a ledger failure in it must stop the service, not vanish. */
  private inBackground(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.deps.onFatal(error));
  }

  private async statQuietly(target: TargetConfig, relPath: string): Promise<SourceStat | undefined> {
    try {
      return await this.deps.source.stat(path.join(target.path, relPath));
    } catch (error) {
      this.deps.log.warn({ target: target.path, path: relPath, code: errnoCode(error) }, 'cannot stat file');
      return undefined;
    }
  }
}

function pathId(target: TargetConfig, relPath: string): string {
  return `${target.path}\0${relPath}`;
}
