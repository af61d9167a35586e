// The watcher's contract with its sink, and its healing, against the real kernel: real inotify, real files in
// temp dirs, and a recording sink in place of the Observer (test/support/watch-harness.ts; what the sink does
// with a note is the Observer's business, what the watcher must say, and when, is tested here). Faults the
// kernel cannot be made to produce without side effects on the whole machine are injected at the InotifyPort,
// around the real instance.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it, type TestContext } from 'node:test';

import { Inotify, InotifyError, type InotifyEvent } from '../../src/watch/inotify.js';
import type { InotifyPort } from '../../src/watch/watcher.js';
import { waitFor } from '../support/fixtures.js';
import { overflowEvent, WATCH_DEADLINE_MS, watchHarness, type Note } from '../support/watch-harness.js';

const closed = (relPath: string) => (note: Note) => note.kind === 'finished' && note.how === 'closed' && note.relPath === relPath;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The real kernel instance, with two faults a test cannot get from the kernel without side effects on the
 * whole machine: ENOSPC (lowering fs.inotify.max_user_watches is root-wide, and would break every other
 * watcher on a shared host) for the first `refuse` directories below the root while `limited` is set, and a
 * queue overflow (events dropped while `dropping`, then IN_Q_OVERFLOW played in by `overflow()`).
 */
class FaultyInotify {
  limited = true;
  dropping = false;
  readonly refused = new Set<string>();
  private deliver: (events: InotifyEvent[]) => void = () => assert.fail('watcher did not create its inotify instance');

  constructor(private readonly refuse = 0) {}

  readonly create = (onEvents: (events: InotifyEvent[]) => void): InotifyPort => {
    this.deliver = onEvents;
    const real = new Inotify((events) => {
      if (!this.dropping) onEvents(events);
    });
    let root: string | undefined;
    return {
      addWatch: (dir, mask) => {
        root ??= dir; // the watcher walks from the target's root
        if (this.limited && dir !== root && (this.refused.has(dir) || this.refused.size < this.refuse)) {
          this.refused.add(dir);
          throw new InotifyError('inotify_add_watch: No space left on device', 'ENOSPC', 28, dir, 'inotify_add_watch');
        }
        return real.addWatch(dir, mask);
      },
      rmWatch: (wd) => real.rmWatch(wd),
      close: () => real.close(),
    };
  };

  overflow(): void {
    this.deliver([overflowEvent()]);
  }
}

