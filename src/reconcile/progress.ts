import type { Logger } from 'pino';

/** What a one-shot pass shows while it runs. */
export interface Progress {
  /** What the pass is doing now (scanning, waiting for N files to settle, uploading). */
  phase(text: string): void;
  stop(): void;
}

/** The counters a progress display shows, as they stand. */
export interface ProgressCounts {
  readonly dirsScanned: number;
  readonly filesScanned: number;
  /** Files known to need archiving so far (queued by the scan, or re-queued by --verify). */
  readonly queued: number;
  /** Files whose archive finished (archived, duplicate, or failed) so far. */
  readonly done: number;
  /** Files uploaded to S3 (archived, not duplicates). */
  readonly uploaded: number;
  /** Bytes of the objects uploaded. */
  readonly bytesUploaded: number;
}

/** Polled, so the pipeline never knows it is being watched. */
export type ProgressSource = () => ProgressCounts;

export interface ProgressOptions {
  readonly now: () => number;
  /** Where the bar is drawn (stderr: stdout stays the summary or the JSON). */
  readonly stream: NodeJS.WritableStream;
}

const LOG_EVERY_MS = 5000;
const DRAW_EVERY_MS = 250;

/**
 * A progress bar on a terminal (cli-progress, on stderr, so stdout stays the summary or JSON), or a log line
 * every few seconds otherwise (journald, CI), with the same counts, rate and ETA.
 */
export async function startProgress(mode: 'bar' | 'log', log: Logger, source: ProgressSource, options: ProgressOptions): Promise<Progress> {
  let phase = 'scanning';
  const started = options.now();
  const seconds = (): number => Math.max(0.001, (options.now() - started) / 1000);
  if (mode === 'log') {
    const timer = setInterval(() => {
      const counts = source();
      const filesPerSecond = counts.done / seconds();
      log.info(
        { phase, ...counts, filesPerSecond: Math.round(filesPerSecond), etaSeconds: etaSeconds(counts, filesPerSecond), ms: options.now() - started },
        'reconcile progress',
      );
    }, LOG_EVERY_MS);
    timer.unref();
    return { phase: (text) => void (phase = text), stop: () => clearInterval(timer) };
  }
  // Loaded only for a terminal: a command run by cron or CI never pays for it.
  const { SingleBar } = await import('cli-progress');
  const bar = new SingleBar({
    format:
      'reconcile [{bar}] {value}/{total} files | {dirs} dirs, {scanned} files scanned | {uploaded} uploaded, {bytes} | {rate} files/s | ETA {etaText} | {phase}',
    stream: options.stream,
    hideCursor: true,
  });
  const payload = (counts: ProgressCounts) => {
    const filesPerSecond = counts.done / seconds();
    const eta = etaSeconds(counts, filesPerSecond);
    return {
      phase,
      dirs: counts.dirsScanned,
      scanned: counts.filesScanned,
      uploaded: counts.uploaded,
      bytes: formatBytes(counts.bytesUploaded),
      rate: filesPerSecond.toFixed(0),
      etaText: eta === null ? '?' : `${eta}s`,
    };
  };
  // Until the scan has queued something the total is unknown: show 0 of 1, not a full bar of 0/0.
  bar.start(1, 0, payload(source()));
  const timer = setInterval(() => {
    const counts = source();
    bar.setTotal(Math.max(1, counts.queued, counts.done));
    bar.update(counts.done, payload(counts));
  }, DRAW_EVERY_MS);
  timer.unref();
  return {
    phase: (text) => void (phase = text),
    stop() {
      clearInterval(timer);
      bar.stop();
    },
  };
}

/** Seconds left at the rate so far, or null while there is no rate to go by. */
function etaSeconds(counts: ProgressCounts, filesPerSecond: number): number | null {
  if (filesPerSecond <= 0) return null;
  return Math.round(Math.max(0, counts.queued - counts.done) / filesPerSecond);
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
