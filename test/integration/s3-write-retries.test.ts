// The SDK must not retry a write behind the ledger's back (DESIGN.md, "Exactly once, precisely"): a PutObject or a
// CompleteMultipartUpload whose answer is lost may have landed, and only the write gate may decide to send it again.
// Parts and reads keep the SDK's retries: a part overwrites itself, a HEAD changes nothing. The store is built as
// the service builds it, pointed at a fault proxy in front of moto, on a versioned bucket: versions are counted.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, test } from 'node:test';

import type { S3Client } from '@aws-sdk/client-s3';
import { StoreError } from '../../src/errors.js';
import { MAX_OBJECT_BYTES } from '../../src/s3/multipart.js';
import type { PutObjectRequest } from '../../src/s3/object-store.js';
import { createS3Client, S3Store } from '../../src/s3/s3-store.js';
import { matches, objectKeyOf, startFaultProxy, target, type FaultProxy, type FaultTarget } from '../support/fault-proxy.js';
import { patternBytes } from '../support/fixtures.js';
import { getObject, listVersions, startMoto, type MotoServer } from '../support/moto.js';

const MIB = 1024 * 1024;
const BUCKET = 'write-retries';

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A whole buffer, sent as one PutObject with its SHA-256, as the pipeline sends small files. */
function bufferPut(key: string, body: Buffer): PutObjectRequest {
  const sha256 = sha256Hex(body);
  return { bucket: BUCKET, key, body, sizeBytes: body.length, sha256, metadata: { sha256 }, partSizeBytes: 8 * MIB };
}

/** A stream of `content` in 1 MiB chunks, sent as a multipart upload of 5 MiB parts, as the pipeline sends large files. */
function streamPut(key: string, content: Buffer): PutObjectRequest {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < content.length; offset += MIB) chunks.push(content.subarray(offset, offset + MIB));
  return { ...bufferPut(key, content), body: Readable.from(chunks), partSizeBytes: 5 * MIB };
}

/** How a put ended, in words a failed deepEqual shows next to the request and version counts. */
async function outcomeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (error) {
    if (error instanceof StoreError) return `StoreError retryable=${error.retryable}`;
    return `other error: ${String(error)}`;
  }
}

