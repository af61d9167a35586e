// The instance lock against the real kernel: other processes hold it, SIGKILL releases it, and paths that cannot
// hold a lock file are configuration errors.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Worker } from 'node:worker_threads';

import { ConfigError } from '../../src/errors.js';
import { InstanceLock, InstanceLockedError } from '../../src/ledger/instance-lock.js';
import { FlockOp, flock } from '../../src/native/flock.js';
import { tempDir } from '../support/fixtures.js';

const MODULE_URL = new URL('../../src/ledger/instance-lock.js', import.meta.url).href;
const FLOCK_URL = new URL('../../src/native/flock.js', import.meta.url).href;
const DEADLINE_MS = 10_000;

/** ESM source for a child: imports the lock module as `m`, then runs `body`. */
function childScript(body: string): string {
  return `import * as m from ${JSON.stringify(MODULE_URL)};\n${body}`;
}

/** Source that takes the lock on `ledger`, says `locked <pid>` and holds it until killed. */
function holdScript(ledger: string): string {
  return childScript(`
    m.InstanceLock.acquire(${JSON.stringify(ledger)}, { pid: process.pid });
    process.stdout.write('locked ' + process.pid + '\\n');
    setInterval(() => {}, 60_000);
  `);
}

/** Source that tries the lock on `ledger` and prints the outcome as one JSON line. */
function tryScript(ledger: string): string {
  return childScript(`
    try {
      m.InstanceLock.acquire(${JSON.stringify(ledger)}, { pid: process.pid }).release();
      console.log(JSON.stringify({ acquired: true, pid: process.pid }));
    } catch (err) {
      console.log(JSON.stringify({ pid: process.pid, name: err.name, code: err.code, message: err.message }));
    }
  `);
}

/** Starts `command` (whose output ends in `node -e script`) and resolves with its pid once it printed `locked`. */
async function startHolder(t: TestContext, command: string[]): Promise<{ child: ChildProcess; pid: number }> {
  const [file, ...args] = command;
  assert.ok(file);
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const pid = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`holder did not lock in time; stderr: ${err}`)), DEADLINE_MS);
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /^locked (\d+)$/m.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`holder exited (${code ?? signal}) before locking; stderr: ${err}`));
    });
  });
  return { child, pid };
}

function nodeEval(script: string): string[] {
  return [process.execPath, '--input-type=module', '-e', script];
}

/** Runs `command` to completion and parses the one JSON line tryScript prints. */
function runTry(command: string[], options: SpawnSyncOptions = {}): TryResult {
  const [file, ...args] = command;
  assert.ok(file);
  const run = spawnSync(file, args, { encoding: 'utf8', timeout: DEADLINE_MS, ...options });
  const stdout = String(run.stdout);
  const stderr = run.error?.message ?? String(run.stderr).trim();
  return { status: run.status, stderr, outcome: (run.status === 0 ? JSON.parse(stdout) : {}) as Outcome };
}

interface TryResult {
  status: number | null;
  stderr: string;
  outcome: Outcome;
}

interface Outcome {
  pid?: number;
  acquired?: boolean;
  name?: string;
  code?: string;
  message?: string;
}

