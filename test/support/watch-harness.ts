// The recursive watcher against the real kernel, for integration tests: a real Watcher on a target in a fresh
// temp dir, with a recording sink in place of the Observer (the watcher's job ends at a call on its sink) and
// the InotifyPort injectable, so a test can wrap the real instance (or replace it) to inject faults.
//
//   const h = watchHarness(t);
//   h.watcher.start();
//   h.write('a.csv');
//   assert.equal(await h.waitForFinish('a.csv'), 'closed');
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

import type { TargetConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createIgnoreMatcher } from '../../src/observe/ignore.js';
import { nodeSourceDirs } from '../../src/source/source-fs.js';
import { Inotify, InotifyMask, type InotifyEvent } from '../../src/watch/inotify.js';
import { Watcher, type InotifyPort, type WatchedFileSink } from '../../src/watch/watcher.js';
import { captureLines, ManualClock, targetConfig, waitFor, type LogRecord } from './fixtures.js';

/** How long any wait of the harness may take before the test fails. */
export const WATCH_DEADLINE_MS = 8_000;

/** How the watcher said a file was finished. */
export type FinishedBy = 'closed' | 'moved-in' | 'linked';

/** One call on the sink, with the wall-clock time it came (for latency checks). */
export type Note =
  | { readonly kind: 'finished'; readonly relPath: string; readonly how: FinishedBy; readonly atMs: number }
  | { readonly kind: 'writing'; readonly relPath: string; readonly atMs: number }
  | { readonly kind: 'scan'; readonly relPath: string; readonly atMs: number };

/** Records every call on the sink, in order; ignores names as the Observer would, by the target's globs. */
export class RecordingSink implements WatchedFileSink {
  readonly notes: Note[] = [];
  /** When set, every scanDirectory() rejects with it (the watcher must then ask for a full rescan). */
  scanError: Error | undefined;
  private readonly ignored: (relPath: string) => boolean;

  constructor(ignore: readonly string[]) {
    this.ignored = createIgnoreMatcher(ignore);
  }

  isIgnored(_target: TargetConfig, relPath: string): boolean {
    return this.ignored(relPath);
  }

  noteFinished(_target: TargetConfig, relPath: string, how: FinishedBy): void {
    this.notes.push({ kind: 'finished', relPath, how, atMs: Date.now() });
  }

  noteWriting(_target: TargetConfig, relPath: string): void {
    this.notes.push({ kind: 'writing', relPath, atMs: Date.now() });
  }

  scanDirectory(_target: TargetConfig, relDir: string): Promise<void> {
    this.notes.push({ kind: 'scan', relPath: relDir, atMs: Date.now() });
    return this.scanError ? Promise.reject(this.scanError) : Promise.resolve();
  }

  /** Every note of `relPath`, in order. */
  of(relPath: string): Note[] {
    return this.notes.filter((note) => note.relPath === relPath);
  }
}

export interface WatchHarness {
  readonly root: string;
  readonly target: TargetConfig;
  readonly sink: RecordingSink;
  /** Not started: a test may lay out directories first, then call `watcher.start()`. */
  readonly watcher: Watcher;
  readonly clock: ManualClock;
  readonly logs: LogRecord[];
  /** The reasons given to onRescanNeeded, in order. */
  readonly rescans: string[];
  /** At each onHealthChange, what health() said of the root then: its loss's reason, or `watched`. */
  readonly healthChanges: string[];
  /** Writes a file under the target (creating parent dirs) and returns its absolute path. */
  write(relPath: string, content?: string): string;
  /** How each note of a finished `relPath` said it was finished, in order. */
  finishes(relPath: string): FinishedBy[];
  /** Paths noted finished, each once. */
  finishedPaths(): string[];
  /** The first note that matches, once there is one. */
  waitForNote(what: string, match: (note: Note) => boolean): Promise<Note>;
  /** How the first finish of `relPath` was noted, once there is one. */
  waitForFinish(relPath: string): Promise<FinishedBy>;
  waitForScan(relDir: string): Promise<void>;
  waitForLog(what: string, match: (line: LogRecord) => boolean): Promise<LogRecord>;
  waitForWatchCount(count: number): Promise<void>;
  /**
   * Writes a fresh file and waits for its close. Events are delivered in order, so once this returns every
   * event before it has been handled: a later "not noted" assertion is not just "not yet".
   */
  barrier(): Promise<void>;
}

