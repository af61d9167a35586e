// The product's real input: uploads through a real OpenSSH sshd + internal-sftp (test/support/sftp-server.ts)
// driven by the real `sftp` client, into the target of a real `bin/sftppush watch`. Each way an SFTP client
// finishes a file must end as exactly the expected object versions in S3.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { startMoto, type MotoServer } from '../support/moto.js';
import { createService, ExpectedBucket, type RunningService, type Service } from '../support/service.js';
import { sftpQuote, sftpSetupProblem, startSftpServer, type SftpServer } from '../support/sftp-server.js';

const BUCKET = 'e2e-sftp';
const ARCHIVE_DEADLINE_MS = 20_000;

void describe('uploads through real sftp into a watched target', () => {
  let moto: MotoServer | undefined;
  let service: Service | undefined;
  let run: RunningService;
  let sftp: SftpServer | undefined;
  let expected: ExpectedBucket;
  let localDir: string;

  before(async () => {
    // Fail with the reason rather than skip: a missing server would silently hide the product's real input.
    const problem = await sftpSetupProblem();
    assert.equal(problem, undefined, `sftp test server cannot be set up: ${problem ?? ''}`);
    moto = await startMoto();
    service = await createService({ moto, bucket: BUCKET });
    expected = new ExpectedBucket(moto.client, BUCKET);
    localDir = path.join(service.dir, 'local');
    fs.mkdirSync(localDir);
    sftp = await startSftpServer(path.join(service.dir, 'sshd'));
    run = await service.start();
  });

  after(async () => {
    await run?.kill();
    await sftp?.stop();
    service?.cleanup();
    await moto?.stop();
  });

  /** A local file for sftp to send. */
  function local(name: string, bytes: Buffer): string {
    const file = path.join(localDir, name);
    fs.writeFileSync(file, bytes);
    return file;
  }

  /** `put` command line: the local side is a glob to sftp, the remote side a plain path. */
  function put(localFile: string, remoteRelPath: string): string {
    return `put ${sftpQuote(localFile, true)} ${remote(remoteRelPath)}`;
  }

  function remote(relPath: string): string {
    return sftpQuote(path.join(service!.targetDir, relPath));
  }

  async function expectNewVersion(relPath: string, bytes: Buffer): Promise<void> {
    await run.waitForOutcomes(relPath, expected.addVersion(relPath, bytes), ARCHIVE_DEADLINE_MS);
  }

  void it('archives a plain put', async () => {
    const bytes = randomBytes(300 * 1024); // many SFTP write requests, one close
    await sftp!.batch([put(local('plain.bin', bytes), 'plain report.bin')]);
    await expectNewVersion('plain report.bin', bytes);
  });

  void it('archives a put to a .filepart name finished by rename (posix-rename: IN_MOVED_TO) under the final name only', async () => {
    const bytes = Buffer.from('id,amount\n1,10\n');
    await sftp!.batch([put(local('renamed.csv', bytes), 'renamed.csv.filepart'), `rename ${remote('renamed.csv.filepart')} ${remote('renamed.csv')}`]);
    await expectNewVersion('renamed.csv', bytes);
  });

  void it('archives a put finished by a legacy rename (rename -l: link + unlink, only IN_CREATE on the final name)', async () => {
    const bytes = Buffer.from('id,amount\n2,20\n');
    await sftp!.batch([put(local('linked.csv', bytes), 'linked.csv.filepart'), `rename -l ${remote('linked.csv.filepart')} ${remote('linked.csv')}`]);
    await expectNewVersion('linked.csv', bytes);
  });

  void it('archives a put into a directory made in the same session', async () => {
    const bytes = Buffer.from('inside a new directory\n');
    await sftp!.batch([`mkdir ${remote('incoming')}`, `mkdir ${remote('incoming/2026')}`, put(local('inner.csv', bytes), 'incoming/2026/inner.csv')]);
    await expectNewVersion('incoming/2026/inner.csv', bytes);
  });

  void it('archives an interrupted upload and its completion (reput) as two versions, the latest complete', async () => {
    // A dropped session leaves a closed, partial file (sftp-server closes it): that is archived as it is, and
    // the resumed upload completing it is a new generation, so the latest version is the whole file.
    const whole = randomBytes(200 * 1024);
    const partial = whole.subarray(0, 64 * 1024);
    await sftp!.batch([put(local('partial.bin', partial), 'resumed.bin')]);
    await expectNewVersion('resumed.bin', partial);
    await sftp!.batch([`reput ${sftpQuote(local('whole.bin', whole), true)} ${remote('resumed.bin')}`]);
    await expectNewVersion('resumed.bin', whole);
  });

  void it('holds exactly one version per uploaded content, and nothing under a .filepart name', async () => {
    await expected.assertMatches();
    const status = await service!.status();
    assert.deepEqual(status.counts, { pending: 0, working: 0, archived: expected.generations, retry: 0, quarantined: 0, gone: 0 });
  });

  void it('stops on SIGTERM with exit code 0', async () => {
    assert.equal(await run.stop(), 0);
  });
});
