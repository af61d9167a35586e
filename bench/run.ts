/**
 * The benchmark suite (issue 11): sftppush next to the tools users would pick instead, on the same endpoint and
 * the same files, in one run. Starts its own moto_server and sink (bench/sink.ts, an S3 that discards bytes and
 * is not the bottleneck), runs each scenario a-g, and writes BENCHMARKS.md with the median of `--runs` runs
 * (3), the ratios and each goal of issue 11 met or missed.
 *  a. small files renamed into a watched directory, on moto: sftppush, the SDK loop, rclone, aws-cli (watch.ts)
 *  b. close-write -> archived latency, on the sink and on moto (watch.ts)
 *  c. one large file: MB/s and peak RSS, next to aws s3 cp and rclone, on the sink (watch.ts)
 *  d. a no-change reconcile of 100,000 files, next to find
 *  e. sha256 inside the service's read path (SourceFile.sha256), next to sha256sum
 *  f. scenario a on the sink: sftppush's own ceiling
 *  g. backfill and --verify of 10,000 files, 200 MB tar.gz and zip (archives.ts), on moto
 *
 *   make build && npm run bench                  all of it; writes BENCHMARKS.md
 *   npm run bench -- --only a,f [--runs 1]       some scenarios; prints, leaves BENCHMARKS.md as it is
 *   npm run bench -- --quick                     one run of small sizes (the `make test` smoke); prints
 */
import Database from 'better-sqlite3';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MIGRATIONS_DIR } from '../src/app.js';
import { Ledger } from '../src/ledger/ledger.js';
import { nodeSourceFs } from '../src/source/source-fs.js';
import { statOf } from '../test/support/fixtures.js';
import { MOTO_ENV } from '../test/support/moto.js';
import { createService, SFTPPUSH_BIN, type Service } from '../test/support/service.js';
import { measureArchives } from './archives.js';
import { bySeconds, median, medianRun, plainData, ratio, run, timed, type BenchSettings, type Row } from './measure.js';
import { PEER_COMMANDS, sdkPutLoop, startMotoEndpoint, startSinkEndpoint, versions, type Endpoint } from './peers.js';
import { measureBurst, measureLargeFile, measureLatency, writeLargeFile, type Figures } from './watch.js';

const FULL: BenchSettings = {
  runs: 3,
  concurrency: 16,
  burstFiles: 2000,
  latencyFiles: 200,
  latencyGapMs: 20,
  largeBytes: 2 ** 30,
  treeDirs: 1000,
  treeFilesPerDir: 100,
  backfillFiles: 10_000,
  archiveMembers: 200,
};

const QUICK: BenchSettings = {
  runs: 1,
  concurrency: 4,
  burstFiles: 50,
  latencyFiles: 10,
  latencyGapMs: 20,
  largeBytes: 16 * 2 ** 20,
  treeDirs: 20,
  treeFilesPerDir: 50,
  backfillFiles: 100,
  archiveMembers: 5,
};

const SCENARIOS = ['a', 'b', 'c', 'd', 'e', 'f', 'g'] as const;
type Scenario = (typeof SCENARIOS)[number];

