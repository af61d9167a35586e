// Typed wrapper over flock(2) from our native addon (native/flock.cc).
import { loadNativeAddon } from './addon.js';

/** flock(2) operations. Kernel ABI, so hard-coding is safe; the native build static_asserts them. */
export const FlockOp = {
  /** Shared lock: any number of holders, no exclusive one. */
  SH: 1,
  /** Exclusive lock: one holder. */
  EX: 2,
  /** OR into SH or EX: fail with EWOULDBLOCK instead of waiting. */
  NB: 4,
  /** Release the lock. */
  UN: 8,
} as const;

/** What flock() throws for a failed call: `code` is the errno name ('EWOULDBLOCK' when another holds the lock). */
export interface FlockError extends Error {
  readonly code: string;
  /** Positive errno, as in os.constants.errno. */
  readonly errno: number;
  readonly syscall: 'flock';
}

interface NativeFlock {
  flock(fd: number, operation: number): void;
}

/**
 * Locks or unlocks the open file `fd` (from node:fs) with flock(2); retries EINTR. Without FlockOp.NB a conflicting
 * lock blocks the whole JS thread until it is released, so callers pass NB and decide what to do on EWOULDBLOCK.
 *
 * A flock belongs to the open file description, not the process or the fd number: two opens of one file conflict
 * even in the same process, close() of another fd of the same file does not drop it (unlike fcntl/POSIX locks),
 * and the kernel releases it when the last fd of that description closes, including on kill -9.
 *
 * Throws FlockError for a failed call (EWOULDBLOCK, EBADF, EINVAL, ENOLCK...), TypeError or RangeError when `fd`
 * or `operation` is not a non-negative integer, NativeAddonLoadError when the addon is not built.
 */
export function flock(fd: number, operation: number): void {
  loadNativeAddon<NativeFlock>().flock(fd, operation);
}

/** True when `error` is flock's "someone else holds a conflicting lock". */
export function isWouldBlock(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'EWOULDBLOCK';
}
