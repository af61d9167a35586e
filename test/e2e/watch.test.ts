// End to end: the real `bin/sftppush watch` child process, a real moto_server, real files written the ways
// SFTP clients and people finish uploads. Every file's S3 bytes and object version count are checked at the
// end, against one record of what the test wrote, so an extra upload anywhere shows up as a failure.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { getObject, listVersions, startMoto, type MotoServer } from '../support/moto.js';
import { createService, ExpectedBucket, isFileOutcome, sha256, type RunningService, type Service } from '../support/service.js';

const BUCKET = 'e2e-watch';
const ARCHIVE_DEADLINE_MS = 20_000;

void describe('sftppush watch (child process, moto)', () => {
  let moto: MotoServer;
  let service: Service;
  let run: RunningService;
  let expected: ExpectedBucket;

  function targetPath(relPath: string): string {
    return path.join(service.targetDir, relPath);
  }

  function write(relPath: string, content: Buffer | string): Buffer {
    const bytes = Buffer.from(content);
    fs.mkdirSync(path.dirname(targetPath(relPath)), { recursive: true });
    fs.writeFileSync(targetPath(relPath), bytes);
    return bytes;
  }

  /** `relPath` must end up as one more object version holding `bytes`: record it and wait for it. */
  async function expectNewVersion(relPath: string, bytes: Buffer): Promise<void> {
    await run.waitForOutcomes(relPath, expected.addVersion(relPath, bytes), ARCHIVE_DEADLINE_MS);
  }

  async function s3Bytes(key: string): Promise<Buffer> {
    return (await getObject(moto.client, BUCKET, key)).body;
  }

  before(async () => {
    moto = await startMoto();
    service = await createService({ moto, bucket: BUCKET });
    expected = new ExpectedBucket(moto.client, BUCKET);
    // Present before start, with an old mtime: only the start-up scan can find it.
    expected.addVersion('before-start.csv', write('before-start.csv', 'was here first\n'));
    const anHourAgo = new Date(Date.now() - 3600_000);
    fs.utimesSync(targetPath('before-start.csv'), anHourAgo, anHourAgo);
    fs.mkdirSync(targetPath('existing/sub'), { recursive: true });
    run = await service.start();
  });

  after(async () => {
    await run?.kill();
    service?.cleanup();
    await moto?.stop();
  });

  void it('archives a file that was there before the service started', async () => {
    await run.waitForOutcomes('before-start.csv', 1, ARCHIVE_DEADLINE_MS);
  });

  void it('archives a file written into a directory that existed at start', async () => {
    await expectNewVersion('existing/sub/nested.csv', write('existing/sub/nested.csv', 'nested\n'));
  });

  void it('archives files written at every level of a tree made with mkdir -p, at once', async () => {
    fs.mkdirSync(targetPath('a/b/c'), { recursive: true });
    const files = ['a/top.csv', 'a/b/middle.csv', 'a/b/c/bottom.csv'].map((rel) => [rel, write(rel, `level ${rel}\n`)] as const);
    for (const [rel, bytes] of files) await expectNewVersion(rel, bytes);
  });

  void it('archives a temp-name upload under its final name only (x.filepart -> x.csv)', async () => {
    const bytes = write('x.filepart', 'renamed when complete\n');
    fs.renameSync(targetPath('x.filepart'), targetPath('x.csv'));
    await expectNewVersion('x.csv', bytes);
  });

  void it('archives a file renamed in from outside the target', async () => {
    const outside = path.join(service.dir, 'outside');
    fs.mkdirSync(outside, { recursive: true });
    const bytes = Buffer.from('written elsewhere on the same filesystem\n');
    fs.writeFileSync(path.join(outside, 'incoming.csv'), bytes);
    fs.renameSync(path.join(outside, 'incoming.csv'), targetPath('incoming.csv'));
    await expectNewVersion('incoming.csv', bytes);
  });

  void it('archives an empty file', async () => {
    await expectNewVersion('empty.txt', write('empty.txt', ''));
  });

  void it('archives a 20 MB file byte for byte', async () => {
    const bytes = write('big.bin', randomBytes(20 * 1024 * 1024));
    await expectNewVersion('big.bin', bytes);
    const stored = await s3Bytes('big.bin');
    assert.equal(sha256(stored), sha256(bytes));
  });

  void it('archives a name with spaces and non-ASCII letters', async () => {
    const name = 'ünïcødé file (1).txt';
    await expectNewVersion(name, write(name, 'grüße\n'));
  });

  void it('archives a file finished by a hard link (write t.tmp, link final.dat, unlink t.tmp)', async () => {
    const bytes = write('t.tmp', 'finished by link\n');
    fs.linkSync(targetPath('t.tmp'), targetPath('final.dat'));
    fs.unlinkSync(targetPath('t.tmp'));
    await expectNewVersion('final.dat', bytes);
  });

  void it('records the same content rewritten to the same path as a duplicate, not a new version', async () => {
    const bytes = write('same.csv', 'identical twice\n');
    await expectNewVersion('same.csv', bytes);
    write('same.csv', bytes);
    const outcomes = expected.addDuplicate('same.csv');
    await run.waitForOutcomes('same.csv', outcomes, ARCHIVE_DEADLINE_MS);
    assert.equal(run.logs.filter(isFileOutcome('same.csv')).at(-1)?.msg, 'file duplicate');
  });

  void it('stores new content at the same path as a second version', async () => {
    await expectNewVersion('changing.csv', write('changing.csv', 'first\n'));
    await expectNewVersion('changing.csv', write('changing.csv', 'second, longer\n'));
  });

  void it('holds exactly the expected versions and bytes for every key, and nothing for ignored names', async () => {
    // x.filepart and t.tmp would show up here as extra keys; a repeated upload as an extra version.
    await expected.assertMatches();
  });

  void it('status --json counts every generation archived and nothing left to do', async () => {
    const status = await service.status();
    assert.deepEqual(Object.keys(status).sort(), [
      'afterActionsFailed', 'backlog', 'counts', 'lastErrors', 'lastFailedPass', 'lastFullPass', 'lastPartialPass', 'lastReconcile',
      'oldestPendingSeconds',
      'targets', 'watch', 'watchRecordedAt',
    ]);
    assert.deepEqual(status.targets, [{ target: fs.realpathSync(service.targetDir), counts: status.counts }], 'one target, all its generations');
    const watch = status.watch as { directoriesWatched: number; unwatchedCount: number } | null;
    assert.ok(watch && watch.directoriesWatched >= 1 && watch.unwatchedCount === 0, 'the watcher\'s health, recorded at the start-up pass');
    assert.deepEqual(status.counts, { pending: 0, working: 0, archived: expected.generations, retry: 0, quarantined: 0, gone: 0 });
    assert.equal(status.oldestPendingSeconds, 0);
    assert.ok(status.lastReconcile !== null && !Number.isNaN(Date.parse(status.lastReconcile)), 'the start-up scan is recorded');
  });

  void it('status --json PATH tells a file\'s story: generations, transitions and S3 versions', async () => {
    const changing = await service.story('changing.csv');
    assert.deepEqual(changing.generations.map((g) => [g.generation, g.state]), [[1, 'archived'], [2, 'archived']]);
    assert.deepEqual(
      changing.history.filter((h) => h.fileId === changing.generations[0]!.id).map((h) => h.toState),
      ['pending', 'working', 'archived'],
    );
    const s3VersionIds = (await listVersions(moto.client, BUCKET, 'changing.csv')).map((v) => v.versionId).sort();
    assert.deepEqual(changing.objects.map((o) => o.versionId).sort(), s3VersionIds, 'the ledger holds the versions S3 holds');
    const byAbsolutePath = await service.story(targetPath('changing.csv'));
    assert.deepEqual(byAbsolutePath.generations.map((g) => g.id), changing.generations.map((g) => g.id), 'an absolute path tells the same story');

    const same = await service.story('same.csv');
    assert.equal(same.generations.length, 2);
    assert.equal(same.generations[1]!.duplicateOf, same.generations[0]!.id, 'generation 2 names the one it duplicates');
    assert.equal(same.objects.length, 1, 'only the first generation wrote an object');
  });

  void it('stops on SIGTERM with exit code 0', async () => {
    assert.equal(await run.stop(), 0);
  });
});
