import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { errnoCode } from '../errors.js';
import type { Observer } from '../observe/observer.js';
import type { SourceDirs } from '../source/source-fs.js';
import { InotifyMask as M, type InotifyEvent } from './inotify.js';

/** The slice of the inotify binding the watcher uses. */
export interface InotifyPort {
  addWatch(path: string, mask: number): number;
  rmWatch(wd: number): boolean;
  close(): void;
}

/**
 * What the watcher tells about files. The watcher only reports what the kernel saw; the sink applies the
 * completion rule (DESIGN.md, "When is a file complete?"). Every method must be cheap and must not throw:
 * they run inside the inotify callback, once per event.
 */
export interface WatchedFileSink {
  /**
   * A writer finished the file: IN_CLOSE_WRITE ('closed'), IN_MOVED_TO ('moved-in'), or a name that appeared
   * without being opened, i.e. by link() ('linked'). The sink applies the target's quiet_ms. The path may be
   * gone, or not a regular file, by the time the sink looks.
   */
  noteFinished(target: TargetConfig, relPath: string, how: 'closed' | 'moved-in' | 'linked'): void;
  /** A writer is at work on the file (IN_MODIFY): a close seen earlier is stale. */
  noteWriting(target: TargetConfig, relPath: string): void;
  /**
   * Scans a directory subtree with the same completion rule as every rescan: a new directory's files may
   * have been written before its watch existed. A rejection makes the watcher ask for a full rescan.
   */
  scanDirectory(target: TargetConfig, relDir: string): Promise<void>;
}

export interface WatcherDeps {
  readonly targets: readonly TargetConfig[];
  readonly observer: WatchedFileSink & Pick<Observer, 'isIgnored'>;
  readonly log: Logger;
  /** Lists the directories to watch below each watched one. */
  readonly dirs: SourceDirs;
  readonly createInotify: (onEvents: (events: InotifyEvent[]) => void) => InotifyPort;
  /** Something was missed (overflow, watch limit, an unmount): a full rescan must run. */
  readonly onRescanNeeded: (reason: string) => void;
  /** The inotify queue overflowed (counted by metrics; the rescan is asked for through onRescanNeeded). */
  readonly onOverflow?: () => void;
  /**
   * A target root was lost or is watched again: health() changed in a way `status` must show now, not at the
   * next pass (which may be minutes away). Called from the event handler; it must not throw.
   */
  readonly onHealthChange?: () => void;
  readonly now: () => number;
}

/**
 * How long a new name may wait for the IN_OPEN that says a writer created it. open(O_CREAT) queues
 * IN_CREATE and IN_OPEN in one syscall, but our read() can fall between them and split them over two
 * batches; link() queues IN_CREATE alone.
 */
export const LINK_GRACE_MS = 25;

/** At most this many unwatched directories are kept per target (with their errno); beyond it, only a count. */
export const UNWATCHED_LIST_LIMIT = 100;

/** At most this many paths are named per kind of change in a heal report and its log line. */
const REPORT_SAMPLE_LIMIT = 20;

// IN_OPEN and IN_MODIFY come for files in the directory (and IN_OPEN for its subdirectories and itself, which
// the handler ignores). IN_MODIFY comes once per write() that the reader has not caught up with: the kernel
// coalesces an event identical to the last one still queued. A large upload into a busy target can still
// fill the queue (fs.inotify.max_queued_events); an overflow only costs a remap and a full rescan.
// IN_UNMOUNT and IN_IGNORED are always delivered and need no bit here.
const DIRECTORY_MASK =
  M.CLOSE_WRITE |
  M.MOVED_TO |
  M.MOVED_FROM |
  M.CREATE |
  M.MODIFY |
  M.OPEN |
  M.DELETE_SELF |
  M.MOVE_SELF |
  M.ONLYDIR |
  M.DONT_FOLLOW |
  M.EXCL_UNLINK;

interface WatchedDirectory {
  readonly target: TargetConfig;
  readonly relDir: string;
}

/** A directory that could not be watched: the errno (or 'unmounted') and since when. */
export interface UnwatchedDirectory {
  readonly relDir: string;
  readonly code: string;
  readonly sinceMs: number;
}

