import type { S3Client } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { assertTargetsExist, prepareAfterDirectories, subtreePath, type Config, type TargetConfig, type TargetSubtree } from './config.js';
import { ConfigError, describeCause, findCause, InterruptedError, NotS3AnswerError, SftppushError, StoreError } from './errors.js';
import { abortAbandonedUploads } from './pipeline/abandoned-uploads.js';
import { addKillPoints, createCheckpoint, KILL_AT_VARIABLE, type Checkpoint } from './kill-points.js';
import { InstanceLock } from './ledger/instance-lock.js';
import type { MetricsEndpoint } from './metrics/endpoint.js';
import { noMetrics, type Metrics } from './metrics/metrics.js';
import { Ledger, type ScopeSubtree } from './ledger/ledger.js';
import { LedgerReader, type FileRow } from './ledger/reader.js';
import { formatOwner, isOwnerAlive, type OwnerRole, type ProcessProbe } from './ledger/ownership.js';
import { Observer } from './observe/observer.js';
import { carryOutAfterAction } from './pipeline/after-action.js';
import { parseAfterAction } from './pipeline/after-plan.js';
import { archiveClaimed, type ArchiveOutcome } from './pipeline/archive-file.js';
import { nodeSourceDirs, nodeSourceFs } from './source/source-fs.js';
import { WorkerPool } from './pipeline/worker-pool.js';
import { Reconciler, type PassScope } from './reconcile/reconciler.js';
import { escapeControl, formatFailures, formatScanSkips, formatStory, formatSummary } from './status.js';
import { startProgress } from './reconcile/progress.js';
import type { ReconcileSummary } from './reconcile/summary.js';
import { verifyArchived } from './reconcile/verify.js';
import type { ObjectStore } from './s3/object-store.js';
import { checkBucketVersioning } from './s3/versioning-check.js';
import { OutageReportingStore, S3Outage } from './s3/outage.js';
import type { S3Store } from './s3/s3-store.js';
import { WriteModes } from './s3/write-mode.js';
import { Inotify } from './watch/inotify.js';
import { Watcher } from './watch/watcher.js';

/** migrations/ ships next to dist/: two levels up from dist/src/app.js. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** How often a running `watch` checks that its ledger file is still the one it opened (also at every pass). */
const LEDGER_CHECK_MS = 5000;

/** The watcher's health is written to the ledger between passes at most this often (a flapping root). */
const WATCH_HEALTH_RECORD_MS = 1000;

/** History rows one pass prunes at most: a first prune of years of history goes a pass at a time. */
const HISTORY_PRUNE_BATCH = 50_000;

