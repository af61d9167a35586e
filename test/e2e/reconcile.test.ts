// `sftppush reconcile` as an operator runs it (issue 8): the one-shot backfill (`--since`), the settle wait,
// `--dry-run`, `--verify`, the pass records `status` shows, the unfinished list, and a no-change pass over a
// test-sized tree. Every case runs the real CLI as a child against a real versioned moto bucket and checks
// the exit code, the `--json` result, the object versions in the bucket and what the ledger says.
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { startFaultProxy, target as faultTarget } from '../support/fault-proxy.js';
import { MIGRATIONS_DIR } from '../../src/app.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { statOf, tempDir, waitUntil } from '../support/fixtures.js';
import { getObject, listVersions, MOTO_ENV, startMoto, type MotoServer } from '../support/moto.js';
import { createService, SFTPPUSH_BIN, type RunningService, type Service, type StatusJson, type StoryJson } from '../support/service.js';

const execFileAsync = promisify(execFile);

/** The `reconcile --json` result (ReconcileSummary in src/reconcile/summary.ts). */
interface ReconcileJson {
  scope: { since: string | null; verify: boolean; dryRun: boolean; targets: string[] };
  counts: Record<
    | 'scanned' | 'inScope' | 'alreadyArchived' | 'queued' | 'resumed' | 'byOthers' | 'uploaded' | 'duplicates' | 'verified' | 'reUploaded'
    | 'waiting' | 'failed' | 'quarantined' | 'retrying' | 'gone',
    number
  >;
  durationMs: number;
  unfinished: { target: string; path: string; state: string; error: string | null }[];
  verifyFindings: { target: string; path: string; key: string; reason: string }[];
  skipped: { listed: SkipJson[]; more: number };
  planned: { files: { target: string; path: string; action: 'queue' | 'wait' | 'upload' }[]; more: number } | null;
}

interface SkipJson {
  target: string;
  path: string;
  kind: string;
  code: string | null;
  nameHex: string | null;
}

interface ReconcilePassJson {
  reason: string;
  finishedAt: string;
  scope: { since: string | null; verify: boolean; dryRun: boolean; targets: string[]; partial?: boolean } | null;
  counts: Record<string, number> | null;
}

type StatusWithPasses = StatusJson & {
  lastFullPass: ReconcilePassJson | null;
  lastPartialPass: ReconcilePassJson | null;
  scanSkips: { counts: Record<string, number>; rows: SkipJson[] };
};

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the child, ms. */
  ms: number;
}

const CHILD_ENV = { ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

/**
 * Who a child runs as: root reads every directory whatever its mode, so a test of an unreadable directory runs
 * the CLI as `nobody` when the suite runs as root.
 */
let runAs: { uid: number; gid: number } | undefined;

async function sftppush(args: readonly string[], command = SFTPPUSH_BIN): Promise<CliResult> {
  const started = performance.now();
  const options = { env: { ...process.env, ...CHILD_ENV }, maxBuffer: 256 * 1024 * 1024, ...runAs };
  try {
    const { stdout, stderr } = await execFileAsync(command, args, options);
    return { code: 0, stdout, stderr, ms: performance.now() - started };
  } catch (error) {
    const failed = error as { code: number | string; stdout: string; stderr: string };
    if (typeof failed.code !== 'number') throw error; // could not run at all, or output overflowed
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr, ms: performance.now() - started };
  }
}

/** Runs `reconcile --json` and parses stdout, which must be that one object and nothing else. */
async function reconcile(config: string, ...flags: string[]): Promise<CliResult & { result: ReconcileJson }> {
  const run = await sftppush(['reconcile', '--config', config, '--json', ...flags]);
  const lines = run.stdout.split('\n').filter((line) => line.trim() !== '');
  assert.equal(lines.length, 1, `reconcile ${flags.join(' ')} (exit ${run.code}) must print one JSON line on stdout:\n${run.stdout}\nstderr:\n${tail(run.stderr)}`);
  return { ...run, result: JSON.parse(lines[0]!) as ReconcileJson };
}

async function status(config: string): Promise<StatusWithPasses> {
  const run = await sftppush(['status', '--json', '--config', config]);
  assert.equal(run.code, 0, run.stderr);
  return JSON.parse(run.stdout) as StatusWithPasses;
}

function tail(text: string, chars = 3000): string {
  return text.length > chars ? `…${text.slice(-chars)}` : text;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Setup {
  dir: string;
  target: string;
  config: string;
  bucket: string;
}

let bucketSerial = 0;

/**
 * A temp dir with a target `in/`, a ledger and a config.toml on a fresh versioned bucket (so versions can be
 * counted per test). `createBucket: false` leaves the bucket missing.
 */
async function setup(
  t: TestContext,
  moto: MotoServer,
  options: { settleSeconds?: number; createBucket?: boolean; upload?: string[] } = {},
): Promise<Setup> {
  const dir = tempDir(t, 'sftppush-reconcile');
  const target = path.join(dir, 'in');
  fs.mkdirSync(target);
  bucketSerial += 1;
  const bucket = `reconcile-${bucketSerial}-${process.pid}`;
  if (options.createBucket !== false) await moto.createBucket(bucket);
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      '[s3]', `bucket = "${bucket}"`, 'prefix = "p/"', `endpoint = "${moto.endpoint}"`, 'force_path_style = true',
      '[ledger]', 'path = "var/ledger.db"',
      '[reconcile]', `settle_seconds = ${options.settleSeconds ?? 30}`,
      '[upload]', ...(options.upload ?? ['concurrency = 8']),
      '[[targets]]', 'path = "in"', '',
    ].join('\n'),
  );
  return { dir, target, config, bucket };
}

