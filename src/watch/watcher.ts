import { isUtf8 } from 'node:buffer';
import { lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { errnoCode } from '../errors.js';
import type { Observer } from '../observe/observer.js';
import { scanTree } from '../reconcile/scanner.js';
import { InotifyMask as M, type InotifyEvent } from './inotify.js';

/** The slice of the inotify binding the watcher uses. */
export interface InotifyPort {
  addWatch(path: string, mask: number): number;
  rmWatch(wd: number): boolean;
  close(): void;
}

export interface WatcherDeps {
  readonly targets: readonly TargetConfig[];
  readonly observer: Observer;
  readonly log: Logger;
  readonly createInotify: (onEvents: (events: InotifyEvent[]) => void) => InotifyPort;
  /** Something was missed (overflow, watch limit): a full rescan must run. */
  readonly onRescanNeeded: (reason: string) => void;
  /** Quiet period for a new file that no close event may announce (a create without a later close). */
  readonly settleMs: number;
  readonly now: () => number;
}

/**
 * Files found in a directory that appeared after we started watching: their writers may still be at work
 * and no close event will come for those that finished before the watch existed, so each is taken once it
 * has been unchanged this long.
 */
export const NEW_DIRECTORY_QUIET_MS = 1500;

const DIRECTORY_MASK =
  M.CLOSE_WRITE | M.MOVED_TO | M.MOVED_FROM | M.CREATE | M.DELETE_SELF | M.MOVE_SELF | M.ONLYDIR | M.DONT_FOLLOW | M.EXCL_UNLINK;

interface WatchedDirectory {
  readonly target: TargetConfig;
  readonly relDir: string;
}

/**
 * Recursive inotify watcher over every target. It only turns events into `observe` calls: a close or a
 * rename-in is a finished file, a hard link to an existing file is too, a new directory is watched and
 * then scanned. Events are hints; when the kernel says it dropped some, a full rescan restores the truth.
 */
export class Watcher {
  private readonly inotify: InotifyPort;
  private readonly byWd = new Map<number, WatchedDirectory>();
  private closed = false;

  constructor(private readonly deps: WatcherDeps) {
    this.inotify = deps.createInotify((events) => this.handleBatch(events));
  }

  /** Watches every directory of every target. Call before the start-up scan so nothing falls between. */
  start(): void {
    for (const target of this.deps.targets) this.watchTree(target, '');
  }

  get watchCount(): number {
    return this.byWd.size;
  }

  close(): void {
    this.closed = true;
    this.inotify.close();
    this.byWd.clear();
  }

  private handleBatch(events: readonly InotifyEvent[]): void {
    const closedInBatch = namesClosedIn(events);
    for (const event of events) {
      if (this.closed) return;
      // A create whose close is in the same batch needs no create-time check: the close settles it.
      if (event.mask & M.CREATE && !(event.mask & M.ISDIR) && closedInBatch.has(`${event.wd}/${event.name}`)) continue;
      this.handleEvent(event);
    }
  }

  private handleEvent(event: InotifyEvent): void {
    if (event.mask & M.Q_OVERFLOW) {
      this.deps.log.warn(
        'inotify queue overflowed: events were lost, rescanning every target. ' +
          'If this repeats, raise fs.inotify.max_queued_events (sysctl -w fs.inotify.max_queued_events=65536)',
      );
      // A lost directory rename leaves a watch mapped to its old path: walk again (addWatch on a watched
      // directory returns its existing descriptor, so the walk remaps it) before the rescan.
      this.start();
      this.deps.onRescanNeeded('inotify-overflow');
      return;
    }
    const dir = this.byWd.get(event.wd);
    if (!dir) return; // a watch we already dropped
    if (event.mask & M.IGNORED) {
      this.byWd.delete(event.wd);
      return;
    }
    if (event.mask & (M.DELETE_SELF | M.MOVE_SELF) && dir.relDir === '') {
      this.deps.log.error({ target: dir.target.path }, 'target directory was deleted or moved: no longer watched');
      return;
    }
    if (event.name === null) return;
    if (!event.nameIsUtf8) {
      this.deps.log.error(
        { target: dir.target.path, dir: dir.relDir, nameHex: event.nameBytes?.toString('hex') },
        'file name is not valid UTF-8 and cannot become an S3 key: not archived (rename it)',
      );
      return;
    }
    const relPath = dir.relDir === '' ? event.name : `${dir.relDir}/${event.name}`;
    if (this.deps.observer.isIgnored(dir.target, relPath)) return;
    if (event.mask & M.ISDIR) this.handleDirectoryEvent(dir.target, relPath, event.mask);
    else this.handleFileEvent(dir.target, relPath, event.mask);
  }

  private handleFileEvent(target: TargetConfig, relPath: string, mask: number): void {
    if (mask & (M.CLOSE_WRITE | M.MOVED_TO)) {
      this.deps.observer.observeWhenQuiet(target, relPath, target.quietMs);
    } else if (mask & M.CREATE) {
      this.handleCreatedFile(target, relPath);
    }
  }

  /**
   * A new name with no close to follow: a hard link to a finished file (WinSCP and sftp-server's plain
   * rename finish uploads by link + unlink). A link count above one says so at once; otherwise the file is
   * taken after a settle period of no change, which also covers the link whose temp name is already gone.
   * A normal writer's close arrives long before and makes the late check a no-op.
   */
  private handleCreatedFile(target: TargetConfig, relPath: string): void {
    let nlink: number;
    try {
      const stat = lstatSync(path.join(target.path, relPath));
      if (!stat.isFile()) return;
      nlink = stat.nlink;
    } catch {
      return; // gone already
    }
    this.deps.observer.observeWhenQuiet(target, relPath, nlink > 1 ? target.quietMs : this.deps.settleMs);
  }

  private handleDirectoryEvent(target: TargetConfig, relPath: string, mask: number): void {
    if (mask & M.MOVED_FROM) {
      this.unwatchTree(target, relPath);
      return;
    }
    if (!(mask & (M.CREATE | M.MOVED_TO))) return;
    this.watchTree(target, relPath);
    // Files written before the watch existed produce no event: find them now.
    scanTree(target, relPath, this.deps.observer, {
      settleMs: NEW_DIRECTORY_QUIET_MS,
      now: this.deps.now,
      log: this.deps.log,
    }).catch((error: unknown) => {
      this.deps.log.error({ target: target.path, dir: relPath, error }, 'scan of new directory failed');
      this.deps.onRescanNeeded('new-directory-scan-failed');
    });
  }

  /** Adds watches for a directory and everything below it that is not ignored. Never follows symlinks. */
  private watchTree(target: TargetConfig, relDir: string): void {
    const pending = [relDir];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      if (!this.addWatch(target, dir)) continue;
      for (const name of this.subdirectories(target, dir)) {
        const child = dir === '' ? name : `${dir}/${name}`;
        if (!this.deps.observer.isIgnored(target, child)) pending.push(child);
      }
    }
  }

  private addWatch(target: TargetConfig, relDir: string): boolean {
    try {
      // The target itself may be a symlink the operator chose; below it, links are never followed.
      const mask = relDir === '' ? DIRECTORY_MASK & ~M.DONT_FOLLOW : DIRECTORY_MASK;
      const wd = this.inotify.addWatch(path.join(target.path, relDir), mask);
      this.byWd.set(wd, { target, relDir });
      return true;
    } catch (error) {
      this.reportWatchFailure(target, relDir, error);
      return false;
    }
  }

  private reportWatchFailure(target: TargetConfig, relDir: string, error: unknown): void {
    const code = errnoCode(error);
    if (relDir === '') {
      this.deps.log.error({ target: target.path, code }, 'cannot watch target directory: its files are not archived');
      return;
    }
    if (code === 'ENOENT' || code === 'ENOTDIR') return; // vanished before we got there
    if (code === 'ENOSPC') {
      this.deps.log.error(
        { target: target.path, dir: relDir, watches: this.byWd.size },
        'inotify watch limit reached: this directory is covered only by scheduled rescans. ' +
          'Raise fs.inotify.max_user_watches (sysctl -w fs.inotify.max_user_watches=1048576)',
      );
      this.deps.onRescanNeeded('inotify-watch-limit');
      return;
    }
    this.deps.log.error({ target: target.path, dir: relDir, code }, 'cannot watch directory');
  }

  private subdirectories(target: TargetConfig, relDir: string): string[] {
    try {
      return readdirSync(path.join(target.path, relDir), { withFileTypes: true, encoding: 'buffer' })
        .filter((entry) => entry.isDirectory() && isUtf8(entry.name))
        .map((entry) => entry.name.toString('utf8'));
    } catch {
      return [];
    }
  }

  /** A directory moved away keeps its watches in the kernel, pointing outside the target: drop them. */
  private unwatchTree(target: TargetConfig, relDir: string): void {
    for (const [wd, dir] of this.byWd) {
      if (dir.target === target && (dir.relDir === relDir || dir.relDir.startsWith(`${relDir}/`))) {
        this.inotify.rmWatch(wd);
        this.byWd.delete(wd);
      }
    }
  }

}

/** `wd/name` of every file a batch reports closed after writing or renamed in. */
function namesClosedIn(events: readonly InotifyEvent[]): Set<string> {
  const names = new Set<string>();
  for (const event of events) {
    if (event.mask & (M.CLOSE_WRITE | M.MOVED_TO) && !(event.mask & M.ISDIR)) names.add(`${event.wd}/${event.name}`);
  }
  return names;
}