/** Why a target's root is not watched, and since when. */
export interface RootLoss {
  /** An errno from inotify_add_watch ('ENOENT', 'ENOSPC', ...) or 'deleted', 'moved', 'unmounted', 'ignored'. */
  readonly reason: string;
  readonly sinceMs: number;
}

export interface TargetWatchHealth {
  readonly target: string;
  readonly rootWatched: boolean;
  /** Set when the root is not watched. */
  readonly rootLoss: RootLoss | null;
  /** Directories watched, the root included. */
  readonly directoriesWatched: number;
  /** Directories below the root that could not be watched (exact after a heal, may lag between). */
  readonly unwatchedCount: number;
  /** The first UNWATCHED_LIST_LIMIT of them. */
  readonly unwatched: readonly UnwatchedDirectory[];
}

export interface WatchHealth {
  readonly targets: readonly TargetWatchHealth[];
  readonly directoriesWatched: number;
  readonly unwatchedCount: number;
  readonly rootsUnwatched: number;
  /** The inotify queue is one per process, not per target: the last time it overflowed. */
  readonly lastOverflowAtMs: number | null;
  readonly lastHealAtMs: number | null;
}

/** How many paths, and the first few of them (absolute). */
export interface PathTally {
  count: number;
  readonly sample: string[];
}

export interface HealReport {
  readonly atMs: number;
  /** Directories that were not watched and now are (target roots included). */
  readonly added: PathTally;
  /** Watched directories found under another path (a rename whose events were lost): `from -> to`. */
  readonly remapped: PathTally;
  /** Watches dropped because their directory is no longer in the target (moved out, replaced, unmounted over). */
  readonly dropped: PathTally;
  /** Target roots watched again by this pass. */
  readonly rootsRewatched: readonly string[];
  /** Directories that still cannot be watched. */
  readonly unwatchedCount: number;
}

interface TargetState {
  readonly target: TargetConfig;
  rootLoss: RootLoss | null;
  readonly unwatched: Map<string, UnwatchedDirectory>;
  unwatchedCount: number;
}

/** One walk over some directories: what it confirmed, changed and could not watch. */
interface Walk {
  readonly confirmed: Set<number>;
  readonly added: PathTally;
  readonly remapped: PathTally;
  readonly dropped: PathTally;
  readonly rootsRewatched: string[];
  /** Directories refused, by errno: count and the first few. */
  readonly refused: Map<string, { first: WatchedDirectory; tally: PathTally }>;
}

interface PendingCreate {
  readonly target: TargetConfig;
  readonly relPath: string;
  readonly timer: NodeJS.Timeout;
}

/**
 * Recursive inotify watcher over every target. It only turns events into calls on its sink: a close, a
 * rename-in and a link are finished files, a write is a writer at work, a new directory is watched and then
 * scanned. Events are hints; when the kernel says it dropped some, a full rescan restores the truth, and
 * heal() brings back any watch that was lost or refused.
 */
export class Watcher {
  private readonly inotify: InotifyPort;
  private readonly byWd = new Map<number, WatchedDirectory>();
  private readonly states: Map<TargetConfig, TargetState>;
  /** New names (key `wd/name`) not yet known to have been opened: link() finishes, unless an IN_OPEN comes. */
  private readonly pendingCreates = new Map<string, PendingCreate>();
  private lastOverflowAtMs: number | null = null;
  private lastHealAtMs: number | null = null;
  /** The watch limit was logged (and a rescan asked for) since the last full walk. */
  private noSpaceReported = false;
  private closed = false;

  constructor(private readonly deps: WatcherDeps) {
    this.states = new Map(
      deps.targets.map((target) => [target, { target, rootLoss: null, unwatched: new Map(), unwatchedCount: 0 }]),
    );
    this.inotify = deps.createInotify((events) => this.handleBatch(events));
  }

  /** Watches every directory of every target. Call before the start-up scan so nothing falls between. */
  start(): void {
    if (this.walkAll().noSpaceReported) this.deps.onRescanNeeded('inotify-watch-limit');
  }

