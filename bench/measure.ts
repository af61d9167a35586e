/** What every benchmark scenario shares: running commands, timing them, reading a process's CPU and RSS, medians. */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** One line of a result table. `ratio` compares it with the scenario's reference (empty for the reference). */
export interface Row {
  measure: string;
  value: string;
  detail: string;
  ratio?: string;
}

/** Sizes and repetitions of one bench run (`--quick`: one run of small sizes). */
export interface BenchSettings {
  readonly runs: number;
  readonly concurrency: number;
  /** Scenario a and f: files per burst. */
  readonly burstFiles: number;
  /** Scenario b: files per run, written this far apart. */
  readonly latencyFiles: number;
  readonly latencyGapMs: number;
  /** Scenario c and e: the one large file. */
  readonly largeBytes: number;
  /** Scenario d: directories x files per directory. */
  readonly treeDirs: number;
  readonly treeFilesPerDir: number;
  /** Scenario g. */
  readonly backfillFiles: number;
  readonly archiveMembers: number;
}

/**
 * Runs a command to its end, never blocking this process's event loop (moto_server, our child, logs every
 * request to a pipe this process drains: a spawnSync stalls moto once that pipe is full).
 * @returns its exit code, stdout and stderr; code 127 when the command is not installed.
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
  try {
    const code = await new Promise<number | null>((resolve, reject) => child.once('close', resolve).once('error', reject));
    return { code, stdout, stderr };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { code: 127, stdout, stderr: `${command}: not installed` };
    throw error;
  }
}

/** Wall seconds, peak RSS and CPU seconds (user + system) of one process run, as GNU time reports them. */
export interface Timing {
  seconds: number;
  rssMb: number;
  cpuSeconds: number;
}

/** Runs a command under GNU time. @throws when it exits non-zero (with its stderr). */
export async function timed(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<Timing> {
  const result = await run('/usr/bin/time', ['-f', '%e %M %U %S', command, ...args], env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr.slice(-2000)}`);
  const [seconds = 'NaN', kb = 'NaN', user = 'NaN', system = 'NaN'] = result.stderr.trim().split('\n').at(-1)!.split(' ');
  return { seconds: Number(seconds), rssMb: Math.round(Number(kb) / 1024), cpuSeconds: Number(user) + Number(system) };
}

/** Whether `command --version` (or `version`) runs: a peer that is not installed is reported absent. */
export async function versionOf(command: string, args: readonly string[] = ['--version']): Promise<string | undefined> {
  const result = await run(command, args).catch(() => ({ code: 127, stdout: '', stderr: '' }));
  if (result.code !== 0) return undefined;
  return `${result.stdout}${result.stderr}`.trim().split('\n')[0];
}

/** The median of numbers (the lower middle of an even count). */
/**
 * `bytes` of random data that sftppush stores as they are: its first byte is '.', so it never starts with a
 * gzip (1f 8b) or zip (PK) signature. Plain random bytes do, one file in 65,536 for gzip: in a 10,000-file
 * backfill that file was classified as a corrupt archive and quarantined, and the run exited 1.
 */
export function plainData(bytes: number): Buffer {
  const data = randomBytes(bytes);
  data[0] = 0x2e;
  return data;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

/** The value at percentile `p` (0-100) of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * The run whose `key` is the median among `runs` runs of `measure` (one after another).
 * @returns undefined when the first run is: the tool is absent.
 */
export async function medianRun<T>(runs: number, key: (result: T) => number, measure: (index: number) => Promise<T | undefined>): Promise<T | undefined> {
  const results: T[] = [];
  for (let i = 0; i < runs; i += 1) {
    const result = await measure(i);
    if (result === undefined) return undefined;
    results.push(result);
  }
  const middle = median(results.map(key));
  return results.find((r) => key(r) === middle);
}

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ: 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) a live process has used so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Peak resident set (VmHWM) of a live process, in MB. */
export function peakRssMbOf(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Math.round(Number(kb) / 1024);
}

/** `x` as a ratio of `reference`, two decimals: "1.23x". */
export function ratio(x: number, reference: number): string {
  return Number.isFinite(x) && Number.isFinite(reference) && reference > 0 ? `${(x / reference).toFixed(2)}x` : 'n/a';
}

/** The key medianRun sorts timings by. */
export const bySeconds = (timing: { readonly seconds: number }): number => timing.seconds;
