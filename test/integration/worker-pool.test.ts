// The worker pool with its real collaborators: a SQLite ledger, archiveClaimed, S3Store on moto_server.
// Waits are conditions with deadlines (waitUntil / withDeadline), never guessed sleeps.
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import type { TargetConfig } from '../../src/config.js';
import { StoreError } from '../../src/errors.js';
import type { ClaimedFile, Ledger } from '../../src/ledger/ledger.js';
import type { FileRow } from '../../src/ledger/reader.js';
import { archiveClaimed, type ArchiveDeps, type ArchiveOutcome, type ArchiveSettings } from '../../src/pipeline/archive-file.js';
import { nodeSourceFs } from '../../src/source/source-fs.js';
import { WorkerPool, type WorkerPoolDeps } from '../../src/pipeline/worker-pool.js';
import type { S3Store } from '../../src/s3/s3-store.js';
import {
  archiveSettings,
  openTestLedger,
  silentLog,
  statOf,
  targetConfig,
  tempDir,
  waitUntil,
  withDeadline,
  writeFile,
} from '../support/fixtures.js';
import { listVersions, startMotoStore, type MotoServer } from '../support/moto.js';

const SETTINGS: ArchiveSettings = archiveSettings({ multipartThresholdBytes: 16 * 1024 * 1024, partSizeBytes: 8 * 1024 * 1024, maxBackoffSeconds: 1 });

let moto: MotoServer;
let s3: S3Client;
let store: S3Store;
let stopS3: () => Promise<void>;
let buckets = 0;

before(async () => ({ moto, client: s3, store, stop: stopS3 } = await startMotoStore(16)));
after(() => stopS3());

interface Env {
  readonly root: string;
  readonly bucket: string;
  readonly target: TargetConfig;
  readonly ledger: Ledger;
}

async function setup(t: TestContext): Promise<Env> {
  const dir = tempDir(t, 'sftppush-pool');
  const root = path.join(dir, 'incoming');
  fs.mkdirSync(root);
  const bucket = `pool-${process.pid}-${(buckets += 1)}`;
  await moto.createBucket(bucket);
  return { root, bucket, target: targetConfig({ path: root, bucket }), ledger: openTestLedger(t, dir) };
}

/** archiveClaimed wired as app.ts wires it, with the store replaceable for fault cases. */
function archiver(env: Env, objectStore: ArchiveDeps['store'] = store): (claim: ClaimedFile) => Promise<ArchiveOutcome> {
  return (claim) =>
    archiveClaimed(claim, {
      ledger: env.ledger,
      store: objectStore,
      source: nodeSourceFs,
      log: silentLog,
      writeMode: () => Promise.resolve('conditional'),
      now: Date.now,
      random: () => 0,
      settings: SETTINGS,
      targetFor: (targetPath) => (targetPath === env.target.path ? env.target : undefined),
      reobserve: (target, relPath) => void env.ledger.observe(target.path, relPath, statOf(path.join(target.path, relPath))),
    });
}

/** A pool on the env's ledger; stopped when the test ends (stop is idempotent). */
function createPool(t: TestContext, env: Env, deps: Partial<WorkerPoolDeps> = {}): WorkerPool {
  const pool = new WorkerPool({
    ledger: env.ledger,
    archive: archiver(env),
    log: silentLog,
    now: Date.now,
    owner: `pid:${process.pid}`,
    concurrency: 4,
    onFatal: (error) => assert.fail(`unexpected fatal error: ${String(error)}`),
    ...deps,
  });
  t.after(() => withDeadline('pool.stop() at test end', pool.stop()));
  return pool;
}

function arrive(env: Env, relPath: string, content: string): void {
  writeFile(env.root, relPath, content);
  env.ledger.observe(env.target.path, relPath, statOf(path.join(env.root, relPath)));
}

function row(env: Env, relPath: string): FileRow {
  const latest = env.ledger.reader.story(relPath, env.target.path).generations.at(-1);
  assert.ok(latest, `no ledger row for ${relPath}`);
  return latest;
}

function stateOf(env: Env, relPath: string): string {
  return row(env, relPath).state;
}

async function objectText(env: Env, key: string): Promise<string> {
  const response = await s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: key }));
  return (await response.Body?.transformToString()) ?? '';
}

