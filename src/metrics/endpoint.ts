import type { Logger } from 'pino';
import type { MetricsConfig } from '../config.js';
import { assessHealth } from './health.js';
import { PrometheusMetrics, type ScrapeSources } from './prometheus.js';
import { startMetricsServer, type MetricsServer } from './server.js';

/** What the endpoint reads from the running service. */
export interface EndpointSources extends ScrapeSources {
  readonly ledgerOpen: () => boolean;
}

/** The shortest heartbeat period: a tiny s3_stale_seconds must not turn the heartbeat into a request loop. */
const MIN_HEARTBEAT_MS = 250;

/**
 * `[metrics]` of a running `watch`: the Prometheus adapter the core reports to, the HTTP endpoint
 * (/metrics, /healthz), and the S3 heartbeat that keeps /healthz's S3 check true on an idle service.
 */
export class MetricsEndpoint {
  readonly metrics: PrometheusMetrics;
  private server: MetricsServer | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: MetricsConfig,
    targets: readonly string[],
    private readonly now: () => number,
  ) {
    this.metrics = new PrometheusMetrics(targets, now);
  }

  /**
   * Starts serving. @returns the port bound.
   * @throws MetricsListenError naming metrics.listen and `source` (the port taken, say).
   */
  async listen(source: string, sources: EndpointSources, log: Logger): Promise<number> {
    const staleMs = this.config.s3StaleSeconds * 1000;
    this.server = await startMetricsServer(this.config.listen, source, {
      metrics: async () => ({ body: await this.metrics.scrape(sources), contentType: this.metrics.contentType }),
      health: () =>
        assessHealth({
          nowMs: this.now(),
          ledgerOpen: sources.ledgerOpen(),
          s3: { lastAnswerAtMs: this.metrics.s3.lastAnswerAtMs, lastFailure: this.metrics.s3.lastFailure },
          s3StaleMs: staleMs,
          watch: sources.watchHealth(),
        }),
      onError: (error) => log.error({ error }, 'metrics scrape failed'),
    });
    log.info({ listen: `${this.config.listen.host}:${this.server.port}`, paths: ['/metrics', '/healthz'] }, 'metrics endpoint listening');
    return this.server.port;
  }

  /**
   * Asks S3 (`ping`) whenever it has not answered for half of s3_stale_seconds, one request at a time, so an
   * idle service's /healthz still knows; a busy one never pings (its own requests are the answers).
   */
  startHeartbeat(ping: (timeoutMs: number) => Promise<void>): void {
    const halfMs = (this.config.s3StaleSeconds * 1000) / 2;
    let inFlight = false;
    const tick = (): void => {
      const last = this.metrics.s3.lastAnswerAtMs;
      if (inFlight || (last !== undefined && this.now() - last < halfMs)) return;
      inFlight = true;
      void ping(halfMs).finally(() => (inFlight = false));
    };
    this.heartbeat = setInterval(tick, Math.max(MIN_HEARTBEAT_MS, halfMs / 2));
    this.heartbeat.unref();
    tick();
  }

  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.server?.close();
  }
}
