import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * JSON lines on stdout (journald and log shippers read them as they are); colourised, human lines when
 * stdout is a terminal. Credentials are never logged by sftppush; the redaction is a second line of
 * defence against an SDK error object that carries them.
 */
export function createLogger(level: LogLevel, destination?: NodeJS.WritableStream): Logger {
  const output = destination ?? (process.stdout.isTTY ? pretty({ colorize: true, sync: true }) : process.stdout);
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
