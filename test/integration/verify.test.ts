// reconcile --verify's check (reconcile/verify.ts): a real ledger, MemoryStore (held to S3's checks), the
// listing merge-joined with the ledger in key order, HEADs only for what the listing cannot settle.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test, type TestContext } from 'node:test';
import type { Ledger } from '../../src/ledger/ledger.js';
import { verifyArchived } from '../../src/reconcile/verify.js';
import { MemoryStore } from '../../src/s3/memory-store.js';
import { ManualClock, openTestLedger, silentLog, targetConfig, tempDir } from '../support/fixtures.js';

const TARGET = targetConfig({ path: '/srv/in', bucket: 'archive', prefix: 'p/' });
const WHOLE = [{ target: TARGET, relDir: '' }];
const OWNER = 'pid:1:1:reconcile';

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Archives `relPath` with `content`: ledger row and object, as the pipeline leaves them. */
async function archived(
  ledger: Ledger,
  store: MemoryStore,
  relPath: string,
  content: string,
  mtimeMs = 1000,
  recordedEtag?: string,
): Promise<void> {
  ledger.observe(TARGET.path, relPath, { sizeBytes: Buffer.byteLength(content), mtimeMs, inode: relPath.length, ctimeNs: 1n });
  const claim = ledger.claimNext(OWNER);
  assert.ok(claim);
  const body = Buffer.from(content);
  const put = await store.put({
    bucket: TARGET.bucket,
    key: `p/${relPath}`,
    body,
    sizeBytes: body.length,
    sha256: sha(content),
    metadata: { sha256: sha(content) },
    partSizeBytes: 5 * 1024 * 1024,
  });
  ledger.markArchived(claim, { sizeBytes: Buffer.byteLength(content), mtimeMs, inode: relPath.length, ctimeNs: 1n }, sha(content), {
    kind: 'uploaded',
    objects: [
      {
        bucket: TARGET.bucket,
        key: `p/${relPath}`,
        sha256: sha(content),
        sizeBytes: body.length,
        ...put,
        ...(recordedEtag ? { etag: recordedEtag } : {}),
        foundByHead: false,
      },
    ],
  });
}

/** The slice of the ledger verify uses, bound to it. */
function bind(ledger: Ledger): Pick<Ledger, 'archivedObjectsInScope' | 'reopen'> {
  return {
    archivedObjectsInScope: (target, bucket, prefix, sinceMs) => ledger.archivedObjectsInScope(target, bucket, prefix, sinceMs),
    reopen: (id, reason) => ledger.reopen(id, reason),
  };
}

function setup(t: TestContext) {
  return { ledger: openTestLedger(t, tempDir(t, 'sftppush-verify'), new ManualClock().now), store: new MemoryStore() };
}

