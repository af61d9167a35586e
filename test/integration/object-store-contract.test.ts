// One contract, two stores: every behaviour the pipeline relies on is checked against S3Store on a real
// moto_server and against MemoryStore, so unit tests built on MemoryStore stand for the real thing.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { GetObjectTaggingCommand, ListMultipartUploadsCommand, ListObjectVersionsCommand, PutObjectCommand } from '@aws-sdk/client-s3';

import { StoreError } from '../../src/errors.js';
import { MemoryStore } from '../../src/s3/memory-store.js';
import { PROBE_KEY_SEGMENT } from '../../src/s3/object-store.js';
import { createS3Client, S3Store } from '../../src/s3/s3-store.js';
import { getObject, listVersions, startMoto, type MotoServer } from '../support/moto.js';
import {
  assertPreconditionFailed,
  assertRejectsWithStoreError,
  BUCKET,
  bufferPut,
  chunksOf,
  describeObjectStoreContract,
  onlyIf,
  streamPut,
  type SubjectFactory,
} from '../support/object-store-contract.js';

const memory: SubjectFactory = {
  name: 'MemoryStore',
  verifiesChecksum: true,
  checksIfMatchOnCompletion: true,
  open() {
    const store = new MemoryStore({ buckets: [BUCKET] });
    return Promise.resolve({
      store,
      versionIds: (key) => Promise.resolve(store.versions(BUCKET, key).map((v) => v.versionId)),
      latestBytes: (key) => Promise.resolve(store.versions(BUCKET, key).at(-1)?.body ?? Buffer.alloc(0)),
      openUploads: () => Promise.resolve(0),
      tags: (key) => Promise.resolve({ ...(store.versions(BUCKET, key).at(-1)?.options?.tags ?? {}) }),
      close: () => Promise.resolve(),
    });
  },
};

// moto echoes x-amz-checksum-sha256 without checking it against the body, so "a wrong checksum is rejected"
// cannot be asserted against it; real S3 rejects with BadDigest, which MemoryStore imitates and is tested for.
const moto: SubjectFactory = {
  name: 'S3Store on moto',
  verifiesChecksum: false,
  // moto 5.2.1 checks If-None-Match on CompleteMultipartUpload but not If-Match: it completes the upload
  // whatever ETag is given. Real S3 checks both, and MemoryStore follows S3, so that case runs there only.
  checksIfMatchOnCompletion: false,
  async open() {
    const server: MotoServer = await startMoto();
    await server.createBucket(BUCKET);
    const client = createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 4, requestTimeoutMs: 60_000 });
    return {
      store: new S3Store(client),
      versionIds: async (key) => (await listVersions(server.client, BUCKET, key)).filter((v) => v.key === key).map((v) => v.versionId),
      latestBytes: async (key) => (await getObject(server.client, BUCKET, key)).body,
      openUploads: async () => (await server.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads?.length ?? 0,
      async tags(key) {
        const { TagSet = [] } = await server.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key: key }));
        return Object.fromEntries(TagSet.map((t): [string, string] => [t.Key ?? '', t.Value ?? '']));
      },
      async close() {
        client.destroy();
        await server.stop();
      },
    };
  },
};


for (const factory of [memory, moto]) describeObjectStoreContract(factory);


void describe('MemoryStore test hooks', () => {
  void test('failNext makes exactly the next call of that operation fail, in order', async () => {
    const store = new MemoryStore();
    const injected = new StoreError('head', 'x', false, { cause: new Error('AccessDenied') });
    store.failNext('head', injected);
    store.failNext('put');
    await assert.rejects(store.head(BUCKET, 'k'), (error) => error === injected);
    assert.equal(await store.head(BUCKET, 'k'), undefined);
    await assertRejectsWithStoreError(store.put(bufferPut('k', Buffer.from('a'))), { retryable: true });
    assert.equal(store.versions(BUCKET, 'k').length, 0);
    await store.put(bufferPut('k', Buffer.from('a')));
    assert.equal(store.versions(BUCKET, 'k').length, 1);
    assert.deepEqual(store.calls.map((c) => c.operation), ['head', 'head', 'put', 'put']);
  });

  void test('a put fault after storing keeps the version: the answer was lost, not the object', async () => {
    const store = new MemoryStore();
    store.failNext('put', undefined, { afterStoring: true });
    await assertRejectsWithStoreError(store.put(bufferPut('lost/answer.csv', Buffer.from('kept\n'))));
    const [version] = store.versions(BUCKET, 'lost/answer.csv');
    assert.equal(version?.body.toString(), 'kept\n');
    assert.equal((await store.head(BUCKET, 'lost/answer.csv'))?.versionId, version?.versionId);
  });

  void test('a faulted stream put is destroyed, so its file descriptor is released', async () => {
    const store = new MemoryStore();
    store.failNext('put');
    const body = Readable.from(chunksOf(Buffer.alloc(10)));
    await assertRejectsWithStoreError(store.put(streamPut('s', body, Buffer.alloc(10))));
    assert.equal(body.destroyed, true);
  });

  void test('a buffer shorter than its declared size is rejected', async () => {
    const store = new MemoryStore();
    const request = { ...bufferPut('short.csv', Buffer.from('abc')), sizeBytes: 4 };
    await assertRejectsWithStoreError(store.put(request), { retryable: false });
  });

  void test('metadata that cannot travel in an HTTP header, or over S3s 2 KB, is rejected', async () => {
    const store = new MemoryStore();
    await assertRejectsWithStoreError(store.put(bufferPut('m1', Buffer.from('a'), { source: 'März.csv' })), { retryable: false });
    await assertRejectsWithStoreError(store.put(bufferPut('m2', Buffer.from('a'), { source: 'x'.repeat(2048) })), { retryable: false });
    assert.deepEqual(store.keys(BUCKET), []);
  });

  void test('onPut runs while the upload is in flight, before anything is stored', async () => {
    const store = new MemoryStore();
    let seen = -1;
    store.onPut = (request) => {
      seen = store.versions(request.bucket, request.key).length;
    };
    await store.put(bufferPut('hooked.csv', Buffer.from('h')));
    assert.equal(seen, 0);
    assert.equal(store.versions(BUCKET, 'hooked.csv').length, 1);
  });
});