/** Writes `files` (relative path -> content) under the target, making directories as needed. */
function writeFiles(target: string, files: Record<string, string>): void {
  for (const [relPath, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(target, relPath)), { recursive: true });
    fs.writeFileSync(path.join(target, relPath), content);
  }
}

/** key -> number of versions (delete markers are not versions: listVersions skips them). */
async function versionCounts(moto: MotoServer, bucket: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const v of await listVersions(moto.client, bucket)) counts[v.key] = (counts[v.key] ?? 0) + 1;
  return counts;
}

async function versionIds(moto: MotoServer, bucket: string): Promise<string[]> {
  return (await listVersions(moto.client, bucket)).map((v) => `${v.key}@${v.versionId}`).sort();
}

async function assertLatestHolds(moto: MotoServer, bucket: string, files: Record<string, string>): Promise<void> {
  for (const [relPath, content] of Object.entries(files)) {
    assert.equal((await getObject(moto.client, bucket, `p/${relPath}`)).body.toString(), content, `latest version of p/${relPath}`);
  }
}

async function story(config: string, relPath: string): Promise<{ code: number; story?: StoryJson }> {
  const run = await sftppush(['status', '--json', '--config', config, relPath]);
  return run.code === 0 ? { code: 0, story: JSON.parse(run.stdout) as StoryJson } : { code: run.code };
}

const OLD_2020 = new Date('2020-01-01T00:00:00Z');
const OLD_2021 = new Date('2021-06-01T00:00:00Z');

