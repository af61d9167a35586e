// archiveClaimed end to end on one file at a time: a real ledger file, real files in a temp directory and a
// real S3 API (moto_server, bucket versioning on). Faults a server cannot produce (a file written to between
// two reads, a wrong checksum in S3's answer, EACCES as root) come from thin wrappers around the real
// S3Store and nodeSourceFs, defined below.
import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { TargetConfig } from '../../src/config.js';
import type { ClaimedFile, Ledger } from '../../src/ledger/ledger.js';
import type { FileRow } from '../../src/ledger/reader.js';
import { archiveClaimed, type ArchiveDeps, type ArchiveSettings } from '../../src/pipeline/archive-file.js';
import { objectMetadata } from '../../src/pipeline/key-layout.js';
import { nodeSourceFs, type SourceFile, type SourceFs } from '../../src/source/source-fs.js';
import type { PutObjectRequest, StoredObject } from '../../src/s3/object-store.js';
import { S3Store } from '../../src/s3/s3-store.js';
import {
  archiveSettings,
  ManualClock,
  openTestLedger,
  patternBytes,
  silentLog,
  statOf,
  targetConfig,
  tempDir,
  withDeadline,
  writeFile,
} from '../support/fixtures.js';
import { freePort, getObject, listVersions, startMotoStore, storeClient, type MotoServer } from '../support/moto.js';

const MIB = 1024 * 1024;
const SETTINGS: ArchiveSettings = archiveSettings();

let moto: MotoServer;
let s3: S3Client;
let store: S3Store;
let stopS3: () => Promise<void>;
let buckets = 0;

before(async () => ({ moto, client: s3, store, stop: stopS3 } = await startMotoStore()));
after(() => stopS3());

// ---------------------------------------------------------------------------------------------------------
// One test's world: a target directory, a ledger, a bucket of its own.

interface Env {
  readonly root: string;
  readonly bucket: string;
  readonly target: TargetConfig;
  readonly ledger: Ledger;
  readonly clock: ManualClock;
  readonly reobserved: string[];
  deps(overrides?: Partial<ArchiveDeps>): ArchiveDeps;
}

async function setup(t: TestContext, target: Partial<TargetConfig> = {}): Promise<Env> {
  const dir = tempDir(t, 'sftppush-pipeline');
  const root = path.join(dir, 'incoming');
  fs.mkdirSync(root);
  const bucket = `pipeline-${process.pid}-${(buckets += 1)}`;
  await moto.createBucket(bucket);
  const clock = new ManualClock(Date.now());
  const ledger = openTestLedger(t, dir, clock.now);
  const config = targetConfig({ path: root, bucket, ...target });
  const reobserved: string[] = [];
  return {
    root,
    bucket,
    target: config,
    ledger,
    clock,
    reobserved,
    deps: (overrides = {}) => ({
      ledger,
      store,
      source: nodeSourceFs,
      log: silentLog,
      writeMode: () => Promise.resolve('conditional'),
      now: clock.now,
      random: () => 0.5,
      settings: SETTINGS,
      targetFor: (targetPath) => (targetPath === config.path ? config : undefined),
      reobserve: (_target, relPath) => void reobserved.push(relPath),
      ...overrides,
    }),
  };
}

/** Writes a file and records it in the ledger, as the watcher would. @returns its absolute path. */
function arrive(env: Env, relPath: string, content: Buffer | string): string {
  const file = writeFile(env.root, relPath, content);
  observe(env, relPath);
  return file;
}

function observe(env: Env, relPath: string): void {
  env.ledger.observe(env.target.path, relPath, statOf(path.join(env.root, relPath)));
}

function claim(env: Env): ClaimedFile {
  const claimed = env.ledger.claimNext('pid:test');
  assert.ok(claimed, 'expected a claimable row');
  return claimed;
}

