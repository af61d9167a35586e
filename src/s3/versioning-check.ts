import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { SftppushError, StoreError } from '../errors.js';
import type { BucketVersioning } from './object-store.js';

/**
 * A bucket without versioning under a target that deletes or moves its sources: a later partial generation
 * of a path would replace the only copy of the earlier content, whose source is gone. Not a usage error of
 * the command line: the bucket must change (exit 1).
 */
export class VersioningRequiredError extends SftppushError {
  constructor(bucket: string, status: BucketVersioning, keys: readonly string[]) {
    super(
      'E_BUCKET_VERSIONING',
      `s3://${bucket}: bucket versioning is ${status}, but ${keys.join(', ')} deletes or moves sources once archived; ` +
        `turn versioning on (aws s3api put-bucket-versioning --bucket ${bucket} --versioning-configuration Status=Enabled) or set after = "keep"`,
    );
  }
}

/**
 * Start-up check of every bucket the targets write to. Versioning off where a target's `after` is `delete`
 * or `move:DIR`: VersioningRequiredError naming the bucket. Off elsewhere: one warning per bucket. A bucket
 * S3 will not answer for now (unreachable) is a warning: uploads wait in retry, and no source is deleted or
 * moved before its archive is verified anyway.
 * @throws VersioningRequiredError
 */
export async function checkBucketVersioning(
  targets: readonly TargetConfig[],
  versioningOf: (bucket: string) => Promise<BucketVersioning>,
  log: Logger,
): Promise<void> {
  for (const bucket of new Set(targets.map((t) => t.bucket))) {
    const letGo = targets.filter((t) => t.bucket === bucket && t.after.kind !== 'keep');
    let status: BucketVersioning;
    try {
      status = await versioningOf(bucket);
    } catch (error) {
      if (!(error instanceof StoreError)) throw error;
      log.warn({ bucket, error: error.message }, 'cannot read the bucket\'s versioning now');
      continue;
    }
    if (status === 'Enabled') continue;
    if (letGo.length > 0) {
      const error = new VersioningRequiredError(bucket, status, [...new Set(letGo.map((t) => t.afterKey))]);
      log.error({ bucket, versioning: status }, error.message);
      throw error;
    }
    log.warn({ bucket, versioning: status }, 'bucket versioning is off: a later partial generation of a path would replace the only archived copy');
  }
}
