/**
 * Foundation benchmarks (the full suite is its own issue): against one moto_server on loopback,
 *  - close-write -> archived latency for 4 KB files written one at a time (p50/p95/p99 over 200),
 *  - throughput for a burst of 2000 x 4 KB files through `bin/sftppush watch`,
 *  - the same 2000 objects PUT by a plain @aws-sdk loop at the same concurrency (moto's ceiling),
 *  - a no-change `sftppush reconcile` over 100,000 files in 1,000 directories (ledger seeded as archived), seconds
 *    and peak RSS, next to `find DIR -type f -printf '%s %T@\n'` on the same tree,
 *  - a 200 MB tar.gz and a 200 MB zip of 1 MB members, next to tar/unzip + aws s3 cp (bench/archives.ts).
 * Writes BENCHMARKS.md. Run: `make build && npm run bench` (or `node dist/bench/run.js [--files N]`).
 * `npm run bench -- --only no-change` runs the no-change reconcile alone and prints it (BENCHMARKS.md is left as it is).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MIGRATIONS_DIR } from '../src/app.js';
import { measureArchives } from './archives.js';
import { Ledger } from '../src/ledger/ledger.js';
import { statOf } from '../test/support/fixtures.js';
import { MOTO_ENV, startMoto, type MotoServer } from '../test/support/moto.js';
import { createService, isFileOutcome, SFTPPUSH_BIN, type LogLine, type RunningService, type Service } from '../test/support/service.js';

const CONCURRENCY = 8;
const FILE_BYTES = 4096;
const LATENCY_FILES = 200;
const BURST_FILES = Number(process.argv[process.argv.indexOf('--files') + 1]) || 2000;
const ONLY = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
if (ONLY !== undefined && ONLY !== 'no-change') throw new Error(`--only ${ONLY}: the one scenario that runs alone is no-change`);

export interface Row {
  measure: string;
  value: string;
  detail: string;
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function archivedAt(line: LogLine): number {
  return Date.parse(String(line.time));
}

async function measureLatency(service: Service, run: RunningService): Promise<Row[]> {
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_FILES; i += 1) {
    const name = `latency/f${i}.dat`;
    const closedAt = Date.now();
    writeFileSync(path.join(service.targetDir, name), randomBytes(FILE_BYTES));
    const line = await run.waitForLog(name, isFileOutcome(name));
    latencies.push(archivedAt(line) - closedAt);
  }
  latencies.sort((a, b) => a - b);
  const detail = `${LATENCY_FILES} files of 4 KB, one at a time`;
  return [
    { measure: 'close-write -> archived, p50', value: `${percentile(latencies, 50)} ms`, detail },
    { measure: 'close-write -> archived, p95', value: `${percentile(latencies, 95)} ms`, detail },
    { measure: 'close-write -> archived, p99', value: `${percentile(latencies, 99)} ms`, detail },
  ];
}

async function measureBurst(service: Service, run: RunningService): Promise<Row> {
  const started = Date.now();
  for (let i = 0; i < BURST_FILES; i += 1) {
    writeFileSync(path.join(service.targetDir, 'burst', `f${i}.dat`), randomBytes(FILE_BYTES));
  }
  const written = Date.now();
  const isBurst = (line: LogLine): boolean => isFileOutcome()(line) && String(line.path).startsWith('burst/');
  await run.waitForLogCount(`${BURST_FILES} burst files`, isBurst, BURST_FILES, 600_000);
  const finished = Math.max(...run.logs.filter(isBurst).map(archivedAt));
  const seconds = (finished - started) / 1000;
  return {
    measure: 'sftppush watch, burst',
    value: `${Math.round(BURST_FILES / seconds)} files/s`,
    detail: `${BURST_FILES} x 4 KB written in ${written - started} ms, all archived ${Math.round(seconds * 1000)} ms after the first write; concurrency ${CONCURRENCY}`,
  };
}

async function measurePlainPutLoop(moto: MotoServer, bucket: string, when: string, files = BURST_FILES): Promise<Row> {
  const bodies = Array.from({ length: files }, () => randomBytes(FILE_BYTES));
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < files; i = next++) {
        await moto.client.send(new PutObjectCommand({ Bucket: bucket, Key: `plain-${when.replace(/\W+/g, '-')}/f${i}.dat`, Body: bodies[i] }));
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  return {
    measure: `plain @aws-sdk PutObject loop, ${when}`,
    value: `${Math.round(files / seconds)} files/s`,
    detail: `${files} x 4 KB from memory, ${CONCURRENCY} in flight, same endpoint`,
  };
}

const TREE_DIRS = 1000;
const TREE_FILES_PER_DIR = 100;

/**
 * Runs a command to its end, never blocking this process's event loop (moto_server, our child, logs every
 * request to a pipe this process drains: a spawnSync stalls moto once that pipe is full).
 * @returns its exit code, stdout and stderr.
 */