export function openLedger(config: Pick<Config, 'ledger'> & Partial<Pick<Config, 'upload'>>): Ledger {
  return Ledger.open(config.ledger.path, {
    migrationsDir: MIGRATIONS_DIR,
    // The longest wait the service sets: the retry backoff's cap, or the requeue wait of a file being written.
    maxWaitMs: Math.max(config.upload?.maxBackoffSeconds ?? 0, 60) * 1000,
  });
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

/** This process as a claim owner (see ledger/ownership.ts). */
export function ownerId(role: OwnerRole, pid = process.pid): string {
  return formatOwner(pid, processStartTicks(pid), role);
}

/**
 * The facts ownership decisions need, read from /proc and kill(0).
 * @param otherWatchHoldsLock whether a `watch` other than this process holds the ledger's instance lock.
 */
export function processProbe(self: string, otherWatchHoldsLock: () => boolean): ProcessProbe {
  return {
    self,
    startTicks: processStartTicks,
    pidExists(pid) {
      try {
        process.kill(pid, 0);
        return true;
      } catch (error) {
        return (error as NodeJS.ErrnoException).code !== 'ESRCH';
      }
    },
    otherWatchHoldsLock,
  };
}

/** The S3 side of a process, connected (see Core.s3). */
interface S3Side {
  /** The store the pipeline uses: every request's fate goes to the outage log. */
  readonly store: ObjectStore;
  /** The same store, for multipart cleanup at start and the abort at stop. */
  readonly s3Store: S3Store;
  readonly writeModes: WriteModes;
  /** Asks S3 something cheap, so an idle service knows whether it answers (S3Store.ping). Never throws. */
  readonly ping: (timeoutMs: number) => Promise<void>;
}

/** The parts every command that archives needs, wired together. The watcher is added by `watch` only. */
interface Core {
  ledger: Ledger;
  observer: Observer;
  pool: WorkerPool;
  reconciler: Reconciler;
  /** What every reconcile pass does around its scan: set by `watch` once its watcher exists. */
  passHooks: { beforePass?: () => void; afterPass?: () => void };
  /**
   * The S3 side, made at the first call (later calls share it): the SDK loaded, the credentials resolved
   * and, unless in a dry run, the write mode of each bucket probed. A one-shot pass that finds nothing to
   * upload or verify never calls it: loading the SDK was a third of a no-change pass's time.
   * @throws ConfigError (conditional_writes = true, and the endpoint does not honour it).
   */
  s3: () => Promise<S3Side>;
  /** Outcomes of the archives this process ran, by kind. */
  outcomes: Record<ArchiveOutcome, number>;
  /** Generations this process queued (or made claimable again). */
  queued: { count: number };
  /** Bytes this process wrote to S3 (objects it uploaded; not those it found there already). */
  uploaded: { bytes: number };
  /** Closes the S3 client, if one was made. */
  closeS3: () => void;
  /**
   * Start-up, before any worker claims: rows whose owners are verifiably gone are pending again. A one-shot
   * pass calls it again for the rows another process held and left by stopping. @returns the rows recovered.
   */
  recover: () => number;
  /** Whether a row's owner is another process that may still be working on it (ledger/ownership.ts). */
  isLiveOther: (rowOwner: string) => boolean;
  /**
   * At start and after every pass: carries out the after-archive actions (delete, move) a stopped process
   * recorded as due but did not finish (a crash between the archive's commit and the unlink or rename), and
   * tries again those that failed (a taken name, EACCES, EXDEV the operator may have fixed). Each is a step of
   * its file's story that says so.
   */
  finishDueAfterActions: (when: 'at start' | 'after a pass') => Promise<void>;
  /** Where the core reports what it does (noMetrics unless `[metrics]` is on). */
  metrics: Metrics;
  /** Start-up: aborts the multipart uploads processes that are gone left open (pipeline/abandoned-uploads.ts). */
  abortAbandonedUploads: () => Promise<void>;
}

interface CoreOptions {
  readonly role: OwnerRole;
  /** A one-shot pass's scope (reconcile --since --verify --dry-run); scheduled passes see everything. */
  readonly scope?: PassScope;
  /** Overrides reconcile.settle_seconds (reconcile --settle), ms. */
  readonly settleMs?: number | undefined;
  /** Whether a `watch` other than this process holds the instance lock (false for `watch` itself). */
  readonly otherWatchHoldsLock: () => boolean;
  readonly onFatal: (error: unknown) => void;
  readonly metrics: Metrics;
}

function buildCore(config: Config, log: Logger, options: CoreOptions): Core {
  const { onFatal, metrics } = options;
  const ledger = openLedger(config);
  const checkpoint = testKillPoints(log);
  const owner = ownerId(options.role);
  const dryRun = options.scope?.dryRun ?? false;
  let client: S3Client | undefined;
  let s3Side: Promise<S3Side> | undefined;
  const connectS3 = async (): Promise<S3Side> => {
    const { createS3Client, S3Store } = await import('./s3/s3-store.js');
    const sdkLog = log.child({ component: 'aws-sdk' });
    client = createS3Client({
      endpoint: config.s3.endpoint,
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      maxSockets: config.upload.concurrency * 2,
      // The SDK's own warnings (a stream it cannot retry) go to pino, never to the console. Its per-request info
      // and error lines are dropped: every failure reaches our code, which logs it once with its meaning.
      warn: (detail) => sdkLog.warn({ detail }, 'AWS SDK warning'),
      onAttempt: (attempt) => metrics.s3Attempt(attempt),
      requestTimeoutMs: config.upload.requestTimeoutMs,
    });
    addKillPoints(client, checkpoint);
    const s3Store = new S3Store(client, {
      opened: (upload) => ledger.recordOpenUpload({ ...upload, owner }),
      closed: (uploadId) => ledger.forgetOpenUpload(uploadId),
    });
    const store = new OutageReportingStore(s3Store, new S3Outage(log, Date.now));
    const prefixOf = new Map(config.targets.map((t) => [t.bucket, t.prefix]));
    const [pingBucket, pingPrefix] = [...prefixOf][0] ?? [config.s3.bucket, config.s3.prefix];
    const ping = (timeoutMs: number): Promise<void> => s3Store.ping(pingBucket, pingPrefix, timeoutMs);
    const writeModes = new WriteModes({
      setting: config.s3.conditionalWrites,
      probe: (bucket) => s3Store.probeConditionalWrites(bucket, prefixOf.get(bucket) ?? ''),
      log,
      source: config.source,
    });
    // Resolve once so a missing credential is one clear line, not a warning per file. Values never logged.
    try {
      await client.config.credentials();
    } catch (error) {
      log.error(
        { error: describeCause(error) },
        'no AWS credentials in the default chain (env, profile, instance role): uploads will retry until there are',
      );
    }
    // A dry run writes nothing: no probe (it may write where the header is ignored).
    if (dryRun) return { store, s3Store, writeModes, ping };
    // The service's start-up checks come first: a missing or denied bucket stops it before anything else is
    // asked of that bucket (whose failures would read as passing trouble: "cannot read the versioning now").
    // Asked of the store itself: S3Outage's "files wait and retry" would be wrong about a service that stops here.
    if (options.role === 'watch') await assertBucketsUsable(s3Store, config, log);
    // @throws VersioningRequiredError: a target deletes or moves sources into a bucket without versioning.
    await checkBucketVersioning(config.targets, (bucket) => s3Store.versioning(bucket), log);
    for (const bucket of prefixOf.keys()) {
      try {
        await writeModes.modeFor(bucket);
      } catch (error) {
        if (!(error instanceof StoreError)) throw error;
        log.warn({ bucket, error: error.message }, 'cannot probe the endpoint for conditional writes now: will probe at the first write');
      }
    }
    return { store, s3Store, writeModes, ping };
  };
  const s3 = (): Promise<S3Side> => (s3Side ??= connectS3());
  const uploaded = { bytes: 0 };
  const targets = new Map<string, TargetConfig>(config.targets.map((t) => [t.path, t]));
  // Observer and pool refer to each other; the observer only calls wake() once the pool exists.
  const queued = { count: 0 };
  const observer = new Observer({
    ledger,
    source: nodeSourceFs,
    dirs: nodeSourceDirs,
    log,
    settleMs: options.settleMs ?? config.reconcile.settleSeconds * 1000,
    now: Date.now,
    onQueued: (target) => {
      queued.count += 1;
      metrics.fileQueued(target.path);
      pool.wake();
    },
    onFatal,
    dryRun: options.scope?.dryRun ?? false,
  });
  const outcomes: Record<ArchiveOutcome, number> = { archived: 0, duplicate: 0, requeued: 0, retry: 0, gone: 0, quarantined: 0 };
  const pool: WorkerPool = new WorkerPool({
    ledger,
    log,
    now: Date.now,
    owner,
    concurrency: config.upload.concurrency,
    onFatal,
    checkpoint,
    archive: async (claim) => {
      let connected: S3Side;
      try {
        connected = await s3();
      } catch (error) {
        // S3 refuses the configuration: give the row back (it was claimed, not attempted) and stop.
        ledger.requeue(claim, describeCause(error), Date.now());
        throw error;
      }
      const { store, writeModes } = connected;
      const outcome = await archiveClaimed(claim, {
        ledger,
        store,
        source: nodeSourceFs,
        log,
        now: Date.now,
        random: Math.random,
        settings: {
          ...config.upload,
          objectOptions: config.s3.objectOptions,
          quarantinePrefix: config.s3.quarantinePrefix,
          archiveLimits: config.archive,
          settleMs: options.settleMs ?? config.reconcile.settleSeconds * 1000,
        },
        targetFor: (targetPath) => targets.get(targetPath),
        reobserve: (target, relPath) => void observer.observePath(target, relPath),
        writeMode: (bucket) => writeModes.modeFor(bucket),
        checkpoint,
        isBeingWritten: (target, relPath) => observer.isBeingWritten(target, relPath),
        onUploaded: (bytes, durationMs) => {
          uploaded.bytes += bytes;
          metrics.objectUploaded(claim.target, bytes, durationMs);
        },
      });
      outcomes[outcome] += 1;
      metrics.fileFinished(claim.target, outcome);
      return outcome;
    },
  });
  const passHooks: Core['passHooks'] = {};
  const reconciler = new Reconciler({
    targets: config.targets,
    observer,
    dirs: nodeSourceDirs,
    ledger,
    log,
    now: Date.now,
    beforePass: () => passHooks.beforePass?.(),
    afterPass: (pass) => {
      metrics.reconcilePassFinished(pass);
      passHooks.afterPass?.();
    },
    scope: options.scope,
  });
  const probe = processProbe(owner, options.otherWatchHoldsLock);
  return {
    ledger,
    observer,
    pool,
    reconciler,
    passHooks,
    s3,
    outcomes,
    queued,
    uploaded,
    metrics,
    closeS3: () => client?.destroy(),
    recover() {
      // A dry run changes no state. Otherwise only rows whose owner is verifiably gone: never a live process's, never our own.
      if (dryRun) return 0;
      const recovered = ledger.recoverAbandoned((rowOwner) => isOwnerAlive(rowOwner, probe));
      if (recovered > 0) log.warn({ recovered }, 'rows left working by a stopped process are pending again');
      return recovered;
    },
    isLiveOther: (rowOwner) => rowOwner !== owner && isOwnerAlive(rowOwner, probe),
    async finishDueAfterActions(when) {
      if (dryRun) return;
      const due = ledger.adoptDueAfterActions(owner, (rowOwner) => isOwnerAlive(rowOwner, probe));
      const left = due.filter((row) => row.previousFailure === undefined).length;
      if (left > 0) log.warn({ due: left }, 'after-archive actions a stopped process left due: finishing them');
      if (due.length > left) log.debug({ failed: due.length - left }, 'after-archive actions that failed: trying them again');
      for (const row of due) {
        const recovery = row.previousFailure === undefined ? `finished ${when} after ${row.previousOwner} stopped` : undefined;
        const action = parseAfterAction(row.action);
        if (!action) {
          ledger.settleAfterAction(row.fileId, owner, 'failed', `unknown action ${JSON.stringify(row.action)}; source kept${recovery ? ` (${recovery})` : ''}`);
          continue;
        }
        await carryOutAfterAction(
          { fileId: row.fileId, owner, target: row.target, relPath: row.relPath, action, hashed: row.hashed, recovery, previousFailure: row.previousFailure },
          { ledger, source: nodeSourceFs, log, targetFor: (targetPath) => targets.get(targetPath) },
        );
      }
    },
    async abortAbandonedUploads() {
      const places = config.targets.flatMap((t) => [
        { bucket: t.bucket, prefix: t.prefix },
        { bucket: t.bucket, prefix: config.s3.quarantinePrefix },
      ]);
      await abortAbandonedUploads(places, {
        ledger,
        uploads: (await s3()).s3Store,
        isOwnerAlive: (uploadOwner) => isOwnerAlive(uploadOwner, probe),
        log,
      });
    },
  };
}

/** The crash tests' kill points (kill-points.ts): a no-op unless the test-only variable is set. */
function testKillPoints(log: Logger): Checkpoint {
  const spec = process.env[KILL_AT_VARIABLE];
  if (spec) log.warn({ [KILL_AT_VARIABLE]: spec }, 'TEST-ONLY kill point armed: this process will SIGKILL itself');
  return createCheckpoint(spec, () => process.kill(process.pid, 'SIGKILL'));
}

/**
 * Runs `fn` at once when it has not run for `intervalMs`, else once at the end of that interval (calls meanwhile
 * fold into that one): the last call is always followed by a run. cancel() drops a run still waiting.
 */
function atMostEvery(intervalMs: number, fn: () => void): { call: () => void; cancel: () => void } {
  let lastRunMs = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  const run = (): void => {
    timer = undefined;
    lastRunMs = Date.now();
    fn();
  };
  return {
    call: () => {
      if (timer) return;
      const waitMs = lastRunMs + intervalMs - Date.now();
      if (waitMs <= 0) run();
      else timer = setTimeout(run, waitMs).unref();
    },
    cancel: () => clearTimeout(timer),
  };
}

/**
 * `sftppush watch`: watches, scans at start, rescans on schedule and after overflow, archives until SIGTERM.
 * @returns the process exit code.
 */
export async function runWatch(config: Config, log: Logger): Promise<number> {
  let fail: (error: unknown) => void = () => undefined;
  const fatal = new Promise<never>((_, reject) => (fail = reject));
  assertTargetsExist(config);
  prepareAfterDirectories(config);
  // prom-client takes a tenth of a second to load: only a watch with [metrics] loads it.
  const endpoint = config.metrics
    ? new (await import('./metrics/endpoint.js')).MetricsEndpoint(config.metrics, config.targets.map((t) => t.path), Date.now)
    : undefined;
  // One watch per ledger, for the life of the process. @throws InstanceLockedError: exit 1, naming the holder.
  const lock = InstanceLock.acquire(config.ledger.path, { pid: process.pid });
  let core: Core;
  try {
    core = buildCore(config, log, {
      role: 'watch',
      otherWatchHoldsLock: () => false,
      onFatal: (error) => fail(error),
      metrics: endpoint?.metrics ?? noMetrics,
    });
  } catch (error) {
    lock.release();
    throw error;
  }
  try {
    return await watchWith(core, config, log, fatal, fail, endpoint);
  } finally {
    lock.release();
  }
}

/**
 * Start-up checks of a service (issue 10): a missing or denied bucket, or a policy under which S3 answers
 * 403 for a missing key (every write gate's HEAD would fail forever), stops it now, naming the bucket and the
 * permission; so does an endpoint where something other than S3 answers (an HTML page), naming the endpoint.
 * An endpoint that cannot be asked now is not fatal: the service starts and files wait in retry.
 * @throws SftppushError E_S3_ACCESS, NotS3AnswerError E_S3_NOT_S3 (exit 1).
 */
async function assertBucketsUsable(store: ObjectStore, config: Config, log: Logger): Promise<void> {
  const prefixes = new Map<string, string>();
  for (const target of config.targets) prefixes.set(target.bucket, target.prefix);
  for (const [bucket, prefix] of prefixes) {
    let problem: string | undefined;
    try {
      problem = await store.checkAccess(bucket, prefix);
    } catch (error) {
      // Something answers at the endpoint, and it is not S3: waiting will not change that.
      const notS3 = findCause(error, NotS3AnswerError);
      if (notS3) throw logged(log, bucket, notS3);
      log.warn({ bucket, error: describeCause(error) }, 'S3 cannot be reached now: starting anyway, files wait in retry');
      continue;
    }
    if (problem) throw logged(log, bucket, new SftppushError('E_S3_ACCESS', problem));
  }
}

/** A start-up check's fatal error, said in the JSON log too (stderr has the CLI's line), as versioning-check.ts does. */
function logged(log: Logger, bucket: string, error: SftppushError): SftppushError {
  log.error({ bucket, code: error.code }, `${error.code}: ${error.message}`);
  return error;
}

async function watchWith(
  core: Core,
  config: Config,
  log: Logger,
  fatal: Promise<never>,
  fail: (error: unknown) => void,
  endpoint: MetricsEndpoint | undefined,
): Promise<number> {
  const { ledger, observer, pool, reconciler } = core;
  let code = 1;
  warnAboutRuntime(log);
  // Set once the watches are in place: until then /healthz says they are not.
  const watching: { watcher?: Watcher } = {};
  try {
    // Before S3: a metrics port another process holds stops the service at once (MetricsListenError, exit 1).
    await endpoint?.listen(config.source, {
      ledgerStatus: () => ledger.reader.status(),
      ledgerOpen: () => ledger.isOpen,
      watchHealth: () => watching.watcher?.health(),
    }, log);
    // A service connects at start: a refused configuration (conditional_writes) stops it here, exit 2; a
    // bucket it cannot use, exit 1.
    const { ping } = await core.s3();
    endpoint?.startHeartbeat(ping);
    core.recover();
    await core.finishDueAfterActions('at start');
  } catch (error) {
    // Nothing runs yet (no inotify handle, no signal handler, no workers): release what exists and exit.
    await endpoint?.close();
    observer.close();
    core.closeS3();
    ledger.close();
    throw error;
  }
  const watcher = new Watcher({
    targets: config.targets,
    observer,
    log,
    dirs: nodeSourceDirs,
    createInotify: (onEvents) => new Inotify(onEvents),
    onRescanNeeded: (reason) => reconciler.scanInBackground(reason),
    onOverflow: () => core.metrics.inotifyOverflow(),
    onHealthChange: () => healthChanged.call(),
    now: Date.now,
  });
  // `status` reads the watcher's health from the ledger: written at every pass, and when a root is lost or
  // watched again (at most once a WATCH_HEALTH_RECORD_MS, the last change always written).
  const recordWatchHealth = (): void => ledger.recordServiceState('watch', watcher.health());
  const healthChanged = atMostEvery(WATCH_HEALTH_RECORD_MS, () => {
    try {
      recordWatchHealth();
    } catch (error) {
      fail(error);
    }
  });
  // Every pass heals the watches first (ENOSPC refusals, a re-created target root, what an overflow lost),
  // and leaves the watcher's health where `status` reads it.
  const checkLedger = (): void => {
    try {
      ledger.assertSameFile();
    } catch (error) {
      fail(error);
    }
  };
  core.passHooks.beforePass = () => {
    checkLedger();
    watcher.heal();
  };
  // After every pass, in the background: the after-archive actions that failed are tried again (the stop waits).
  let afterActions = Promise.resolve();
  core.passHooks.afterPass = () => {
    recordWatchHealth();
    pruneHistory(ledger, config.ledger.historyDays, log);
    afterActions = afterActions.then(() => core.finishDueAfterActions('after a pass')).catch(fail);
  };
  const ledgerCheck = setInterval(checkLedger, LEDGER_CHECK_MS);
  const signals = listenForSignals(log);
  // In the background: a slow or unreachable S3 must not hold up the start (the stop waits for it).
  let cleanedUp = false;
  const cleanup = core
    .abortAbandonedUploads()
    .catch((error: unknown) => {
      log.warn({ error: describeCause(error) }, 'cannot clean up multipart uploads left open: the next start tries again');
    })
    .finally(() => (cleanedUp = true));
  // Watches first, then the scan: a file landing in between is seen by one or the other, never by neither.
  watcher.start();
  watching.watcher = watcher;
  pool.start();
  log.info(
    { targets: config.targets.map((t) => t.path), watches: watcher.watchCount, bucket: config.s3.bucket, config: config.source },
    'sftppush watching',
  );
  try {
    const started = await Promise.race([reconciler.scan('startup').then(() => true), signals.stop.then(() => false), fatal]);
    if (started) {
      reconciler.startSchedule(config.reconcile.schedule);
      await Promise.race([signals.stop, fatal]);
    }
    code = 0;
  } catch (error) {
    log.fatal({ error }, 'stopping after a fatal error');
    code = 1;
  } finally {
    // Scrapes stop first: what follows closes what they read.
    await endpoint?.close();
    clearInterval(ledgerCheck);
    healthChanged.cancel();
    reconciler.stop();
    watcher.close();
    observer.close();
    // After a fatal error (the ledger is gone or failing) nothing in hand can be recorded: abandon it at once.
    const graceMs = code === 0 ? config.upload.stopGraceMs : 0;
    await stopWorkers(core, log, graceMs, signals.now);
    await afterActions;
    if (!cleanedUp) {
      // Still waiting on S3 (slow or unreachable): the stop is not held up by it; the ledger keeps the records.
      log.info('stopping: the start-up multipart cleanup is cut short; the next start finishes it');
      await (await core.s3()).s3Store.abandonUploads();
    }
    await cleanup;
    core.closeS3();
    ledger.close();
    signals.remove();
    log.info({ exitCode: code }, 'stopped');
  }
  return code;
}

/** `sftppush reconcile` options, as the CLI parsed them. */
export interface ReconcileOptions {
  /** --since: only files with mtime at or after this, ms since the epoch. */
  readonly sinceMs?: number | undefined;
  readonly verify: boolean;
  readonly dryRun: boolean;
  /** --settle SECONDS: overrides reconcile.settle_seconds for this run. */
  readonly settleSeconds?: number | undefined;
  /** --target: what to walk, whole targets or directories in them (absent: every target of the config, whole). */
  readonly subtrees?: readonly TargetSubtree[] | undefined;
  /** --target selected less than every configured target whole. */
  readonly targetsPartial: boolean;
  /** Progress: a bar on a terminal (stderr), else a log line every few seconds. */
  readonly progress: 'bar' | 'log';
}

/**
 * `sftppush reconcile`: one pass over the targets (or the scope given), archive everything in scope the
 * ledger does not show archived, wait for files still settling, optionally verify S3, then exit.
 * @returns exit code 0 when every file in scope ended archived or duplicate, 1 otherwise, and the summary.
 */
export async function runReconcileOnce(
  config: Config,
  log: Logger,
  options: ReconcileOptions,
): Promise<{ code: number; summary: ReconcileSummary }> {
  const started = Date.now();
  let fatalError: unknown;
  assertTargetsExist(config);
  if (!options.dryRun) prepareAfterDirectories(config);
  const partial = options.sinceMs !== undefined || options.targetsPartial;
  const subtrees = options.subtrees ?? config.targets.map((target) => ({ target, relDir: '' }));
  // SIGTERM/SIGINT: the walk stops, the uploads in hand get the grace period, the pass is recorded interrupted.
  const signals = listenForSignals(log);
  const interrupt = new AbortController();
  const interrupted = signals.stop.then((signal): never => {
    const error = new InterruptedError(signal, 'reconcile');
    interrupt.abort(error);
    throw error;
  });
  interrupted.catch(() => undefined);
  const untilInterrupted = <T>(work: Promise<T>): Promise<T> => Promise.race([work, interrupted]);
  const core = buildCore(config, log, {
    role: 'reconcile',
    // Runs beside a watch: the watch's rows are its own as long as it holds the lock.
    otherWatchHoldsLock: () => InstanceLock.isHeld(config.ledger.path),
    onFatal: (error) => (fatalError = error),
    scope: { sinceMs: options.sinceMs, verify: options.verify, dryRun: options.dryRun, partial, subtrees, signal: interrupt.signal },
    settleMs: options.settleSeconds === undefined ? undefined : options.settleSeconds * 1000,
    // A one-shot pass serves no endpoint: its summary is its report.
    metrics: noMetrics,
  });
  const { ledger, observer, pool, reconciler } = core;
  const scope = subtrees.map((s) => ({ target: s.target.path, relDir: s.relDir }));
  const sinceMs = options.sinceMs ?? 0;
  const progress = await startProgress(
    options.progress,
    log,
    () => ({
      dirsScanned: reconciler.tally.dirsScanned,
      filesScanned: reconciler.tally.filesSeen,
      queued: core.queued.count,
      done: Object.values(core.outcomes).reduce((sum, n) => sum + n, 0) - core.outcomes.requeued,
      uploaded: core.outcomes.archived,
      bytesUploaded: core.uploaded.bytes,
    }),
    { now: Date.now, stream: process.stderr },
  );
  try {
    warnAboutRuntime(log);
    core.recover();
    // What the ledger holds queued already (an interrupted run's; a stopped process's, recovered above or, in a
    // dry run, left as it is) and what another live process is archiving: counted apart from what the scan finds.
    const atStart = heldInScope(core, scope, sinceMs, options.dryRun);
    await core.finishDueAfterActions('at start');
    if (!options.dryRun) pool.start();
    const tally = await untilInterrupted(reconciler.scan('command'));
    if (!options.dryRun) {
      // Files in scope still settling are waited for, not skipped (the progress says so).
      progress.phase(tally.filesWaiting > 0 ? `waiting for ${tally.filesWaiting} file(s) to settle` : 'uploading');
      await untilInterrupted(observer.settled());
      await untilInterrupted(drainScope(core, scope, sinceMs, (phase) => progress.phase(phase)));
    }
    const verify = options.verify
      ? await untilInterrupted(verifyArchived(subtrees, sinceMs, { ledger, store: (await core.s3()).store, log, dryRun: options.dryRun }))
      : undefined;
    if (verify && verify.findings.length > 0 && !options.dryRun) {
      core.queued.count += verify.findings.length;
      pool.wake();
      await untilInterrupted(drainScope(core, scope, sinceMs, (phase) => progress.phase(phase)));
    }
    // S3 refused the configuration at the first upload (conditional_writes): a usage error, exit 2.
    if (fatalError instanceof ConfigError) throw fatalError;
    // A dry run archives nothing: rows held queued are what it would upload, not failures.
    const unfinished = ledger.unfinishedInScope(scope, sinceMs).filter((row) => !(options.dryRun && isHeldQueued(row.state)));
    const notArchived = ledger.unfinishedCountsInScope(scope, sinceMs);
    if (options.dryRun) for (const state of HELD_QUEUED) delete notArchived[state];
    const failed = Object.values(notArchived).reduce((sum, n) => sum + n, 0);
    const findings = reconciler.findings;
    const summary: ReconcileSummary = {
      scope: {
        since: options.sinceMs === undefined ? null : new Date(options.sinceMs).toISOString(),
        verify: options.verify,
        dryRun: options.dryRun,
        targets: subtrees.map(subtreePath),
      },
      counts: {
        scanned: tally.filesSeen,
        dirsScanned: tally.dirsScanned,
        inScope: tally.filesInScope,
        alreadyArchived: tally.filesArchived,
        queued: tally.filesQueued,
        resumed: atStart.queuedCount,
        byOthers: atStart.byOthers,
        uploaded: core.outcomes.archived,
        bytesUploaded: core.uploaded.bytes,
        duplicates: core.outcomes.duplicate,
        verified: verify?.verified ?? 0,
        reUploaded: options.dryRun ? 0 : (verify?.findings.length ?? 0),
        waiting: tally.filesWaiting,
        failed,
        retrying: notArchived.retry ?? 0,
        quarantined: notArchived.quarantined ?? 0,
        gone: notArchived.gone ?? 0,
        dirsUnreadable: tally.dirsUnreadable,
        entriesSkipped: tally.entriesSkipped,
      },
      durationMs: Date.now() - started,
      unfinished: unfinished.map((row) => ({ target: row.target, path: row.relPath, state: row.state, error: row.lastError })),
      unfinishedMore: Math.max(0, failed - unfinished.length),
      skipped: {
        listed: findings.skips.items.map((skip) => ({
          target: skip.target,
          path: skip.relPath,
          kind: skip.kind,
          code: skip.code ?? null,
          nameHex: skip.nameHex ?? null,
        })),
        more: findings.skips.more,
      },
      planned: options.dryRun
        ? {
            files: [
              ...atStart.queued.map((row) => ({ target: row.target, path: row.relPath, action: 'upload' as const })),
              ...findings.files.items.map((f) => ({ target: f.target, path: f.relPath, action: f.outcome === 'queued' ? ('queue' as const) : ('wait' as const) })),
            ],
            more: findings.files.more + Math.max(0, atStart.queuedCount - atStart.queued.length),
          }
        : null,
      verifyFindings: (verify?.findings ?? []).map((f) => ({ target: f.target, path: f.relPath, key: f.key, reason: f.reason })),
      verifyRequests: verify ? { listed: verify.listed, heads: verify.heads } : null,
    };
    log.info({ ...summary.counts, ms: summary.durationMs }, 'reconcile finished');
    // The pass record was closed when the walk ended; the command's pass ends now, with what it uploaded too.
    if (reconciler.runId !== undefined) ledger.finishReconcile(reconciler.runId, { ...tally, ...summary.counts });
    // A dry run "fails" when it would have anything to do: S3 does not match the disk in scope.
    const wouldAct = options.dryRun && (tally.filesQueued + tally.filesWaiting + atStart.queuedCount + (verify?.findings.length ?? 0) > 0);
    // An unreadable directory's files are in scope but unseen: the pass cannot say they are archived.
    // So are entries it had to skip (names that cannot be keys, files it could not stat).
    const unseen = tally.dirsUnreadable + tally.entriesSkipped;
    const code = fatalError !== undefined || failed > 0 || wouldAct || unseen > 0 ? 1 : 0;
    return { code, summary };
  } catch (error) {
    if (error instanceof InterruptedError) {
      progress.stop();
      observer.close();
      await stopWorkers(core, log, config.upload.stopGraceMs, signals.now);
      log.warn({ signal: error.signal, uploaded: core.outcomes.archived, ms: Date.now() - started }, 'reconcile interrupted');
      // Also when the walk had ended: the pass is the whole command, and it did not finish.
      if (reconciler.runId !== undefined) {
        ledger.finishReconcile(reconciler.runId, { ...reconciler.tally, uploaded: core.outcomes.archived }, describeCause(error));
      }
    }
    throw error;
  } finally {
    progress.stop();
    observer.close();
    await pool.stop();
    core.closeS3();
    ledger.close();
    signals.remove();
  }
}

/** How often a one-shot pass looks again at the rows another process is archiving. */
const OTHERS_POLL_MS = 250;

/**
 * Resolves once this process's pool has nothing left to claim and no row in scope is held by another live
 * process: a `watch` beside this `reconcile` on the same ledger archives what it claimed, and those rows are
 * waited for (their end, archived or not, is then what the summary reports), never reported as unfinished
 * while in its hands. A row whose owner stops meanwhile is recovered and archived here. Returns at once after
 * a fatal error (the pool has stopped).
 */
/** States of a row queued already: `pending`, or `working` under an owner that is gone (its run was cut short). */
const HELD_QUEUED = ['pending', 'working'] as const;

function isHeldQueued(state: string): boolean {
  return (HELD_QUEUED as readonly string[]).includes(state);
}

/**
 * The rows in scope a one-shot run finds queued already (pending, or working under a stopped owner: counted, and
 * with `list` the first 1000 listed, which only a dry run reports) and those another live process is archiving.
 */
function heldInScope(
  core: Core,
  scope: readonly ScopeSubtree[],
  sinceMs: number,
  list: boolean,
): { queued: FileRow[]; queuedCount: number; byOthers: number } {
  const counts = core.ledger.unfinishedCountsInScope(scope, sinceMs);
  const working = counts.working ?? 0;
  const liveOthers = core.ledger.workingOwnersInScope(scope, sinceMs).filter(core.isLiveOther);
  const byOthers = liveOthers.length === 0 ? 0 : core.ledger.workingCountInScope(scope, sinceMs, liveOthers);
  // Rows working under a live owner are not ours to list; with one about, the listing names pending rows only.
  const queued = !list ? [] : core.ledger.unfinishedInScope(scope, sinceMs).filter((row) => row.state === 'pending' || (row.state === 'working' && byOthers === 0));
  return { queued, queuedCount: (counts.pending ?? 0) + working - byOthers, byOthers };
}

async function drainScope(core: Core, scope: readonly ScopeSubtree[], sinceMs: number, onWait: (phase: string) => void): Promise<void> {
  for (;;) {
    await core.pool.drained();
    // Stopped (a fatal error, an interrupt): nobody here archives anything more, and the ledger may be closing.
    if (core.pool.stopped) return;
    const owners = core.ledger.workingOwnersInScope(scope, sinceMs);
    const others = owners.filter(core.isLiveOther);
    // Owners that stopped while we waited (and no longer our own): their rows are ours to finish.
    if (others.length < owners.length && core.recover() > 0) {
      core.pool.wake();
      continue;
    }
    if (others.length === 0) return;
    onWait(`waiting for ${core.ledger.unfinishedCountsInScope(scope, sinceMs).working ?? 0} file(s) another sftppush process is archiving`);
    await new Promise((resolve) => setTimeout(resolve, OTHERS_POLL_MS));
  }
}

/** Node 20 is past end of life; say so once, as a log line (the SDK's own warning is multi-line stderr). */
function warnAboutRuntime(log: Logger): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22) {
    log.warn({ node: process.version }, 'Node.js 20 is past end of life: run sftppush on Node 24 LTS (see README)');
  }
}

