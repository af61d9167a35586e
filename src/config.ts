import { existsSync, mkdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { validateCronExpression } from 'cron';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { ConfigError, errnoCode } from './errors.js';
import type { ArchiveLimits } from './extract/limits.js';
import type { ObjectOptions } from './s3/object-store.js';
import { parseListenAddress, type ListenAddress } from './metrics/listen-address.js';
import { createIgnoreMatcher } from './observe/ignore.js';
import { parseAfterAction, type AfterAction } from './pipeline/after-plan.js';

/** One watched directory tree and where its files go. */
export interface TargetConfig {
  /** Absolute path of the watched directory. */
  readonly path: string;
  readonly ignore: readonly string[];
  readonly bucket: string;
  readonly prefix: string;
  /** Wait this long without change after a close/rename before taking the file (0: take it at once). */
  readonly quietMs: number;
  /** Store zip, tar, tar.gz and gz files as their members (default true); false stores every file as it is. */
  readonly extract: boolean;
  /** With extract: also store the original archive under its own key. */
  readonly keepArchive: boolean;
  /** What becomes of a source once its archive is verified and recorded (`after`, else `upload.after`). */
  readonly after: AfterAction;
  /** The key that set `after` (`targets[N].after` or `upload.after`), for messages. */
  readonly afterKey: string;
}

export interface Config {
  /** The file the configuration came from (or a description when there was none), for messages. */
  readonly source: string;
  /** The targets came from `--target` flags, not the file: messages about them name the flag. */
  readonly targetsFromFlags: boolean;
  readonly s3: {
    readonly bucket: string;
    readonly prefix: string;
    readonly quarantinePrefix: string;
    readonly endpoint: string | undefined;
    readonly forcePathStyle: boolean;
    readonly region: string | undefined;
    /** storage_class, sse, kms_key_id, tags: how every object is stored. */
    readonly objectOptions: ObjectOptions;
    /** `auto`: probe the endpoint once per bucket; true: conditional writes required; false: HEAD before every write. */
    readonly conditionalWrites: 'auto' | boolean;
  };
  readonly ledger: {
    readonly path: string;
    /** History rows (a file's transitions) older than this are pruned by the running service; 0 keeps them all. */
    readonly historyDays: number;
  };
  readonly reconcile: { readonly schedule: string; readonly settleSeconds: number };
  readonly upload: {
    readonly concurrency: number;
    /** The default `after` of targets that do not set their own. */
    readonly after: AfterAction;
    readonly multipartThresholdBytes: number;
    readonly partSizeBytes: number;
    readonly maxBackoffSeconds: number;
    /** An S3 request with no byte moving either way for this long is abandoned (a write then goes back through the gate). */
    readonly requestTimeoutMs: number;
    /** On SIGTERM/SIGINT, how long uploads in hand may take to finish before they are aborted. */
    readonly stopGraceMs: number;
  };
  /** `[archive]`: what one archive may expand to (extract/limits.ts). */
  readonly archive: ArchiveLimits;
  readonly targets: readonly TargetConfig[];
  /** `[metrics]`: the Prometheus and health endpoint of `watch`; absent, none is served. */
  readonly metrics?: MetricsConfig | undefined;
}

export interface MetricsConfig {
  readonly listen: ListenAddress;
  /** `/healthz` reports S3 unhealthy once it has not answered for this long (and asks it when idle for half). */
  readonly s3StaleSeconds: number;
}

/** Command-line values that override the file (flags win). */
export interface ConfigOverrides {
  targets?: string[];
  bucket?: string;
  prefix?: string;
  endpoint?: string;
  ledger?: string;
  concurrency?: number;
}

export const DEFAULT_IGNORE = ['*.filepart', '*.part', '*.tmp', '.*'] as const;
const MIB = 1024 * 1024;

const storageClasses = [
  'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING',
  'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR',
] as const;

const s3Prefix = z.string().refine((p) => !p.startsWith('/'), 'must not start with "/"');

const targetSchema = z.strictObject({
  path: z.string().min(1),
  ignore: z.array(z.string().min(1)).default([...DEFAULT_IGNORE]),
  bucket: z.string().min(3).optional(),
  prefix: s3Prefix.optional(),
  quiet_ms: z.number().int().min(0).max(3_600_000).default(0),
  extract: z.boolean().default(true),
  keep_archive: z.boolean().default(false),
  after: z.string().optional(),
});

const GIB = 1024 * 1024 * 1024;
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
const TAG_TEXT_RULE = 'S3 tags allow only letters, digits, spaces and + - = . _ : / @';

/** `metrics.s3_stale_seconds`: how long S3 may go without answering before `/healthz` says so. */
export const DEFAULT_S3_STALE_SECONDS = 60;

/** A year of every file's transitions: an audit's usual reach. Each file's current state is kept forever. */
const HISTORY_DAYS_DEFAULT = 365;

const ARCHIVE_DEFAULTS = { max_total_bytes: 10 * GIB, max_members: 100_000, max_ratio: 200 } as const;

const fileSchema = z.strictObject({
  s3: z.strictObject({
    bucket: z.string().min(3),
    prefix: s3Prefix.default(''),
    quarantine_prefix: s3Prefix.min(1).default('_quarantine/'),
    endpoint: z.url().optional(),
    force_path_style: z.boolean().default(false),
    region: z.string().min(1).optional(),
    storage_class: z.enum(storageClasses).optional(),
    sse: z.enum(['AES256', 'aws:kms'], { error: 'must be "AES256" or "aws:kms"' }).optional(),
    kms_key_id: z.string().min(1).optional(),
    // S3's own limits: 10 tags, keys up to 128 characters, values up to 256, letters, digits, spaces and + - = . _ : / @.
    tags: z
      .record(z.string().min(1).max(128).regex(TAG_TEXT, TAG_TEXT_RULE), z.string().max(256).regex(TAG_TEXT, TAG_TEXT_RULE))
      .refine((tags) => Object.keys(tags).length <= 10, 'S3 allows at most 10 tags per object')
      .optional(),
    conditional_writes: z.union([z.literal('auto'), z.boolean()], { error: 'must be "auto", true or false' }).default('auto'),
  }),
  ledger: z
    .strictObject({
      path: z.string().min(1).default('var/ledger.db'),
      history_days: z.number().int().min(0).default(HISTORY_DAYS_DEFAULT),
    })
    .default({ path: 'var/ledger.db', history_days: HISTORY_DAYS_DEFAULT }),
  reconcile: z
    .strictObject({
      schedule: z.string().min(1).default('*/5 * * * *'),
      settle_seconds: z.number().int().min(0).default(30),
    })
    .default({ schedule: '*/5 * * * *', settle_seconds: 30 }),
  upload: z
    .strictObject({
      concurrency: z.number().int().min(1).max(256).default(8),
      after: z.string().default('keep'),
      multipart_threshold_mb: z.number().int().min(5).max(5 * 1024).default(16),
      part_size_mb: z.number().int().min(5).max(5 * 1024).default(8),
      max_backoff_seconds: z.number().int().min(1).default(900),
      request_timeout_seconds: z.number().min(1).max(3600).default(60),
      stop_grace_seconds: z.number().min(0).max(3600).default(30),
    })
    .default({
      concurrency: 8,
      after: 'keep',
      multipart_threshold_mb: 16,
      part_size_mb: 8,
      max_backoff_seconds: 900,
      request_timeout_seconds: 60,
      stop_grace_seconds: 30,
    }),
  archive: z
    .strictObject({
      max_total_bytes: z.number().int().min(1).default(ARCHIVE_DEFAULTS.max_total_bytes),
      max_members: z.number().int().min(1).default(ARCHIVE_DEFAULTS.max_members),
      max_ratio: z.number().min(1).default(ARCHIVE_DEFAULTS.max_ratio),
      // Defaults to max_total_bytes: one member may be the whole archive.
      max_member_bytes: z.number().int().min(1).optional(),
    })
    .default(ARCHIVE_DEFAULTS),
  targets: z.array(targetSchema).min(1, 'at least one [[targets]] entry is required'),
  metrics: z
    .strictObject({
      listen: z.string().transform((value, context) => {
        const address = parseListenAddress(value);
        if (typeof address !== 'string') return address;
        context.addIssue({ code: 'custom', message: `${JSON.stringify(value)}: ${address}` });
        return z.NEVER;
      }),
      s3_stale_seconds: z.number().int().min(1).max(86_400).default(DEFAULT_S3_STALE_SECONDS),
    })
    .optional(),
});

type FileConfig = z.infer<typeof fileSchema>;

/**
 * Reads, validates and freezes the configuration.
 * Relative paths (targets, ledger) are resolved against the config file's directory, so the service behaves
 * the same whatever its working directory (systemd starts it in /).
 * @throws ConfigError naming the file and the key.
 */
export function loadConfig(file: string, overrides: ConfigOverrides = {}, options: { optional?: boolean } = {}): Config {
  const missing = options.optional === true && !existsSync(file);
  const raw = missing ? {} : readToml(file);
  applyOverrides(raw, overrides);
  let config: Config;
  try {
    config = validateConfig(raw, file);
  } catch (error) {
    // The flags alone were not enough: the missing file is the news, not a key missing from it.
    if (missing && error instanceof ConfigError) {
      throw new ConfigError(`no config file found at ${file}: give --config FILE (or --bucket and --target); ${error.message}`);
    }
    throw error;
  }
  return overrides.targets !== undefined && overrides.targets.length > 0 ? Object.freeze({ ...config, targetsFromFlags: true }) : config;
}

/** Validates an already-parsed TOML document (exported for tests and for callers without a file). */
export function validateConfig(raw: Record<string, unknown>, file: string): Config {
  refuseCredentials(raw, file);
  const result = fileSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    // A misspelt key usually also leaves a required one missing: name the misspelling first.
    const issues = result.error.issues;
    const first = issues.find((issue) => issue.code === 'unrecognized_keys') ?? issues[0];
    throw new ConfigError(`${file}: ${formatIssue(first)}`);
  }
  const parsed = result.data;
  const cron = validateCronExpression(parsed.reconcile.schedule);
  if (!cron.valid) {
    throw new ConfigError(`${file}: reconcile.schedule: not a valid cron expression (${cron.error?.message ?? 'invalid'})`);
  }
  refuseOverlappingTargets(parsed.targets.map((t) => path.resolve(path.dirname(path.resolve(file)), t.path)), file);
  refuseSharedKeys(
    parsed.targets.map((t) => ({
      path: path.resolve(path.dirname(path.resolve(file)), t.path),
      bucket: t.bucket ?? parsed.s3.bucket,
      prefix: t.prefix ?? parsed.s3.prefix,
    })),
    file,
  );
  if (parsed.s3.kms_key_id !== undefined && parsed.s3.sse !== 'aws:kms') {
    throw new ConfigError(`${file}: s3.kms_key_id is set, but s3.sse is not "aws:kms"`);
  }
  if (parsed.upload.part_size_mb > parsed.upload.multipart_threshold_mb) {
    throw new ConfigError(`${file}: upload.part_size_mb must not exceed upload.multipart_threshold_mb`);
  }
  const config = toConfig(parsed, file);
  refuseMoveIntoTargets(config);
  return deepFreeze(config);
}

