import { SingleBar } from 'cli-progress';
import type { Logger } from 'pino';

/** What a one-shot pass shows while it runs. */
export interface Progress {
  /** What the pass is doing now (scanning, waiting for N files to settle, uploading). */
  phase(text: string): void;
  stop(): void;
}

/** The counters a progress display reads; polled, so the pipeline never knows it is being watched. */
export interface ProgressSource {
  /** Files whose archive finished (archived, duplicate, or failed) so far. */
  done(): number;
  /** Files known to need archiving so far (queued by the scan, or re-queued by --verify). */
  total(): number;
}

export interface ProgressOptions {
  readonly now: () => number;
  /** Where the bar is drawn (stderr: stdout stays the summary or the JSON). */
  readonly stream: NodeJS.WritableStream;
}

const LOG_EVERY_MS = 5000;

/**
 * A progress bar on a terminal (cli-progress, on stderr, so stdout stays the summary or JSON), or a log line
 * every few seconds otherwise (journald, CI).
 */
export function startProgress(mode: 'bar' | 'log', log: Logger, source: ProgressSource, options: ProgressOptions): Progress {
  let phase = 'scanning';
  const started = options.now();
  if (mode === 'log') {
    const timer = setInterval(() => {
      log.info({ phase, done: source.done(), total: source.total(), ms: options.now() - started }, 'reconcile progress');
    }, LOG_EVERY_MS);
    timer.unref();
    return { phase: (text) => void (phase = text), stop: () => clearInterval(timer) };
  }
  const bar = new SingleBar({
    format: 'reconcile [{bar}] {value}/{total} files | {rate} files/s | ETA {eta}s | {phase}',
    stream: options.stream,
    hideCursor: true,
    etaBuffer: 50,
  });
  // Until the scan has queued something the total is unknown: show 0 of 1, not a full bar of 0/0.
  bar.start(1, 0, { phase, rate: '0' });
  const timer = setInterval(() => {
    const seconds = Math.max(1, (options.now() - started) / 1000);
    bar.setTotal(Math.max(1, source.total(), source.done()));
    bar.update(source.done(), { phase, rate: (source.done() / seconds).toFixed(0) });
  }, 250);
  timer.unref();
  return {
    phase: (text) => void (phase = text),
    stop() {
      clearInterval(timer);
      bar.stop();
    },
  };
}