/** The environment of every `bin/sftppush` this bench runs (moto's dummy credentials, no SDK notice). */
const SERVICE_ENV = { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

/** The service's config for a one-shot `reconcile` over `dir`, with its own ledger and key prefix. */
function reconcileConfig(service: Service, name: string, dir: string, concurrency: number): string {
  const config = path.join(service.dir, `${name}.toml`);
  writeFileSync(
    config,
    readFileSync(service.configFile, 'utf8')
      .replace('path = "target"', `path = "${dir}"`)
      .replace('path = "var/ledger.db"', `path = "var/${name}.db"`)
      .replace(/concurrency = \d+/, `concurrency = ${concurrency}`)
      .replace('[s3]', `[s3]\nprefix = "${name}/"`),
  );
  return config;
}

/**
 * Scenario d: a no-change pass at scale. The tree is recorded in the ledger as archived (seeded through the
 * Ledger API: uploading 100,000 files first would take longer than the pass measured), then `sftppush
 * reconcile` finds nothing to do; S3 is asked nothing. Next to `find DIR -type f -printf '%s %T@\n'`.
 */
async function measureNoChangeReconcile(service: Service, settings: BenchSettings, figures: Figures): Promise<Row[]> {
  const root = path.join(service.dir, 'tree');
  const { treeDirs, treeFilesPerDir } = settings;
  for (let d = 0; d < treeDirs; d += 1) {
    mkdirSync(path.join(root, `d${d}`), { recursive: true });
    for (let f = 0; f < treeFilesPerDir; f += 1) writeFileSync(path.join(root, `d${d}`, `f${f}.csv`), `${d},${f}\n`);
  }
  const ledgerPath = path.join(service.dir, 'tree-ledger.db');
  const ledger = Ledger.open(ledgerPath, { migrationsDir: MIGRATIONS_DIR });
  for (let d = 0; d < treeDirs; d += 1) {
    for (let f = 0; f < treeFilesPerDir; f += 1) ledger.observe(root, `d${d}/f${f}.csv`, statOf(path.join(root, `d${d}/f${f}.csv`)));
  }
  ledger.close();
  // As if every one had been archived: archiving 100,000 files is not what this scenario measures.
  const db = new Database(ledgerPath);
  db.prepare(`UPDATE files SET state = 'archived', sha256 = 'seeded'`).run();
  db.close();
  await new Promise((resolve) => setTimeout(resolve, 1000)); // every file settled (mtime and ctime >= 1 s old)
  const files = treeDirs * treeFilesPerDir;
  const config = path.join(service.dir, 'tree.toml');
  writeFileSync(config, readFileSync(service.configFile, 'utf8').replace('path = "target"', 'path = "tree"'));
  const args = ['reconcile', '--config', config, '--ledger', ledgerPath, '--settle', '1', '--log-level', 'warn'];
  const ours = (await medianRun(settings.runs, bySeconds, () => timed(SFTPPUSH_BIN, args, SERVICE_ENV)))!;
  const find = (await medianRun(settings.runs, bySeconds, () => timed('find', [root, '-type', 'f', '-printf', '%s %T@\n'])))!;
  figures.set('d.ratio', ours.seconds / Math.max(find.seconds, 0.01));
  const detail = `${files} files in ${treeDirs} directories, all archived already; same tree`;
  return [
    { measure: 'sftppush reconcile, no change', value: `${ours.seconds} s, ${ours.rssMb} MB peak RSS`, ratio: `${ratio(ours.seconds, Math.max(find.seconds, 0.01))} find's time`, detail },
    { measure: "find -type f -printf '%s %T@\\n'", value: `${find.seconds} s, ${find.rssMb} MB peak RSS`, ratio: 'reference', detail },
  ];
}

/**
 * Scenario e: SHA-256 as the service computes it for a large file (SourceFile.sha256: positional 1 MiB reads
 * into node:crypto), in this process, next to `sha256sum` of the same file; both with the file in the page cache.
 */
async function measureSha256(file: string, bytes: number, settings: BenchSettings, figures: Figures): Promise<Row[]> {
  const ours = (await medianRun(settings.runs, (seconds: number) => seconds, async () => {
    const source = await nodeSourceFs.open(file);
    const started = process.hrtime.bigint();
    await source.sha256();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    await source.close();
    return seconds;
  }))!;
  const sum = (await medianRun(settings.runs, bySeconds, () => timed('sha256sum', [file])))!;
  const mb = bytes / 1e6;
  figures.set('e.sftppush.mbPerSecond', mb / ours);
  figures.set('e.sha256sum.mbPerSecond', mb / sum.seconds);
  const detail = `one file of ${Math.round(mb)} MB in the page cache`;
  return [
    { measure: 'sftppush read path: SourceFile.sha256()', value: `${(mb / ours).toFixed(0)} MB/s`, ratio: `${ratio(sum.seconds, ours)} sha256sum`, detail: `${detail}; in-process, wall time` },
    { measure: 'sha256sum', value: `${(mb / sum.seconds).toFixed(0)} MB/s`, ratio: 'reference', detail: `${detail}; GNU time (0.01 s resolution)` },
  ];
}

/**
 * Scenario g (backfill): files that no service saw arrive, archived by one `sftppush reconcile --settle 0`;
 * then `--verify` of all of them (a listing, no HEAD when nothing changed). Next to the SDK loop over the same files.
 */
async function measureBackfill(service: Service, endpoint: Endpoint, settings: BenchSettings): Promise<Row[]> {
  const n = settings.backfillFiles;
  const root = path.join(service.dir, 'backfill');
  const files = Array.from({ length: n }, (_, i) => {
    const dir = path.join(root, `d${i % 100}`);
    if (i < 100) mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `f${i}.dat`);
    writeFileSync(file, plainData(4096));
    return { path: file, key: `d${i % 100}/f${i}.dat` };
  });
  const runs = Array.from({ length: settings.runs }, (_, r) => reconcileConfig(service, `backfill-${r}`, root, settings.concurrency));
  const backfills: { seconds: number; rssMb: number; verifySeconds: number; listed: number; heads: number; verified: number }[] = [];
  const loops: number[] = [];
  for (const [r, config] of runs.entries()) {
    const backfill = await timed(SFTPPUSH_BIN, ['reconcile', '--config', config, '--settle', '0', '--log-level', 'warn'], SERVICE_ENV);
    const verifyStarted = Date.now();
    const result = await run(SFTPPUSH_BIN, ['reconcile', '--config', config, '--verify', '--json', '--log-level', 'warn'], SERVICE_ENV);
    const summary = JSON.parse(result.stdout) as { counts: { verified: number }; verifyRequests: { listed: number; heads: number } };
    backfills.push({ ...backfill, verifySeconds: (Date.now() - verifyStarted) / 1000, listed: summary.verifyRequests.listed, heads: summary.verifyRequests.heads, verified: summary.counts.verified });
    loops.push((await sdkPutLoop(endpoint, service.bucket, `sdk-backfill-${r}/`, files, settings.concurrency)).seconds);
  }
  const ours = backfills.find((b) => b.seconds === median(backfills.map(bySeconds)))!;
  const verify = median(backfills.map((b) => b.verifySeconds));
  const loop = median(loops);
  const detail = `${n} x 4 KB in 100 directories, concurrency ${settings.concurrency}, ${endpoint.name}`;
  return [
    { measure: 'sftppush reconcile, backfill', value: `${Math.round(n / ours.seconds)} files/s, ${ours.rssMb} MB peak RSS`, ratio: `${ratio(loop, ours.seconds)} the SDK loop`, detail: `${detail}; ${ours.seconds} s` },
    { measure: '@aws-sdk PutObject loop, same files', value: `${Math.round(n / loop)} files/s`, ratio: 'reference', detail },
    {
      measure: 'sftppush reconcile --verify',
      value: `${verify.toFixed(1)} s`,
      detail: `${ours.verified} archived objects verified: ${Math.ceil(ours.listed / 1000)} ListObjectsV2 requests, ${ours.heads} HEADs`,
    },
  ];
}

