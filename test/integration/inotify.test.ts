// Exercises the native inotify binding against real directories: no mocks, the kernel produces every event.
import assert from 'node:assert/strict';
import { executionAsyncId } from 'node:async_hooks';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { Inotify, InotifyError, InotifyMask, type InotifyEvent } from '../../src/watch/inotify.js';

const WRAPPER_URL = new URL('../../src/watch/inotify.js', import.meta.url).href;
const DEFAULT_DEADLINE_MS = 5_000;

/** Records batches as they arrive and lets a test wait, with a deadline, until a condition holds. */
class Collector {
  readonly batches: InotifyEvent[][] = [];
  #wake: (() => void) | undefined;

  readonly onEvents = (events: InotifyEvent[]): void => {
    this.batches.push(events);
    this.#wake?.();
  };

  get events(): InotifyEvent[] {
    return this.batches.flat();
  }

  async waitFor(what: string, done: (events: InotifyEvent[]) => boolean, deadlineMs = DEFAULT_DEADLINE_MS): Promise<InotifyEvent[]> {
    const deadline = Date.now() + deadlineMs;
    while (!done(this.events)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        assert.fail(`timed out waiting for ${what}; got ${this.events.length} events: ${describe(this.events.slice(0, 20))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    return this.events;
  }
}

async function withDeadline<T>(promise: Promise<T>, what: () => string, deadlineMs = DEFAULT_DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `timed out waiting for ${what()}` })), deadlineMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function describe(events: InotifyEvent[]): string {
  return JSON.stringify(events.map((e) => ({ wd: e.wd, mask: `0x${e.mask.toString(16)}`, cookie: e.cookie, name: e.name })));
}

function has(mask: number, bit: number): boolean {
  return (mask & bit) !== 0;
}

function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-inotify-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function watcher(t: TestContext): { ino: Inotify; seen: Collector } {
  const seen = new Collector();
  const ino = new Inotify(seen.onEvents);
  t.after(() => ino.close());
  return { ino, seen };
}

/** Runs an ESM snippet in a fresh Node that imports the wrapper as `m`; a hang fails the test via the timeout. */
function runChild(body: string, env: NodeJS.ProcessEnv = process.env): string {
  const script = `import * as m from ${JSON.stringify(WRAPPER_URL)};\n${body}`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 10_000,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
}

void test('IN_CREATE names the new file', async (t) => {
  const dir = tempDir(t);
  const { ino, seen } = watcher(t);
  const wd = ino.addWatch(dir, InotifyMask.CREATE);
  fs.writeFileSync(path.join(dir, 'upload.csv'), 'a,b\n');

  const events = await seen.waitFor('IN_CREATE upload.csv', (evs) => evs.some((e) => e.name === 'upload.csv'));
  const ev = events.find((e) => e.name === 'upload.csv');
  assert.ok(ev);
  assert.equal(ev.wd, wd);
  assert.ok(has(ev.mask, InotifyMask.CREATE));
  assert.ok(!has(ev.mask, InotifyMask.ISDIR));
  assert.equal(ev.nameIsUtf8, true);
  assert.deepEqual(ev.nameBytes, Buffer.from('upload.csv'));
});

void test('IN_CLOSE_WRITE fires with the name once the writer closes', async (t) => {
  const dir = tempDir(t);
  const { ino, seen } = watcher(t);
  const wd = ino.addWatch(dir, InotifyMask.CLOSE_WRITE);
  const fd = fs.openSync(path.join(dir, 'big.bin'), 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 1));
  fs.closeSync(fd);

  const events = await seen.waitFor('IN_CLOSE_WRITE', (evs) => evs.length > 0);
  assert.equal(events.length, 1, describe(events));
  const [ev] = events;
  assert.ok(ev);
  assert.equal(ev.wd, wd);
  assert.equal(ev.mask, InotifyMask.CLOSE_WRITE);
  assert.equal(ev.name, 'big.bin');
});

void test('rename between watched dirs pairs IN_MOVED_FROM and IN_MOVED_TO by cookie', async (t) => {
  const staging = tempDir(t);
  const inbox = tempDir(t);
  fs.writeFileSync(path.join(staging, 'part.tmp'), 'data');
  const { ino, seen } = watcher(t);
  const wdStaging = ino.addWatch(staging, InotifyMask.MOVE);
  const wdInbox = ino.addWatch(inbox, InotifyMask.MOVE);
  assert.notEqual(wdStaging, wdInbox);
  fs.renameSync(path.join(staging, 'part.tmp'), path.join(inbox, 'final.csv'));

  const events = await seen.waitFor('MOVED_FROM + MOVED_TO', (evs) => evs.length >= 2);
  const from = events.find((e) => has(e.mask, InotifyMask.MOVED_FROM));
  const to = events.find((e) => has(e.mask, InotifyMask.MOVED_TO));
  assert.ok(from && to, describe(events));
  assert.equal(from.wd, wdStaging);
  assert.equal(from.name, 'part.tmp');
  assert.equal(to.wd, wdInbox);
  assert.equal(to.name, 'final.csv');
  assert.notEqual(to.cookie, 0);
  assert.equal(from.cookie, to.cookie);
});

void test('mkdir reports IN_CREATE with IN_ISDIR', async (t) => {
  const dir = tempDir(t);
  const { ino, seen } = watcher(t);
  ino.addWatch(dir, InotifyMask.CREATE);
  fs.mkdirSync(path.join(dir, 'sub'));

  const [ev] = await seen.waitFor('IN_CREATE|IN_ISDIR', (evs) => evs.length > 0);
  assert.ok(ev);
  assert.equal(ev.mask, InotifyMask.CREATE | InotifyMask.ISDIR);
  assert.equal(ev.name, 'sub');
});

void test('a non-UTF-8 file name survives as raw bytes', async (t) => {
  const dir = tempDir(t);
  const { ino, seen } = watcher(t);
  ino.addWatch(dir, InotifyMask.CREATE);
  // Latin-1 "café.txt" as an old SFTP client would send it: 0xe9 alone is not UTF-8.
  const raw = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);
  fs.writeFileSync(Buffer.concat([Buffer.from(dir + path.sep), raw]), 'x');

  const [ev] = await seen.waitFor('IN_CREATE for the latin-1 name', (evs) => evs.length > 0);
  assert.ok(ev);
  assert.deepEqual(ev.nameBytes, raw);
  assert.equal(ev.nameIsUtf8, false);
  assert.equal(ev.name, 'caf\ufffd.txt');
  // The bytes, not the lossy string, are what reach the file.
  assert.equal(fs.readFileSync(Buffer.concat([Buffer.from(dir + path.sep), ev.nameBytes ?? Buffer.alloc(0)]), 'utf8'), 'x');
});

void test('deleting a watched directory yields IN_IGNORED and rmWatch then returns false', async (t) => {
  const parent = tempDir(t);
  const sub = path.join(parent, 'gone');
  fs.mkdirSync(sub);
  const { ino, seen } = watcher(t);
  const wd = ino.addWatch(sub, InotifyMask.CREATE | InotifyMask.DELETE_SELF);
  const liveWd = ino.addWatch(parent, InotifyMask.CREATE);
  fs.rmdirSync(sub);

  const events = await seen.waitFor('IN_IGNORED', (evs) => evs.some((e) => has(e.mask, InotifyMask.IGNORED)));
  const ignored = events.find((e) => has(e.mask, InotifyMask.IGNORED));
  assert.equal(ignored?.wd, wd);
  assert.ok(events.some((e) => e.wd === wd && has(e.mask, InotifyMask.DELETE_SELF)), describe(events));
  assert.equal(ino.rmWatch(wd), false);
  assert.equal(ino.rmWatch(liveWd), true);
  assert.equal(ino.rmWatch(liveWd), false);
});

void test('addWatch failures throw InotifyError with the errno name', (t) => {
  const dir = tempDir(t);
  const { ino } = watcher(t);
  const missing = path.join(dir, 'nope');
  assert.throws(
    () => ino.addWatch(missing, InotifyMask.CREATE),
    (err: unknown) => {
      assert.ok(err instanceof InotifyError);
      assert.equal(err.code, 'ENOENT');
      assert.equal(err.errno, os.constants.errno.ENOENT);
      assert.equal(err.path, missing);
      assert.equal(err.syscall, 'inotify_add_watch');
      assert.match(err.message, /^inotify_add_watch .*nope: ENOENT \(/);
      return true;
    },
  );
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, '');
  assert.throws(() => ino.addWatch(file, InotifyMask.CREATE | InotifyMask.ONLYDIR), { name: 'InotifyError', code: 'ENOTDIR' });
});

void test('queue overflow arrives as an ordinary event with wd -1 and the watcher keeps working', async (t) => {
  const dir = tempDir(t);
  const probe = path.join(dir, 'probe');
  fs.writeFileSync(probe, '');
  const { ino, seen } = watcher(t);
  const wd = ino.addWatch(dir, InotifyMask.OPEN | InotifyMask.CLOSE_NOWRITE | InotifyMask.CREATE);
  const queueLimit = Number(fs.readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  // Each open+close queues OPEN then CLOSE_NOWRITE; alternating masks defeat the kernel's merging of
  // identical consecutive events, and reopening one file is far cheaper than creating thousands.
  const rounds = Math.ceil(queueLimit / 2) + 2000;
  // The child runs while our event loop is blocked, so nothing drains the queue until it is past the limit.
  execFileSync(
    process.execPath,
    ['-e', `const fs=require('fs');for(let i=0;i<${rounds};i++)fs.closeSync(fs.openSync(${JSON.stringify(probe)},'r'));`],
    { timeout: 30_000 },
  );

  const events = await seen.waitFor('IN_Q_OVERFLOW', (evs) => evs.some((e) => has(e.mask, InotifyMask.Q_OVERFLOW)), 15_000);
  const overflow = events.find((e) => has(e.mask, InotifyMask.Q_OVERFLOW));
  assert.ok(overflow);
  assert.equal(overflow.wd, -1);
  assert.equal(overflow.name, null);
  assert.equal(overflow.cookie, 0);
  assert.ok(events.length <= queueLimit + 1, `expected drops, got ${events.length} events for ${rounds * 2}`);

  fs.writeFileSync(path.join(dir, 'after-overflow'), '');
  const after = await seen.waitFor('event after overflow', (evs) => evs.some((e) => e.name === 'after-overflow'));
  assert.equal(after.find((e) => e.name === 'after-overflow')?.wd, wd);
});

void test('events from one synchronous burst arrive as one batch', async (t) => {
  const dir = tempDir(t);
  const { ino, seen } = watcher(t);
  ino.addWatch(dir, InotifyMask.CLOSE_WRITE);
  const count = 200;
  for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');

  await seen.waitFor(`${count} IN_CLOSE_WRITE`, (evs) => evs.length >= count);
  assert.equal(seen.batches.length, 1, `batch sizes: ${seen.batches.map((b) => b.length).join(',')}`);
  assert.equal(seen.batches[0]?.length, count);
  assert.deepEqual(
    seen.batches[0]?.map((e) => e.name),
    Array.from({ length: count }, (_, i) => `f${i}`),
  );
});

void test('each callback runs in its own callback scope: its ticks and promise jobs drain before the next callback', async (t) => {
  const dir = tempDir(t);
  const order: string[] = [];
  let allSeen: () => void = () => {};
  const settled = new Promise<void>((resolve) => (allSeen = resolve));
  // Two instances see the same event, so both fds become readable in one loop iteration and their
  // callbacks run back to back; without a callback scope both would run before either's microtasks.
  const open = (id: string): Inotify => {
    const ino = new Inotify(() => {
      order.push(`cb-${id}`, executionAsyncId() === 0 ? `no-async-context-${id}` : `async-context-${id}`);
      process.nextTick(() => order.push(`tick-${id}`));
      void Promise.resolve().then(() => {
        order.push(`promise-${id}`);
        if (order.length === 8) allSeen();
      });
    });
    t.after(() => ino.close());
    ino.addWatch(dir, InotifyMask.CREATE);
    return ino;
  };
  open('a');
  open('b');
  fs.writeFileSync(path.join(dir, 'x'), '');

  await withDeadline(settled, () => `both callbacks and their jobs; got ${order.join(',')}`);
  const first = order[0] === 'cb-a' ? 'a' : 'b';
  const second = first === 'a' ? 'b' : 'a';
  const expected = [first, second].flatMap((id) => [`cb-${id}`, `async-context-${id}`, `tick-${id}`, `promise-${id}`]);
  assert.deepEqual(order, expected);
});

void test('close stops delivery at once, is idempotent, and later calls are safe', async (t) => {
  const dir = tempDir(t);
  const closedCalls: InotifyEvent[][] = [];
  const closed = new Inotify((evs) => closedCalls.push(evs));
  const { ino: control, seen } = watcher(t);
  const wd = closed.addWatch(dir, InotifyMask.CREATE);
  control.addWatch(dir, InotifyMask.CREATE);
  // Queued in both kernel queues before close: the closed one must never deliver it.
  fs.writeFileSync(path.join(dir, 'pending'), '');
  closed.close();

  await seen.waitFor('control sees the event', (evs) => evs.some((e) => e.name === 'pending'));
  await new Promise<void>((resolve) => setImmediate(resolve));
  assert.equal(closedCalls.length, 0);
  closed.close();
  assert.equal(closed.rmWatch(wd), false);
  assert.throws(() => closed.addWatch(dir, InotifyMask.CREATE), { name: 'InotifyError', code: 'ERR_INOTIFY_CLOSED' });
});

void test('a process exits cleanly after close with watches still open', (t) => {
  const a = tempDir(t);
  const b = tempDir(t);
  const out = runChild(`
    const ino = new m.Inotify(() => { throw new Error('no callback after close'); });
    ino.addWatch(${JSON.stringify(a)}, m.InotifyMask.ALL_EVENTS);
    ino.addWatch(${JSON.stringify(b)}, m.InotifyMask.ALL_EVENTS);
    (await import('node:fs')).writeFileSync(${JSON.stringify(path.join(a, 'queued'))}, '');
    ino.close();
    ino.close();
    console.log('closed');
  `);
  assert.equal(out.trim(), 'closed');
});

void test('an open watcher keeps the process alive; unref() releases it', (t) => {
  const dir = tempDir(t);
  // Only the ref'd poll handle keeps this child alive until the unref'd timer creates a file.
  const kept = runChild(`
    const ino = new m.Inotify((evs) => { console.log('event ' + evs[0].name); ino.close(); });
    ino.addWatch(${JSON.stringify(dir)}, m.InotifyMask.CREATE);
    const fs = await import('node:fs');
    setTimeout(() => fs.writeFileSync(${JSON.stringify(path.join(dir, 'late'))}, ''), 200).unref();
  `);
  assert.equal(kept.trim(), 'event late');

  const released = runChild(`
    const ino = new m.Inotify(() => {});
    ino.addWatch(${JSON.stringify(dir)}, m.InotifyMask.ALL_EVENTS);
    ino.unref();
    console.log('unrefed');
  `);
  assert.equal(released.trim(), 'unrefed');
});

void test('a worker thread torn down with a watcher still open exits cleanly', async (t) => {
  const dir = tempDir(t);
  // Teardown must close the uv handle itself: a handle left open aborts in the worker's uv_loop_close.
  const source = `
    import * as m from ${JSON.stringify(WRAPPER_URL)};
    import { parentPort } from 'node:worker_threads';
    const ino = new m.Inotify((evs) => parentPort.postMessage(evs[0].name));
    ino.addWatch(${JSON.stringify(dir)}, m.InotifyMask.CREATE);
    parentPort.postMessage('ready');
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
  const messages: unknown[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    worker.on('message', (msg: unknown) => {
      messages.push(msg);
      if (msg === 'ready') fs.writeFileSync(path.join(dir, 'from-main'), '');
      if (msg === 'from-main') resolve();
    });
    worker.on('error', reject);
  });
  await withDeadline(ready, () => `worker event; got ${messages.join(',')}`);
  assert.equal(await worker.terminate(), 1);
});

void test('SFTPPUSH_NATIVE_DIR selects the directory the binding is loaded from', (t) => {
  const defaultPath = fileURLToPath(new URL('../../../build/Release/sftppush_inotify.node', import.meta.url));
  const builtPath = process.env.SFTPPUSH_NATIVE_DIR ? path.resolve(process.env.SFTPPUSH_NATIVE_DIR, 'sftppush_inotify.node') : defaultPath;
  const envWithout = { ...process.env };
  delete envWithout.SFTPPUSH_NATIVE_DIR;
  assert.equal(runChild('console.log(m.nativeBindingPath());', envWithout).trim(), defaultPath);

  const altDir = tempDir(t);
  fs.copyFileSync(builtPath, path.join(altDir, 'sftppush_inotify.node'));
  const out = runChild(
    `const ino = new m.Inotify(() => {}); ino.close(); console.log(m.nativeBindingPath());`,
    { ...envWithout, SFTPPUSH_NATIVE_DIR: altDir },
  );
  assert.equal(out.trim(), path.join(altDir, 'sftppush_inotify.node'));
});
