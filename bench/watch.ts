/**
 * Scenarios that run `sftppush watch` (the product's path: inotify event, ledger, S3) and read, from its
 * ledger, when each file was archived; the service runs at its production log level (info).
 *  a/f. a burst of small files renamed into the watched directory: files/s from the first rename to the last
 *       archived, and the service's CPU seconds per 1000 files; next to the SDK loop, rclone and aws-cli.
 *  b.   files written one every few ms: close-write to archived, p50 and p99.
 *  c.   one large file renamed in: MB/s and the service's peak RSS; next to aws s3 cp and rclone.
 */
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createService, type RunningService, type Service } from '../test/support/service.js';
import { bySeconds, cpuSecondsOf, median, medianRun, peakRssMbOf, percentile, plainData, ratio, type BenchSettings, type Row } from './measure.js';
import { awsCp, rcloneCopy, sdkPutLoop, type Endpoint, type PeerTiming } from './peers.js';

const SMALL_FILE_BYTES = 4096;
/** Time for the watcher to add a watch on a directory just made, before files go in. */
const NEW_DIR_SETTLE_MS = 300;
const POLL_MS = 50;

/** Named results the goals are judged on, e.g. `a.sftppush.filesPerSecond`. */
export type Figures = Map<string, number>;

/** A running `sftppush watch` and a read-only view of its ledger. */
class Watched {
  private readonly db: Database.Database;

  private constructor(
    readonly service: Service,
    readonly run: RunningService,
  ) {
    this.db = new Database(service.ledgerPath, { readonly: true, fileMustExist: true });
  }

  static async start(service: Service): Promise<Watched> {
    return new Watched(service, await service.start({ logLevel: 'info' }));
  }

  /** Makes a directory under the target and gives the watcher time to watch it. */
  async newDir(name: string): Promise<string> {
    const dir = path.join(this.service.targetDir, name);
    mkdirSync(dir);
    await sleep(NEW_DIR_SETTLE_MS);
    return dir;
  }

  /** Waits until `count` files under `dir/` are archived. @returns when (ms) each one was, by relative path. */
  async archived(dir: string, count: number, deadlineMs = 600_000): Promise<Map<string, number>> {
    const counting = this.db.prepare(`SELECT count(*) AS n FROM files WHERE state = 'archived' AND rel_path LIKE ?`).pluck();
    const deadline = Date.now() + deadlineMs;
    while ((counting.get(`${dir}/%`) as number) < count) {
      if (Date.now() > deadline) throw new Error(`${dir}: fewer than ${count} files archived within ${deadlineMs} ms; service stderr: ${this.run.stderr}`);
      const exit = await Promise.race([this.run.exited, sleep(POLL_MS)]);
      if (exit) throw new Error(`the service exited (${JSON.stringify(exit)}) before ${dir} was archived: ${this.run.stderr}`);
    }
    const rows = this.db
      .prepare(`SELECT f.rel_path AS relPath, max(h.at) AS at FROM files f JOIN history h ON h.file_id = f.id WHERE h.to_state = 'archived' AND f.rel_path LIKE ? GROUP BY f.rel_path`)
      .all(`${dir}/%`) as { relPath: string; at: number }[];
    return new Map(rows.map((r) => [r.relPath, r.at]));
  }

  async stop(): Promise<void> {
    this.db.close();
    await this.run.stop();
  }
}

/** Writes `count` files of 4 KB of random bytes into a new directory. @returns their paths and relative keys. */
function stageSmallFiles(dir: string, count: number): { path: string; key: string }[] {
  mkdirSync(dir, { recursive: true });
  return Array.from({ length: count }, (_, i) => {
    const file = path.join(dir, `f${i}.dat`);
    writeFileSync(file, plainData(SMALL_FILE_BYTES));
    return { path: file, key: `f${i}.dat` };
  });
}

/** One tool's result over the runs: the run of median files/s. */
interface BurstResult {
  filesPerSecond: number;
  cpuPer1000: number;
}

function burstOf(files: number, timing: PeerTiming): BurstResult {
  return { filesPerSecond: files / timing.seconds, cpuPer1000: (timing.cpuSeconds / files) * 1000 };
}

/**
 * Scenario a (moto) or f (sink): per run, the same freshly staged files go up by each peer, then are renamed
 * into the watched directory (the service last, as the rename takes them away).
 */
