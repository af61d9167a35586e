// The recursive watcher against the real kernel (our inotify binding), with a recording sink in place of the
// Observer: the watcher's whole job ends at a call on its sink (what the sink then does is the Observer's, and
// the end-to-end tests', concern). Fault cases the kernel cannot be made to produce on demand (queue overflow,
// watch limit) use a fake InotifyPort; watcher-healing.test.ts covers recovery from them with the real one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import type { TargetConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { createIgnoreMatcher } from '../../src/observe/ignore.js';
import { Inotify, InotifyMask, type InotifyEvent } from '../../src/watch/inotify.js';
import { Watcher, type InotifyPort, type WatchedFileSink } from '../../src/watch/watcher.js';
import { captureLines, ManualClock, waitFor, type LogRecord } from '../support/fixtures.js';

const DEADLINE_MS = 8_000;

type FinishedBy = 'closed' | 'moved-in' | 'linked';

type Note =
  | { readonly kind: 'finished'; readonly relPath: string; readonly how: FinishedBy }
  | { readonly kind: 'writing'; readonly relPath: string }
  | { readonly kind: 'scan'; readonly relPath: string };

/** Records every call on the sink, in order. */
class RecordingSink implements WatchedFileSink {
  readonly notes: Note[] = [];
  private readonly ignored: (relPath: string) => boolean;

  constructor(ignore: readonly string[]) {
    this.ignored = createIgnoreMatcher(ignore);
  }

  isIgnored(_target: TargetConfig, relPath: string): boolean {
    return this.ignored(relPath);
  }

  noteFinished(_target: TargetConfig, relPath: string, how: FinishedBy): void {
    this.notes.push({ kind: 'finished', relPath, how });
  }

  noteWriting(_target: TargetConfig, relPath: string): void {
    this.notes.push({ kind: 'writing', relPath });
  }

  scanDirectory(_target: TargetConfig, relDir: string): Promise<void> {
    this.notes.push({ kind: 'scan', relPath: relDir });
    return Promise.resolve();
  }
}

interface Harness {
  readonly root: string;
  readonly target: TargetConfig;
  readonly sink: RecordingSink;
  readonly watcher: Watcher;
  readonly clock: ManualClock;
  readonly logs: LogRecord[];
  readonly rescans: string[];
  /** Writes a file under the target (creating parent dirs) and returns its absolute path. */
  write(relPath: string, content?: string): string;
  /** How each note of a finished `relPath` said it was finished, in order. */
  finishes(relPath: string): FinishedBy[];
  /** Paths noted finished, each once. */
  finishedPaths(): string[];
  waitForFinish(relPath: string): Promise<FinishedBy>;
  waitForScan(relDir: string): Promise<void>;
  /**
   * Writes a fresh file and waits for its close. Events are delivered in order, so once this returns every
   * event before it has been handled: a later "not noted" assertion is not just "not yet".
   */
  barrier(): Promise<void>;
  waitForWatchCount(count: number): Promise<void>;
}

let barriers = 0;

interface HarnessOptions {
  createInotify?: (onEvents: (events: InotifyEvent[]) => void) => InotifyPort;
  /** Configure the target as a symlink to the real directory. */
  targetIsSymlink?: boolean;
}

