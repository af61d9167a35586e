import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { assertTargetsExist, type Config, type TargetConfig } from './config.js';
import { describeCause } from './errors.js';
import { Ledger } from './ledger/ledger.js';
import { Observer } from './observe/observer.js';
import { archiveClaimed } from './pipeline/archive-file.js';
import { nodeSourceFs } from './pipeline/source-file.js';
import { WorkerPool } from './pipeline/worker-pool.js';
import { Reconciler } from './reconcile/reconciler.js';
import { createS3Client, S3Store } from './s3/s3-store.js';
import { Inotify } from './watch/inotify.js';
import { Watcher } from './watch/watcher.js';

/** migrations/ ships next to dist/: two levels up from dist/src/app.js. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** How long SIGTERM waits for files in hand before giving up (their rows recover at the next start). */
const SHUTDOWN_GRACE_MS = 30_000;

export function openLedger(config: Pick<Config, 'ledger'>): Ledger {
  return Ledger.open(config.ledger.path, { migrationsDir: MIGRATIONS_DIR });
}

/**
 * When a process started, in clock ticks since boot (field 22 of /proc/PID/stat): with the pid it names
 * one process, even after the pid is reused.
 */
export function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count fields after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** This process as a claim owner: `pid:<n>:<start ticks>`. */
export function ownerId(pid = process.pid): string {
  return `pid:${pid}:${processStartTicks(pid) ?? '?'}`;
}

/**
 * A claim owner's rows are abandoned once that very process (pid and start time) is gone. When a start
 * time cannot be read (/proc mounted hidepid, another user), only a pid that no longer exists counts as
 * gone: taking a live process's row would upload twice.
 */
export function isOwnerAlive(owner: string): boolean {
  const match = /^pid:(\d+):(\S+)$/.exec(owner);
  if (!match) return false;
  const pid = Number(match[1]);
  if (pid === process.pid) return false; // our pid now: a previous incarnation's
  const startTicks = processStartTicks(pid);
  if (startTicks !== undefined && match[2] !== '?') return startTicks === match[2];
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** The parts every command that archives needs, wired together. The watcher is added by `watch` only. */
interface Core {
  ledger: Ledger;
  observer: Observer;
  pool: WorkerPool;
  reconciler: Reconciler;
  destroyClient: () => void;
  checkCredentials: () => Promise<void>;
}

function buildCore(config: Config, log: Logger, onFatal: (error: unknown) => void): Core {
  assertTargetsExist(config);
  const ledger = openLedger(config);
  const client = createS3Client({
    endpoint: config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: config.s3.forcePathStyle,
    maxSockets: config.upload.concurrency * 2,
  });
  const store = new S3Store(client);
  const targets = new Map<string, TargetConfig>(config.targets.map((t) => [t.path, t]));
  // Observer and pool refer to each other; the observer only calls wake() once the pool exists.
  const observer = new Observer({ ledger, source: nodeSourceFs, log, onQueued: () => pool.wake(), onFatal });
  const pool: WorkerPool = new WorkerPool({
    ledger,
    log,
    now: Date.now,
    owner: ownerId(),
    concurrency: config.upload.concurrency,
    onFatal,
    archive: (claim) =>
      archiveClaimed(claim, {
        ledger,
        store,
        source: nodeSourceFs,
        log,
        now: Date.now,
        random: Math.random,
        settings: { ...config.upload, storageClass: config.s3.storageClass },
        targetFor: (targetPath) => targets.get(targetPath),
        reobserve: (target, relPath) => void observer.observePath(target, relPath),
      }),
  });
  const reconciler = new Reconciler({
    targets: config.targets,
    observer,
    ledger,
    log,
    settleMs: config.reconcile.settleSeconds * 1000,
    now: Date.now,
    isOwnerAlive,
  });
  return {
    ledger,
    observer,
    pool,
    reconciler,
    destroyClient: () => client.destroy(),
    // Resolve once at start so a missing credential is one clear line, not a warning per file. Values never logged.
    checkCredentials: async () => {
      try {
        await client.config.credentials();
      } catch (error) {
        log.error(
          { error: describeCause(error) },
          'no AWS credentials in the default chain (env, profile, instance role): uploads will retry until there are',
        );
      }
    },
  };
}

/**
 * `sftppush watch`: watches, scans at start, rescans on schedule and after overflow, archives until SIGTERM.
 * @returns the process exit code.
 */
export async function runWatch(config: Config, log: Logger): Promise<number> {
  let fail: (error: unknown) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => (fail = reject));
  const core = buildCore(config, log, (error) => fail(error));
  const { ledger, observer, pool, reconciler } = core;
  const watcher = new Watcher({
    targets: config.targets,
    observer,
    log,
    createInotify: (onEvents) => new Inotify(onEvents),
    onRescanNeeded: (reason) => reconciler.scanInBackground(reason),
    settleMs: config.reconcile.settleSeconds * 1000,
    now: Date.now,
  });
  // Watches first, then the scan: a file landing in between is seen by one or the other, never by neither.
  watcher.start();
  pool.start();
  log.info(
    { targets: config.targets.map((t) => t.path), watches: watcher.watchCount, bucket: config.s3.bucket, config: config.source },
    'sftppush watching',
  );
  const stopped = waitForSignal(log);
  warnAboutRuntime(log);
  await core.checkCredentials();
  try {
    const started = await Promise.race([reconciler.scan('startup').then(() => true), stopped.then(() => false), fatal]);
    if (started) {
      reconciler.startSchedule(config.reconcile.schedule);
      await Promise.race([stopped, fatal]);
    }
    return 0;
  } catch (error) {
    log.fatal({ error }, 'stopping after a fatal error');
    return 1;
  } finally {
    reconciler.stop();
    watcher.close();
    observer.close();
    await shutdown(pool, log);
    core.destroyClient();
    ledger.close();
  }
}

