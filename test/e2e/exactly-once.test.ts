// Issue 6's findings end to end: the real `bin/sftppush watch` on a versioned moto bucket (behind a fault proxy
// where a fault is needed), each ending with exactly one object version per content.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MIGRATIONS_DIR } from '../../src/app.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { patternBytes, waitFor, withDeadline } from '../support/fixtures.js';
import { startFaultProxy, target, type FaultProxy } from '../support/fault-proxy.js';
import { listVersions, startMoto, type MotoServer } from '../support/moto.js';
import { createService, isFileOutcome, sha256, type LogLine, type RunningService, type Service } from '../support/service.js';

const MIB = 1024 * 1024;

let moto: MotoServer;
let proxy: FaultProxy;
const services: Service[] = [];

before(async () => {
  moto = await startMoto();
  proxy = await startFaultProxy(moto.endpoint);
});

after(async () => {
  for (const service of services) service.cleanup();
  await proxy.stop();
  await moto.stop();
});

async function newService(options: Omit<Parameters<typeof createService>[0], 'moto'>): Promise<Service> {
  const service = await createService({ moto, ...options });
  services.push(service);
  return service;
}

/** Object versions per key in the bucket. */
async function versionCounts(bucket: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const v of await listVersions(moto.client, bucket)) counts[v.key] = (counts[v.key] ?? 0) + 1;
  return counts;
}

