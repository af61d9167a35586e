// How each S3 answer is classified for metrics and /healthz (s3/request-outcome.ts), seen through the store as the
// service builds it, pointed at a fault proxy in front of moto: only the questions we ask on purpose (a HEAD of a
// missing key, a conditional write's 412) are answers; a PUT answered 404 is a failure, and an HTML page is no
// answer of S3's at all.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';

import type { S3Client } from '@aws-sdk/client-s3';
import { findCause, NotS3AnswerError, StoreError } from '../../src/errors.js';
import type { S3Attempt } from '../../src/s3/request-outcome.js';
import { createS3Client, S3Store } from '../../src/s3/s3-store.js';
import { startFaultProxy, target, type FaultProxy } from '../support/fault-proxy.js';
import { listVersions, startMoto, type MotoServer } from '../support/moto.js';

const BUCKET = 'answers';

void describe('S3 answers, classified as the metrics and /healthz see them', () => {
  let moto: MotoServer;
  let proxy: FaultProxy;
  let client: S3Client;
  let store: S3Store;
  const attempts: S3Attempt[] = [];
  before(async () => {
    moto = await startMoto();
    await moto.createBucket(BUCKET);
    proxy = await startFaultProxy(moto.endpoint);
    client = createS3Client({
      endpoint: proxy.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      maxSockets: 4,
      requestTimeoutMs: 60_000,
      onAttempt: (attempt) => void attempts.push(attempt),
    });
    store = new S3Store(client);
  });
  afterEach(() => {
    proxy.clear();
    attempts.length = 0;
  });
  after(async () => {
    client?.destroy();
    await proxy?.stop();
    await moto?.stop();
  });

  function put(key: string): Promise<unknown> {
    const body = Buffer.from(`content of ${key}\n`);
    const sha256 = createHash('sha256').update(body).digest('hex');
    return store.put({ bucket: BUCKET, key, body, sizeBytes: body.length, sha256, metadata: { sha256 }, partSizeBytes: 8 * 1024 * 1024 });
  }

  const putAttempts = (): S3Attempt[] => attempts.filter((a) => a.operation === 'PutObjectCommand');

  void test('a PUT answered by an HTML 404 page is E_S3_NOT_S3 naming the endpoint, counted as an invalid response, no answer of S3', async () => {
    proxy.inject({ ...target.putObject('html/404.csv'), kind: 'html', status: 404 });
    const error = await put('html/404.csv').then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof StoreError, String(error));
    const notS3 = findCause(error, NotS3AnswerError);
    assert.ok(notS3, `expected E_S3_NOT_S3 in the cause chain: ${String(error)}`);
    assert.match(notS3.message, new RegExp(`endpoint ${proxy.endpoint.replace(/[.]/g, '\\.')} does not answer as S3: HTTP 404 text/html`));
    assert.deepEqual(putAttempts(), [{ operation: 'PutObjectCommand', answered: false, error: 'invalid-response' }]);
    assert.deepEqual(await listVersions(moto.client, BUCKET, 'html/404.csv'), []);
  });

  void test('a PUT answered 404 in S3\'s own words is a counted client error, while a HEAD\'s 404 is the answer asked for', async () => {
    proxy.inject({ ...target.putObject('xml/404.csv'), kind: 'status', status: 404, code: 'NotFound' });
    await assert.rejects(put('xml/404.csv'), StoreError);
    assert.deepEqual(putAttempts(), [{ operation: 'PutObjectCommand', answered: true, error: 'client' }]);

    assert.equal(await store.head(BUCKET, 'xml/never-written.csv'), undefined);
    assert.deepEqual(attempts.filter((a) => a.operation === 'HeadObjectCommand'), [{ operation: 'HeadObjectCommand', answered: true, error: undefined }]);
  });
});
