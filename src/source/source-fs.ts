import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { closeSync, constants, fstatSync, lstatSync, opendirSync, openSync, promises as fsp, read, readSync, type BigIntStats, type Dirent } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import { errnoCode } from '../errors.js';
import { writerProbe, type WriterProbe } from '../native/lease.js';
import { lstatNames, type StatFailure } from '../native/stat-at.js';
import type { FileStat } from '../ledger/observation.js';

export interface SourceStat extends FileStat {
  readonly isFile: boolean;
}

/** An open source file. Reads always start at offset 0 and never move a shared position. */
export interface SourceFile {
  /** fstat of the open descriptor: the identity of the bytes being read, whatever the path now names. */
  stat(): Promise<SourceStat>;
  /** The whole content, for files small enough to hold in memory (one read, hashed and sent as is). */
  readAll(sizeBytes: number): Promise<Buffer>;
  /** Hex SHA-256 of the whole content. */
  sha256(): Promise<string>;
  /** Up to `length` bytes from `position` (fewer at the end of the file). */
  readAt(position: number, length: number): Promise<Buffer>;
  /** A fresh stream of the content (bytes `start` to `end`, end exclusive, when given); the descriptor stays open. */
  stream(range?: { readonly start: number; readonly end: number }): Readable;
  /**
   * Whether some process has the file open for writing right now: the kernel's answer (a read lease it
   * refuses), or 'unknown' where it will not say (another user's file without CAP_LEASE, NFS).
   */
  writerProbe(): WriterProbe;
  close(): Promise<void>;
}

/** A directory open for streaming (opendir(3)): entries a buffer at a time, names as bytes. */
export interface SourceDirectory {
  /** The next entry, or null at the end. @throws the errno error (EIO mid-listing, a stale NFS handle). */
  readSync(): Dirent<Buffer> | null;
  closeSync(): void;
}

/** Directories as the walks (the watcher's, a pass's) see them. */
export interface SourceDirs {
  /**
   * Opens `dir` for streaming, `bufferSize` entries per getdents(2); names stay bytes, so one that is not
   * UTF-8 can be reported instead of mangled. Opened in place, not on the thread pool: a round trip per
   * directory cost more than the open itself (0.15 s of a pass over 1,000 directories).
   * @throws the errno error (ENOENT, ENOTDIR, EACCES).
   */
  openDirectory(dir: string, bufferSize: number): SourceDirectory;
  /**
   * lstat(2) of `names` in `dir`, in one call off this thread, symlinks never followed (native/stat-at.ts):
   * each a SourceStat, or the errno name of its failure.
   */
  lstatNames(dir: string, names: readonly string[]): Promise<(SourceStat | StatFailure)[]>;
  /**
   * The names of the subdirectories of `dir` (symlinks to directories are not among them), read with opendir a
   * buffer at a time: a directory of a million files is never held whole. Names that are not valid UTF-8 are
   * left out (they cannot become S3 keys; the scanner reports them). Nothing when `dir` cannot be read, gone or
   * refused (EACCES): a pass's scan reports an unreadable directory, and a listing of it is tried again then.
   */
  subdirectories(dir: string): Iterable<string>;
}

/** The filesystem as the worker sees it. */
export interface SourceFs {
  /** Opens a regular file without following a symlink. @throws the errno error (ENOENT: it vanished). */
  open(path: string): Promise<SourceFile>;
  /** Current stat of the path, or undefined if nothing is there now. */
  stat(path: string): Promise<SourceStat | undefined>;
  /** unlink(2). @throws the errno error (ENOENT, EACCES). */
  unlink(path: string): Promise<void>;
  /**
   * link(2) `to` to the inode at `from`, creating `to`'s missing parent directories first; never replaces.
   * @throws the errno error (EEXIST: `to` is taken; EXDEV: another filesystem; EACCES).
   */
  link(from: string, to: string): Promise<void>;
  /** fsync(2) of a directory, so the names made or removed in it survive a power loss. */
  syncDirectory(dir: string): Promise<void>;
}