interface Goal {
  readonly goal: string;
  /** measured / wanted, oriented so that >= 1 is met; undefined when a figure is missing (peer absent). */
  readonly score: number | undefined;
  readonly measured: string;
}

/** Issue 11's goals (item 3), judged on this run's figures. */
function judgeGoals(f: Figures): Goal[] {
  const get = (name: string): number => f.get(name) ?? NaN;
  const fasterPeer = Math.max(get('a.rclone.filesPerSecond'), get('a.aws.filesPerSecond'));
  const goal = (text: string, score: number, measured: string): Goal => ({ goal: text, score: Number.isFinite(score) ? score : undefined, measured });
  const x = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}x` : 'n/a');
  return [
    goal('a: files/s >= 0.9x the SDK loop (moto)', get('a.sftppush.filesPerSecond') / get('a.sdk.filesPerSecond') / 0.9, x(get('a.sftppush.filesPerSecond') / get('a.sdk.filesPerSecond'))),
    goal('a: files/s >= 1.2x the faster of rclone and aws-cli (moto)', get('a.sftppush.filesPerSecond') / fasterPeer / 1.2, x(get('a.sftppush.filesPerSecond') / fasterPeer)),
    goal('a: CPU per file <= rclone\'s', get('a.rclone.cpuPer1000') / get('a.sftppush.cpuPer1000'), `${get('a.sftppush.cpuPer1000').toFixed(2)} vs ${get('a.rclone.cpuPer1000').toFixed(2)} CPU-s per 1000`),
    goal('b: p50 latency < 20 ms on the sink', 20 / get('b.sink.p50'), `${get('b.sink.p50')} ms`),
    goal('c: MB/s >= 0.9x aws s3 cp', get('c.sftppush.mbPerSecond') / get('c.aws.mbPerSecond') / 0.9, x(get('c.sftppush.mbPerSecond') / get('c.aws.mbPerSecond'))),
    goal('c: peak RSS < 150 MB', 150 / get('c.sftppush.rssMb'), `${get('c.sftppush.rssMb')} MB`),
    goal('d: no-change reconcile <= 3x find', 3 / get('d.ratio'), x(get('d.ratio'))),
    goal('e: sha256 >= 0.9x sha256sum', get('e.sftppush.mbPerSecond') / get('e.sha256sum.mbPerSecond') / 0.9, x(get('e.sftppush.mbPerSecond') / get('e.sha256sum.mbPerSecond'))),
    goal('f: >= 2000 files/s on the sink', get('f.sftppush.filesPerSecond') / 2000, `${Math.round(get('f.sftppush.filesPerSecond'))} files/s`),
  ].filter((g) => [...f.keys()].some((name) => name.startsWith(`${g.goal[0]}.`)));
}

function renderTable(rows: readonly Row[]): string {
  const header = '| measure | result | ratio | conditions |\n| --- | --- | --- | --- |';
  return [header, ...rows.map((r) => `| ${r.measure} | ${r.value} | ${r.ratio ?? ''} | ${r.detail} |`)].join('\n');
}

function renderGoals(goals: readonly Goal[]): string {
  const header = '| goal | measured | verdict |\n| --- | --- | --- |';
  const verdict = (g: Goal): string => (g.score === undefined ? 'not judged (a figure is missing)' : g.score >= 1 ? 'met' : 'missed');
  return [header, ...goals.map((g) => `| ${g.goal} | ${g.measured} | ${verdict(g)} |`)].join('\n');
}

const TITLES: Record<Scenario, (s: BenchSettings) => string> = {
  a: (s) => `a. ${s.burstFiles} x 4 KB renamed into a watched directory, on moto`,
  b: (s) => `b. Latency, ${s.latencyFiles} files written ${s.latencyGapMs} ms apart`,
  c: (s) => `c. One ${Math.round(s.largeBytes / 2 ** 20)} MiB file, on the sink`,
  d: (s) => `d. No-change reconcile of ${s.treeDirs * s.treeFilesPerDir} files`,
  e: () => 'e. SHA-256 in the read path',
  f: (s) => `f. Scenario a on the sink: ${s.burstFiles} x 4 KB`,
  g: (s) => `g. Backfill and --verify of ${s.backfillFiles} files; ${s.archiveMembers} MB tar.gz and zip, on moto`,
};

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Linux ${os.release()}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const only = values.only === undefined ? [...SCENARIOS] : values.only.split(',').map((s) => s.trim());
  for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`--only ${s}: scenarios are ${SCENARIOS.join(', ')}`);
  const settings: BenchSettings = { ...(values.quick ? QUICK : FULL), ...(values.runs ? { runs: Number(values.runs) } : {}) };
  // Only a full run of everything replaces BENCHMARKS.md; a partial or quick one prints (or goes to --out).
  const out = values.out ?? (values.only === undefined && !values.quick ? 'BENCHMARKS.md' : undefined);
  const started = Date.now();
  const has = (s: Scenario): boolean => only.includes(s);
  const work = mkdtempSync(path.join(os.tmpdir(), 'sftppush-bench-'));
  const moto = await startMotoEndpoint();
  const sink = await startSinkEndpoint();
  const figures: Figures = new Map();
  const sections: [Scenario, Row[]][] = [];
  const section = async (s: Scenario, rows: () => Promise<Row[]>): Promise<void> => {
    if (!has(s)) return;
    process.stderr.write(`bench: scenario ${TITLES[s](settings)}\n`);
    const result = await rows();
    sections.push([s, result]);
    process.stderr.write(`${renderTable(result)}\n`);
  };
  const largeFile = path.join(work, 'large.bin');
  try {
    await section('b', async () => [...(await measureLatency(moto, settings, figures)), ...(await measureLatency(sink, settings, figures))]);
    await section('a', () => measureBurst(moto, settings, figures, 'a'));
    await section('f', () => measureBurst(sink, settings, figures, 'f'));
    if (has('c') || has('e')) writeLargeFile(largeFile, settings.largeBytes);
    await section('c', () => measureLargeFile(sink, settings, largeFile, figures));
    await section('e', () => measureSha256(largeFile, settings.largeBytes, settings, figures));
    rmSync(largeFile, { force: true });
    if (has('d') || has('g')) {
      const service = await createService({ moto, bucket: 'reconcile', concurrency: settings.concurrency, settleSeconds: 1 });
      try {
        await section('d', () => measureNoChangeReconcile(service, settings, figures));
        await section('g', async () => [...(await measureBackfill(service, moto, settings)), ...(await measureArchives(service, moto, settings))]);
      } finally {
        service.cleanup();
      }
    }
  } finally {
    await sink.stop();
    await moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const minutes = ((Date.now() - started) / 60_000).toFixed(1);
  const v = await versions();
  const commit = (await run('git', ['rev-parse', '--short', 'HEAD'])).stdout.trim() || 'unknown commit';
  const document = [
    '# Benchmarks',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${machine()}; sftppush ${commit}.`,
    `Versions: Node ${v.node}; ${v.moto ?? 'moto absent'}; ${v.rclone ?? 'rclone absent'}; ${v.aws ?? 'aws-cli absent'}.`,
    `Re-run: \`make build && npm run bench\` (writes this file; this run took ${minutes} minutes). One scenario: \`npm run bench -- --only a\` (prints).`,
    `Each figure is the median of ${settings.runs} run(s). moto_server is single-threaded Python and bounds every figure taken on it;`,
    'the sink (bench/sink.ts) is a local S3 that checks checksums and conditional writes as S3 does but discards the bytes, so there the client is what is measured.',
    '',
    '## Goals (issue 11)',
    '',
    renderGoals(judgeGoals(figures)),
    ...sections.flatMap(([s, rows]) => ['', `## ${TITLES[s](settings)}`, '', renderTable(rows)]),
    '',
    '## Commands',
    '',
    ...PEER_COMMANDS.map((c) => `- ${c}`),
    '- sftppush: `bin/sftppush watch --config C --log-level info` with `[upload] concurrency = N`; files/s and latency from its ledger (history: the archived transition)',
    "- no-change: `bin/sftppush reconcile --config C --ledger L --settle 1 --log-level warn` and `find DIR -type f -printf '%s %T@\\n'`, each under `/usr/bin/time -f '%e %M %U %S'`",
    '- backfill: `bin/sftppush reconcile --config C --settle 0`, then `--verify --json`; archives: see bench/archives.ts',
    '',
  ].join('\n');
  if (out) writeFileSync(out, document);
  process.stdout.write(out ? `bench: wrote ${out} in ${minutes} minutes\n` : document);
}

if (process.argv[1]?.endsWith('run.js')) await main();
