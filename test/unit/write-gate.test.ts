// The write gate's table (DESIGN.md, "Exactly once, precisely"): what it asks S3, what it sends, and how
// many versions a key ends with, for each state S3 and the ledger can be in. MemoryStore checks
// If-None-Match / If-Match as S3 does (the contract test holds it to moto), so these run in milliseconds.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { pino } from 'pino';

import { StoreError } from '../../src/errors.js';
import type { RecordedObject } from '../../src/ledger/ledger.js';
import { writeThroughGate, type GatedWrite, type GateDeps, type WriteMode } from '../../src/pipeline/write-gate.js';
import { MemoryStore } from '../../src/s3/memory-store.js';
import { PreconditionFailedError, type StoredObject, type WriteCondition } from '../../src/s3/object-store.js';
import { captureLines, silentLog, type LogRecord } from '../support/fixtures.js';

const BUCKET = 'gate';
const KEY = 'in/report.csv';
const PINO_WARN = 40;

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A write of `content` at KEY, as archive-file builds it: a fresh buffer per attempt, its sha256 and size. */
function gatedWrite(content: string, options: { expected?: RecordedObject | undefined; headFirst?: boolean } = {}): GatedWrite {
  const bytes = Buffer.from(content);
  const sha256 = sha256Hex(bytes);
  return {
    bucket: BUCKET,
    key: KEY,
    body: () => Buffer.from(bytes),
    sizeBytes: bytes.length,
    sha256,
    metadata: { sha256 },
    partSizeBytes: 5 * 1024 * 1024,
    expected: options.expected,
    headFirst: options.headFirst ?? false,
  };
}

/** What the ledger records for an object S3 accepted: the ETag a later generation's If-Match carries. */
function recorded(stored: StoredObject, content: string): RecordedObject {
  return { etag: stored.etag ?? null, sha256: sha256Hex(Buffer.from(content)) };
}

/** An unconditional put of `content` at KEY, as another writer (or an earlier life of the ledger) made it. */
function putDirectly(store: MemoryStore, content: string): Promise<StoredObject> {
  const write = gatedWrite(content);
  const { bucket, key, sizeBytes, sha256, metadata, partSizeBytes } = write;
  return store.put({ bucket, key, body: write.body(), sizeBytes, sha256, metadata, partSizeBytes });
}

/** A store plus what the gate sent it from now on: the operations, and each put's condition. */
function watch(store: MemoryStore): { operations: () => string[]; conditions: (WriteCondition | undefined)[] } {
  const from = store.calls.length;
  const conditions: (WriteCondition | undefined)[] = [];
  store.onPut = (request) => {
    conditions.push(request.condition);
  };
  return { operations: () => store.calls.slice(from).map((c) => c.operation), conditions };
}

function deps(store: MemoryStore, mode: WriteMode, log = silentLog): GateDeps {
  return { store, mode, log };
}

function capturingLog(lines: LogRecord[]): GateDeps['log'] {
  return pino({ level: 'debug' }, captureLines(lines));
}

function bodies(store: MemoryStore): string[] {
  return store.versions(BUCKET, KEY).map((v) => v.body.toString());
}

