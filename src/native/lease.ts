// Typed wrapper over the kernel's "is this file open for writing?" answer, from our native addon (native/lease.cc).
import os from 'node:os';
import util from 'node:util';

import { loadNativeAddon } from './addon.js';

/**
 * What {@link writerProbe} learned about a file, at the instant of the call:
 * - `'writer'`: some open file description of the file (same inode, under any name, in any process, this one
 *   included) is open for writing, or an open for writing is in progress.
 * - `'no-writer'`: nobody had it open for writing.
 * - `'unknown'`: the kernel would not say (no permission to take a lease, or no leases on this file or filesystem).
 */
export type WriterProbe = 'writer' | 'no-writer' | 'unknown';

/** What writerProbe() throws for an unexpected failure: `code` is the errno name, as for node:fs errors. */
export interface LeaseError extends Error {
  readonly code: string;
  /** Positive errno, as in os.constants.errno. */
  readonly errno: number;
  readonly syscall: 'fcntl';
}

interface NativeLease {
  probeWriteLease(fd: number): number;
}

const { EAGAIN, EACCES, EPERM, EINVAL } = os.constants.errno;

/**
 * Is a writer holding the file behind `fd` open right now? For a worker about to archive a file: a close-after-write
 * event is no proof the upload is over, since an SFTP client may reopen the file for writing at once.
 *
 * `fd` must be a descriptor of the file opened read-only (`fs.openSync(file, 'r')`, O_RDONLY) and owned by the
 * caller, who closes it; other descriptors of the same file, in this process or another, are what is being asked
 * about. A writable `fd` is refused (LeaseError EBADF): it would be a writer itself and the answer always 'writer'.
 *
 * How: fcntl(fd, F_SETLEASE, F_RDLCK). Linux refuses a read lease with EAGAIN while the inode is open for writing
 * anywhere, which is exactly the question; when it grants the lease, the addon releases it at once (F_UNLCK), so a
 * writer may open the file right after the call without waiting for a lease break (fs.lease-break-time, 45 s by
 * default). This is the kernel's own answer, in two syscalls: no scanning of /proc/PID/fd for every process, which
 * is slow, racy and misses processes in other PID namespaces or that we may not inspect.
 *
 * Who gets an answer: the file's owner (fsuid equal to the file's uid) or a process with CAP_LEASE. Root has
 * CAP_LEASE unless a container drops it (Docker's default set does not include it), so a service running as root in
 * such a container gets 'unknown' for files uploaded by SFTP users, which they own. Other 'unknown' causes: EINVAL
 * (not a regular file; a filesystem that refuses leases, as network and FUSE filesystems commonly do, depending on
 * the kernel; sysctl fs.leases-enable=0) and an LSM refusal (EACCES/EPERM). Treat 'unknown' as "fall back to another test"
 * (size and mtime quiet for a while), not as 'no-writer'.
 *
 * Limits:
 * - An instant, not a promise: a writer may open the file the moment after 'no-writer' is returned. Callers that must
 *   not miss a late write still need to check the file (size, mtime, ctime) after archiving it.
 * - It sees opens, not writes: a process that holds the file open for writing but has stopped writing is a writer;
 *   one that writes by reopening for each chunk is seen only while it has it open. A writable shared mmap keeps the
 *   file open for writing until unmapped, and counts.
 * - It counts opens through the kernel of this host, on this inode: where a network filesystem does grant the
 *   lease, writers on other hosts are not seen. On overlayfs, writes to the upper or lower directory made directly,
 *   bypassing the overlay mount, are not seen.
 * - During the microseconds the lease exists, a concurrent open for writing (or truncate) waits for it to be
 *   released, and one with O_NONBLOCK fails with EAGAIN. The kernel would signal the break with SIGIO, whose
 *   default action terminates the process: the addon ignores SIGIO for the duration when nothing handles it; a
 *   handler installed with process.on('SIGIO') stays in place and may see such a signal.
 * - The probe ends any lease already held through the same open file description (this module never keeps one).
 *
 * Throws LeaseError (code, errno, syscall 'fcntl') when `fd` is not open (EBADF), is not O_RDONLY (EBADF), or fcntl
 * fails in an unexpected way (ENOMEM...); TypeError or RangeError when `fd` is not an integer from 0 to 2^31-1
 * (so NaN never becomes fd 0); NativeAddonLoadError when the addon is not built.
 */
export function writerProbe(fd: number): WriterProbe {
  const errno = loadNativeAddon<NativeLease>().probeWriteLease(fd);
  switch (errno) {
    case 0:
      return 'no-writer';
    case EAGAIN:
      return 'writer';
    case EACCES:
    case EPERM:
    case EINVAL:
      return 'unknown';
    default:
      throw leaseError(errno, fd);
  }
}

function leaseError(errno: number, fd: number): LeaseError {
  const code = util.getSystemErrorName(-errno);
  const description = util.getSystemErrorMap().get(-errno)?.[1] ?? 'unknown error';
  return Object.assign(new Error(`fcntl(F_SETLEASE) fd ${fd}: ${code} (${description})`), {
    code,
    errno,
    syscall: 'fcntl' as const,
  });
}
