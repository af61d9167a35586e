// The ObjectStore contract: every behaviour the pipeline relies on, as one suite any store runs (MemoryStore,
// S3Store on moto_server, S3Store on the benchmark sink), so a fast fake can never drift from the real thing.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { SourceChangedError, StoreError } from '../../src/errors.js';
import { PreconditionFailedError, type ObjectStore, type PutObjectRequest, type WriteCondition } from '../../src/s3/object-store.js';

export const MIB = 1024 * 1024;
export const PART_SIZE = 5 * MIB;
export const BUCKET = 'contract';


/** A store under test plus a back door to what it really holds (not part of ObjectStore). */
export interface Subject {
  readonly store: ObjectStore;
  /** Version ids of one key, in any order. */
  versionIds(key: string): Promise<string[]>;
  /** The latest version's bytes. */
  latestBytes(key: string): Promise<Buffer>;
  /** Multipart uploads begun and neither completed nor aborted (parts S3 would keep billing for). */
  openUploads(): Promise<number>;
  /** The latest version's tags. */
  tags(key: string): Promise<Record<string, string>>;
}

export interface SubjectFactory {
  readonly name: string;
  /** True when the store itself checks x-amz-checksum-sha256 against the bytes. */
  readonly verifiesChecksum: boolean;
  /** True when the store checks If-Match on a multipart completion, as real S3 does. */
  readonly checksIfMatchOnCompletion: boolean;
  open(): Promise<Subject & { close(): Promise<void> }>;
}

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function base64Sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('base64');
}

/** A put of a whole buffer, as the pipeline sends small files: its true sha256 and size. */
export function bufferPut(key: string, body: Buffer, metadata: Record<string, string> = {}): PutObjectRequest {
  const sha256 = sha256Hex(body);
  return { bucket: BUCKET, key, body, sizeBytes: body.length, sha256, metadata: { sha256, ...metadata }, partSizeBytes: PART_SIZE };
}

/** A put of a stream, as the pipeline sends large files. */
export function streamPut(key: string, body: Readable, content: Buffer): PutObjectRequest {
  return { ...bufferPut(key, content), body };
}

/** The content in 1 MiB chunks, as a file read stream delivers it. */
export function chunksOf(content: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < content.length; offset += MIB) chunks.push(content.subarray(offset, offset + MIB));
  return chunks;
}

/** Yields `goodBytes` of content, then fails the way a source stream does (e.g. a verify-on-read mismatch). */
function failingStream(content: Buffer, goodBytes: number, error: Error): Readable {
  return Readable.from(
    (async function* () {
      yield* chunksOf(content.subarray(0, goodBytes));
      await Promise.resolve();
      throw error;
    })(),
  );
}

/** The same put, sent only if `condition` holds. */
export function onlyIf(condition: WriteCondition, request: PutObjectRequest): PutObjectRequest {
  return { ...request, condition };
}

/** Asserts the write was refused as a failed precondition: the gate's cue to HEAD, not a retryable failure. */
export async function assertPreconditionFailed(promise: Promise<unknown>): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof PreconditionFailedError, `expected a PreconditionFailedError, got ${String(error)}`);
    assert.equal(error.code, 'E_S3_PRECONDITION');
    assert.equal(error.retryable, false);
    return true;
  });
}

export async function assertRejectsWithStoreError(promise: Promise<unknown>, expected: { retryable?: boolean } = {}): Promise<StoreError> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof StoreError, `expected a StoreError, got ${String(caught)}`);
  if (expected.retryable !== undefined) assert.equal(caught.retryable, expected.retryable, caught.message);
  return caught;
}

const large = randomBytes(11 * MIB + 12_345);