  /**
   * Re-walks every target and makes the watches match the directories there: adds those missing (refused
   * earlier with ENOSPC, lost in an overflow, a target root deleted or unmounted and there again), remaps
   * those found under a new path, drops those no longer in a target. Logs what it changed, and the remedy
   * once if the watch limit still refuses some. Idempotent: a second call changes nothing.
   *
   * Call it at the start of every scheduled pass, before the pass's scan: the scan then finds whatever was
   * written while a directory was unwatched. It does not ask for a rescan itself.
   */
  heal(): HealReport {
    const walk = this.walkAll();
    const atMs = this.deps.now();
    this.lastHealAtMs = atMs;
    const report: HealReport = {
      atMs,
      added: walk.added,
      remapped: walk.remapped,
      dropped: walk.dropped,
      rootsRewatched: walk.rootsRewatched,
      unwatchedCount: [...this.states.values()].reduce((sum, state) => sum + state.unwatchedCount, 0),
    };
    if (walk.added.count + walk.remapped.count + walk.dropped.count > 0) {
      this.deps.log.warn(
        {
          added: walk.added.count,
          remapped: walk.remapped.count,
          dropped: walk.dropped.count,
          addedDirs: walk.added.sample,
          remappedDirs: walk.remapped.sample,
          droppedDirs: walk.dropped.sample,
          rootsRewatched: walk.rootsRewatched,
          unwatched: report.unwatchedCount,
        },
        'inotify watches healed: watches added, remapped or dropped to match the directories on disk',
      );
    }
    return report;
  }

  /** What is watched and what is not, per target, for `status`. */
  health(): WatchHealth {
    const watchedByTarget = new Map<TargetConfig, number>();
    const rootWatched = new Set<TargetConfig>();
    for (const dir of this.byWd.values()) {
      watchedByTarget.set(dir.target, (watchedByTarget.get(dir.target) ?? 0) + 1);
      if (dir.relDir === '') rootWatched.add(dir.target);
    }
    // A root the kernel said it lost is lost, though its descriptor lingers until IN_IGNORED (deleted) or
    // unwatchTree (moved): health() is read at that very moment (onHealthChange).
    const isWatched = (state: TargetState): boolean => rootWatched.has(state.target) && state.rootLoss === null;
    const targets = [...this.states.values()].map(
      (state): TargetWatchHealth => ({
        target: state.target.path,
        rootWatched: isWatched(state),
        rootLoss: isWatched(state) ? null : (state.rootLoss ?? { reason: this.closed ? 'closed' : 'not-started', sinceMs: 0 }),
        directoriesWatched: watchedByTarget.get(state.target) ?? 0,
        unwatchedCount: state.unwatchedCount,
        unwatched: [...state.unwatched.values()],
      }),
    );
    return {
      targets,
      directoriesWatched: this.byWd.size,
      unwatchedCount: targets.reduce((sum, t) => sum + t.unwatchedCount, 0),
      rootsUnwatched: targets.filter((t) => !t.rootWatched).length,
      lastOverflowAtMs: this.lastOverflowAtMs,
      lastHealAtMs: this.lastHealAtMs,
    };
  }

  get watchCount(): number {
    return this.byWd.size;
  }

  close(): void {
    this.closed = true;
    this.cancelPendingCreates();
    this.inotify.close();
    this.byWd.clear();
  }

  private handleBatch(events: readonly InotifyEvent[]): void {
    let rescanReason: string | undefined;
    // Consecutive writes to one file in one batch are one "writer at work".
    let lastWriting: string | undefined;
    for (const event of events) {
      if (this.closed) return;
      const key = `${event.wd}/${event.name}`;
      if (event.mask & M.MODIFY && !(event.mask & M.ISDIR) && lastWriting === key) continue;
      lastWriting = event.mask & M.MODIFY ? key : undefined;
      rescanReason = this.handleEvent(event, key) ?? rescanReason;
    }
    if (rescanReason !== undefined && !this.closed) this.deps.onRescanNeeded(rescanReason);
  }

