// The recursive watcher against the real kernel (our inotify binding), a real Observer and a real SQLite
// ledger in a temp dir. No S3: the watcher's whole job ends at a ledger row. Fault cases the kernel cannot
// be made to produce on demand (queue overflow, watch limit) use a fake InotifyPort.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import { MIGRATIONS_DIR } from '../../src/app.js';
import type { TargetConfig } from '../../src/config.js';
import { Ledger, type FileRow } from '../../src/ledger/ledger.js';
import { createLogger } from '../../src/log.js';
import { Observer } from '../../src/observe/observer.js';
import { nodeSourceFs } from '../../src/pipeline/source-file.js';
import { Inotify, InotifyMask, type InotifyEvent } from '../../src/watch/inotify.js';
import { Watcher, type InotifyPort } from '../../src/watch/watcher.js';
import { captureLines, waitFor, type LogRecord } from '../support/fixtures.js';

const DEADLINE_MS = 8_000;
/** Quiet period for a created file with no close (hard links): short, the tests wait for rows anyway. */
const SETTLE_MS = 200;


interface Harness {
  readonly root: string;
  readonly target: TargetConfig;
  readonly ledger: Ledger;
  readonly watcher: Watcher;
  readonly logs: LogRecord[];
  readonly rescans: string[];
  /** Writes a file under the target (creating parent dirs) and returns its absolute path. */
  write(relPath: string, content?: string): string;
  rows(relPath: string): FileRow[];
  /** Total rows in the ledger, whatever their state. */
  rowCount(): number;
  waitForRow(relPath: string): Promise<FileRow>;
  /**
   * Writes a fresh file and waits for its row. Events are delivered in order, so once this returns every
   * event before it has been handled: a later "no row" assertion is not just "not yet".
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
  const ledger = Ledger.open(path.join(root, 'ledger.db'), { migrationsDir: MIGRATIONS_DIR });
  const logs: LogRecord[] = [];
  const log = createLogger('debug', captureLines(logs));
  const observer = new Observer({
    ledger,
    source: nodeSourceFs,
    log,
    onQueued: () => undefined,
    onFatal: (error) => logs.push({ level: 60, msg: `fatal: ${String(error)}` }),
  });
  const rescans: string[] = [];
  const watcher = new Watcher({
    targets: [target],
    observer,
    log,
    createInotify: options.createInotify ?? ((onEvents) => new Inotify(onEvents)),
    onRescanNeeded: (reason) => rescans.push(reason),
    settleMs: SETTLE_MS,
    now: Date.now,
  });
  t.after(() => {
    watcher.close();
    observer.close();
    ledger.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  const rows = (relPath: string): FileRow[] => ledger.story(relPath, targetDir).generations;
  const waitForRow = (relPath: string): Promise<FileRow> =>
    waitFor(`a ledger row for ${relPath}`, () => rows(relPath)[0], {
      deadlineMs: DEADLINE_MS,
      intervalMs: 20,
      describe: () => `rows: ${JSON.stringify(ledger.status().counts)}; logs: ${JSON.stringify(logs.slice(-5))}`,
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
    ledger,
    watcher,
    logs,
    rescans,
    write,
    rows,
    rowCount: () => Object.values(ledger.status().counts).reduce((sum, n) => sum + n, 0),
    waitForRow,
    async barrier() {
      const name = `barrier-${++barriers}.txt`;
      write(name);
      await waitForRow(name);
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
  private nextWd = 1;

  constructor(private readonly failFor: (dir: string) => Error | undefined = () => undefined) {}

  readonly create = (onEvents: (events: InotifyEvent[]) => void): InotifyPort => {
    this.deliver = onEvents;
    return this;
  };

  addWatch(dir: string): number {
    const error = this.failFor(dir);
    if (error) throw error;
    this.added.push(dir);
    return this.nextWd++;
  }

  rmWatch(): boolean {
    return true;
  }

  close(): void {}
}

function errnoError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

void describe('Watcher (real inotify, real ledger)', () => {
  void it('a file closed after writing becomes a pending row with its size', async (t) => {
    const h = started(harness(t));
    h.write('hello.csv', 'a,b\n1,2\n');
    const row = await h.waitForRow('hello.csv');
    assert.equal(row.state, 'pending');
    assert.equal(row.sizeBytes, 8);
    assert.equal(row.generation, 1);
  });

  void it('a file renamed into the target from outside is recorded under its new name', async (t) => {
    const h = started(harness(t));
    const outside = path.join(h.root, 'elsewhere.csv');
    fs.writeFileSync(outside, 'moved in\n');
    fs.renameSync(outside, path.join(h.target.path, 'moved.csv'));
    const row = await h.waitForRow('moved.csv');
    assert.equal(row.sizeBytes, 9);
  });

  void it('a temp name renamed to its final name records only the final name', async (t) => {
    const h = started(harness(t));
    const temp = h.write('upload.csv.filepart', 'partial then complete\n');
    fs.renameSync(temp, path.join(h.target.path, 'upload.csv'));
    await h.waitForRow('upload.csv');
    await h.barrier();
    assert.deepEqual(h.rows('upload.csv.filepart'), []);
    assert.equal(h.rowCount(), 2);
  });

  void it('a hard link that finishes an upload (no close, no rename) gets a row', async (t) => {
    const h = started(harness(t));
    const temp = h.write('t.tmp', 'linked\n');
    fs.linkSync(temp, path.join(h.target.path, 'final.dat'));
    fs.unlinkSync(temp);
    const row = await h.waitForRow('final.dat');
    assert.equal(row.sizeBytes, 7);
    assert.deepEqual(h.rows('t.tmp'), []);
  });

  void it('ignored names never get a row, at any depth', async (t) => {
    const h = started(harness(t));
    h.write('x.filepart');
    h.write('.hidden');
    h.write('deep/er/y.part');
    h.write('.git/config');
    await h.barrier();
    assert.equal(h.rowCount(), 1, 'only the barrier file');
  });

  void it('a new directory tree gets rows for files written before and after its watches exist', async (t) => {
    const h = started(harness(t));
    // mkdir -p then write at once: most of these land before the watcher has even seen `a`.
    fs.mkdirSync(path.join(h.target.path, 'a/b/c'), { recursive: true });
    for (const rel of ['a/1.csv', 'a/b/2.csv', 'a/b/c/3.csv']) h.write(rel);
    for (const rel of ['a/1.csv', 'a/b/2.csv', 'a/b/c/3.csv']) await h.waitForRow(rel);
    await h.waitForWatchCount(4);
    h.write('a/b/c/4.csv');
    await h.waitForRow('a/b/c/4.csv');
    assert.equal(h.rowCount(), 4);
  });

  void it('a directory moved out of the target loses its watches and later writes there produce no rows', async (t) => {
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
    assert.deepEqual(h.rows('sub/late.txt'), []);
    assert.deepEqual(h.rows('sub/inner/late.txt'), []);
    assert.equal(h.rowCount(), 1, 'only the barrier file');
  });

  void it('a directory moved within the target is observed under its new path', async (t) => {
    const h = started(harness(t));
    h.write('d1/x/old.txt');
    await h.waitForRow('d1/x/old.txt');
    await h.waitForWatchCount(3);
    fs.renameSync(path.join(h.target.path, 'd1'), path.join(h.target.path, 'd2'));
    // Its existing file is found by the scan of the "new" directory...
    await h.waitForRow('d2/x/old.txt');
    // ...and files written there later are seen by the re-added watches, under the new path.
    h.write('d2/x/new.txt');
    await h.waitForRow('d2/x/new.txt');
    await h.barrier();
    assert.deepEqual(h.rows('d1/x/new.txt'), []);
    assert.equal(h.watcher.watchCount, 3, 'the moved tree is watched once, not twice');
  });

  void it('a directory moved in from outside is watched and its files recorded', async (t) => {
    const h = started(harness(t));
    const staging = path.join(h.root, 'staging');
    fs.mkdirSync(path.join(staging, 'deep'), { recursive: true });
    fs.writeFileSync(path.join(staging, 'deep', 'ready.csv'), 'ready\n');
    fs.renameSync(staging, path.join(h.target.path, 'batch'));
    await h.waitForRow('batch/deep/ready.csv');
    await h.waitForWatchCount(3);
    h.write('batch/deep/later.csv');
    await h.waitForRow('batch/deep/later.csv');
  });

  void it('a deleted directory\'s watch is forgotten', async (t) => {
    const h = harness(t);
    fs.mkdirSync(path.join(h.target.path, 'gone/deeper'), { recursive: true });
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 3);
    fs.rmSync(path.join(h.target.path, 'gone'), { recursive: true });
    await h.waitForWatchCount(1);
  });

  void it('a file name that is not UTF-8 gets no row and an error naming its bytes', async (t) => {
    const h = started(harness(t));
    const badName = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x63, 0x73, 0x76]); // "bad\xff\xfe.csv"
    fs.writeFileSync(Buffer.concat([Buffer.from(`${h.target.path}/`), badName]), 'latin-1 name\n');
    await h.barrier();
    assert.equal(h.rowCount(), 1, 'only the barrier file');
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
    await h.waitForRow('through-link.csv');
  });

  void it('a target directory that does not exist is reported as an error', (t) => {
    const h = harness(t);
    fs.rmSync(h.target.path, { recursive: true });
    h.watcher.start();
    const error = h.logs.find((line) => line.level >= 50 && JSON.stringify(line).includes(h.target.path));
    assert.ok(error, `an error naming the missing target; got watchCount ${h.watcher.watchCount} and logs ${JSON.stringify(h.logs)}`);
  });

  void it('a queue overflow (wd -1) asks for a full rescan and says how to prevent it', (t) => {
    const fake = new FakeInotify();
    const h = started(harness(t, { createInotify: fake.create }));
    fake.deliver([{ wd: -1, mask: InotifyMask.Q_OVERFLOW, cookie: 0, name: null, nameBytes: null, nameIsUtf8: true }]);
    assert.deepEqual(h.rescans, ['inotify-overflow']);
    const warning = h.logs.find((line) => /overflow/.test(line.msg));
    assert.ok(warning, 'a warning about the overflow');
    assert.match(warning.msg, /max_queued_events/);
  });

  void it('hitting the watch limit (ENOSPC) logs the sysctl remedy and asks for a rescan', (t) => {
    const fake = new FakeInotify((dir) => (dir.endsWith('full') ? errnoError('ENOSPC', 'inotify_add_watch: no space left on device') : undefined));
    const h = harness(t, { createInotify: fake.create });
    fs.mkdirSync(path.join(h.target.path, 'ok'));
    fs.mkdirSync(path.join(h.target.path, 'full'));
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 2, 'the target and ok/ are watched');
    assert.deepEqual(h.rescans, ['inotify-watch-limit']);
    const error = h.logs.find((line) => line.dir === 'full');
    assert.ok(error, `an error naming the directory; got ${JSON.stringify(h.logs)}`);
    assert.equal(error.level, 50);
    assert.match(error.msg, /max_user_watches/);
  });

  void it('events for a watch already dropped are ignored', (t) => {
    const fake = new FakeInotify();
    const h = started(harness(t, { createInotify: fake.create }));
    fake.deliver([{ wd: 99, mask: InotifyMask.CLOSE_WRITE, cookie: 0, name: 'x.csv', nameBytes: Buffer.from('x.csv'), nameIsUtf8: true }]);
    assert.equal(h.rowCount(), 0);
    assert.deepEqual(h.rescans, []);
  });
});