/**
 * `sftppush reconcile`: one scan of every target, then archive everything queued, then exit.
 * Files younger than `settle_seconds` are left for the service (or the next run).
 * @returns 0 when everything queued was archived, 1 when some files are left to retry.
 */
export async function runReconcileOnce(config: Config, log: Logger): Promise<number> {
  let fatalError: unknown;
  const core = buildCore(config, log, (error) => (fatalError = error));
  const { ledger, observer, pool, reconciler } = core;
  try {
    warnAboutRuntime(log);
    await core.checkCredentials();
    pool.start();
    const tally = await reconciler.scan('command');
    observer.close(); // a one-shot run does not wait for fresh files to settle
    await pool.drained();
    const { counts } = ledger.status();
    log.info({ ...tally, retry: counts.retry, pending: counts.pending }, 'reconcile finished');
    if (fatalError !== undefined) return 1;
    // Left retrying, or still being written: not archived by this run.
    return counts.retry + counts.pending > 0 ? 1 : 0;
  } finally {
    await pool.stop();
    core.destroyClient();
    ledger.close();
  }
}

/** Node 20 is past end of life; say so once, as a log line (the SDK's own warning is multi-line stderr). */
function warnAboutRuntime(log: Logger): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    log.warn({ node: process.version }, 'Node.js 20 is past end of life: run sftppush on Node 24 LTS (see README)');
  }
}

function waitForSignal(log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      log.info({ signal }, 'stopping: finishing files in hand');
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      // A second signal means "now": rows still working are recovered at the next start.
      const now = (): never => process.exit(1);
      process.once('SIGTERM', now);
      process.once('SIGINT', now);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

async function shutdown(pool: WorkerPool, log: Logger): Promise<void> {
  const timer = setTimeout(() => {
    log.error({ busy: pool.busy }, 'shutdown grace period over: exiting with files in hand');
    process.exit(1);
  }, SHUTDOWN_GRACE_MS);
  timer.unref();
  await pool.stop();
  clearTimeout(timer);
}

export function resolveStatusPath(config: Pick<Config, 'targets'> | undefined, arg: string): {
  relPath: string;
  target?: string;
} {
  if (!path.isAbsolute(arg)) return { relPath: arg.split(path.sep).join('/') };
  for (const target of config?.targets ?? []) {
    const rel = path.relative(target.path, arg);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return { relPath: rel.split(path.sep).join('/'), target: target.path };
  }
  return { relPath: arg };
}
