// Issue 9 end to end: the real `bin/sftppush` as a child process against a versioned moto bucket, with the
// shipped defaults (settle_seconds 30, concurrency 8, quiet_ms 0). Archives are generated in a staging
// directory next to the target (same filesystem) and renamed in, as an SFTP client finishes an upload: an
// IN_MOVED_TO, taken at once, so the 30 s settle time never delays a watched case. What the in-process
// integration test (test/integration/extract.test.ts) already proves per fixture is not repeated here; these
// cases prove what only the running service can: the watcher, the CLI (`status`, `reconcile --verify`), config
// limits, a SIGKILL half-way through a 2,000-member archive and its restart, and that the watcher carries on.
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

import { KILL_AT_VARIABLE } from '../../src/kill-points.js';
import * as fixtures from '../support/archives.js';
import { getObject, listVersions, MOTO_ENV } from '../support/moto.js';
import {
  createService,
  describeLogs,
  exitWithin,
  isFileOutcome,
  motoForSuite,
  SFTPPUSH_BIN,
  sha256,
  type LogLine,
  type Service,
  type ServiceOptions,
  type StoryJson,
} from '../support/service.js';

const execFileAsync = promisify(execFile);

/** The shipped config.toml's values for what createService would otherwise set for tests (settle 1 s, concurrency 4). */
const SHIPPED = { settleSeconds: 30, concurrency: 8 } as const;
/** One small archive, renamed in, on a 2-core machine next to moto. */
const ARCHIVE_DEADLINE_MS = 60_000;
/** 2,000 members: two passes over the tar and 2,000 PUTs to moto (about 15 s for both runs here; generous for a loaded 2-core CI). */
const MANY_DEADLINE_MS = 300_000;
const MANY_MEMBERS = 2000;
const KILL_AFTER = 700;
/** Small members stored at once per archive: upload.concurrency (archive-members.ts). */
const MEMBERS_IN_FLIGHT = SHIPPED.concurrency;

/** `status --json PATH` objects carry more than the helper's type names. */
type StoryObject = StoryJson['objects'][number] & { member: string | null; sizeBytes: number };
type StoryRow = StoryJson['generations'][number] & { lastError: string | null; target: string; attempts: number };

interface FailedJson {
  counts: Record<string, number>;
  failed: { target: string; relPath: string; state: string; lastError: string | null }[];
}