export async function run(
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve, reject) => child.once('close', resolve).once('error', reject));
  return { code, stdout, stderr };
}

/** Wall seconds and peak RSS (MB) of a command, by GNU time. */
export async function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<{ seconds: number; rssMb: number }> {
  const result = await run('/usr/bin/time', ['-f', '%e %M', command, ...args], env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  const [seconds = 'NaN', kb = 'NaN'] = result.stderr.trim().split('\n').at(-1)!.split(' ');
  return { seconds: Number(seconds), rssMb: Math.round(Number(kb) / 1024) };
}

/** The run of median time among three (the page cache warm after the first). */
async function medianOf3(measure: () => Promise<{ seconds: number; rssMb: number }>): Promise<{ seconds: number; rssMb: number }> {
  const runs = [await measure(), await measure(), await measure()];
  return runs.sort((a, b) => a.seconds - b.seconds)[1]!;
}

/**
 * A no-change pass at scale: the tree is recorded in the ledger as archived (seeded through the Ledger API,
 * as 100,000 uploads to moto would take longer than the pass being measured), then `sftppush reconcile` finds
 * nothing to do. S3 is asked nothing but the start-up probe.
 */
export async function measureNoChangeReconcile(service: Service): Promise<Row[]> {
  const root = path.join(service.dir, 'tree');
  for (let d = 0; d < TREE_DIRS; d += 1) {
    mkdirSync(path.join(root, `d${d}`), { recursive: true });
    for (let f = 0; f < TREE_FILES_PER_DIR; f += 1) writeFileSync(path.join(root, `d${d}`, `f${f}.csv`), `${d},${f}\n`);
  }
  const ledgerPath = path.join(service.dir, 'tree-ledger.db');
  const ledger = Ledger.open(ledgerPath, { migrationsDir: MIGRATIONS_DIR });
  for (let d = 0; d < TREE_DIRS; d += 1) {
    for (let f = 0; f < TREE_FILES_PER_DIR; f += 1) {
      const relPath = `d${d}/f${f}.csv`;
      ledger.observe(root, relPath, statOf(path.join(root, relPath)));
    }
  }
  ledger.close();
  // As if every one had been archived (claims are fsynced one by one: 100,000 of them is not the point here).
  const db = new Database(ledgerPath);
  db.prepare(`UPDATE files SET state = 'archived', sha256 = 'seeded'`).run();
  db.close();
  await new Promise((resolve) => setTimeout(resolve, 1000)); // every file settled (mtime and ctime >= 1 s old)
  const files = TREE_DIRS * TREE_FILES_PER_DIR;
  const env = { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const config = path.join(service.dir, 'tree.toml');
  writeFileSync(config, readFileSync(service.configFile, 'utf8').replace('path = "target"', 'path = "tree"'));
  const args = ['reconcile', '--config', config, '--ledger', ledgerPath, '--settle', '1', '--log-level', 'warn'];
  const ours = await medianOf3(() => timed(SFTPPUSH_BIN, args, env));
  const find = await medianOf3(() => timed('find', [root, '-type', 'f', '-printf', '%s %T@\n']));
  const detail = `${files} files in ${TREE_DIRS} directories, all archived already; same tree; median of 3 runs`;
  return [
    { measure: 'sftppush reconcile, no change', value: `${ours.seconds} s, ${ours.rssMb} MB peak RSS`, detail: `${detail}; ${(ours.seconds / Math.max(find.seconds, 0.01)).toFixed(1)}x find` },
    { measure: "find -type f -printf '%s %T@\\n'", value: `${find.seconds} s, ${find.rssMb} MB peak RSS`, detail },
  ];
}

const BACKFILL_FILES = 10_000;

/**
 * A backfill: 10,000 files of 4 KB in 100 directories that no service saw arrive, archived by one
 * `sftppush reconcile --settle 0`; then `--verify` of all of them (a listing, no HEAD when nothing changed).
 * Next to a plain SDK PutObject loop of as many objects at the same concurrency on the same endpoint.
 */
export async function measureBackfill(service: Service, moto: MotoServer): Promise<Row[]> {
  const root = path.join(service.dir, 'backfill');
  for (let i = 0; i < BACKFILL_FILES; i += 1) {
    const dir = path.join(root, `d${i % 100}`);
    if (i < 100) mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, `f${i}.dat`), randomBytes(FILE_BYTES));
  }
  const config = path.join(service.dir, 'backfill.toml');
  writeFileSync(
    config,
    readFileSync(service.configFile, 'utf8')
      .replace('path = "target"', 'path = "backfill"')
      .replace('path = "var/ledger.db"', 'path = "var/backfill.db"')
      .replace(/concurrency = \d+/, `concurrency = ${CONCURRENCY}`)
      .replace('[s3]', '[s3]\nprefix = "backfill/"'),
  );
  const env = { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  const backfill = await timed(SFTPPUSH_BIN, ['reconcile', '--config', config, '--settle', '0', '--log-level', 'warn'], env);
  const verifyStarted = Date.now();
  const result = await run(SFTPPUSH_BIN, ['reconcile', '--config', config, '--verify', '--json', '--log-level', 'warn'], env);
  const verifySeconds = (Date.now() - verifyStarted) / 1000;
  const summary = JSON.parse(result.stdout) as { counts: { verified: number }; verifyRequests: { listed: number; heads: number } };
  const plain = await measurePlainPutLoop(moto, service.bucket, 'next to the backfill', BACKFILL_FILES);
  const detail = `${BACKFILL_FILES} x 4 KB in 100 directories, concurrency ${CONCURRENCY}, same endpoint`;
  return [
    { measure: 'sftppush reconcile, backfill', value: `${Math.round(BACKFILL_FILES / backfill.seconds)} files/s, ${backfill.rssMb} MB peak RSS`, detail: `${detail}; ${backfill.seconds} s` },
    plain,
    {
      measure: 'sftppush reconcile --verify',
      value: `${verifySeconds.toFixed(1)} s`,
      detail: `${summary.counts.verified} archived objects verified: ${Math.ceil(summary.verifyRequests.listed / 1000)} ListObjectsV2 requests, ${summary.verifyRequests.heads} HEADs`,
    },
  ];
}

function renderTable(rows: readonly Row[]): string {
  const header = '| measure | result | conditions |\n| --- | --- | --- |';
  return [header, ...rows.map((r) => `| ${r.measure} | ${r.value} | ${r.detail} |`)].join('\n');
}

async function main(): Promise<void> {
  const moto = await startMoto();
  const service = await createService({ moto, bucket: 'bench', concurrency: CONCURRENCY, settleSeconds: 1 });
  try {
    if (ONLY === 'no-change') {
      process.stdout.write(`${renderTable(await measureNoChangeReconcile(service))}\n`);
      return;
    }
    const fs = await import('node:fs');
    fs.mkdirSync(path.join(service.targetDir, 'latency'));
    fs.mkdirSync(path.join(service.targetDir, 'burst'));
    // The baseline runs before and after: moto's speed drifts, and the two bracket sftppush's run.
    const before = await measurePlainPutLoop(moto, service.bucket, 'before sftppush');
    const run = await service.start();
    const rows = [...(await measureLatency(service, run)), before, await measureBurst(service, run)];
    await run.stop();
    rows.push(await measurePlainPutLoop(moto, service.bucket, 'after sftppush'));
    rows.push(...(await measureNoChangeReconcile(service)));
    rows.push(...(await measureBackfill(service, moto)));
    rows.push(...(await measureArchives(service, moto)));
    const table = renderTable(rows);
    const machine = `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, moto_server on 127.0.0.1`;
    writeFileSync(
      'BENCHMARKS.md',
      `# Benchmarks\n\nMeasured ${new Date().toISOString().slice(0, 10)} on ${machine}.\n` +
        `Re-run: \`make build && npm run bench\` (writes this file).\n\n${table}\n\n` +
        'moto_server is single-threaded Python: its ceiling, the plain PUT loop, bounds every S3 figure here.\n',
    );
    process.stdout.write(`${table}\n`);
  } finally {
    service.cleanup();
    await moto.stop();
  }
}

if (process.argv[1]?.endsWith("run.js")) await main();
