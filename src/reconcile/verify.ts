import type { Logger } from 'pino';
import type { TargetConfig, TargetSubtree } from '../config.js';
import type { ArchivedFile, Ledger } from '../ledger/ledger.js';
import { objectKeyFor } from '../pipeline/key-layout.js';
import type { ListedObject, ObjectStore } from '../s3/object-store.js';

/** One archived file whose object S3 no longer holds as archived. */
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
  readonly ledger: Pick<Ledger, 'archivedInScope' | 'lastObjectAt' | 'reopen'>;
  readonly store: Pick<ObjectStore, 'list' | 'head'>;
  readonly log: Logger;
  readonly dryRun: boolean;
}

/**
 * `reconcile --verify`: checks every archived file in scope against S3 by listing (ListObjectsV2: key, size
 * and ETag, 1000 per request), merge-joined with the ledger's rows in key order, so memory does not grow
 * with the bucket. Only what the listing cannot settle is HEADed (an ETag other than the one recorded: a
 * multipart ETag computed elsewhere, or a newer version at the key), and a HEAD whose `sha256` metadata is
 * ours settles it too. Missing objects and other content are queued again (reopened as a new generation,
 * which the write gate restores), never in a dry run.
 * @throws StoreError when S3 cannot be listed.
 */
export async function verifyArchived(subtrees: readonly TargetSubtree[], sinceMs: number, deps: VerifyDeps): Promise<VerifyResult> {
  const result: VerifyResult = { verified: 0, findings: [], listed: 0, heads: 0 };
  for (const { target, relDir } of subtrees) {
    // A file's key keeps its directory (only its name may change, d.csv.gz -> d.csv): a subtree is one key prefix.
    const listing = deps.store.list(target.bucket, relDir === '' ? target.prefix : `${target.prefix}${relDir}/`)[Symbol.asyncIterator]();
    const next = async (): Promise<IteratorResult<ListedObject>> => {
      const item = await listing.next();
      if (!item.done) result.listed += 1;
      return item;
    };
    let listed = await next();
    // Queued once the walk is done: the walk compares one consistent set of rows.
    const reopen: { id: number; reason: string }[] = [];
    for (const file of deps.ledger.archivedInScope(target.path, relDir, sinceMs)) {
      const key = objectKeyFor(target.prefix, file.relPath);
      while (!listed.done && byteOrder(listed.value.key, key) < 0) listed = await next();
      const object = !listed.done && listed.value.key === key ? listed.value : undefined;
      const reason = await check(target, key, file, object, deps, result);
      if (reason === undefined) {
        result.verified += 1;
        continue;
      }
      result.findings.push({ target: target.path, relPath: file.relPath, key, reason });
      deps.log.warn({ target: target.path, path: file.relPath, key, reason, dryRun: deps.dryRun }, `archived object ${reason}: ${deps.dryRun ? 'would upload again' : 'uploading again'}`);
      if (!deps.dryRun) reopen.push({ id: file.id, reason: `verify: the object at ${target.bucket}/${key} is ${reason}` });
    }
    for (const { id, reason } of reopen) deps.ledger.reopen(id, reason);
  }
  return result;
}

/** S3 lists keys in UTF-8 byte order, as SQLite sorts rel_path; JS compares UTF-16 code units. */
function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

async function check(
  target: TargetConfig,
  key: string,
  file: ArchivedFile,
  object: ListedObject | undefined,
  deps: VerifyDeps,
  result: VerifyResult,
): Promise<VerifyFinding['reason'] | undefined> {
  if (!object) return 'missing';
  const recorded = deps.ledger.lastObjectAt(target.bucket, key);
  if (recorded?.etag && recorded.etag === object.etag && recorded.sha256 === file.sha256 && object.sizeBytes === file.sizeBytes) return undefined;
  result.heads += 1;
  const head = await deps.store.head(target.bucket, key);
  if (!head) return 'missing';
  return head.metadata.sha256 === file.sha256 && head.sizeBytes === file.sizeBytes ? undefined : 'other content';
}
