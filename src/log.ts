import { pino, type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * JSON lines on stdout (journald and log shippers read them as they are). Credentials are never logged by
 * sftppush; the redaction is a second line of defence against an SDK error object that carries them.
 */
export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stdout): Logger {
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
    destination,
  );
}
