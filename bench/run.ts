/**
 * Foundation benchmarks (the full suite is its own issue): against one moto_server on loopback,
 *  - close-write -> archived latency for 4 KB files written one at a time (p50/p95/p99 over 200),
 *  - throughput for a burst of 2000 x 4 KB files through `bin/sftppush watch`,
 *  - the same 2000 objects PUT by a plain @aws-sdk loop at the same concurrency (moto's ceiling).
 * Writes BENCHMARKS.md. Run: `make build && npm run bench` (or `node dist/bench/run.js [--files N]`).
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startMoto, type MotoServer } from '../test/support/moto.js';
import { createService, isFileOutcome, type LogLine, type RunningService, type Service } from '../test/support/service.js';

const CONCURRENCY = 8;
const FILE_BYTES = 4096;
const LATENCY_FILES = 200;
const BURST_FILES = Number(process.argv[process.argv.indexOf('--files') + 1]) || 2000;

interface Row {
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

async function measurePlainPutLoop(moto: MotoServer, bucket: string, when: string): Promise<Row> {
  const bodies = Array.from({ length: BURST_FILES }, () => randomBytes(FILE_BYTES));
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < BURST_FILES; i = next++) {
        await moto.client.send(new PutObjectCommand({ Bucket: bucket, Key: `plain-${when}/f${i}.dat`, Body: bodies[i] }));
      }
    }),
  );
  const seconds = (Date.now() - started) / 1000;
  return {
    measure: `plain @aws-sdk PutObject loop, ${when} sftppush`,
    value: `${Math.round(BURST_FILES / seconds)} files/s`,
    detail: `${BURST_FILES} x 4 KB from memory, ${CONCURRENCY} in flight, same endpoint`,
  };
}

function renderTable(rows: readonly Row[]): string {
  const header = '| measure | result | conditions |\n| --- | --- | --- |';
  return [header, ...rows.map((r) => `| ${r.measure} | ${r.value} | ${r.detail} |`)].join('\n');
}

async function main(): Promise<void> {
  const moto = await startMoto();
  const service = await createService({ moto, bucket: 'bench', concurrency: CONCURRENCY, settleSeconds: 1 });
  try {
    const fs = await import('node:fs');
    fs.mkdirSync(path.join(service.targetDir, 'latency'));
    fs.mkdirSync(path.join(service.targetDir, 'burst'));
    // The baseline runs before and after: moto's speed drifts, and the two bracket sftppush's run.
    const before = await measurePlainPutLoop(moto, service.bucket, 'before');
    const run = await service.start();
    const rows = [...(await measureLatency(service, run)), before, await measureBurst(service, run)];
    await run.stop();
    rows.push(await measurePlainPutLoop(moto, service.bucket, 'after'));
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

await main();
