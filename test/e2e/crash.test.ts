// Exactly once across crashes: the real service is killed (SIGKILL) or stopped (SIGTERM) in the middle of a
// burst, the rest of the burst lands while it is down, and a restart on the same ledger must finish the job
// with exactly one object version per file, whatever instant the kill hit.
import { PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import { MIGRATIONS_DIR } from '../../src/app.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { getObject, listVersions, type MotoServer } from '../support/moto.js';
import { createService, isFileOutcome, motoForSuite, sha256, type RunningService, type Service, type StatusJson } from '../support/service.js';
import { statOf, waitFor } from '../support/fixtures.js';

const FILES = 300;
/** Files written before the stop; the rest land while the service is down. */
const WRITTEN_BEFORE_STOP = 200;
const SETTLED_DEADLINE_MS = 45_000;

interface BurstFile {
  readonly relPath: string;
  readonly bytes: Buffer;
}

/** Unique content per file (so a mix-up between files shows), spread over directories made during the burst. */
function burstFiles(label: string, count = FILES): BurstFile[] {
  return Array.from({ length: count }, (_, i) => ({
    relPath: `batch-${i % 6}/file-${String(i).padStart(4, '0')}.csv`,
    bytes: Buffer.from(`${label},${i},${sha256(Buffer.from(`${label}/${i}`))}\n`),
  }));
}

function writeFiles(service: Service, files: readonly BurstFile[]): void {
  for (const file of files) {
    const absolute = path.join(service.targetDir, file.relPath);
    fs.mkdirSync(path.dirname(absolute), { recursive: true });
    fs.writeFileSync(absolute, file.bytes);
  }
}

function isSettled(status: StatusJson, archived: number): boolean {
  const { counts } = status;
  return counts.archived === archived && counts.pending === 0 && counts.working === 0 && counts.retry === 0;
}

/** Polls `status --json` (the operator's view) until every file is archived and nothing is left to do. */
async function waitUntilAllArchived(service: Service, expected: number, deadlineMs = SETTLED_DEADLINE_MS): Promise<StatusJson> {
  let last: StatusJson | undefined;
  return waitFor(
    `status to show ${expected} archived and nothing pending, working or retrying`,
    async () => {
      last = await service.status();
      return isSettled(last, expected) ? last : undefined;
    },
    { deadlineMs, intervalMs: 300, describe: () => JSON.stringify(last) },
  );
}

/** Every file has exactly one object version in S3, holding its bytes; no other keys exist. */
async function assertExactlyOnce(moto: MotoServer, bucket: string, files: readonly BurstFile[]): Promise<void> {
  const versions = await listVersions(moto.client, bucket);
  const counts = new Map<string, number>();
  for (const v of versions) counts.set(v.key, (counts.get(v.key) ?? 0) + 1);
  const extra = [...counts].filter(([, n]) => n !== 1);
  assert.deepEqual(extra, [], 'keys with more (or fewer) than one version');
  assert.deepEqual([...counts.keys()].sort(), files.map((f) => f.relPath).sort(), 'exactly the files written, no others');
  for (let i = 0; i < files.length; i += 16) {
    await Promise.all(
      files.slice(i, i + 16).map(async (file) => {
        const { body } = await getObject(moto.client, bucket, file.relPath);
        assert.ok(body.equals(file.bytes), `${file.relPath}: S3 holds ${JSON.stringify(body.toString())}`);
      }),
    );
  }
}

/** mulberry32: a tiny seeded PRNG, so a failing run's kill points can be replayed (SFTPPUSH_TEST_SEED). */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the restart had to clean up, for the test's diagnostics: how close to the PUT the kill came. */
function describeRecovery(run: RunningService): string {
  const recovered = Number(run.logs.find((line) => line.msg.startsWith('rows left working'))?.recovered ?? 0);
  const found = run.logs.filter((line) => isFileOutcome()(line) && line.foundByHead === true).length;
  return `restart recovered ${recovered} working row(s); ${found} found in S3 instead of re-uploading`;
}

void describe('crash safety (child process, moto)', () => {
  const env = motoForSuite();

  /**
   * Starts the service, writes the first part of a burst, stops it (how) once `stopAfterArchived` files are
   * archived, writes the rest, restarts on the same ledger and checks the exactly-once promise.
   */
  async function burstAcrossStop(
    t: TestContext,
    options: { bucket: string; concurrency: number; stopAfterArchived: number; how: 'SIGKILL' | 'SIGTERM' },
  ): Promise<void> {
    const service = await createService({ moto: env.moto, bucket: options.bucket, concurrency: options.concurrency });
    env.services.push(service);
    const files = burstFiles(options.bucket);
    const first = await service.start();
    writeFiles(service, files.slice(0, WRITTEN_BEFORE_STOP));
    await first.waitForLogCount(`${options.stopAfterArchived} files archived`, isFileOutcome(), options.stopAfterArchived, SETTLED_DEADLINE_MS);
    if (options.how === 'SIGKILL') {
      await first.kill();
    } else {
      assert.equal(await first.stop(), 0, 'SIGTERM exits 0');
      const afterStop = await service.status();
      assert.equal(afterStop.counts.working, 0, 'SIGTERM finishes the files in hand: nothing is left working');
    }
    t.diagnostic(`stopped with ${first.logs.filter(isFileOutcome()).length} of ${WRITTEN_BEFORE_STOP} written files archived`);
    writeFiles(service, files.slice(WRITTEN_BEFORE_STOP));

    const second = await service.start();
    const status = await waitUntilAllArchived(service, FILES);
    t.diagnostic(describeRecovery(second));
    assert.equal(status.counts.quarantined, 0);
    assert.equal(status.counts.gone, 0);
    await assertExactlyOnce(env.moto, options.bucket, files);
    assert.equal(await second.stop(), 0);
  }

  void it('SIGKILL just as the first file is archived: after a restart every file is in S3 exactly once', async (t) => {
    await burstAcrossStop(t, { bucket: 'crash-early', concurrency: 4, stopAfterArchived: 1, how: 'SIGKILL' });
  });

  void it('SIGKILL mid-burst with 8 uploads in flight: after a restart every file is in S3 exactly once', async (t) => {
    await burstAcrossStop(t, { bucket: 'crash-mid', concurrency: 8, stopAfterArchived: 100, how: 'SIGKILL' });
  });

  void it('SIGTERM mid-burst exits 0 and after a restart every file is in S3 exactly once', async (t) => {
    await burstAcrossStop(t, { bucket: 'crash-term', concurrency: 8, stopAfterArchived: 60, how: 'SIGTERM' });
  });

  // Issue 8's proof: three SIGKILLs at random points of a 1200-file burst, files landing while up and while down.
  void it('a burst of 1200 files with watch SIGKILLed at random moments three times, restarted each time: every file has exactly one version holding its bytes', async (t) => {
    const seed = Number(process.env.SFTPPUSH_TEST_SEED ?? Math.floor(Math.random() * 2 ** 32));
    t.diagnostic(`seed ${seed} (SFTPPUSH_TEST_SEED=${seed} replays these kill points)`);
    const random = seededRandom(seed);
    const total = 1200;
    const kills = 3;
    /** Before the first start (found by its start-up scan), then per round: while up, and while down after the kill. */
    const [beforeStart, whileUp, whileDown] = [150, 200, 150];
    assert.equal(beforeStart + kills * (whileUp + whileDown), total);
    const service = await createService({ moto: env.moto, bucket: 'crash-random', concurrency: 8 });
    env.services.push(service);
    const files = burstFiles('crash-random', total);
    let written = 0;
    const writeNext = (count: number): void => {
      writeFiles(service, files.slice(written, written + count));
      written += count;
    };

    writeNext(beforeStart);
    for (let round = 1; round <= kills; round += 1) {
      const archivedBefore = round === 1 ? 0 : (await service.status()).counts.archived; // no ledger before the first run
      const run = await service.start();
      writeNext(whileUp);
      // Kill after a random 5-30% of the whole burst has been archived by this run (less if fewer are left to do),
      // then a random 0-50 ms later, so the kill lands anywhere in a file's claim, read, PUT or ledger commit.
      const left = written - archivedBefore;
      const killAfter = Math.max(1, Math.min(Math.round(total * (0.05 + 0.25 * random())), left - 20));
      const delayMs = Math.floor(random() * 50);
      await run.waitForLogCount(`${killAfter} files archived in round ${round}`, isFileOutcome(), killAfter, SETTLED_DEADLINE_MS);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      await run.kill();
      const archived = (await service.status()).counts.archived;
      t.diagnostic(`kill ${round}: after ${killAfter} outcomes + ${delayMs} ms; ledger ${archived} archived of ${written} written`);
      if (round > 1) t.diagnostic(`run ${round}: ${describeRecovery(run)}`);
      assert.ok(archived < written, `kill ${round} hit the burst mid-stream (${archived} of ${written} archived)`);
      writeNext(whileDown);
    }
    assert.equal(written, total);

    const last = await service.start();
    const status = await waitUntilAllArchived(service, total, 60_000);
    t.diagnostic(`run ${kills + 1}: ${describeRecovery(last)}`);
    assert.equal(status.counts.quarantined, 0);
    assert.equal(status.counts.gone, 0);
    await assertExactlyOnce(env.moto, 'crash-random', files);
    assert.equal(await last.stop(), 0);
  });
});

/**
 * Leaves the ledger exactly as a SIGKILL right after a PUT leaves it: the path's next generation claimed
 * (working, one attempt) by a process that is gone, its object already in S3 but not in the ledger.
 * Built with the product's own Ledger API and the same metadata the service writes, while the service is down.
 */
async function leaveCrashedAttempt(
  moto: MotoServer,
  service: Service,
  relPath: string,
  bytes: Buffer,
  owner: string,
): Promise<void> {
  const file = path.join(service.targetDir, relPath);
  fs.writeFileSync(file, bytes);
  const ledger = Ledger.open(service.ledgerPath, { migrationsDir: MIGRATIONS_DIR });
  try {
    assert.equal(ledger.observe(service.targetDir, relPath, statOf(file)), 'queued');
    assert.equal(ledger.claimNext(owner)?.relPath, relPath);
  } finally {
    ledger.close();
  }
  await moto.client.send(
    new PutObjectCommand({
      Bucket: service.bucket,
      Key: relPath,
      Body: bytes,
      Metadata: { sha256: sha256(bytes), source: encodeURI(relPath), 'source-sha256': sha256(bytes) },
    }),
  );
}

void describe('recovery from what a crash leaves behind (child process, moto)', () => {
  const env = motoForSuite();

  async function serviceWithArchived(bucket: string, relPath: string, bytes: Buffer): Promise<Service> {
    const service = await createService({ moto: env.moto, bucket });
    env.services.push(service);
    fs.writeFileSync(path.join(service.targetDir, relPath), bytes);
    const run = await service.start();
    await run.waitForOutcomes(relPath);
    assert.equal(await run.stop(), 0);
    return service;
  }

  // Generation 2 (B) was PUT, then the process died before recording it; while it was down the user put the
  // old content (A) back. A restart must leave S3's latest version equal to the file (A), but the duplicate
  // shortcut compares with the ledger's last *recorded* archive (A) and skips the upload.
  void it('content restored while down after a crashed PUT is uploaded again, so S3\'s latest matches the file', async () => {
    const contentA = Buffer.from('version A\n');
    const contentB = Buffer.from('version B, crashed after its PUT\n');
    const service = await serviceWithArchived('crash-revert', 'report.csv', contentA);
    await leaveCrashedAttempt(env.moto, service, 'report.csv', contentB, 'pid:2147483646');
    fs.writeFileSync(path.join(service.targetDir, 'report.csv'), contentA); // the user restores A
    const run = await service.start();
    await waitUntilAllArchived(service, 2);
    const latest = await getObject(env.moto.client, service.bucket, 'report.csv');
    assert.equal(latest.body.toString(), contentA.toString(), 'the latest S3 version holds what the file holds');
    assert.equal((await listVersions(env.moto.client, service.bucket)).length, 3, 'A, B (the crashed PUT), A again');
    assert.equal(await run.stop(), 0);
  });

  // After a crash the pid can be reused by any other process (small pid spaces in containers make this likely):
  // the owner names pid and start time, so a live process with the same pid is not mistaken for the owner.
  void it('a row left working by a dead service whose pid now belongs to another process is recovered', async (t) => {
    const contentA = Buffer.from('first\n');
    const contentB = Buffer.from('second, left working\n');
    const service = await serviceWithArchived('crash-pid-reuse', 'ledger-row.csv', contentA);
    // This test runner stands in for the unrelated process that now has the dead service's pid.
    await leaveCrashedAttempt(env.moto, service, 'ledger-row.csv', contentB, `pid:${process.pid}:1`); // this pid, but not this process's start time
    const run = await service.start();
    t.after(() => run.kill());
    let last: StatusJson | undefined;
    await waitFor(
      'the left-over working row to be recovered and archived',
      async () => {
        last = await service.status();
        return isSettled(last, 2) ? last : undefined;
      },
      { deadlineMs: 8_000, intervalMs: 300, describe: () => JSON.stringify(last) },
    );
  });
});
