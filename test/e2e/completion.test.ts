// "When is a file complete?" end to end, with the shipped default settle_seconds (30): a test-only settle time
// once hid a 30 s wait. The real `bin/sftppush watch`, real inotify, moto with bucket versioning.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { getObject, listVersions } from '../support/moto.js';
import { createService, isFileOutcome, motoForSuite, type RunningService, type Service } from '../support/service.js';

const SHIPPED_SETTLE_SECONDS = 30;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

void describe('completion with the shipped defaults (child process, moto)', () => {
  const env = motoForSuite();
  let service: Service;
  let run: RunningService;

  async function start(bucket: string): Promise<void> {
    service = await createService({ moto: env.moto, bucket, settleSeconds: SHIPPED_SETTLE_SECONDS });
    env.services.push(service);
    run = await service.start();
  }

  async function versionBodies(key: string): Promise<string[]> {
    // Latest first, as S3 lists them.
    const versions = (await listVersions(env.moto.client, service.bucket)).filter((v) => v.key === key);
    return Promise.all(versions.map(async (v) => (await getObject(env.moto.client, service.bucket, key, v.versionId)).body.toString()));
  }

  void it('a file finished by link + unlink is archived at once, not after settle_seconds (finding 4)', async (t) => {
    await start('complete-link');
    const tmp = path.join(service.targetDir, 'upload.tmp'); // ignored by the default globs
    fs.writeFileSync(tmp, 'content complete when linked\n');
    const linkedAt = Date.now();
    fs.linkSync(tmp, path.join(service.targetDir, 'final.dat'));
    fs.unlinkSync(tmp);
    await run.waitForLog('final.dat archived', isFileOutcome('final.dat'), 5000);
    const latencyMs = Date.now() - linkedAt;
    t.diagnostic(`link -> archived: ${latencyMs} ms with settle_seconds = ${SHIPPED_SETTLE_SECONDS}`);
    assert.ok(latencyMs < 3000, `archived ${latencyMs} ms after the link (settle_seconds is ${SHIPPED_SETTLE_SECONDS})`);
    assert.deepEqual(await versionBodies('final.dat'), ['content complete when linked\n']);
    assert.equal(await run.stop(), 0);
  });

  void it('a file closed and at once reopened for writing is never archived half-written (finding 6)', async () => {
    await start('complete-reopen');
    const file = path.join(service.targetDir, 'report.csv');
    const complete = 'id,value\n1,a\n2,b\n3,c\n';
    fs.writeFileSync(file, complete);
    // The same writer at once truncates it, writes a first line, and works on for 3 s before finishing.
    const fd = fs.openSync(file, 'w');
    fs.writeSync(fd, 'id,value\n');
    await sleep(3000);
    fs.writeSync(fd, '1,x\n2,y\n3,z\n');
    fs.closeSync(fd);
    await run.waitForLogCount('report.csv archived in its final state', (l) => isFileOutcome('report.csv')(l), 1, 10_000);
    await sleep(1500); // let any further outcome land before counting versions
    const bodies = await versionBodies('report.csv');
    assert.ok(!bodies.includes('id,value\n'), `no version holds the half-written first line: ${JSON.stringify(bodies)}`);
    assert.equal(bodies.at(0), 'id,value\n1,x\n2,y\n3,z\n', 'the latest version is the final content');
    assert.equal(await run.stop(), 0);
  });

  void it('a writer that pauses in a directory it just made is not archived mid-file (finding 5)', async () => {
    await start('complete-newdir');
    fs.mkdirSync(path.join(service.targetDir, 'batch-7'));
    const fd = fs.openSync(path.join(service.targetDir, 'batch-7', 'data.csv'), 'w');
    fs.writeSync(fd, 'first half,');
    await sleep(2500); // longer than the new-directory scan's old private 1.5 s window
    fs.writeSync(fd, 'second half\n');
    fs.closeSync(fd);
    await run.waitForOutcomes('batch-7/data.csv', 1, 10_000);
    await sleep(1000);
    assert.deepEqual(await versionBodies('batch-7/data.csv'), ['first half,second half\n']);
    assert.equal(await run.stop(), 0);
  });
});