void describe('sftppush reconcile (one shot)', () => {
  let moto: MotoServer;
  before(async () => {
    moto = await startMoto();
  });
  after(() => moto.stop());

  void it('archives files written while no service ran; a second run right after writes nothing', async (t) => {
    const s = await setup(t, moto, { settleSeconds: 1 });
    const files: Record<string, string> = {};
    for (let i = 0; i < 12; i++) files[`d${i % 3}/sub/f${i}.csv`] = `file ${i}\n`.repeat(i + 1);
    files['top.txt'] = 'top\n';
    writeFiles(s.target, files);
    const n = Object.keys(files).length;
    await sleep(1200); // written "while no service ran": older than settle_seconds (1) by the time it runs

    const first = await reconcile(s.config);
    assert.equal(first.code, 0, tail(first.stderr));
    assert.equal(first.result.scope.since, null);
    assert.equal(first.result.scope.dryRun, false);
    const expected = { scanned: n, inScope: n, alreadyArchived: 0, queued: n, uploaded: n, duplicates: 0, verified: 0, reUploaded: 0, waiting: 0, failed: 0 };
    // Only the counts the issue names: the summary may carry more (e.g. unreadable directories).
    assert.deepEqual(Object.fromEntries(Object.keys(expected).map((k) => [k, first.result.counts[k as keyof typeof expected]])), expected);
    assert.deepEqual(first.result.unfinished, []);
    const counts = await versionCounts(moto, s.bucket);
    assert.deepEqual(counts, Object.fromEntries(Object.keys(files).map((f) => [`p/${f}`, 1])));
    await assertLatestHolds(moto, s.bucket, files);
    const archived = await versionIds(moto, s.bucket);

    const second = await reconcile(s.config);
    assert.equal(second.code, 0, tail(second.stderr));
    assert.equal(second.result.counts.scanned, n);
    assert.equal(second.result.counts.alreadyArchived, n);
    assert.equal(second.result.counts.queued, 0);
    assert.equal(second.result.counts.uploaded, 0);
    assert.equal(second.result.counts.duplicates, 0);
    assert.deepEqual(await versionIds(moto, s.bucket), archived, 'a second reconcile writes nothing');
    const st = await status(s.config);
    assert.equal(st.counts.archived, n);
    assert.equal(st.counts.pending + st.counts.working + st.counts.retry + st.counts.gone + st.counts.quarantined, 0);
    t.diagnostic(`first pass ${first.result.durationMs} ms, second ${second.result.durationMs} ms (${n} files)`);
  });

  void it('--since 1h takes only files modified in the last hour; an ISO --since works too', async (t) => {
    const s = await setup(t, moto);
    writeFiles(s.target, { 'new1.csv': 'new one\n', 'old/old.csv': 'from 2020\n', 'old/old2.csv': 'from 2021\n' });
    fs.utimesSync(path.join(s.target, 'old/old.csv'), OLD_2020, OLD_2020);
    fs.utimesSync(path.join(s.target, 'old/old2.csv'), OLD_2021, OLD_2021);

    const span = await reconcile(s.config, '--since', '1h', '--settle', '0');
    assert.equal(span.code, 0, tail(span.stderr));
    assert.ok(span.result.scope.since !== null, 'the scope names the since');
    const sinceMs = Date.parse(span.result.scope.since);
    assert.ok(Math.abs(sinceMs - (Date.now() - 3_600_000)) < 60_000, `since ${span.result.scope.since} is about an hour ago`);
    assert.equal(span.result.counts.scanned, 3, 'old files are seen by the walk');
    assert.equal(span.result.counts.inScope, 1, 'but only new1.csv is in scope');
    assert.equal(span.result.counts.queued, 1);
    assert.equal(span.result.counts.uploaded, 1);
    assert.deepEqual(await versionCounts(moto, s.bucket), { 'p/new1.csv': 1 });
    for (const old of ['old/old.csv', 'old/old2.csv']) {
      const { code, story: st } = await story(s.config, old);
      assert.ok(code === 1 || (st !== undefined && st.generations.length === 0), `${old} is not in the ledger: ${JSON.stringify(st)}`);
    }
    const st = await status(s.config);
    assert.equal(st.counts.archived, 1);
    assert.equal(st.counts.pending + st.counts.working + st.counts.retry, 0, 'nothing out of scope was queued');

    // An ISO date-time: old2 (2021) is now in scope, old (2020) still is not.
    writeFiles(s.target, { 'new2.csv': 'new two\n' });
    const iso = await reconcile(s.config, '--since', '2021-01-01T00:00:00Z', '--settle', '0');
    assert.equal(iso.code, 0, tail(iso.stderr));
    assert.equal(iso.result.scope.since, '2021-01-01T00:00:00.000Z');
    assert.equal(iso.result.counts.scanned, 4);
    assert.equal(iso.result.counts.inScope, 3);
    assert.equal(iso.result.counts.alreadyArchived, 1);
    assert.equal(iso.result.counts.queued, 2);
    assert.equal(iso.result.counts.uploaded, 2);
    assert.deepEqual(await versionCounts(moto, s.bucket), { 'p/new1.csv': 1, 'p/new2.csv': 1, 'p/old/old2.csv': 1 });
    await assertLatestHolds(moto, s.bucket, { 'new1.csv': 'new one\n', 'new2.csv': 'new two\n', 'old/old2.csv': 'from 2021\n' });
    const old = await story(s.config, 'old/old.csv');
    assert.ok(old.code === 1 || old.story?.generations.length === 0, 'the 2020 file is still untouched');
    // Never read, so its mtime is as the test left it (and it was not even hashed: no sha256 anywhere).
    assert.equal(fs.statSync(path.join(s.target, 'old/old.csv')).mtime.getTime(), OLD_2020.getTime());
  });

  void it('--target DIR inside a target reconciles that subtree only, under the same keys; a DIR outside every target exits 2', async (t) => {
    const s = await setup(t, moto);
    const inside = { 'a/x.csv': 'x\n', 'a/sub/y.csv': 'y\n' };
    const outside = { 'ab/w.csv': 'w\n', 'b/z.csv': 'z\n', 'top.csv': 'top\n' };
    writeFiles(s.target, { ...inside, ...outside });

    const sub = await reconcile(s.config, '--target', path.join(s.target, 'a'), '--settle', '0');
    assert.equal(sub.code, 0, tail(sub.stderr));
    assert.deepEqual(sub.result.scope.targets, [path.join(s.target, 'a')]);
    assert.equal(sub.result.counts.scanned, 2, 'only the files under a/');
    assert.equal(sub.result.counts.uploaded, 2);
    assert.deepEqual(await versionCounts(moto, s.bucket), { 'p/a/x.csv': 1, 'p/a/sub/y.csv': 1 }, 'keys relative to the configured target');
    await assertLatestHolds(moto, s.bucket, inside);
    const partial = (await status(s.config)).lastPartialPass;
    assert.deepEqual(partial?.scope?.targets, [path.join(s.target, 'a')], 'recorded as a partial pass over a/');

    // The full pass that follows finds a/ archived and takes the rest: nothing is archived twice.
    const full = await reconcile(s.config, '--settle', '0');
    assert.equal(full.code, 0, tail(full.stderr));
    assert.equal(full.result.counts.alreadyArchived, 2);
    assert.equal(full.result.counts.uploaded, 3);
    assert.deepEqual(await versionCounts(moto, s.bucket), Object.fromEntries(Object.keys({ ...inside, ...outside }).map((f) => [`p/${f}`, 1])));

    const elsewhere = await sftppush(['reconcile', '--config', s.config, '--target', s.dir]);
    assert.equal(elsewhere.code, 2, elsewhere.stderr);
    assert.match(elsewhere.stderr, /--target .*not a configured target or a directory in one/);
  });

  void it('files younger than the settle time are waited for, not skipped', async (t) => {
    const s = await setup(t, moto);
    const files: Record<string, string> = {};
    for (let i = 0; i < 5; i++) files[`fresh/f${i}.csv`] = `fresh ${i}\n`;
    writeFiles(s.target, files);
    const writtenAt = Date.now();

    // 4 s: long enough that a loaded 2-core machine starts the child well within it (at 2 s one started late
    // enough to find every file settled already, so nothing was waited for).
    const run = await reconcile(s.config, '--settle', '4');
    const sinceWrite = Date.now() - writtenAt;
    assert.equal(run.code, 0, tail(run.stderr));
    assert.ok(run.result.counts.waiting > 0, `counts.waiting ${run.result.counts.waiting}`);
    assert.equal(run.result.counts.scanned, 5);
    assert.equal(run.result.counts.uploaded, 5);
    assert.equal(run.result.counts.failed, 0);
    assert.deepEqual(run.result.unfinished, []);
    // Taken only once mtime and ctime were 4 s old: the run cannot end sooner than 4 s after the writes.
    assert.ok(sinceWrite >= 4000, `ended ${sinceWrite} ms after the writes`);
    assert.deepEqual(await versionCounts(moto, s.bucket), Object.fromEntries(Object.keys(files).map((f) => [`p/${f}`, 1])));
    await assertLatestHolds(moto, s.bucket, files);
    assert.equal((await status(s.config)).counts.archived, 5);
    t.diagnostic(`waiting ${run.result.counts.waiting}, run ${Math.round(run.ms)} ms (durationMs ${run.result.durationMs}), ${sinceWrite} ms after the writes`);
  });

  void it('--dry-run writes nothing and exits 1 when there is work; after a real run it exits 0', async (t) => {
    const s = await setup(t, moto);
    const files = { 'a.csv': 'a\n', 'b/b.csv': 'bb\n', 'b/c/c.csv': 'ccc\n' };
    writeFiles(s.target, files);

    const dry = await reconcile(s.config, '--dry-run', '--settle', '0');
    assert.equal(dry.code, 1, `a dry run with work to do exits 1\n${tail(dry.stderr)}`);
    assert.equal(dry.result.scope.dryRun, true);
    assert.equal(dry.result.counts.queued, 3);
    assert.deepEqual(
      dry.result.planned?.files.map((f) => [f.path, f.action]).sort(),
      [['a.csv', 'queue'], ['b/b.csv', 'queue'], ['b/c/c.csv', 'queue']],
      'the files it would queue are listed',
    );
    assert.equal(dry.result.planned?.more, 0);
    assert.equal(dry.result.counts.uploaded, 0);
    assert.deepEqual(await listVersions(moto.client, s.bucket), [], 'no object written');
    const afterDry = await status(s.config);
    for (const [state, count] of Object.entries(afterDry.counts)) assert.equal(count, 0, `no ${state} rows after a dry run`);

    // Unsettled files are work too: a dry run does not wait, and says so by its exit code.
    const unsettled = await reconcile(s.config, '--dry-run');
    assert.equal(unsettled.code, 1);
    assert.equal(unsettled.result.counts.waiting, 3);
    assert.deepEqual(unsettled.result.planned?.files.map((f) => f.action), ['wait', 'wait', 'wait']);
    assert.deepEqual(await listVersions(moto.client, s.bucket), []);

    const real = await reconcile(s.config, '--settle', '0');
    assert.equal(real.code, 0, tail(real.stderr));
    assert.equal(real.result.counts.uploaded, 3);
    assert.equal(real.result.planned, null, 'only a dry run lists its plan');
    const written = await versionIds(moto, s.bucket);
    assert.equal(written.length, 3);

    const clean = await reconcile(s.config, '--dry-run', '--settle', '0');
    assert.equal(clean.code, 0, `nothing to do: exit 0\n${tail(clean.stderr)}`);
    assert.equal(clean.result.counts.queued, 0);
    assert.equal(clean.result.counts.alreadyArchived, 3);
    assert.deepEqual(clean.result.planned, { files: [], more: 0 });
    assert.deepEqual(await versionIds(moto, s.bucket), written);
  });

  // Rows the ledger holds queued already (an interrupted run left them pending) are what a real run uploads: a
  // dry run lists them as such, and counts them apart from what its scan finds new, never as failures.
  void it('--dry-run counts rows queued already as work it would do, not as failed; the real run counts them as resumed', async (t) => {
    const s = await setup(t, moto);
    const files = { 'a.csv': 'a\n', 'b/b.csv': 'bb\n', 'c.csv': 'ccc\n' };
    writeFiles(s.target, files);
    fs.mkdirSync(path.join(s.dir, 'var'));
    const ledger = Ledger.open(path.join(s.dir, 'var', 'ledger.db'), { migrationsDir: MIGRATIONS_DIR });
    for (const relPath of Object.keys(files)) ledger.observe(s.target, relPath, statOf(path.join(s.target, relPath)));
    ledger.close();

    const dry = await reconcile(s.config, '--dry-run', '--settle', '0');
    assert.equal(dry.code, 1, `work to do: exit 1\n${tail(dry.stderr)}`);
    assert.equal(dry.result.counts.failed, 0, `nothing failed: ${JSON.stringify(dry.result.unfinished)}`);
    assert.deepEqual(dry.result.unfinished, []);
    assert.equal(dry.result.counts.resumed, 3);
    assert.equal(dry.result.counts.queued, 0, 'the scan found nothing new');
    assert.deepEqual(
      dry.result.planned?.files.map((f) => [f.path, f.action]).sort(),
      [['a.csv', 'upload'], ['b/b.csv', 'upload'], ['c.csv', 'upload']],
    );
    assert.deepEqual(await listVersions(moto.client, s.bucket), [], 'no object written');

    const real = await reconcile(s.config, '--settle', '0');
    assert.equal(real.code, 0, tail(real.stderr));
    assert.equal(real.result.counts.resumed, 3);
    assert.equal(real.result.counts.uploaded, 3);
    assert.equal(real.result.counts.inScope, real.result.counts.alreadyArchived + real.result.counts.queued + real.result.counts.resumed);
  });

  void it('--verify restores a deleted object and one replaced by foreign content, and reports both', async (t) => {
    const s = await setup(t, moto);
    const files = { 'keep.csv': 'keep me\n', 'deleted.csv': 'deleted behind our back\n', 'sub/replaced.csv': 'replaced by someone else\n' };
    writeFiles(s.target, files);
    const first = await reconcile(s.config, '--settle', '0');
    assert.equal(first.code, 0, tail(first.stderr));
    assert.equal(first.result.counts.uploaded, 3);

    await moto.client.send(new DeleteObjectCommand({ Bucket: s.bucket, Key: 'p/deleted.csv' })); // a delete marker
    await moto.client.send(new PutObjectCommand({ Bucket: s.bucket, Key: 'p/sub/replaced.csv', Body: 'foreign\n' })); // no metadata of ours
    const tampered = await versionIds(moto, s.bucket);
    const archivedBefore = (await status(s.config)).counts.archived;

    // A plain reconcile trusts the ledger: nothing to do.
    const plain = await reconcile(s.config, '--settle', '0');
    assert.equal(plain.code, 0);
    assert.deepEqual(await versionIds(moto, s.bucket), tampered);

    const dry = await reconcile(s.config, '--verify', '--dry-run', '--settle', '0');
    assert.equal(dry.code, 1, `a dry verify that finds damage exits 1\n${tail(dry.stderr)}`);
    assert.deepEqual(
      dry.result.verifyFindings.map((f) => [f.path, f.key, f.reason]).sort(),
      [['deleted.csv', 'p/deleted.csv', 'missing'], ['sub/replaced.csv', 'p/sub/replaced.csv', 'other content']],
    );
    assert.equal(dry.result.counts.reUploaded, 0);
    assert.deepEqual(await versionIds(moto, s.bucket), tampered, 'a dry run writes nothing to S3');
    const afterDry = await status(s.config);
    assert.equal(afterDry.counts.archived, archivedBefore);
    assert.equal(afterDry.counts.pending + afterDry.counts.working + afterDry.counts.retry, 0, 'nor to the ledger');

    const fix = await reconcile(s.config, '--verify', '--settle', '0');
    assert.equal(fix.code, 0, tail(fix.stderr));
    assert.deepEqual(
      fix.result.verifyFindings.map((f) => [f.path, f.reason]).sort(),
      [['deleted.csv', 'missing'], ['sub/replaced.csv', 'other content']],
    );
    assert.equal(fix.result.counts.reUploaded, 2);
    assert.deepEqual(fix.result.unfinished, []);
    await assertLatestHolds(moto, s.bucket, files);
    assert.equal((await getObject(moto.client, s.bucket, 'p/sub/replaced.csv')).metadata.sha256 !== undefined, true, 'restored with our metadata');
    // One new version for each damaged key, none for the intact one.
    assert.deepEqual(await versionCounts(moto, s.bucket), { 'p/keep.csv': 1, 'p/deleted.csv': 2, 'p/sub/replaced.csv': 3 });
    const fixed = await versionIds(moto, s.bucket);

    const again = await reconcile(s.config, '--verify', '--settle', '0');
    assert.equal(again.code, 0, tail(again.stderr));
    assert.deepEqual(again.result.verifyFindings, []);
    assert.equal(again.result.counts.verified, 3);
    assert.equal(again.result.counts.reUploaded, 0);
    assert.deepEqual(await versionIds(moto, s.bucket), fixed, 'a second --verify writes nothing');
  });

  void it('a bad --since exits 2 naming --since and showing an example', async (t) => {
    const s = await setup(t, moto);
    writeFiles(s.target, { 'a.csv': 'a\n' });
    const run = await sftppush(['reconcile', '--config', s.config, '--since', 'yesterday', '--settle', '0']);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--since/);
    assert.match(run.stderr, /yesterday/);
    assert.match(run.stderr, /e\.g\.|for example|example/i);
    assert.match(run.stderr, /\d{4}-\d{2}-\d{2}|\b\d+[mhdw]\b/, 'shows a date or a span that would work');
    assert.equal(run.stdout, '');
    assert.deepEqual(await listVersions(moto.client, s.bucket), []);
  });

  void it('status --json shows a --since run as the last partial pass and a full run as the last full pass', async (t) => {
    const s = await setup(t, moto);
    writeFiles(s.target, { 'a.csv': 'a\n' });

    const partial = await reconcile(s.config, '--since', '6h', '--settle', '0');
    assert.equal(partial.code, 0, tail(partial.stderr));
    const afterPartial = await status(s.config);
    assert.ok(afterPartial.lastPartialPass, `lastPartialPass after a --since run: ${JSON.stringify(afterPartial)}`);
    assert.equal(afterPartial.lastFullPass, null, 'a --since run is not a full pass');
    assert.equal(afterPartial.lastPartialPass.scope?.since, partial.result.scope.since);

    await sleep(20); // distinct finishedAt
    const full = await reconcile(s.config, '--settle', '0');
    assert.equal(full.code, 0, tail(full.stderr));
    const afterFull = await status(s.config);
    assert.ok(afterFull.lastFullPass, `lastFullPass after a full run: ${JSON.stringify(afterFull)}`);
    assert.equal(afterFull.lastFullPass.scope?.since ?? null, null);
    assert.ok(Date.parse(afterFull.lastFullPass.finishedAt) >= Date.parse(afterPartial.lastPartialPass.finishedAt));
    assert.deepEqual(afterFull.lastPartialPass, afterPartial.lastPartialPass, 'the partial pass is still the last partial one');
    assert.notEqual(afterFull.lastReconcile, null);

    // And the human status says which is which.
    const text = await sftppush(['status', '--config', s.config]);
    assert.match(text.stdout, /last full pass: /);
    assert.match(text.stdout, /last partial pass: .*since /);
  });

  void it('a file that cannot be archived (no such bucket) exits 1 and is listed as unfinished with its state and error', async (t) => {
    const s = await setup(t, moto, { createBucket: false });
    writeFiles(s.target, { 'x.csv': 'x\n', 'd/y.csv': 'y\n' });
    const run = await reconcile(s.config, '--settle', '0');
    assert.equal(run.code, 1, tail(run.stderr));
    assert.equal(run.result.counts.failed, 2);
    assert.deepEqual(run.result.unfinished.map((u) => [u.path, u.state]).sort(), [['d/y.csv', 'retry'], ['x.csv', 'retry']]);
    for (const u of run.result.unfinished) {
      assert.equal(u.target, s.target);
      assert.match(u.error ?? '', /NoSuchBucket|does not exist|bucket/i, `error of ${u.path}: ${u.error}`);
    }
    const st = await status(s.config);
    assert.equal(st.counts.retry, 2);
    assert.equal(st.counts.archived, 0);
    // The human summary lists them too.
    const text = await sftppush(['reconcile', '--config', s.config, '--settle', '0', '--log-level', 'silent']);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /retry: .*x\.csv/);
    assert.match(text.stdout, /retry: .*d\/y\.csv/);
  });

  void it('what a pass skips (an unreadable directory, a name that is not UTF-8) is listed by the summary and by status, and cleared once fixed', async (t) => {
    const s = await setup(t, moto);
    writeFiles(s.target, { 'ok.csv': 'ok\n', 'locked/x.csv': 'x\n' });
    const badName = Buffer.from([0x62, 0x61, 0x64, 0xe9, 0x2e, 0x63, 0x73, 0x76]); // "bad\xe9.csv" (Latin-1)
    fs.writeFileSync(Buffer.concat([Buffer.from(`${s.target}/`), badName]), 'latin-1 name\n');
    fs.chmodSync(path.join(s.target, 'locked'), 0o000);
    if (process.getuid?.() === 0) {
      // The CLI runs as nobody (root would read the directory): everything it writes must be theirs to write.
      for (const dir of [s.dir, s.target]) fs.chmodSync(dir, 0o777);
      runAs = { uid: 65534, gid: 65534 };
    }
    try {

      const run = await reconcile(s.config, '--settle', '0');
      assert.equal(run.code, 1, `files unseen: exit 1\n${tail(run.stderr)}`);
      const expected = [
        { target: s.target, path: '', kind: 'invalid-name', code: null, nameHex: badName.toString('hex') },
        { target: s.target, path: 'locked', kind: 'unreadable-directory', code: 'EACCES', nameHex: null },
      ];
      const byPath = (a: SkipJson, b: SkipJson) => a.path.localeCompare(b.path);
      assert.deepEqual([...run.result.skipped.listed].sort(byPath), expected);
      assert.equal(run.result.skipped.more, 0);
      const text = await sftppush(['reconcile', '--config', s.config, '--settle', '0', '--log-level', 'silent']);
      assert.match(text.stdout, /skipped: unreadable directory +.*\/locked {2}EACCES/);
      assert.match(text.stdout, /skipped: name not UTF-8 +.*\/in\/bad\\xe9\.csv/);

      const st = await status(s.config);
      assert.deepEqual(st.scanSkips.counts, { 'unreadable-directory': 1, 'invalid-name': 1, 'unstatable-file': 0 });
      assert.deepEqual(st.scanSkips.rows.map(({ target, path: p, kind, code, nameHex }) => ({ target, path: p, kind, code, nameHex })).sort(byPath), expected);
      const summaryText = await sftppush(['status', '--config', s.config]);
      assert.match(summaryText.stdout, /scan skips .*1 unreadable directories, 1 names not UTF-8/);
      assert.match(summaryText.stdout, /unreadable directory +.*\/locked {2}EACCES/);
      const failedText = await sftppush(['status', '--failed', '--config', s.config]);
      assert.match(failedText.stdout, /name not UTF-8 +.*\/in\/bad\\xe9\.csv/);
      assert.match(failedText.stdout, /unreadable directory +.*\/locked/);

      // Fixed: readable again, renamed. The next pass archives what it could not see and clears both.
      fs.chmodSync(path.join(s.target, 'locked'), 0o755);
      fs.renameSync(Buffer.concat([Buffer.from(`${s.target}/`), badName]), path.join(s.target, 'bad.csv'));
      const fixed = await reconcile(s.config, '--settle', '0');
      assert.equal(fixed.code, 0, tail(fixed.stderr));
      assert.deepEqual(fixed.result.skipped, { listed: [], more: 0 });
      assert.deepEqual((await status(s.config)).scanSkips, { counts: { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 }, rows: [] });
      assert.deepEqual(await versionCounts(moto, s.bucket), { 'p/ok.csv': 1, 'p/locked/x.csv': 1, 'p/bad.csv': 1 });
    } finally {
      runAs = undefined;
    }
  });

  void it('--dry-run lists the files it would queue or wait for, at most 1000, counting the rest', async (t) => {
    const s = await setup(t, moto);
    const n = 1005;
    writeFiles(s.target, Object.fromEntries(Array.from({ length: n }, (_, i) => [`d${i % 5}/f${i}.csv`, `${i}\n`])));
    const dry = await reconcile(s.config, '--dry-run', '--settle', '0');
    assert.equal(dry.code, 1);
    assert.equal(dry.result.counts.queued, n);
    assert.ok(dry.result.planned);
    assert.equal(dry.result.planned.files.length, 1000);
    assert.equal(dry.result.planned.more, n - 1000);
    assert.ok(dry.result.planned.files.every((f) => f.target === s.target && f.action === 'queue' && /^d\d\/f\d+\.csv$/.test(f.path)));
    assert.equal(new Set(dry.result.planned.files.map((f) => f.path)).size, 1000, 'each file once');
    const text = await sftppush(['reconcile', '--config', s.config, '--dry-run', '--settle', '0', '--log-level', 'silent']);
    assert.equal(text.stdout.split('\n').filter((line) => line.startsWith('  would queue: ')).length, 1000);
    assert.match(text.stdout, /\(5 more files to queue or wait for, not listed\)/);
    assert.deepEqual(await listVersions(moto.client, s.bucket), [], 'a dry run writes nothing');
  });

  void it('a quarantined file in scope is not counted as already archived: it is counted and listed as quarantined, exit 1', async (t) => {
    const s = await setup(t, moto);
    const good = gzipSync(Buffer.from('good content\n'.repeat(100)));
    writeFiles(s.target, { 'a.csv': 'a\n' });
    fs.writeFileSync(path.join(s.target, 'bad.csv.gz'), good.subarray(0, good.length - 12)); // truncated: a structure error

    const first = await reconcile(s.config, '--settle', '0');
    assert.equal(first.code, 1, tail(first.stderr));
    assert.deepEqual(first.result.unfinished.map((u) => [u.path, u.state]), [['bad.csv.gz', 'quarantined']]);

    // Nothing changed on disk: both are as the ledger holds them, but only a.csv is archived.
    const second = await reconcile(s.config, '--settle', '0');
    assert.equal(second.code, 1, `a quarantined file in scope: exit 1\n${tail(second.stderr)}`);
    assert.equal(second.result.counts.inScope, 2);
    assert.equal(second.result.counts.alreadyArchived, 1, 'only a.csv is archived');
    assert.equal(second.result.counts.quarantined, 1);
    assert.equal(second.result.counts.failed, 1);
    assert.equal(second.result.counts.queued, 0);
    assert.deepEqual(second.result.unfinished.map((u) => [u.path, u.state]), [['bad.csv.gz', 'quarantined']]);
    const text = await sftppush(['reconcile', '--config', s.config, '--settle', '0', '--log-level', 'silent']);
    assert.equal(text.code, 1);
    assert.match(text.stdout, /1 already archived/);
    assert.match(text.stdout, /1 quarantined/);
    assert.match(text.stdout, /quarantined: .*bad\.csv\.gz/);
  });

  /**
   * A `watch` on a fresh bucket whose PUT answers a proxy holds for 6 s, with two files claimed by it (`working`,
   * held by a live process), and a config for a one-shot `reconcile` on the same ledger and target straight to moto.
   */
  async function watchHoldingTwo(t: TestContext): Promise<{ service: Service; watch: RunningService; direct: string }> {
    const proxy = await startFaultProxy(moto.endpoint);
    t.after(() => proxy.stop());
    bucketSerial += 1;
    const service = await createService({ moto, bucket: `reconcile-beside-${bucketSerial}-${process.pid}`, endpoint: proxy.endpoint });
    t.after(() => service.cleanup());
    const watch = await service.start();
    t.after(() => watch.kill());
    const files = { 'held1.csv': 'held one\n', 'held2.csv': 'held two\n' };
    for (const name of Object.keys(files)) proxy.inject({ ...faultTarget.putObject(name), kind: 'stall', ms: 6000 });
    writeFiles(service.targetDir, files);
    await waitUntil('both files claimed by the watch', async () => (await service.status()).counts.working === 2, 15_000, 200);
    const direct = path.join(service.dir, 'direct.toml');
    fs.writeFileSync(direct, fs.readFileSync(service.configFile, 'utf8').replace(proxy.endpoint, moto.endpoint));
    return { service, watch, direct };
  }

  async function assertBothArchivedOnce(service: Service, run: CliResult & { result: ReconcileJson }): Promise<void> {
    assert.equal(run.code, 0, `the watch's rows end archived: exit 0 (unfinished: ${JSON.stringify(run.result.unfinished)})\n${tail(run.stderr)}`);
    assert.deepEqual(run.result.unfinished, []);
    assert.equal(run.result.counts.failed, 0);
    const st = await service.status();
    assert.equal(st.counts.archived, 2);
    assert.equal(st.counts.working + st.counts.pending + st.counts.retry, 0);
    assert.deepEqual(await versionCounts(moto, service.bucket), { 'held1.csv': 1, 'held2.csv': 1 }, 'each archived exactly once');
  }

  void it('beside a running watch on the same ledger, waits for the rows the watch is archiving and exits 0 once they are archived', async (t) => {
    const { service, direct } = await watchHoldingTwo(t);
    const run = await reconcile(direct, '--settle', '0');
    await assertBothArchivedOnce(service, run);
    assert.equal(run.result.counts.uploaded, 0, 'archived by the watch, not by this reconcile');
  });

  void it('beside a watch that is killed while the reconcile waits for its rows: recovers them and archives each once', async (t) => {
    const { service, watch, direct } = await watchHoldingTwo(t);
    const running = reconcile(direct, '--settle', '0');
    await sleep(1500); // the reconcile is waiting for the watch's rows by now (its start takes well under that)
    await watch.kill();
    await assertBothArchivedOnce(service, await running);
  });

  void it('a no-change pass over 5,000 files in 200 directories (bounded-memory smoke)', async (t) => {
    // Sized down from 20,000 files: archiving them once through moto_server (single-threaded Python) took
    // about 160 s on a 2-CPU machine, the first pass alone ~130 files/s; 5,000 keep this case near 30-50 s.
    // The full-size no-change pass (100,000 files, peak RSS next to `find`) is the benchmark's, not the suite's.
    const DIRS = 200;
    const PER_DIR = 25;
    const n = DIRS * PER_DIR;
    const s = await setup(t, moto, { upload: ['concurrency = 16'] });
    let started = performance.now();
    for (let d = 0; d < DIRS; d++) {
      const dir = path.join(s.target, `d${String(d).padStart(3, '0')}`);
      fs.mkdirSync(dir);
      for (let f = 0; f < PER_DIR; f++) fs.writeFileSync(path.join(dir, `f${f}.dat`), `${d}/${f}\n`);
    }
    const createMs = performance.now() - started;

    const first = await reconcile(s.config, '--settle', '0', '--log-level', 'warn');
    assert.equal(first.code, 0, tail(first.stderr));
    assert.equal(first.result.counts.uploaded, n);

    started = performance.now();
    const timeFile = path.join(s.dir, 'time.txt');
    // GNU time reports the child's peak RSS, if installed; the pass itself is the same either way.
    const useTime = fs.existsSync('/usr/bin/time');
    const args = ['reconcile', '--config', s.config, '--json', '--log-level', 'warn'];
    const second = useTime ? await sftppush(['-f', '%M', '-o', timeFile, SFTPPUSH_BIN, ...args], '/usr/bin/time') : await sftppush(args);
    const secondMs = performance.now() - started;
    assert.equal(second.code, 0, tail(second.stderr));
    const result = JSON.parse(second.stdout) as ReconcileJson;
    assert.equal(result.counts.scanned, n);
    assert.equal(result.counts.alreadyArchived, n);
    assert.equal(result.counts.queued, 0);
    assert.equal(result.counts.uploaded, 0);
    const versions = await listVersions(moto.client, s.bucket);
    assert.equal(versions.length, n, 'one version per file, none added by the second pass');
    const rss = useTime ? `, peak RSS ${Math.round(Number(fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop()) / 1024)} MB` : '';
    t.diagnostic(
      `${n} files in ${DIRS} dirs: created in ${Math.round(createMs)} ms, first (archiving) pass ${Math.round(first.ms)} ms, ` +
        `no-change pass ${Math.round(secondMs)} ms wall (durationMs ${result.durationMs})${rss}`,
    );
  });
});