/**
 * SIGTERM/SIGINT: `stop` (finish what is in hand, within the grace period). A second: `now` (abort the
 * uploads in hand). A third: exit 1 at once, for an abort S3 does not answer. SIGHUP: configuration is read
 * at start only, so it is logged and ignored (its default would kill the service mid-upload).
 */
function listenForSignals(log: Logger): { stop: Promise<NodeJS.Signals>; now: Promise<void>; remove: () => void } {
  let received = 0;
  let stop = (_signal: NodeJS.Signals): void => undefined;
  let now = (): void => undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    received += 1;
    if (received === 1) {
      log.info({ signal }, 'stopping: finishing files in hand (a second signal aborts them)');
      stop(signal);
    } else if (received === 2) {
      log.warn({ signal }, 'second signal: aborting the uploads in hand');
      now();
    } else {
      log.error({ signal }, 'third signal: exiting now; the next start aborts what is left open');
      process.exit(1);
    }
  };
  const onHangup = (): void => {
    log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: the configuration is read at start only; restart the service to apply changes');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHangup);
  return {
    stop: new Promise<NodeJS.Signals>((resolve) => (stop = resolve)),
    now: new Promise((resolve) => (now = resolve)),
    remove() {
      process.removeListener('SIGTERM', onSignal);
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGHUP', onHangup);
    },
  };
}

