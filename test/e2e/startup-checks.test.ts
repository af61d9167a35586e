// Start-up checks of `watch` (issue 10, item 4): a bucket the service cannot use stops it at once with exit 1,
// naming the bucket and the permission; an endpoint it cannot reach now does not: it starts, says so, and files
// wait in retry. The 403 answers a policy gives are made by the fault proxy in front of moto.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../support/moto.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendHtmlPage, startFaultProxy, target, type FaultProxy } from '../support/fault-proxy.js';
import { createService, exitWithin, motoForSuite, type LogLine } from '../support/service.js';

const DENIED = { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied', times: 100 } as const;

void describe('watch: start-up checks', () => {
  const env = motoForSuite();
  let proxy: FaultProxy;
  let buckets = 0;

  before(async () => {
    proxy = await startFaultProxy(env.moto.endpoint);
  });
  after(() => proxy.stop());

  async function service(options: { noBucket?: boolean; endpoint?: string } = {}) {
    const created = await createService({ moto: env.moto, bucket: `startup-${(buckets += 1)}`, ...options });
    env.services.push(created);
    return created;
  }

  /** Nothing about the bucket is said before the check that stops the service: no half-true warnings first. */
  function assertStoppedFirstThing(run: { logs: readonly LogLine[] }, pattern: RegExp): void {
    // The runtime's own warning (an old Node) is about the machine, not the bucket.
    const said = run.logs.filter((l) => l.level >= 40 && !l.msg.startsWith('Node.js')).map((l) => `${l.msg} ${typeof l.error === 'string' ? l.error : ''}`);
    assert.equal(said.length, 1, `one line at warn or above, the fatal one:\n${said.join('\n')}`);
    assert.match(said[0]!, pattern);
    assert.equal(run.logs.find((l) => l.level >= 40 && !l.msg.startsWith('Node.js'))?.level, 50, 'logged as an error');
  }

  void it('a missing bucket: exit 1 naming it, at once, in the log first and nothing misleading before', async () => {
    const s = await service({ noBucket: true });
    const run = await s.start({ noWait: true });
    const exit = await exitWithin(run, 30_000, 'exit for a missing bucket');
    assert.equal(exit.code, 1);
    assert.match(run.stderr, new RegExp(`bucket ${s.bucket} does not exist`));
    assertStoppedFirstThing(run, new RegExp(`E_S3_ACCESS: bucket ${s.bucket} does not exist`));
  });

  void it('a denied bucket (HeadBucket 403): exit 1 naming the bucket and s3:ListBucket', async (t) => {
    const s = await service({ endpoint: proxy.endpoint });
    proxy.inject({ method: 'HEAD', match: (r) => r.path === `/${s.bucket}` || r.path === `/${s.bucket}/`, ...DENIED });
    t.after(() => proxy.clear());
    const run = await s.start({ noWait: true });
    assert.equal((await exitWithin(run, 30_000, 'exit for a denied bucket')).code, 1);
    assert.match(run.stderr, new RegExp(`access to bucket ${s.bucket} is denied .*s3:ListBucket`));
    assertStoppedFirstThing(run, new RegExp(`E_S3_ACCESS: access to bucket ${s.bucket} is denied`));
  });

  void it('a policy without s3:ListBucket (a missing key answers 403): exit 1 saying which permission', async (t) => {
    const s = await service({ endpoint: proxy.endpoint });
    proxy.inject({ ...target.headObject(), ...DENIED });
    t.after(() => proxy.clear());
    const run = await s.start({ noWait: true });
    assert.equal((await exitWithin(run, 30_000, 'exit for 403 on a missing key')).code, 1);
    assert.match(run.stderr, /answers 403, not 404: the policy lacks s3:ListBucket/);
  });

  for (const status of [200, 403, 502]) {
    void it(`an endpoint that answers an HTML page (HTTP ${status}: a proxy, a wrong endpoint): exit 1 naming it`, async (t) => {
      const server = createServer((req, res) => req.resume().on('end', () => sendHtmlPage(res, status)));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      t.after(() => new Promise((resolve) => server.close(resolve)));
      const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const s = await service({ endpoint });
      const run = await s.start({ noWait: true });
      assert.equal((await exitWithin(run, 30_000, `exit for an HTML ${status}`)).code, 1, run.stderr);
      assert.match(run.stderr, new RegExp(`endpoint ${endpoint} does not answer as S3: HTTP ${status} text/html`));
      assert.ok(!run.logs.some((l) => l.msg.startsWith('S3 cannot be reached now')), 'not taken for an endpoint that is down');
      assertStoppedFirstThing(run, /E_S3_NOT_S3: endpoint .* does not answer as S3/);
    });
  }

  void it('an unreachable endpoint: the service starts, says so, and files wait in retry', async () => {
    const s = await service({ endpoint: `http://127.0.0.1:${await freePort()}` });
    const run = await s.start();
    assert.ok(run.logs.some((l) => l.msg.startsWith('S3 cannot be reached now')), 'says S3 cannot be reached');
    fs.writeFileSync(path.join(s.targetDir, 'waiting.csv'), 'a\n');
    await run.waitForLog('the file failing', (l) => l.path === 'waiting.csv' && l.state === 'retry', 60_000);
    assert.equal((await s.status()).counts.retry, 1);
    assert.equal(await run.stop(), 0);
  });
});
