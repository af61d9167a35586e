import type { S3Client, ServiceInputTypes, ServiceOutputTypes } from '@aws-sdk/client-s3';
import type { FinalizeRequestMiddleware } from '@smithy/types';
import { ConfigError } from './errors.js';
import { PROBE_KEY_SEGMENT } from './s3/object-store.js';

/**
 * TEST-ONLY. Named instants at which a crash test makes the service SIGKILL itself, so that each recovery
 * path runs on purpose rather than by a lucky timer. Switched on only by the environment variable
 * `SFTPPUSH_TEST_KILL_AT=<point>[@<n>]` (the n-th time the point is reached, default the first), which
 * app.ts reads; without it every checkpoint is a no-op. Never set it on a real service.
 *
 * - `after-claim`: the claim is committed, nothing read or sent yet.
 * - `during-put`: a single PutObject is built and signed, S3 has not received it.
 * - `during-multipart`: a multipart upload has a part stored, and is not completed.
 * - `after-put`: S3 answered the PutObject or the multipart completion; the ledger does not know yet.
 * - `after-member`: the ledger recorded one member of an archive; the others are not all stored yet.
 * - `after-commit`: the ledger recorded the archive.
 * - `after-archive-record`: the ledger recorded the archive and its target's `after` action (delete, move) as
 *   due; the source is not touched yet. Reached only when a target's `after` is not `keep`.
 */
export const KILL_POINTS = [
  'after-claim',
  'during-put',
  'during-multipart',
  'after-put',
  'after-member',
  'after-commit',
  'after-archive-record',
] as const;
export type KillPoint = (typeof KILL_POINTS)[number];

export const KILL_AT_VARIABLE = 'SFTPPUSH_TEST_KILL_AT';

export type Checkpoint = (point: KillPoint) => void;

/**
 * @param spec the variable's value; undefined or empty: a no-op checkpoint.
 * @throws ConfigError naming the variable when the point is not one of KILL_POINTS.
 */
export function createCheckpoint(spec: string | undefined, kill: () => void): Checkpoint {
  if (!spec) return () => undefined;
  const [name = '', nth = '1'] = spec.split('@');
  if (!(KILL_POINTS as readonly string[]).includes(name) || !/^[1-9]\d*$/.test(nth)) {
    throw new ConfigError(`${KILL_AT_VARIABLE}=${spec}: expected one of ${KILL_POINTS.join(', ')}, optionally @N`);
  }
  let remaining = Number(nth);
  return (point) => {
    if (point === name && --remaining === 0) kill();
  };
}

/** Puts the S3 kill points on the wire path of `client`: around each attempt, inside the SDK's retries. */
export function addKillPoints(client: S3Client, checkpoint: Checkpoint): void {
  const middleware: FinalizeRequestMiddleware<ServiceInputTypes, ServiceOutputTypes> = (next, context) => async (args) => {
    // The start-up probe of conditional writes is a PutObject too, but never an archive's.
    if ((args.input as { Key?: string }).Key?.includes(PROBE_KEY_SEGMENT)) return next(args);
    if (context.commandName === 'PutObjectCommand') checkpoint('during-put');
    const result = await next(args);
    if (context.commandName === 'UploadPartCommand') checkpoint('during-multipart');
    if (context.commandName === 'PutObjectCommand' || context.commandName === 'CompleteMultipartUploadCommand') {
      checkpoint('after-put');
    }
    return result;
  };
  client.middlewareStack.addRelativeTo(middleware, { name: 'sftppushKillPoints', relation: 'after', toMiddleware: 'retryMiddleware' });
}