void describe('writeThroughGate, conditional mode', () => {
  void test('nothing expected, key empty: one PUT with If-None-Match, no HEAD', async () => {
    const store = new MemoryStore();
    const sent = watch(store);
    const result = await writeThroughGate(gatedWrite('id\n1\n'), deps(store, 'conditional'));
    assert.deepEqual(sent.operations(), ['put']);
    assert.deepEqual(sent.conditions, [{ ifNoneMatch: '*' }]);
    assert.equal(result.foundByHead, false);
    assert.equal(result.foundBy, undefined);
    const [version] = store.versions(BUCKET, KEY);
    assert.deepEqual(bodies(store), ['id\n1\n']);
    assert.equal(result.versionId, version?.versionId);
    assert.equal(result.etag, version?.etag);
    assert.equal(result.checksumSha256, version?.checksumSha256);
  });

  void test('nothing expected (a lost ledger), key already holds this content: 412, HEAD, found, no new version', async () => {
    const store = new MemoryStore();
    const earlier = await putDirectly(store, 'id\n1\n');
    const sent = watch(store);
    const result = await writeThroughGate(gatedWrite('id\n1\n'), deps(store, 'conditional'));
    assert.deepEqual(sent.operations(), ['put', 'head']);
    assert.deepEqual(sent.conditions, [{ ifNoneMatch: '*' }]);
    assert.equal(result.foundByHead, true);
    assert.equal(result.foundBy, 'precondition');
    // The ledger records S3's receipt for the version already there.
    assert.equal(result.versionId, earlier.versionId);
    assert.equal(result.etag, earlier.etag);
    assert.equal(result.checksumSha256, earlier.checksumSha256);
    assert.equal(store.versions(BUCKET, KEY).length, 1);
  });

  void test('expected is the ETag S3 shows: a new version, written with If-Match on it', async () => {
    const store = new MemoryStore();
    const previous = await putDirectly(store, 'generation 1\n');
    const sent = watch(store);
    const result = await writeThroughGate(
      gatedWrite('generation 2\n', { expected: recorded(previous, 'generation 1\n') }),
      deps(store, 'conditional'),
    );
    assert.deepEqual(sent.operations(), ['put']);
    assert.deepEqual(sent.conditions, [{ ifMatch: previous.etag }]);
    assert.equal(result.foundByHead, false);
    assert.deepEqual(bodies(store), ['generation 1\n', 'generation 2\n']);
    assert.equal(result.versionId, store.versions(BUCKET, KEY).at(-1)?.versionId);
  });

  void test('expected ETag stale, S3 holds other content: 412, HEAD, one new version on the current ETag, and a warning', async () => {
    const store = new MemoryStore();
    const previous = await putDirectly(store, 'generation 1\n');
    const other = await putDirectly(store, 'written by someone else\n');
    const lines: LogRecord[] = [];
    const sent = watch(store);
    const result = await writeThroughGate(
      gatedWrite('generation 2\n', { expected: recorded(previous, 'generation 1\n') }),
      deps(store, 'conditional', capturingLog(lines)),
    );
    assert.deepEqual(sent.operations(), ['put', 'head', 'put']);
    assert.deepEqual(sent.conditions, [{ ifMatch: previous.etag }, { ifMatch: other.etag }]);
    assert.equal(result.foundByHead, false);
    assert.deepEqual(bodies(store), ['generation 1\n', 'written by someone else\n', 'generation 2\n']);

    const warnings = lines.filter((line) => line.level === PINO_WARN);
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    assert.match(warnings[0]?.msg ?? '', /other content .* than the ledger recorded/);
    assert.equal(warnings[0]?.key, KEY);
    assert.equal(warnings[0]?.expectedEtag, previous.etag);
    assert.equal(warnings[0]?.currentEtag, other.etag);
  });

  // Two hosts on one shared directory: the other host archived newer content while this one was slow. Its
  // bytes, read before the rewrite, must not become the latest version on top of the newer content.
  void test('S3 holds other content and the source changed since it was read: no write, the source\'s error passes', async () => {
    const store = new MemoryStore();
    await putDirectly(store, 'newer, archived by another host\n');
    const sent = watch(store);
    const changed = new Error('changed since it was read');
    await assert.rejects(
      writeThroughGate({ ...gatedWrite('older, read before the rewrite\n'), assertStillCurrent: () => Promise.reject(changed) }, deps(store, 'conditional')),
      (error) => error === changed,
    );
    assert.deepEqual(sent.operations(), ['put', 'head'], 'the refused PUT and its HEAD, then nothing');
    assert.deepEqual(bodies(store), ['newer, archived by another host\n']);
  });

  void test('expected ETag recorded but the object was deleted: If-Match fails (404), then If-None-Match writes it', async () => {
    const store = new MemoryStore();
    const lines: LogRecord[] = [];
    const sent = watch(store);
    const expected = { etag: '"0123456789abcdef0123456789abcdef"', sha256: sha256Hex(Buffer.from('generation 1\n')) };
    const result = await writeThroughGate(gatedWrite('generation 2\n', { expected }), deps(store, 'conditional', capturingLog(lines)));
    assert.deepEqual(sent.operations(), ['put', 'head', 'put']);
    assert.deepEqual(sent.conditions, [{ ifMatch: expected.etag }, { ifNoneMatch: '*' }]);
    assert.equal(result.foundByHead, false);
    assert.deepEqual(bodies(store), ['generation 2\n']);
    const warnings = lines.filter((line) => line.level === PINO_WARN);
    assert.equal(warnings.length, 1, JSON.stringify(lines));
    assert.match(warnings[0]?.msg ?? '', /gone from S3/);
  });

  void test('headFirst and S3 already holds the content: a HEAD, no PUT, found by head', async () => {
    const store = new MemoryStore();
    const earlier = await putDirectly(store, 'same as last time\n');
    const sent = watch(store);
    const write = gatedWrite('same as last time\n', { expected: recorded(earlier, 'same as last time\n'), headFirst: true });
    const result = await writeThroughGate(write, deps(store, 'conditional'));
    assert.deepEqual(sent.operations(), ['head']);
    assert.equal(result.foundByHead, true);
    assert.equal(result.foundBy, 'head');
    assert.equal(result.versionId, earlier.versionId);
    assert.equal(store.versions(BUCKET, KEY).length, 1);
  });

  void test('headFirst and S3 holds other content: the PUT is conditional on the ETag the HEAD saw, not on the ledger', async () => {
    const store = new MemoryStore();
    const previous = await putDirectly(store, 'generation 1\n');
    const other = await putDirectly(store, 'written by someone else\n');
    const sent = watch(store);
    const write = gatedWrite('generation 2\n', { expected: recorded(previous, 'generation 1\n'), headFirst: true });
    const result = await writeThroughGate(write, deps(store, 'conditional'));
    assert.deepEqual(sent.operations(), ['head', 'put']);
    assert.deepEqual(sent.conditions, [{ ifMatch: other.etag }]);
    assert.equal(result.foundByHead, false);
    assert.equal(store.versions(BUCKET, KEY).length, 3);
  });

  void test('headFirst on an empty key: HEAD, then If-None-Match', async () => {
    const store = new MemoryStore();
    const sent = watch(store);
    await writeThroughGate(gatedWrite('first\n', { headFirst: true }), deps(store, 'conditional'));
    assert.deepEqual(sent.operations(), ['head', 'put']);
    assert.deepEqual(sent.conditions, [{ ifNoneMatch: '*' }]);
    assert.equal(store.versions(BUCKET, KEY).length, 1);
  });
});