const NS_PER_S = 1_000_000_000n;

/**
 * The identity of a stat taken with `{ bigint: true }` (the only way to read ctime to the nanosecond).
 * mtimeMs is computed exactly as node:fs computes Stats.mtimeMs (seconds * 1e3 + nanoseconds / 1e6), so it
 * equals what ledgers recorded before ctimes were kept.
 */
export function toSourceStat(stats: BigIntStats): SourceStat {
  const mtimeMs = Number(stats.mtimeNs / NS_PER_S) * 1e3 + Number(stats.mtimeNs % NS_PER_S) / 1e6;
  return { sizeBytes: Number(stats.size), mtimeMs, inode: Number(stats.ino), ctimeNs: stats.ctimeNs, isFile: stats.isFile() };
}

/** Bytes a stream reads per call: large enough for few system calls, small enough to hold a few. */
const CHUNK_BYTES = 1024 * 1024;

/**
 * A file up to this size is read in place rather than on the thread pool: a file that has just landed is in the
 * page cache, where one read of it takes microseconds (less than the pool's round trip); a cold one costs the
 * event loop one disk read at most.
 */
const IN_PLACE_READ_MAX_BYTES = 64 * 1024;

/**
 * A SourceFile on a descriptor of our own. The calls on its inode are made in place, not on the thread pool:
 * open (a path the watcher has just seen, its dentry and inode cached), fstat (reads the inode the kernel holds), close
 * (of a descriptor only read), and the read of a small file. Through the pool, their round trips cost more than
 * the calls: 2000 small files against the bench sink went from 606-622 to 750-836 files/s (/tmp/perf burst).
 * Larger reads go to the pool, counted: close() waits for them, so the descriptor's number is never reused
 * while a read of it is still queued.
 */
