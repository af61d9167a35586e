// After the archive, end to end: `bin/sftppush watch` against moto with a target's `after` set. The source is
// deleted (or moved) only once S3 verified the archive and the ledger recorded it; a SIGKILL in between is
// finished by the next start (and the story says so); a file rewritten meanwhile is a new generation, never
// deleted in place of the old one; a move keeps the relative path and never overwrites; a bucket without
// versioning under `after = "delete"` stops the start, naming the bucket.
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { KILL_AT_VARIABLE } from '../../src/kill-points.js';
import * as fixtures from '../support/archives.js';
import { writeFile } from '../support/fixtures.js';
import { getObject, listVersions } from '../support/moto.js';
import {
  createService,
  describeLogs,
  exitWithin,
  motoForSuite,
  sha256,
  type RunningService,
  type Service,
  type ServiceOptions,
  type StoryJson,
} from '../support/service.js';

/** The after-archive steps of a story: history rows from archived to archived, by generation. */
function afterSteps(story: StoryJson): string[] {
  return story.history.filter((h) => h.fromState === 'archived' && h.toState === 'archived').map((h) => h.detail ?? '');
}

void describe('after = delete | move:DIR (child process, moto)', () => {
  const env = motoForSuite();

  async function newService(options: Omit<ServiceOptions, 'moto'>): Promise<Service> {
    const service = await createService({ moto: env.moto, ...options });
    env.services.push(service);
    return service;
  }

  async function assertInS3(bucket: string, key: string, bytes: Buffer): Promise<void> {
    const { body, metadata } = await getObject(env.moto.client, bucket, key);
    assert.ok(body.equals(bytes), `s3://${bucket}/${key} holds the file's bytes`);
    assert.equal(metadata.sha256, sha256(bytes));
  }

  void it('delete: the source goes only after S3 verified the archive; the story shows the step', async () => {
    const service = await newService({ bucket: 'after-delete', uploadToml: 'after = "delete"' });
    const run = await service.start();
    const bytes = Buffer.from('delete me once archived\n');
    const file = writeFile(service.targetDir, 'a/b.csv', bytes);
    await run.waitForOutcomes('a/b.csv');
    await run.waitForLog('the delete', (l) => l.msg === 'source deleted after archive' && l.path === 'a/b.csv');
    assert.equal(await run.stop(), 0);
    assert.equal(fs.existsSync(file), false, 'the source is gone');
    await assertInS3(service.bucket, 'a/b.csv', bytes);
    const story = await service.story('a/b.csv');
    assert.deepEqual(
      story.history.map((h) => h.toState),
      ['pending', 'working', 'archived', 'archived'],
      'archived, then the after step',
    );
    assert.deepEqual(afterSteps(story), [`after: deleted ${file}`]);
  });

  void it('delete: an archive goes once every member is stored; a quarantined file is never deleted', async () => {
    const service = await newService({ bucket: 'after-archives', uploadToml: 'after = "delete"' });
    const staging = path.join(service.dir, 'staging');
    fs.mkdirSync(staging);
    const zip = await fixtures.zipArchive(staging);
    const hostile = await fixtures.unsafeNameArchive(staging, 'traversal');
    const run = await service.start();
    fs.renameSync(zip.path, path.join(service.targetDir, 'mixed.zip'));
    fs.renameSync(hostile.path, path.join(service.targetDir, 'hostile.zip'));
    await run.waitForOutcomes('mixed.zip');
    await run.waitForLog('hostile.zip quarantined', (l) => l.msg === 'file quarantined' && l.path === 'hostile.zip');
    await run.waitForLog('the archive deleted', (l) => l.msg === 'source deleted after archive' && l.path === 'mixed.zip');
    assert.equal(await run.stop(), 0);
    assert.equal(fs.existsSync(path.join(service.targetDir, 'mixed.zip')), false, 'the archive is gone');
    for (const member of zip.members) await assertInS3(service.bucket, `mixed/${member.name}`, member.bytes as Buffer);
    assert.ok(fs.existsSync(path.join(service.targetDir, 'hostile.zip')), 'the quarantined archive stays');
    const quarantined = await service.story('hostile.zip');
    assert.equal(quarantined.generations[0]?.state, 'quarantined');
    assert.deepEqual(afterSteps(quarantined), [], 'no after step for a quarantined file');
  });

  /** Runs the service armed to SIGKILL itself between the archive's commit and the delete. */
  async function killBeforeDelete(service: Service, relPath: string): Promise<RunningService> {
    const killed = await service.start({ env: { [KILL_AT_VARIABLE]: 'after-archive-record' }, noWait: true });
    const exit = await exitWithin(killed, 20_000, 'the after-archive-record kill point never fired');
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' }, `killed by itself${describeLogs(killed)}`);
    const story = await service.story(relPath);
    assert.equal(story.generations[0]?.state, 'archived', 'archived at the kill');
    assert.deepEqual(afterSteps(story), [], 'the delete had not run');
    assert.ok(fs.existsSync(path.join(service.targetDir, relPath)), 'the source is still there');
    return killed;
  }

  void it('a kill between the archive record and the delete: the next start finishes the delete, and says so', async () => {
    const service = await newService({ bucket: 'after-kill', settleSeconds: 0, concurrency: 1, uploadToml: 'after = "delete"' });
    const bytes = Buffer.from('killed before its delete\n');
    const file = writeFile(service.targetDir, 'k.bin', bytes);
    const killed = await killBeforeDelete(service, 'k.bin');

    const run = await service.start();
    const recovery = run.logs.find((l) => l.msg === 'after-archive actions a stopped process left due: finishing them');
    assert.equal(recovery?.due, 1, `the start took over the due delete${describeLogs(run)}`);
    const deleted = run.logs.find((l) => l.msg === 'source deleted after archive' && l.path === 'k.bin');
    assert.match(String(deleted?.recovery), new RegExp(`^finished at start after pid:${killed.pid}:\\S+:watch stopped$`));
    assert.equal(await run.stop(), 0);
    assert.equal(fs.existsSync(file), false, 'deleted by the restart');
    assert.equal(run.logs.filter((l) => l.msg === 'file archived').length, 0, 'nothing archived again');
    const versions = (await listVersions(env.moto.client, service.bucket)).filter((v) => v.key === 'k.bin');
    assert.equal(versions.length, 1, 'one version: the restart wrote nothing');
    await assertInS3(service.bucket, 'k.bin', bytes);
    const [step] = afterSteps(await service.story('k.bin'));
    assert.match(step ?? '', new RegExp(`^after: deleted ${file} \\(finished at start after pid:${killed.pid}:\\S+:watch stopped\\)$`));
  });

  void it('a file rewritten between its hash and the delete is left alone; its new content is archived before it goes', async () => {
    const service = await newService({ bucket: 'after-rewrite', settleSeconds: 0, concurrency: 1, uploadToml: 'after = "delete"' });
    const first = Buffer.from('first content\n');
    const file = writeFile(service.targetDir, 'r.bin', first);
    await killBeforeDelete(service, 'r.bin');
    const second = Buffer.from('second content, written after the first was archived\n');
    fs.writeFileSync(file, second);

    const run = await service.start();
    const skipped = run.logs.find((l) => l.msg === 'after-archive action skipped' && l.path === 'r.bin');
    assert.equal(skipped?.reason, 'changed since it was hashed: a new generation, left alone', describeLogs(run));
    await run.waitForOutcomes('r.bin');
    await run.waitForLog('the second generation deleted', (l) => l.msg === 'source deleted after archive' && l.path === 'r.bin');
    assert.equal(await run.stop(), 0);
    const story = await service.story('r.bin');
    assert.deepEqual(story.generations.map((g) => [g.generation, g.state, g.sha256]), [
      [1, 'archived', sha256(first)],
      [2, 'archived', sha256(second)],
    ]);
    const [firstStep, secondStep] = afterSteps(story);
    assert.match(firstStep ?? '', /^after: delete skipped: changed since it was hashed: a new generation, left alone \(finished at start/);
    assert.equal(secondStep, `after: deleted ${file}`, 'the new generation went only after its own archive');
    const contents = await Promise.all(
      (await listVersions(env.moto.client, service.bucket)).filter((v) => v.key === 'r.bin').map((v) => getObject(env.moto.client, service.bucket, 'r.bin', v.versionId)),
    );
    assert.deepEqual(contents.map((c) => c.body.toString()).sort(), [first.toString(), second.toString()].sort(), 'both contents archived');
  });

  void it('move:DIR keeps the relative path, creates directories, and never overwrites a taken name', async () => {
    const service = await newService({ bucket: 'after-move', targetToml: 'after = "move:done"' });
    const done = path.join(service.dir, 'done');
    writeFile(done, 'taken.csv', 'already here, not ours\n');
    const run = await service.start();
    const moved = Buffer.from('moved after its archive\n');
    writeFile(service.targetDir, 'x/y/z.csv', moved);
    writeFile(service.targetDir, 'taken.csv', 'ours\n');
    await run.waitForOutcomes('x/y/z.csv');
    await run.waitForOutcomes('taken.csv');
    await run.waitForLog('the move', (l) => l.msg === 'source moved after archive' && l.path === 'x/y/z.csv');
    await run.waitForLog('the refused move', (l) => l.msg === 'after-archive action failed: source kept' && l.path === 'taken.csv');
    assert.equal(await run.stop(), 0);
    assert.deepEqual(fs.readFileSync(path.join(done, 'x/y/z.csv')), moved);
    assert.equal(fs.existsSync(path.join(service.targetDir, 'x/y/z.csv')), false);
    assert.equal(fs.readFileSync(path.join(done, 'taken.csv'), 'utf8'), 'already here, not ours\n', 'never overwritten');
    assert.equal(fs.readFileSync(path.join(service.targetDir, 'taken.csv'), 'utf8'), 'ours\n', 'the source stays');
    assert.deepEqual(afterSteps(await service.story('x/y/z.csv')), [`after: moved to ${fs.realpathSync(done)}/x/y/z.csv`]);
    assert.deepEqual(afterSteps(await service.story('taken.csv')), [
      `after: move failed: ${fs.realpathSync(done)}/taken.csv already exists, never overwritten; source kept`,
    ]);
  });

  void it('a failed after-action is listed by status --failed with its reason, and retried by the next pass and the next start', async () => {
    const service = await newService({ bucket: 'after-retry', targetToml: 'after = "move:done"', reconcileToml: 'schedule = "*/2 * * * * *"' });
    const done = path.join(service.dir, 'done');
    writeFile(done, 'a.csv', 'not ours\n');
    writeFile(done, 'b.csv', 'not ours either\n');
    const run = await service.start();
    writeFile(service.targetDir, 'a.csv', 'a\n');
    writeFile(service.targetDir, 'b.csv', 'b\n');
    await run.waitForLogCount('both moves refused', (l) => l.msg === 'after-archive action failed: source kept', 2);
    const failed = await service.failed();
    const listed = failed.failedAfterActions.map((a) => `${a.relPath}: ${a.detail}`).sort();
    assert.deepEqual(listed, [
      `a.csv: move failed: ${fs.realpathSync(done)}/a.csv already exists, never overwritten; source kept`,
      `b.csv: move failed: ${fs.realpathSync(done)}/b.csv already exists, never overwritten; source kept`,
    ]);
    // The operator frees one name: the next scheduled pass moves it.
    fs.rmSync(path.join(done, 'a.csv'));
    await run.waitForLog('the retried move', (l) => l.msg === 'source moved after archive' && l.path === 'a.csv', 30_000);
    assert.equal(fs.readFileSync(path.join(done, 'a.csv'), 'utf8'), 'a\n');
    assert.equal(await run.stop(), 0);
    assert.deepEqual((await service.failed()).failedAfterActions.map((a) => a.relPath), ['b.csv'], 'b.csv still failing, a.csv no more');
    // The other name freed while the service is stopped: the next start moves it.
    fs.rmSync(path.join(done, 'b.csv'));
    const again = await service.start();
    await again.waitForLog('the move at start', (l) => l.msg === 'source moved after archive' && l.path === 'b.csv');
    assert.equal(await again.stop(), 0);
    assert.equal(fs.readFileSync(path.join(done, 'b.csv'), 'utf8'), 'b\n');
    assert.equal(fs.existsSync(path.join(service.targetDir, 'b.csv')), false);
    assert.deepEqual((await service.failed()).failedAfterActions, []);
    const steps = afterSteps(await service.story('b.csv'));
    assert.equal(steps.length, 2, `the failure and the retry are both steps of the story: ${JSON.stringify(steps)}`);
    assert.match(steps[1]!, /^after: moved to .*\/b\.csv \(retried after: move failed/);
  });

  void it('a bucket without versioning: exit 1 naming it under after = "delete"; one warning under "keep"', async () => {
    for (const bucket of ['after-unversioned', 'keep-unversioned']) {
      await env.moto.client.send(new CreateBucketCommand({ Bucket: bucket }));
    }
    const refused = await newService({ bucket: 'after-unversioned', noBucket: true, uploadToml: 'after = "delete"' });
    const run = await refused.start({ noWait: true });
    const exit = await exitWithin(run, 20_000, 'the start should be refused');
    assert.deepEqual(exit, { code: 1, signal: null }, describeLogs(run));
    assert.match(run.stderr, /s3:\/\/after-unversioned: bucket versioning is Off, but upload\.after deletes or moves sources/);
    assert.equal(run.logs.some((l) => l.msg === 'sftppush watching'), false, 'never started watching');

    const kept = await newService({ bucket: 'keep-unversioned', noBucket: true });
    const keeping = await kept.start();
    assert.equal(keeping.logs.filter((l) => l.msg.startsWith('bucket versioning is off')).length, 1, 'one warning');
    assert.equal(await keeping.stop(), 0);
  });
});
