// A full disk under the ledger, end to end: `bin/sftppush watch` with its ledger on a small tmpfs, filled up
// while it runs. The service says so, naming the ledger and the condition (E_LEDGER_FULL, SQLITE_FULL), and
// exits 1 for systemd to restart it; the ledger passes `PRAGMA integrity_check`; once space is freed, the
// restart archives every file with exactly one version in the (versioned) bucket.
//
// Mounting a tmpfs needs root (or CAP_SYS_ADMIN): elsewhere the test is skipped, saying why.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { Database } from '../../src/ledger/sqlite.js';
import { waitUntil, writeFile } from '../support/fixtures.js';
import { createService, describeLogs, ExpectedBucket, exitWithin, motoForSuite } from '../support/service.js';

/** Mounts a tmpfs of `sizeBytes` at `dir`; returns why it cannot, when it cannot. */
function mountTmpfs(dir: string, sizeBytes: number): string | undefined {
  fs.mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    return undefined;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return `mount -t tmpfs refused (${stderr || (error as Error).message}): needs root or CAP_SYS_ADMIN`;
  }
}

/** Takes every free byte of the filesystem holding `dir` with one file; returns its path. */
function fillUp(dir: string): string {
  const filler = path.join(dir, 'filler');
  const fd = fs.openSync(filler, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  try {
    for (let size = chunk.length; size >= 1; size = Math.floor(size / 2)) {
      for (;;) {
        try {
          fs.writeSync(fd, chunk, 0, size);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw error;
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return filler;
}

void describe('a full disk under the ledger (child process, moto, tmpfs)', () => {
  const env = motoForSuite();

  void it('exit 1 naming the ledger and SQLITE_FULL, an intact ledger, and after space is freed one version per file', async (t) => {
    const service = await createService({ moto: env.moto, bucket: 'disk-full', settleSeconds: 0 });
    env.services.push(service);
    const varDir = path.dirname(service.ledgerPath);
    const refused = mountTmpfs(varDir, 4 * 1024 * 1024);
    if (refused) return t.skip(refused);
    t.after(() => execFileSync('umount', ['-l', varDir]));
    const expected = new ExpectedBucket(env.moto.client, service.bucket);
    const write = (relPath: string): void => {
      const bytes = Buffer.from(`${relPath}\n`.repeat(50));
      writeFile(service.targetDir, relPath, bytes);
      expected.addVersion(relPath, bytes);
    };

    const run = await service.start();
    write('before.csv');
    await run.waitForOutcomes('before.csv');
    const filler = fillUp(varDir);
    // Each new file is an observation and an archive the ledger must record: the first write that needs a page
    // the disk cannot give stops the service (the -wal may still hold free frames for a few).
    let exited = false;
    void run.exited.then(() => (exited = true));
    for (let batch = 0; batch < 200 && !exited; batch += 1) {
      for (let i = 0; i < 20; i += 1) {
        write(`full-${batch}-${i}.csv`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const exit = await exitWithin(run, 30_000, 'a full disk under the ledger should stop the service');
    assert.equal(exit.code, 1, `exit 1 (systemd restarts it)${describeLogs(run)}`);
    const fatal = run.logs.find((line) => line.msg === 'stopping after a fatal error');
    const error = fatal?.error as { code?: string; message?: string } | undefined;
    assert.equal(error?.code, 'E_LEDGER_FULL', `a typed error${describeLogs(run)}`);
    assert.ok(error?.message?.includes(service.ledgerPath), `the message names the ledger: ${error?.message}`);
    assert.match(error?.message ?? '', /SQLITE_FULL|ENOSPC/, 'and the condition');
    assert.equal(run.logs.at(-1)?.msg, 'stopped', `the last line says so${describeLogs(run)}`);
    assert.ok(!run.logs.some((line) => line.msg.startsWith('(not JSON)')), 'no stack trace around the JSON log');

    fs.rmSync(filler);
    const db = new Database(service.ledgerPath, { fileMustExist: true });
    try {
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the ledger is intact');
    } finally {
      db.close();
    }

    const restarted = await service.start();
    // Every file: those archived before the stop stay as they are, the others are archived now; none twice.
    await restarted.waitForLog('the start-up scan', (line) => line.msg === 'reconcile scan finished');
    await waitUntil('every file archived', async () => (await service.status()).counts.archived === expected.generations, 120_000, 500);
    assert.equal(await restarted.stop(), 0);
    await expected.assertMatches();
  });
});