/** Registers the contract's tests for one store (call at a test file's top level). */
export function describeObjectStoreContract(factory: SubjectFactory): void {
  void describe(`ObjectStore contract: ${factory.name}`, () => {
    let subject: Subject & { close(): Promise<void> };
    before(async () => {
      subject = await factory.open();
    });
    after(async () => {
      await subject?.close();
    });

    void test('a buffer put is answered with its checksum, and head returns its size, metadata and version', async () => {
      const body = Buffer.from('id,amount\n1,42\n');
      const put = await subject.store.put(bufferPut('buffer/one.csv', body));
      assert.ok(put.versionId, 'versioned bucket: put returns a version id');
      assert.equal(put.checksumSha256, base64Sha256(body));
      assert.match(put.etag ?? '', /^"[0-9a-f]{32}"$/);

      const head = await subject.store.head(BUCKET, 'buffer/one.csv');
      assert.ok(head);
      assert.equal(head.sizeBytes, body.length);
      assert.equal(head.metadata.sha256, sha256Hex(body));
      assert.equal(head.versionId, put.versionId);
      assert.equal(head.etag, put.etag);
      assert.deepEqual(await subject.latestBytes('buffer/one.csv'), body);
    });

    void test('two puts to one key make two distinct versions, and head answers the latest', async () => {
      const first = await subject.store.put(bufferPut('twice/a.csv', Buffer.from('first\n')));
      const second = await subject.store.put(bufferPut('twice/a.csv', Buffer.from('second, longer\n')));
      assert.notEqual(first.versionId, second.versionId);
      assert.deepEqual((await subject.versionIds('twice/a.csv')).sort(), [first.versionId, second.versionId].sort());
      const head = await subject.store.head(BUCKET, 'twice/a.csv');
      assert.equal(head?.versionId, second.versionId);
      assert.equal(head?.sizeBytes, 'second, longer\n'.length);
    });

    void test('list yields every key under a prefix once, in byte order, with its latest version\'s size and ETag', async () => {
      const names = ['list/b.csv', 'list/a.csv', 'list/sub/c.csv', 'list/\u00e9t\u00e9.csv', 'listing-not-under-prefix.csv'];
      for (const name of names) await subject.store.put(bufferPut(name, Buffer.from(`v1 ${name}\n`)));
      const latest = await subject.store.put(bufferPut('list/a.csv', Buffer.from('v2, the latest\n')));
      const listed = [];
      for await (const object of subject.store.list(BUCKET, 'list/')) listed.push(object);
      assert.deepEqual(listed.map((o) => o.key), ['list/a.csv', 'list/b.csv', 'list/sub/c.csv', 'list/\u00e9t\u00e9.csv']);
      assert.deepEqual(listed[0], { key: 'list/a.csv', sizeBytes: 'v2, the latest\n'.length, etag: latest.etag });
    });

    void test('content type, server-side encryption and tags are the same on a single PUT and a multipart upload', async () => {
      const options = { sse: 'AES256', tags: { team: 'data ops', 'cost-centre': 'a/b=c+d@e' } } as const;
      const small = randomBytes(1000);
      const large = randomBytes(PART_SIZE + MIB);
      await subject.store.put({ ...bufferPut('opts/small.csv', small), options, contentType: 'text/csv' });
      await subject.store.put({ ...streamPut('opts/large.csv', Readable.from(chunksOf(large)), large), options, contentType: 'text/csv' });
      for (const key of ['opts/small.csv', 'opts/large.csv']) {
        const head = await subject.store.head(BUCKET, key);
        assert.equal(head?.contentType, 'text/csv', key);
        assert.equal(head?.sse, 'AES256', key);
        assert.deepEqual(await subject.tags(key), { team: 'data ops', 'cost-centre': 'a/b=c+d@e' }, key);
      }
    });

    void test('checkAccess: a usable bucket is fine, a missing one is named', async () => {
      assert.equal(await subject.store.checkAccess(BUCKET, 'some/prefix/'), undefined);
      assert.match((await subject.store.checkAccess('no-such-bucket-here', '')) ?? '', /bucket no-such-bucket-here does not exist/);
    });

    void test('deleteVersion removes that version only: the one before is the latest again; twice is no error', async () => {
      const first = await subject.store.put(bufferPut('withdraw/x.csv', Buffer.from('first')));
      const second = await subject.store.put(bufferPut('withdraw/x.csv', Buffer.from('second')));
      assert.ok(second.versionId);
      await subject.store.deleteVersion(BUCKET, 'withdraw/x.csv', second.versionId);
      await subject.store.deleteVersion(BUCKET, 'withdraw/x.csv', second.versionId);
      assert.deepEqual(await subject.versionIds('withdraw/x.csv'), [first.versionId]);
      assert.deepEqual(await subject.latestBytes('withdraw/x.csv'), Buffer.from('first'));
    });

    void test('head of a key that was never written is undefined, not an error', async () => {
      assert.equal(await subject.store.head(BUCKET, 'never/written.csv'), undefined);
    });

    void test('a stream larger than a part is stored as exactly those bytes', async () => {
      const put = await subject.store.put(streamPut('large/eleven.bin', Readable.from(chunksOf(large)), large));
      assert.ok(put.versionId);
      // The pipeline's proof that S3 checked the parts (real S3 answers `…-N`; MemoryStore the whole object's).
      assert.ok(put.checksumSha256, 'a multipart put answers with a checksum');
      const head = await subject.store.head(BUCKET, 'large/eleven.bin');
      assert.equal(head?.sizeBytes, large.length);
      assert.equal(head?.metadata.sha256, sha256Hex(large));
      assert.equal(head?.versionId, put.versionId);
      const stored = await subject.latestBytes('large/eleven.bin');
      assert.equal(stored.length, large.length);
      assert.ok(stored.equals(large), 'stored bytes differ from the stream sent');
      assert.deepEqual(await subject.versionIds('large/eleven.bin'), [put.versionId]);
    });

    void test('a stream smaller than a part is stored as exactly those bytes', async () => {
      const small = Buffer.from('just a few bytes, streamed\n');
      await subject.store.put(streamPut('small/streamed.txt', Readable.from([small]), small));
      assert.equal((await subject.store.head(BUCKET, 'small/streamed.txt'))?.sizeBytes, small.length);
      assert.deepEqual(await subject.latestBytes('small/streamed.txt'), small);
    });

    void test('a stream that fails midway with an I/O error rejects with a retryable StoreError keeping the cause, and adds no version', async () => {
      const key = 'large/torn.bin';
      const earlier = await subject.store.put(bufferPut(key, Buffer.from('the earlier complete version\n')));
      const cause = Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
      const error = await assertRejectsWithStoreError(subject.store.put(streamPut(key, failingStream(large, 6 * MIB, cause), large)), {
        retryable: true,
      });
      assert.equal(error.cause, cause, `cause lost: ${error.message}`);
      assert.deepEqual(await subject.versionIds(key), [earlier.versionId]);
      assert.equal((await subject.store.head(BUCKET, key))?.versionId, earlier.versionId);
    });

    void test('a stream that fails with our own SourceChangedError rejects with that very error, not a StoreError', async () => {
      // The pipeline requeues a changed source (pending) but retries an S3 failure: the store must not blur them.
      const key = 'large/changed.bin';
      const cause = new SourceChangedError(key, 'content differs between hash and upload');
      await assert.rejects(subject.store.put(streamPut(key, failingStream(large, 6 * MIB, cause), large)), (error) => error === cause);
      assert.deepEqual(await subject.versionIds(key), []);
    });

    void test('a stream that fails after its last byte (a verify-on-read hash mismatch) adds no version', async () => {
      // archive-file's verifying hash fails in flush, after every byte went by: the upload must still not complete.
      // 10 MiB is exactly two parts, so the last part is full before the stream reports its error.
      const key = 'large/late-failure.bin';
      const content = large.subarray(0, 2 * PART_SIZE);
      const cause = new SourceChangedError(key, 'content differs between hash and upload');
      await assert.rejects(subject.store.put(streamPut(key, failingStream(content, content.length, cause), content)), (error) => error === cause);
      assert.deepEqual(await subject.versionIds(key), []);
      assert.equal(await subject.store.head(BUCKET, key), undefined);
    });

    void test('a key with spaces and non-ASCII characters round-trips', async () => {
      const key = 'Überweisungen 2024/März Bericht – 日本.csv';
      const body = Buffer.from('ä,ö,ü\n');
      const put = await subject.store.put(bufferPut(key, body));
      const head = await subject.store.head(BUCKET, key);
      assert.equal(head?.versionId, put.versionId);
      assert.equal(head?.sizeBytes, body.length);
      assert.deepEqual(await subject.latestBytes(key), body);
    });

    void test('metadata is returned exactly as given', async () => {
      const metadata = {
        source: encodeURI('in/März bericht.csv'),
        'source-sha256': 'ab'.repeat(32),
        'source-mtime': '2024-03-01T12:34:56.789Z',
      };
      const body = Buffer.from('meta\n');
      await subject.store.put(bufferPut('meta/m.csv', body, metadata));
      const head = await subject.store.head(BUCKET, 'meta/m.csv');
      assert.deepEqual(head?.metadata, { sha256: sha256Hex(body), ...metadata });
    });

    void test('a put to a bucket that does not exist rejects with a StoreError that is not retryable', async () => {
      const request = { ...bufferPut('x.csv', Buffer.from('x\n')), bucket: 'no-such-bucket' };
      await assertRejectsWithStoreError(subject.store.put(request), { retryable: false });
    });

    void test('If-None-Match * on a key with no object writes it', async () => {
      const key = 'cond/new.csv';
      const put = await subject.store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut(key, Buffer.from('first\n'))));
      assert.ok(put.versionId);
      assert.deepEqual(await subject.versionIds(key), [put.versionId]);
    });

    void test('If-None-Match * on a key that holds an object is refused and writes no version', async () => {
      const key = 'cond/existing.csv';
      const earlier = await subject.store.put(bufferPut(key, Buffer.from('earlier\n')));
      // The same content as a retry would send, and other content: neither may land.
      await assertPreconditionFailed(subject.store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut(key, Buffer.from('earlier\n')))));
      await assertPreconditionFailed(subject.store.put(onlyIf({ ifNoneMatch: '*' }, bufferPut(key, Buffer.from('other\n')))));
      assert.deepEqual(await subject.versionIds(key), [earlier.versionId]);
      assert.equal((await subject.store.head(BUCKET, key))?.versionId, earlier.versionId);
    });

    void test('If-Match with the latest version\'s ETag writes a new version', async () => {
      const key = 'cond/match.csv';
      const first = await subject.store.put(bufferPut(key, Buffer.from('generation 1\n')));
      assert.ok(first.etag);
      const second = await subject.store.put(onlyIf({ ifMatch: first.etag }, bufferPut(key, Buffer.from('generation 2\n'))));
      assert.deepEqual((await subject.versionIds(key)).sort(), [first.versionId, second.versionId].sort());
      const head = await subject.store.head(BUCKET, key);
      assert.equal(head?.versionId, second.versionId);
      // The ETag a HEAD shows is the one a later If-Match must carry.
      assert.equal(head?.etag, second.etag);
    });

    void test('If-Match with a stale ETag is refused and writes nothing', async () => {
      const key = 'cond/stale.csv';
      const first = await subject.store.put(bufferPut(key, Buffer.from('generation 1\n')));
      const second = await subject.store.put(bufferPut(key, Buffer.from('generation 2, by someone else\n')));
      assert.ok(first.etag);
      assert.notEqual(first.etag, second.etag);
      await assertPreconditionFailed(subject.store.put(onlyIf({ ifMatch: first.etag }, bufferPut(key, Buffer.from('generation 3\n')))));
      assert.deepEqual((await subject.versionIds(key)).sort(), [first.versionId, second.versionId].sort());
      assert.equal((await subject.store.head(BUCKET, key))?.versionId, second.versionId);
    });

    void test('If-Match on a key with no object is refused (S3: 404 NoSuchKey) and writes nothing', async () => {
      const key = 'cond/missing.csv';
      const recorded = `"${createHash('md5').update('what the ledger recorded\n').digest('hex')}"`;
      await assertPreconditionFailed(subject.store.put(onlyIf({ ifMatch: recorded }, bufferPut(key, Buffer.from('again\n')))));
      assert.deepEqual(await subject.versionIds(key), []);
      assert.equal(await subject.store.head(BUCKET, key), undefined);
    });

    void test('If-None-Match * on a multipart completion: writes a new key, is refused on an existing one', async () => {
      const fresh = 'cond/multipart-new.bin';
      const put = await subject.store.put(onlyIf({ ifNoneMatch: '*' }, streamPut(fresh, Readable.from(chunksOf(large)), large)));
      assert.deepEqual(await subject.versionIds(fresh), [put.versionId]);
      assert.equal((await subject.store.head(BUCKET, fresh))?.sizeBytes, large.length);

      const taken = 'cond/multipart-taken.bin';
      const earlier = await subject.store.put(bufferPut(taken, Buffer.from('a small earlier version\n')));
      const request = onlyIf({ ifNoneMatch: '*' }, streamPut(taken, Readable.from(chunksOf(large)), large));
      await assertPreconditionFailed(subject.store.put(request));
      assert.deepEqual(await subject.versionIds(taken), [earlier.versionId]);
      // The refused completion's parts are aborted, not left for S3 to bill.
      assert.equal(await subject.openUploads(), 0);
    });

    void test('If-Match on a multipart completion: the current ETag writes, a stale one is refused', { skip: !factory.checksIfMatchOnCompletion && 'moto 5.2.1 ignores If-Match on CompleteMultipartUpload (real S3 checks it)' }, async () => {
      const key = 'cond/multipart-match.bin';
      const first = await subject.store.put(bufferPut(key, Buffer.from('generation 1\n')));
      assert.ok(first.etag);
      const second = await subject.store.put(onlyIf({ ifMatch: first.etag }, streamPut(key, Readable.from(chunksOf(large)), large)));
      assert.deepEqual((await subject.versionIds(key)).sort(), [first.versionId, second.versionId].sort());

      const other = Buffer.concat([large.subarray(1), large.subarray(0, 1)]);
      await assertPreconditionFailed(subject.store.put(onlyIf({ ifMatch: first.etag }, streamPut(key, Readable.from(chunksOf(other)), other))));
      assert.deepEqual((await subject.versionIds(key)).sort(), [first.versionId, second.versionId].sort());
      assert.equal((await subject.store.head(BUCKET, key))?.versionId, second.versionId);
      assert.equal(await subject.openUploads(), 0);
    });

    void test('a buffer whose bytes differ from its declared sha256 is rejected and stores nothing', { skip: !factory.verifiesChecksum && 'moto does not verify x-amz-checksum-sha256' }, async () => {
      const request = { ...bufferPut('bad/checksum.csv', Buffer.from('the real bytes\n')), sha256: sha256Hex(Buffer.from('other bytes\n')) };
      await assertRejectsWithStoreError(subject.store.put(request), { retryable: false });
      assert.deepEqual(await subject.versionIds('bad/checksum.csv'), []);
    });
  });
}
