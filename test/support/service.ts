// Test helper: runs the real `bin/sftppush watch` as a child process against a moto endpoint, collects its
// JSON log lines, and reads `bin/sftppush status --json` the way an operator would.
//
//   const moto = await startMoto();
//   const service = await createService({ moto, bucket: 'e2e' });   // temp dir, bucket, config.toml
//   const run = await service.start();                                // resolves once the watches are set
//   writeFileSync(path.join(service.targetDir, 'a.csv'), 'x');
//   await run.waitForLog('a.csv archived', (l) => l.msg === 'file archived' && l.path === 'a.csv');
//   assert.equal(await run.stop(), 0);                                 // SIGTERM, exit code
//   service.cleanup();
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before } from 'node:test';
import { listVersions, MOTO_ENV, startMoto, type MotoServer } from './moto.js';

const execFileAsync = promisify(execFile);

/** Compiled location is dist/test/support/service.js; bin/ is at the package root. */
export const SFTPPUSH_BIN = fileURLToPath(new URL('../../../bin/sftppush', import.meta.url));

const DEFAULT_DEADLINE_MS = 20_000;

/** One pino line from the service's stdout. */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

export interface StatusJson {
  counts: Record<'pending' | 'working' | 'archived' | 'retry' | 'quarantined' | 'gone', number>;
  oldestPendingSeconds: number;
  lastReconcile: string | null;
  /** The watcher's health (Watcher.health()) as recorded at the last pass. */
  watch: unknown;
  /** Counts per target (see LedgerReader.status). */
  targets: { target: string; counts: StatusJson['counts'] }[];
}

/** `status --json --failed`: the summary, the failing generations, and the after-archive actions that failed. */
export interface FailedJson extends StatusJson {
  failed: { relPath: string; state: string; lastError: string | null }[];
  failedAfterActions: { target: string; relPath: string; action: string; detail: string; failedAt: string }[];
}

/** `status --json PATH`: the ledger's story of one path (see LedgerReader.story). */
export interface StoryJson {
  generations: { id: number; relPath: string; generation: number; state: string; sha256: string | null; duplicateOf: number | null }[];
  history: { fileId: number; fromState: string | null; toState: string; detail: string | null }[];
  objects: { fileId: number; bucket: string; key: string; versionId: string | null; sha256: string }[];
}

export interface ServiceOptions {
  readonly moto: MotoServer;
  readonly bucket: string;
  readonly concurrency?: number;
  /** Short, so files the start-up scan finds fresh are taken quickly. */
  readonly settleSeconds?: number;
  /** Extra TOML lines for the [[targets]] table (e.g. a custom ignore list). */
  readonly targetToml?: string;
  /** Extra TOML lines for the [s3], [reconcile] and [upload] tables. */
  readonly s3Toml?: string;
  readonly reconcileToml?: string;
  readonly uploadToml?: string;
  /** Extra TOML lines for the [ledger] table (e.g. history_days). */
  readonly ledgerToml?: string;
  /** Leave the bucket uncreated (a test creates it later, or checks what a missing bucket does). */
  readonly noBucket?: boolean;
  /** Another endpoint than moto's (a fault proxy in front of it). */
  readonly endpoint?: string;
  /** Extra TOML at the end of the file, after [[targets]] (e.g. a `[metrics]` table). */
  readonly tailToml?: string;
}