void describe('S3Store: the SDK retries reads and parts, never a write', () => {
  let moto: MotoServer;
  let proxy: FaultProxy;
  let client: S3Client;
  let store: S3Store;
  before(async () => {
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    proxy = await startFaultProxy(moto.endpoint);
    client = createS3Client({ endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 4, requestTimeoutMs: 60_000 });
    store = new S3Store(client);
  });
  afterEach(() => proxy.clear());
  after(async () => {
    client?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  async function versionCount(key: string): Promise<number> {
    return (await listVersions(moto.client, BUCKET, key)).filter((v) => v.key === key).length;
  }

  /** How many requests the proxy saw that `which` designates (including faulted ones). */
  function requestsSeen(which: FaultTarget): number {
    return proxy.requests.filter((r) => matches(which, r)).length;
  }

  for (const kind of ['lose-answer', 'status-after-commit'] as const) {
    void test(`a single PutObject whose answer is lost (${kind}) is sent once and rejects retryable: one version`, async () => {
      const key = `single/${kind}.csv`;
      proxy.inject({ ...target.putObject(key), kind });
      const outcome = await outcomeOf(store.put(bufferPut(key, Buffer.from(`id,amount\n1,42\n${kind}\n`))));
      assert.deepEqual(
        { outcome, putObjectRequests: requestsSeen(target.putObject(key)), versions: await versionCount(key) },
        { outcome: 'StoreError retryable=true', putObjectRequests: 1, versions: 1 },
      );
    });
  }

  void test('a multipart upload whose CompleteMultipartUpload answer is lost completes once and rejects retryable', async () => {
    const key = 'multipart/lost-complete.bin';
    proxy.inject({ ...target.completeMultipartUpload(key), kind: 'lose-answer' });
    const outcome = await outcomeOf(store.put(streamPut(key, patternBytes(12 * MIB, 11))));
    const seen = { outcome, completeRequests: requestsSeen(target.completeMultipartUpload(key)), versions: await versionCount(key) };
    assert.equal(seen.completeRequests, 1, JSON.stringify(seen));
    assert.ok(seen.versions <= 1, JSON.stringify(seen));
    assert.equal(seen.outcome, 'StoreError retryable=true', JSON.stringify(seen));
  });

  void test('a 503 SlowDown on an UploadPart is retried by the SDK, and the upload completes once', async () => {
    const key = 'multipart/slow-part.bin';
    const content = patternBytes(12 * MIB, 13);
    proxy.inject({ ...target.uploadPart(key, 2), kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' });
    const stored = await store.put(streamPut(key, content));
    const partTwo = proxy.requests.filter((r) => matches(target.uploadPart(key, 2), r));
    assert.deepEqual(partTwo.map((r) => r.faulted ?? 'forwarded'), ['status', 'forwarded']);
    assert.equal(requestsSeen(target.completeMultipartUpload(key)), 1);
    assert.equal(await versionCount(key), 1);
    assert.equal((await store.head(BUCKET, key))?.versionId, stored.versionId);
    assert.ok((await getObject(moto.client, BUCKET, key)).body.equals(content), 'stored bytes differ from those sent');
  });

  void test('an object larger than S3 stores (5 TiB) is refused before any request, and not as retryable', async () => {
    const key = 'too/large.bin';
    const request = { ...streamPut(key, patternBytes(MIB, 17)), sizeBytes: MAX_OBJECT_BYTES + 1 };
    assert.equal(await outcomeOf(store.put(request)), 'StoreError retryable=false');
    assert.equal(proxy.requests.filter((r) => objectKeyOf(r.path) === key).length, 0);
  });

  void test('sixteen requests in flight at once through one client: no MaxListenersExceededWarning (nothing printed outside pino)', async () => {
    const wide = createS3Client({ endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 16, requestTimeoutMs: 60_000 });
    const wideStore = new S3Store(wide);
    const warnings: string[] = [];
    const onWarning = (warning: Error): number => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    try {
      // Held answers keep all sixteen in flight together: HEADs (no caller signal) and buffer PUTs (each with its own).
      proxy.inject({ ...target.headObject(), kind: 'stall', ms: 1500, times: 16 });
      proxy.inject({ ...target.putObject(), kind: 'stall', ms: 1500, times: 16 });
      const started = performance.now();
      await Promise.all(Array.from({ length: 16 }, (_, i) => wideStore.head(BUCKET, `many/absent-${i}.csv`)));
      await Promise.all(Array.from({ length: 16 }, (_, i) => wideStore.put(bufferPut(`many/put-${i}.csv`, Buffer.from(`${i}\n`)))));
      const seconds = (performance.now() - started) / 1000;
      // Two rounds of sixteen held for 1.5 s: together ~3 s, one at a time 48 s.
      assert.ok(seconds < 20, `the requests did not overlap (${seconds.toFixed(1)} s)`);
      await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on a later tick
    } finally {
      process.off('warning', onWarning);
      wide.destroy();
    }
    assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
  });

  void test('a HEAD answered 503 once is retried by the SDK and succeeds', async () => {
    const key = 'head/slow.csv';
    const body = Buffer.from('head me\n');
    const stored = await store.put(bufferPut(key, body));
    proxy.inject({ ...target.headObject(key), kind: 'status', status: 503, code: 'SlowDown' });
    const head = await store.head(BUCKET, key);
    assert.equal(head?.versionId, stored.versionId);
    assert.equal(head?.sizeBytes, body.length);
    assert.equal(head?.metadata.sha256, sha256Hex(body));
    const heads = proxy.requests.filter((r) => matches(target.headObject(key), r));
    assert.deepEqual(heads.map((r) => r.faulted ?? 'forwarded'), ['status', 'forwarded']);
  });
});
