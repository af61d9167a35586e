// flock(2) from our native addon, against real files: the semantics InstanceLock relies on, straight from the kernel.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';

import { FlockOp, flock, isWouldBlock } from '../../src/native/flock.js';
import { tempDir } from '../support/fixtures.js';

const FLOCK_URL = new URL('../../src/native/flock.js', import.meta.url).href;

/** Opens `file` read-write (created if missing); closed when the test ends unless the test closed it. */
function open(t: TestContext, file: string): number {
  const fd = fs.openSync(file, 'a+');
  t.after(() => {
    try {
      fs.closeSync(fd);
    } catch {
      // Already closed by the test.
    }
  });
  return fd;
}

function isFlockError(code: string, errno: number): (err: unknown) => true {
  return (err) => {
    assert.ok(err instanceof Error, String(err));
    const { code: gotCode, errno: gotErrno, syscall } = err as Error & Record<'code' | 'errno' | 'syscall', unknown>;
    assert.deepEqual({ code: gotCode, errno: gotErrno, syscall }, { code, errno, syscall: 'flock' });
    assert.match(err.message, new RegExp(`^flock fd \\d+: ${code} \\(`));
    return true;
  };
}

void test('two opens of one file conflict, even in one process; EWOULDBLOCK is named so, not EAGAIN', (t) => {
  const file = path.join(tempDir(t, 'sftppush-flock'), 'f.lock');
  const a = open(t, file);
  const b = open(t, file);
  flock(a, FlockOp.EX | FlockOp.NB);

  assert.throws(() => flock(b, FlockOp.EX | FlockOp.NB), isFlockError('EWOULDBLOCK', os.constants.errno.EWOULDBLOCK));
  assert.throws(() => flock(b, FlockOp.SH | FlockOp.NB), isWouldBlock);
  // Locking again through the same open file is a no-op, not a conflict.
  flock(a, FlockOp.EX | FlockOp.NB);

  flock(a, FlockOp.UN);
  flock(b, FlockOp.EX | FlockOp.NB);
});

void test('shared locks coexist and keep an exclusive one out', (t) => {
  const file = path.join(tempDir(t, 'sftppush-flock'), 'f.lock');
  const [a, b, c] = [open(t, file), open(t, file), open(t, file)];
  flock(a, FlockOp.SH | FlockOp.NB);
  flock(b, FlockOp.SH | FlockOp.NB);
  assert.throws(() => flock(c, FlockOp.EX | FlockOp.NB), isWouldBlock);
});

void test('closing another fd of the file keeps the lock (unlike fcntl locks); closing the holder drops it', (t) => {
  const file = path.join(tempDir(t, 'sftppush-flock'), 'f.lock');
  const holder = open(t, file);
  flock(holder, FlockOp.EX | FlockOp.NB);
  // What any other code in the process might do with the same file: open it and close it again.
  fs.closeSync(fs.openSync(file, 'r'));
  const newcomer = open(t, file);
  assert.throws(() => flock(newcomer, FlockOp.EX | FlockOp.NB), isWouldBlock);

  fs.closeSync(holder);
  flock(newcomer, FlockOp.EX | FlockOp.NB);
});

void test('the lock is the kernel\'s: another process is refused while this one holds it', (t) => {
  const file = path.join(tempDir(t, 'sftppush-flock'), 'f.lock');
  const fd = open(t, file);
  flock(fd, FlockOp.EX | FlockOp.NB);
  const script = `
    import { flock, FlockOp } from ${JSON.stringify(FLOCK_URL)};
    import fs from 'node:fs';
    try { flock(fs.openSync(${JSON.stringify(file)}, 'r'), FlockOp.EX | FlockOp.NB); console.log('locked'); }
    catch (err) { console.log(err.code); }
  `;
  const run = (): string =>
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 10_000 }).trim();
  assert.equal(run(), 'EWOULDBLOCK');
  flock(fd, FlockOp.UN);
  assert.equal(run(), 'locked');
});

void test('errors carry code, errno and syscall; bad arguments are refused before the syscall', (t) => {
  const file = path.join(tempDir(t, 'sftppush-flock'), 'f.lock');
  const fd = open(t, file);
  const closed = fs.openSync(file, 'r');
  fs.closeSync(closed);

  assert.throws(() => flock(closed, FlockOp.EX | FlockOp.NB), isFlockError('EBADF', os.constants.errno.EBADF));
  // LOCK_NB alone names no lock.
  assert.throws(() => flock(fd, FlockOp.NB), isFlockError('EINVAL', os.constants.errno.EINVAL));
  // NaN or 1.5 would otherwise truncate to some other fd (NaN to 0, stdin).
  for (const bad of [Number.NaN, 1.5, -1, 2 ** 31]) {
    assert.throws(() => flock(bad, FlockOp.EX | FlockOp.NB), { name: 'RangeError' }, String(bad));
  }
  assert.throws(() => flock('3' as unknown as number, FlockOp.EX), { name: 'TypeError' });
  assert.throws(() => flock(fd, undefined as unknown as number), { name: 'TypeError' });
});