export async function measureBurst(endpoint: Endpoint, settings: BenchSettings, figures: Figures, letter: 'a' | 'f'): Promise<Row[]> {
  const bucket = `burst-${endpoint.name}`;
  const n = settings.burstFiles;
  const service = await createService({ moto: endpoint, bucket, concurrency: settings.concurrency, settleSeconds: 1 });
  const results = new Map<string, BurstResult[]>();
  const add = (tool: string, result: BurstResult | undefined): void => {
    if (result) results.set(tool, [...(results.get(tool) ?? []), result]);
  };
  try {
    const watched = await Watched.start(service);
    for (let r = 0; r < settings.runs; r += 1) {
      const stage = path.join(service.dir, `stage-${r}`);
      const files = stageSmallFiles(stage, n);
      add('sdk', burstOf(n, await sdkPutLoop(endpoint, bucket, `sdk-${r}/`, files, settings.concurrency)));
      const rclone = await rcloneCopy(endpoint, stage, bucket, `rclone-${r}`, settings.concurrency);
      add('rclone', rclone && burstOf(n, rclone));
      const aws = await awsCp(endpoint, stage, bucket, `aws-${r}/`, true);
      add('aws', aws && burstOf(n, aws));
      const dir = `burst-${r}`;
      const target = await watched.newDir(dir);
      const cpuBefore = cpuSecondsOf(watched.run.pid);
      const started = Date.now();
      for (const file of files) renameSync(file.path, path.join(target, file.key));
      const archivedAt = await watched.archived(dir, n);
      const cpuSeconds = cpuSecondsOf(watched.run.pid) - cpuBefore;
      const seconds = (Math.max(...archivedAt.values()) - started) / 1000;
      add('sftppush', { filesPerSecond: n / seconds, cpuPer1000: (cpuSeconds / n) * 1000 });
    }
    await watched.stop();
  } finally {
    service.cleanup();
  }
  const medianOf = (tool: string): BurstResult | undefined => {
    const runs = results.get(tool);
    if (!runs) return undefined;
    const fps = median(runs.map((x) => x.filesPerSecond));
    return { filesPerSecond: fps, cpuPer1000: median(runs.map((x) => x.cpuPer1000)) };
  };
  const sdk = medianOf('sdk')!;
  const detail = `${n} x 4 KB, concurrency ${settings.concurrency}, ${endpoint.name}`;
  const labels: [string, string, string][] = [
    ['sftppush', 'sftppush watch (rename in -> archived in the ledger)', `service process CPU from /proc/PID/stat; ${detail}`],
    ['sdk', '@aws-sdk PutObject loop', `read + PUT per file, ${settings.concurrency} workers; CPU of the loop's process; ${detail}`],
    ['rclone', `rclone copy --transfers ${settings.concurrency}`, `CPU user+sys by GNU time; ${detail}`],
    ['aws', 'aws s3 cp --recursive', `its default 10 requests in flight; CPU user+sys by GNU time; ${detail}`],
  ];
  const rows: Row[] = [];
  for (const [tool, measure, toolDetail] of labels) {
    const result = medianOf(tool);
    if (!result) {
      rows.push({ measure, value: 'absent', detail: 'not installed' });
      continue;
    }
    figures.set(`${letter}.${tool}.filesPerSecond`, result.filesPerSecond);
    figures.set(`${letter}.${tool}.cpuPer1000`, result.cpuPer1000);
    const perCpuSecond = 1000 / result.cpuPer1000;
    rows.push({
      measure,
      value: `${Math.round(result.filesPerSecond)} files/s, ${result.cpuPer1000.toFixed(2)} CPU-s per 1000 files (${Math.round(perCpuSecond)} files per CPU-s)`,
      ratio: tool === 'sdk' ? 'reference' : `${ratio(result.filesPerSecond, sdk.filesPerSecond)} the SDK loop`,
      detail: toolDetail,
    });
  }
  return rows;
}

