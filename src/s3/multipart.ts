/** One multipart upload S3 holds open: created, neither completed nor aborted. */
export interface OpenUpload {
  readonly bucket: string;
  readonly key: string;
  readonly uploadId: string;
}

/**
 * Told when this process opens and closes a multipart upload (the ledger keeps the list), so that what a
 * `kill -9` leaves open is known at the next start, and only that is aborted.
 */
export interface MultipartJournal {
  opened(upload: OpenUpload): void;
  /** Completed or aborted (or found gone): nothing left to clean up. */
  closed(uploadId: string): void;
}

/** The multipart bookkeeping start-up and stop need (S3Store). */
export interface MultipartUploads {
  /** Every open multipart upload whose key starts with `prefix`. @throws StoreError */
  listOpen(bucket: string, prefix: string): AsyncIterable<OpenUpload>;
  /** Aborts one upload, parts and all. @returns false when S3 no longer knows it (completed or aborted already). @throws StoreError */
  abort(upload: OpenUpload): Promise<boolean>;
}

const MIB = 1024 * 1024;

/** S3's limits on one multipart upload (the part count, and the smallest and largest part but the last). */
export const MAX_PARTS = 10_000;
export const MIN_PART_BYTES = 5 * MIB;
export const MAX_PART_BYTES = 5 * 1024 * MIB;
/** The largest object S3 stores: 5 TiB. */
export const MAX_OBJECT_BYTES = 5 * 1024 * 1024 * MIB;

/**
 * Part bytes held in memory by one upload at most (parts being read and sent): below it, up to
 * MAX_PARTS_IN_FLIGHT parts go at once; a part larger than it goes alone.
 */
const IN_FLIGHT_BUDGET_BYTES = 64 * MIB;
const MAX_PARTS_IN_FLIGHT = 4;

/**
 * The part size for an object of `sizeBytes`: the configured `preferredBytes` (`upload.part_size_mb`), or
 * larger, in whole MiB, when that would take more than S3's 10,000 parts (a fixed 8 MiB part fails after
 * about 78 GiB). Never below S3's 5 MiB minimum.
 * @param sizeBytes at most MAX_OBJECT_BYTES (S3 stores nothing larger; the caller refuses it first).
 * @returns bytes per part, every part but the last; at most MAX_PART_BYTES.
 */
export function partSizeFor(sizeBytes: number, preferredBytes: number): number {
  const needed = Math.ceil(Math.ceil(sizeBytes / MAX_PARTS) / MIB) * MIB;
  return Math.min(MAX_PART_BYTES, Math.max(MIN_PART_BYTES, preferredBytes, needed));
}

/**
 * How many parts of `partSizeBytes` one upload reads and sends at once: 4 for parts up to 16 MiB, fewer
 * for larger parts, so one upload holds at most max(64 MiB, one part) of part buffers.
 */
export function partsInFlight(partSizeBytes: number): number {
  return Math.max(1, Math.min(MAX_PARTS_IN_FLIGHT, Math.floor(IN_FLIGHT_BUDGET_BYTES / partSizeBytes)));
}