/** The `reconcile --json` result (ReconcileSummary in src/reconcile/summary.ts), the parts used here. */
interface ReconcileJson {
  counts: Record<'scanned' | 'queued' | 'uploaded' | 'duplicates' | 'verified' | 'reUploaded' | 'failed', number>;
  unfinished: unknown[];
  verifyFindings: { target: string; path: string; key: string; reason: string }[];
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI once; a non-zero exit is a result, not a throw. */
async function sftppush(args: readonly string[]): Promise<CliResult> {
  const env = { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  try {
    const { stdout, stderr } = await execFileAsync(SFTPPUSH_BIN, args, { env, maxBuffer: 256 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number | string; stdout: string; stderr: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function tail(text: string, chars = 3000): string {
  return text.length > chars ? `…${text.slice(-chars)}` : text;
}


function isQuarantined(relPath: string): (line: LogLine) => boolean {
  return (line) => line.msg === 'file quarantined' && line.path === relPath;
}

/** What one object must hold: its bytes, and the metadata naming where it came from. */
interface ExpectedObject {
  bytes: Buffer;
  source: string;
  sourceSha256: string;
  /** The member path inside the archive; undefined for a plain file (no `member` metadata). */
  member: string | undefined;
}

void describe('archives end to end: bin/sftppush extracts, quarantines and resumes (child process, moto)', () => {
  const env = motoForSuite();
  let buckets = 0;

  async function newService(options: Partial<ServiceOptions> = {}): Promise<Service & { staging: string }> {
    buckets += 1;
    const service = await createService({ moto: env.moto, bucket: `archives-${buckets}`, ...SHIPPED, ...options });
    env.services.push(service);
    // Beside the target, on the same filesystem: a rename from here is one IN_MOVED_TO in the target.
    const staging = path.join(service.dir, 'staging');
    fs.mkdirSync(staging);
    return Object.assign(service, { staging });
  }

  /** Renames a staged file into the target at `relPath` (default: its own name), as an SFTP client's rename. */
  function arrive(service: Service, staged: string, relPath = path.basename(staged)): string {
    const destination = path.join(service.targetDir, relPath);
    assert.ok(fs.existsSync(path.dirname(destination)), `${path.dirname(relPath)} exists in the target before the rename`);
    fs.renameSync(staged, destination);
    return relPath;
  }

  /** key -> its version ids (delete markers are not versions: listVersions skips them). */
  async function versionsByKey(bucket: string): Promise<Map<string, string[]>> {
    const byKey = new Map<string, string[]>();
    for (const v of await listVersions(env.moto.client, bucket)) byKey.set(v.key, [...(byKey.get(v.key) ?? []), v.versionId]);
    return byKey;
  }

  /** The bucket holds exactly these keys, one version each, with these bytes and metadata; returns key -> version id. */
  async function assertBucketHolds(bucket: string, expected: Map<string, ExpectedObject>): Promise<Map<string, string>> {
    const stored = await versionsByKey(bucket);
    assert.deepEqual([...stored.keys()].sort(), [...expected.keys()].sort(), 'exactly the expected keys: none missing, none extra');
    const ids = new Map<string, string>();
    for (const [key, want] of expected) {
      const versions = stored.get(key)!;
      assert.equal(versions.length, 1, `${key}: exactly one object version, got ${versions.length}`);
      ids.set(key, versions[0]!);
      const { body, metadata } = await getObject(env.moto.client, bucket, key);
      assert.ok(body.equals(want.bytes), `${key}: the object holds the member's bytes (${body.length} of ${want.bytes.length})`);
      assert.equal(metadata.sha256, sha256(want.bytes), `${key}: sha256 metadata is the object's`);
      assert.equal(decodeURI(metadata.source ?? ''), want.source, `${key}: source metadata names the file it came from`);
      assert.equal(metadata['source-sha256'], want.sourceSha256, `${key}: source-sha256 is the archive's`);
      assert.equal(metadata.member === undefined ? undefined : decodeURI(metadata.member), want.member, `${key}: member metadata`);
    }
    return ids;
  }

  /** What a good archive must become under the default key layout (no prefix). */
  function membersOf(archive: fixtures.GoodArchive, relPath: string, archiveBytes: Buffer): Map<string, ExpectedObject> {
    const stem = { zip: /\.zip$/, tar: /\.tar$/, 'tar.gz': /\.(tar\.gz|tgz|gz)$/, gz: /\.gz$/, plain: /$^/ }[archive.format];
    const expected = new Map<string, ExpectedObject>();
    for (const m of archive.members) {
      assert.ok(Buffer.isBuffer(m.bytes), 'small fixtures carry their bytes');
      const key = archive.format === 'gz' ? m.name : archive.format === 'plain' ? relPath : `${relPath.replace(stem, '')}/${m.name}`;
      expected.set(key, {
        bytes: m.bytes,
        source: relPath,
        sourceSha256: sha256(archiveBytes),
        member: archive.format === 'plain' ? undefined : m.name,
      });
    }
    return expected;
  }

  async function failedJson(service: Service): Promise<FailedJson> {
    const run = await sftppush(['status', '--failed', '--json', '--config', service.configFile]);
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout) as FailedJson;
  }

  async function failedText(service: Service): Promise<string> {
    const run = await sftppush(['status', '--failed', '--config', service.configFile]);
    assert.equal(run.code, 0, run.stderr);
    return run.stdout;
  }

  /**
   * The archive at `relPath` is quarantined, and `status --failed` (text and --json) gives the reason: each of
   * `mustName` appears in it. Returns the reason.
   */
  async function assertQuarantinedFor(service: Service, relPath: string, mustName: readonly string[]): Promise<string> {
    const json = await failedJson(service);
    assert.equal(json.counts.quarantined, 1, `one quarantined row: ${JSON.stringify(json)}`);
    const row = json.failed.find((r) => r.relPath === relPath);
    assert.ok(row, `status --failed --json lists ${relPath}: ${JSON.stringify(json.failed)}`);
    assert.equal(row.state, 'quarantined');
    const reason = row.lastError ?? '';
    for (const part of mustName) assert.ok(reason.includes(part), `the reason names ${JSON.stringify(part)}: ${reason}`);
    assert.ok(reason.includes(`s3://${service.bucket}/_quarantine/${relPath}`), `the reason says where the original bytes are: ${reason}`);
    const text = await failedText(service);
    const line = text.split('\n').find((l) => l.includes(`/${relPath}`));
    assert.ok(line, `status --failed lists ${relPath}:\n${text}`);
    assert.match(line, /^quarantined /);
    for (const part of mustName) assert.ok(line.includes(part), `the text line names ${JSON.stringify(part)}: ${line}`);
    const story = await service.story(relPath);
    assert.deepEqual(story.generations.map((g) => g.state), ['quarantined'], `the ledger: ${JSON.stringify(story.generations)}`);
    assert.deepEqual(
      (story.objects as StoryObject[]).map((o) => ({ key: o.key, member: o.member })),
      [{ key: `_quarantine/${relPath}`, member: null }],
      'the ledger records only the quarantined original',
    );
    return reason;
  }

  void it('watch: a zip, a tar.gz, a d.csv.gz and a text notes.zip renamed in land as exactly their members; status PATH lists them', async () => {
    const service = await newService();
    const run = await service.start();
    const arrivals = [
      await fixtures.zipArchive(service.staging),
      await fixtures.tarGzArchive(service.staging),
      await fixtures.gzFile(service.staging),
      await fixtures.textNamedZip(service.staging),
    ];
    const expected = new Map<string, ExpectedObject>();
    for (const archive of arrivals) {
      const bytes = fs.readFileSync(archive.path);
      const relPath = arrive(service, archive.path);
      for (const [key, object] of membersOf(archive, relPath, bytes)) expected.set(key, object);
    }
    assert.deepEqual(
      [...expected.keys()].sort(),
      ['d.csv', 'mixed/a.csv', 'mixed/b.csv', 'mixed/y/z.csv', 'notes.zip', 'tarball/a.csv', 'tarball/y/z.csv'],
      'the key layout of DESIGN.md',
    );
    for (const relPath of ['mixed.zip', 'tarball.tar.gz', 'd.csv.gz', 'notes.zip']) {
      await run.waitForOutcomes(relPath, 1, ARCHIVE_DEADLINE_MS);
      assert.equal(run.logs.find(isFileOutcome(relPath))?.msg, 'file archived', `${relPath} archived, not a duplicate`);
    }
    const warning = run.logs.find((l) => l.msg === 'archive extension, other content' && l.path === 'notes.zip');
    assert.ok(warning, `the text .zip is stored as a plain file with a warning${describeLogs(run)}`);
    assert.equal(warning.level, 40, 'logged at warn');
    assert.equal(run.logs.filter((l) => l.msg === 'archive extension, other content').length, 1, 'only notes.zip warns');
    assert.deepEqual(
      Object.fromEntries(['mixed.zip', 'tarball.tar.gz', 'd.csv.gz'].map((p) => [p, run.logs.find(isFileOutcome(p))?.format])),
      { 'mixed.zip': 'zip', 'tarball.tar.gz': 'tar.gz', 'd.csv.gz': 'gz' },
      'each archive classified by its format',
    );
    const versionIds = await assertBucketHolds(service.bucket, expected);

    // `status --json PATH`: the archive's members with their keys, sizes and the version ids S3 holds.
    const story = await service.story('mixed.zip');
    assert.deepEqual(story.generations.map((g) => g.state), ['archived']);
    const listed = (story.objects as StoryObject[]).map((o) => ({ member: o.member, key: o.key, sizeBytes: o.sizeBytes, versionId: o.versionId }));
    assert.deepEqual(
      listed.sort((a, b) => a.key.localeCompare(b.key)),
      ['a.csv', 'b.csv', 'y/z.csv'].map((member) => ({
        member,
        key: `mixed/${member}`,
        sizeBytes: expected.get(`mixed/${member}`)!.bytes.length,
        versionId: versionIds.get(`mixed/${member}`)!,
      })),
      'status PATH --json lists each member, its key, size and version id',
    );
    const text = await sftppush(['status', '--config', service.configFile, 'mixed.zip']);
    assert.equal(text.code, 0, text.stderr);
    for (const member of ['a.csv', 'b.csv', 'y/z.csv']) {
      const key = `mixed/${member}`;
      assert.ok(
        text.stdout.includes(`member ${member} -> s3://${service.bucket}/${key} ${expected.get(key)!.bytes.length} bytes version ${versionIds.get(key)}`),
        `status PATH (text) lists ${member}:\n${text.stdout}`,
      );
    }
    assert.equal(await run.stop(), 0, `exits 0 on SIGTERM${describeLogs(run)}`);
  });

  void it(`a SIGKILL after member ${KILL_AFTER} of a ${MANY_MEMBERS}-member tar: the restart resumes and writes every member exactly once`, async (t) => {
    const service = await newService();
    const archive = await fixtures.manyMembersTar(service.staging, MANY_MEMBERS);
    const archiveBytes = fs.readFileSync(archive.path);
    const killed = await service.start({ env: { [KILL_AT_VARIABLE]: `after-member@${KILL_AFTER}` } });
    const startedAt = Date.now();
    const relPath = arrive(service, archive.path);
    const exit = await exitWithin(killed, MANY_DEADLINE_MS, `the after-member@${KILL_AFTER} kill point never fired`);
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' }, `killed by itself${describeLogs(killed)}`);
    assert.equal(killed.logs.filter(isFileOutcome(relPath)).length, 0, 'the killed run logged no outcome for the archive');

    // At the kill: the row is working with exactly 700 members recorded, each the one version S3 holds at its key.
    // archive-members.ts stores up to upload.concurrency small members at once, so up to that many less one were in flight: S3 may hold
    // them too, unrecorded (the restart's conditional write must find them, not write them again).
    const atKill = await service.story(relPath);
    assert.deepEqual(atKill.generations.map((g) => g.state), ['working'], 'left working at the kill');
    assert.equal(atKill.objects.length, KILL_AFTER, `the ledger recorded ${KILL_AFTER} members before the kill`);
    const landed = await versionsByKey(service.bucket);
    for (const o of atKill.objects) assert.deepEqual(landed.get(o.key), [o.versionId], `${o.key}: the one version the ledger recorded`);
    const recordedKeys = new Set(atKill.objects.map((o) => o.key));
    const memberKeys = new Set(archive.members.map((m) => `many/${m.name}`));
    const inFlight = [...landed].filter(([key]) => !recordedKeys.has(key));
    assert.ok(inFlight.length <= MEMBERS_IN_FLIGHT - 1, `at most ${MEMBERS_IN_FLIGHT - 1} unrecorded members landed: ${JSON.stringify(inFlight)}`);
    for (const [key, ids] of inFlight) {
      assert.ok(memberKeys.has(key), `${key} is a member's key`);
      assert.equal(ids.length, 1, `${key}: one version`);
    }
    t.diagnostic(`killed after member ${KILL_AFTER} in ${Date.now() - startedAt} ms; unrecorded members in S3: ${inFlight.length}`);

    const restartedAt = Date.now();
    const run = await service.start();
    const outcome = await run.waitForLog(`${relPath} archived after the restart`, isFileOutcome(relPath), MANY_DEADLINE_MS);
    t.diagnostic(`the restart archived the rest in ${Date.now() - restartedAt} ms: ${JSON.stringify(outcome)}`);
    const recovery = run.logs.find((l) => l.msg === 'rows left working by a stopped process are pending again');
    assert.equal(recovery?.recovered, 1, `the restart recovered the archive's row${describeLogs(run)}`);
    assert.equal(outcome.msg, 'file archived');
    assert.equal(outcome.members, MANY_MEMBERS);
    assert.equal(outcome.resumed, KILL_AFTER, `the ${KILL_AFTER} members recorded before the kill are resumed, not written again`);
    assert.equal(Number(outcome.stored) + Number(outcome.resumed), MANY_MEMBERS, 'stored + resumed = every member');
    // Every member that landed unrecorded is found (a 412 on If-None-Match, then a HEAD), not written again;
    // one still being processed by moto at the listing may add to them, never more than were in flight.
    const found = Number(outcome.foundByHead);
    assert.ok(found >= inFlight.length && found <= MEMBERS_IN_FLIGHT - 1, `foundByHead ${found}: the ${inFlight.length} in-flight member(s) found`);
    assert.equal(await run.stop(), 0, `exits 0 on SIGTERM${describeLogs(run)}`);

    const stored = await versionsByKey(service.bucket);
    const keys = archive.members.map((m) => `many/${m.name}`);
    assert.deepEqual([...stored.keys()].sort(), keys.sort(), `exactly the ${MANY_MEMBERS} member keys, nothing else`);
    const repeated = [...stored].filter(([, ids]) => ids.length !== 1).map(([key, ids]) => `${key}: ${ids.length}`);
    assert.deepEqual(repeated, [], 'one version per member key');
    for (const o of atKill.objects) assert.deepEqual(stored.get(o.key), [o.versionId], `${o.key}: still the version written before the kill`);

    const story = await service.story(relPath);
    assert.deepEqual(story.generations.map((g) => g.state), ['archived']);
    assert.equal((story.generations[0] as StoryRow).attempts, 2, 'the killed attempt and the restart\'s');
    assert.equal(story.objects.length, MANY_MEMBERS, 'the ledger records every member once');
    for (const o of story.objects) assert.deepEqual(stored.get(o.key), [o.versionId], `${o.key}: the ledger records the version S3 holds`);

    for (const i of [0, 1, KILL_AFTER - 1, KILL_AFTER, KILL_AFTER + 1, MANY_MEMBERS - 1]) {
      const member = archive.members[i]!;
      const { body, metadata } = await getObject(env.moto.client, service.bucket, `many/${member.name}`);
      assert.ok(Buffer.isBuffer(member.bytes) && body.equals(member.bytes), `member ${i}: its bytes`);
      assert.equal(metadata.sha256, sha256(body));
      assert.equal(metadata['source-sha256'], sha256(archiveBytes));
      assert.equal(decodeURI(metadata.member ?? ''), member.name);
    }
  });

  void it('a zip-slip archive renamed in is quarantined whole, status --failed says why, and the watcher carries on', async (t) => {
    const service = await newService();
    const run = await service.start();
    const hostile = await fixtures.unsafeNameArchive(service.staging, 'traversal');
    const original = fs.readFileSync(hostile.path);
    const relPath = arrive(service, hostile.path);
    await run.waitForLog(`${relPath} quarantined`, isQuarantined(relPath), ARCHIVE_DEADLINE_MS);
    t.diagnostic(await assertQuarantinedFor(service, relPath, ['member "../evil.txt"', hostile.expectRejection]));

    const good = path.join(service.staging, 'after.csv');
    const goodBytes = Buffer.from('archived after a hostile archive\n');
    fs.writeFileSync(good, goodBytes);
    arrive(service, good);
    await run.waitForOutcomes('after.csv', 1, ARCHIVE_DEADLINE_MS);
    assert.equal(await run.stop(), 0, `exits 0 on SIGTERM${describeLogs(run)}`);

    await assertBucketHolds(
      service.bucket,
      new Map([
        [`_quarantine/${relPath}`, { bytes: original, source: relPath, sourceSha256: sha256(original), member: undefined }],
        ['after.csv', { bytes: goodBytes, source: 'after.csv', sourceSha256: sha256(goodBytes), member: undefined }],
      ]),
    );
  });

  void it('key conflict: e.zip whose member a.csv would be e/a.csv, a plain file already archived, is quarantined naming it', async (t) => {
    const service = await newService();
    // Made before the start: a directory made while watching could have its file found by the new directory's
    // scan instead of an event, and then wait out the 30 s settle time.
    fs.mkdirSync(path.join(service.targetDir, 'e'));
    const run = await service.start();
    const plain = path.join(service.staging, 'a.csv');
    const plainBytes = Buffer.from('the plain file e/a.csv, here first\n');
    fs.writeFileSync(plain, plainBytes);
    arrive(service, plain, 'e/a.csv');
    await run.waitForOutcomes('e/a.csv', 1, ARCHIVE_DEADLINE_MS);

    // mixed.zip's members are a.csv, b.csv and y/z.csv: as e.zip they would be e/a.csv, e/b.csv, e/y/z.csv.
    const zip = await fixtures.zipArchive(service.staging);
    const zipBytes = fs.readFileSync(zip.path);
    const relPath = arrive(service, zip.path, 'e.zip');
    await run.waitForLog(`${relPath} quarantined`, isQuarantined(relPath), ARCHIVE_DEADLINE_MS);
    const holder = (await service.story('e/a.csv')).generations[0] as StoryRow;
    const reason = await assertQuarantinedFor(service, relPath, ['"e/a.csv"', `${holder.target}/e/a.csv`]);
    assert.match(reason, /^E_KEY_CONFLICT: /, reason);
    t.diagnostic(reason);
    assert.equal(await run.stop(), 0, `exits 0 on SIGTERM${describeLogs(run)}`);

    // e/a.csv keeps its one version and its own bytes; no member of e.zip landed (not even the free e/b.csv).
    await assertBucketHolds(
      service.bucket,
      new Map([
        ['e/a.csv', { bytes: plainBytes, source: 'e/a.csv', sourceSha256: sha256(plainBytes), member: undefined }],
        [`_quarantine/${relPath}`, { bytes: zipBytes, source: relPath, sourceSha256: sha256(zipBytes), member: undefined }],
      ]),
    );
  });

  void it('reconcile --verify puts back a member whose version was deleted, and rewrites no other member', async () => {
    const service = await newService();
    const archive = await fixtures.zipArchive(service.staging);
    const archiveBytes = fs.readFileSync(archive.path);
    const relPath = arrive(service, archive.path);
    const expected = membersOf(archive, relPath, archiveBytes);

    // A one-shot reconcile takes a file it finds only once it is settle_seconds (30) old: --settle 0 takes
    // it at once (waiting is reconcile.test.ts's subject, not this one's).
    const first = await sftppush(['reconcile', '--config', service.configFile, '--json', '--settle', '0']);
    assert.equal(first.code, 0, tail(first.stderr));
    assert.equal((JSON.parse(first.stdout) as ReconcileJson).counts.uploaded, 1);
    const before = await assertBucketHolds(service.bucket, expected);

    // Deleted for good: DeleteObject with the VersionId removes the version itself (no delete marker), so the
    // key holds nothing at all, the harder case (a delete marker leaves the old version to find by
    // version; reconcile.test.ts covers that one for a plain file), and afterwards the one version the key
    // holds can only be the restored one.
    const victim = 'mixed/b.csv';
    await env.moto.client.send(new DeleteObjectCommand({ Bucket: service.bucket, Key: victim, VersionId: before.get(victim) }));
    assert.equal((await versionsByKey(service.bucket)).has(victim), false, `${victim} has no version left`);

    const verify = await sftppush(['reconcile', '--config', service.configFile, '--json', '--settle', '0', '--verify']);
    // README: exit 0 only when every file in scope ended archived; the damage was repaired, so 0.
    assert.equal(verify.code, 0, `verify repaired the damage: exit 0\n${tail(verify.stderr)}`);
    const result = JSON.parse(verify.stdout) as ReconcileJson;
    assert.deepEqual(result.verifyFindings.map((f) => [f.path, f.key, f.reason]), [[relPath, victim, 'missing']], 'the finding names the key');
    assert.equal(result.counts.reUploaded, 1);
    assert.equal(result.counts.verified, expected.size - 1, 'the other members verified');
    assert.deepEqual(result.unfinished, []);

    const after = await assertBucketHolds(service.bucket, expected);
    assert.notEqual(after.get(victim), before.get(victim), `${victim} restored as a new version`);
    for (const key of expected.keys()) {
      if (key !== victim) assert.equal(after.get(key), before.get(key), `${key}: the same single version, not rewritten`);
    }
    const story = await service.story(relPath);
    assert.deepEqual(story.generations.map((g) => g.state), ['archived', 'archived'], 'reopened as a new generation, archived again');

    const again = await sftppush(['reconcile', '--config', service.configFile, '--json', '--settle', '0', '--verify']);
    assert.equal(again.code, 0, tail(again.stderr));
    assert.deepEqual((JSON.parse(again.stdout) as ReconcileJson).verifyFindings, []);
    assert.deepEqual(await versionsByKey(service.bucket), new Map([...after].map(([k, id]) => [k, [id]])), 'a second --verify writes nothing');
  });

  void it('[archive] max_members = 10: a tar of 11 members is quarantined by max_members', async (t) => {
    // The [archive] table, after the [[targets]] entry: a table header ends that entry in TOML.
    const service = await newService({ targetToml: '[archive]\nmax_members = 10' });
    const run = await service.start();
    const archive = await fixtures.manyMembersTar(service.staging, 11);
    const original = fs.readFileSync(archive.path);
    const relPath = arrive(service, archive.path);
    await run.waitForLog(`${relPath} quarantined`, isQuarantined(relPath), ARCHIVE_DEADLINE_MS);
    assert.equal(await run.stop(), 0, `exits 0 on SIGTERM${describeLogs(run)}`);
    t.diagnostic(await assertQuarantinedFor(service, relPath, ['max_members', 'more than 10 members', `member "${archive.members[10]!.name}"`]));
    await assertBucketHolds(
      service.bucket,
      new Map([[`_quarantine/${relPath}`, { bytes: original, source: relPath, sourceSha256: sha256(original), member: undefined }]]),
    );
  });
});
