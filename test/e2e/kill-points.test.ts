// Exactly once at each named kill point (src/kill-points.ts): the real `bin/sftppush watch` SIGKILLs itself at
// one chosen instant of one file's archive, a restart without the variable finishes the job, and the test
// checks both that S3 holds exactly one version of the content and WHICH recovery path ran: a write (nothing
// had landed), a 412 that found the earlier PUT (it had landed), or nothing at all (the ledger already knew).
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { KILL_AT_VARIABLE, type KillPoint } from '../../src/kill-points.js';
import { getObject, listVersions } from '../support/moto.js';
import {
  motoForSuite,
  createService,
  describeLogs,
  exitWithin,
  isFileOutcome,
  sha256,
  type LogLine,
  type RunningService,
  type Service,
  type StoryJson,
} from '../support/service.js';
import { patternBytes, writeFile } from '../support/fixtures.js';

const MIB = 1024 * 1024;
/** A file above the threshold goes up in 5 MiB parts: three parts for 12 MiB. */
const MULTIPART_TOML = 'multipart_threshold_mb = 5\npart_size_mb = 5';
const LARGE_BYTES = patternBytes(12 * MIB, 7);
/** How long an armed service may take to reach its kill point (start-up, probe, scan, claim, upload). */
const KILL_DEADLINE_MS = 20_000;

/** A row of `status --json PATH`: the helper's type leaves out the attempts the ledger also reports. */
type Generation = StoryJson['generations'][number] & { readonly attempts: number };
type Transition = Pick<StoryJson['history'][number], 'fromState' | 'toState' | 'detail'>;

function smallBytes(point: KillPoint): Buffer {
  return Buffer.from(`killed ${point}\n${sha256(Buffer.from(point))}\n`);
}

function transitions(story: StoryJson): Transition[] {
  return story.history.map(({ fromState, toState, detail }) => ({ fromState, toState, detail }));
}

function onlyGeneration(story: StoryJson): Generation {
  assert.equal(story.generations.length, 1, `one generation: ${JSON.stringify(story.generations)}`);
  return story.generations[0] as Generation;
}

/** The owner a `claimed by <owner>` history row names. */
function claimant(transition: Transition | undefined): string {
  const match = /^claimed by (\S+)$/.exec(transition?.detail ?? '');
  assert.ok(match?.[1], `a claim in the history, got ${JSON.stringify(transition)}`);
  return match[1];
}


interface Crash {
  readonly service: Service;
  readonly killed: RunningService;
  /** The ledger's story of the file at the instant of the kill. */
  readonly story: StoryJson;
  /** The owner the killed process claimed the file as. */
  readonly owner: string;
}

