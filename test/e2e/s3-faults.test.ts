// S3 failing under a running `bin/sftppush watch` (child process, moto behind the fault proxy): a stalled answer is
// abandoned after upload.request_timeout_seconds and settled by the write gate (one version); an outage of 503
// SlowDown is said once, its recovery once, and the backlog drains with one version per file. Every line the
// process writes, on stdout and stderr, is a JSON log line: no library prints around pino.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { matches, startFaultProxy, target, type FaultProxy } from '../support/fault-proxy.js';
import { writeFile } from '../support/fixtures.js';
import { listVersions } from '../support/moto.js';
import { createService, describeLogs, ExpectedBucket, isFileOutcome, motoForSuite, type RunningService } from '../support/service.js';

const WARN = 40;

/** Every stdout line parsed as JSON (the helper marks others `(not JSON)`), and stderr holds nothing but JSON lines. */
function assertJsonOnly(run: RunningService): void {
  const notJson = run.logs.filter((line) => line.msg.startsWith('(not JSON)')).map((line) => line.msg);
  assert.deepEqual(notJson, [], `stdout lines that are not JSON${describeLogs(run)}`);
  const stderrLines = run.stderr.split('\n').filter((line) => line.trim() !== '');
  const badStderr = stderrLines.filter((line) => {
    try {
      JSON.parse(line);
      return false;
    } catch {
      return true;
    }
  });
  assert.deepEqual(badStderr, [], 'stderr lines that are not JSON');
}