void describe('Watcher: when a file is finished (real inotify, recording sink)', () => {
  void it('a name linked in (link + unlink of the temp name) is finished at once, not after a settle wait', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    const temp = h.write('t.tmp', 'complete content\n');
    const linkedAt = Date.now();
    fs.linkSync(temp, path.join(h.target.path, 'final.dat'));
    fs.unlinkSync(temp);
    const note = await h.waitForNote('final.dat finished', (n) => n.relPath === 'final.dat' && n.kind === 'finished');
    assert.deepEqual({ kind: note.kind, how: note.kind === 'finished' && note.how }, { kind: 'finished', how: 'linked' });
    // A grace of LINK_GRACE_MS (25 ms) for an IN_OPEN, nothing more; the bound leaves room for a busy CI host.
    assert.ok(note.atMs - linkedAt < 250, `noted ${note.atMs - linkedAt} ms after link()`);
    await h.barrier();
    assert.deepEqual(
      h.sink.of('final.dat').map((n) => n.kind),
      ['finished'],
      'one note, and no write seen for a linked name',
    );
    assert.deepEqual(h.sink.of('t.tmp'), [], 'the ignored temp name is never noted');
  });

  void it('a file created by open(O_CREAT) and written slowly is not taken for a link: only its close finishes it', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    const file = path.join(h.target.path, 'slow.csv');
    const fd = fs.openSync(file, 'w');
    await sleep(150); // far longer than the link grace: only the IN_OPEN tells this name from a linked one
    fs.writeSync(fd, 'first line\n');
    await sleep(100);
    fs.writeSync(fd, 'second line\n');
    await h.waitForNote('a write to slow.csv', (n) => n.relPath === 'slow.csv' && n.kind === 'writing');
    assert.deepEqual(
      h.sink.of('slow.csv').filter((n) => n.kind === 'finished'),
      [],
      'nothing finished while the writer holds it open',
    );
    fs.closeSync(fd);
    await h.waitForNote('the close of slow.csv', closed('slow.csv'));
    await h.barrier();
    const finishes = h.sink.of('slow.csv').filter((n) => n.kind === 'finished');
    assert.deepEqual(
      finishes.map((n) => n.kind === 'finished' && n.how),
      ['closed'],
    );
  });

  void it('a file reopened for writing after its close is noted as being written again (the close is stale)', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    const file = h.write('report.csv', 'complete first version\n');
    await h.waitForNote('the close of report.csv', closed('report.csv'));
    const closeNote = h.sink.notes.findIndex(closed('report.csv'));
    const fd = fs.openSync(file, 'w'); // truncates: the writer is back
    t.after(() => fs.closeSync(fd));
    fs.writeSync(fd, 'half of the second');
    await h.waitForNote(
      'a write after the close',
      (n) => n.kind === 'writing' && n.relPath === 'report.csv' && h.sink.notes.indexOf(n) > closeNote,
    );
    assert.deepEqual(
      h.sink.of('report.csv').filter((n) => n.kind === 'finished'),
      [h.sink.notes[closeNote]],
      'the writer still holds it: no second finish yet',
    );
  });

  void it('a rename into the target finishes the file as moved in', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    const temp = h.write('upload.csv.filepart', 'done\n');
    fs.renameSync(temp, path.join(h.target.path, 'upload.csv'));
    await h.waitForNote('upload.csv moved in', (n) => n.kind === 'finished' && n.how === 'moved-in' && n.relPath === 'upload.csv');
  });

  void it('a new directory is handed to the sink to scan, with no quiet window of the watcher\'s own', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    const madeAt = Date.now();
    fs.mkdirSync(path.join(h.target.path, 'incoming'));
    const scan = await h.waitForNote('a scan of incoming', (n) => n.kind === 'scan' && n.relPath === 'incoming');
    assert.ok(scan.atMs - madeAt < 500, `scan asked for ${scan.atMs - madeAt} ms after mkdir`);
    h.write('incoming/later.csv');
    await h.waitForNote('the close of incoming/later.csv', closed('incoming/later.csv'));
  });

  void it('a failed scan of a new directory asks for a full rescan', async (t) => {
    const h = watchHarness(t);
    h.sink.scanError = new Error('ledger is gone');
    h.watcher.start();
    fs.mkdirSync(path.join(h.target.path, 'incoming'));
    await waitFor('a rescan request', () => (h.rescans.includes('new-directory-scan-failed') ? true : undefined), {
      deadlineMs: WATCH_DEADLINE_MS,
    });
  });
});

