// Several hosts, one shared directory (issue 8, item 6): two SFTP hosts behind one load balancer share one NFS
// volume, each runs its own `watch` with its own ledger, same bucket and prefix. Here both run on this machine
// and watch the very same tree, so both see every close and race for every file, the harder case than NFS
// (where each sees only its own writes and finds the rest by a scan). The conditional writes make the loser's
// PUT a 412 that it resolves with a HEAD and records as found: one object version per content, whoever won.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { MIGRATIONS_DIR } from '../../src/app.js';
import { Ledger } from '../../src/ledger/ledger.js';
import { patternBytes, waitFor } from '../support/fixtures.js';
import { startFaultProxy, target } from '../support/fault-proxy.js';
import { getObject, listVersions, type MotoServer } from '../support/moto.js';
import { createService, ExpectedBucket, isFileOutcome, motoForSuite, sha256, type LogLine, type RunningService, type Service, type StatusJson } from '../support/service.js';

const MIB = 1024 * 1024;
const SMALL_FILES = 198;
/** Multipart (above the 5 MiB threshold, two 5 MiB parts): both hosts HEAD first, then race to complete. */
const LARGE_FILES = ['big/large-1.bin', 'big/large-2.bin'];
/** Made before the services start, so every file below arrives by an event, never by the 30 s scan rule. */
const DIRECTORIES = ['in', 'in/a', 'in/a/b', 'out/x', 'big'];
const SETTLED_DEADLINE_MS = 60_000;

interface SharedFile {
  readonly relPath: string;
  /** Every content written at the path, in order: one ledger generation each. */
  readonly generations: Buffer[];
}

function smallFile(i: number, label: string): Buffer {
  return Buffer.from(`${label},${i},${sha256(Buffer.from(`${label}/${i}`))}\n`);
}

function write(root: string, relPath: string, bytes: Buffer): void {
  fs.writeFileSync(path.join(root, relPath), bytes);
}

function isSettled(status: StatusJson, archived: number): boolean {
  const { counts } = status;
  return counts.archived === archived && counts.pending === 0 && counts.working === 0 && counts.retry === 0;
}

/** Both ledgers (read through `status --json`, as an operator would) show `archived` generations and nothing left. */
async function waitUntilBothArchived(hosts: readonly Service[], archived: number): Promise<void> {
  let last: StatusJson[] = [];
  await waitFor(
    `both hosts' status to show ${archived} archived and nothing pending, working or retrying`,
    async () => {
      last = await Promise.all(hosts.map((host) => host.status()));
      return last.every((status) => isSettled(status, archived)) ? true : undefined;
    },
    { deadlineMs: SETTLED_DEADLINE_MS, intervalMs: 300, describe: () => JSON.stringify(last.map((s) => s.counts)) },
  );
}

function outcomes(run: RunningService): LogLine[] {
  return run.logs.filter(isFileOutcome());
}

type HostOptions = Omit<Parameters<typeof createService>[0], 'moto' | 'bucket' | 'noBucket'>;

/**
 * Two hosts on one tree: A is a plain test service; B has its own dir, config and ledger, its one target
 * rewritten to A's absolute target path (service.ts always writes `path = "target"`). Same bucket, same prefix.
 */
async function twoHosts(
  moto: MotoServer,
  services: Service[],
  bucket: string,
  a: HostOptions,
  b: HostOptions,
): Promise<{ hostA: Service; hostB: Service; shared: string }> {
  const hostA = await createService({ moto, bucket, ...a });
  services.push(hostA);
  const hostB = await createService({ moto, bucket, ...b, noBucket: true });
  services.push(hostB);
  const shared = hostA.targetDir;
  const configB = fs.readFileSync(hostB.configFile, 'utf8');
  assert.match(configB, /^path = "target"$/m, 'service.ts writes the target as path = "target"');
  fs.writeFileSync(hostB.configFile, configB.replace(/^path = "target"$/m, `path = ${JSON.stringify(shared)}`));
  fs.rmdirSync(hostB.targetDir); // nothing may land in B's own (unused) target by mistake
  return { hostA, hostB, shared };
}

/** Every version at `key`, oldest first, as `content@versionId` (for a failure message). */
async function describeVersions(moto: MotoServer, bucket: string, key: string): Promise<string[]> {
  const versions = (await listVersions(moto.client, bucket)).filter((v) => v.key === key).reverse();
  return Promise.all(
    versions.map(async (v) => `${JSON.stringify((await getObject(moto.client, bucket, key, v.versionId)).body.toString())}@${v.versionId}`),
  );
}