function write(service: Service, relPath: string, bytes: Buffer | string): void {
  const file = path.join(service.targetDir, relPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
}

/**
 * `cp -p` of new bytes onto an existing file whose mtime they carry: same inode (O_TRUNC), the mtime restored
 * to the nanosecond, as sftp `put -p`, WinSCP's "preserve timestamp" and `rsync --inplace -t` leave it.
 */
function copyKeepingMtime(service: Service, relPath: string, bytes: string): void {
  const file = path.join(service.targetDir, relPath);
  const source = path.join(service.dir, 'cp-p.source');
  fs.writeFileSync(source, bytes);
  execFileSync('touch', ['-r', file, source]);
  execFileSync('cp', ['-p', source, file]);
}

function linesAbout(run: RunningService, pattern: RegExp): LogLine[] {
  return run.logs.filter((line) => pattern.test(line.msg));
}

void describe('exactly once in ordinary operation (child process, moto)', () => {
  void it('a second watch on the same ledger is refused at once, naming the ledger and the holder (finding 5)', async () => {
    const service = await newService({ bucket: 'once-lock' });
    const first = await service.start();
    const second = await service.start({ noWait: true });
    const exit = await withDeadline('the second watch to exit', second.exited, 10_000);
    assert.deepEqual(exit, { code: 1, signal: null });
    assert.match(second.stderr, new RegExp(`in use by another sftppush watch \\(pid ${first.pid}`));
    assert.ok(second.stderr.includes(service.ledgerPath), second.stderr);
    assert.equal(await first.stop(), 0);
    // The lock goes with its holder: a new watch starts.
    const third = await service.start();
    assert.equal(await third.stop(), 0);
  });

  void it('a scan every second during slow uploads takes back nothing: one version per file (finding 1)', async (t) => {
    const service = await newService({
      bucket: 'once-schedule',
      concurrency: 3,
      reconcileToml: 'schedule = "* * * * * *"',
      uploadToml: 'multipart_threshold_mb = 5\npart_size_mb = 5',
      endpoint: proxy.endpoint,
    });
    const names = ['big-1.bin', 'big-2.bin', 'big-3.bin'];
    // Each large file's first part is answered 2.5 s late: every upload spans two or three scans.
    for (const name of names) proxy.inject({ ...target.uploadPart(name, 1), kind: 'stall', ms: 2500 });
    t.after(() => proxy.clear());
    const run = await service.start();
    names.forEach((name, i) => write(service, name, patternBytes(11 * MIB, i + 1)));
    for (let i = 0; i < 30; i += 1) write(service, `small/${i}.csv`, `row ${i}\n`);
    for (const name of names) await run.waitForOutcomes(name, 1, 60_000);
    await run.waitForLogCount('30 small files archived', (l) => isFileOutcome()(l) && String(l.path).startsWith('small/'), 30, 30_000);
    assert.ok(linesAbout(run, /reconcile scan finished/).length >= 3, 'scans ran during the uploads');
    assert.deepEqual(linesAbout(run, /no longer held|taken over|pending again/), [], 'no row taken back');
    const counts = await versionCounts(service.bucket);
    assert.equal(Object.keys(counts).length, 33);
    assert.ok(Object.values(counts).every((n) => n === 1), JSON.stringify(counts));
    assert.equal(await run.stop(), 0);
  });

  void it('a restart while retries are due writes each file once (finding 1, the start-up race)', async (t) => {
    const service = await newService({
      bucket: 'once-retry-due',
      uploadToml: 'max_backoff_seconds = 1',
      endpoint: proxy.endpoint,
    });
    // S3 refuses every PUT of these files while the first run lasts (503 SlowDown: nothing is stored).
    for (let i = 0; i < 8; i += 1) {
      proxy.inject({ ...target.putObject(`due-${i}.csv`), kind: 'status', status: 503, code: 'SlowDown', times: 1000 });
    }
    const first = await service.start();
    for (let i = 0; i < 8; i += 1) write(service, `due-${i}.csv`, `due ${i}\n`);
    await first.waitForLogCount('8 files failing while S3 throttles', (l) => l.msg.startsWith('archive failed'), 8);
    assert.equal(await first.stop(), 0);
    proxy.clear();
    // Restart once every retry is due, so the workers claim them at once, as the start-up scan begins.
    const ledger = Ledger.open(service.ledgerPath, { migrationsDir: MIGRATIONS_DIR });
    const dueAt = Math.max(...ledger.reader.failures(100).map((row) => row.nextAttemptAt ?? 0));
    ledger.close();
    await waitFor('every retry to be due', () => (Date.now() > dueAt ? true : undefined), { deadlineMs: 5000 });
    // Answers held 1.5 s: the retries claimed at start are still in flight when the start-up scan runs.
    for (let i = 0; i < 8; i += 1) proxy.inject({ ...target.putObject(`due-${i}.csv`), kind: 'stall', ms: 1500 });
    t.after(() => proxy.clear());
    const second = await service.start();
    await second.waitForLogCount('8 files archived', isFileOutcome(), 8, 30_000);
    const counts = await versionCounts(service.bucket);
    assert.deepEqual(Object.values(counts), Array(8).fill(1), JSON.stringify(counts));
    assert.deepEqual(linesAbout(second, /no longer held|taken over|pending again/), [], 'no claim of this process taken back');
    assert.equal(await second.stop(), 0);
  });

  void it('a PUT whose answer is lost after S3 stored it is not written again (finding 2)', async (t) => {
    const service = await newService({ bucket: 'once-lost-answer', endpoint: proxy.endpoint, uploadToml: 'max_backoff_seconds = 1' });
    proxy.inject({ ...target.putObject('lost.csv'), kind: 'lose-answer' });
    t.after(() => proxy.clear());
    const run = await service.start();
    write(service, 'lost.csv', 'the answer to this PUT never arrives\n');
    const outcome = await run.waitForLog('lost.csv archived', isFileOutcome('lost.csv'), 30_000);
    assert.equal(outcome.foundByHead, true, 'the next attempt found what the first one stored');
    assert.equal(outcome.foundBy, 'precondition');
    const puts = proxy.requests.filter((r) => r.method === 'PUT' && r.path === '/once-lost-answer/lost.csv');
    assert.equal(puts.length, 2, 'one PUT lost, one conditional PUT refused with 412; the SDK resent nothing');
    assert.deepEqual(await versionCounts(service.bucket), { 'lost.csv': 1 });
    assert.equal(await run.stop(), 0);
  });

  void it('a deleted ledger re-uploads nothing S3 already holds (finding 3)', async () => {
    const service = await newService({ bucket: 'once-lost-ledger' });
    const files: { relPath: string; bytes: Buffer }[] = Array.from({ length: 20 }, (_, i) => ({ relPath: `d${i % 3}/f${i}.csv`, bytes: Buffer.from(`content ${i}\n`) }));
    files.push({ relPath: 'big.bin', bytes: patternBytes(20 * MIB, 9) });
    for (const f of files) write(service, f.relPath, f.bytes);
    const first = await service.start();
    await first.waitForLogCount('every file archived', isFileOutcome(), files.length, 30_000);
    assert.equal(await first.stop(), 0);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${service.ledgerPath}${suffix}`, { force: true });
    const second = await service.start();
    await second.waitForLogCount('every file recorded again', isFileOutcome(), files.length, 30_000);
    const outcomes = second.logs.filter(isFileOutcome());
    assert.ok(outcomes.every((l) => l.foundByHead === true), 'every file found in S3, none written');
    const counts = await versionCounts(service.bucket);
    assert.deepEqual(Object.keys(counts).sort(), files.map((f) => f.relPath).sort());
    assert.ok(Object.values(counts).every((n) => n === 1), JSON.stringify(counts));
    assert.equal(await second.stop(), 0);
  });

  void it('a rewrite in place that restores size and mtime (cp -p onto the file) is archived (finding 4)', async () => {
    const service = await newService({ bucket: 'once-rewrite' });
    const run = await service.start();
    write(service, 'rates.csv', 'EUR,1.0850\n');
    await run.waitForOutcomes('rates.csv', 1);
    copyKeepingMtime(service, 'rates.csv', 'EUR,1.0851\n');
    await run.waitForOutcomes('rates.csv', 2);
    const versions = await listVersions(moto.client, service.bucket);
    assert.equal(versions.length, 2);
    const story = await service.story('rates.csv');
    assert.deepEqual(story.generations.map((g) => g.sha256), [sha256(Buffer.from('EUR,1.0850\n')), sha256(Buffer.from('EUR,1.0851\n'))]);
    assert.equal(await run.stop(), 0);
  });

  void it('the same bytes copied over the file with its mtime kept (only the ctime changes) are a duplicate, not a version', async () => {
    const service = await newService({ bucket: 'once-touch' });
    const run = await service.start();
    write(service, 'same.csv', 'unchanged bytes\n');
    await run.waitForOutcomes('same.csv', 1);
    copyKeepingMtime(service, 'same.csv', 'unchanged bytes\n');
    await run.waitForOutcomes('same.csv', 2);
    assert.equal(run.logs.filter(isFileOutcome('same.csv')).at(-1)?.msg, 'file duplicate');
    assert.equal((await listVersions(moto.client, service.bucket)).length, 1);
    assert.equal(await run.stop(), 0);
  });
});
