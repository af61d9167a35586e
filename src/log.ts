import { createRequire } from 'node:module';
import { pino, type Bindings, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Keys whose values are censored wherever a logged field (or a logged error) carries them. */
const SECRET_KEYS = ['credentials', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'authorization'];
const CENSORED = '[redacted]';

/** `value` with its own secret keys censored: a copy when it has any, else `value` itself. */
function censored(value: object): object {
  const secrets = SECRET_KEYS.filter((secret) => Object.hasOwn(value, secret));
  return secrets.length === 0 ? value : { ...value, ...Object.fromEntries(secrets.map((secret) => [secret, CENSORED])) };
}

/** Keys whose values pino passes through serializeError (pino logs an Error given alone under `err`). */
const ERROR_KEYS = new Set(['error', 'err']);

/**
 * The fields of a log line (or a child's bindings), each object among them censored (as pino's redact paths
 * `*.credentials` etc. did); `fields` itself when none carries a secret, which is every line sftppush writes
 * itself. A few property reads per field: pino's `redact` ran its wildcard redactor on every value of every
 * line, cloning objects (24 KB allocated per archived file, the largest allocation of all). An Error under any
 * other key is serialized first, so that its message and stack survive the copy.
 */
function censorFields<T extends Record<string, unknown>>(fields: T): T {
  let copy: Record<string, unknown> | undefined;
  for (const key in fields) {
    const value: unknown = fields[key];
    if (ERROR_KEYS.has(key) || value === null || typeof value !== 'object') continue;
    const safe = censored(value);
    if (safe === value) continue;
    copy ??= { ...fields };
    copy[key] = value instanceof Error ? serializeError(value) : safe;
  }
  return (copy as T | undefined) ?? fields;
}

/** pino's error serializer (type, message, stack, cause, own fields), its secret fields censored; other values as they are. */
function serializeError(error: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(error as Error);
  return serialized !== null && typeof serialized === 'object' ? censored(serialized) : serialized;
}

/**
 * JSON lines on stdout (journald and log shippers read them as they are); colourised, human lines when
 * stdout is a terminal. Credentials are never logged by sftppush; censoring them is a second line of
 * defence against an SDK error object that carries them.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const output = destination ?? (process.stdout.isTTY ? prettyOutput() : process.stdout);
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: (fields) => censorFields(fields) },
      serializers: { error: serializeError, err: serializeError },
    },
    output,
  );
  // pino formats a child's bindings once, past formatters.log: they are censored on the way in. Every child (and
  // its children) inherits this from the root instance.
  const child = Reflect.get(logger, 'child') as (...args: unknown[]) => unknown;
  logger.child = function censoredChild(this: Logger, bindings: Bindings, options?: unknown): unknown {
    return Reflect.apply(child, this, [censorFields(bindings), options]);
  } as unknown as Logger['child'];
  return logger;
}

/**
 * Human lines for a terminal. pino-pretty takes longer to load than a no-change pass over a thousand files
 * takes to scan, so it is loaded only here: a service or a command writing JSON lines never loads it.
 */
function prettyOutput(): NodeJS.WritableStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pretty({ colorize: true, sync: true });
}
