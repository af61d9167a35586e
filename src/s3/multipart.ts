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