function descriptorFile(fd: number): SourceFile {
  let reading = 0;
  let idle: (() => void) | undefined;
  let closed = false;
  // Every call goes through here. Closed, the number may already be another file's (a stream left with data
  // wanted reads on after its owner closed the file): the call fails with EBADF instead.
  const descriptor = (): number => {
    if (closed) throw closedError();
    return fd;
  };
  const readOffThread = async (buffer: Buffer, offset: number, length: number, position: number): Promise<number> => {
    const current = descriptor();
    reading += 1;
    return new Promise<number>((resolve, reject) => {
      read(current, buffer, offset, length, position, (error, bytesRead) => {
        reading -= 1;
        if (reading === 0) idle?.();
        if (error) reject(error);
        else resolve(bytesRead);
      });
    });
  };
  return {
    stat: () => new Promise((resolve) => resolve(toSourceStat(fstatSync(descriptor(), { bigint: true })))),
    async readAll(sizeBytes) {
      const buffer = Buffer.allocUnsafe(sizeBytes);
      let filled = 0;
      while (filled < sizeBytes) {
        const bytesRead =
          sizeBytes <= IN_PLACE_READ_MAX_BYTES
            ? readSync(descriptor(), buffer, filled, sizeBytes - filled, filled)
            : await readOffThread(buffer, filled, sizeBytes - filled, filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled === sizeBytes ? buffer : buffer.subarray(0, filled);
    },
    async sha256() {
      // One buffer read into again and again: hashing a large file allocates nothing per chunk.
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafeSlow(CHUNK_BYTES);
      for (let position = 0; ; ) {
        const bytesRead = await readOffThread(buffer, 0, CHUNK_BYTES, position);
        if (bytesRead === 0) return hash.digest('hex');
        hash.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
    },
    async readAt(position, length) {
      const buffer = Buffer.alloc(length);
      const bytesRead = await readOffThread(buffer, 0, length, position);
      return buffer.subarray(0, bytesRead);
    },
    stream: (range) => positionalStream(readOffThread, range?.start ?? 0, range?.end),
    writerProbe: () => writerProbe(descriptor()),
    async close() {
      if (closed) return;
      closed = true;
      while (reading > 0) await new Promise<void>((resolve) => (idle = resolve));
      closeSync(fd);
    },
  };
}

/** What a call on a SourceFile after its close() gets, as node:fs reports a closed descriptor. */
function closedError(): NodeJS.ErrnoException {
  return Object.assign(new Error('EBADF: bad file descriptor, the source file was closed'), { code: 'EBADF' });
}

/**
 * Bytes `start` to `end` (exclusive; the end of the file when undefined) by positional reads (pread), which
 * never move a shared position. The stream never closes the descriptor: a stream given up early (a gzip
 * sniffed, an upload aborted) must leave it to its owner.
 */
function positionalStream(
  readAt: (buffer: Buffer, offset: number, length: number, position: number) => Promise<number>,
  start: number,
  end: number | undefined,
): Readable {
  let position = start;
  return new Readable({
    highWaterMark: CHUNK_BYTES,
    read() {
      const length = end === undefined ? CHUNK_BYTES : Math.min(CHUNK_BYTES, end - position);
      if (length <= 0) {
        this.push(null);
        return;
      }
      const buffer = Buffer.allocUnsafe(length);
      readAt(buffer, 0, length, position).then(
        (bytesRead) => {
          position += bytesRead;
          this.push(bytesRead === 0 ? null : buffer.subarray(0, bytesRead));
        },
        (error: unknown) => this.destroy(error as Error),
      );
    },
  });
}

/** SourceFs on node:fs. */
export const nodeSourceFs: SourceFs = {
  unlink: (path) => fsp.unlink(path),
  async link(from, to) {
    await fsp.mkdir(dirname(to), { recursive: true });
    await fsp.link(from, to);
  },
  async syncDirectory(dir) {
    const handle = await fsp.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  open: (path) =>
    // O_NOFOLLOW: a symlink dropped by an SFTP user must never make us upload what it points at. O_NONBLOCK: a
    // FIFO put in place of the file must not hang the open (it is then no regular file, and never read). A
    // failed open (ENOENT, ELOOP) rejects: it is thrown inside the executor.
    new Promise((resolve) => resolve(descriptorFile(openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)))),
  // In place, like open (descriptorFile): each caller stats a path just seen (an event's, a file just read).
  stat: (path) =>
    new Promise((resolve) => {
      try {
        const stats = lstatSync(path, { bigint: true, throwIfNoEntry: false });
        resolve(stats && toSourceStat(stats));
      } catch (error) {
        if (errnoCode(error) !== 'ENOTDIR') throw error;
        resolve(undefined);
      }
    }),
};

/** opendir's default buffer: a watch walk keeps only the subdirectories of what it reads. */
const SUBDIRECTORY_BUFFER_ENTRIES = 32;

/** SourceDirs on node:fs and the native batched lstat. */
export const nodeSourceDirs: SourceDirs = {
  openDirectory(dir, bufferSize) {
    // Node honours 'buffer' here as in readdir; @types/node types opendir's encoding as a text encoding only.
    return opendirSync(dir, { encoding: 'buffer' as BufferEncoding, bufferSize }) as unknown as SourceDirectory;
  },
  lstatNames,
  *subdirectories(dir) {
    let handle: SourceDirectory;
    try {
      handle = nodeSourceDirs.openDirectory(dir, SUBDIRECTORY_BUFFER_ENTRIES);
    } catch {
      return;
    }
    try {
      for (;;) {
        let entry: Dirent<Buffer> | null;
        try {
          entry = handle.readSync();
        } catch {
          return; // EIO mid-listing: what was read stands, the scan reports the rest
        }
        if (entry === null) return;
        if (entry.isDirectory() && isUtf8(entry.name)) yield entry.name.toString('utf8');
      }
    } finally {
      handle.closeSync();
    }
  },
};