void describe('writeThroughGate, head-first mode (an endpoint without conditional writes)', () => {
  void test('a HEAD before every PUT, no condition sent, and found when the content is there', async () => {
    const store = new MemoryStore({ conditionalWrites: false });
    const sent = watch(store);
    const first = await writeThroughGate(gatedWrite('generation 1\n'), deps(store, 'head-first'));
    assert.deepEqual(sent.operations(), ['head', 'put']);
    assert.deepEqual(sent.conditions, [undefined]);
    assert.equal(first.foundByHead, false);

    const again = await writeThroughGate(gatedWrite('generation 1\n', { expected: recorded(first, 'generation 1\n') }), deps(store, 'head-first'));
    assert.deepEqual(sent.operations(), ['head', 'put', 'head']);
    assert.equal(again.foundByHead, true);
    assert.equal(again.foundBy, 'head');
    assert.equal(again.versionId, first.versionId);

    const next = await writeThroughGate(gatedWrite('generation 2\n', { expected: recorded(first, 'generation 1\n') }), deps(store, 'head-first'));
    assert.deepEqual(sent.operations(), ['head', 'put', 'head', 'head', 'put']);
    assert.deepEqual(sent.conditions, [undefined, undefined]);
    assert.equal(next.foundByHead, false);
    assert.deepEqual(bodies(store), ['generation 1\n', 'generation 2\n']);
  });

  void test('a lost answer is found by the next attempt\'s HEAD: still one version', async () => {
    const store = new MemoryStore({ conditionalWrites: false });
    store.failNext('put', undefined, { afterStoring: true });
    await assert.rejects(writeThroughGate(gatedWrite('landed\n'), deps(store, 'head-first')), StoreError);
    const again = await writeThroughGate(gatedWrite('landed\n'), deps(store, 'head-first'));
    assert.equal(again.foundBy, 'head');
    assert.equal(store.versions(BUCKET, KEY).length, 1);
  });
});

