// Typed wrapper over our own N-API inotify binding (native/inotify.cc).
// The binding delivers events in batches, one array per readable wakeup, and
// passes IN_Q_OVERFLOW (wd -1) through as an ordinary event.
import { isUtf8 } from 'node:buffer';

import { loadNativeAddon, nativeBindingPath } from '../native/addon.js';

export { nativeBindingPath } from '../native/addon.js';

/** Linux inotify mask bits. Kernel ABI, so hard-coding is safe; the native build static_asserts them. */
export const InotifyMask = {
  ACCESS: 0x1,
  MODIFY: 0x2,
  ATTRIB: 0x4,
  CLOSE_WRITE: 0x8,
  CLOSE_NOWRITE: 0x10,
  CLOSE: 0x18,
  OPEN: 0x20,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  MOVE: 0xc0,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  ALL_EVENTS: 0xfff,
  UNMOUNT: 0x2000,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ONLYDIR: 0x01000000,
  DONT_FOLLOW: 0x02000000,
  EXCL_UNLINK: 0x04000000,
  MASK_CREATE: 0x10000000,
  MASK_ADD: 0x20000000,
  ISDIR: 0x40000000,
  // Test with `(mask & ONESHOT) !== 0`: JS bitwise results are signed, so this bit reads back negative.
  ONESHOT: 0x80000000,
} as const;

export interface InotifyEvent {
  /** Watch descriptor; -1 for IN_Q_OVERFLOW. */
  wd: number;
  mask: number;
  /** Pairs IN_MOVED_FROM with IN_MOVED_TO; 0 otherwise. */
  cookie: number;
  /** UTF-8 decoding of nameBytes (lossy when nameIsUtf8 is false); null when the event has no name. */
  name: string | null;
  /** The name exactly as the kernel reported it. Use this to reach files whose names are not UTF-8. */
  nameBytes: Buffer | null;
  /** False when nameBytes is not valid UTF-8, i.e. `name` cannot be used as a path. True when there is no name. */
  nameIsUtf8: boolean;
}

/** Errors from inotify syscalls; `code` is the errno name ('ENOSPC' means fs.inotify.max_user_watches is reached). */
export class InotifyError extends Error {
  readonly code: string;
  /** Positive errno, as in os.constants.errno; 0 for errors that are not from a syscall. */
  readonly errno: number;
  /** Path passed to addWatch; '' for errors not tied to a path. */
  readonly path: string;
  readonly syscall: string;

  constructor(message: string, code: string, errno: number, path: string, syscall: string) {
    super(message);
    this.name = 'InotifyError';
    this.code = code;
    this.errno = errno;
    this.path = path;
    this.syscall = syscall;
  }

  static from(err: unknown, pathArg = ''): InotifyError {
    if (err instanceof InotifyError) return err;
    const e = (err ?? {}) as Partial<Record<'message' | 'code' | 'errno' | 'path' | 'syscall', unknown>>;
    const message = typeof e.message === 'string' ? e.message : String(err);
    const error = new InotifyError(
      message,
      typeof e.code === 'string' ? e.code : 'ERR_INOTIFY',
      typeof e.errno === 'number' ? e.errno : 0,
      typeof e.path === 'string' ? e.path : pathArg,
      typeof e.syscall === 'string' ? e.syscall : '',
    );
    if (err instanceof Error) error.stack = err.stack;
    return error;
  }
}

interface RawEvent {
  wd: number;
  mask: number;
  cookie: number;
  name: Buffer | undefined;
}

type RawCallback = (events: RawEvent[], error: Error | undefined) => void;

interface NativeInotify {
  addWatch(path: string | Buffer, mask: number): number;
  rmWatch(wd: number): boolean;
  close(): void;
  ref(): void;
  unref(): void;
}

interface NativeBinding {
  Inotify: new (onEvents: RawCallback) => NativeInotify;
}

let binding: NativeBinding | undefined;

// Loaded on first use, not at import, so modules that merely import this file
// (e.g. for InotifyMask) work where the addon is not built.
function loadBinding(): NativeBinding {
  if (binding !== undefined) return binding;
  try {
    binding = loadNativeAddon<NativeBinding>();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new InotifyError(`inotify: ${reason}`, 'ERR_INOTIFY_NATIVE_LOAD', 0, nativeBindingPath(), '');
  }
  return binding;
}

function toEvent(raw: RawEvent): InotifyEvent {
  const bytes = raw.name ?? null;
  return {
    wd: raw.wd,
    mask: raw.mask,
    cookie: raw.cookie,
    name: bytes === null ? null : bytes.toString('utf8'),
    nameBytes: bytes,
    nameIsUtf8: bytes === null || isUtf8(bytes),
  };
}

/**
 * One inotify instance. Holds the process open while it is open (call unref() to opt out).
 * `onEvents` receives every event from one wakeup as a single array; an exception thrown
 * from it becomes an uncaught exception, as for any other event-loop callback.
 */
export class Inotify {
  readonly #native: NativeInotify;

  constructor(onEvents: (events: InotifyEvent[]) => void) {
    const { Inotify: NativeCtor } = loadBinding();
    const deliver: RawCallback = (raw, error) => {
      if (raw.length > 0) onEvents(raw.map(toEvent));
      // The binding stopped reading: the watcher is dead, so fail loudly rather than go quiet.
      if (error !== undefined) throw InotifyError.from(error);
    };
    try {
      this.#native = new NativeCtor(deliver);
    } catch (err) {
      throw InotifyError.from(err);
    }
  }

  /** Returns the watch descriptor. Adding an already-watched inode returns its existing wd. */
  addWatch(path: string | Buffer, mask: number): number {
    try {
      return this.#native.addWatch(path, mask);
    } catch (err) {
      throw InotifyError.from(err, typeof path === 'string' ? path : path.toString('utf8'));
    }
  }

  /** False (never a throw) when the watch is already gone, e.g. its directory was deleted. */
  rmWatch(wd: number): boolean {
    try {
      return this.#native.rmWatch(wd);
    } catch (err) {
      throw InotifyError.from(err);
    }
  }

  /** Idempotent; drops all watches. No callback runs after it returns. */
  close(): void {
    this.#native.close();
  }

  /** Let the process exit even while this watcher is open. */
  unref(): void {
    this.#native.unref();
  }

  ref(): void {
    this.#native.ref();
  }
}