/** ledger.history_days: the transitions older than that go (0 keeps them); every file's current state stays. */
function pruneHistory(ledger: Ledger, historyDays: number, log: Logger): void {
  if (historyDays === 0) return;
  const deleted = ledger.pruneHistory(Date.now() - historyDays * 86_400_000, HISTORY_PRUNE_BATCH);
  if (deleted > 0) log.info({ deleted, historyDays }, 'history pruned');
}

/**
 * Stops claiming and lets the files in hand finish for `graceMs`; then, or at a second signal, abandons
 * them: their multipart uploads are aborted (none is left open) and their rows given back as pending.
 */
async function stopWorkers(core: Core, log: Logger, graceMs: number, now: Promise<void>): Promise<void> {
  const stopped = core.pool.stop();
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace'>((resolve) => (timer = setTimeout(() => resolve('grace'), graceMs)));
  const ended = await Promise.race([stopped.then(() => 'finished' as const), graceOver, now.then(() => 'signal' as const)]);
  clearTimeout(timer);
  if (ended !== 'finished') {
    if (ended === 'grace') log.warn({ busy: core.pool.busy, graceMs }, 'stop grace period over: aborting the uploads in hand');
    const { s3Store } = await core.s3();
    const { aborted, completed, failed } = await s3Store.abandonUploads();
    for (const upload of aborted) log.info({ key: upload.key, uploadId: upload.uploadId }, 'multipart upload aborted');
    for (const upload of completed) {
      log.warn(
        { key: upload.key, uploadId: upload.uploadId },
        'multipart upload already completed: its completion was in flight when the grace ran out (not aborted; the next start finds the object)',
      );
    }
    for (const { upload, error } of failed) {
      log.error({ key: upload.key, uploadId: upload.uploadId, error: error.message }, 'cannot abort a multipart upload: the next start does');
    }
    await stopped;
  }
}

