// writerProbe (F_SETLEASE read lease, native/lease.cc) against real files and real processes: the kernel decides.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';

import { writerProbe } from '../../src/native/lease.js';

const LEASE_URL = new URL('../../src/native/lease.js', import.meta.url).href;
const NOBODY = 65534;

/**
 * A fresh directory under the system temp dir, removed when the test ends. Not fixtures.tempDir: this test of the
 * addon stays independent of the ledger and pipeline modules that fixtures.ts imports.
 */
function tempDir(t: TestContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-lease-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A file with some content that nobody has open. */
function newFile(t: TestContext, name = 'upload.bin'): string {
  const file = path.join(tempDir(t), name);
  fs.writeFileSync(file, 'partial upload\n');
  return file;
}

/** Opens `file` with `flags`; closed when the test ends unless the test closed it. */
function open(t: TestContext, file: string, flags: string | number = 'r'): number {
  const fd = fs.openSync(file, flags);
  t.after(() => {
    try {
      fs.closeSync(fd);
    } catch {
      // Already closed by the test.
    }
  });
  return fd;
}

/**
 * Runs a node ESM script in a child; resolves once it prints `ready`. Killed when the test ends, but t.after hooks
 * run in the order they were registered (after the temp dir's removal, say): tests stop() their children themselves.
 */
async function startChild(t: TestContext, script: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child not ready after 10 s; output: ${out}`)), 10_000);
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code ?? signal}) before ready; output: ${out}`));
    });
  });
  return child;
}

/** Kills `child` and waits until it is gone (its open files closed by the kernel). */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

/** Lease lines of /proc/locks for `file`'s inode (format: "N: LEASE  ACTIVE  READ pid maj:min:inode 0 EOF"). */
function leasesOn(file: string): string[] {
  const { ino } = fs.statSync(file);
  return fs
    .readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((line) => /\bLEASE\b/.test(line) && line.split(/\s+/).some((field) => field.endsWith(`:${ino}`)));
}

function isLeaseError(code: string): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof Error, String(err));
    const { code: gotCode, errno, syscall } = err as Error & Record<'code' | 'errno' | 'syscall', unknown>;
    assert.deepEqual({ code: gotCode, errno, syscall }, { code, errno: os.constants.errno[code as 'EBADF'], syscall: 'fcntl' });
    assert.match(err.message, new RegExp(`fd \\d+: ${code} \\(`));
    return true;
  };
}