/**
 * `keep`, `delete` or `move:DIR` (DIR relative to the config file's directory).
 * @throws ConfigError naming the key and the file.
 */
function afterActionOf(text: string, key: string, file: string, base: string): AfterAction {
  const action = parseAfterAction(text);
  if (!action) throw new ConfigError(`${file}: ${key}: expected "keep", "delete" or "move:DIR", got ${JSON.stringify(text)}`);
  return action.kind === 'move' ? { kind: 'move', dir: realpathIfExists(path.resolve(base, action.dir)) } : action;
}

/** A source moved into a watched tree would be seen again, as a new file, and archived again: refuse it. */
function refuseMoveIntoTargets(config: Config): void {
  for (const target of config.targets) {
    if (target.after.kind !== 'move') continue;
    const dir = target.after.dir;
    const index = config.targets.findIndex((t) => dir === t.path || dir.startsWith(`${t.path}${path.sep}`));
    if (index >= 0) {
      throw new ConfigError(
        `${config.source}: ${target.afterKey}: move:${dir} is inside targets[${index}].path ${config.targets[index]!.path}: moved files would be archived again`,
      );
    }
  }
}

function readToml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`${file}: cannot read config file (${errnoCode(error) ?? String(error)})`);
  }
  try {
    return parseToml(text);
  } catch (error) {
    const where = error instanceof TomlError ? ` at line ${error.line}, column ${error.column}` : '';
    const first = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new ConfigError(`${file}: invalid TOML${where}: ${first}`);
  }
}

