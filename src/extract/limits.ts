import { ArchiveRejectedError } from '../errors.js';

/** `[archive]` in config.toml: what one archive may expand to. Counted from bytes actually decompressed. */
export interface ArchiveLimits {
  /** All members together, bytes. */
  readonly maxTotalBytes: number;
  readonly maxMembers: number;
  /** Decompressed bytes per byte of archive, once past RATIO_FLOOR_BYTES. */
  readonly maxRatio: number;
  /** One member, bytes. */
  readonly maxMemberBytes: number;
}

/**
 * Below this many decompressed bytes the ratio is not checked: headers and padding make tiny archives
 * expand by large factors (a 150-byte tar.gz of one short line is a 10 KiB tar), and a mebibyte is no bomb.
 */
export const RATIO_FLOOR_BYTES = 1024 * 1024;

/**
 * Counts one archive's members and bytes as they are decompressed, and rejects the archive the moment a
 * limit is passed: a bomb is stopped after at most one chunk over, in bounded time and memory. Declared
 * sizes are never trusted (overlapping zip entries make them lie); only what the decompressor produced.
 */
export class ExtractionBudget {
  private members = 0;
  private totalBytes = 0;

  constructor(
    private readonly limits: ArchiveLimits,
    private readonly archiveBytes: number,
  ) {}

  /** A member (file) begins. @throws ArchiveRejectedError past max_members. */
  countMember(name: string): void {
    this.members += 1;
    if (this.members > this.limits.maxMembers) {
      throw new ArchiveRejectedError('max_members', name, `more than ${this.limits.maxMembers} members`);
    }
  }

  /** Member `name` has produced `memberBytes` so far. @throws ArchiveRejectedError past max_member_bytes. */
  countMemberBytes(name: string, memberBytes: number): void {
    if (memberBytes > this.limits.maxMemberBytes) {
      throw new ArchiveRejectedError('max_member_bytes', name, `expands to more than ${this.limits.maxMemberBytes} bytes`);
    }
  }

  /**
   * `bytes` more were decompressed: a zip member's, or a gzip stream's (for tar.gz that is the whole tar,
   * headers and what follows its end included, so a bomb hidden after the last member is counted too).
   * @param name the member being read, if any, for the message.
   * @throws ArchiveRejectedError past max_total_bytes or max_ratio.
   */
  countExpanded(name: string | undefined, bytes: number): void {
    this.totalBytes += bytes;
    if (this.totalBytes > this.limits.maxTotalBytes) {
      throw new ArchiveRejectedError('max_total_bytes', name, `the archive expands to more than ${this.limits.maxTotalBytes} bytes`);
    }
    const ratio = this.totalBytes / Math.max(1, this.archiveBytes);
    if (this.totalBytes > RATIO_FLOOR_BYTES && ratio > this.limits.maxRatio) {
      throw new ArchiveRejectedError(
        'max_ratio',
        name,
        `${this.totalBytes} bytes from a ${this.archiveBytes}-byte archive: over ${this.limits.maxRatio}:1`,
      );
    }
  }
}