function harness(t: TestContext, options: HarnessOptions = {}): Harness {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-watcher-'));
  const targetDir = path.join(root, 'target');
  fs.mkdirSync(options.targetIsSymlink ? path.join(root, 'real-target') : targetDir);
  if (options.targetIsSymlink) fs.symlinkSync(path.join(root, 'real-target'), targetDir);
  const target: TargetConfig = {
    path: targetDir,
    ignore: ['*.filepart', '*.part', '*.tmp', '.*'],
    bucket: 'unused',
    prefix: '',
    quietMs: 0,
  };
  const sink = new RecordingSink(target.ignore);
  const logs: LogRecord[] = [];
  const log = createLogger('debug', captureLines(logs));
  const rescans: string[] = [];
  const clock = new ManualClock();
  const watcher = new Watcher({
    targets: [target],
    observer: sink,
    log,
    createInotify: options.createInotify ?? ((onEvents) => new Inotify(onEvents)),
    onRescanNeeded: (reason) => rescans.push(reason),
    now: clock.now,
  });
  t.after(() => {
    watcher.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const finishes = (relPath: string): FinishedBy[] =>
    sink.notes.flatMap((note) => (note.kind === 'finished' && note.relPath === relPath ? [note.how] : []));
  const waitForFinish = (relPath: string): Promise<FinishedBy> =>
    waitFor(`${relPath} noted finished`, () => finishes(relPath)[0], {
      deadlineMs: DEADLINE_MS,
      intervalMs: 10,
      describe: () => `notes: ${JSON.stringify(sink.notes.slice(-10))}; logs: ${JSON.stringify(logs.slice(-5))}`,
    });
  const write = (relPath: string, content = `content of ${relPath}\n`): string => {
    const file = path.join(targetDir, relPath);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
    return file;
  };
  return {
    root,
    target,
    sink,
    watcher,
    clock,
    logs,
    rescans,
    write,
    finishes,
    finishedPaths: () => [...new Set(sink.notes.flatMap((note) => (note.kind === 'finished' ? [note.relPath] : [])))],
    waitForFinish,
    waitForScan: (relDir) =>
      waitFor(`a scan of ${relDir}`, () => (sink.notes.some((n) => n.kind === 'scan' && n.relPath === relDir) ? true : undefined), {
        deadlineMs: DEADLINE_MS,
        describe: () => JSON.stringify(sink.notes),
      }).then(() => undefined),
    async barrier() {
      const name = `barrier-${++barriers}.txt`;
      write(name);
      await waitForFinish(name);
    },
    waitForWatchCount: (count) =>
      waitFor(`${count} watches`, () => (watcher.watchCount === count ? true : undefined), {
        deadlineMs: DEADLINE_MS,
        intervalMs: 10,
        describe: () => `watchCount is ${watcher.watchCount}`,
      }).then(() => undefined),
  };
}

function started(h: Harness): Harness {
  h.watcher.start();
  return h;
}

/** A port that records watches but never talks to the kernel; `deliver` plays events into the watcher. */
class FakeInotify implements InotifyPort {
  deliver: (events: InotifyEvent[]) => void = () => assert.fail('watcher did not create its inotify instance');
  readonly added: string[] = [];
  /** Like the kernel: watching a directory again returns its existing descriptor. */
  private readonly wdByDir = new Map<string, number>();

  constructor(private readonly failFor: (dir: string) => Error | undefined = () => undefined) {}

  readonly create = (onEvents: (events: InotifyEvent[]) => void): InotifyPort => {
    this.deliver = onEvents;
    return this;
  };

  addWatch(dir: string): number {
    const error = this.failFor(dir);
    if (error) throw error;
    this.added.push(dir);
    const wd = this.wdByDir.get(dir) ?? this.wdByDir.size + 1;
    this.wdByDir.set(dir, wd);
    return wd;
  }

  rmWatch(): boolean {
    return true;
  }

  close(): void {}
}

function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

void describe('Watcher (real inotify, recording sink)', () => {
  void it('a file closed after writing is noted finished, once', async (t) => {
    const h = started(harness(t));
    h.write('hello.csv', 'a,b\n1,2\n');
    assert.equal(await h.waitForFinish('hello.csv'), 'closed');
    await h.barrier();
    assert.deepEqual(h.finishes('hello.csv'), ['closed']);
  });

  void it('a file renamed into the target from outside is noted under its new name as moved in', async (t) => {
    const h = started(harness(t));
    const outside = path.join(h.root, 'elsewhere.csv');
    fs.writeFileSync(outside, 'moved in\n');
    fs.renameSync(outside, path.join(h.target.path, 'moved.csv'));
    assert.equal(await h.waitForFinish('moved.csv'), 'moved-in');
  });

  void it('a temp name renamed to its final name notes only the final name', async (t) => {
    const h = started(harness(t));
    const temp = h.write('upload.csv.filepart', 'partial then complete\n');
    fs.renameSync(temp, path.join(h.target.path, 'upload.csv'));
    assert.equal(await h.waitForFinish('upload.csv'), 'moved-in');
    await h.barrier();
    assert.equal(h.sink.notes.filter((n) => n.relPath === 'upload.csv.filepart').length, 0);
    assert.equal(h.finishedPaths().length, 2, 'upload.csv and the barrier file');
  });

  void it('a hard link that finishes an upload (no close, no rename) is noted as linked', async (t) => {
    const h = started(harness(t));
    const temp = h.write('t.tmp', 'linked\n');
    fs.linkSync(temp, path.join(h.target.path, 'final.dat'));
    fs.unlinkSync(temp);
    assert.equal(await h.waitForFinish('final.dat'), 'linked');
    assert.deepEqual(h.finishes('t.tmp'), []);
  });

  void it('ignored names are never noted, at any depth', async (t) => {
    const h = started(harness(t));
    h.write('x.filepart');
    h.write('.hidden');
    h.write('deep/er/y.part');
    h.write('.git/config');
    await h.barrier();
    assert.equal(h.finishedPaths().length, 1, 'only the barrier file');
    assert.ok(!h.sink.notes.some((n) => n.relPath.startsWith('.git')), 'no scan of an ignored directory either');
  });

  void it('a new directory tree is watched and handed to the sink to scan; later files in it are noted', async (t) => {
    const h = started(harness(t));
    // mkdir -p then write at once: most of these land before the watcher has even seen `a`, so only the scan
    // of `a` (the sink's job) can find them.
    fs.mkdirSync(path.join(h.target.path, 'a/b/c'), { recursive: true });
    for (const rel of ['a/1.csv', 'a/b/2.csv', 'a/b/c/3.csv']) h.write(rel);
    await h.waitForScan('a');
    await h.waitForWatchCount(4);
    h.write('a/b/c/4.csv');
    assert.equal(await h.waitForFinish('a/b/c/4.csv'), 'closed');
  });

  void it('a directory moved out of the target loses its watches and later writes there are not noted', async (t) => {
    const removed: number[] = [];
    // The real kernel, with rmWatch recorded: the watches must really be dropped, not just forgotten.
    const h = harness(t, {
      createInotify: (onEvents) => {
        const real = new Inotify(onEvents);
        return {
          addWatch: (dir, mask) => real.addWatch(dir, mask),
          rmWatch: (wd) => {
            removed.push(wd);
            return real.rmWatch(wd);
          },
          close: () => real.close(),
        };
      },
    });
    fs.mkdirSync(path.join(h.target.path, 'sub/inner'), { recursive: true });
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 3);
    const outside = path.join(h.root, 'moved-out');
    fs.renameSync(path.join(h.target.path, 'sub'), outside);
    await h.waitForWatchCount(1);
    assert.equal(removed.length, 2, 'both watches of the moved tree are removed from the kernel');
    fs.writeFileSync(path.join(outside, 'late.txt'), 'not ours\n');
    fs.writeFileSync(path.join(outside, 'inner', 'late.txt'), 'not ours\n');
    await h.barrier();
    assert.deepEqual(h.finishedPaths().filter((p) => p.startsWith('sub/')), []);
    assert.equal(h.finishedPaths().length, 1, 'only the barrier file');
    assert.equal(h.watcher.heal().dropped.count, 0, 'nothing stale left for heal() to drop');
  });

  void it('a directory moved within the target is scanned and watched under its new path', async (t) => {
    const h = started(harness(t));
    fs.mkdirSync(path.join(h.target.path, 'd1/x'), { recursive: true });
    await h.waitForScan('d1');
    await h.waitForWatchCount(3);
    fs.renameSync(path.join(h.target.path, 'd1'), path.join(h.target.path, 'd2'));
    // Its existing file is for the scan of the "new" directory...
    await h.waitForScan('d2');
    // ...and files written there later are seen by the re-added watches, under the new path.
    h.write('d2/x/new.txt');
    await h.waitForFinish('d2/x/new.txt');
    await h.barrier();
    assert.deepEqual(h.finishes('d1/x/new.txt'), []);
    assert.equal(h.watcher.watchCount, 3, 'the moved tree is watched once, not twice');
  });

  void it('a directory moved in from outside is watched and scanned', async (t) => {
    const h = started(harness(t));
    const staging = path.join(h.root, 'staging');
    fs.mkdirSync(path.join(staging, 'deep'), { recursive: true });
    fs.writeFileSync(path.join(staging, 'deep', 'ready.csv'), 'ready\n');
    fs.renameSync(staging, path.join(h.target.path, 'batch'));
    await h.waitForScan('batch');
    await h.waitForWatchCount(3);
    h.write('batch/deep/later.csv');
    await h.waitForFinish('batch/deep/later.csv');
  });

  void it('a deleted directory\'s watch is forgotten', async (t) => {
    const h = harness(t);
    fs.mkdirSync(path.join(h.target.path, 'gone/deeper'), { recursive: true });
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 3);
    fs.rmSync(path.join(h.target.path, 'gone'), { recursive: true });
    await h.waitForWatchCount(1);
  });

  void it('a file name that is not UTF-8 is not noted and an error names its bytes', async (t) => {
    const h = started(harness(t));
    const badName = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x63, 0x73, 0x76]); // "bad\xff\xfe.csv"
    fs.writeFileSync(Buffer.concat([Buffer.from(`${h.target.path}/`), badName]), 'latin-1 name\n');
    await h.barrier();
    assert.equal(h.finishedPaths().length, 1, 'only the barrier file');
    const error = h.logs.find((line) => line.nameHex === badName.toString('hex'));
    assert.ok(error, `an error log naming the bytes; got ${JSON.stringify(h.logs)}`);
    assert.equal(error.level, 50);
    assert.match(error.msg, /not valid UTF-8/);
  });

  // Operators point targets at symlinks (/srv/sftp -> /data/sftp). The watch is added with IN_DONT_FOLLOW, so
  // the kernel answers ENOTDIR, which the watcher takes for "vanished" and swallows: nothing is watched.
  void it('a target given as a symlink to a directory is watched', async (t) => {
    const h = harness(t, { targetIsSymlink: true });
    h.watcher.start();
    assert.ok(h.watcher.watchCount >= 1, `the target is watched; logs: ${JSON.stringify(h.logs)}`);
    h.write('through-link.csv');
    await h.waitForFinish('through-link.csv');
  });

  void it('a target directory that does not exist is reported as an error and in health', (t) => {
    const h = harness(t);
    fs.rmSync(h.target.path, { recursive: true });
    h.watcher.start();
    const error = h.logs.find((line) => line.level >= 50 && JSON.stringify(line).includes(h.target.path));
    assert.ok(error, `an error naming the missing target; got watchCount ${h.watcher.watchCount} and logs ${JSON.stringify(h.logs)}`);
    const health = h.watcher.health();
    assert.equal(health.rootsUnwatched, 1);
    assert.deepEqual(health.targets[0]?.rootLoss, { reason: 'ENOENT', sinceMs: h.clock.ms });
  });

  void it('a queue overflow (wd -1) asks for a full rescan, says how to prevent it, and is in health', (t) => {
    const fake = new FakeInotify();
    const h = started(harness(t, { createInotify: fake.create }));
    assert.equal(h.watcher.health().lastOverflowAtMs, null);
    h.clock.advance(1_000);
    fake.deliver([{ wd: -1, mask: InotifyMask.Q_OVERFLOW, cookie: 0, name: null, nameBytes: null, nameIsUtf8: true }]);
    assert.deepEqual(h.rescans, ['inotify-overflow']);
    const warning = h.logs.find((line) => /overflow/.test(line.msg));
    assert.ok(warning, 'a warning about the overflow');
    assert.match(warning.msg, /max_queued_events/);
    assert.equal(h.watcher.health().lastOverflowAtMs, h.clock.ms);
    assert.equal(h.watcher.watchCount, 1, 'the walk after it found the same watch');
  });

  void it('hitting the watch limit (ENOSPC) logs the sysctl remedy once and asks for a rescan', (t) => {
    const fake = new FakeInotify((dir) => (/full\d$/.test(dir) ? errnoError('ENOSPC', 'inotify_add_watch: no space left on device') : undefined));
    const h = harness(t, { createInotify: fake.create });
    fs.mkdirSync(path.join(h.target.path, 'ok'));
    for (const name of ['full1', 'full2', 'full3']) fs.mkdirSync(path.join(h.target.path, name));
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 2, 'the target and ok/ are watched');
    assert.deepEqual(h.rescans, ['inotify-watch-limit']);
    const errors = h.logs.filter((line) => /max_user_watches/.test(line.msg));
    assert.equal(errors.length, 1, `one line for the pass, not one per directory; got ${JSON.stringify(h.logs)}`);
    assert.equal(errors[0]?.level, 50);
    assert.equal(errors[0]?.count, 3);
    assert.match(String(errors[0]?.dir), /^full\d$/);
    assert.equal(h.watcher.health().unwatchedCount, 3);
  });

  void it('events for a watch already dropped are ignored', (t) => {
    const fake = new FakeInotify();
    const h = started(harness(t, { createInotify: fake.create }));
    fake.deliver([{ wd: 99, mask: InotifyMask.CLOSE_WRITE, cookie: 0, name: 'x.csv', nameBytes: Buffer.from('x.csv'), nameIsUtf8: true }]);
    assert.deepEqual(h.sink.notes, []);
    assert.deepEqual(h.rescans, []);
  });
});
