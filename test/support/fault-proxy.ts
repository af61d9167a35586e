// A fault-injecting HTTP proxy in front of moto_server, for the faults a real server cannot produce on demand: an
// answer lost after S3 committed the write, a 5xx before or after the commit, an answer held back. Everything else
// is forwarded as is: bodies are streamed, and headers are passed on unchanged (the SDK signs the proxy's Host; moto
// does not check signatures, so nothing needs rewriting).
//
// One thing it adds that S3 has and moto lacks: a conditional write is atomic. moto's threaded server checks
// If-None-Match / If-Match, then stores, in separate steps, so two concurrent `If-None-Match: *` PUTs of one key
// both succeed (seen in about 1 round in 20 with two 100 KB bodies): two hosts racing for one file would then
// leave two versions, moto's fault, not theirs. The proxy lets one conditional write per key reach moto at a time.
// Likewise moto's AbortMultipartUpload looks the upload up and then deletes it: of two concurrent aborts of one
// upload (lib-storage's own, after its parts were cut, and the service's at stop), one fails with an HTML 500
// (a KeyError in moto), where S3 answers it 204 or 404 NoSuchUpload. One abort per upload id reaches moto at a time.
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { setMaxListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { finished, pipeline } from 'node:stream/promises';

/** What a fault's predicate sees of a request. `path` is percent-decoded (`/bucket/key`). */
export interface RequestView {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: IncomingHttpHeaders;
}

/** Which requests a fault applies to: the method, and optionally a predicate on path, query and headers. */
export interface FaultTarget {
  readonly method: string;
  readonly match?: (request: RequestView) => boolean;
}

export type FaultKind =
  /** Forward, wait for moto's whole answer (the write is committed), then destroy the client socket unanswered. */
  | { readonly kind: 'lose-answer' }
  /** Answer `status` with an S3-style XML error without forwarding: nothing is committed. */
  | { readonly kind: 'status'; readonly status: number; readonly code: string; readonly message?: string }
  /** Answer `status` with an HTML page (a proxy's error page, a wrong endpoint) without forwarding. */
  | { readonly kind: 'html'; readonly status: number }
  /** Forward, let moto commit, then answer 500 InternalError instead of moto's answer. */
  | { readonly kind: 'status-after-commit' }
  /** Forward, then hold moto's answer for `ms` before sending it; without `ms`, until stop(). */
  | { readonly kind: 'stall'; readonly ms?: number };

/** A fault for the next `times` (default 1) requests that match its target. */
export type Fault = FaultTarget & FaultKind & { readonly times?: number };

/** A request the proxy saw: what a fault's predicate saw, and what happened to it. */
export interface ProxiedRequest extends RequestView {
  /** The kind of fault applied to this request, if any. */
  faulted?: FaultKind['kind'];
  /** moto's status for this request, once moto answered (also when a fault then withheld or replaced it). */
  upstreamStatus?: number;
  /** When (performance.now(), ms) the request was sent on to moto, and when moto's answer began. */
  upstream?: { sentAt: number; answeredAt?: number };
}

export interface FaultProxy {
  /** http://127.0.0.1:<port>: give it to the S3 client instead of moto's endpoint (path-style addressing). */
  readonly endpoint: string;
  /** Queues a fault; faults are matched in the order they were injected. */
  inject(fault: Fault): void;
  /** Drops every fault not yet used up. */
  clear(): void;
  /** Every request seen, in arrival order, faulted or not. */
  readonly requests: readonly ProxiedRequest[];
  /** Closes the listener, drops every connection (stalled answers included) and the upstream sockets. */
  stop(): Promise<void>;
}

/** What a request must take turns at moto by: an object key for a conditional write, an upload id for an abort. */
function atomicTurnKey(record: RequestView): string | undefined {
  const key = objectKeyOf(record.path);
  if (key === undefined) return undefined;
  const uploadId = record.query.get('uploadId');
  if (record.method === 'DELETE' && uploadId !== null) return `abort ${uploadId}`;
  const conditional = record.headers['if-none-match'] !== undefined || record.headers['if-match'] !== undefined;
  return conditional && (record.method === 'PUT' || record.method === 'POST') ? `write ${key}` : undefined;
}

/** `/bucket/key` (path-style) → `key`; undefined for a bucket-level request. */
export function objectKeyOf(path: string): string | undefined {
  const slash = path.indexOf('/', 1);
  return slash === -1 || slash === path.length - 1 ? undefined : path.slice(slash + 1);
}

/** True when `request` is one `target` designates (the test for a fault, and for counting requests seen). */
export function matches(target: FaultTarget, request: RequestView): boolean {
  return request.method === target.method && (target.match?.(request) ?? true);
}

function onObject(key: string | undefined, request: RequestView): boolean {
  const requestKey = objectKeyOf(request.path);
  return requestKey !== undefined && (key === undefined || requestKey === key);
}

/** Targets for the S3 requests the tests fault. `key` narrows to one object key (path-style requests). */
export const target = {
  /** A single-request PutObject: a PUT on an object, not a part and not a copy. */
  putObject: (key?: string): FaultTarget => ({
    method: 'PUT',
    match: (r) =>
      onObject(key, r) && !r.query.has('uploadId') && !r.query.has('partNumber') && r.headers['x-amz-copy-source'] === undefined,
  }),
  /** One part of a multipart upload; `partNumber` narrows to that part. */
  uploadPart: (key?: string, partNumber?: number): FaultTarget => ({
    method: 'PUT',
    match: (r) =>
      onObject(key, r) &&
      r.query.has('uploadId') &&
      r.query.has('partNumber') &&
      (partNumber === undefined || r.query.get('partNumber') === String(partNumber)),
  }),
  /** The request that makes a multipart upload an object. */
  completeMultipartUpload: (key?: string): FaultTarget => ({
    method: 'POST',
    match: (r) => onObject(key, r) && r.query.has('uploadId'),
  }),
  headObject: (key?: string): FaultTarget => ({ method: 'HEAD', match: (r) => onObject(key, r) }),
} as const;

// Hop-by-hop headers belong to one connection: the proxy's own connection to moto sets its own. `expect` is
// answered by the proxy itself (Node sends the 100 Continue), so the body is already on its way. None is signed.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']);

/** Starts the proxy on a free loopback port, forwarding to `upstream` (plain http, e.g. moto's endpoint). */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const upstreamUrl = new URL(upstream);
  const agent = new Agent({ keepAlive: true });
  const faults: { fault: Fault; remaining: number }[] = [];
  const requests: ProxiedRequest[] = [];
  const stopping = new AbortController();
  // Every held answer listens on it until released: sixteen held at once are no leak (no MaxListenersExceededWarning).
  setMaxListeners(0, stopping.signal);
  /** Per object key (a conditional write) or upload id (an abort): the request now at moto; the next one waits for its answer. */
  const inTurn = new Map<string, Promise<void>>();

  function takeFault(view: RequestView): Fault | undefined {
    const index = faults.findIndex(({ fault }) => matches(fault, view));
    const entry = faults[index];
    if (!entry) return undefined;
    entry.remaining -= 1;
    if (entry.remaining <= 0) faults.splice(index, 1);
    return entry.fault;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://proxy');
    const method = req.method ?? 'GET';
    const view: RequestView = { method, path: safeDecode(url.pathname), query: url.searchParams, headers: req.headers };
    const record: ProxiedRequest = { ...view };
    requests.push(record);
    const fault = takeFault(view);
    if (fault) record.faulted = fault.kind;

    if (fault?.kind === 'status' || fault?.kind === 'html') {
      // Read the body to its end first: answering mid-body would turn the fault into a reset connection.
      await finished(req.resume());
      if (fault.kind === 'html') sendHtmlPage(res, fault.status);
      else sendS3Error(res, fault.status, fault.code, fault.message ?? fault.code, view.path);
      return;
    }

    const answer = await forwardAtomically(req, url, record);
    record.upstreamStatus = answer.statusCode;
    if (fault === undefined) {
      res.writeHead(answer.statusCode ?? 502, answerHeaders(answer));
      await pipeline(answer, res);
      return;
    }
    // Read moto's whole answer before faulting: once it is in, the write is committed.
    const chunks: Buffer[] = [];
    for await (const chunk of answer) chunks.push(chunk as Buffer);
    switch (fault.kind) {
      case 'lose-answer':
        // The client hears nothing but a dropped connection.
        req.socket.destroy();
        return;
      case 'status-after-commit':
        sendS3Error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.', view.path);
        return;
      case 'stall':
        await holdFor(fault.ms, stopping.signal);
        if (stopping.signal.aborted) {
          req.socket.destroy();
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answerHeaders(answer));
        res.end(Buffer.concat(chunks));
        return;
    }
  }

  /**
   * forward(), one conditional write (If-None-Match or If-Match on an object's PUT or POST) per key, and one
   * AbortMultipartUpload per upload id, at a time, as S3 commits them: held until moto's answer to the one
   * before has begun (it acts before it answers), not until a fault lets that answer through, so a stalled
   * answer does not stall the next one.
   */
  async function forwardAtomically(req: IncomingMessage, url: URL, record: ProxiedRequest): Promise<IncomingMessage> {
    const turnKey = atomicTurnKey(record);
    if (turnKey === undefined) return forward(req, url, record);
    const before = inTurn.get(turnKey) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const turn = before.then(() => mine);
    inTurn.set(turnKey, turn);
    await before;
    try {
      return await forward(req, url, record);
    } finally {
      release();
      if (inTurn.get(turnKey) === turn) inTurn.delete(turnKey);
    }
  }

  /** Sends the request to upstream with its body streamed; resolves with upstream's answer, body unread. */
  async function forward(req: IncomingMessage, url: URL, record: ProxiedRequest): Promise<IncomingMessage> {
    const upstream: NonNullable<ProxiedRequest['upstream']> = { sentAt: performance.now() };
    record.upstream = upstream;
    const headers = Object.fromEntries(Object.entries(req.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
    const outgoing = httpRequest({
      agent,
      protocol: upstreamUrl.protocol,
      hostname: upstreamUrl.hostname,
      port: upstreamUrl.port,
      method: req.method,
      path: url.pathname + url.search,
      headers,
    });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      outgoing.once('response', (response) => {
        upstream.answeredAt = performance.now();
        resolve(response);
      });
      outgoing.once('error', reject);
    });
    // If the body fails, pipeline's rejection is the one to report; this one must not go unhandled meanwhile.
    response.catch(() => undefined);
    await pipeline(req, outgoing);
    return response;
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // The client went away, or upstream failed: a 502 if nothing was sent yet, else drop the connection.
      if (!res.headersSent && !req.socket.destroyed) {
        sendS3Error(res, 502, 'BadGateway', `fault proxy: ${error instanceof Error ? error.message : String(error)}`, req.url ?? '');
      } else {
        req.socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    inject(fault) {
      faults.push({ fault, remaining: fault.times ?? 1 });
    },
    clear() {
      faults.length = 0;
    },
    async stop() {
      stopping.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      agent.destroy();
      await closed;
    },
  };
}

/** Upstream's headers minus hop-by-hop ones; `content-length` (a HEAD's object size too) passes unchanged. */
function answerHeaders(answer: IncomingMessage): IncomingHttpHeaders {
  return Object.fromEntries(Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)));
}

function sendS3Error(res: ServerResponse, status: number, code: string, message: string, resource: string): void {
  const body = Buffer.from(
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message>` +
      `<Resource>${escapeXml(resource)}</Resource><RequestId>fault-proxy</RequestId></Error>`,
  );
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': body.length, 'x-amz-request-id': 'fault-proxy' });
  res.end(body);
}

/** What a proxy or a web server that is not S3 answers: an HTML page, no S3 headers. */
export function sendHtmlPage(res: ServerResponse, status: number): void {
  const body = Buffer.from(`<!DOCTYPE html>\n<html><head><title>${status} Not S3</title></head><body><h1>${status}</h1><p>nginx</p></body></html>\n`);
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, server: 'nginx' });
  res.end(body);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function safeDecode(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** Resolves after `ms`, or when `signal` aborts; without `ms`, only then. */
function holdFor(ms: number | undefined, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