void describe('Watcher: healing (real inotify, recording sink)', () => {
  void it('directories refused with ENOSPC are watched by heal() once the limit is raised', async (t) => {
    const inotify = new FaultyInotify(3);
    const h = watchHarness(t, { createInotify: inotify.create });
    const dirs = ['d0', 'd1', 'd2', 'd3', 'd4'];
    for (const dir of dirs) fs.mkdirSync(path.join(h.target.path, dir));
    h.watcher.start();

    const refused = [...inotify.refused].map((dir) => path.relative(h.target.path, dir)).sort();
    assert.equal(refused.length, 3);
    const before = h.watcher.health();
    assert.equal(before.directoriesWatched, 3, 'the root and two directories');
    assert.equal(before.unwatchedCount, 3);
    assert.deepEqual(
      before.targets[0]?.unwatched.map((d) => ({ ...d })).sort((a, b) => a.relDir.localeCompare(b.relDir)),
      refused.map((relDir) => ({ relDir, code: 'ENOSPC', sinceMs: h.clock.ms })),
    );
    const limitLogs = () => h.logs.filter((line) => /max_user_watches/.test(line.msg));
    assert.equal(limitLogs().length, 1, 'the remedy is logged once for the pass, not once per directory');
    assert.equal(limitLogs()[0]?.count, 3);
    assert.deepEqual(h.rescans, ['inotify-watch-limit']);

    // Still limited: the next pass says so again (once), keeps when each was first refused, asks no rescan.
    h.clock.advance(60_000);
    const stillLimited = h.watcher.heal();
    assert.equal(stillLimited.added.count, 0);
    assert.equal(stillLimited.unwatchedCount, 3);
    assert.equal(limitLogs().length, 2);
    assert.ok(h.watcher.health().targets[0]?.unwatched.every((d) => d.sinceMs === h.clock.ms - 60_000));
    assert.deepEqual(h.rescans, ['inotify-watch-limit'], 'the pass that heals is itself the rescan');

    for (const dir of refused) h.write(`${dir}/before-heal.csv`);
    await h.barrier();
    for (const dir of refused) assert.deepEqual(h.sink.of(`${dir}/before-heal.csv`), [], `${dir} is not watched yet`);

    inotify.limited = false; // the operator raised fs.inotify.max_user_watches
    const report = h.watcher.heal();
    assert.equal(report.added.count, 3);
    assert.deepEqual(report.added.sample.map((dir) => path.relative(h.target.path, dir)).sort(), refused);
    assert.equal(report.unwatchedCount, 0);
    const healedLog = h.logs.find((line) => /healed/.test(line.msg));
    assert.ok(healedLog, 'heal() logs what it re-added');
    assert.equal(healedLog.added, 3);
    const after = h.watcher.health();
    assert.equal(after.directoriesWatched, 1 + dirs.length);
    assert.equal(after.unwatchedCount, 0);
    assert.deepEqual(after.targets[0]?.unwatched, []);

    for (const dir of refused) h.write(`${dir}/after-heal.csv`);
    for (const dir of refused) await h.waitForNote(`the close of ${dir}/after-heal.csv`, closed(`${dir}/after-heal.csv`));

    const again = h.watcher.heal();
    assert.deepEqual([again.added.count, again.remapped.count, again.dropped.count], [0, 0, 0], 'heal() is idempotent');
  });

  void it('a target root deleted and re-created is watched again after heal(), and its new files are noted', async (t) => {
    const h = watchHarness(t);
    h.watcher.start();
    h.write('before.csv');
    await h.waitForNote('the close of before.csv', closed('before.csv'));

    h.clock.advance(1_000);
    fs.rmSync(h.target.path, { recursive: true });
    const lost = await h.waitForLog('the root loss', (line) => line.level >= 50 && line.reason === 'deleted');
    assert.equal(lost.target, h.target.path);
    await waitFor('the root watch to go', () => (h.watcher.health().targets[0]?.rootWatched === false ? true : undefined), {
      deadlineMs: WATCH_DEADLINE_MS,
    });
    assert.deepEqual(h.watcher.health().targets[0]?.rootLoss, { reason: 'deleted', sinceMs: h.clock.ms });

    // A pass while it is missing: still unwatched, now for the errno, since the same moment.
    const whileMissing = h.watcher.heal();
    assert.deepEqual(whileMissing.rootsRewatched, []);
    assert.deepEqual(h.watcher.health().targets[0]?.rootLoss, { reason: 'ENOENT', sinceMs: h.clock.ms });
    assert.equal(h.watcher.health().rootsUnwatched, 1);

    fs.mkdirSync(h.target.path);
    const report = h.watcher.heal();
    assert.deepEqual(report.rootsRewatched, [h.target.path]);
    const health = h.watcher.health();
    assert.equal(health.targets[0]?.rootWatched, true);
    assert.equal(health.targets[0]?.rootLoss, null);
    assert.ok(h.logs.some((line) => /watched again/.test(line.msg) && line.target === h.target.path));
    // Told as it happened, health() already saying so (status records it then, not at the next pass).
    assert.deepEqual(h.healthChanges, ['deleted', 'ENOENT', 'watched']);

    h.write('after.csv');
    await h.waitForNote('the close of after.csv', closed('after.csv'));
  });

  void it('a target root moved away drops every watch of the moved tree; heal() watches the path again', async (t) => {
    const h = watchHarness(t);
    fs.mkdirSync(path.join(h.target.path, 'sub'));
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 2);
    const moved = path.join(h.root, 'moved-away');
    fs.renameSync(h.target.path, moved);
    await h.waitForLog('the root loss', (line) => line.level >= 50 && line.reason === 'moved');
    assert.equal(h.watcher.watchCount, 0, 'no watch points outside the target any more');
    assert.deepEqual(h.healthChanges, ['moved'], 'told at once, health() already saying so');
    fs.writeFileSync(path.join(moved, 'sub', 'not-ours.csv'), 'x\n');

    fs.mkdirSync(path.join(h.target.path, 'sub'), { recursive: true });
    assert.deepEqual(h.watcher.heal().rootsRewatched, [h.target.path]);
    assert.equal(h.watcher.watchCount, 2);
    assert.deepEqual(h.healthChanges, ['moved', 'watched']);
    h.write('sub/ours.csv');
    await h.waitForNote('the close of sub/ours.csv', closed('sub/ours.csv'));
    assert.deepEqual(h.sink.of('sub/not-ours.csv'), []);
  });

  void it('after an overflow, directories whose events were lost are watched, remapped or dropped as they now are', async (t) => {
    const inotify = new FaultyInotify();
    const h = watchHarness(t, { createInotify: inotify.create });
    fs.mkdirSync(path.join(h.target.path, 'renamed-from'));
    fs.mkdirSync(path.join(h.target.path, 'leaving'));
    h.watcher.start();
    assert.equal(h.watcher.watchCount, 3);
    inotify.dropping = true;
    fs.mkdirSync(path.join(h.target.path, 'lost'));
    fs.renameSync(path.join(h.target.path, 'renamed-from'), path.join(h.target.path, 'renamed-to'));
    const outside = path.join(h.root, 'left');
    fs.renameSync(path.join(h.target.path, 'leaving'), outside);
    await sleep(100); // let the kernel deliver (and the port drop) those events
    inotify.dropping = false;
    h.clock.advance(5_000);
    inotify.overflow();

    assert.deepEqual(h.rescans, ['inotify-overflow']);
    const health = h.watcher.health();
    assert.equal(health.lastOverflowAtMs, h.clock.ms);
    assert.equal(health.directoriesWatched, 3, 'the root, lost/ and renamed-to/');
    const healed = h.logs.find((line) => /healed/.test(line.msg));
    assert.deepEqual([healed?.added, healed?.remapped, healed?.dropped], [1, 1, 1]);
    h.write('lost/x.csv');
    h.write('renamed-to/y.csv');
    fs.writeFileSync(path.join(outside, 'z.csv'), 'no longer ours\n');
    await h.waitForNote('the close of lost/x.csv', closed('lost/x.csv'));
    await h.waitForNote('the close of renamed-to/y.csv', closed('renamed-to/y.csv'));
    await h.barrier();
    assert.deepEqual(h.sink.of('renamed-from/y.csv'), [], 'the renamed directory is known under its new name');
    assert.deepEqual(h.sink.of('leaving/z.csv'), [], 'the directory moved out is no longer watched');
  });

  void it('a filesystem unmounted under a target, or as the target, is logged, shown in health and healed', async (t) => {
    const unusable = MountNamespace.unusable();
    if (unusable) {
      t.skip(`IN_UNMOUNT needs a tmpfs mounted and unmounted in a private mount namespace: ${unusable}`);
      return;
    }

    await t.test('a tmpfs mounted on a subdirectory', async (t) => {
      const ns = await MountNamespace.open(t);
      const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-unmount-')));
      fs.mkdirSync(path.join(root, 'target', 'mnt'), { recursive: true });
      await ns.run(`mount -t tmpfs tmpfs '${root}/target/mnt'`);
      // The mount exists only in the namespace: watch and write through its root, /proc/PID/root.
      const h = watchHarness(t, { root, targetPath: (dir) => ns.see(dir) });
      h.watcher.start();
      assert.equal(h.watcher.watchCount, 2);
      h.write('mnt/on-tmpfs.csv');
      await h.waitForNote('the close of mnt/on-tmpfs.csv', closed('mnt/on-tmpfs.csv'));

      await ns.run(`umount '${root}/target/mnt'`);
      const warning = await h.waitForLog('the unmount', (line) => line.dir === 'mnt' && /unmounted/.test(line.msg));
      assert.equal(warning.level, 40);
      await waitFor('the watch on mnt to go', () => (h.watcher.watchCount === 1 ? true : undefined), { deadlineMs: WATCH_DEADLINE_MS });
      assert.ok(h.rescans.includes('inotify-unmount'));
      assert.deepEqual(h.watcher.health().targets[0]?.unwatched, [{ relDir: 'mnt', code: 'unmounted', sinceMs: h.clock.ms }]);

      const report = h.watcher.heal();
      assert.equal(report.added.count, 1, 'the directory underneath is watched');
      assert.equal(h.watcher.health().unwatchedCount, 0);
      h.write('mnt/underneath.csv');
      await h.waitForNote('the close of mnt/underneath.csv', closed('mnt/underneath.csv'));
    });

    await t.test('a tmpfs mounted as the target root', async (t) => {
      const ns = await MountNamespace.open(t);
      const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-unmount-')));
      fs.mkdirSync(path.join(root, 'target'));
      await ns.run(`mount -t tmpfs tmpfs '${root}/target'`);
      const h = watchHarness(t, { root, targetPath: (dir) => ns.see(dir) });
      h.watcher.start();
      h.write('on-tmpfs.csv');
      await h.waitForNote('the close of on-tmpfs.csv', closed('on-tmpfs.csv'));

      await ns.run(`umount '${root}/target'`);
      const error = await h.waitForLog('the unmount', (line) => line.reason === 'unmounted');
      assert.equal(error.level, 50);
      assert.equal(error.target, h.target.path);
      await waitFor('the root watch to go', () => (h.watcher.health().targets[0]?.rootWatched === false ? true : undefined), {
        deadlineMs: WATCH_DEADLINE_MS,
      });
      assert.equal(h.watcher.health().targets[0]?.rootLoss?.reason, 'unmounted');
      assert.ok(h.rescans.includes('inotify-unmount'));

      assert.deepEqual(h.watcher.heal().rootsRewatched, [h.target.path]);
      h.write('underneath.csv');
      await h.waitForNote('the close of underneath.csv', closed('underneath.csv'));
    });
  });
});

