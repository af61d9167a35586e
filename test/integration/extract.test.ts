// Issue 9 against real parts: every archive fixture (test/support/archives.ts, generated per run) goes through
// archiveClaimed with a real ledger file and a versioned moto bucket. A good archive must land as exactly its
// members (one version each, bytes and metadata compared); a hostile one must be quarantined whole, by the rule
// that names it, with its original bytes under the quarantine prefix and nothing else in the bucket.
import type { S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import type { TargetConfig } from '../../src/config.js';
import { StoreError } from '../../src/errors.js';
import type { Ledger } from '../../src/ledger/ledger.js';
import { archiveClaimed, type ArchiveDeps, type ArchiveSettings } from '../../src/pipeline/archive-file.js';
import type { S3Store } from '../../src/s3/s3-store.js';
import { nodeSourceFs } from '../../src/source/source-fs.js';
import * as fixtures from '../support/archives.js';
import { archiveSettings, ManualClock, openTestLedger, silentLog, statOf, targetConfig, tempDir, withDeadline } from '../support/fixtures.js';
import { getObject, listVersions, startMotoStore, type MotoServer } from '../support/moto.js';

let moto: MotoServer;
let s3: S3Client;
let store: S3Store;
let stopS3: () => Promise<void>;
let buckets = 0;

before(async () => ({ moto, client: s3, store, stop: stopS3 } = await startMotoStore()));
after(() => stopS3());

interface World {
  readonly root: string;
  readonly fixtures: string;
  readonly bucket: string;
  readonly ledger: Ledger;
  readonly target: TargetConfig;
  readonly deps: ArchiveDeps;
  readonly clock: ManualClock;
}

async function world(t: TestContext, settings: Partial<ArchiveSettings> = {}, target: Partial<TargetConfig> = {}): Promise<World> {
  const dir = tempDir(t, 'sftppush-extract');
  const root = path.join(dir, 'incoming');
  const fixtureDir = path.join(dir, 'fixtures');
  fs.mkdirSync(root);
  fs.mkdirSync(fixtureDir);
  const bucket = `extract-${process.pid}-${(buckets += 1)}`;
  await moto.createBucket(bucket);
  const clock = new ManualClock(Date.now() + 3600_000); // every file long settled
  const ledger = openTestLedger(t, dir, clock.now);
  const config = targetConfig({ path: root, bucket, ...target });
  return {
    root,
    fixtures: fixtureDir,
    bucket,
    ledger,
    target: config,
    clock,
    deps: {
      ledger,
      store,
      source: nodeSourceFs,
      log: silentLog,
      writeMode: () => Promise.resolve('conditional'),
      now: clock.now,
      random: () => 0.5,
      settings: archiveSettings(settings),
      targetFor: (p) => (p === config.path ? config : undefined),
      reobserve: () => undefined,
    },
  };
}

/** Moves a fixture into the target (as an SFTP client's rename would) and archives it: one claim, one outcome. */
async function arrive(w: World, fixturePath: string, relDir = ''): Promise<{ relPath: string; outcome: string }> {
  const relPath = path.posix.join(relDir, path.basename(fixturePath));
  fs.mkdirSync(path.join(w.root, relDir), { recursive: true });
  fs.renameSync(fixturePath, path.join(w.root, relPath));
  w.ledger.observe(w.target.path, relPath, statOf(path.join(w.root, relPath)));
  const claim = w.ledger.claimNext('pid:test');
  assert.ok(claim);
  return { relPath, outcome: await archiveClaimed(claim, w.deps) };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The key a member must have, spelled out here independently of key-layout.ts (DESIGN.md's table). */
function expectedKey(relPath: string, format: fixtures.ArchiveFormat, member: string): string {
  const dir = path.posix.dirname(relPath) === '.' ? '' : `${path.posix.dirname(relPath)}/`;
  if (format === 'plain') return relPath;
  if (format === 'gz') return `${dir}${member}`;
  const stem = path.posix.basename(relPath).replace(/(\.tar\.gz|\.tgz|\.tar|\.zip|\.gz)$/i, '');
  return `${dir}${stem}/${member}`;
}

/** The bucket holds exactly one version per member, with its bytes and the documented metadata. */
async function assertLanded(w: World, relPath: string, archive: fixtures.GoodArchive, archiveBytes: Buffer): Promise<void> {
  const versions = await listVersions(s3, w.bucket);
  const keys = archive.members.map((m) => expectedKey(relPath, archive.format, m.name));
  assert.deepEqual(versions.map((v) => v.key).sort(), [...keys].sort(), `${relPath}: exactly one version per member, nothing else`);
  for (const [i, member] of archive.members.entries()) {
    const { body, metadata } = await getObject(s3, w.bucket, keys[i]!);
    const want = fixtures.memberDigest(member.bytes);
    assert.equal(body.length, want.size, `${keys[i]}: size`);
    assert.equal(sha256(body), want.sha256, `${keys[i]}: bytes`);
    assert.equal(metadata.sha256, want.sha256);
    assert.equal(decodeURI(metadata.source ?? ''), relPath);
    assert.equal(metadata['source-sha256'], sha256(archiveBytes));
    if (archive.format !== 'plain') assert.equal(decodeURI(metadata.member ?? ''), member.name);
  }
}

void describe('good archives land as their members', () => {
  const cases: [string, (dir: string) => Promise<fixtures.GoodArchive>][] = [
    ['zip (stored, deflated, nested)', fixtures.zipArchive],
    ['tar', fixtures.tarArchive],
    ['tar.gz', fixtures.tarGzArchive],
    ['tgz', fixtures.tgzArchive],
    ['a tar.gz named .gz', fixtures.tarGzNamedGz],
    ['gz (d.csv.gz -> d.csv)', fixtures.gzFile],
    ['concatenated gzip members: one stream', fixtures.concatenatedGz],
    ['a zip of directory entries only', fixtures.zipDirectoriesOnly],
    ['UTF-8 names', fixtures.utf8NamesZip],
    ['CP437 names', fixtures.cp437NamesZip],
    ['zip64', fixtures.zip64Zip],
    ['a streamed zip with data descriptors', fixtures.dataDescriptorZip],
    ['pax long names', fixtures.paxLongNameTar],
    ['GNU long names', fixtures.gnuLongNameTar],
    ['a self-extracting zip (stub before PK): stored whole', fixtures.selfExtractingZip],
    ['a .zip that is text: stored whole', fixtures.textNamedZip],
  ];
  for (const [name, make] of cases) {
    void test(name, async (t) => {
      const w = await world(t);
      const archive = await make(w.fixtures);
      const bytes = fs.readFileSync(archive.path);
      const { relPath, outcome } = await arrive(w, archive.path, 'in/day1');
      assert.equal(outcome, 'archived');
      // A zip of directories only has no member: it is stored whole, as the empty archives are below.
      const landed = archive.members.length > 0 ? archive : { ...archive, format: 'plain' as const, members: [{ name: relPath, bytes }] };
      await assertLanded(w, relPath, landed, bytes);
      const story = w.ledger.reader.story(relPath, w.target.path);
      assert.equal(story.generations[0]?.state, 'archived');
      assert.equal(story.objects.length, landed.members.length);
    });
  }

  for (const [name, make] of [['empty zip', fixtures.emptyZip], ['empty tar', fixtures.emptyTar]] as const) {
    void test(`an ${name} is archived with no member and stored whole: nothing else would show it arrived`, async (t) => {
      const w = await world(t);
      const archive = await make(w.fixtures);
      assert.deepEqual(archive.members, []);
      const bytes = fs.readFileSync(archive.path);
      const { relPath, outcome } = await arrive(w, archive.path);
      assert.equal(outcome, 'archived');
      await assertLanded(w, relPath, { ...archive, format: 'plain', members: [{ name: relPath, bytes }] }, bytes);
    });
  }

  void test('a 50 MB member goes up as a multipart upload, its bytes intact', async (t) => {
    const w = await world(t);
    const archive = await fixtures.largeMemberArchive(w.fixtures, { format: 'tar' });
    const bytes = fs.readFileSync(archive.path);
    const { relPath, outcome } = await arrive(w, archive.path);
    assert.equal(outcome, 'archived');
    await assertLanded(w, relPath, archive, bytes);
    const object = w.ledger.reader.story(relPath, w.target.path).objects[0];
    assert.match(object?.etag ?? '', /-\d+"$/, 'a multipart ETag (of its parts)');
  });

  void test('keep_archive also stores the original; extract = false stores every file as it is', async (t) => {
    const kept = await world(t, {}, { keepArchive: true });
    const archive = await fixtures.zipArchive(kept.fixtures);
    const bytes = fs.readFileSync(archive.path);
    const { relPath } = await arrive(kept, archive.path);
    const keys = (await listVersions(s3, kept.bucket)).map((v) => v.key).sort();
    assert.deepEqual(keys, [relPath, ...archive.members.map((m) => expectedKey(relPath, 'zip', m.name))].sort());
    assert.deepEqual((await getObject(s3, kept.bucket, relPath)).body, bytes);

    const plain = await world(t, {}, { extract: false });
    const again = await fixtures.tarGzArchive(plain.fixtures);
    const raw = fs.readFileSync(again.path);
    const stored = await arrive(plain, again.path);
    assert.deepEqual((await listVersions(s3, plain.bucket)).map((v) => v.key), [stored.relPath]);
    assert.deepEqual((await getObject(s3, plain.bucket, stored.relPath)).body, raw);
  });
});

void describe('hostile or broken archives are quarantined whole', () => {
  type Make = (dir: string) => Promise<fixtures.HostileArchive | fixtures.SkippedFixture>;
  const cases: [string, Make][] = [
    ['zip-slip ../', (d) => fixtures.unsafeNameArchive(d, 'traversal')],
    ['tar ../', (d) => fixtures.unsafeNameArchive(d, 'traversal', 'tar')],
    ['an absolute path', (d) => fixtures.unsafeNameArchive(d, 'absolute', 'tar')],
    ['a backslash', (d) => fixtures.unsafeNameArchive(d, 'backslash')],
    ['a drive letter', (d) => fixtures.unsafeNameArchive(d, 'drive')],
    ['a NUL in a name', (d) => fixtures.unsafeNameArchive(d, 'nul', 'tar')],
    ['a symlink member', (d) => fixtures.specialMemberTar(d, 'symlink')],
    ['a hardlink member', (d) => fixtures.specialMemberTar(d, 'hardlink')],
    ['a character device', (d) => fixtures.specialMemberTar(d, 'character-device')],
    ['a FIFO', (d) => fixtures.specialMemberTar(d, 'fifo')],
    ['a tar that writes through a symlink it created', fixtures.tarThroughSymlink],
    ['an encrypted zip (zip -P)', fixtures.encryptedZip],
    ['a zip CRC mismatch', fixtures.crcMismatchZip],
    ['a zip that lies about a member size', fixtures.sizeLieZip],
    ['central directory entries overlapping one local file', (d) => fixtures.overlappingZip(d)],
    ['a truncated zip (data)', (d) => fixtures.truncatedZip(d, 'data')],
    ['a truncated zip (central directory)', (d) => fixtures.truncatedZip(d, 'central')],
    ['a truncated tar.gz', fixtures.truncatedTarGz],
    ['a corrupt gzip', fixtures.corruptGzip],
    ['gzip magic bytes, then no deflate member', fixtures.gzipBadMethod],
    ['zero bytes after the last gzip member', (d) => fixtures.gzipTrailingGarbage(d, 'zeros')],
    ['text after the last gzip member', (d) => fixtures.gzipTrailingGarbage(d, 'text')],
    ['two zip members with one name', (d) => fixtures.duplicateNameArchive(d, 'zip')],
    ['two tar members with one name', (d) => fixtures.duplicateNameArchive(d, 'tar')],
  ];
  for (const [name, make] of cases) {
    void test(name, async (t) => {
      const w = await world(t);
      const fixture = await make(w.fixtures);
      if ('skip' in fixture) return t.skip(fixture.skip);
      await assertQuarantined(w, fixture);
    });
  }

  void test('a gzip bomb of 1 GiB of zeros is rejected by max_ratio in bounded time and memory', async (t) => {
    const w = await world(t);
    await assertBombRejected(w, await fixtures.gzipBomb(w.fixtures));
  });

  void test('a zip bomb of 1 GiB of zeros is rejected by max_ratio in bounded time and memory', async (t) => {
    const w = await world(t);
    await assertBombRejected(w, await fixtures.zipBomb(w.fixtures));
  });

  void test('more members than max_members', async (t) => {
    const w = await world(t, { archiveLimits: { ...archiveSettings().archiveLimits, maxMembers: 50 } });
    const archive = await fixtures.manyMembersTar(w.fixtures, 51);
    await assertQuarantined(w, { path: archive.path, expectRejection: 'max_members' as fixtures.RejectionRule });
  });

  void test('the watcher\'s other files carry on: a good file after a rejected archive is archived', async (t) => {
    const w = await world(t);
    await assertQuarantined(w, await fixtures.unsafeNameArchive(w.fixtures, 'traversal'));
    const good = await fixtures.gzFile(w.fixtures);
    const { outcome } = await arrive(w, good.path);
    assert.equal(outcome, 'archived');
  });
});

async function assertQuarantined(w: World, fixture: fixtures.HostileArchive): Promise<void> {
  const bytes = fs.readFileSync(fixture.path);
  const { relPath, outcome } = await arrive(w, fixture.path, 'in');
  assert.equal(outcome, 'quarantined', `${relPath} must be quarantined for ${fixture.expectRejection}`);
  const row = w.ledger.reader.story(relPath, w.target.path).generations.at(-1);
  assert.equal(row?.state, 'quarantined');
  assert.match(row.lastError ?? '', /^E_ARCHIVE_REJECTED: /);
  assert.match(row.lastError ?? '', new RegExp(fixture.expectRejection, 'i'));
  // The original bytes, and only they: no member stays under the archive prefix as if it had succeeded.
  const versions = await listVersions(s3, w.bucket);
  assert.deepEqual(versions.map((v) => v.key), [`_quarantine/${relPath}`]);
  assert.deepEqual((await getObject(s3, w.bucket, `_quarantine/${relPath}`)).body, bytes);
}

async function assertBombRejected(w: World, fixture: fixtures.HostileArchive): Promise<void> {
  assert.ok(fs.statSync(fixture.path).size < 5 * fixtures.MiB, 'a bomb is small on disk');
  const rssBefore = process.memoryUsage().rss;
  const started = performance.now();
  await assertQuarantined(w, fixture);
  const seconds = (performance.now() - started) / 1000;
  const rssGrowthMiB = (process.memoryUsage().rss - rssBefore) / fixtures.MiB;
  assert.ok(seconds < 20, `rejected in ${seconds.toFixed(1)} s`);
  assert.ok(rssGrowthMiB < 100, `RSS grew ${rssGrowthMiB.toFixed(0)} MiB`);
}

void describe('an archive rewritten while it is being stored', () => {
  /**
   * The real filesystem, except that right after the validating pass (the archive's whole-file hash comes next)
   * the sender rewrites the file in place with `replacement`: the second pass reads other bytes than the first.
   */
  function rewrittenAfterValidation(w: World, relPath: string, replacement: Buffer): ArchiveDeps {
    let fired = false;
    return {
      ...w.deps,
      source: {
        ...nodeSourceFs,
        async open(p) {
          const file = await nodeSourceFs.open(p);
          return {
            ...file,
            async sha256() {
              const digest = await file.sha256();
              if (!fired && p === path.join(w.root, relPath)) {
                fired = true;
                fs.writeFileSync(p, replacement);
              }
              return digest;
            },
          };
        },
      },
    };
  }

  for (const [name, make] of [['zip', fixtures.zipArchive], ['tar.gz', fixtures.tarGzArchive]] as const) {
    void test(`a ${name} truncated to a small other archive: looked at again, never quarantined, never a hang`, async (t) => {
      const w = await world(t);
      const archive = await make(w.fixtures);
      const small = await fixtures.emptyZip(w.fixtures);
      const relPath = path.basename(archive.path);
      fs.renameSync(archive.path, path.join(w.root, relPath));
      w.ledger.observe(w.target.path, relPath, statOf(path.join(w.root, relPath)));
      const claim = w.ledger.claimNext('pid:test');
      assert.ok(claim);
      const outcome = await withDeadline('the archive step', archiveClaimed(claim, rewrittenAfterValidation(w, relPath, fs.readFileSync(small.path))), 30_000);
      assert.equal(outcome, 'requeued');
      const row = w.ledger.reader.story(relPath, w.target.path).generations.at(-1);
      assert.equal(row?.state, 'pending');
      assert.match(row.lastError ?? '', /changed/);
      assert.deepEqual((await listVersions(s3, w.bucket)).filter((v) => v.key.startsWith('_quarantine/')), [], 'nothing quarantined');
    });
  }
});

void describe('an archive whose content changes before every member is stored', () => {
  /** mixed.zip (a.csv, b.csv, y/z.csv) arrives; S3 takes its first member, then throttles: the attempt ends in retry. */
  async function partlyStored(w: World): Promise<{ relPath: string; id: number }> {
    const old = await fixtures.zipArchive(w.fixtures);
    const relPath = 'mixed.zip';
    fs.renameSync(old.path, path.join(w.root, relPath));
    w.ledger.observe(w.target.path, relPath, statOf(path.join(w.root, relPath)));
    let puts = 0;
    const throttled: ArchiveDeps = {
      ...w.deps,
      settings: { ...w.deps.settings, concurrency: 1 },
      store: {
        ...store,
        put: (request) =>
          (puts += 1) === 1 ? store.put(request) : Promise.reject(new StoreError('put', request.key, true, { cause: new Error('SlowDown') })),
        head: (bucket, key) => store.head(bucket, key),
        deleteVersion: (bucket, key, versionId) => store.deleteVersion(bucket, key, versionId),
      },
    };
    const first = w.ledger.claimNext('pid:test');
    assert.ok(first);
    assert.equal(await archiveClaimed(first, throttled), 'retry');
    assert.equal((await listVersions(s3, w.bucket, 'mixed/')).length, 1, 'one member of the old content stored');
    return { relPath, id: first.id };
  }

  /** The client replaces the file's content; the same generation is claimed again and archived. */
  async function replacedWith(w: World, relPath: string, id: number, content: Buffer): Promise<string> {
    fs.writeFileSync(path.join(w.root, relPath), content);
    w.ledger.observe(w.target.path, relPath, statOf(path.join(w.root, relPath)));
    const again = w.ledger.claimNext('pid:test');
    assert.equal(again?.id, id, 'the same generation, started over');
    return archiveClaimed(again, w.deps);
  }

  async function assertWithdrawn(w: World, relPath: string): Promise<void> {
    assert.deepEqual(await listVersions(s3, w.bucket, 'mixed/'), [], 'no member of the old content stays');
    assert.ok(w.ledger.reader.story(relPath, w.target.path).history.some((h) => /1 objects withdrawn: the archive changed/.test(h.detail ?? '')));
  }

  void test('rewritten as another archive: only the new content stays at the keys', async (t) => {
    const w = await world(t);
    const { relPath, id } = await partlyStored(w);
    const replacement = await fixtures.utf8NamesZip(w.fixtures);
    assert.equal(await replacedWith(w, relPath, id, fs.readFileSync(replacement.path)), 'archived');
    const versions = await listVersions(s3, w.bucket);
    assert.deepEqual(versions.map((v) => v.key).sort(), replacement.members.map((m) => `mixed/${m.name}`).sort(), 'only the new content');
    const story = w.ledger.reader.story(relPath, w.target.path);
    assert.deepEqual(story.objects.map((o) => o.key).sort(), replacement.members.map((m) => `mixed/${m.name}`).sort());
    assert.ok(story.history.some((h) => /1 objects withdrawn: the archive changed/.test(h.detail ?? '')));
  });

  void test('rewritten as a plain file: archived as one, the old members withdrawn', async (t) => {
    const w = await world(t);
    const { relPath, id } = await partlyStored(w);
    assert.equal(await replacedWith(w, relPath, id, Buffer.from('not an archive any more\n')), 'archived');
    await assertWithdrawn(w, relPath);
    assert.deepEqual((await listVersions(s3, w.bucket)).map((v) => v.key), [relPath]);
  });

  void test('rewritten as a hostile archive: quarantined, the old members withdrawn', async (t) => {
    const w = await world(t);
    const { relPath, id } = await partlyStored(w);
    const hostile = await fixtures.unsafeNameArchive(w.fixtures, 'traversal');
    assert.equal(await replacedWith(w, relPath, id, fs.readFileSync(hostile.path)), 'quarantined');
    await assertWithdrawn(w, relPath);
    assert.deepEqual((await listVersions(s3, w.bucket)).map((v) => v.key), [`_quarantine/${relPath}`]);
  });

  void test('deleted: gone, the old members withdrawn', async (t) => {
    const w = await world(t);
    const { relPath, id } = await partlyStored(w);
    fs.rmSync(path.join(w.root, relPath));
    w.clock.advance(3600_000); // the retry is due
    const again = w.ledger.claimNext('pid:test');
    assert.equal(again?.id, id);
    assert.equal(await archiveClaimed(again, w.deps), 'gone');
    await assertWithdrawn(w, relPath);
  });
});