export interface WatchHarnessOptions {
  /** The watcher's InotifyPort (default: the real one), e.g. a wrapper around `new Inotify()` that injects faults. */
  createInotify?: (onEvents: (events: InotifyEvent[]) => void) => InotifyPort;
  /** The directory under which `target/` is made (default: a fresh temp dir); removed when the test ends. */
  root?: string;
  /** Make `target/` a symlink to `real-target/`, as operators do (/srv/sftp -> /data/sftp). */
  targetIsSymlink?: boolean;
  /** The path the target is configured as, if not `<root>/target` (e.g. seen through another mount namespace). */
  targetPath?: (targetDir: string) => string;
}

/** Ignored at any depth: an upload's temp names and hidden files. */
const IGNORE = ['*.filepart', '*.part', '*.tmp', '.*'];

let barriers = 0;

/** A Watcher (not started) on `<root>/target`, closed and its root removed when the test ends. */
export function watchHarness(t: Pick<TestContext, 'after'>, options: WatchHarnessOptions = {}): WatchHarness {
  const root = options.root ?? fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-watcher-')));
  const targetDir = path.join(root, 'target');
  if (options.targetIsSymlink) {
    fs.mkdirSync(path.join(root, 'real-target'), { recursive: true });
    fs.symlinkSync(path.join(root, 'real-target'), targetDir);
  } else {
    fs.mkdirSync(targetDir, { recursive: true });
  }
  const target: TargetConfig = targetConfig({ path: options.targetPath?.(targetDir) ?? targetDir, ignore: IGNORE, bucket: 'unused' });
  const sink = new RecordingSink(target.ignore);
  const logs: LogRecord[] = [];
  const clock = new ManualClock();
  const rescans: string[] = [];
  const healthChanges: string[] = [];
  const watcher: Watcher = new Watcher({
    targets: [target],
    observer: sink,
    log: createLogger('debug', captureLines(logs)),
    dirs: nodeSourceDirs,
    createInotify: options.createInotify ?? ((onEvents) => new Inotify(onEvents)),
    onRescanNeeded: (reason) => rescans.push(reason),
    onHealthChange: () => void healthChanges.push(watcher.health().targets[0]?.rootLoss?.reason ?? 'watched'),
    now: clock.now,
  });
  t.after(() => {
    watcher.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const write = (relPath: string, content = `content of ${relPath}\n`): string => {
    const file = path.join(target.path, relPath);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    return file;
  };
  const recentState = (): string => `notes: ${JSON.stringify(sink.notes.slice(-10))}; logs: ${JSON.stringify(logs.slice(-5))}`;
  const waitForNote = (what: string, match: (note: Note) => boolean): Promise<Note> =>
    waitFor(what, () => sink.notes.find(match), {
      deadlineMs: WATCH_DEADLINE_MS,
      intervalMs: 5,
      describe: recentState,
    });
  const finishes = (relPath: string): FinishedBy[] =>
    sink.of(relPath).flatMap((note) => (note.kind === 'finished' ? [note.how] : []));
  const waitForFinish = (relPath: string): Promise<FinishedBy> =>
    waitFor(`${relPath} noted finished`, () => finishes(relPath)[0], {
      deadlineMs: WATCH_DEADLINE_MS,
      intervalMs: 5,
      describe: recentState,
    });
  return {
    root,
    target,
    sink,
    watcher,
    clock,
    logs,
    rescans,
    healthChanges,
    write,
    finishes,
    finishedPaths: () => [...new Set(sink.notes.flatMap((note) => (note.kind === 'finished' ? [note.relPath] : [])))],
    waitForNote,
    waitForFinish,
    waitForScan: async (relDir) => {
      await waitForNote(`a scan of ${relDir}`, (n) => n.kind === 'scan' && n.relPath === relDir);
    },
    waitForLog: (what, match) =>
      waitFor(what, () => logs.find(match), { deadlineMs: WATCH_DEADLINE_MS, describe: () => JSON.stringify(logs.slice(-5)) }),
    waitForWatchCount: async (count) => {
      await waitFor(`${count} watches`, () => (watcher.watchCount === count ? true : undefined), {
        deadlineMs: WATCH_DEADLINE_MS,
        intervalMs: 10,
        describe: () => `watchCount is ${watcher.watchCount}`,
      });
    },
    async barrier() {
      const name = `barrier-${++barriers}.txt`;
      write(name);
      await waitForFinish(name);
    },
  };
}

/** The event the kernel queues when its event queue overflowed (wd -1, no name). */
export function overflowEvent(): InotifyEvent {
  return { wd: -1, mask: InotifyMask.Q_OVERFLOW, cookie: 0, name: null, nameBytes: null, nameIsUtf8: true };
}