void describe('writeThroughGate, failures', () => {
  for (const generation of ['the first', 'a later'] as const) {
    void test(`a lost answer to ${generation} generation's PUT: the gate throws, and the next claim finds the content by 412 + HEAD`, async () => {
      const store = new MemoryStore();
      const expected = generation === 'a later' ? recorded(await putDirectly(store, 'generation 1\n'), 'generation 1\n') : undefined;
      const before = store.versions(BUCKET, KEY).length;
      const sent = watch(store);
      store.failNext('put', undefined, { afterStoring: true });

      const write = gatedWrite('generation 2\n', { expected });
      let thrown: unknown;
      await assert.rejects(writeThroughGate(write, deps(store, 'conditional')), (error) => {
        thrown = error;
        return true;
      });
      assert.ok(thrown instanceof StoreError, String(thrown));
      assert.ok(!(thrown instanceof PreconditionFailedError), 'a lost answer is not a failed precondition');
      assert.equal(thrown.retryable, true);
      // The gate does not retry on its own: the claim goes to retry, and a later claim calls the gate again.
      assert.deepEqual(sent.operations(), ['put']);
      assert.equal(store.versions(BUCKET, KEY).length, before + 1);

      const again = await writeThroughGate(write, deps(store, 'conditional'));
      assert.deepEqual(sent.operations(), ['put', 'put', 'head']);
      assert.deepEqual(sent.conditions.at(-1), sent.conditions[0]);
      assert.equal(again.foundByHead, true);
      assert.equal(again.foundBy, 'precondition');
      assert.equal(again.versionId, store.versions(BUCKET, KEY).at(-1)?.versionId);
      assert.equal(store.versions(BUCKET, KEY).length, before + 1);
      assert.equal(bodies(store).filter((body) => body === 'generation 2\n').length, 1);
    });
  }

  void test('a key that changes under the writer every time: gives up after 3 rounds with a retryable StoreError', async () => {
    const store = new MemoryStore();
    const write = gatedWrite('ours\n');
    let gatePuts = 0;
    store.onPut = async (request) => {
      // Only the gate's puts: the interloper's own put passes through this hook too.
      if (request.sha256 !== write.sha256) return;
      gatePuts += 1;
      await putDirectly(store, `someone else's version ${gatePuts}\n`);
    };
    const lines: LogRecord[] = [];
    let thrown: unknown;
    await assert.rejects(writeThroughGate(write, deps(store, 'conditional', capturingLog(lines))), (error) => {
      thrown = error;
      return true;
    });
    assert.ok(thrown instanceof StoreError, String(thrown));
    assert.ok(!(thrown instanceof PreconditionFailedError), 'the caller sees a retryable failure, not a precondition');
    assert.equal(thrown.retryable, true);
    assert.match(thrown.message, /changed 3 times/);
    assert.equal(gatePuts, 3);
    assert.deepEqual(bodies(store), [1, 2, 3].map((n) => `someone else's version ${n}\n`));
    // A HEAD after each refused round, and a warning for each round that tried again.
    assert.equal(store.calls.filter((c) => c.operation === 'head').length, 3);
    assert.equal(lines.filter((line) => line.level === PINO_WARN).length, 2);
  });

  void test('a PUT refused for another reason is thrown as is, without a HEAD', async () => {
    const store = new MemoryStore();
    const denied = new StoreError('put', KEY, false, { cause: new Error('AccessDenied') });
    store.failNext('put', denied);
    const sent = watch(store);
    await assert.rejects(writeThroughGate(gatedWrite('x\n'), deps(store, 'conditional')), (error) => error === denied);
    assert.deepEqual(sent.operations(), ['put']);
    assert.equal(store.versions(BUCKET, KEY).length, 0);
  });
});