  /** Returns a reason when the event calls for a full rescan (once per batch is enough). */
  private handleEvent(event: InotifyEvent, key: string): string | undefined {
    if (event.mask & M.Q_OVERFLOW) {
      this.handleOverflow();
      return 'inotify-overflow';
    }
    const dir = this.byWd.get(event.wd);
    if (!dir) return undefined; // a watch we already dropped
    if (event.mask & (M.UNMOUNT | M.IGNORED | M.DELETE_SELF | M.MOVE_SELF)) return this.handleWatchEvent(event, dir);
    if (event.name === null) return undefined; // IN_OPEN of the directory itself
    // Any sign of an open or a write means the new name was created by a writer, not linked.
    if (event.mask & (M.OPEN | M.MODIFY | M.CLOSE_WRITE | M.MOVED_FROM)) this.cancelPendingCreate(key);
    if (event.mask & M.OPEN) return undefined; // that was all an open says (readers, our own workers included)
    if (!event.nameIsUtf8) {
      // Once per name that appears: every new name comes with IN_CREATE or IN_MOVED_TO.
      if (event.mask & (M.CREATE | M.MOVED_TO)) {
        this.deps.log.error(
          { target: dir.target.path, dir: dir.relDir, nameHex: event.nameBytes?.toString('hex') },
          'file name is not valid UTF-8 and cannot become an S3 key: not archived (rename it)',
        );
      }
      return undefined;
    }
    const relPath = dir.relDir === '' ? event.name : `${dir.relDir}/${event.name}`;
    if (this.deps.observer.isIgnored(dir.target, relPath)) return undefined;
    if (event.mask & M.ISDIR) this.handleDirectoryEvent(dir.target, relPath, event.mask);
    else this.handleFileEvent(dir.target, relPath, event.mask, key);
    return undefined;
  }

  private handleOverflow(): void {
    this.lastOverflowAtMs = this.deps.now();
    this.deps.onOverflow?.();
    this.deps.log.warn(
      'inotify queue overflowed: events were lost, rescanning every target. ' +
        'If this repeats, raise fs.inotify.max_queued_events (sysctl -w fs.inotify.max_queued_events=65536)',
    );
    // A new name's IN_OPEN may be among the lost events: let the rescan's settle rule take those files.
    this.cancelPendingCreates();
    // A lost directory rename leaves a watch mapped to its old path, a lost IN_IGNORED a watch for nothing:
    // walk again (addWatch on a watched directory returns its existing descriptor) before the rescan.
    this.heal();
  }

  /** The kernel says something about the watch itself: the directory went away, moved or was unmounted. */
  private handleWatchEvent(event: InotifyEvent, dir: WatchedDirectory): string | undefined {
    const isRoot = dir.relDir === '';
    if (event.mask & M.UNMOUNT) {
      // IN_IGNORED follows: the directory underneath the mount is watched again by the next heal().
      if (isRoot) {
        this.loseRoot(dir.target, 'unmounted');
      } else {
        this.deps.log.warn(
          { target: dir.target.path, dir: dir.relDir },
          'the filesystem holding this directory was unmounted: not watched until the next pass',
        );
        this.recordUnwatched(this.stateOf(dir.target), dir.relDir, 'unmounted');
      }
      return 'inotify-unmount';
    }
    if (event.mask & M.IGNORED) {
      this.byWd.delete(event.wd);
      if (isRoot && !this.isRootWatched(dir.target)) this.loseRoot(dir.target, 'ignored');
      return undefined;
    }
    if (!isRoot) return undefined; // a subdirectory: its parent's IN_MOVED_FROM / IN_IGNORED say it all
    if (event.mask & M.DELETE_SELF) {
      this.loseRoot(dir.target, 'deleted');
    } else {
      // The watches moved with the directory, outside the target: drop them all.
      this.loseRoot(dir.target, 'moved');
      this.unwatchTree(dir.target, '');
    }
    return undefined;
  }

  private handleFileEvent(target: TargetConfig, relPath: string, mask: number, key: string): void {
    if (mask & M.CLOSE_WRITE) {
      this.deps.observer.noteFinished(target, relPath, 'closed');
    } else if (mask & M.MOVED_TO) {
      this.deps.observer.noteFinished(target, relPath, 'moved-in');
    } else if (mask & M.MODIFY) {
      this.deps.observer.noteWriting(target, relPath);
    } else if (mask & M.CREATE) {
      this.awaitOpen(target, relPath, key);
    }
  }

  /**
   * A new name: open(O_CREAT) is followed by IN_OPEN, link() (WinSCP and sftp-server finish uploads by link +
   * unlink) is not. A linked name holds content that was complete when linked, so it is finished at once,
   * whatever its link count by now (the temp name is usually unlinked already). A writer's name waits for its
   * close. Any IN_OPEN (even a reader's) within the grace counts as a writer: its file then falls to the
   * rescan's settle rule, never to a partial archive.
   */
  private awaitOpen(target: TargetConfig, relPath: string, key: string): void {
    this.cancelPendingCreate(key);
    const timer = setTimeout(() => {
      this.pendingCreates.delete(key);
      if (!this.closed) this.deps.observer.noteFinished(target, relPath, 'linked');
    }, LINK_GRACE_MS);
    this.pendingCreates.set(key, { target, relPath, timer });
  }