function applyOverrides(raw: Record<string, unknown>, overrides: ConfigOverrides): void {
  const table = (name: string): Record<string, unknown> => {
    const existing = raw[name];
    if (existing !== undefined && (typeof existing !== 'object' || existing === null || Array.isArray(existing))) {
      return {}; // leave the type error for validation to report against the file
    }
    const value = (existing ?? {}) as Record<string, unknown>;
    raw[name] = value;
    return value;
  };
  if (overrides.bucket !== undefined) table('s3').bucket = overrides.bucket;
  if (overrides.prefix !== undefined) table('s3').prefix = overrides.prefix;
  if (overrides.endpoint !== undefined) table('s3').endpoint = overrides.endpoint;
  if (overrides.ledger !== undefined) table('ledger').path = path.resolve(overrides.ledger);
  if (overrides.concurrency !== undefined) table('upload').concurrency = overrides.concurrency;
  if (overrides.targets !== undefined && overrides.targets.length > 0) {
    raw.targets = overrides.targets.map((dir) => ({ path: path.resolve(dir) }));
  }
}

/** Key names that hold (or point at) AWS credentials, in any table. */
const CREDENTIAL_KEY = /access[_-]?key|secret|session[_-]?token|credential|password/i;

/**
 * Credentials never live in config.toml (a file operators copy, commit and attach to tickets): a key that looks
 * like one is refused by name, pointing at the default chain, and its value is never repeated.
 * @throws ConfigError naming the key and the file.
 */
