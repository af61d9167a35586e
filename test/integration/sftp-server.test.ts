// Proves test/support/sftp-server.ts: a real sshd on loopback accepts uploads from the real sftp client.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { sftpQuote, sftpSetupProblem, startSftpServer, type SftpServer } from '../support/sftp-server.js';

void describe('sftp test server (real sshd + real sftp client)', () => {
  let work: string;
  let server: SftpServer | undefined;

  before(async () => {
    // Fail with the reason instead of skipping: a missing server would hide every sftp test.
    const problem = await sftpSetupProblem();
    assert.equal(problem, undefined, `sftp test server cannot be set up: ${problem ?? ''}`);
    work = await mkdtemp(join(tmpdir(), 'sftppush-sftp-'));
    server = await startSftpServer(join(work, 'sshd-state'));
  });

  after(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function srv(): SftpServer {
    assert.ok(server, 'server did not start');
    return server;
  }

  void it('listens on 127.0.0.1 with a key for the current user', async () => {
    const s = srv();
    assert.equal(s.host, '127.0.0.1');
    assert.ok(s.port > 0 && s.port < 65536);
    assert.ok((await stat(s.keyFile)).isFile());
    if (process.getuid?.() === 0) assert.equal(s.user, 'root');
  });

  void it('upload() puts the exact bytes at the remote path', async () => {
    const s = srv();
    const inbox = await mkdtemp(join(work, 'inbox-'));
    const local = join(work, 'payload.bin');
    const bytes = randomBytes(256 * 1024 + 17); // several SFTP write requests, not a multiple of the chunk size
    await writeFile(local, bytes);
    await s.upload(local, join(inbox, 'payload.bin'));
    assert.deepEqual(await readFile(join(inbox, 'payload.bin')), bytes);
  });

  void it('put to a temporary name then rename leaves only the final file', async () => {
    const s = srv();
    const inbox = await mkdtemp(join(work, 'inbox-'));
    const local = join(work, 'report.csv');
    const bytes = Buffer.from('id,amount\n1,10\n2,20\n');
    await writeFile(local, bytes);
    const tmp = join(inbox, '.report.csv.part');
    const final = join(inbox, 'report.csv');
    const out = await s.batch([`put ${sftpQuote(local, true)} ${sftpQuote(tmp)}`, `rename ${sftpQuote(tmp)} ${sftpQuote(final)}`]);
    assert.match(out, /sftp> rename /);
    assert.deepEqual(await readdir(inbox), ['report.csv']);
    assert.deepEqual(await readFile(final), bytes);
  });

  void it('quotes awkward local and remote names', async () => {
    const s = srv();
    const inbox = await mkdtemp(join(work, 'inbox-'));
    const local = join(work, `we"ird *name? [1]'s.txt`);
    // Unescaped, the local name is a glob that matches only this decoy (`[1]` is a character class).
    await writeFile(join(work, 'we"ird Xname! 1\'s.txt'), 'decoy');
    await writeFile(local, 'awkward');
    const remote = join(inbox, 'out "quoted" *star?.txt');
    await s.upload(local, remote);
    assert.equal(await readFile(remote, 'utf8'), 'awkward');
  });

  void it('a failing command rejects with sftp stderr', async () => {
    const s = srv();
    await assert.rejects(s.upload(join(work, 'does-not-exist'), join(work, 'x')), /sftp batch failed[\s\S]*No such file/);
  });

  void it('stop() stops sshd and is idempotent', async () => {
    const s = srv();
    await s.stop();
    await s.stop();
    const local = join(work, 'late.txt');
    await writeFile(local, 'late');
    await assert.rejects(s.upload(local, join(work, 'late-copy.txt')), /already stopped/);
    await assert.rejects(
      new Promise<void>((resolve, reject) => {
        const sock = connect(s.port, '127.0.0.1', () => {
          sock.destroy();
          resolve();
        });
        sock.once('error', reject);
      }),
      /ECONNREFUSED/,
    );
    server = undefined;
  });
});