void describe('S3 faults under watch (child process, moto behind the fault proxy)', () => {
  const env = motoForSuite();

  async function serviceBehindProxy(bucket: string, uploadToml: string): Promise<{ proxy: FaultProxy; run: RunningService; targetDir: string }> {
    const proxy = await startFaultProxy(env.moto.endpoint);
    const service = await createService({ moto: env.moto, bucket, endpoint: proxy.endpoint, settleSeconds: 0, uploadToml });
    env.services.push(service);
    const run = await service.start();
    return { proxy, run, targetDir: service.targetDir };
  }

  void it('a PUT whose answer is held is abandoned after request_timeout_seconds and found by the gate: one version, JSON logs only', async () => {
    const { proxy, run, targetDir } = await serviceBehindProxy('stalled-answer', 'request_timeout_seconds = 2');
    try {
      proxy.inject({ ...target.putObject('stalled.csv'), kind: 'stall' });
      const written = Date.now();
      writeFile(targetDir, 'stalled.csv', 'id,amount\n1,42\n');
      await run.waitForOutcomes('stalled.csv', 1, 30_000);
      const retryLine = run.logs.find((line) => line.msg === 'archive failed: will retry' && line.path === 'stalled.csv');
      assert.ok(retryLine, `the stalled attempt failed and was retried${describeLogs(run)}`);
      assert.match(String(retryLine.error), /TimeoutError|timed out/, 'it failed by the request timeout');
      const abandonedAfterMs = Date.parse(String(retryLine.time)) - written;
      assert.ok(abandonedAfterMs < 2000 + 3000, `abandoned within the 2 s timeout (plus start-up slack): ${abandonedAfterMs} ms`);
      const outcome = run.logs.find(isFileOutcome('stalled.csv'))!;
      assert.equal(outcome.foundByHead, true, 'the retry found the stalled PUT in S3 instead of writing again');
      const puts = proxy.requests.filter((r) => matches(target.putObject('stalled.csv'), r));
      assert.equal(puts[0]?.faulted, 'stall');
      assert.equal(puts[0]?.upstreamStatus, 200, 'moto stored the stalled PUT');
      const versions = (await listVersions(env.moto.client, 'stalled-answer')).filter((v) => v.key === 'stalled.csv');
      assert.equal(versions.length, 1, `one version: ${JSON.stringify(versions)}`);
      assert.equal(await run.stop(), 0);
      assertJsonOnly(run);
    } finally {
      await proxy.stop();
    }
  });

  void it('an HTML page instead of S3\'s answer (a proxy\'s 502) is one error naming the endpoint, not a warning per retry; nothing lost', async () => {
    const { proxy, run, targetDir } = await serviceBehindProxy('html-answer', 'max_backoff_seconds = 2');
    const expected = new ExpectedBucket(env.moto.client, 'html-answer');
    const files = Array.from({ length: 4 }, (_, i) => `html-${i}.csv`);
    try {
      const before = run.logs.length;
      proxy.inject({ method: 'PUT', kind: 'html', status: 502, times: 100_000 });
      for (const relPath of files) {
        const bytes = Buffer.from(`${relPath}\n`.repeat(20));
        writeFile(targetDir, relPath, bytes);
        expected.addVersion(relPath, bytes);
      }
      await run.waitForLogCount('retries', (line) => line.msg === 'archive failed: will retry', files.length * 2, 30_000);
      proxy.clear();
      for (const relPath of files) await run.waitForOutcomes(relPath, 1, 60_000);
      const during = run.logs.slice(before);
      const loud = during.filter((line) => line.level >= WARN);
      assert.equal(loud.length, 1, `one line for the whole time, not one per file or retry${describeLogs(run)}`);
      assert.equal(loud[0]!.kind, 'not-s3');
      assert.match(String(loud[0]!.error), new RegExp(`endpoint ${proxy.endpoint.replace(/[.]/g, '\\.')} does not answer as S3: HTTP 502 text/html`));
      const retry = during.find((line) => line.msg === 'archive failed: will retry')!;
      assert.match(String(retry.error), /E_S3_NOT_S3|does not answer as S3/, 'each file\'s own retry says why too');
      assert.equal(await run.stop(), 0);
      await expected.assertMatches();
      assertJsonOnly(run);
    } finally {
      await proxy.stop();
    }
  });

  void it('an outage of 503 SlowDown is logged once, its recovery once; the backlog drains, one version per file', async () => {
    const { proxy, run, targetDir } = await serviceBehindProxy('outage', 'max_backoff_seconds = 4');
    const expected = new ExpectedBucket(env.moto.client, 'outage');
    // At the target's root: a new directory's watch is logged at warn by the watcher, which is not about S3.
    const files = Array.from({ length: 12 }, (_, i) => `outage-${i}.csv`);
    try {
      const before = run.logs.length;
      proxy.inject({ method: 'PUT', kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.', times: 100_000 });
      for (const relPath of files) {
        const bytes = Buffer.from(`${relPath}\n`.repeat(20));
        writeFile(targetDir, relPath, bytes);
        expected.addVersion(relPath, bytes);
      }
      await run.waitForLog('the outage to be logged', (line) => line.msg.startsWith('S3 is failing'));
      // Long enough for every file to fail, most of them more than once.
      await run.waitForLogCount('retries', (line) => line.msg === 'archive failed: will retry', files.length * 2, 30_000);
      proxy.clear();
      for (const relPath of files) await run.waitForOutcomes(relPath, 1, 60_000);
      const during = run.logs.slice(before);
      const loud = during.filter((line) => line.level >= WARN).map((line) => line.msg);
      assert.deepEqual(loud, [loud.find((msg) => msg.startsWith('S3 is failing'))], `one warning for the whole outage${describeLogs(run)}`);
      const failing = during.find((line) => line.msg.startsWith('S3 is failing'))!;
      assert.equal(failing.kind, 'throttled');
      const recovered = during.filter((line) => line.msg.startsWith('S3 recovered'));
      assert.equal(recovered.length, 1, 'one recovery line');
      assert.ok(Number(recovered[0]!.failures) >= files.length * 2, `the recovery counts the failures: ${JSON.stringify(recovered[0])}`);
      assert.equal(await run.stop(), 0);
      await expected.assertMatches();
      assertJsonOnly(run);
    } finally {
      await proxy.stop();
    }
  });
});