function refuseCredentials(raw: Record<string, unknown>, file: string, at = ''): void {
  for (const [key, value] of Object.entries(raw)) {
    const name = at === '' ? key : `${at}.${key}`;
    if (CREDENTIAL_KEY.test(key)) {
      throw new ConfigError(
        `${file}: ${name}: credentials never live in config.toml; use the AWS default chain ` +
          '(AWS_PROFILE, the environment, an instance or task role; see README "Install")',
      );
    }
    if (isTable(value)) refuseCredentials(value, file, name);
  }
}

/**
 * Two targets writing to one bucket under prefixes one of which starts the other (`""` starts every prefix)
 * could give two files one key (`a/` + `b/x.csv` and `a/b/` + `x.csv`): refuse it, naming both.
 * @throws ConfigError naming both targets' keys and the file.
 */
function refuseSharedKeys(destinations: readonly { path: string; bucket: string; prefix: string }[], file: string): void {
  destinations.forEach((a, i) => {
    destinations.forEach((b, j) => {
      if (i < j && a.bucket === b.bucket && (a.prefix.startsWith(b.prefix) || b.prefix.startsWith(a.prefix))) {
        throw new ConfigError(
          `${file}: targets[${j}] (${b.path}) prefix ${JSON.stringify(b.prefix)} and targets[${i}] (${a.path}) prefix ` +
            `${JSON.stringify(a.prefix)} share bucket ${a.bucket}: two files could get one key; give each [[targets]] ` +
            'a prefix of its own, neither starting the other (two --target flags share one: use the config file)',
        );
      }
    });
  });
}

/**
 * One directory in two targets would be watched once (inotify returns one descriptor per directory) and
 * recorded under two ledger histories writing the same keys: refuse it.
 */