void describe('verifyArchived', () => {
  void test('objects S3 holds as recorded are verified from the listing alone: no HEAD', async (t) => {
    const { ledger, store } = setup(t);
    for (const name of ['b.csv', 'a.csv', 'sub/c.csv', 'été.csv']) await archived(ledger, store, name, `content of ${name}`);
    const result = await verifyArchived(WHOLE, 0, { ledger, store, log: silentLog, dryRun: false });
    assert.deepEqual({ verified: result.verified, findings: result.findings, heads: result.heads }, { verified: 4, findings: [], heads: 0 });
    assert.equal(store.calls.filter((c) => c.operation === 'head').length, 0);
  });

  void test('a deleted object and a foreign newer version are found, reported and reopened for upload', async (t) => {
    const { ledger, store } = setup(t);
    await archived(ledger, store, 'gone.csv', 'deleted behind our back');
    await archived(ledger, store, 'foreign.csv', 'ours');
    await archived(ledger, store, 'fine.csv', 'untouched');
    store.deleteLatest(TARGET.bucket, 'p/gone.csv');
    const other = Buffer.from('someone else wrote this');
    await store.put({ bucket: TARGET.bucket, key: 'p/foreign.csv', body: other, sizeBytes: other.length, sha256: sha('someone else wrote this'), metadata: {}, partSizeBytes: 5 * 1024 * 1024 });

    const result = await verifyArchived(WHOLE, 0, { ledger, store, log: silentLog, dryRun: false });
    assert.equal(result.verified, 1);
    assert.deepEqual(
      result.findings.map((f) => [f.relPath, f.reason]),
      [['foreign.csv', 'other content'], ['gone.csv', 'missing']],
    );
    assert.equal(result.heads, 1, 'only the key whose ETag differs is HEADed');
    for (const name of ['gone.csv', 'foreign.csv']) {
      const generations = ledger.reader.story(name).generations;
      assert.deepEqual(generations.map((g) => g.state), ['archived', 'pending'], `${name} is queued again`);
      assert.match(ledger.reader.story(name).history.at(-1)?.detail ?? '', /^verify: /);
    }
  });

  void test('a dry run reports the same and changes nothing', async (t) => {
    const { ledger, store } = setup(t);
    await archived(ledger, store, 'gone.csv', 'deleted behind our back');
    store.deleteLatest(TARGET.bucket, 'p/gone.csv');
    const result = await verifyArchived(WHOLE, 0, { ledger, store, log: silentLog, dryRun: true });
    assert.deepEqual(result.findings.map((f) => f.reason), ['missing']);
    assert.deepEqual(ledger.reader.story('gone.csv').generations.map((g) => g.state), ['archived']);
  });

  void test('an ETag other than the recorded one (a multipart ETag, a copy) is settled by a HEAD of our sha256', async (t) => {
    const { ledger, store } = setup(t);
    await archived(ledger, store, 'same.csv', 'same bytes', 1000, '"recorded-by-a-multipart-completion-2"');
    const result = await verifyArchived(WHOLE, 0, { ledger, store, log: silentLog, dryRun: false });
    assert.deepEqual({ verified: result.verified, findings: result.findings, heads: result.heads }, { verified: 1, findings: [], heads: 1 });
  });

  // The one-shot reconcile's worker pool polls the same SQLite connection while verify waits on S3: the
  // ledger must never hold a statement open across those awaits (SQLite: "connection is busy").
  void test('the ledger stays usable by other callers while verify waits on S3, across pages of rows', async (t) => {
    const { ledger, store } = setup(t);
    for (let i = 0; i < 25; i += 1) await archived(ledger, store, `f${String(i).padStart(2, '0')}.csv`, `content ${i}`);
    const polling: Pick<MemoryStore, 'list' | 'head'> = {
      head: (bucket, key) => store.head(bucket, key),
      async *list(bucket, prefix) {
        for await (const object of store.list(bucket, prefix)) {
          await new Promise((resolve) => setImmediate(resolve));
          assert.equal(ledger.hasClaimableWork(), false); // what the pool's idle poll runs
          yield object;
        }
      },
    };
    const pagedLedger = {
      ...bind(ledger),
      archivedObjectsInScope: (target: string, bucket: string, prefix: string, sinceMs: number) =>
        ledger.archivedObjectsInScope(target, bucket, prefix, sinceMs, 4),
    };
    const result = await verifyArchived(WHOLE, 0, { ledger: pagedLedger, store: polling, log: silentLog, dryRun: false });
    assert.equal(result.verified, 25);
  });

  void test('a directory in the target (--target DIR) checks only the files under it, listing only its keys', async (t) => {
    const { ledger, store } = setup(t);
    for (const relPath of ['a/in.csv', 'a/deeper/in2.csv', 'a0.csv', 'ab/out.csv', 'b/out.csv', 'top.csv']) await archived(ledger, store, relPath, relPath, 1000);
    store.deleteLatest(TARGET.bucket, 'p/a/deeper/in2.csv');
    store.deleteLatest(TARGET.bucket, 'p/ab/out.csv');
    const result = await verifyArchived([{ target: TARGET, relDir: 'a' }], 0, { ledger, store, log: silentLog, dryRun: true });
    assert.equal(result.verified, 1, 'a/in.csv');
    assert.deepEqual(result.findings.map((f) => f.relPath), ['a/deeper/in2.csv'], 'ab/ is another directory');
    assert.equal(result.listed, 1, 'only keys under p/a/ are listed');
  });

  void test('only files with mtime at or after --since are checked', async (t) => {
    const { ledger, store } = setup(t);
    await archived(ledger, store, 'old.csv', 'old', 1000);
    await archived(ledger, store, 'new.csv', 'new', 5000);
    store.deleteLatest(TARGET.bucket, 'p/old.csv');
    const result = await verifyArchived(WHOLE, 5000, { ledger, store, log: silentLog, dryRun: false });
    assert.equal(result.verified, 1);
    assert.deepEqual(result.findings, [], 'the old file is out of scope');
  });
});
