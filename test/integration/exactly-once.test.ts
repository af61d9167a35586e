// The exactly-once findings of issue 6, each against the real parts (a SQLite ledger file, real files, moto
// with bucket versioning): a scan that takes back a live process's claim, a lost ledger that re-uploads
// what S3 already holds, and an in-place rewrite that keeps size and mtime.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { ownerId, processProbe } from '../../src/app.js';
import type { TargetConfig } from '../../src/config.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { isOwnerAlive } from '../../src/ledger/ownership.js';
import { Observer } from '../../src/observe/observer.js';
import { archiveClaimed, type ArchiveDeps } from '../../src/pipeline/archive-file.js';
import { nodeSourceDirs, nodeSourceFs } from '../../src/source/source-fs.js';
import { Reconciler } from '../../src/reconcile/reconciler.js';
import { createS3Client, S3Store } from '../../src/s3/s3-store.js';
import { archiveSettings, openTestLedger, patternBytes, silentLog, statOf, targetConfig, tempDir, writeFile } from '../support/fixtures.js';
import { listVersions, startMoto, type MotoServer } from '../support/moto.js';

const MIB = 1024 * 1024;

let moto: MotoServer;
let store: S3Store;
let destroyClient: () => void;
let buckets = 0;

before(async () => {
  moto = await startMoto();
  const client = createS3Client({ endpoint: moto.endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets: 8, requestTimeoutMs: 60_000 });
  store = new S3Store(client);
  destroyClient = () => client.destroy();
});

after(async () => {
  destroyClient();
  await moto.stop();
});

interface World {
  readonly dir: string;
  readonly root: string;
  readonly target: TargetConfig;
  ledger: Ledger;
}

async function world(t: TestContext): Promise<World> {
  const dir = tempDir(t, 'sftppush-once');
  const root = path.join(dir, 'incoming');
  fs.mkdirSync(root);
  const bucket = `once-${process.pid}-${(buckets += 1)}`;
  await moto.createBucket(bucket);
  return { dir, root, target: targetConfig({ path: root, bucket }), ledger: openTestLedger(t, dir) };
}

function deps(w: World): ArchiveDeps {
  return {
    ledger: w.ledger,
    store,
    source: nodeSourceFs,
    log: silentLog,
    writeMode: () => Promise.resolve('conditional'),
    now: Date.now,
    random: () => 0.5,
    settings: archiveSettings(),
    targetFor: (p) => (p === w.target.path ? w.target : undefined),
    reobserve: () => undefined,
  };
}

/** Observes every file under the target as a scan would, and archives everything claimable. */
async function archiveAll(w: World, owner = ownerId('watch')): Promise<string[]> {
  const outcomes: string[] = [];
  for (const name of fs.readdirSync(w.root)) w.ledger.observe(w.target.path, name, statOf(path.join(w.root, name)));
  for (let claim = w.ledger.claimNext(owner); claim; claim = w.ledger.claimNext(owner)) {
    outcomes.push(await archiveClaimed(claim, deps(w)));
  }
  return outcomes;
}

void describe('exactly once in ordinary operation', () => {
  void it('a scan never takes back a claim of this very process (finding 1)', async (t) => {
    const w = await world(t);
    writeFile(w.root, 'in-flight.csv', 'uploading\n');
    w.ledger.observe(w.target.path, 'in-flight.csv', statOf(path.join(w.root, 'in-flight.csv')));
    const claim = w.ledger.claimNext(ownerId('watch'));
    assert.ok(claim, 'claimed');
    assert.equal(isOwnerAlive(ownerId('watch'), processProbe(ownerId('watch'), () => false)), true, 'this process is alive');
    const observer = new Observer({
      ledger: w.ledger,
      source: nodeSourceFs,
    dirs: nodeSourceDirs,
      log: silentLog,
      settleMs: 0,
      now: Date.now,
      onQueued: () => undefined,
      onFatal: (error) => assert.fail(String(error)),
    });
    t.after(() => observer.close());
    const reconciler = new Reconciler({
      targets: [w.target],
      observer,
      dirs: nodeSourceDirs,
      ledger: w.ledger,
      log: silentLog,
      now: Date.now,
    });
    await reconciler.scan('schedule');
    assert.equal(w.ledger.reader.story('in-flight.csv').generations[0]?.state, 'working', 'the row is still ours after a scan');
    assert.equal(w.ledger.claimNext(ownerId('watch')), undefined, 'nothing for a second worker to claim');
  });

  void it('a lost ledger re-uploads nothing that S3 already holds (finding 3)', async (t) => {
    const w = await world(t);
    writeFile(w.root, 'small.csv', 'a small file\n');
    writeFile(w.root, 'large.bin', patternBytes(6 * MIB, 7));
    assert.deepEqual((await archiveAll(w)).sort(), ['archived', 'archived']);
    w.ledger.close();
    fs.rmSync(path.join(w.dir, 'ledger.db'));
    w.ledger = openTestLedger(t, w.dir, undefined, 'ledger-restored.db');
    assert.deepEqual((await archiveAll(w)).sort(), ['archived', 'archived']);
    const versions = await listVersions(moto.client, w.target.bucket);
    assert.deepEqual(versions.map((v) => v.key).sort(), ['large.bin', 'small.csv'], 'one version per content, none written again');
    const objects = ['small.csv', 'large.bin'].flatMap((p) => w.ledger.reader.story(p).objects);
    assert.ok(objects.every((o) => o.foundByHead), 'both recorded as found in S3, not uploaded');
  });

  void it('an in-place rewrite that keeps the size and restores the mtime is a new generation (finding 4)', async (t) => {
    const w = await world(t);
    const file = writeFile(w.root, 'rates.csv', 'EUR,1.0850\n');
    assert.deepEqual(await archiveAll(w), ['archived']);
    // `cp -p` onto the existing file: same inode (O_TRUNC), same size, the mtime restored to the nanosecond
    // (as sftp put -p, WinSCP's "preserve timestamp" and rsync --inplace -t do).
    const replacement = writeFile(w.dir, 'replacement.csv', 'EUR,1.0851\n');
    execFileSync('touch', ['-r', file, replacement]);
    const before = statOf(file);
    execFileSync('cp', ['-p', replacement, file]);
    const now = statOf(file);
    assert.deepEqual([now.sizeBytes, now.mtimeMs, now.inode], [before.sizeBytes, before.mtimeMs, before.inode], 'size, mtime, inode kept');
    assert.equal(w.ledger.observe(w.target.path, 'rates.csv', statOf(file)), 'queued', 'the rewrite is seen');
    for (let claim = w.ledger.claimNext(ownerId('watch')); claim; claim = w.ledger.claimNext(ownerId('watch'))) await archiveClaimed(claim, deps(w));
    const versions = await listVersions(moto.client, w.target.bucket);
    assert.equal(versions.length, 2, 'both contents are in S3');
  });
});