/** What `status --failed` lists at most (the count of all is shown). */
const FAILURES_LISTED = 1000;

export interface StatusRequest {
  readonly ledgerPath: string;
  /** The configuration, when there is one: it maps an absolute PATH to its target. */
  readonly config: Pick<Config, 'targets'> | undefined;
  readonly json: boolean;
  readonly failed: boolean;
  /** A file whose story to tell (relative to its target, or absolute). */
  readonly path: string | undefined;
}

/**
 * `sftppush status`: answers from the ledger alone, opened read-only (see LedgerReader.open), so it works for a
 * monitoring user beside a running service of this or the previous schema, or with the service stopped.
 * @returns the exit code and what to print: 1 for a PATH the ledger does not know.
 * @throws SftppushError from LedgerReader.open (no ledger, an unreadable one, a schema it cannot read).
 */
export function runStatus(request: StatusRequest): { code: number; stdout: string; stderr: string } {
  const reader = LedgerReader.open(request.ledgerPath, { migrationsDir: MIGRATIONS_DIR });
  try {
    const print = (value: unknown, text: string) => ({ code: 0, stdout: `${request.json ? JSON.stringify(value) : text}\n`, stderr: '' });
    if (request.path !== undefined) {
      const where = resolveStatusPath(request.config, request.path);
      const story = reader.story(where.relPath, where.target);
      if (story.generations.length === 0) {
        return { code: 1, stdout: '', stderr: `sftppush: "${escapeControl(request.path)}": not in the ledger\n` };
      }
      return print(story, formatStory(story));
    }
    const summary = reader.status(request.config?.targets.map((target) => target.path));
    if (request.failed) {
      const rows = reader.failures(FAILURES_LISTED);
      const failedAfterActions = reader.failedAfterActions(FAILURES_LISTED);
      const skips = reader.scanSkips(FAILURES_LISTED);
      const text = [
        formatFailures(rows, summary.counts, failedAfterActions, summary.afterActionsFailed),
        ...formatScanSkips(skips, `the latest ${FAILURES_LISTED} are listed`),
      ].join('\n');
      return print({ ...summary, failed: rows, failedAfterActions, scanSkips: skips }, text);
    }
    return print(summary, formatSummary(summary));
  } finally {
    reader.close();
  }
}

function resolveStatusPath(config: Pick<Config, 'targets'> | undefined, arg: string): {
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
