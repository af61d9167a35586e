import type { Logger } from 'pino';
import type { TargetConfig, TargetSubtree } from '../config.js';
import type { ArchivedKey, Ledger } from '../ledger/ledger.js';
import type { ListedObject, ObjectStore } from '../s3/object-store.js';

/** One object of an archived file that S3 no longer holds as archived. */
export interface VerifyFinding {
  readonly target: string;
  readonly relPath: string;
  readonly key: string;
  readonly reason: 'missing' | 'other content';
}

export interface VerifyResult {
  /** Archived files in scope whose object S3 still holds. */
  verified: number;
  /** Found missing or replaced, and queued again (or, in a dry run, would be). */
  findings: VerifyFinding[];
  /** Objects the listings returned (ListObjectsV2 returns up to 1000 per request). */
  listed: number;
  /** HEADs made for what the listing could not settle. */
  heads: number;
}

export interface VerifyDeps {
  readonly ledger: Pick<Ledger, 'archivedObjectsInScope' | 'reopen'>;
  readonly store: Pick<ObjectStore, 'list' | 'head'>;
  readonly log: Logger;
  readonly dryRun: boolean;
}

/**
 * `reconcile --verify`: checks every object that proves an archived file in scope (a plain file's, each
 * member of an archive) against S3 by listing (ListObjectsV2: key, size and ETag, 1000 per request),
 * merge-joined with the ledger's objects in key order, so memory does not grow with the bucket. Only what
 * the listing cannot settle is HEADed (an ETag other than the one recorded: a multipart ETag computed
 * elsewhere, or a newer version at the key), and a HEAD whose `sha256` metadata is ours settles it too.
 * A file with a missing object or other content is queued again (reopened as a new generation, which the
 * write gate restores, writing only what is missing), never in a dry run.
 * @throws StoreError when S3 cannot be listed.
 */
export async function verifyArchived(subtrees: readonly TargetSubtree[], sinceMs: number, deps: VerifyDeps): Promise<VerifyResult> {
  const result: VerifyResult = { verified: 0, findings: [], listed: 0, heads: 0 };
  for (const { target, relDir } of subtrees) {
    // A file's keys keep its directory (an archive's members go below it, d.csv.gz becomes d.csv): a subtree is
    // one key prefix.
    const keyPrefix = relDir === '' ? target.prefix : `${target.prefix}${relDir}/`;
    const listing = deps.store.list(target.bucket, keyPrefix)[Symbol.asyncIterator]();
    const next = async (): Promise<IteratorResult<ListedObject>> => {
      const item = await listing.next();
      if (!item.done) result.listed += 1;
      return item;
    };
    let listed = await next();
    // Queued once the walk is done: the walk compares one consistent set of rows.
    const reopen = new Map<number, string>();
    for (const recorded of deps.ledger.archivedObjectsInScope(target.path, target.bucket, keyPrefix, sinceMs)) {
      const { key } = recorded;
      // `a.zip` beside the subtree `a/` has its members under `a/` too: they are not the subtree's.
      if (relDir !== '' && !recorded.relPath.startsWith(`${relDir}/`)) continue;
      while (!listed.done && byteOrder(listed.value.key, key) < 0) listed = await next();
      const object = !listed.done && listed.value.key === key ? listed.value : undefined;
      const reason = await check(target, recorded, object, deps, result);
      if (reason === undefined) {
        result.verified += 1;
        continue;
      }
      result.findings.push({ target: target.path, relPath: recorded.relPath, key, reason });
      deps.log.warn(
        { target: target.path, path: recorded.relPath, member: recorded.member ?? undefined, key, reason, dryRun: deps.dryRun },
        `archived object ${reason}: ${deps.dryRun ? 'would upload again' : 'uploading again'}`,
      );
      if (!deps.dryRun && !reopen.has(recorded.fileId)) {
        reopen.set(recorded.fileId, `verify: the object at ${target.bucket}/${key} is ${reason}`);
      }
    }
    for (const [id, reason] of reopen) deps.ledger.reopen(id, reason);
  }
  return result;
}

/** S3 lists keys in UTF-8 byte order, as SQLite sorts keys; JS compares UTF-16 code units. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function check(
  target: TargetConfig,
  recorded: ArchivedKey,
  object: ListedObject | undefined,
  deps: VerifyDeps,
  result: VerifyResult,
): Promise<VerifyFinding['reason'] | undefined> {
  if (!object) return 'missing';
  if (recorded.etag && recorded.etag === object.etag && object.sizeBytes === recorded.sizeBytes) return undefined;
  result.heads += 1;
  const head = await deps.store.head(target.bucket, recorded.key);
  if (!head) return 'missing';
  return head.metadata.sha256 === recorded.sha256 && head.sizeBytes === recorded.sizeBytes ? undefined : 'other content';
}