/** Scenario b: files written `latencyGapMs` apart into the watched directory, close-write to archived. */
export async function measureLatency(endpoint: Endpoint, settings: BenchSettings, figures: Figures): Promise<Row[]> {
  const service = await createService({ moto: endpoint, bucket: `latency-${endpoint.name}`, concurrency: settings.concurrency, settleSeconds: 1 });
  const p50s: number[] = [];
  const p99s: number[] = [];
  try {
    const watched = await Watched.start(service);
    for (let r = 0; r < settings.runs; r += 1) {
      const dir = `latency-${r}`;
      const target = await watched.newDir(dir);
      const closedAt = new Map<string, number>();
      const started = Date.now();
      for (let i = 0; i < settings.latencyFiles; i += 1) {
        await sleep(started + i * settings.latencyGapMs - Date.now());
        writeFileSync(path.join(target, `f${i}.dat`), plainData(SMALL_FILE_BYTES));
        closedAt.set(`${dir}/f${i}.dat`, Date.now());
      }
      const archivedAt = await watched.archived(dir, settings.latencyFiles);
      const latencies = [...closedAt].map(([relPath, at]) => archivedAt.get(relPath)! - at).sort((a, b) => a - b);
      p50s.push(percentile(latencies, 50));
      p99s.push(percentile(latencies, 99));
    }
    await watched.stop();
  } finally {
    service.cleanup();
  }
  figures.set(`b.${endpoint.name}.p50`, median(p50s));
  const detail = `${settings.latencyFiles} files of 4 KB written ${settings.latencyGapMs} ms apart; close -> archived in the ledger`;
  return [
    { measure: `sftppush watch latency on ${endpoint.name}, p50`, value: `${median(p50s)} ms`, detail },
    { measure: `sftppush watch latency on ${endpoint.name}, p99`, value: `${median(p99s)} ms`, detail },
  ];
}

/** Writes `bytes` of random content to `file` in 8 MiB writes (never the whole file in memory). */
export function writeLargeFile(file: string, bytes: number): void {
  const fd = openSync(file, 'w');
  const block = plainData(8 * 1024 * 1024);
  for (let written = 0; written < bytes; written += block.length) writeSync(fd, block, 0, Math.min(block.length, bytes - written));
  closeSync(fd);
}

/** Scenario c: one large file renamed into the watched directory (a fresh service per run: its own peak RSS). */
export async function measureLargeFile(endpoint: Endpoint, settings: BenchSettings, file: string, figures: Figures): Promise<Row[]> {
  const bucket = `large-${endpoint.name}`;
  const mb = settings.largeBytes / 1e6;
  const service = await createService({ moto: endpoint, bucket, concurrency: settings.concurrency, settleSeconds: 1 });
  const name = path.basename(file);
  try {
    const ours = (await medianRun(settings.runs, bySeconds, async (r) => {
      const watched = await Watched.start(service);
      const dir = `large-${r}`;
      const target = path.join(await watched.newDir(dir), name);
      const cpuBefore = cpuSecondsOf(watched.run.pid);
      const started = Date.now();
      renameSync(file, target);
      const archivedAt = await watched.archived(dir, 1);
      const timing = { seconds: (archivedAt.get(`${dir}/${name}`)! - started) / 1000, rssMb: peakRssMbOf(watched.run.pid), cpuSeconds: cpuSecondsOf(watched.run.pid) - cpuBefore };
      await watched.stop();
      renameSync(target, file);
      return timing;
    }))!;
    const aws = await medianRun(settings.runs, bySeconds, (r) => awsCp(endpoint, file, bucket, `aws-${r}/${name}`, false));
    const rclone = await medianRun(settings.runs, bySeconds, (r) => rcloneCopy(endpoint, file, bucket, `rclone-${r}`));
    figures.set('c.sftppush.mbPerSecond', mb / ours.seconds);
    figures.set('c.sftppush.rssMb', ours.rssMb);
    if (aws) figures.set('c.aws.mbPerSecond', mb / aws.seconds);
    const detail = `one file of ${Math.round(mb)} MB (random), ${endpoint.name}`;
    const row = (measure: string, timing: PeerTiming | undefined, how: string): Row =>
      timing
        ? {
            measure,
            value: `${(mb / timing.seconds).toFixed(1)} MB/s, ${timing.rssMb} MB peak RSS, ${timing.cpuSeconds.toFixed(1)} CPU-s`,
            ratio: aws && timing !== aws ? `${ratio(aws.seconds, timing.seconds)} aws s3 cp` : 'reference',
            detail: `${how}; ${detail}`,
          }
        : { measure, value: 'absent', detail: 'not installed' };
    return [
      row('sftppush watch (rename in -> archived)', ours, `peak RSS: the service's VmHWM; concurrency ${settings.concurrency}`),
      row('aws s3 cp', aws, 'its defaults (8 MB parts, 10 in flight)'),
      row('rclone copy', rclone, 'its defaults (5 MiB chunks, 4 in flight per file)'),
    ];
  } finally {
    service.cleanup();
  }
}
