// One `watch` per ledger: an exclusive flock(2) on `<ledger>.lock`, held for the life of the process.
import fs from 'node:fs';
import path from 'node:path';

import { ConfigError, SftppushError, describeCause, errnoCode } from '../errors.js';
import { FlockOp, flock, isWouldBlock } from '../native/flock.js';

/** Errors opening the lock file that an operator fixes by choosing or preparing another `ledger.path`. */
const CONFIG_ERRNOS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP', 'ENAMETOOLONG']);

// isHeld() holds a shared lock for microseconds; a newcomer that meets only such a probe must not be refused, so
// it tries again for up to ~50 ms before it believes another watch holds the lock.
const LOCK_ATTEMPTS = 11;
const LOCK_RETRY_MS = 5;

/** Another live process holds the ledger's instance lock. The CLI exits 1 with this message. */
export class InstanceLockedError extends SftppushError {
  constructor(
    readonly ledgerPath: string,
    readonly lockPath: string,
    /** The holder's pid as it wrote it (in its own pid namespace); undefined if it has not written it yet. */
    readonly holderPid: number | undefined,
  ) {
    super(
      'E_INSTANCE_LOCKED',
      `ledger ${ledgerPath} is in use by another sftppush watch (pid ${holderPid ?? 'unknown'}, lock ${lockPath}): ` +
        'stop it first, or give this one its own ledger.path',
    );
  }
}

/**
 * The instance lock of one ledger: while a process holds it, no other process can, so at most one `watch` works
 * a ledger (and rows left `working` by a live process are never mistaken for a crash's).
 *
 * The lock is flock(2) LOCK_EX on `${ledgerPath}.lock`, a file of its own beside the ledger. The kernel, not the
 * pid in the file, is the truth:
 * - it is released by the kernel when the process ends, however it ends (kill -9, OOM), so there is no stale lock
 *   to clean up and no pid-liveness guess (in containers two processes may both be pid 1, and a pid is reused);
 * - it belongs to the open file, not to a pid, so it works across pid namespaces sharing the file;
 * - unlike fcntl (POSIX) locks, it is not dropped when the process closes some other fd of the same file, and
 *   two opens in one process conflict, so a second acquire() in the same process is refused too. (SQLite uses
 *   fcntl locks on the ledger itself; this file is never opened by SQLite, so the two never interfere.)
 * The pid written into the file only names the holder in the error message. isHeld() asks whether anyone holds
 * the lock without taking it.
 */
export class InstanceLock {
  #fd: number | undefined;

  private constructor(
    /** The lock file: `${ledgerPath}.lock`. */
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  /**
   * Takes the lock without waiting for a holder (it tries again for ~50 ms only, to outlast an isHeld() probe):
   * creates the ledger's directory and the lock file if needed, locks it, and writes `<pid>\n` into it. Keep the
   * returned lock (its fd stays open) until the process exits or release().
   *
   * Throws InstanceLockedError (code E_INSTANCE_LOCKED) when another open of the file, in this process or any
   * other, holds the lock; ConfigError (exit 2) when the lock file cannot be created or opened because of the
   * path (EACCES, EPERM, EROFS, ENOENT, ENOTDIR, ...), naming the lock file, the errno and `ledger.path`;
   * SftppushError E_INSTANCE_LOCK for other failures (EMFILE, ENOLCK, EIO, ...).
   */
  static acquire(ledgerPath: string, options: { pid: number }): InstanceLock {
    const lockPath = lockPathFor(ledgerPath);
    const fd = openLockFile(lockPath);
    try {
      lockExclusive(fd);
    } catch (err) {
      const holderPid = isWouldBlock(err) ? readHolderPid(fd) : undefined;
      fs.closeSync(fd);
      if (isWouldBlock(err)) throw new InstanceLockedError(ledgerPath, lockPath, holderPid);
      throw new SftppushError('E_INSTANCE_LOCK', `instance lock ${lockPath}: ${describeCause(err)}`, { cause: err });
    }
    try {
      // Overwrite in place: the file must stay the same inode, the one the lock is on (no write-and-rename).
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, `${options.pid}\n`, 0);
    } catch (err) {
      fs.closeSync(fd);
      throw new SftppushError('E_INSTANCE_LOCK', `instance lock ${lockPath}: write pid: ${describeCause(err)}`, {
        cause: err,
      });
    }
    return new InstanceLock(lockPath, fd);
  }

