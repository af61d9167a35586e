import type { Logger } from 'pino';
import { describeCause } from '../errors.js';
import type { Ledger } from '../ledger/ledger.js';
import type { MultipartUploads, OpenUpload } from '../s3/multipart.js';

export interface AbandonedUploadsDeps {
  readonly ledger: Pick<Ledger, 'openUploads' | 'forgetOpenUpload'>;
  readonly uploads: MultipartUploads;
  /** Whether the process that opened an upload still runs (a `reconcile` beside us): its uploads are its own. */
  readonly isOwnerAlive: (owner: string) => boolean;
  readonly log: Logger;
}

/** How many keys of uploads left alone the warning names. */
const KEYS_NAMED = 5;

/**
 * Start-up: aborts the multipart uploads that processes using this ledger opened and never closed (a
 * `kill -9` mid-upload), so their parts do not accumulate cost. Only those: an open upload under our
 * prefixes that the ledger never recorded may be another host's, sharing the bucket, still uploading, and is
 * left alone, counted in one warning (a bucket lifecycle rule reaps it). S3 failures are logged, never fatal:
 * the records stay, and the next start tries again.
 * @param places every (bucket, prefix) this service writes under (targets and quarantine).
 */
export async function abortAbandonedUploads(places: readonly { bucket: string; prefix: string }[], deps: AbandonedUploadsDeps): Promise<void> {
  const { ledger, uploads, log } = deps;
  const recorded = ledger.openUploads();
  for (const upload of recorded.filter((u) => !deps.isOwnerAlive(u.owner))) {
    try {
      const aborted = await uploads.abort(upload);
      ledger.forgetOpenUpload(upload.uploadId);
      if (aborted) log.info({ key: upload.key, bucket: upload.bucket, uploadId: upload.uploadId, owner: upload.owner }, 'aborted a multipart upload a stopped process left open');
    } catch (error) {
      log.warn({ key: upload.key, uploadId: upload.uploadId, error: describeCause(error) }, 'cannot abort a multipart upload a stopped process left open: the next start tries again');
    }
  }
  const known = new Set(recorded.map((u) => u.uploadId));
  const foreign: OpenUpload[] = [];
  for (const place of distinctPlaces(places)) {
    try {
      for await (const upload of uploads.listOpen(place.bucket, place.prefix)) if (!known.has(upload.uploadId)) foreign.push(upload);
    } catch (error) {
      log.warn({ bucket: place.bucket, prefix: place.prefix, error: describeCause(error) }, 'cannot list open multipart uploads');
    }
  }
  if (foreign.length > 0) {
    log.warn(
      { count: foreign.length, keys: foreign.slice(0, KEYS_NAMED).map((u) => `${u.bucket}/${u.key}`) },
      'open multipart uploads under our prefixes that this ledger did not start: left alone (another writer may own them; a bucket lifecycle rule should abort stale ones)',
    );
  }
}

/** Each (bucket, prefix) once, leaving out a prefix another one of the same bucket already covers. */
function distinctPlaces(places: readonly { bucket: string; prefix: string }[]): { bucket: string; prefix: string }[] {
  const sorted = [...places].sort((a, b) => a.bucket.localeCompare(b.bucket) || a.prefix.length - b.prefix.length);
  const kept: { bucket: string; prefix: string }[] = [];
  for (const place of sorted) {
    if (!kept.some((k) => k.bucket === place.bucket && place.prefix.startsWith(k.prefix))) kept.push(place);
  }
  return kept;
}