/** Lets every ready callback run a few times over, so anything a synchronous wake would start has started. */
async function settleEventLoop(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

void test('every queued file is archived once by four workers, never more than four at a time, and drained() resolves', async (t) => {
  const env = await setup(t);
  const names = Array.from({ length: 24 }, (_, i) => `batch/${String(i).padStart(2, '0')}.csv`);
  for (const name of names) arrive(env, name, `content of ${name}\n`);
  let inFlight = 0;
  let mostInFlight = 0;
  const archive = archiver(env);
  const pool = createPool(t, env, {
    concurrency: 4,
    archive: async (claim) => {
      mostInFlight = Math.max(mostInFlight, (inFlight += 1));
      try {
        return await archive(claim);
      } finally {
        inFlight -= 1;
      }
    },
  });

  pool.start();
  await withDeadline('drained()', pool.drained(), 30_000);

  assert.deepEqual(env.ledger.reader.status().counts, { pending: 0, working: 0, retry: 0, archived: 24, quarantined: 0, gone: 0 });
  assert.ok(mostInFlight <= 4, `${mostInFlight} files in flight with concurrency 4`);
  const versions = await listVersions(s3, env.bucket);
  assert.deepEqual(versions.map((v) => v.key).sort(), names);
  for (const name of [names[0]!, names.at(-1)!]) assert.equal(await objectText(env, name), `content of ${name}\n`);
});

void test('wake() makes a sleeping pool take new work without waiting for its poll', async (t) => {
  const env = await setup(t);
  // The loops go to sleep on a mocked setTimeout that never fires; resetting the mock keeps it that way for
  // them while the rest of the test (S3, waitUntil) gets real timers back. Only wake() can rouse them now.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const pool = createPool(t, env, { concurrency: 2 });
  pool.start();
  await settleEventLoop();
  t.mock.timers.reset();
  assert.equal(pool.busy, 0);

  arrive(env, 'fresh.csv', 'arrived while the pool slept\n');
  await settleEventLoop();
  assert.equal(stateOf(env, 'fresh.csv'), 'pending', 'nothing but wake() can start the sleeping loops');

  pool.wake();

  await waitUntil('fresh.csv is archived', () => stateOf(env, 'fresh.csv') === 'archived');
  assert.equal(await objectText(env, 'fresh.csv'), 'arrived while the pool slept\n');
});

void test('stop() waits for files in hand to finish and claims nothing after it is called', async (t) => {
  const env = await setup(t);
  arrive(env, 'first.csv', 'in hand when stop is called\n');
  arrive(env, 'second.csv', 'must wait for the next start\n');
  const entered = deferred<ClaimedFile>();
  const gate = deferred();
  const archive = archiver(env);
  const pool = createPool(t, env, {
    concurrency: 1,
    archive: async (claim) => {
      entered.resolve(claim);
      await gate.promise;
      return archive(claim);
    },
  });
  pool.start();
  assert.equal((await withDeadline('first claim', entered.promise)).relPath, 'first.csv');

  let stopped = false;
  const stopping = pool.stop().then(() => (stopped = true));
  await settleEventLoop();
  assert.equal(stopped, false, 'stop() resolved while a file was still in hand');
  assert.equal(pool.busy, 1);

  gate.resolve();
  await withDeadline('stop()', stopping);

  assert.equal(pool.busy, 0);
  assert.equal(stateOf(env, 'first.csv'), 'archived');
  assert.equal(stateOf(env, 'second.csv'), 'pending');
});

void test('one claim takes a batch for the idle workers, and stop() gives back the rows of it no worker started', async (t) => {
  const env = await setup(t);
  for (const name of ['a.csv', 'b.csv', 'c.csv', 'd.csv']) arrive(env, name, `content of ${name}\n`);
  const started: string[] = [];
  const gate = deferred();
  const archive = archiver(env);
  let batches = 0;
  const pool = createPool(t, env, {
    concurrency: 2,
    ledger: {
      claimBatch: (owner, max) => ((batches += 1), env.ledger.claimBatch(owner, max)),
      requeue: (claim, reason, notBefore) => env.ledger.requeue(claim, reason, notBefore),
      nextRetryAt: () => env.ledger.nextRetryAt(),
      hasClaimableWork: () => env.ledger.hasClaimableWork(),
    },
    // a.csv goes through at once; every other file waits at the gate, so the second batch (c, d) is claimed
    // by a.csv's worker while b.csv's still holds b: c starts, d waits in the batch.
    archive: async (claim) => {
      started.push(claim.relPath);
      if (claim.relPath !== 'a.csv') await gate.promise;
      return archive(claim);
    },
  });
  pool.start();
  await waitUntil('b.csv and c.csv in hand', () => started.includes('b.csv') && started.includes('c.csv'));
  assert.equal(batches, 2, 'two claims for four rows with two workers');
  assert.equal(stateOf(env, 'd.csv'), 'working', 'claimed in the batch');

  const stopping = pool.stop();
  gate.resolve();
  await withDeadline('stop()', stopping);

  assert.deepEqual(started.sort(), ['a.csv', 'b.csv', 'c.csv']);
  for (const name of ['a.csv', 'b.csv', 'c.csv']) assert.equal(stateOf(env, name), 'archived');
  assert.equal(stateOf(env, 'd.csv'), 'pending', 'given back, for the next start');
  assert.deepEqual(env.ledger.reader.story('d.csv').history.map((h) => h.toState), ['pending', 'working', 'pending']);
  assert.deepEqual((await listVersions(s3, env.bucket)).map((v) => v.key).sort(), ['a.csv', 'b.csv', 'c.csv']);
});

void test('a file whose upload failed is retried by the pool once its backoff passes, and stored once', async (t) => {
  const env = await setup(t);
  arrive(env, 'bumpy.csv', 'second time lucky\n');
  let puts = 0;
  // The first PUT fails as S3 would when throttling; the pool must come back to it on its own.
  const flaky: ArchiveDeps['store'] = {
    put: (request) =>
      (puts += 1) === 1
        ? Promise.reject(new StoreError('put', `s3://${request.bucket}/${request.key}`, true, { cause: new Error('SlowDown') }))
        : store.put(request),
    head: (bucket, key) => store.head(bucket, key),
    deleteVersion: (bucket, key, versionId) => store.deleteVersion(bucket, key, versionId),
  };
  const pool = createPool(t, env, { archive: archiver(env, flaky) });

  pool.start();

  await waitUntil('bumpy.csv is archived', () => stateOf(env, 'bumpy.csv') === 'archived');
  assert.equal(puts, 2);
  assert.equal(row(env, 'bumpy.csv').attempts, 2);
  assert.deepEqual(
    env.ledger.reader.story('bumpy.csv').history.map((h) => h.toState),
    ['pending', 'working', 'retry', 'working', 'archived'],
  );
  assert.equal((await listVersions(s3, env.bucket, 'bumpy.csv')).length, 1);
});

/** A pool whose archive step fails as a broken ledger would: thrown out of archiveClaimed. */
function failingPool(t: TestContext, env: Env, fatalErrors: unknown[], claims: ClaimedFile[]): WorkerPool {
  return createPool(t, env, {
    concurrency: 2,
    archive: (claim) => {
      claims.push(claim);
      return Promise.reject(new Error('SQLITE_IOERR: disk I/O error'));
    },
    onFatal: (error) => fatalErrors.push(error),
  });
}

void test('a ledger failure calls onFatal and the pool stops claiming', async (t) => {
  const env = await setup(t);
  for (let i = 0; i < 5; i += 1) arrive(env, `f${i}.csv`, `file ${i}\n`);
  const fatalErrors: unknown[] = [];
  const claims: ClaimedFile[] = [];
  const pool = failingPool(t, env, fatalErrors, claims);

  pool.start();
  await waitUntil('onFatal is called', () => fatalErrors.length > 0);

  assert.match(String(fatalErrors[0]), /SQLITE_IOERR/);
  arrive(env, 'after-fatal.csv', 'must not be claimed by a failed pool\n');
  pool.wake();
  await settleEventLoop();
  assert.equal(stateOf(env, 'after-fatal.csv'), 'pending');
  assert.ok(claims.length <= 2, `${claims.length} claims after the ledger failed (concurrency 2)`);
  await withDeadline('stop() after a fatal error', pool.stop());
  assert.equal(pool.busy, 0);
  assert.equal(env.ledger.reader.status().counts.pending, 6 - claims.length);
});

void test('drained() settles after a fatal error instead of waiting forever for work nobody will claim', async (t) => {
  const env = await setup(t);
  for (let i = 0; i < 4; i += 1) arrive(env, `g${i}.csv`, `file ${i}\n`);
  const fatalErrors: unknown[] = [];
  const pool = failingPool(t, env, fatalErrors, []);

  pool.start();
  await waitUntil('onFatal is called', () => fatalErrors.length > 0);

  // `sftppush reconcile` awaits drained(): if it never settles, the command hangs instead of exiting 1.
  const outcome = await withDeadline(
    'drained() to settle after the pool stopped on a fatal error',
    pool.drained().then(
      () => 'resolved',
      () => 'rejected',
    ),
    5_000,
  );
  assert.ok(outcome === 'resolved' || outcome === 'rejected');
});