async function archiveNext(env: Env, overrides: Partial<ArchiveDeps> = {}): Promise<{ claim: ClaimedFile; outcome: string }> {
  const claimed = claim(env);
  return { claim: claimed, outcome: await archiveClaimed(claimed, env.deps(overrides)) };
}

function latestRow(env: Env, relPath: string): FileRow {
  const row = env.ledger.reader.story(relPath, env.target.path).generations.at(-1);
  assert.ok(row, `no ledger row for ${relPath}`);
  return row;
}

/** Rewrites a file with a distinct mtime, so the change is visible even within one timestamp tick. */
function rewrite(file: string, content: Buffer | string): void {
  const previous = fs.statSync(file).mtimeMs;
  fs.writeFileSync(file, content);
  const mtime = new Date(Math.max(fs.statSync(file).mtimeMs, previous) + 2000);
  fs.utimesSync(file, mtime, mtime);
}

function sha256(content: Buffer | string): string {
  return createHash('sha256').update(content).digest('hex');
}

async function versionsOf(env: Env, key: string): Promise<{ versionId: string; isLatest: boolean }[]> {
  return (await listVersions(s3, env.bucket, key)).filter((v) => v.key === key);
}

async function versionBytes(env: Env, key: string, versionId: string): Promise<Buffer> {
  const response = await s3.send(new GetObjectCommand({ Bucket: env.bucket, Key: key, VersionId: versionId }));
  return Buffer.from((await response.Body?.transformToByteArray()) ?? []);
}

/** Every version's bytes, oldest first. */
async function allVersionBytes(env: Env, key: string): Promise<Buffer[]> {
  const versions = await versionsOf(env, key);
  const bodies = await Promise.all(versions.map((v) => versionBytes(env, key, v.versionId)));
  // ListObjectVersions lists newest first.
  return bodies.reverse();
}

async function assertNoObjects(env: Env): Promise<void> {
  assert.deepEqual(await listVersions(s3, env.bucket), []);
}

async function assertNoOpenMultipartUploads(env: Env): Promise<void> {
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: env.bucket }));
  assert.deepEqual(uploads.Uploads ?? [], [], 'an aborted upload must not leave parts behind');
}

// ---------------------------------------------------------------------------------------------------------
// Fault injection: wrappers that delegate to the real store and filesystem, changing one thing.

interface StoreFaults {
  /** Runs before the real put (once per put). */
  beforePut?: (request: PutObjectRequest) => void | Promise<void>;
  /** Rewrites what the real put answered. */
  alterResult?: (stored: StoredObject) => StoredObject;
}

function faultyStore(inner: ArchiveDeps['store'], faults: StoreFaults): ArchiveDeps['store'] & { puts: number } {
  const wrapper = {
    puts: 0,
    async put(request: PutObjectRequest): Promise<StoredObject> {
      wrapper.puts += 1;
      await faults.beforePut?.(request);
      const stored = await inner.put(request);
      return faults.alterResult ? faults.alterResult(stored) : stored;
    },
    head: (bucket: string, key: string) => inner.head(bucket, key),
    deleteVersion: (bucket: string, key: string, versionId: string) => inner.deleteVersion(bucket, key, versionId),
  };
  return wrapper;
}

interface SourceFaults {
  /** Replaces open: throw here to simulate an open error. */
  open?: (absolutePath: string) => void;
  /** Wraps the opened file. */
  wrapFile?: (file: SourceFile, absolutePath: string) => SourceFile;
}

function faultySource(inner: SourceFs, faults: SourceFaults): SourceFs {
  return {
    ...inner,
    async open(absolutePath) {
      faults.open?.(absolutePath);
      const file = await inner.open(absolutePath);
      return faults.wrapFile ? faults.wrapFile(file, absolutePath) : file;
    },
    stat: (absolutePath) => inner.stat(absolutePath),
  };
}

/**
 * The real filesystem, except that right after the first hash pass over `file` the sender rewrites it in place
 * (same inode, same size): the upload stream then reads other bytes than the ones hashed.
 */
