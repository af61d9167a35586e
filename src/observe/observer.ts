import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { errnoCode } from '../errors.js';
import type { Ledger, ObserveOutcome } from '../ledger/ledger.js';
import { sameStat } from '../ledger/observation.js';
import type { SourceFs, SourceStat } from '../pipeline/source-file.js';
import { createIgnoreMatcher } from './ignore.js';

export type ObservationResult = ObserveOutcome | 'ignored' | 'missing' | 'not-a-file' | 'waiting';

export interface ObserverDeps {
  readonly ledger: Pick<Ledger, 'observe'>;
  readonly source: Pick<SourceFs, 'stat'>;
  readonly log: Logger;
  /** Called when a generation became claimable, so idle workers wake at once instead of polling. */
  readonly onQueued: () => void;
  /** The ledger failed while recording an observation made in the background: the service must stop. */
  readonly onFatal: (error: unknown) => void;
}

/**
 * The single door into the ledger for "look at this path". The watcher (events) and the scanner (rescans)
 * both come through here; neither decides what a change means — the ledger's observe() does.
 */
export class Observer {
  private readonly ignoreByTarget = new Map<string, (relPath: string) => boolean>();
  private readonly quietTimers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly deps: ObserverDeps) {}

  isIgnored(target: TargetConfig, relPath: string): boolean {
    let matcher = this.ignoreByTarget.get(target.path);
    if (!matcher) {
      matcher = createIgnoreMatcher(target.ignore);
      this.ignoreByTarget.set(target.path, matcher);
    }
    return matcher(relPath);
  }

  /** Stats the path and records it. Never throws: a path that vanished is simply not recorded. */
  async observePath(target: TargetConfig, relPath: string): Promise<ObservationResult> {
    if (this.closed || this.isIgnored(target, relPath)) return 'ignored';
    const stat = await this.statQuietly(target, relPath);
    if (!stat) return 'missing';
    return this.observeStat(target, relPath, stat);
  }

  /** Records a stat already in hand (the scanner's). */
  observeStat(target: TargetConfig, relPath: string, stat: SourceStat): ObservationResult {
    if (!stat.isFile) return 'not-a-file';
    if (this.closed || this.isIgnored(target, relPath)) return 'ignored';
    const outcome = this.deps.ledger.observe(target.path, relPath, stat);
    if (outcome === 'queued' || outcome === 'updated') {
      this.deps.log.debug({ target: target.path, path: relPath, bytes: stat.sizeBytes, outcome }, 'observed');
    }
    if (outcome === 'queued') this.deps.onQueued();
    return outcome;
  }

  /**
   * Takes the file once it has stayed unchanged for `quietMs`. For files no close event will announce
   * (written before their directory was watched, or finished by a hard link) and for targets that ask to
   * wait after a close. A later call for the same path restarts the wait.
   */
  observeWhenQuiet(target: TargetConfig, relPath: string, quietMs: number, seen?: SourceStat): void {
    if (quietMs <= 0) {
      // A close or rename-in settles it: a quiet check armed earlier (by the file's create) is moot.
      this.cancelQuietTimer(target, relPath);
      this.inBackground(this.observePath(target, relPath));
    } else if (seen) {
      this.startQuietTimer(target, relPath, quietMs, seen);
    } else {
      this.inBackground(
        this.statQuietly(target, relPath).then((stat) => stat && this.startQuietTimer(target, relPath, quietMs, stat)),
      );
    }
  }

  /** Runs an observation nobody awaits; a ledger failure in it must stop the service, not vanish. */
  private inBackground(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.deps.onFatal(error));
  }

  private startQuietTimer(target: TargetConfig, relPath: string, quietMs: number, seen: SourceStat): void {
    if (this.closed) return;
    this.cancelQuietTimer(target, relPath);
    const id = quietTimerId(target, relPath);
    const timer = setTimeout(() => {
      this.quietTimers.delete(id);
      this.inBackground(this.observeIfStill(target, relPath, quietMs, seen));
    }, quietMs);
    this.quietTimers.set(id, timer);
  }

  private cancelQuietTimer(target: TargetConfig, relPath: string): void {
    const id = quietTimerId(target, relPath);
    clearTimeout(this.quietTimers.get(id));
    this.quietTimers.delete(id);
  }

  /** Pending quiet-period checks (for tests and status). */
  get waiting(): number {
    return this.quietTimers.size;
  }

  close(): void {
    this.closed = true;
    for (const timer of this.quietTimers.values()) clearTimeout(timer);
    this.quietTimers.clear();
  }

  private async observeIfStill(target: TargetConfig, relPath: string, quietMs: number, seen: SourceStat): Promise<void> {
    const now = await this.statQuietly(target, relPath);
    if (!now) return;
    if (!sameStat(seen, now)) {
      this.startQuietTimer(target, relPath, quietMs, now); // still changing: wait another quiet period
      return;
    }
    this.observeStat(target, relPath, now);
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

function quietTimerId(target: TargetConfig, relPath: string): string {
  return `${target.path}\0${relPath}`;
}
