// The benchmark sink (bench/sink.ts) must be an S3 the service behaves on as on S3, or its figures mean
// nothing: the ObjectStore contract runs against it through the service's own S3Store, then the real
// service archives files to it and each lands as exactly one version.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { createSinkBucket, startSink, type Sink } from '../../bench/sink.js';
import { S3Store } from '../../src/s3/s3-store.js';
import { storeClient, type MotoServer } from '../support/moto.js';
import { BUCKET, bufferPut, describeObjectStoreContract, type SubjectFactory } from '../support/object-store-contract.js';
import { createService, type Service } from '../support/service.js';

const sink: SubjectFactory = {
  name: 'S3Store on the benchmark sink',
  verifiesChecksum: true,
  checksIfMatchOnCompletion: true,
  async open() {
    // Bytes kept for this test only, so the contract can compare them; the benchmark keeps none.
    const server = await startSink({ retainBodies: true });
    await createSinkBucket(server.endpoint, BUCKET);
    const client = storeClient(server.endpoint, 4);
    const live = (key: string) => server.versions(BUCKET, key).filter((v) => !v.deleteMarker);
    return {
      store: new S3Store(client),
      versionIds: (key) => Promise.resolve(live(key).map((v) => v.versionId)),
      latestBytes: (key) => Promise.resolve(live(key).at(-1)?.body ?? Buffer.alloc(0)),
      openUploads: () => Promise.resolve(server.openUploads()),
      tags: (key) => Promise.resolve({ ...(live(key).at(-1)?.tags ?? {}) }),
      async close() {
        client.destroy();
        await server.close();
      },
    };
  },
};

describeObjectStoreContract(sink);

void describe('the benchmark sink', () => {
  let server: Sink;
  let client: ReturnType<typeof storeClient>;
  before(async () => {
    server = await startSink();
    await createSinkBucket(server.endpoint, 'gate');
    client = storeClient(server.endpoint, 4);
  });
  after(async () => {
    client?.destroy();
    await server?.close();
  });

  void test('the service probes it as honouring conditional writes', async () => {
    assert.equal(await new S3Store(client).probeConditionalWrites('gate', 'probe/'), 'honoured');
    assert.deepEqual(server.versions('gate', 'probe/'), []);
  });

  void test('without retainBodies it keeps the facts of a version, not its bytes', async () => {
    const body = Buffer.from('kept as facts only\n');
    const put = await new S3Store(client).put({ ...bufferPut('facts.csv', body), bucket: 'gate' });
    const [version] = server.versions('gate', 'facts.csv');
    assert.equal(version?.body, undefined);
    assert.equal(version?.sizeBytes, body.length);
    assert.equal(version?.etag, `"${createHash('md5').update(body).digest('hex')}"`);
    assert.equal(version?.checksumSha256, put.checksumSha256);
    assert.equal(server.requestCounts().PutObject, 1);
  });

  void test('a content hash that differs from the body (x-amz-content-sha256) is refused, as S3 refuses it', async () => {
    const response = await fetch(`${server.endpoint}/gate/forged.csv`, {
      method: 'PUT',
      headers: { 'x-amz-content-sha256': createHash('sha256').update('other').digest('hex') },
      body: 'these bytes',
    });
    assert.equal(response.status, 400);
    assert.match(await response.text(), /XAmzContentSHA256Mismatch/);
    assert.deepEqual(server.versions('gate', 'forged.csv'), []);
  });

  void test('an aws-chunked body with a SHA-256 trailer is unframed and checked', async () => {
    const payload = Buffer.from('first chunk|second chunk');
    const trailer = createHash('sha256').update(payload).digest('base64');
    const framed = `c\r\n${payload.subarray(0, 12).toString()}\r\nc\r\n${payload.subarray(12).toString()}\r\n0\r\nx-amz-checksum-sha256:${trailer}\r\n\r\n`;
    const send = (body: string) =>
      fetch(`${server.endpoint}/gate/chunked.bin`, {
        method: 'PUT',
        headers: { 'content-encoding': 'aws-chunked', 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'x-amz-trailer': 'x-amz-checksum-sha256', 'x-amz-decoded-content-length': String(payload.length) },
        body,
      });
    assert.equal((await send(framed)).status, 200);
    assert.equal(server.versions('gate', 'chunked.bin')[0]?.sizeBytes, payload.length);
    assert.equal((await send(framed.replace(trailer, createHash('sha256').update('x').digest('base64')))).status, 400);
    assert.equal(server.versions('gate', 'chunked.bin').length, 1);
  });

  void describe('the service archiving to it', () => {
    let service: Service;
    before(async () => {
      const endpoint: MotoServer = { endpoint: server.endpoint, client, createBucket: (name) => createSinkBucket(server.endpoint, name), stop: () => Promise.resolve() };
      service = await createService({ moto: endpoint, bucket: 'service', concurrency: 4, settleSeconds: 1 });
    });
    after(() => service?.cleanup());

    void test('every file lands as exactly one version, also when the service is restarted over the same files', async () => {
      const names = Array.from({ length: 20 }, (_, i) => `f${i}.csv`);
      let run = await service.start();
      for (const name of names) writeFileSync(path.join(service.targetDir, name), `${name}\n`);
      for (const name of names) await run.waitForOutcomes(name);
      assert.equal(await run.stop(), 0);
      run = await service.start(); // the start-up pass finds every file archived: nothing written again
      assert.equal(await run.stop(), 0);
      for (const name of names) assert.equal(server.versions('service', name).length, 1, name);
      assert.equal((await service.status()).counts.archived, names.length);
    });
  });
});