/**
 * A shell in a private mount namespace (`unshare -m`) that runs one command per line. Its mounts are invisible
 * to this process and to the rest of the machine, and vanish with it; this process reaches them through
 * /proc/PID/root, where path lookup uses that namespace's mounts.
 */
class MountNamespace {
  private readonly lines: AsyncIterator<string>;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  }

  /** Why mounts in a private namespace cannot be made here, or undefined when they can. */
  static unusable(): string | undefined {
    if (process.platform !== 'linux') return 'not Linux';
    const probe = spawnSync(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', 'd=$(mktemp -d) && mount -t tmpfs tmpfs "$d" && umount "$d" && rmdir "$d"'],
      { encoding: 'utf8' },
    );
    if (probe.error) return `unshare: ${probe.error.message}`;
    if (probe.status !== 0) return `unshare -m / mount failed (needs root or CAP_SYS_ADMIN): ${probe.stderr.trim()}`;
    return undefined;
  }

  static async open(t: TestContext): Promise<MountNamespace> {
    const child = spawn('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      'while IFS= read -r line; do if sh -c "$line" >&2; then echo ok; else echo fail; fi; done',
    ]);
    t.after(() => child.kill());
    const ns = new MountNamespace(child);
    await ns.run('true');
    return ns;
  }

  /** The path as this namespace sees it. */
  see(absolute: string): string {
    return `/proc/${this.child.pid}/root${absolute}`;
  }

  async run(command: string): Promise<void> {
    this.child.stdin.write(`${command}\n`);
    const answer = await this.lines.next();
    assert.equal(answer.value, 'ok', `in the mount namespace: ${command}`);
  }
}