  private cancelPendingCreate(key: string): void {
    const pending = this.pendingCreates.get(key);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pendingCreates.delete(key);
  }

  private cancelPendingCreates(): void {
    for (const pending of this.pendingCreates.values()) clearTimeout(pending.timer);
    this.pendingCreates.clear();
  }

  private handleDirectoryEvent(target: TargetConfig, relPath: string, mask: number): void {
    if (mask & M.MOVED_FROM) {
      this.unwatchTree(target, relPath);
      return;
    }
    if (!(mask & (M.CREATE | M.MOVED_TO))) return;
    const walk = newWalk();
    this.watchTree(target, relPath, walk);
    if (this.logRefusals(walk)) this.deps.onRescanNeeded('inotify-watch-limit');
    // Files written before the watch existed produce no event: the sink scans for them by the common rule.
    this.deps.observer.scanDirectory(target, relPath).catch((error: unknown) => {
      this.deps.log.error({ target: target.path, dir: relPath, error }, 'scan of new directory failed');
      this.deps.onRescanNeeded('new-directory-scan-failed');
    });
  }

  /** Walks every target from its root, then drops the watches the walk did not find. */
  private walkAll(): Walk & { noSpaceReported: boolean } {
    const walk = newWalk();
    this.noSpaceReported = false;
    for (const state of this.states.values()) {
      // Start the target's list afresh, keeping when each still-refused directory was first refused.
      const before = new Map(state.unwatched);
      state.unwatched.clear();
      state.unwatchedCount = 0;
      this.watchTree(state.target, '', walk, before);
    }
    for (const [wd, dir] of this.byWd) {
      if (walk.confirmed.has(wd)) continue;
      this.byWd.delete(wd);
      this.inotify.rmWatch(wd);
      tally(walk.dropped, path.join(dir.target.path, dir.relDir));
    }
    return { ...walk, noSpaceReported: this.logRefusals(walk) };
  }