async function killAndWait(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

function assertLockedBy(error: unknown, ledger: string, pid: number | undefined, lockPath = `${ledger}.lock`): true {
  assert.ok(error instanceof InstanceLockedError, `expected InstanceLockedError, got ${String(error)}`);
  assert.equal(error.code, 'E_INSTANCE_LOCKED');
  assert.equal(error.ledgerPath, ledger);
  assert.equal(error.lockPath, lockPath);
  assert.equal(error.holderPid, pid);
  assert.equal(
    error.message,
    `ledger ${ledger} is in use by another sftppush watch (pid ${pid ?? 'unknown'}, lock ${lockPath}): ` +
      'stop it first, or give this one its own ledger.path',
  );
  return true;
}

/** The fd of this process that has `file` open, found through /proc (InstanceLock keeps its fd to itself). */
function openFdOf(file: string): number | undefined {
  for (const name of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${name}`) === file) return Number(name);
    } catch {
      // The fd readdir itself used is gone by now.
    }
  }
  return undefined;
}

void test('acquire creates the directory and the lock file, writes the pid, and keeps the file on release', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'var', 'nested', 'ledger.db');
  const lock = InstanceLock.acquire(ledger, { pid: 4242 });
  t.after(() => lock.release());

  assert.equal(lock.path, `${ledger}.lock`);
  assert.equal(fs.readFileSync(lock.path, 'utf8'), '4242\n');

  // O_CLOEXEC (libuv adds it to every open): a child the service execs never inherits the lock.
  const fd = openFdOf(lock.path);
  assert.ok(fd !== undefined, 'the lock file stays open while the lock is held');
  const flags = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
  assert.ok(flags !== undefined);
  assert.ok((parseInt(flags, 8) & 0o2000000) !== 0, `O_CLOEXEC in fdinfo flags ${flags}`);

  lock.release();
  lock.release();
  assert.equal(openFdOf(lock.path), undefined, 'release closes the fd');
  assert.ok(fs.existsSync(lock.path), 'the lock file is never deleted');
});

void test('a second acquire in the same process is refused, naming the pid and the ledger', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  const first = InstanceLock.acquire(ledger, { pid: process.pid });
  t.after(() => first.release());

  assert.throws(() => InstanceLock.acquire(ledger, { pid: 99999 }), (err) => assertLockedBy(err, ledger, process.pid));
  // The refused attempt neither took the lock nor overwrote the holder's pid.
  assert.equal(fs.readFileSync(`${ledger}.lock`, 'utf8'), `${process.pid}\n`);
  assert.equal(openFdOf(`${ledger}.lock`) !== undefined, true);
});

void test('the same ledger reached through a symlink (to the file, or to a directory above it) meets the same lock', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  fs.mkdirSync(path.join(dir, 'var'));
  const ledger = path.join(dir, 'var', 'ledger.db');
  fs.writeFileSync(ledger, ''); // the ledger exists (not a first start)
  const first = InstanceLock.acquire(ledger, { pid: process.pid });
  t.after(() => first.release());
  fs.symlinkSync(ledger, path.join(dir, 'alias.db'));
  fs.symlinkSync(path.join(dir, 'var'), path.join(dir, 'var-link'));
  for (const alias of [path.join(dir, 'alias.db'), path.join(dir, 'var-link', 'ledger.db'), path.join(dir, 'var', '..', 'var', 'ledger.db')]) {
    assert.throws(() => InstanceLock.acquire(alias, { pid: 99999 }), (err) => assertLockedBy(err, alias, process.pid, `${ledger}.lock`), alias);
    assert.equal(InstanceLock.isHeld(alias), true, `${alias}: a reconcile sees the watch through it too`);
  }
});

void test('release, then acquire again, works; and another ledger beside it is independent', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  const other = InstanceLock.acquire(path.join(dir, 'other.db'), { pid: 1 });
  t.after(() => other.release());

  InstanceLock.acquire(ledger, { pid: 1 }).release();
  const again = InstanceLock.acquire(ledger, { pid: 2 });
  t.after(() => again.release());
  assert.equal(fs.readFileSync(again.path, 'utf8'), '2\n');
});

void test('a holder that has not written its pid yet is reported as pid unknown', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  // What a newcomer sees in the instant between the holder's flock and its write: a locked, empty file.
  const fd = fs.openSync(`${ledger}.lock`, 'w');
  t.after(() => fs.closeSync(fd));
  flock(fd, FlockOp.EX | FlockOp.NB);

  assert.throws(() => InstanceLock.acquire(ledger, { pid: 7 }), (err) => assertLockedBy(err, ledger, undefined));
});

void test('another process holds the lock: refused with its pid; once it is SIGKILLed, the lock is free', async (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  const { child, pid } = await startHolder(t, nodeEval(holdScript(ledger)));
  assert.notEqual(pid, process.pid);

  assert.throws(() => InstanceLock.acquire(ledger, { pid: process.pid }), (err) => assertLockedBy(err, ledger, pid));
  const { status, stderr, outcome } = runTry(nodeEval(tryScript(ledger)));
  assert.equal(status, 0, stderr);
  assert.equal(outcome.code, 'E_INSTANCE_LOCKED');
  assert.match(outcome.message ?? '', new RegExp(`\\(pid ${pid}, `));

  // No release, no cleanup: the process just dies and the kernel drops its lock with its files.
  await killAndWait(child);
  assert.equal(fs.readFileSync(`${ledger}.lock`, 'utf8'), `${pid}\n`, 'a dead holder leaves its pid behind');
  const lock = InstanceLock.acquire(ledger, { pid: process.pid });
  t.after(() => lock.release());
  assert.equal(fs.readFileSync(lock.path, 'utf8'), `${process.pid}\n`);
});

void test('two processes both pid 1 (separate pid namespaces): the kernel lock, not the pid, decides', async (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  // A user namespace as well, so this runs without root where unprivileged user namespaces are allowed;
  // --kill-child, so killing unshare (as t.after does) kills the holder too.
  const unshare = ['unshare', '--user', '--map-root-user', '--pid', '--fork', '--kill-child'];
  const probe = runTry([...unshare, ...nodeEval(tryScript(path.join(dir, 'probe.db')))]);
  if (probe.status !== 0 || probe.outcome.pid !== 1) {
    t.skip(`cannot start a process in a new pid namespace here (unshare: ${probe.stderr})`);
    return;
  }

  const { pid } = await startHolder(t, [...unshare, ...nodeEval(holdScript(ledger))]);
  assert.equal(pid, 1);
  const { status, stderr, outcome } = runTry([...unshare, ...nodeEval(tryScript(ledger))]);
  assert.equal(status, 0, stderr);
  assert.equal(outcome.pid, 1, 'the newcomer is pid 1 too');
  assert.equal(outcome.code, 'E_INSTANCE_LOCKED');
  assert.match(outcome.message ?? '', /\(pid 1, lock /);
});

void test('isHeld: false without a lock file (and creates none), true while held here or elsewhere', async (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'var', 'ledger.db');
  assert.equal(InstanceLock.isHeld(ledger), false);
  assert.equal(fs.existsSync(path.dirname(ledger)), false, 'isHeld creates nothing');
  assert.equal(InstanceLock.isHeld(path.join(dir, 'ledger.db', 'below-a-missing-file.db')), false);

  const lock = InstanceLock.acquire(ledger, { pid: 31 });
  assert.equal(InstanceLock.isHeld(ledger), true, 'held by this process');
  lock.release();
  assert.equal(InstanceLock.isHeld(ledger), false, 'released; the file stays');

  const { child, pid } = await startHolder(t, nodeEval(holdScript(ledger)));
  assert.equal(InstanceLock.isHeld(ledger), true, 'held by another process');
  assert.equal(fs.readFileSync(`${ledger}.lock`, 'utf8'), `${pid}\n`, 'the probe leaves the file alone');
  await killAndWait(child);
  assert.equal(InstanceLock.isHeld(ledger), false, 'its holder was killed');
});

void test('a watch starting while isHeld() probes waits the probe out instead of being refused', async (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const ledger = path.join(dir, 'ledger.db');
  fs.writeFileSync(`${ledger}.lock`, '');
  // A probe on another thread (so it can let go while acquire() blocks this one): a shared lock held for 10 ms.
  const source = `
    import { flock, FlockOp } from ${JSON.stringify(FLOCK_URL)};
    import fs from 'node:fs';
    import { parentPort } from 'node:worker_threads';
    const fd = fs.openSync(${JSON.stringify(`${ledger}.lock`)}, 'r');
    flock(fd, FlockOp.SH | FlockOp.NB);
    parentPort.postMessage('probing');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    fs.closeSync(fd);
  `;
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
  t.after(() => worker.terminate());
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });

  const lock = InstanceLock.acquire(ledger, { pid: 5 });
  t.after(() => lock.release());
  assert.equal(fs.readFileSync(lock.path, 'utf8'), '5\n');
});

void test('a ledger.path under a regular file is a ConfigError naming the lock file, the errno and the key', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  const file = path.join(dir, 'not-a-dir');
  fs.writeFileSync(file, '');

  // The ledger's directory is the file itself (mkdir finds it exists; open fails), or lies below it (mkdir fails).
  for (const ledger of [path.join(file, 'ledger.db'), path.join(file, 'var', 'ledger.db')]) {
    assert.throws(
      () => InstanceLock.acquire(ledger, { pid: 1 }),
      (err) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.ok(err.message.includes(`${ledger}.lock`), err.message);
        assert.match(err.message, /\(ENOTDIR\)/);
        assert.match(err.message, /ledger\.path/);
        return true;
      },
    );
  }
});

void test('a directory that cannot be made (under /proc, or a dangling symlink) is a ConfigError, not a hang', (t) => {
  const dir = tempDir(t, 'sftppush-lock');
  fs.symlinkSync(path.join(dir, 'unmounted'), path.join(dir, 'dangling'));

  // fs.mkdirSync(..., { recursive: true }) spins forever on both.
  for (const ledger of ['/proc/sftppush-no-such-dir/var/ledger.db', path.join(dir, 'dangling', 'var', 'ledger.db')]) {
    assert.throws(
      () => InstanceLock.acquire(ledger, { pid: 1 }),
      (err) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.ok(err.message.includes(`the directory of the instance lock file ${ledger}.lock (ENOENT)`), err.message);
        return true;
      },
    );
  }
});

void test('a read-only directory is a ConfigError naming the lock file (chmod 0555)', (t) => {
  if (process.getuid?.() === 0) {
    t.skip('running as root, which ignores directory permissions; the next test covers this as an unprivileged user');
    return;
  }
  const dir = tempDir(t, 'sftppush-lock');
  const readOnly = path.join(dir, 'ro');
  // Stays empty, so the temp dir's cleanup can remove it as it is.
  fs.mkdirSync(readOnly, { mode: 0o555 });

  for (const ledger of [path.join(readOnly, 'ledger.db'), path.join(readOnly, 'var', 'ledger.db')]) {
    assert.throws(
      () => InstanceLock.acquire(ledger, { pid: 1 }),
      (err) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.ok(err.message.includes(`${ledger}.lock (EACCES)`), err.message);
        assert.match(err.message, /ledger\.path/);
        return true;
      },
    );
  }
});

void test('a read-only directory, as an unprivileged user started by root, is a ConfigError (chmod 0555)', (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('only root can start a process as another user; the previous test covers this user');
    return;
  }
  const dir = tempDir(t, 'sftppush-lock');
  fs.chmodSync(dir, 0o755);
  const readOnly = path.join(dir, 'ro');
  fs.mkdirSync(readOnly, { mode: 0o555 });
  const ledger = path.join(readOnly, 'ledger.db');
  const nobody = 65534;
  const { status, stderr, outcome } = runTry(nodeEval(tryScript(ledger)), { uid: nobody, gid: nobody });
  if (status !== 0) {
    t.skip(`cannot run node as uid ${nobody} here: ${stderr}`);
    return;
  }
  assert.equal(outcome.name, 'ConfigError');
  assert.equal(outcome.code, 'E_CONFIG');
  assert.ok(outcome.message?.includes(`${ledger}.lock (EACCES)`), outcome.message);
  assert.match(outcome.message ?? '', /ledger\.path/);
});