void test('a file nobody has open for writing: no-writer; our own other read-only fds do not count', (t) => {
  const file = newFile(t);
  const fd = open(t, file);
  assert.equal(writerProbe(fd), 'no-writer');
  open(t, file);
  open(t, file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  assert.equal(writerProbe(fd), 'no-writer');
  // Every probe releases its lease, so it can be repeated at will.
  for (let i = 0; i < 100; i++) assert.equal(writerProbe(fd), 'no-writer');
});

void test('a file this process holds open for writing (r+, a, w, under another name): writer until closed', (t) => {
  const file = newFile(t);
  const fd = open(t, file);
  for (const flags of ['r+', 'a', 'w', fs.constants.O_WRONLY]) {
    const writer = open(t, file, flags);
    assert.equal(writerProbe(fd), 'writer', `opened with ${flags}`);
    fs.closeSync(writer);
    assert.equal(writerProbe(fd), 'no-writer', `after closing the ${flags} fd`);
  }
  // The question is about the inode: a writer through a hard link is a writer of this file.
  const link = `${file}.link`;
  fs.linkSync(file, link);
  const writer = open(t, link, 'a');
  assert.equal(writerProbe(fd), 'writer');
  fs.closeSync(writer);
  assert.equal(writerProbe(fd), 'no-writer');
});

void test('another process holding the file open for append: writer while it runs, no-writer once it exits', async (t) => {
  const file = newFile(t);
  const fd = open(t, file);
  const child = await startChild(
    t,
    `import fs from 'node:fs';
     const fd = fs.openSync(${JSON.stringify(file)}, 'a');
     fs.writeSync(fd, 'more\\n');
     console.log('ready');
     setInterval(() => {}, 60_000);`,
  );
  assert.equal(writerProbe(fd), 'writer');
  assert.equal(writerProbe(fd), 'writer', 'a refused probe leaves nothing behind either');

  await stop(child);
  // The kernel closes a process's files before its parent hears of the exit.
  assert.equal(writerProbe(fd), 'no-writer');
});

void test('the lease is released at once: no lease left in /proc/locks, a writer opens without waiting', (t) => {
  const file = newFile(t);
  const fd = open(t, file);
  assert.equal(writerProbe(fd), 'no-writer');
  assert.deepEqual(leasesOn(file), []);

  // A lease left behind would make this open wait fs.lease-break-time (45 s by default) and SIGIO us.
  let started = performance.now();
  fs.closeSync(fs.openSync(file, 'a'));
  assert.ok(performance.now() - started < 1_000, `open for append took ${performance.now() - started} ms`);

  // Same from another process, whose open would be the one to wait.
  assert.equal(writerProbe(fd), 'no-writer');
  started = performance.now();
  const opener = `const fs = require('node:fs'); fs.closeSync(fs.openSync(${JSON.stringify(file)}, 'a'));`;
  execFileSync(process.execPath, ['-e', opener], { timeout: 10_000 });
  assert.ok(performance.now() - started < 5_000, `child's open for append took ${performance.now() - started} ms`);
  assert.deepEqual(leasesOn(file), []);
});

void test('a writer opening during a probe neither kills the prober (SIGIO) nor leaves SIGIO ignored', async (t) => {
  // The lease exists for microseconds; a writer opening and closing the file in a tight loop hits that window often
  // (without the addon's SIGIO guard this kills the prober within a second). The prober runs in a child so that
  // failure is reported as such rather than taking the test runner down.
  const file = newFile(t);
  // No O_CREAT: the loop must not recreate the file while the test's cleanup removes the directory.
  const writer = await startChild(
    t,
    `import fs from 'node:fs';
     console.log('ready');
     for (;;) fs.closeSync(fs.openSync(${JSON.stringify(file)}, fs.constants.O_WRONLY | fs.constants.O_APPEND));`,
  );
  const prober = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { writerProbe } from ${JSON.stringify(LEASE_URL)};
       import fs from 'node:fs';
       const fd = fs.openSync(${JSON.stringify(file)}, 'r');
       const counts = { writer: 0, 'no-writer': 0, unknown: 0 };
       const end = Date.now() + 1500;
       while (Date.now() < end) counts[writerProbe(fd)]++;
       console.log(JSON.stringify(counts));
       // The default disposition is back: this must end the process.
       process.kill(process.pid, 'SIGIO');
       setTimeout(() => console.log('SIGIO did not terminate'), 1000);`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  t.after(() => prober.kill('SIGKILL'));
  let out = '';
  prober.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  // 'close', not 'exit': the output is complete only once the child's stdout has closed.
  const [code, signal] = (await once(prober, 'close')) as [number | null, NodeJS.Signals | null];
  await stop(writer);

  const lines = out.trim().split('\n');
  assert.equal(lines.length, 1, `prober died early or survived SIGIO (exit ${code ?? signal}): ${out}`);
  const counts = JSON.parse(lines[0] ?? '{}') as Record<string, number>;
  assert.ok((counts.writer ?? 0) > 0 && (counts['no-writer'] ?? 0) > 0, `both answers seen: ${out}`);
  assert.equal(counts.unknown, 0);
  assert.deepEqual({ code, signal }, { code: null, signal: 'SIGIO' });
});

/** How to run a command as uid/gid 65534 without CAP_LEASE, or why not. */
function asNobody(): { argv: string[] } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'needs root to switch to uid 65534' };
  const has = (tool: string): boolean => {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  // Changing every uid from 0 clears the permitted and effective capabilities, CAP_LEASE included.
  if (has('setpriv')) return { argv: ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--'] };
  if (has('runuser')) return { argv: ['runuser', '-u', 'nobody', '--'] };
  return { skip: 'neither setpriv nor runuser is installed' };
}

void test('neither the owner nor CAP_LEASE (uid 65534 probing a root-owned file): unknown', (t) => {
  const how = asNobody();
  if ('skip' in how) {
    t.skip(how.skip);
    return;
  }
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const rootOwned = path.join(dir, 'root-owned');
  const nobodyOwned = path.join(dir, 'nobody-owned');
  for (const file of [rootOwned, nobodyOwned]) fs.writeFileSync(file, 'x', { mode: 0o644 });
  fs.chownSync(nobodyOwned, NOBODY, NOBODY);

  const script = `
    import { writerProbe } from ${JSON.stringify(LEASE_URL)};
    import fs from 'node:fs';
    const capEff = /^CapEff:\\s*(\\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1];
    const probe = (file) => writerProbe(fs.openSync(file, 'r'));
    console.log(JSON.stringify({
      uid: process.getuid(), capEff, root: probe(${JSON.stringify(rootOwned)}), own: probe(${JSON.stringify(nobodyOwned)}),
    }));`;
  const [command, ...args] = [...how.argv, process.execPath, '--input-type=module', '-e', script];
  const out = execFileSync(command ?? '', args, { encoding: 'utf8', timeout: 10_000 });
  const got = JSON.parse(out) as Record<string, unknown>;
  assert.equal(got.uid, NOBODY);
  assert.equal(BigInt(`0x${String(got.capEff)}`), 0n, 'the child must have no capabilities');
  // Its own file answers normally, so 'unknown' for root's is the permission check, not a broken child.
  assert.deepEqual({ root: got.root, own: got.own }, { root: 'unknown', own: 'no-writer' });
  // Root (CAP_LEASE) gets an answer for the file uid 65534 owns.
  assert.equal(writerProbe(open(t, nobodyOwned)), 'no-writer');
});

void test('a file that cannot carry a lease (here a directory: EINVAL, as on NFS or FUSE): unknown', (t) => {
  const dir = tempDir(t);
  assert.equal(writerProbe(open(t, dir)), 'unknown');
});

void test('a writable fd, a closed fd or a non-integer is refused before any lease is taken', (t) => {
  const file = newFile(t);
  // A writable descriptor is a writer itself: the answer would always be 'writer'.
  for (const flags of ['r+', 'a', fs.constants.O_WRONLY]) {
    assert.throws(() => writerProbe(open(t, file, flags)), isLeaseError('EBADF'), String(flags));
  }
  const closed = fs.openSync(file, 'r');
  fs.closeSync(closed);
  assert.throws(() => writerProbe(closed), isLeaseError('EBADF'));
  for (const bad of [Number.NaN, 1.5, -1, 2 ** 31]) {
    assert.throws(() => writerProbe(bad), { name: 'RangeError' }, String(bad));
  }
  assert.throws(() => writerProbe('3' as unknown as number), { name: 'TypeError' });
  assert.deepEqual(leasesOn(file), []);
});