  /** Adds watches for a directory and everything below it that is not ignored. Never follows symlinks. */
  private watchTree(target: TargetConfig, relDir: string, walk: Walk, before?: ReadonlyMap<string, UnwatchedDirectory>): void {
    const pending = [relDir];
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      if (!this.addWatch(target, dir, walk, before)) continue;
      for (const name of this.deps.dirs.subdirectories(path.join(target.path, dir))) {
        const child = dir === '' ? name : `${dir}/${name}`;
        if (!this.deps.observer.isIgnored(target, child)) pending.push(child);
      }
    }
  }

  private addWatch(target: TargetConfig, relDir: string, walk: Walk, before?: ReadonlyMap<string, UnwatchedDirectory>): boolean {
    const state = this.stateOf(target);
    let wd: number;
    try {
      // The target itself may be a symlink the operator chose; below it, links are never followed.
      const mask = relDir === '' ? DIRECTORY_MASK & ~M.DONT_FOLLOW : DIRECTORY_MASK;
      wd = this.inotify.addWatch(path.join(target.path, relDir), mask);
    } catch (error) {
      this.recordRefusal(state, relDir, errnoCode(error) ?? 'EUNKNOWN', walk, before);
      return false;
    }
    const known = this.byWd.get(wd);
    const where = path.join(target.path, relDir);
    if (!known) tally(walk.added, where);
    else if (known.target !== target || known.relDir !== relDir) tally(walk.remapped, `${path.join(known.target.path, known.relDir)} -> ${where}`);
    this.byWd.set(wd, { target, relDir });
    walk.confirmed.add(wd);
    if (state.unwatched.delete(relDir)) state.unwatchedCount = Math.max(0, state.unwatchedCount - 1);
    if (relDir === '' && state.rootLoss) {
      this.deps.log.warn({ target: target.path, was: state.rootLoss.reason }, 'target directory is watched again');
      state.rootLoss = null;
      walk.rootsRewatched.push(target.path);
      this.deps.onHealthChange?.();
    }
    return true;
  }

  private recordRefusal(
    state: TargetState,
    relDir: string,
    code: string,
    walk: Walk,
    before?: ReadonlyMap<string, UnwatchedDirectory>,
  ): void {
    if (relDir === '') {
      this.loseRoot(state.target, code);
      if (code !== 'ENOSPC') return; // and the limit's remedy is told below
    } else {
      if (code === 'ENOENT' || code === 'ENOTDIR') return; // vanished before we got there
      this.recordUnwatched(state, relDir, code, before?.get(relDir)?.sinceMs);
    }
    const refused = walk.refused.get(code) ?? { first: { target: state.target, relDir }, tally: { count: 0, sample: [] } };
    tally(refused.tally, path.join(state.target.path, relDir));
    walk.refused.set(code, refused);
  }

  private recordUnwatched(state: TargetState, relDir: string, code: string, sinceMs?: number): void {
    const known = state.unwatched.get(relDir);
    if (!known) state.unwatchedCount++;
    if (known || state.unwatched.size < UNWATCHED_LIST_LIMIT) {
      state.unwatched.set(relDir, { relDir, code, sinceMs: known?.sinceMs ?? sinceMs ?? this.deps.now() });
    }
  }

  /**
   * One line per errno per walk, not one per directory: a watch limit can refuse thousands. The limit is
   * told once per pass: new directories refused between passes add to the list but not to the log. Returns
   * whether it told of the limit now.
   */
  private logRefusals(walk: Walk): boolean {
    let toldNoSpace = false;
    for (const [code, { first, tally: refused }] of walk.refused) {
      const fields = {
        target: first.target.path,
        dir: first.relDir,
        code,
        count: refused.count,
        dirs: refused.sample,
        watches: this.byWd.size,
      };
      if (code === 'ENOSPC') {
        if (this.noSpaceReported) continue;
        this.noSpaceReported = toldNoSpace = true;
        this.deps.log.error(
          fields,
          'inotify watch limit reached: these directories are covered only by scheduled rescans until it is raised ' +
            '(sysctl -w fs.inotify.max_user_watches=1048576); the next pass watches them',
        );
      } else {
        this.deps.log.error(fields, 'cannot watch directories: covered only by scheduled rescans');
      }
    }
    return toldNoSpace;
  }

  /** The root is not watched any more: say so once, and let heal() add it back when it exists again. */
  private loseRoot(target: TargetConfig, reason: string): void {
    const state = this.stateOf(target);
    // IN_DELETE_SELF and IN_UNMOUNT are followed by IN_IGNORED; a missing root is refused by every heal().
    if (state.rootLoss && (reason === 'ignored' || state.rootLoss.reason === reason)) return;
    state.rootLoss = { reason, sinceMs: state.rootLoss?.sinceMs ?? this.deps.now() };
    this.deps.log.error(
      { target: target.path, reason },
      'target directory is not watched: its new files are found only by scheduled rescans, and the next pass watches it again once it exists',
    );
    this.deps.onHealthChange?.();
  }

  private isRootWatched(target: TargetConfig): boolean {
    for (const dir of this.byWd.values()) if (dir.target === target && dir.relDir === '') return true;
    return false;
  }

  private stateOf(target: TargetConfig): TargetState {
    const state = this.states.get(target);
    if (!state) throw new Error(`watcher: unknown target ${target.path}`);
    return state;
  }

  /** A directory moved away keeps its watches in the kernel, pointing outside the target: drop them. */
  private unwatchTree(target: TargetConfig, relDir: string): void {
    for (const [wd, dir] of this.byWd) {
      if (dir.target === target && (relDir === '' || dir.relDir === relDir || dir.relDir.startsWith(`${relDir}/`))) {
        this.inotify.rmWatch(wd);
        this.byWd.delete(wd);
      }
    }
  }
}

function newWalk(): Walk {
  return {
    confirmed: new Set(),
    added: { count: 0, sample: [] },
    remapped: { count: 0, sample: [] },
    dropped: { count: 0, sample: [] },
    rootsRewatched: [],
    refused: new Map(),
  };
}

function tally(into: PathTally, what: string): void {
  into.count++;
  if (into.sample.length < REPORT_SAMPLE_LIMIT) into.sample.push(what);
}