export interface StartOptions {
  /** Extra environment for the child (e.g. the test-only SFTPPUSH_TEST_KILL_AT). */
  readonly env?: NodeJS.ProcessEnv;
  /** Resolve as soon as the process runs, without waiting for `sftppush watching` (for runs expected to fail). */
  readonly noWait?: boolean;
  /** --log-level of the run: debug unless given (a benchmark runs at the production default, info). */
  readonly logLevel?: 'debug' | 'info';
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A temp dir holding config.toml, the target and the ledger; start() may be called again after a stop. */
export interface Service {
  readonly dir: string;
  readonly configFile: string;
  readonly targetDir: string;
  readonly ledgerPath: string;
  readonly bucket: string;
  start(options?: StartOptions): Promise<RunningService>;
  status(): Promise<StatusJson>;
  failed(): Promise<FailedJson>;
  story(relPath: string): Promise<StoryJson>;
  /** Removes the temp dir (stop or kill every run first). */
  cleanup(): void;
}

export interface RunningService {
  readonly pid: number;
  /** Every log line so far, in order. */
  readonly logs: readonly LogLine[];
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  /** Waits (with a deadline) for a log line matching `match`, counting lines already received. */
  waitForLog(what: string, match: (line: LogLine) => boolean, deadlineMs?: number): Promise<LogLine>;
  /** Waits until at least `count` lines match. */
  waitForLogCount(what: string, match: (line: LogLine) => boolean, count: number, deadlineMs?: number): Promise<void>;
  /** Waits until `relPath` has had `count` outcomes (each generation ends as `file archived` or `file duplicate`). */
  waitForOutcomes(relPath: string, count?: number, deadlineMs?: number): Promise<void>;
  /** SIGTERM and wait: resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
  /** What the process wrote to stderr (the CLI's own error messages). */
  readonly stderr: string;
}

/** Creates the bucket (versioned), the temp dir, the target and the config. Paths in it are relative on purpose. */
export async function createService(options: ServiceOptions): Promise<Service> {
  if (!options.noBucket) await options.moto.createBucket(options.bucket);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-e2e-'));
  const configFile = path.join(dir, 'config.toml');
  const targetDir = path.join(dir, 'target');
  const ledgerPath = path.join(dir, 'var', 'ledger.db');
  fs.mkdirSync(targetDir);
  fs.writeFileSync(configFile, configToml(options));
  const runs: RunningService[] = [];
  return {
    dir,
    configFile,
    targetDir,
    ledgerPath,
    bucket: options.bucket,
    async start(startOptions = {}) {
      const run = await startService(configFile, startOptions);
      runs.push(run);
      return run;
    },
    status: async () => (await runCli(['status', '--json', '--config', configFile])) as StatusJson,
    failed: async () => (await runCli(['status', '--json', '--failed', '--config', configFile])) as FailedJson,
    story: async (relPath) => (await runCli(['status', '--json', '--config', configFile, relPath])) as StoryJson,
    cleanup() {
      for (const run of runs) {
        try {
          process.kill(run.pid, 'SIGKILL'); // a test that failed half-way must not leave a service behind
        } catch {
          // already exited
        }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function configToml(options: ServiceOptions): string {
  // Relative paths resolve against the config file's directory (DESIGN.md): this exercises that too.
  return [
    '[s3]',
    `bucket = "${options.bucket}"`,
    `endpoint = "${options.endpoint ?? options.moto.endpoint}"`,
    'force_path_style = true',
    options.s3Toml ?? '',
    '[ledger]',
    'path = "var/ledger.db"',
    options.ledgerToml ?? '',
    '[reconcile]',
    `settle_seconds = ${options.settleSeconds ?? 1}`,
    options.reconcileToml ?? '',
    '[upload]',
    `concurrency = ${options.concurrency ?? 4}`,
    options.uploadToml ?? '',
    '[[targets]]',
    'path = "target"',
    options.targetToml ?? '',
    options.tailToml ?? '',
    '',
  ].join('\n');
}

function childEnv(): NodeJS.ProcessEnv {
  return { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
}

/** Runs a CLI command that prints one JSON document and parses it; rejects with stderr on failure. */
async function runCli(args: readonly string[]): Promise<unknown> {
  const { stdout } = await execFileAsync(SFTPPUSH_BIN, args, { env: childEnv(), maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout);
}

/** Spawns `watch` and resolves once it logged that its watches are in place (files written after are seen). */
async function startService(configFile: string, options: StartOptions): Promise<RunningService> {
  const child = spawn(SFTPPUSH_BIN, ['watch', '--config', configFile, '--log-level', options.logLevel ?? 'debug'], {
    env: { ...childEnv(), ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const run = new ServiceRun(child);
  if (!options.noWait) await run.waitForLog('the service to start watching', (line) => line.msg === 'sftppush watching');
  return run;
}

class ServiceRun implements RunningService {
  readonly logs: LogLine[] = [];
  readonly exited: Promise<ExitInfo>;
  stderr = '';
  private partial = '';
  private exit: ExitInfo | undefined;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => this.onStdout(chunk));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-8000)));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error(`${SFTPPUSH_BIN} did not start: ${this.stderr}`);
    return this.child.pid;
  }

  async waitForLog(what: string, match: (line: LogLine) => boolean, deadlineMs = DEFAULT_DEADLINE_MS): Promise<LogLine> {
    let found: LogLine | undefined;
    await this.waitUntilLogs(what, () => (found = this.logs.find(match)) !== undefined, deadlineMs);
    return found!;
  }

  async waitForLogCount(what: string, match: (line: LogLine) => boolean, count: number, deadlineMs = DEFAULT_DEADLINE_MS): Promise<void> {
    await this.waitUntilLogs(what, () => this.logs.filter(match).length >= count, deadlineMs);
  }

  waitForOutcomes(relPath: string, count = 1, deadlineMs = DEFAULT_DEADLINE_MS): Promise<void> {
    return this.waitForLogCount(`${relPath} archived (${count} generation(s))`, isFileOutcome(relPath), count, deadlineMs);
  }

  async stop(): Promise<number | null> {
    if (!this.exit) this.child.kill('SIGTERM');
    const { code, signal } = await this.exited;
    if (signal !== null) throw new Error(`service ended by ${signal}, not by its own exit; stderr: ${this.stderr}`);
    return code;
  }

  async kill(): Promise<void> {
    if (!this.exit) this.child.kill('SIGKILL');
    await this.exited;
  }

  private onStdout(chunk: string): void {
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    for (const text of lines) {
      if (text.trim() === '') continue;
      try {
        this.logs.push(JSON.parse(text) as LogLine);
      } catch {
        this.logs.push({ level: 0, msg: `(not JSON) ${text}` });
      }
    }
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /** Re-checks `done` on every new log line or exit; fails with the recent log when the deadline passes. */
  private async waitUntilLogs(what: string, done: () => boolean, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    while (!done()) {
      if (this.exit) throw new Error(`service exited (${JSON.stringify(this.exit)}) while waiting for ${what}${this.describeTail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${this.describeTail()}`);
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.listeners.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, left);
        this.listeners.add(wake);
      });
    }
  }

  private describeTail(): string {
    const tail = this.logs.slice(-15).map((line) => JSON.stringify(line)).join('\n  ');
    return `\nlast log lines:\n  ${tail}\nstderr:\n${this.stderr}`;
  }
}

/** One moto for the suite, and every service the suite creates, cleaned up after it. */
export function motoForSuite(): { readonly moto: MotoServer; readonly services: Service[] } {
  const env = { moto: undefined as MotoServer | undefined, services: [] as Service[] };
  before(async () => {
    env.moto = await startMoto();
  });
  after(async () => {
    for (const service of env.services) service.cleanup();
    await env.moto?.stop();
  });
  return {
    get moto(): MotoServer {
      assert.ok(env.moto, 'moto is started before the tests');
      return env.moto;
    },
    services: env.services,
  };
}

/** A log line for one file's final outcome (`file archived` or `file duplicate`), by path. */
export function isFileOutcome(relPath?: string): (line: LogLine) => boolean {
  return (line) => (line.msg === 'file archived' || line.msg === 'file duplicate') && (relPath === undefined || line.path === relPath);
}

/**
 * What a bucket must hold at the end of a test, exactly: for each key, the contents of its versions. Tests
 * record every generation they cause here, then one check finds any missing, extra or repeated upload.
 */
export class ExpectedBucket {
  private readonly versions = new Map<string, Buffer[]>();
  private readonly outcomes = new Map<string, number>();
  /** Ledger generations caused so far: new versions plus duplicates. */
  generations = 0;

  constructor(
    private readonly client: S3Client,
    readonly bucket: string,
  ) {}

  /** One more generation that must become a new version; returns the outcome log lines `key` must now have. */
  addVersion(key: string, bytes: Buffer): number {
    this.versions.set(key, [...(this.versions.get(key) ?? []), bytes]);
    return this.addOutcome(key);
  }

  /** One more generation with content already archived: no new version. Returns the outcome lines expected. */
  addDuplicate(key: string): number {
    return this.addOutcome(key);
  }

  /** Every key holds exactly the expected versions (bytes and metadata); no other key exists. */
  async assertMatches(): Promise<void> {
    const stored = await listVersions(this.client, this.bucket);
    const byKey = new Map<string, typeof stored>();
    for (const version of stored) byKey.set(version.key, [...(byKey.get(version.key) ?? []), version]);
    assert.deepEqual([...byKey.keys()].sort(), [...this.versions.keys()].sort(), 'exactly the expected keys: none missing, none extra');
    for (const [key, contents] of this.versions) {
      const versions = byKey.get(key) ?? [];
      assert.equal(versions.length, contents.length, `${key}: ${versions.length} object versions, expected ${contents.length}`);
      const objects = await Promise.all(versions.map(async (v) => ({ isLatest: v.isLatest, ...(await this.get(key, v.versionId)) })));
      // Each content written is stored exactly once, and the latest version is the latest content.
      assert.deepEqual(objects.map((o) => sha256(o.body)).sort(), contents.map(sha256).sort(), `${key}: each content stored once`);
      const latest = objects.find((o) => o.isLatest);
      assert.ok(latest?.body.equals(contents.at(-1)!), `${key}: the latest version holds the latest content`);
      for (const { body, metadata } of objects) {
        assert.equal(metadata.sha256, sha256(body), `${key}: sha256 metadata matches the bytes`);
        assert.equal(decodeURI(metadata.source ?? ''), key, `${key}: source metadata names the relative path`);
      }
    }
  }

  private addOutcome(key: string): number {
    this.generations += 1;
    const count = (this.outcomes.get(key) ?? 0) + 1;
    this.outcomes.set(key, count);
    return count;
  }

  private async get(key: string, versionId: string): Promise<{ body: Buffer; metadata: Record<string, string> }> {
    const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key, VersionId: versionId }));
    return { body: Buffer.from((await response.Body?.transformToByteArray()) ?? []), metadata: response.Metadata ?? {} };
  }
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The last log lines and stderr of a run, for a failure message. */
export function describeLogs(run: RunningService): string {
  return `\nlog:\n  ${run.logs.slice(-20).map((line) => JSON.stringify(line)).join('\n  ')}\nstderr:\n${run.stderr}`;
}

/** The process's exit, or a failure naming what it should have done, with its log. */
export async function exitWithin(run: RunningService, deadlineMs: number, what: string): Promise<ExitInfo> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${deadlineMs} ms: ${what}${describeLogs(run)}`)), deadlineMs);
  });
  try {
    return await Promise.race([run.exited, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