function refuseOverlappingTargets(paths: readonly string[], file: string): void {
  paths.forEach((outer, i) => {
    paths.forEach((inner, j) => {
      if (i !== j && (inner === outer || inner.startsWith(`${outer}${path.sep}`))) {
        throw new ConfigError(`${file}: targets[${j}].path: ${inner} overlaps targets[${i}].path ${outer}`);
      }
    });
  });
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function formatIssue(issue: z.core.$ZodIssue | undefined): string {
  if (!issue) return 'invalid configuration';
  const at = issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('');
  const key = at.replace(/^\./, '').replace(/^\[/, '[');
  if (issue.code === 'unrecognized_keys') {
    const names = issue.keys.map((k) => (key ? `${key}.${k}` : k));
    return `unknown key ${names.join(', ')}`;
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${key}: required key is missing`;
  return `${key || '(top level)'}: ${issue.message}`;
}

function toConfig(parsed: FileConfig, file: string): Config {
  const base = path.dirname(path.resolve(file));
  const s3 = parsed.s3;
  const defaultAfter = afterActionOf(parsed.upload.after, 'upload.after', file, base);
  return {
    source: file,
    targetsFromFlags: false,
    s3: {
      bucket: s3.bucket,
      prefix: s3.prefix,
      quarantinePrefix: s3.quarantine_prefix,
      endpoint: s3.endpoint,
      forcePathStyle: s3.force_path_style,
      region: s3.region,
      objectOptions: { storageClass: s3.storage_class, sse: s3.sse, kmsKeyId: s3.kms_key_id, tags: s3.tags },
      conditionalWrites: s3.conditional_writes,
    },
    ledger: { path: path.resolve(base, parsed.ledger.path), historyDays: parsed.ledger.history_days },
    reconcile: { schedule: parsed.reconcile.schedule, settleSeconds: parsed.reconcile.settle_seconds },
    upload: {
      concurrency: parsed.upload.concurrency,
      after: defaultAfter,
      multipartThresholdBytes: parsed.upload.multipart_threshold_mb * MIB,
      partSizeBytes: parsed.upload.part_size_mb * MIB,
      maxBackoffSeconds: parsed.upload.max_backoff_seconds,
      requestTimeoutMs: parsed.upload.request_timeout_seconds * 1000,
      stopGraceMs: parsed.upload.stop_grace_seconds * 1000,
    },
    archive: {
      maxTotalBytes: parsed.archive.max_total_bytes,
      maxMembers: parsed.archive.max_members,
      maxRatio: parsed.archive.max_ratio,
      maxMemberBytes: parsed.archive.max_member_bytes ?? parsed.archive.max_total_bytes,
    },
    targets: parsed.targets.map((target, index) => ({
      path: realpathIfExists(path.resolve(base, target.path)),
      ignore: target.ignore,
      bucket: target.bucket ?? s3.bucket,
      prefix: target.prefix ?? s3.prefix,
      quietMs: target.quiet_ms,
      extract: target.extract,
      keepArchive: target.keep_archive,
      after: target.after === undefined ? defaultAfter : afterActionOf(target.after, `targets[${index}].after`, file, base),
      afterKey: target.after === undefined ? 'upload.after' : `targets[${index}].after`,
    })),
    metrics: parsed.metrics && { listen: parsed.metrics.listen, s3StaleSeconds: parsed.metrics.s3_stale_seconds },
  };
}

/**
 * A target given through a symlink is watched at its real path: inotify watches are added without
 * following links, and the ledger must name one directory one way.
 */
function realpathIfExists(absolute: string): string {
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/**
 * Refuses to start on a target that is not a directory: a typo must not become a service that watches
 * nothing. Checked when a command starts, not at parse time, so `status` works on any host.
 * @throws ConfigError naming the key and the file.
 */
export function assertTargetsExist(config: Config): void {
  config.targets.forEach((target, index) => {
    let isDirectory = false;
    try {
      isDirectory = statSync(target.path).isDirectory();
    } catch {
      // reported below
    }
    if (!isDirectory) {
      throw new ConfigError(
        config.targetsFromFlags
          ? `--target ${target.path}: not an existing directory`
          : `${config.source}: targets[${index}].path: ${target.path} is not an existing directory`,
      );
    }
  });
}

/**
 * Makes the directories `after = "move:DIR"` moves into, and refuses one on another filesystem than its
 * target: a move is link(2) + unlink(2), atomic and never overwriting, which a copy across filesystems could
 * not be. Checked when a command that archives starts.
 * @throws ConfigError naming the key and the file.
 */
export function prepareAfterDirectories(config: Config): void {
  const moves = config.targets.flatMap((target) => (target.after.kind === 'move' ? [{ target, dir: target.after.dir }] : []));
  // Every DIR is checked before any is made: a refused configuration leaves nothing behind (on the other
  // filesystem, or another target's). A DIR not made yet will be on its nearest existing ancestor's filesystem.
  for (const { target, dir } of moves) {
    if (statSync(nearestExisting(dir)).dev !== statSync(target.path).dev) {
      throw new ConfigError(
        `${config.source}: ${target.afterKey}: ${dir} is on another filesystem than ${target.path}; ` +
          'a move is a link and an unlink (atomic, never overwriting), so DIR must be on the same filesystem',
      );
    }
  }
  for (const { target, dir } of moves) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw new ConfigError(`${config.source}: ${target.afterKey}: cannot create ${dir} (${errnoCode(error) ?? String(error)})`);
    }
  }
}

/** `dir` itself, or the closest of its ancestors that exists (`/` at the last). */
function nearestExisting(dir: string): string {
  let at = path.resolve(dir);
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** A configured target, or one directory under it: what a `reconcile --target DIR` pass walks. */
export interface TargetSubtree {
  readonly target: TargetConfig;
  /** The directory under the target, '/'-separated; '' for the whole target. */
  readonly relDir: string;
}

/** The absolute path a subtree names (for messages and the pass record). */
export function subtreePath(subtree: TargetSubtree): string {
  return subtree.relDir === '' ? subtree.target.path : `${subtree.target.path}/${subtree.relDir}`;
}

/** What `reconcile --target DIR...` selected. */
export interface TargetSelection {
  /** The configuration narrowed to the targets named or holding a directory named. */
  readonly config: Config;
  /** What the pass walks; none inside another. */
  readonly subtrees: readonly TargetSubtree[];
  /** Less than every configured target whole: the pass is not proof that every file is archived. */
  readonly partial: boolean;
}

/**
 * `reconcile --target DIR`: narrows a pass to configured targets, or to directories inside them, keeping
 * each target's bucket, prefix, ignore globs and quiet_ms, and its keys: a file's key stays relative to its
 * configured target (a bare directory would archive under other keys, and a later full pass would count
 * those files as done). A directory inside no configured target is refused, naming the flag.
 * @throws ConfigError naming --target: outside every target (listing them), missing, or ignored.
 */
export function selectTargets(config: Config, dirs: readonly string[]): TargetSelection {
  let subtrees: TargetSubtree[] = [];
  for (const named of dirs.map((dir) => subtreeOf(config, dir))) {
    // A subtree inside another one named is walked with it, not twice.
    if (subtrees.some((kept) => kept.target === named.target && contains(kept.relDir, named.relDir))) continue;
    subtrees = [...subtrees.filter((kept) => !(kept.target === named.target && contains(named.relDir, kept.relDir))), named];
  }
  const targets = config.targets.filter((t) => subtrees.some((s) => s.target === t));
  const partial = targets.length < config.targets.length || subtrees.some((s) => s.relDir !== '');
  return { config: deepFreeze({ ...config, targets }), subtrees, partial };
}

function subtreeOf(config: Config, dir: string): TargetSubtree {
  const wanted = realpathIfExists(path.resolve(dir));
  // The deepest target holding it, should targets nest.
  const target = config.targets
    .filter((t) => wanted === t.path || wanted.startsWith(t.path.endsWith('/') ? t.path : `${t.path}/`))
    .sort((a, b) => b.path.length - a.path.length)[0];
  if (!target) {
    throw new ConfigError(
      `--target ${dir}: not a configured target or a directory in one, in ${config.source} (configured: ${config.targets.map((t) => t.path).join(', ')})`,
    );
  }
  const relDir = path.relative(target.path, wanted).split(path.sep).join('/');
  if (relDir === '') return { target, relDir };
  let isDirectory = false;
  try {
    isDirectory = statSync(wanted).isDirectory();
  } catch {
    // reported below
  }
  if (!isDirectory) throw new ConfigError(`--target ${dir}: not an existing directory (in target ${target.path} of ${config.source})`);
  if (createIgnoreMatcher(target.ignore)(relDir)) {
    throw new ConfigError(
      `--target ${dir}: ignored by the target's ignore globs (${target.ignore.join(', ')}) in ${config.source}, so never archived`,
    );
  }
  return { target, relDir };
}

/** Whether directory `outer` (relative, '' for the top) holds `inner` or is it. */
function contains(outer: string, inner: string): boolean {
  return outer === '' || inner === outer || inner.startsWith(`${outer}/`);
}
