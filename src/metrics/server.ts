import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { describeCause, errnoCode, SftppushError } from '../errors.js';
import type { HealthReport } from './health.js';
import type { ListenAddress } from './listen-address.js';

/** `metrics.listen` could not be bound (the port taken, a foreign address). Exit 1: the host, not the file, is at fault. */
export class MetricsListenError extends SftppushError {
  constructor(listen: ListenAddress, source: string, cause: unknown) {
    const code = errnoCode(cause);
    const why =
      code === 'EADDRINUSE'
        ? 'the port is already in use by another process (another sftppush?): stop it or pick another port'
        : code === 'EADDRNOTAVAIL'
          ? 'no interface of this host has that address'
          : code === 'EACCES'
            ? 'permission denied (ports below 1024 need privileges)'
            : describeCause(cause);
    super('E_METRICS_LISTEN', `metrics.listen = "${formatAddress(listen)}" in ${source}: cannot listen: ${why}`, { cause });
  }
}

/** What the endpoint serves. */
export interface EndpointHandlers {
  /** The Prometheus text exposition. @throws when the ledger cannot be read (answered 500). */
  readonly metrics: () => Promise<{ body: string; contentType: string }>;
  readonly health: () => HealthReport;
  /** A scrape failed: log it (the scraper sees a 500). */
  readonly onError: (error: unknown) => void;
}

/** The listening endpoint: GET /metrics, GET /healthz (200, or 503 with the problems), 404 otherwise. */
export interface MetricsServer {
  /** The port bound (the configured one). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Binds `listen` and serves the handlers.
 * @throws MetricsListenError naming the key when the address cannot be bound.
 */
export async function startMetricsServer(listen: ListenAddress, source: string, handlers: EndpointHandlers): Promise<MetricsServer> {
  const server = createServer((request, response) => void respond(request, response, handlers));
  // A scraper's idle keep-alive socket must not hold up the service's exit.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new MetricsListenError(listen, source, error)));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : listen.port,
    close: () => closeServer(server),
  };
}

async function respond(request: IncomingMessage, response: ServerResponse, handlers: EndpointHandlers): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (path === '/metrics') {
    try {
      const { body, contentType } = await handlers.metrics();
      response.writeHead(200, { 'content-type': contentType }).end(body);
    } catch (error) {
      handlers.onError(error);
      response.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot read metrics: ${describeCause(error)}\n`);
    }
    return;
  }
  if (path === '/healthz') {
    const report = handlers.health();
    response
      .writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' })
      .end(`${JSON.stringify(report)}\n`);
    return;
  }
  response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function formatAddress(listen: ListenAddress): string {
  return listen.host.includes(':') ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
}