void describe('kill points: a SIGKILL at each named instant of an archive, then a restart (child process, moto)', () => {
  const env = motoForSuite();

  async function versionsOf(bucket: string, key: string): Promise<{ versionId: string }[]> {
    return (await listVersions(env.moto.client, bucket)).filter((v) => v.key === key);
  }

  async function openUploads(bucket: string): Promise<{ key: string; uploadId: string; parts: number }[]> {
    const { Uploads = [] } = await env.moto.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    return Promise.all(
      Uploads.map(async ({ Key = '', UploadId = '' }) => {
        const { Parts = [] } = await env.moto.client.send(new ListPartsCommand({ Bucket: bucket, Key, UploadId }));
        return { key: Key, uploadId: UploadId, parts: Parts.length };
      }),
    );
  }

  /**
   * Writes one file, then runs the service armed at `point` until it SIGKILLs itself. The file is written
   * before the start, so the start-up scan finds it; settle_seconds = 0 takes it at once instead of after the
   * helper's default 1 s (how long it waits is not what these tests are about).
   */
  async function crashAt(point: KillPoint, relPath: string, bytes: Buffer, uploadToml?: string): Promise<Crash> {
    const service = await createService({
      moto: env.moto,
      bucket: `kill-${point}`,
      concurrency: 1,
      settleSeconds: 0,
      ...(uploadToml === undefined ? {} : { uploadToml }),
    });
    env.services.push(service);
    writeFile(service.targetDir, relPath, bytes);
    // noWait: the kill may come before the helper has seen `sftppush watching`.
    const killed = await service.start({ env: { [KILL_AT_VARIABLE]: point }, noWait: true });
    const exit = await exitWithin(killed, KILL_DEADLINE_MS, `the ${point} kill point never fired`);
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' }, `killed by itself at ${point}${describeLogs(killed)}`);
    assert.ok(
      killed.logs.some((line) => line.msg.startsWith('TEST-ONLY kill point armed') && line[KILL_AT_VARIABLE] === point),
      `the armed point is announced${describeLogs(killed)}`,
    );
    assert.equal(killed.logs.filter(isFileOutcome(relPath)).length, 0, 'the killed run never logged an outcome for the file');
    const story = await service.story(relPath);
    const owner = claimant(story.history[1]);
    assert.match(owner, new RegExp(`^pid:${killed.pid}:\\S+:watch$`), 'the claim names the killed process');
    return { service, killed, story, owner };
  }

  /** At the kill, the ledger holds the claim and nothing more: working, one attempt, no object recorded. */
  function assertLeftWorking(crash: Crash, bytes: Buffer): void {
    const row = onlyGeneration(crash.story);
    assert.equal(row.state, 'working', `left working at the kill: ${JSON.stringify(row)}`);
    assert.equal(row.attempts, 1);
    assert.deepEqual(crash.story.objects, [], 'no object recorded');
    assert.deepEqual(transitions(crash.story), [
      { fromState: null, toState: 'pending', detail: `observed ${bytes.length} bytes` },
      { fromState: 'pending', toState: 'working', detail: `claimed by ${crash.owner}` },
    ]);
  }

  /** The restart (without the variable) archives the file; returns its run, already stopped, and the outcome line. */
  async function restart(crash: Crash, relPath: string): Promise<{ run: RunningService; outcome: LogLine; story: StoryJson }> {
    const run = await crash.service.start();
    await run.waitForOutcomes(relPath);
    const outcome = run.logs.find(isFileOutcome(relPath))!;
    assert.equal(await run.stop(), 0, `the restart exits 0 on SIGTERM${describeLogs(run)}`);
    assert.equal(run.logs.filter(isFileOutcome(relPath)).length, 1, 'one outcome for the file');
    return { run, outcome, story: await crash.service.story(relPath) };
  }

  /** S3 holds exactly one version at the key, with these bytes and their sha256; returns its version id. */
  async function assertOneVersion(bucket: string, key: string, bytes: Buffer): Promise<string> {
    const versions = await versionsOf(bucket, key);
    assert.equal(versions.length, 1, `${key}: exactly one object version, got ${JSON.stringify(versions)}`);
    const all = await listVersions(env.moto.client, bucket);
    assert.deepEqual(all.map((v) => v.key), [key], 'no other key in the bucket');
    const { body, metadata } = await getObject(env.moto.client, bucket, key);
    assert.ok(body.equals(bytes), `${key}: S3 holds the file's bytes (${body.length} of ${bytes.length})`);
    assert.equal(metadata.sha256, sha256(bytes), `${key}: sha256 metadata names the content`);
    return versions[0]!.versionId;
  }

  /**
   * The restart found the row left working by a dead owner, put it back to pending, claimed it again and
   * ended with `detail`; the ledger records exactly the one version S3 holds.
   */
  function assertRecovered(crash: Crash, restarted: { run: RunningService; story: StoryJson }, bytes: Buffer, detail: string, versionId: string): void {
    const recovery = restarted.run.logs.find((line) => line.msg === 'rows left working by a stopped process are pending again');
    assert.equal(recovery?.recovered, 1, `the restart recovered one row${describeLogs(restarted.run)}`);
    const second = claimant(restarted.story.history[3]);
    assert.match(second, new RegExp(`^pid:${restarted.run.pid}:\\S+:watch$`), 'the second claim is the restart\'s');
    assert.deepEqual(transitions(restarted.story), [
      { fromState: null, toState: 'pending', detail: `observed ${bytes.length} bytes` },
      { fromState: 'pending', toState: 'working', detail: `claimed by ${crash.owner}` },
      { fromState: 'working', toState: 'pending', detail: `recovered after ${crash.owner} stopped` },
      { fromState: 'pending', toState: 'working', detail: `claimed by ${second}` },
      { fromState: 'working', toState: 'archived', detail },
    ]);
    const row = onlyGeneration(restarted.story);
    assert.equal(row.state, 'archived');
    assert.equal(row.attempts, 2, 'the killed attempt and the restart\'s');
    assert.equal(row.sha256, sha256(bytes));
    assert.deepEqual(
      restarted.story.objects.map((o) => ({ key: o.key, versionId: o.versionId, sha256: o.sha256 })),
      [{ key: 'file.bin', versionId, sha256: sha256(bytes) }],
      'the ledger records the one version S3 holds',
    );
  }

  /** Written on the restart: nothing had landed, nothing was found, S3 accepted a write. */
  async function assertWrittenAfterRecovery(
    point: KillPoint,
    bytes: Buffer,
    options: { uploadToml?: string; atKill?: (crash: Crash) => Promise<void> } = {},
  ): Promise<Crash & { readonly restarted: RunningService }> {
    const crash = await crashAt(point, 'file.bin', bytes, options.uploadToml);
    assertLeftWorking(crash, bytes);
    assert.equal((await versionsOf(crash.service.bucket, 'file.bin')).length, 0, 'nothing in S3 at the kill');
    await options.atKill?.(crash);
    const restarted = await restart(crash, 'file.bin');
    assert.equal(restarted.outcome.msg, 'file archived');
    assert.equal(restarted.outcome.foundByHead, false, 'written, not found');
    assert.equal(restarted.outcome.foundBy, undefined);
    const versionId = await assertOneVersion(crash.service.bucket, 'file.bin', bytes);
    assertRecovered(crash, restarted, bytes, `uploaded: ${crash.service.bucket}/file.bin`, versionId);
    return { ...crash, restarted: restarted.run };
  }

  void it('after-claim: nothing was sent; the restart recovers the row and uploads it once', async () => {
    await assertWrittenAfterRecovery('after-claim', smallBytes('after-claim'));
  });

  void it('during-put: the PUT never reached S3; the restart recovers the row and uploads it once', async () => {
    await assertWrittenAfterRecovery('during-put', smallBytes('during-put'));
  });

  void it('during-multipart: a part was stored, the upload never completed; the restart aborts it and uploads the file once', async () => {
    let killedUpload = '';
    const crash = await assertWrittenAfterRecovery('during-multipart', LARGE_BYTES, {
      uploadToml: MULTIPART_TOML,
      atKill: async ({ service }) => {
        const open = await openUploads(service.bucket);
        assert.equal(open.length, 1, `the killed multipart upload is open, not completed: ${JSON.stringify(open)}`);
        assert.equal(open[0]!.key, 'file.bin');
        assert.ok(open[0]!.parts >= 1, `a part was stored before the kill: ${JSON.stringify(open)}`);
        killedUpload = open[0]!.uploadId;
        // Another writer's upload under the same prefix (the ledger never started it): the restart leaves it alone.
        await env.moto.client.send(new CreateMultipartUploadCommand({ Bucket: service.bucket, Key: 'other-host/part.bin' }));
      },
    });
    const open = await openUploads(crash.service.bucket);
    assert.deepEqual(open.map((u) => u.key), ['other-host/part.bin'], 'the killed upload is aborted; the foreign one is left alone');
    const restartLogs = crash.restarted.logs;
    const aborted = restartLogs.find((line) => line.msg === 'aborted a multipart upload a stopped process left open');
    assert.deepEqual({ key: aborted?.key, uploadId: aborted?.uploadId, owner: aborted?.owner }, { key: 'file.bin', uploadId: killedUpload, owner: crash.owner });
    const foreign = restartLogs.find((line) => line.msg.startsWith('open multipart uploads under our prefixes that this ledger did not start'));
    assert.deepEqual(foreign?.keys, [`${crash.service.bucket}/other-host/part.bin`]);
  });

  void it('after-put: the object landed, the ledger did not know; the restart\'s conditional write gets a 412 and records it', async () => {
    const bytes = smallBytes('after-put');
    const crash = await crashAt('after-put', 'file.bin', bytes);
    assertLeftWorking(crash, bytes);
    assert.ok(
      crash.killed.logs.some((line) => line.msg.startsWith('conditional writes on')),
      `moto honours conditional writes, so the restart's PUT carries If-None-Match${describeLogs(crash.killed)}`,
    );
    const landed = await versionsOf(crash.service.bucket, 'file.bin');
    assert.equal(landed.length, 1, 'the killed PUT landed');

    const restarted = await restart(crash, 'file.bin');
    assert.equal(restarted.outcome.msg, 'file archived');
    assert.equal(restarted.outcome.foundByHead, true, 'found in S3, not written again');
    assert.equal(restarted.outcome.foundBy, 'precondition', 'found because the conditional write was refused (412), not by a HEAD first');
    const versionId = await assertOneVersion(crash.service.bucket, 'file.bin', bytes);
    assert.equal(versionId, landed[0]!.versionId, 'the version is the killed run\'s PUT: no second PUT landed');
    assertRecovered(crash, restarted, bytes, `found in S3 after a 412, not written again: ${crash.service.bucket}/file.bin`, versionId);
  });

  void it('after-commit: the ledger already knew; the restart recovers nothing, claims nothing and writes nothing', async () => {
    const bytes = smallBytes('after-commit');
    const crash = await crashAt('after-commit', 'file.bin', bytes);
    const row = onlyGeneration(crash.story);
    assert.equal(row.state, 'archived', `archived at the kill: ${JSON.stringify(row)}`);
    assert.equal(row.attempts, 1);
    const versionId = await assertOneVersion(crash.service.bucket, 'file.bin', bytes);
    assert.deepEqual(crash.story.objects.map((o) => o.versionId), [versionId], 'the ledger recorded the one version');
    assert.deepEqual(transitions(crash.story).at(-1), {
      fromState: 'working',
      toState: 'archived',
      detail: `uploaded: ${crash.service.bucket}/file.bin`,
    });

    const run = await crash.service.start();
    // The start-up scan has seen the file once it finishes: the ledger's stat matches, so nothing is queued.
    const scan = await run.waitForLog('the start-up scan', (line) => line.msg === 'reconcile scan finished' && line.reason === 'startup');
    assert.equal(scan.filesSeen, 1);
    assert.equal(scan.filesQueued, 0, 'the archived file is not queued again');
    const status = await crash.service.status();
    assert.deepEqual(
      { pending: status.counts.pending, working: status.counts.working, archived: status.counts.archived },
      { pending: 0, working: 0, archived: 1 },
    );
    assert.equal(await run.stop(), 0);
    assert.equal(run.logs.find((line) => line.msg.startsWith('rows left working')), undefined, 'nothing to recover');
    assert.equal(run.logs.filter(isFileOutcome('file.bin')).length, 0, `no new outcome for the file${describeLogs(run)}`);
    const story = await crash.service.story('file.bin');
    assert.deepEqual(story, crash.story, 'the ledger\'s story is unchanged: no new claim, no new object');
    assert.equal(await assertOneVersion(crash.service.bucket, 'file.bin', bytes), versionId, 'the restart wrote nothing');
  });

  void it(`a bad ${KILL_AT_VARIABLE} makes watch exit 2 naming the variable`, async () => {
    const service = await createService({ moto: env.moto, bucket: 'kill-bad-value', settleSeconds: 0 });
    env.services.push(service);
    const run = await service.start({ env: { [KILL_AT_VARIABLE]: 'nowhere' }, noWait: true });
    const exit = await exitWithin(run, KILL_DEADLINE_MS, 'a bad kill point should stop watch at start-up');
    assert.deepEqual(exit, { code: 2, signal: null }, `a configuration error${describeLogs(run)}`);
    assert.match(run.stderr, new RegExp(`${KILL_AT_VARIABLE}=nowhere`), 'the message names the variable and its value');
    assert.match(run.stderr, /after-claim/, 'and lists the points it accepts');
  });
});
