// The recursive watcher against the real kernel (our inotify binding), with a recording sink in place of the
// Observer (both from test/support/watch-harness.ts): the watcher's whole job ends at a call on its sink (what
// the sink then does is the Observer's, and the end-to-end tests', concern). Fault cases the kernel cannot be
// made to produce on demand (queue overflow, watch limit) use a fake InotifyPort; watcher-healing.test.ts
// covers recovery from them with the real one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { Inotify, InotifyMask, type InotifyEvent } from '../../src/watch/inotify.js';
import type { InotifyPort } from '../../src/watch/watcher.js';
import { overflowEvent, watchHarness, type WatchHarness } from '../support/watch-harness.js';

function started(h: WatchHarness): WatchHarness {
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
    const h = started(watchHarness(t));
    h.write('hello.csv', 'a,b\n1,2\n');
    assert.equal(await h.waitForFinish('hello.csv'), 'closed');
    await h.barrier();
    assert.deepEqual(h.finishes('hello.csv'), ['closed']);
  });

  void it('a file renamed into the target from outside is noted under its new name as moved in', async (t) => {
    const h = started(watchHarness(t));
    const outside = path.join(h.root, 'elsewhere.csv');
    fs.writeFileSync(outside, 'moved in\n');
    fs.renameSync(outside, path.join(h.target.path, 'moved.csv'));
    assert.equal(await h.waitForFinish('moved.csv'), 'moved-in');
  });

  void it('a temp name renamed to its final name notes only the final name', async (t) => {
    const h = started(watchHarness(t));
    const temp = h.write('upload.csv.filepart', 'partial then complete\n');
    fs.renameSync(temp, path.join(h.target.path, 'upload.csv'));
    assert.equal(await h.waitForFinish('upload.csv'), 'moved-in');
    await h.barrier();
    assert.equal(h.sink.notes.filter((n) => n.relPath === 'upload.csv.filepart').length, 0);
    assert.equal(h.finishedPaths().length, 2, 'upload.csv and the barrier file');
  });

  void it('a hard link that finishes an upload (no close, no rename) is noted as linked', async (t) => {
    const h = started(watchHarness(t));
    const temp = h.write('t.tmp', 'linked\n');
    fs.linkSync(temp, path.join(h.target.path, 'final.dat'));
    fs.unlinkSync(temp);
    assert.equal(await h.waitForFinish('final.dat'), 'linked');
    assert.deepEqual(h.finishes('t.tmp'), []);
  });

  void it('ignored names are never noted, at any depth', async (t) => {
    const h = started(watchHarness(t));
    h.write('x.filepart');
    h.write('.hidden');
    h.write('deep/er/y.part');
    h.write('.git/config');
    await h.barrier();
    assert.equal(h.finishedPaths().length, 1, 'only the barrier file');
    assert.ok(!h.sink.notes.some((n) => n.relPath.startsWith('.git')), 'no scan of an ignored directory either');
  });

  void it('a new directory tree is watched and handed to the sink to scan; later files in it are noted', async (t) => {
    const h = started(watchHarness(t));
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
    const h = watchHarness(t, {
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
    const h = started(watchHarness(t));
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
    const h = started(watchHarness(t));
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
    const h = watchHarness(t);
    fs.mkdirSync(path.join(h.target.path, 'gone/deeper'), { recursive: true });
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 3);
    fs.rmSync(path.join(h.target.path, 'gone'), { recursive: true });
    await h.waitForWatchCount(1);
  });

  void it('a file name that is not UTF-8 is not noted and an error names its bytes', async (t) => {
    const h = started(watchHarness(t));
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
    const h = watchHarness(t, { targetIsSymlink: true });
    h.watcher.start();
    assert.ok(h.watcher.watchCount >= 1, `the target is watched; logs: ${JSON.stringify(h.logs)}`);
    h.write('through-link.csv');
    await h.waitForFinish('through-link.csv');
  });

  void it('a target directory that does not exist is reported as an error and in health', (t) => {
    const h = watchHarness(t);
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
    const h = started(watchHarness(t, { createInotify: fake.create }));
    assert.equal(h.watcher.health().lastOverflowAtMs, null);
    h.clock.advance(1_000);
    fake.deliver([overflowEvent()]);
    assert.deepEqual(h.rescans, ['inotify-overflow']);
    const warning = h.logs.find((line) => /overflow/.test(line.msg));
    assert.ok(warning, 'a warning about the overflow');
    assert.match(warning.msg, /max_queued_events/);
    assert.equal(h.watcher.health().lastOverflowAtMs, h.clock.ms);
    assert.equal(h.watcher.watchCount, 1, 'the walk after it found the same watch');
  });

  void it('hitting the watch limit (ENOSPC) logs the sysctl remedy once and asks for a rescan', (t) => {
    const fake = new FakeInotify((dir) => (/full\d$/.test(dir) ? errnoError('ENOSPC', 'inotify_add_watch: no space left on device') : undefined));
    const h = watchHarness(t, { createInotify: fake.create });
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
    const h = started(watchHarness(t, { createInotify: fake.create }));
    fake.deliver([{ wd: 99, mask: InotifyMask.CLOSE_WRITE, cookie: 0, name: 'x.csv', nameBytes: Buffer.from('x.csv'), nameIsUtf8: true }]);
    assert.deepEqual(h.sink.notes, []);
    assert.deepEqual(h.rescans, []);
  });
});