void describe('S3Store on moto: probing conditional writes', () => {
  let server: MotoServer;
  let client: ReturnType<typeof createS3Client>;
  before(async () => {
    server = await startMoto();
    await server.createBucket(BUCKET);
    // The SDK's own warnings go here, not to the test's output.
    client = createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 4, requestTimeoutMs: 60_000, warn: () => undefined });
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  void test('probeConditionalWrites answers honoured and leaves no object, version or delete marker', async () => {
    assert.equal(await new S3Store(client).probeConditionalWrites(BUCKET, 'archive/'), 'honoured');
    const listed = await server.client.send(new ListObjectVersionsCommand({ Bucket: BUCKET }));
    assert.deepEqual(listed.Versions ?? [], []);
    assert.deepEqual(listed.DeleteMarkers ?? [], []);
    assert.deepEqual(await listVersions(server.client, BUCKET, `archive/${PROBE_KEY_SEGMENT}`), []);
  });

  // No library prints outside pino: the SDK's own warnings go to the `warn` given, never to the console.
  void test('an SDK warning (a stream of unknown length) reaches the warn sink, not the console', async () => {
    const warned: string[] = [];
    const warning = createS3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 1, requestTimeoutMs: 60_000, warn: (detail) => void warned.push(detail) });
    const printed: unknown[] = [];
    const consoleWarn = console.warn;
    console.warn = (...args: unknown[]) => void printed.push(args);
    try {
      await warning.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'warned/stream.csv', Body: Readable.from([Buffer.from('a,b\n')]) }));
    } finally {
      console.warn = consoleWarn;
      warning.destroy();
    }
    assert.deepEqual(printed, []);
    assert.ok(warned.some((line) => /unknown length/i.test(line)), `warnings: ${JSON.stringify(warned)}`);
  });

  // S3 answers a missing bucket with 404 too: that says nothing about conditional headers, so no mode is
  // decided (and cached) from it; the next write asks again, once the bucket exists.
  void test('a missing bucket leaves the question open: a retryable StoreError, not "honoured"', async () => {
    await assertRejectsWithStoreError(new S3Store(client).probeConditionalWrites('no-such-bucket-here', ''), { retryable: true });
  });
});

void describe('MemoryStore without conditional writes', () => {
  // Documented behaviour of an endpoint that ignores If-None-Match / If-Match: it writes regardless. This is
  // what the gate's head-first mode exists for, and what its unit tests stand on.
  void test('conditionalWrites: false ignores If-None-Match and If-Match: every put writes a version', async () => {
    const store = new MemoryStore({ conditionalWrites: false });
    const key = 'ignored/conditions.csv';
    const first = await store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut(key, Buffer.from('one\n'))));
    await store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut(key, Buffer.from('two\n'))));
    await store.put(onlyIf({ ifMatch: '"0123456789abcdef0123456789abcdef"' }, bufferPut(key, Buffer.from('three\n'))));
    await store.put(onlyIf({ ifMatch: '"stale"' }, bufferPut('ignored/missing.csv', Buffer.from('four\n'))));
    assert.equal(first.etag, store.versions(BUCKET, key)[0]?.etag);
    assert.deepEqual(store.versions(BUCKET, key).map((v) => v.body.toString()), ['one\n', 'two\n', 'three\n']);
    assert.equal(store.versions(BUCKET, 'ignored/missing.csv').length, 1);
  });

  void test('by default MemoryStore checks conditions, as S3 does', async () => {
    const store = new MemoryStore();
    await store.put(bufferPut('checked.csv', Buffer.from('one\n')));
    await assertPreconditionFailed(store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut('checked.csv', Buffer.from('two\n')))));
    assert.equal(store.versions(BUCKET, 'checked.csv').length, 1);
  });
});
