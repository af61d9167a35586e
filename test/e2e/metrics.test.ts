// End to end: `bin/sftppush watch` with [metrics], scraped over HTTP the way Prometheus does. The counters must
// match what the test made happen; /healthz must say 200 while all is well and 503, with the reason, once S3
// stops answering.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';

import { freePort } from '../support/moto.js';
import { parseSamples, sampleValue, type Sample } from '../support/prometheus-text.js';
import { createService, describeLogs, exitWithin, motoForSuite, type RunningService, type Service } from '../support/service.js';

const DEADLINE_MS = 30_000;
/** Small, so the outage shows in /healthz within seconds. */
const S3_STALE_SECONDS = 3;

interface Health {
  status: 'ok' | 'unhealthy';
  problems: string[];
  ledger: string;
  s3: { lastAnswerAt: string | null; lastFailure: { kind: string; operation: string } | null };
  watches: { directoriesWatched: number; unwatched: number; rootsUnwatched: number } | null;
}

async function scrape(port: number): Promise<Sample[]> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseSamples(await response.text());
}

async function health(port: number): Promise<{ code: number; body: Health }> {
  const response = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { code: response.status, body: (await response.json()) as Health };
}

/** Polls /healthz until it answers `code` (the service's view changes on its own clock). */
async function healthBecomes(port: number, code: number, run: RunningService): Promise<Health> {
  const deadline = Date.now() + DEADLINE_MS;
  let last: { code: number; body: Health } | undefined;
  while (Date.now() < deadline) {
    last = await health(port);
    if (last.code === code) return last.body;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.fail(`/healthz did not answer ${code}; last: ${JSON.stringify(last)}${describeLogs(run)}`);
}

void describe('watch with [metrics] (child process, moto, HTTP scrapes)', () => {
  const env = motoForSuite();

  async function service(bucket: string, metricsToml: string): Promise<Service> {
    const created = await createService({ moto: env.moto, bucket, tailToml: metricsToml });
    env.services.push(created);
    return created;
  }

  void it('a bad metrics.listen is exit 2 naming the key and the file; a port in use is exit 1 naming the key', async () => {
    const bad = await service('e2e-metrics-bad', '[metrics]\nlisten = "127.0.0.1"');
    const badRun = await bad.start({ noWait: true });
    assert.equal((await exitWithin(badRun, DEADLINE_MS, 'exit 2 on a bad listen value')).code, 2);
    assert.ok(badRun.stderr.includes(`${bad.configFile}: metrics.listen: `), badRun.stderr);

    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = await service('e2e-metrics-busy', `[metrics]\nlisten = "127.0.0.1:${port}"`);
      const busyRun = await busy.start({ noWait: true });
      assert.equal((await exitWithin(busyRun, DEADLINE_MS, 'exit 1 on a port in use')).code, 1);
      assert.match(busyRun.stderr, new RegExp(`metrics\\.listen = "127\\.0\\.0\\.1:${port}" in .*: cannot listen: the port is already in use`));
    } finally {
      taken.close();
    }
  });

  void it('counts what happened, 200 on /healthz, then 503 naming S3 once it stops answering', async () => {
    const port = await freePort();
    const svc = await service('e2e-metrics', `[metrics]\nlisten = "127.0.0.1:${port}"\ns3_stale_seconds = ${S3_STALE_SECONDS}`);
    const run = await svc.start();
    const target = svc.targetDir;
    try {
      const sizes = [1, 10, 1000, 4096, 70_000];
      sizes.forEach((size, i) => fs.writeFileSync(path.join(target, `f${i}.bin`), Buffer.alloc(size, i + 1)));
      for (let i = 0; i < sizes.length; i += 1) await run.waitForOutcomes(`f${i}.bin`, 1, DEADLINE_MS);
      // The same bytes again (a new ctime): a second generation, recorded as a duplicate, not uploaded.
      fs.writeFileSync(path.join(target, 'f0.bin'), Buffer.alloc(sizes[0]!, 1));
      await run.waitForOutcomes('f0.bin', 2, DEADLINE_MS);

      const samples = await scrape(port);
      const value = (name: string, labels: Record<string, string> = {}): number => sampleValue(samples, name, labels);
      const t = { target };
      assert.equal(value('sftppush_files_archived_total', t), sizes.length);
      assert.equal(value('sftppush_files_duplicate_total', t), 1);
      assert.equal(value('sftppush_files_observed_total', t), sizes.length + 1);
      assert.equal(value('sftppush_uploaded_bytes_total', t), sizes.reduce((a, b) => a + b, 0));
      assert.equal(value('sftppush_upload_duration_seconds_count'), sizes.length);
      assert.equal(value('sftppush_upload_duration_seconds_bucket', { le: '+Inf' }), sizes.length);
      assert.equal(value('sftppush_files_quarantined_total', t), 0);
      assert.equal(value('sftppush_files_gone_total', t), 0);
      assert.equal(value('sftppush_retries_total', t), 0);
      assert.equal(value('sftppush_backlog_files'), 0);
      assert.equal(value('sftppush_oldest_pending_seconds'), 0);
      assert.equal(value('sftppush_ledger_files', { state: 'archived' }), sizes.length + 1);
      assert.equal(value('sftppush_watched_directories', t), 1);
      assert.equal(value('sftppush_unwatched_directories', t), 0);
      assert.equal(value('sftppush_reconcile_passes_total', { reason: 'startup', result: 'ok' }), 1);
      assert.equal(value('sftppush_reconcile_duration_seconds_count'), 1);
      assert.equal(value('sftppush_s3_errors_total', { kind: 'network' }), 0);
      assert.ok(value('sftppush_s3_requests_total', { operation: 'PutObject' }) >= sizes.length);
      assert.ok(value('process_resident_memory_bytes') > 0, "prom-client's process defaults");

      const healthy = await healthBecomes(port, 200, run);
      assert.deepEqual(healthy.problems, []);
      assert.deepEqual(healthy.watches, { directoriesWatched: 1, unwatched: 0, rootsUnwatched: 0 });

      await env.moto.stop();
      const outage = await healthBecomes(port, 503, run);
      assert.equal(outage.status, 'unhealthy');
      assert.equal(outage.problems.length, 1, JSON.stringify(outage));
      assert.match(outage.problems[0]!, new RegExp(`^s3: no answer for \\d+ s \\(limit ${S3_STALE_SECONDS} s\\); last failure: network`));
      assert.equal(outage.ledger, 'open');
      const after = await scrape(port);
      assert.ok(sampleValue(after, 'sftppush_s3_errors_total', { kind: 'network' }) > 0, 'the failed pings are counted');
    } finally {
      assert.equal(await run.stop(), 0, describeLogs(run));
    }
  });
});
