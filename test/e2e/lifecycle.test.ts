// Stopping and starting `bin/sftppush watch` (child process, moto behind the fault proxy): a SIGTERM mid-multipart
// lets the upload run for stop_grace_seconds, then aborts it (ListMultipartUploads empty), exits 0 with "stopped";
// a second signal aborts at once; the restart archives the file once. A ledger deleted or replaced under the
// service stops it (exit 1, naming the file).
//
// The large file is 30 MiB in 5 MiB parts, not the 200 MB: the proxy holds every part's answer, so the
// upload is "in the middle" for as long as the test wants on any machine, without writing 200 MB to a shared,
// loaded one. What is tested (an open multipart upload with stored parts at the signal) is the same.
import { HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { matches, objectKeyOf, startFaultProxy, target, type FaultProxy, type RequestView } from '../support/fault-proxy.js';
import { listVersions, MOTO_ENV } from '../support/moto.js';
import { patternBytes, waitUntil, writeFile } from '../support/fixtures.js';
import { createService, describeLogs, exitWithin, ExpectedBucket, isFileOutcome, motoForSuite, SFTPPUSH_BIN, type RunningService, type Service } from '../support/service.js';

const MIB = 1024 * 1024;
const LARGE = patternBytes(30 * MIB, 5);
const MULTIPART_TOML = 'multipart_threshold_mb = 5\npart_size_mb = 5';

void describe('lifecycle: stop, grace, multipart cleanup, ledger identity (child process, moto)', () => {
  const env = motoForSuite();

  async function openUploads(bucket: string): Promise<string[]> {
    const { Uploads = [] } = await env.moto.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return Uploads.map((u) => u.Key ?? '');
  }

  /** A service behind a proxy that holds every part's answer, with big.bin's multipart upload under way. */
  async function midMultipart(bucket: string, uploadToml: string): Promise<{ proxy: FaultProxy; service: Service; run: RunningService }> {
    const proxy = await startFaultProxy(env.moto.endpoint);
    const service = await createService({ moto: env.moto, bucket, endpoint: proxy.endpoint, settleSeconds: 0, concurrency: 1, uploadToml: `${MULTIPART_TOML}\n${uploadToml}` });
    env.services.push(service);
    const run = await service.start();
    proxy.inject({ ...target.uploadPart('big.bin'), kind: 'stall', ms: 60_000, times: 1000 });
    // Renamed in once complete (`*.tmp` is ignored): a scan never sees it half-written.
    fs.renameSync(writeFile(service.targetDir, 'big.tmp', LARGE), `${service.targetDir}/big.bin`);
    await waitUntil('a part of big.bin stored by moto', () => proxy.requests.some((r) => matches(target.uploadPart('big.bin'), r) && r.upstreamStatus === 200), 30_000);
    assert.deepEqual(await openUploads(bucket), ['big.bin'], 'the multipart upload is open at the signal');
    return { proxy, service, run };
  }

  /** The restart, with the proxy out of the way, archives big.bin once. */
  async function restartArchives(service: Service, proxy: FaultProxy): Promise<void> {
    proxy.clear();
    const run = await service.start();
    await run.waitForOutcomes('big.bin', 1, 60_000);
    assert.equal(await run.stop(), 0);
    const expected = new ExpectedBucket(env.moto.client, service.bucket);
    expected.addVersion('big.bin', LARGE);
    await expected.assertMatches();
    assert.deepEqual(await openUploads(service.bucket), [], 'nothing left open after the restart');
  }

  function assertStoppedCleanly(run: RunningService, exit: { code: number | null }): void {
    assert.equal(exit.code, 0, `exit 0${describeLogs(run)}`);
    assert.ok(run.logs.some((line) => line.msg === 'multipart upload aborted' && line.key === 'big.bin'), `the upload was aborted${describeLogs(run)}`);
    assert.ok(run.logs.some((line) => line.msg === 'upload abandoned: the service is stopping'), 'the row was given back');
    assert.equal(run.logs.at(-1)?.msg, 'stopped', 'the last line says so');
  }

  void it('SIGTERM mid-multipart: the grace period runs out, the upload is aborted, exit 0 with "stopped"; the restart archives once', async () => {
    const { proxy, service, run } = await midMultipart('stop-grace', 'stop_grace_seconds = 1');
    try {
      const signalled = Date.now();
      process.kill(run.pid, 'SIGTERM');
      const exit = await exitWithin(run, 15_000, 'SIGTERM should stop the service after the 1 s grace period');
      assertStoppedCleanly(run, exit);
      assert.ok(run.logs.some((line) => line.msg === 'stop grace period over: aborting the uploads in hand'));
      assert.ok(Date.now() - signalled >= 1000, 'the upload had its grace period');
      assert.deepEqual(await openUploads(service.bucket), [], 'ListMultipartUploads is empty after the stop');
      const status = await service.status();
      assert.equal(status.counts.working, 0, 'no row left working');
      await restartArchives(service, proxy);
    } finally {
      await proxy.stop();
    }
  });

  void it('the grace period runs out while CompleteMultipartUpload is in flight: the log says the upload completed, not "aborted"; the restart finds the object (one version)', async () => {
    const proxy = await startFaultProxy(env.moto.endpoint);
    try {
      const service = await createService({ moto: env.moto, bucket: 'stop-completing', endpoint: proxy.endpoint, settleSeconds: 0, concurrency: 1, uploadToml: `${MULTIPART_TOML}\nstop_grace_seconds = 1` });
      env.services.push(service);
      const run = await service.start();
      // moto completes the upload (the object stands), and its answer is held past the grace period.
      proxy.inject({ ...target.completeMultipartUpload('big.bin'), kind: 'stall', ms: 60_000 });
      fs.renameSync(writeFile(service.targetDir, 'big.tmp', LARGE), `${service.targetDir}/big.bin`);
      await waitUntil('moto completed big.bin', () => proxy.requests.some((r) => matches(target.completeMultipartUpload('big.bin'), r) && r.upstreamStatus === 200), 30_000);
      process.kill(run.pid, 'SIGTERM');
      const exit = await exitWithin(run, 15_000, 'SIGTERM should stop the service after the 1 s grace period');
      assert.equal(exit.code, 0, `exit 0${describeLogs(run)}`);
      assert.ok(!run.logs.some((line) => line.msg === 'multipart upload aborted'), `nothing was aborted${describeLogs(run)}`);
      const said = run.logs.find((line) => line.key === 'big.bin' && String(line.msg).startsWith('multipart upload already completed'));
      assert.ok(said, `the log says the upload completed${describeLogs(run)}`);
      assert.equal(said.level, 40);
      assert.deepEqual(await openUploads(service.bucket), []);
      await restartArchives(service, proxy);
    } finally {
      await proxy.stop();
    }
  });

  void it('SIGTERM in the middle of a 200 MB multipart upload straight to moto: "stopped", exit 0 within the grace period, nothing left open; the restart stores it once', async () => {
    const graceMs = 1000;
    const service = await createService({
      moto: env.moto,
      bucket: 'stop-200mb',
      settleSeconds: 0,
      concurrency: 1,
      uploadToml: `${MULTIPART_TOML}\nstop_grace_seconds = ${graceMs / 1000}`,
    });
    env.services.push(service);
    const run = await service.start();
    // 200 MiB written in 8 MiB chunks (never whole in this process's memory), renamed in once complete.
    const chunk = patternBytes(8 * MIB, 7);
    const hash = createHash('sha256');
    const temp = path.join(service.targetDir, 'huge.tmp');
    const fd = fs.openSync(temp, 'w');
    for (let i = 0; i < 25; i += 1) {
      fs.writeSync(fd, chunk);
      hash.update(chunk);
    }
    fs.closeSync(fd);
    fs.renameSync(temp, path.join(service.targetDir, 'huge.bin'));
    await waitUntil('the multipart upload of huge.bin to be open', async () => (await openUploads(service.bucket)).includes('huge.bin'), 60_000, 50);
    const signalled = Date.now();
    process.kill(run.pid, 'SIGTERM');
    const exit = await exitWithin(run, graceMs + 15_000, 'SIGTERM should stop the service within the grace period');
    assert.equal(exit.code, 0, `exit 0${describeLogs(run)}`);
    assert.equal(run.logs.at(-1)?.msg, 'stopped', 'the last line says so');
    // Finished within the grace, or aborted when it ran out: either way nothing is left open, and no later than that.
    assert.ok(Date.now() - signalled < graceMs + 10_000, `stopped ${Date.now() - signalled} ms after the signal`);
    assert.deepEqual(await openUploads(service.bucket), [], 'ListMultipartUploads is empty after the stop');
    const again = await service.start();
    // Archived within the grace period: the restart has nothing to do for it. Else the restart archives it.
    if (!run.logs.some(isFileOutcome('huge.bin'))) await again.waitForOutcomes('huge.bin', 1, 120_000);
    assert.equal(await again.stop(), 0);
    const versions = (await listVersions(env.moto.client, service.bucket)).filter((v) => v.key === 'huge.bin');
    assert.equal(versions.length, 1, `exactly one version: ${JSON.stringify(versions)}`);
    assert.equal(versions[0]!.size, 200 * MIB);
    const { Metadata } = await env.moto.client.send(new HeadObjectCommand({ Bucket: service.bucket, Key: 'huge.bin' }));
    assert.equal(Metadata?.sha256, hash.digest('hex'), 'the bytes of the file');
    assert.deepEqual(await openUploads(service.bucket), []);
  });

  void it('a second signal aborts the upload in hand at once: exit 0, nothing left open', async () => {
    const { proxy, service, run } = await midMultipart('stop-twice', 'stop_grace_seconds = 600');
    try {
      process.kill(run.pid, 'SIGTERM');
      await run.waitForLog('the first signal', (line) => line.msg.startsWith('stopping: finishing files in hand'));
      process.kill(run.pid, 'SIGINT');
      const exit = await exitWithin(run, 15_000, 'a second signal should abort at once');
      assertStoppedCleanly(run, exit);
      assert.ok(run.logs.some((line) => line.msg === 'second signal: aborting the uploads in hand'));
      assert.deepEqual(await openUploads(service.bucket), []);
    } finally {
      await proxy.stop();
    }
  });

  void it('a stop while the start-up multipart cleanup waits on a stalled S3 listing is not held up by it', async () => {
    const proxy = await startFaultProxy(env.moto.endpoint);
    try {
      const service = await createService({ moto: env.moto, bucket: 'stalled-cleanup', endpoint: proxy.endpoint, uploadToml: 'request_timeout_seconds = 600' });
      env.services.push(service);
      proxy.inject({ method: 'GET', match: (r) => r.query.has('uploads'), kind: 'stall', times: 10 });
      const run = await service.start();
      await waitUntil('the cleanup to list open uploads', () => proxy.requests.some((r) => r.query.has('uploads')), 20_000);
      process.kill(run.pid, 'SIGTERM');
      const exit = await exitWithin(run, 10_000, 'the stop should cut the stalled cleanup short');
      assert.equal(exit.code, 0, `exit 0${describeLogs(run)}`);
      assert.ok(run.logs.some((line) => line.msg.startsWith('stopping: the start-up multipart cleanup is cut short')), describeLogs(run));
      assert.equal(run.logs.at(-1)?.msg, 'stopped');
    } finally {
      await proxy.stop();
    }
  });

  for (const how of ['deleted', 'replaced'] as const) {
    void it(`a ledger ${how} under the running service stops it: exit 1, naming the file`, async () => {
      const service = await createService({ moto: env.moto, bucket: `ledger-${how}`, settleSeconds: 0 });
      env.services.push(service);
      const run = await service.start();
      if (how === 'deleted') {
        for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${service.ledgerPath}${suffix}`, { force: true });
      } else {
        fs.copyFileSync(service.ledgerPath, `${service.ledgerPath}.new`);
        fs.renameSync(`${service.ledgerPath}.new`, service.ledgerPath);
      }
      const exit = await exitWithin(run, 15_000, `a ${how} ledger should stop the service`);
      assert.equal(exit.code, 1, `exit 1${describeLogs(run)}`);
      const fatal = run.logs.find((line) => line.msg === 'stopping after a fatal error');
      const error = fatal?.error as { code?: string; message?: string } | undefined;
      assert.equal(error?.code, 'E_LEDGER_REPLACED', `a typed error${describeLogs(run)}`);
      assert.ok(error?.message?.includes(service.ledgerPath) && error.message.includes(how === 'deleted' ? 'was deleted' : 'was replaced'), error?.message);
      assert.equal(run.logs.at(-1)?.msg, 'stopped');
    });
  }
});

void describe('reconcile (one shot) on SIGTERM (child process, moto behind the fault proxy)', () => {
  const env = motoForSuite();

  void it('stops scanning, lets the upload in hand finish, records the pass as interrupted, exits 1 with one clear line', async (t) => {
    const proxy = await startFaultProxy(env.moto.endpoint);
    t.after(() => proxy.stop());
    const service = await createService({ moto: env.moto, bucket: 'reconcile-stop', endpoint: proxy.endpoint, settleSeconds: 0, concurrency: 1 });
    env.services.push(service);
    // Enough files that the scan is still walking when the first upload starts; that upload's answer is held.
    for (let dir = 0; dir < 20; dir += 1) {
      for (let i = 0; i < 200; i += 1) writeFile(service.targetDir, `d${dir}/f${i}.csv`, `${dir},${i}\n`);
    }
    // A file's PUT, not the start-up probe of conditional writes.
    const filePut = { method: 'PUT', match: (r: RequestView) => matches(target.putObject(), r) && !r.path.includes('.sftppush-probe') };
    proxy.inject({ ...filePut, kind: 'stall', ms: 2000 });
    const child = spawn(SFTPPUSH_BIN, ['reconcile', '--config', service.configFile], { env: { ...process.env, ...MOTO_ENV }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil('the first upload under way', () => proxy.requests.some((r) => matches(filePut, r)), 30_000);
    const held = objectKeyOf(proxy.requests.find((r) => matches(filePut, r))!.path)!;
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 20_000))]);
    const logs = stdout.split('\n').filter((line) => line.trim() !== '');
    assert.equal(code, 1, `exit 1: the pass did not finish\nstdout:\n${logs.slice(-10).join('\n')}\nstderr:\n${stderr}`);
    assert.match(stderr, /^sftppush: E_INTERRUPTED: reconcile interrupted by SIGTERM/m, 'one clear line');
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    const json = logs.map((line) => JSON.parse(line) as { msg: string; path?: string });
    assert.ok(json.some((line) => line.msg === 'file archived' && line.path === held), `the upload in hand finished: ${held}`);
    const versions = await listVersions(env.moto.client, service.bucket);
    assert.ok(versions.length < 4000, `the scan stopped: ${versions.length} of 4000 uploaded`);
    assert.equal(new Set(versions.map((v) => v.key)).size, versions.length, 'each once');
    const status = (await service.status()) as Awaited<ReturnType<Service['status']>> & { lastFailedPass: { error: string } | null };
    assert.equal(status.counts.working, 0, 'nothing left working');
    assert.match(status.lastFailedPass?.error ?? '', /interrupted by SIGTERM/, 'the pass is recorded as interrupted');
  });
});
