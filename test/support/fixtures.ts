// Shared helpers for integration tests: real temp directories, a real ledger file, a silent logger, and a
// wait-until-with-deadline so tests wait on conditions rather than on fixed sleeps.
import fs from 'node:fs';
import { Writable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino, type Logger } from 'pino';
import type { TargetConfig } from '../../src/config.js';
import { Ledger } from '../../src/ledger/ledger.js';
import type { FileStat } from '../../src/ledger/observation.js';
import type { ArchiveSettings } from '../../src/pipeline/archive-file.js';
import { toSourceStat } from '../../src/source/source-fs.js';

/** The repository's migrations/: dist/test/support/ is three levels below the repository root. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

/** Logs nothing: outcomes are asserted through the ledger and S3, not through log lines. */
export const silentLog: Logger = pino({ level: 'silent' });

/** A fresh directory under the system temp dir, removed when the test (or suite) ends. */
export function tempDir(t: Pick<TestContext, 'after'>, label = 'sftppush'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${label}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A clock the test moves by hand, so backoff and ages are exact. */
export class ManualClock {
  constructor(public ms = Date.parse('2030-01-01T00:00:00Z')) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

/** Opens a real SQLite ledger in `dir` with the repository's migrations; closed when the test ends. */
export function openTestLedger(
  t: Pick<TestContext, 'after'>,
  dir: string,
  now?: () => number,
  file = 'ledger.db',
  maxWaitMs?: number,
): Ledger {
  const ledger = Ledger.open(path.join(dir, file), { migrationsDir: MIGRATIONS_DIR, ...(now ? { now } : {}), ...(maxWaitMs ? { maxWaitMs } : {}) });
  t.after(() => ledger.close());
  return ledger;
}

/** A target as loadConfig would build it, with test defaults. */
export function targetConfig(overrides: Partial<TargetConfig> & Pick<TargetConfig, 'path'>): TargetConfig {
  return {
    ignore: [],
    bucket: 'sftppush-test',
    prefix: '',
    quietMs: 0,
    extract: true,
    keepArchive: false,
    after: { kind: 'keep' },
    afterKey: 'upload.after',
    ...overrides,
  };
}

const MIB = 1024 * 1024;

/** A worker's settings as loadConfig's defaults would build them, smaller thresholds, with `overrides`. */
export function archiveSettings(overrides: Partial<ArchiveSettings> = {}): ArchiveSettings {
  return {
    concurrency: 4,
    multipartThresholdBytes: 5 * MIB,
    partSizeBytes: 5 * MIB,
    maxBackoffSeconds: 60,
    objectOptions: {},
    quarantinePrefix: '_quarantine/',
    archiveLimits: { maxTotalBytes: 1024 * MIB, maxMembers: 10_000, maxRatio: 200, maxMemberBytes: 1024 * MIB },
    settleMs: 30_000,
    ...overrides,
  };
}

/** The ledger's identity of a path (size, mtime, inode, ctime), as the watcher and scanner would observe it. */
export function statOf(file: string): FileStat {
  const { sizeBytes, mtimeMs, inode, ctimeNs } = toSourceStat(fs.lstatSync(file, { bigint: true }));
  return { sizeBytes, mtimeMs, inode, ctimeNs };
}

/** Writes `content` at `relPath` under `root` (creating parent directories) and returns the absolute path. */
export function writeFile(root: string, relPath: string, content: string | Buffer): string {
  const file = path.join(root, relPath);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** Deterministic pseudo-random bytes (no two 4-byte blocks alike), so a large file's parts all differ. */
export function patternBytes(size: number, seed = 1): Buffer {
  const buffer = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let offset = 0; offset + 4 <= size; offset += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buffer.writeUInt32LE(x >>> 0, offset);
  }
  return buffer;
}

/**
 * Polls `probe` until it returns a value other than undefined, or fails naming `what` (and what `describe`
 * says of the last state) once `deadlineMs` passes. Tests wait on conditions, never on a guessed sleep.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { deadlineMs?: number; intervalMs?: number; describe?: () => string } = {},
): Promise<T> {
  const deadlineMs = options.deadlineMs ?? 20_000;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${options.describe ? `: ${options.describe()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 20));
  }
}

/** waitFor() for a condition that simply holds or not. */
export async function waitUntil(
  what: string,
  predicate: () => boolean | Promise<boolean>,
  deadlineMs = 10_000,
  pollMs = 20,
): Promise<void> {
  await waitFor(what, async () => ((await predicate()) ? true : undefined), { deadlineMs, intervalMs: pollMs });
}

/** Rejects with a clear message if `promise` does not settle within `deadlineMs` (a hang fails fast). */
export async function withDeadline<T>(what: string, promise: Promise<T>, deadlineMs = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${deadlineMs} ms waiting for ${what}`)), deadlineMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** One pino line as an object. */
export type LogRecord = { level: number; msg: string } & Record<string, unknown>;

/** A pino destination that keeps every line as an object, so tests can assert on what operators see. */
export function captureLines(into: LogRecord[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') into.push(JSON.parse(line) as LogRecord);
      callback();
    },
  });
}