function overwriteAfterHashPass(file: string, replacement: Buffer): { source: SourceFs; fired: () => boolean } {
  let fired = false;
  const source = faultySource(nodeSourceFs, {
    wrapFile: (inner) => ({
      ...inner,
      async sha256() {
        const digest = await inner.sha256();
        if (!fired) {
          fired = true;
          fs.writeFileSync(file, replacement);
        }
        return digest;
      },
    }),
  });
  return { source, fired: () => fired };
}

function errnoError(code: string, syscall: string, file: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected, ${syscall} '${file}'`), { code, syscall, path: file });
}

// ---------------------------------------------------------------------------------------------------------

void describe('archiving a file', () => {
  void test('a small file is stored byte for byte with its metadata, and the ledger records S3\'s receipt', async (t) => {
    const env = await setup(t, { prefix: 'site-a/' });
    const relPath = 'in/daily report é.csv';
    const content = 'id,amount\n1,10\n2,20\n';
    const file = arrive(env, relPath, content);
    const { mtimeMs } = fs.statSync(file);

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'archived');
    const key = `site-a/${relPath}`;
    const [version, ...others] = await versionsOf(env, key);
    assert.ok(version);
    assert.deepEqual(others, []);
    assert.equal((await versionBytes(env, key, version.versionId)).toString(), content);
    const head = await s3.send(new HeadObjectCommand({ Bucket: env.bucket, Key: key, ChecksumMode: 'ENABLED' }));
    assert.deepEqual(head.Metadata, {
      sha256: sha256(content),
      source: encodeURI(relPath),
      'source-sha256': sha256(content),
      'source-mtime': new Date(mtimeMs).toISOString(),
    });
    assert.equal(decodeURI(head.Metadata?.source ?? ''), relPath);

    const row = latestRow(env, relPath);
    assert.equal(row.state, 'archived');
    assert.equal(row.sha256, sha256(content));
    assert.equal(row.lastError, null);
    const objects = env.ledger.reader.story(relPath).objects;
    assert.equal(objects.length, 1);
    assert.deepEqual(
      { ...objects[0], recordedAt: undefined },
      {
        fileId: row.id,
        bucket: env.bucket,
        key,
        sha256: sha256(content),
        sizeBytes: Buffer.byteLength(content),
        etag: head.ETag,
        versionId: version.versionId,
        checksumSha256: Buffer.from(sha256(content), 'hex').toString('base64'),
        foundByHead: false,
        recordedAt: undefined,
        member: null,
      },
    );
  });

  void test('a file over the multipart threshold is uploaded in parts with identical bytes', async (t) => {
    const env = await setup(t);
    const content = patternBytes(12 * MIB + 12345, 7);
    arrive(env, 'big/blob.bin', content);

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'archived');
    const versions = await versionsOf(env, 'big/blob.bin');
    assert.equal(versions.length, 1);
    assert.ok(sha256(await versionBytes(env, 'big/blob.bin', versions[0]!.versionId)) === sha256(content), 'bytes differ');
    const head = await s3.send(new HeadObjectCommand({ Bucket: env.bucket, Key: 'big/blob.bin' }));
    assert.match(head.ETag ?? '', /-3"?$/, 'a 12 MiB file in 5 MiB parts is a 3-part upload');
    assert.equal(head.Metadata?.sha256, sha256(content));
    const [object] = env.ledger.reader.story('big/blob.bin').objects;
    assert.equal(object?.versionId, versions[0]!.versionId);
    assert.equal(object?.etag, head.ETag);
    assert.equal(latestRow(env, 'big/blob.bin').sha256, sha256(content));
  });

  void test('an empty file is archived as an empty object with its metadata', async (t) => {
    const env = await setup(t);
    arrive(env, 'markers/batch.done', '');

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'archived');
    const versions = await versionsOf(env, 'markers/batch.done');
    assert.equal(versions.length, 1);
    assert.equal((await versionBytes(env, 'markers/batch.done', versions[0]!.versionId)).length, 0);
    const head = await s3.send(new HeadObjectCommand({ Bucket: env.bucket, Key: 'markers/batch.done' }));
    assert.equal(head.Metadata?.sha256, sha256(''));
  });

  void test('the same content written again to the same path is a duplicate: no second S3 version', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'same.csv', 'unchanged content\n');
    const uploaded: number[] = [];
    const onUploaded = (bytes: number): void => void uploaded.push(bytes);
    assert.equal((await archiveNext(env, { onUploaded })).outcome, 'archived');
    const firstId = latestRow(env, 'same.csv').id;

    rewrite(file, 'unchanged content\n');
    observe(env, 'same.csv');
    const { outcome, claim: second } = await archiveNext(env, { onUploaded });

    assert.equal(outcome, 'duplicate');
    assert.deepEqual(uploaded, [Buffer.byteLength('unchanged content\n')], 'the bytes of the one upload, none for the duplicate');
    assert.equal(second.generation, 2);
    assert.equal((await versionsOf(env, 'same.csv')).length, 1);
    const row = latestRow(env, 'same.csv');
    assert.equal(row.state, 'archived');
    assert.equal(row.duplicateOf, firstId);
  });

  void test('new content at the same path becomes a second version at the same key; both contents are kept', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'ledger.csv', 'version one\n');
    assert.equal((await archiveNext(env)).outcome, 'archived');
    rewrite(file, 'version two, longer\n');
    observe(env, 'ledger.csv');

    assert.equal((await archiveNext(env)).outcome, 'archived');

    const bodies = await allVersionBytes(env, 'ledger.csv');
    assert.deepEqual(bodies.map(String), ['version one\n', 'version two, longer\n']);
    const story = env.ledger.reader.story('ledger.csv');
    assert.deepEqual(story.generations.map((g) => g.state), ['archived', 'archived']);
    assert.equal(new Set(story.objects.map((o) => o.versionId)).size, 2);
  });
});

void describe('files that go away or are not what they seem', () => {
  void test('a file that vanished before upload ends gone, with the reason in the ledger', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'brief.csv', 'here for a moment\n');
    fs.rmSync(file);

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'gone');
    const row = latestRow(env, 'brief.csv');
    assert.equal(row.state, 'gone');
    assert.match(row.lastError ?? '', /vanished/);
    await assertNoObjects(env);
  });

  void test('a symlink swapped in place of the file is never followed: the row ends gone', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'swap.csv', 'original\n');
    const secret = writeFile(path.dirname(env.root), 'secret.txt', 'not for S3\n');
    fs.rmSync(file);
    fs.symlinkSync(secret, file);

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'gone');
    assert.match(latestRow(env, 'swap.csv').lastError ?? '', /symlink/);
    await assertNoObjects(env);
  });

  void test('a FIFO swapped in place of the file is not read (no hang): the row ends gone', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'pipe.csv', 'original\n');
    fs.rmSync(file);
    execFileSync('mkfifo', [file]);

    const { outcome } = await withDeadline('archiving a FIFO', archiveNext(env));

    assert.equal(outcome, 'gone');
    assert.match(latestRow(env, 'pipe.csv').lastError ?? '', /regular file/);
    await assertNoObjects(env);
  });

  void test('a claim whose target is no longer configured is retried, not lost', async (t) => {
    const env = await setup(t);
    arrive(env, 'orphan.csv', 'target removed from config\n');

    const { outcome } = await archiveNext(env, { targetFor: () => undefined });

    assert.equal(outcome, 'retry');
    const row = latestRow(env, 'orphan.csv');
    assert.equal(row.state, 'retry');
    assert.match(row.lastError ?? '', /no longer configured/);
  });

  void test('a path whose key would exceed 1024 bytes is quarantined with E_KEY_LAYOUT, its bytes under the quarantine prefix', async (t) => {
    const env = await setup(t);
    // 2-byte characters: 600 characters but over 1200 bytes, so a character count would not catch it.
    const segment = 'é'.repeat(120);
    const relPath = [segment, segment, segment, segment, `${segment}.csv`].join('/');
    assert.ok(relPath.length < 1024 && Buffer.byteLength(relPath) > 1024);
    arrive(env, relPath, 'deep\n');

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'quarantined');
    const row = latestRow(env, relPath);
    assert.equal(row.state, 'quarantined');
    assert.match(row.lastError ?? '', /^E_KEY_LAYOUT: .*1024.*original bytes at s3:\/\/.*_quarantine\/long-names\//);
    // Kept under the quarantine prefix, by the hash of its path: nothing under the archive prefix.
    const versions = await listVersions(s3, env.bucket);
    assert.deepEqual(versions.map((v) => v.key), [`_quarantine/long-names/${sha256(Buffer.from(relPath))}`]);
    assert.deepEqual((await getObject(s3, env.bucket, versions[0]!.key)).body, Buffer.from('deep\n'));
  });

  // With the default layout (prefix "", quarantine_prefix "_quarantine/") a plain file `_quarantine/bad.zip` and
  // the quarantined `bad.zip` want the same key: whichever comes second is refused, and the first keeps its key's
  // only version.
  void test('a quarantine whose key a plain file under the quarantine prefix holds is refused naming it; that object keeps its one version', async (t) => {
    const env = await setup(t);
    arrive(env, '_quarantine/bad.zip', 'text\n');
    assert.equal((await archiveNext(env)).outcome, 'archived');
    const garbage = Buffer.from('PK\x03\x04garbage', 'latin1');
    arrive(env, 'bad.zip', garbage);

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'quarantined');
    const reason = latestRow(env, 'bad.zip').lastError ?? '';
    assert.match(reason, /^E_ARCHIVE_REJECTED: /, reason);
    assert.match(reason, /"_quarantine\/bad\.zip" already belongs to .*\/_quarantine\/bad\.zip/, reason);
    assert.match(reason, /original bytes not stored/, reason);
    assert.deepEqual(await allVersionBytes(env, '_quarantine/bad.zip'), [Buffer.from('text\n')]);
    assert.deepEqual(env.ledger.reader.story('bad.zip', env.target.path).objects, []);
  });

  void test('a plain file whose key a quarantined original holds is quarantined in turn, under its own quarantine key', async (t) => {
    const env = await setup(t);
    const garbage = Buffer.from('PK\x03\x04garbage', 'latin1');
    arrive(env, 'bad.zip', garbage);
    assert.equal((await archiveNext(env)).outcome, 'quarantined');
    arrive(env, '_quarantine/bad.zip', 'text\n');

    const { outcome } = await archiveNext(env);

    assert.equal(outcome, 'quarantined');
    const reason = latestRow(env, '_quarantine/bad.zip').lastError ?? '';
    assert.match(reason, /^E_KEY_CONFLICT: key "_quarantine\/bad\.zip" already belongs to .*\/bad\.zip .*_quarantine\/_quarantine\/bad\.zip/, reason);
    assert.deepEqual(await allVersionBytes(env, '_quarantine/bad.zip'), [garbage]);
    assert.deepEqual(await allVersionBytes(env, '_quarantine/_quarantine/bad.zip'), [Buffer.from('text\n')]);
  });

  void test('a quarantine reserves its key before writing: a plain file claimed meanwhile for that key is refused', async (t) => {
    const env = await setup(t);
    const garbage = Buffer.from('PK\x03\x04garbage', 'latin1');
    arrive(env, 'bad.zip', garbage);
    arrive(env, '_quarantine/bad.zip', 'text\n');
    const first = claim(env);
    const second = claim(env);
    const [zip, plain] = first.relPath === 'bad.zip' ? [first, second] : [second, first];
    // The plain file's archive runs while the quarantine's upload is in flight.
    let plainOutcome: Promise<string> | undefined;
    const slowStore = faultyStore(store, {
      beforePut: (request) => {
        if (request.key === '_quarantine/bad.zip' && plainOutcome === undefined) plainOutcome = archiveClaimed(plain, env.deps());
        return plainOutcome?.then(() => undefined);
      },
    });

    assert.equal(await archiveClaimed(zip, env.deps({ store: slowStore })), 'quarantined');
    assert.equal(await plainOutcome, 'quarantined');
    assert.match(latestRow(env, '_quarantine/bad.zip').lastError ?? '', /^E_KEY_CONFLICT: .*already belongs to .*\/bad\.zip /);
    assert.deepEqual(await allVersionBytes(env, '_quarantine/bad.zip'), [garbage]);
  });
});

void describe('files that change while being archived', () => {
  // A close is not proof: a writer may hold the file open again. The kernel says so (a read lease it refuses),
  // and the row is given back; but a file held open and quiet for settle_seconds (a log a daemon never closes)
  // is archived as it is, by the scan rule, not given back forever.
  void test('a writer holding the file open: given back while it is fresh, archived once quiet for the settle time', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'held-open.log', 'line 1\n');
    const fd = fs.openSync(file, 'a');
    t.after(() => fs.closeSync(fd));
    const fresh = await archiveNext(env, { now: Date.now, settings: { ...SETTINGS, settleMs: 60_000 } });
    assert.equal(fresh.outcome, 'requeued');
    assert.match(latestRow(env, 'held-open.log').lastError ?? '', /a writer has it open again/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    env.clock.ms = Date.now() + 60_000; // past the requeue wait
    const quiet = await archiveNext(env, { now: Date.now, settings: { ...SETTINGS, settleMs: 200 } });
    assert.equal(quiet.outcome, 'archived');
    assert.deepEqual((await allVersionBytes(env, 'held-open.log')).map(String), ['line 1\n']);
  });

  void test('a file appended to during the upload is requeued, then archived whole; S3 never holds a torn object', async (t) => {
    const env = await setup(t);
    const original = 'line 1\nline 2\n';
    const file = arrive(env, 'live.log', original);
    let appended = false;
    const appending = faultyStore(store, {
      beforePut: () => {
        if (appended) return;
        appended = true;
        fs.appendFileSync(file, 'line 3\n');
      },
    });

    const first = await archiveNext(env, { store: appending });

    assert.equal(first.outcome, 'requeued');
    const row = latestRow(env, 'live.log');
    assert.equal(row.state, 'pending');
    assert.match(row.lastError ?? '', /changed/);
    assert.ok((row.nextAttemptAt ?? 0) > env.clock.now(), 'not re-read at once: its writer may still be appending');
    assert.equal(env.ledger.claimNext('pid:test'), undefined);

    observe(env, 'live.log'); // the writer's close arrives and ends the wait
    const second = await archiveNext(env, { store: appending });
    assert.equal(second.outcome, 'archived');
    assert.equal(second.claim.attempts, 2);
    const complete = [original, `${original}line 3\n`];
    const bodies = (await allVersionBytes(env, 'live.log')).map(String);
    assert.ok(bodies.length >= 1);
    for (const body of bodies) assert.ok(complete.includes(body), `torn object in S3: ${JSON.stringify(body)}`);
    assert.equal(bodies.at(-1), complete[1], 'the latest version is the latest complete content');
    assert.equal(new Set(bodies).size, bodies.length, 'at most one version per content');
    assert.equal(latestRow(env, 'live.log').sha256, sha256(complete[1]!));
  });

  void test('a large file changed between the hash pass and the upload stream aborts the upload and is requeued', async (t) => {
    const env = await setup(t);
    const content = patternBytes(11 * MIB, 3);
    const file = arrive(env, 'big/changing.bin', content);
    const overwriting = overwriteAfterHashPass(file, patternBytes(11 * MIB, 4));

    const first = await archiveNext(env, { source: overwriting.source });

    assert.ok(overwriting.fired());
    await assertNoObjects(env);
    await assertNoOpenMultipartUploads(env);
    const row = latestRow(env, 'big/changing.bin');
    assert.equal(
      `${first.outcome} ${row.state}`,
      'requeued pending',
      `a source change must requeue, not be retried as an S3 failure (last_error: ${row.lastError ?? 'none'})`,
    );
    assert.match(row.lastError ?? '', /E_SOURCE_CHANGED|changed/);
  });

  void test('after a large file changed mid-upload, the next claim archives the new content', async (t) => {
    const env = await setup(t);
    const file = arrive(env, 'big/next.bin', patternBytes(11 * MIB, 5));
    const changed = patternBytes(11 * MIB, 6);
    await archiveNext(env, { source: overwriteAfterHashPass(file, changed).source });
    // Whichever way the first outcome was recorded, the row must become claimable again.
    env.clock.advance(SETTINGS.maxBackoffSeconds * 1000);

    const second = await archiveNext(env);

    assert.equal(second.outcome, 'archived');
    const bodies = await allVersionBytes(env, 'big/next.bin');
    assert.equal(bodies.length, 1);
    assert.equal(sha256(bodies[0]!), sha256(changed));
  });
});

void describe('exactly once across failures', () => {
  void test('a crash between PUT and ledger commit: the next attempt\'s conditional PUT is refused (412), HEAD finds the object, nothing written', async (t) => {
    const env = await setup(t);
    const content = 'written just before the crash\n';
    const file = arrive(env, 'crash.csv', content);
    const first = claim(env);
    assert.equal(first.attempts, 1);
    // What the crashed worker got through: the PUT, with the metadata archiveClaimed would send.
    await store.put({
      bucket: env.bucket,
      key: 'crash.csv',
      body: Buffer.from(content),
      sizeBytes: Buffer.byteLength(content),
      sha256: sha256(content),
      metadata: objectMetadata({
        relPath: 'crash.csv',
        sha256: sha256(content),
        sourceSha256: sha256(content),
        mtimeMs: fs.statSync(file).mtimeMs,
      }),
      partSizeBytes: SETTINGS.partSizeBytes,
    });
    assert.equal(env.ledger.recoverAbandoned(() => false), 1);

    const counting = faultyStore(store, {});
    const uploaded: number[] = [];
    const second = await archiveNext(env, { store: counting, onUploaded: (bytes) => uploaded.push(bytes) });

    assert.equal(second.claim.attempts, 2);
    assert.equal(second.outcome, 'archived');
    assert.deepEqual(uploaded, [], 'found in S3, not uploaded by this attempt: no bytes counted');
    assert.equal(counting.puts, 1, 'one PUT with If-None-Match: *, refused because the object exists');
    const [object] = env.ledger.reader.story('crash.csv').objects;
    assert.equal(object?.foundByHead, true);
    assert.match(env.ledger.reader.story('crash.csv').history.at(-1)?.detail ?? '', /found in S3 after a 412/);
    const versions = await versionsOf(env, 'crash.csv');
    assert.equal(versions.length, 1);
    assert.equal(object?.versionId, versions[0]!.versionId);
  });

  void test('S3 down: the file is scheduled to retry with the error, and archives once S3 is back', async (t) => {
    const env = await setup(t);
    arrive(env, 'patient.csv', 'waits for S3\n');
    const deadClient = storeClient(`http://127.0.0.1:${await freePort()}`);
    t.after(() => deadClient.destroy());

    const first = await archiveNext(env, { store: new S3Store(deadClient) });

    assert.equal(first.outcome, 'retry');
    const row = latestRow(env, 'patient.csv');
    assert.equal(row.state, 'retry');
    assert.match(row.lastError ?? '', /^E_S3_RETRYABLE: /);
    assert.ok((row.nextAttemptAt ?? 0) > env.clock.now(), 'the retry is in the future');
    assert.equal(env.ledger.claimNext('pid:test'), undefined, 'not claimable before its backoff passes');

    env.clock.ms = row.nextAttemptAt!;
    const second = await archiveNext(env);
    assert.equal(second.outcome, 'archived');
    assert.equal(second.claim.attempts, 2);
    assert.deepEqual((await allVersionBytes(env, 'patient.csv')).map(String), ['waits for S3\n']);
  });

  void test('S3 down during a large (streamed) upload: retried, the source handle closed cleanly, archived later', async (t) => {
    const env = await setup(t);
    const content = patternBytes(12 * MIB, 9);
    arrive(env, 'big/outage.bin', content);
    const deadClient = storeClient(`http://127.0.0.1:${await freePort()}`);
    t.after(() => deadClient.destroy());
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown): void => void uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    t.after(() => process.off('uncaughtException', onUncaught));

    const first = await archiveNext(env, { store: new S3Store(deadClient) });
    // Let a read still queued on the closed descriptor surface, if the stream was left reading.
    await new Promise((resolve) => setTimeout(resolve, 50));

    assert.equal(first.outcome, 'retry');
    assert.deepEqual(uncaught, [], 'an abandoned upload stream must not raise an uncaught error');
    const row = latestRow(env, 'big/outage.bin');
    assert.match(row.lastError ?? '', /^E_S3_RETRYABLE: /);
    env.clock.ms = row.nextAttemptAt!;
    assert.equal((await archiveNext(env)).outcome, 'archived');
    const bodies = await allVersionBytes(env, 'big/outage.bin');
    assert.deepEqual(bodies.map(sha256), [sha256(content)]);
  });

  // Tests run as root, where chmod cannot produce EACCES: the error is injected where the kernel would raise it.
  const sourceFaults: { name: string; code: string; source: SourceFaults }[] = [
    {
      name: 'open fails with EACCES',
      code: 'EACCES',
      source: {
        open: (p) => {
          throw errnoError('EACCES', 'open', p);
        },
      },
    },
    {
      name: 'a read fails with EIO',
      code: 'EIO',
      source: { wrapFile: (inner, p) => ({ ...inner, readAll: () => Promise.reject(errnoError('EIO', 'read', p)) }) },
    },
  ];
  for (const fault of sourceFaults) {
    void test(`a source error (${fault.name}) is retried with its code in last_error, and archives once it clears`, async (t) => {
      const env = await setup(t);
      arrive(env, 'guarded.csv', 'readable later\n');

      const first = await archiveNext(env, { source: faultySource(nodeSourceFs, fault.source) });

      assert.equal(first.outcome, 'retry');
      const row = latestRow(env, 'guarded.csv');
      assert.equal(row.state, 'retry');
      assert.match(row.lastError ?? '', new RegExp(`^${fault.code}\\b`));
      await assertNoObjects(env);

      env.clock.ms = row.nextAttemptAt!;
      assert.equal((await archiveNext(env)).outcome, 'archived');
    });
  }

  void test('S3 answering the wrong checksum is retried; the retry finds the stored object instead of writing again', async (t) => {
    const env = await setup(t);
    arrive(env, 'checked.csv', 'checksummed\n');
    const lying = faultyStore(store, {
      alterResult: (stored) => ({ ...stored, checksumSha256: Buffer.from(sha256('other'), 'hex').toString('base64') }),
    });

    const first = await archiveNext(env, { store: lying });

    assert.equal(first.outcome, 'retry');
    const row = latestRow(env, 'checked.csv');
    assert.equal(row.state, 'retry');
    assert.match(row.lastError ?? '', /checksum/);
    assert.deepEqual(env.ledger.reader.story('checked.csv').objects, [], 'an unverified upload is not recorded as proof');

    env.clock.ms = row.nextAttemptAt!;
    const second = await archiveNext(env);
    assert.equal(second.outcome, 'archived');
    assert.equal((await versionsOf(env, 'checked.csv')).length, 1);
  });
});
