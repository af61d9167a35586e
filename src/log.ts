import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type PinoPretty from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * JSON lines on stdout (journald and log shippers read them as they are); colourised, human lines when
 * stdout is a terminal. Credentials are never logged by sftppush; the redaction is a second line of
 * defence against an SDK error object that carries them.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const output = destination ?? (process.stdout.isTTY ? prettyOutput() : process.stdout);
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ['*.credentials', '*.accessKeyId', '*.secretAccessKey', '*.sessionToken', '*.authorization'],
        censor: '[redacted]',
      },
      serializers: { error: pino.stdSerializers.err },
    },
    output,
  );
}

/**
 * Human lines for a terminal. pino-pretty takes longer to load than a no-change pass over a thousand files
 * takes to scan, so it is loaded only here: a service or a command writing JSON lines never loads it.
 */
function prettyOutput(): NodeJS.WritableStream {
  const pretty = createRequire(import.meta.url)('pino-pretty') as typeof PinoPretty;
  return pretty({ colorize: true, sync: true });
}