  /**
   * Whether some process, this one included, holds the instance lock of `ledgerPath` now: for a `reconcile`
   * running beside a watch, which must leave that watch's rows alone. A snapshot: a watch may start (or stop) as
   * it returns. Creates nothing; false when the lock file does not exist. It probes with a shared lock held for
   * microseconds, which a watch starting in that instant waits out (acquire retries briefly).
   *
   * Throws ConfigError when the lock file exists but cannot be opened (EACCES, ...), SftppushError E_INSTANCE_LOCK
   * for other failures.
   */
  static isHeld(ledgerPath: string): boolean {
    const lockPath = lockPathFor(ledgerPath);
    let fd: number;
    try {
      fd = fs.openSync(lockPath, fs.constants.O_RDONLY);
    } catch (err) {
      const code = errnoCode(err);
      // No lock file (or no such directory): no watch has ever run on this ledger.
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw openError(lockPath, 'open', err);
    }
    try {
      flock(fd, FlockOp.SH | FlockOp.NB);
      return false;
    } catch (err) {
      if (isWouldBlock(err)) return true;
      throw new SftppushError('E_INSTANCE_LOCK', `instance lock ${lockPath}: ${describeCause(err)}`, { cause: err });
    } finally {
      // Drops the probe's shared lock with the fd.
      fs.closeSync(fd);
    }
  }

  /**
   * Unlocks and closes the lock file. Idempotent. The file stays: deleting it would let a newcomer lock a new
   * file of the same name while a process that opened the old one still holds (or is about to take) its lock.
   */
  release(): void {
    const fd = this.#fd;
    if (fd === undefined) return;
    this.#fd = undefined;
    try {
      // Explicitly, not only by close: a forked child that has not exec'd yet shares the open file description.
      flock(fd, FlockOp.UN);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** flock LOCK_EX|LOCK_NB, tried again for a moment while it meets EWOULDBLOCK (see LOCK_ATTEMPTS). */
function lockExclusive(fd: number): void {
  for (let attempt = 1; ; attempt += 1) {
    try {
      flock(fd, FlockOp.EX | FlockOp.NB);
      return;
    } catch (err) {
      if (!isWouldBlock(err) || attempt >= LOCK_ATTEMPTS) throw err;
    }
    // Start-up only, once: blocking the thread this briefly is simpler than making acquire() async.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, LOCK_RETRY_MS);
  }
}

function openLockFile(lockPath: string): number {
  try {
    makeDirectory(path.dirname(lockPath));
  } catch (err) {
    throw openError(lockPath, 'create the directory of', err);
  }
  try {
    // libuv opens every file O_CLOEXEC, so no exec'd child inherits the lock.
    return fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
  } catch (err) {
    throw openError(lockPath, 'open', err);
  }
}

/**
 * `mkdir -p` that gives up. Not fs.mkdirSync's `recursive`: under /proc or a dangling symlink the child's mkdir says
 * ENOENT while its parent says EEXIST, and Node's walk retries that pair forever at 100% CPU. An existing
 * non-directory counts as present here; opening the lock file below it then fails with ENOTDIR, which names it.
 */
function makeDirectory(dir: string): void {
  try {
    fs.mkdirSync(dir);
    return;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  makeDirectory(path.dirname(dir));
  try {
    // Once: the parent is there now, so ENOENT again is final.
    fs.mkdirSync(dir);
  } catch (err) {
    if (errnoCode(err) !== 'EEXIST') throw err;
  }
}

function openError(lockPath: string, action: string, err: unknown): Error {
  const code = errnoCode(err);
  if (code !== undefined && CONFIG_ERRNOS.has(code)) {
    return new ConfigError(
      `cannot ${action} the instance lock file ${lockPath} (${code}): ledger.path (--ledger) must name a file ` +
        'in a directory this user can create and write',
    );
  }
  return new SftppushError('E_INSTANCE_LOCK', `instance lock ${lockPath}: ${action}: ${describeCause(err)}`, {
    cause: err,
  });
}

/** The pid the holder wrote, if it has written one yet (it writes right after locking). */
function readHolderPid(fd: number): number | undefined {
  try {
    const buffer = Buffer.alloc(32);
    const bytes = fs.readSync(fd, buffer, 0, buffer.length, 0);
    const text = buffer.toString('utf8', 0, bytes).trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The lock file of a ledger, named after the ledger's real path: a second watch that reaches the same ledger
 * through a symlink (to the file or to a directory above it) must meet the same lock.
 */
export function lockPathFor(ledgerPath: string): string {
  const absolute = path.resolve(ledgerPath);
  for (const candidate of [absolute, path.dirname(absolute)]) {
    try {
      const real = fs.realpathSync(candidate);
      return `${candidate === absolute ? real : path.join(real, path.basename(absolute))}.lock`;
    } catch {
      // not there yet (a first start): try the directory, then the path as given
    }
  }
  return `${absolute}.lock`;
}