void describe('several hosts, one shared directory (two watch processes, moto)', () => {
  const env = motoForSuite();

  void it('two watches with their own ledgers on one tree: each records every generation, S3 holds one version per content', async (t) => {
    const bucket = 'shared-dir';
    // Through the proxy only for what S3 has and moto lacks: atomic conditional writes (fault-proxy.ts). On moto
    // alone both hosts' `If-None-Match: *` PUTs of one file now and then both won: two versions, moto's race.
    const proxy = await startFaultProxy(env.moto.endpoint);
    t.after(() => proxy.stop());
    // settle_seconds at its shipped 30: nothing here may be taken by the scan rule, only by the close events.
    const options = {
      concurrency: 4,
      settleSeconds: 30,
      uploadToml: 'multipart_threshold_mb = 5\npart_size_mb = 5',
      endpoint: proxy.endpoint,
    };
    const { hostA, hostB, shared } = await twoHosts(env.moto, env.services, bucket, options, options);
    for (const dir of DIRECTORIES) fs.mkdirSync(path.join(shared, dir), { recursive: true });

    const runA = await hostA.start();
    const runB = await hostB.start();
    const expected = new ExpectedBucket(env.moto.client, bucket);
    const files: SharedFile[] = [
      ...Array.from({ length: SMALL_FILES }, (_, i) => ({
        relPath: `${['', ...DIRECTORIES.slice(0, 4)][i % 5]}/file-${String(i).padStart(4, '0')}.csv`.replace(/^\//, ''),
        generations: [smallFile(i, 'first')],
      })),
      ...LARGE_FILES.map((relPath, i) => ({ relPath, generations: [patternBytes(6 * MIB, i + 1)] })),
    ];
    const started = Date.now();
    for (const file of files) {
      write(shared, file.relPath, file.generations[0]!);
      expected.addVersion(file.relPath, file.generations[0]!);
    }
    await waitUntilBothArchived([hostA, hostB], expected.generations);
    t.diagnostic(`${files.length} files archived by both hosts in ${Date.now() - started} ms`);

    // Rewrites: new content at ten keys (a new version each, If-Match on the ETag both ledgers recorded), and the
    // same bytes again at two (a duplicate for both: no version). Only small files: moto 5.2.1 ignores If-Match
    // on CompleteMultipartUpload (object-store-contract.test.ts), so two hosts completing the same new multipart
    // content would both succeed there, unlike on S3.
    const rewritten = files.filter((_, i) => i % 19 === 3).slice(0, 10);
    const rewrittenSame = files.filter((_, i) => i % 19 === 7).slice(0, 2);
    assert.equal(rewritten.length, 10);
    for (const [i, file] of rewritten.entries()) {
      const bytes = smallFile(i, 'second');
      file.generations.push(bytes);
      write(shared, file.relPath, bytes);
      expected.addVersion(file.relPath, bytes);
    }
    for (const file of rewrittenSame) {
      const bytes = file.generations[0]!;
      file.generations.push(bytes);
      write(shared, file.relPath, bytes);
      expected.addDuplicate(file.relPath);
    }
    await waitUntilBothArchived([hostA, hostB], expected.generations);
    t.diagnostic(`all ${expected.generations} generations archived by both hosts ${Date.now() - started} ms after the first write`);

    // S3: exactly the expected versions, one per content, bytes and metadata checked.
    await expected.assertMatches();

    // Between them the two hosts wrote each version once; the loser of each race found the winner's object.
    const all = [...outcomes(runA), ...outcomes(runB)];
    const found = all.filter((line) => line.msg === 'file archived' && line.foundByHead === true);
    const written = all.filter((line) => line.msg === 'file archived' && line.foundByHead === false);
    const byHost = (run: RunningService): string => {
      const lines = outcomes(run);
      const count = (match: (l: LogLine) => boolean): number => lines.filter(match).length;
      return `written ${count((l) => l.msg === 'file archived' && l.foundByHead === false)}, ` +
        `found after a 412 ${count((l) => l.foundByHead === true && l.foundBy === 'precondition')}, ` +
        `found by a HEAD first ${count((l) => l.foundByHead === true && l.foundBy === 'head')}, duplicates ${count((l) => l.msg === 'file duplicate')}`;
    };
    t.diagnostic(`host A: ${byHost(runA)}; host B: ${byHost(runB)}`);
    assert.ok(found.some((line) => line.foundBy === 'precondition'), 'some second writes were refused (412) and recorded as found');
    const versions = files.length + rewritten.length;
    assert.equal(written.length, versions, 'the two hosts wrote each version once between them');
    assert.equal(found.length, versions, 'and the other host recorded each as found');
    assert.equal(all.filter((line) => line.msg === 'file duplicate').length, 2 * rewrittenSame.length, 'each host recorded the same bytes again as a duplicate');

    assert.equal(await runA.stop(), 0);
    assert.equal(await runB.stop(), 0);

    // Each ledger tells the whole story on its own: every generation of every path archived with the content
    // written, and the versions it recorded are S3's versions of that key (the same ids in both ledgers).
    const s3Versions = new Map<string, string[]>();
    for (const v of await listVersions(env.moto.client, bucket)) s3Versions.set(v.key, [...(s3Versions.get(v.key) ?? []), v.versionId]);
    for (const [host, service] of [['A', hostA], ['B', hostB]] as const) {
      const ledger = Ledger.open(service.ledgerPath, { migrationsDir: MIGRATIONS_DIR });
      try {
        for (const file of files) {
          const story = ledger.reader.story(file.relPath);
          const where = `host ${host}, ${file.relPath}`;
          assert.deepEqual(
            story.generations.map((g) => [g.state, g.sha256]),
            file.generations.map((bytes) => ['archived', sha256(bytes)]),
            `${where}: every generation archived with the content written`,
          );
          assert.deepEqual(story.objects.map((o) => o.versionId).sort(), [...(s3Versions.get(file.relPath) ?? [])].sort(), `${where}: S3's versions`);
        }
      } finally {
        ledger.close();
      }
    }
  });

  // The NFS case with a slow host: B finds a file by a scan (no event of another host's write reaches it) and
  // reads it; before its PUT gets through, the file is rewritten and A archives the new content. B's stale PUT
  // (If-None-Match: *) is refused, the HEAD shows other content (A's newer version). It used to write its stale
  // bytes conditionally on that ETag (S3's latest became old content, both contents stored twice); now the gate
  // re-stats the source before writing over other content, and B gives the row back to read it again.
  void it('a host whose upload is overtaken by a rewrite archived by the other host writes no second version', async (t) => {
    const bucket = 'shared-stale';
    const proxy = await startFaultProxy(env.moto.endpoint);
    t.after(() => proxy.stop());
    const { hostA, hostB, shared } = await twoHosts(env.moto, env.services, bucket, { settleSeconds: 1 }, { settleSeconds: 1, endpoint: proxy.endpoint });
    const first = Buffer.from('content one\n');
    const second = Buffer.from('content two, written while host B was slow\n');
    const runA = await hostA.start();
    t.after(() => runA.kill());
    write(shared, 'report.csv', first);
    await runA.waitForOutcomes('report.csv', 1);
    // B starts later (as a host that was down, or a file written on another NFS client): its start-up scan
    // finds the file once older than settle_seconds; B's PUT is refused (412), the answer held back 3 s.
    const mtime = fs.statSync(path.join(shared, 'report.csv')).mtimeMs;
    await waitFor('report.csv to be older than settle_seconds', () => (Date.now() - mtime > 1100 ? true : undefined));
    proxy.inject({ ...target.putObject('report.csv'), kind: 'stall', ms: 3000 });
    const runB = await hostB.start();
    t.after(() => runB.kill());
    await waitFor('host B to PUT report.csv', () => (proxy.requests.some((r) => r.method === 'PUT' && r.path.endsWith('/report.csv')) ? true : undefined));
    write(shared, 'report.csv', second);
    await runA.waitForOutcomes('report.csv', 2);
    let last: StatusJson | undefined;
    await waitFor(
      "host B's ledger to settle",
      async () => {
        last = await hostB.status();
        return last.counts.archived >= 1 && last.counts.pending + last.counts.working + last.counts.retry === 0 ? true : undefined;
      },
      { deadlineMs: 20_000, intervalMs: 200, describe: () => JSON.stringify(last?.counts) },
    );
    const expected = new ExpectedBucket(env.moto.client, bucket);
    expected.addVersion('report.csv', first);
    expected.addVersion('report.csv', second);
    const versions = await describeVersions(env.moto, bucket, 'report.csv');
    t.diagnostic(`versions, oldest first: ${versions.join(', ')}`);
    for (const line of runB.logs.filter((l) => l.path === 'report.csv' && l.level >= 30)) t.diagnostic(`host B: ${JSON.stringify(line)}`);
    await expected.assertMatches();
  });
});
