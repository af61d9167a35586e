/**
 * A benchmark-only S3 endpoint (never part of the product): node:http on loopback that checks what S3 checks
 * and throws the bytes away, so a benchmark measures the client, not the server. moto_server is single-threaded
 * Python and caps every client near 200-350 small objects/s; this one is not the bottleneck.
 *
 * What it does as S3 does: path-style buckets (CreateBucket, HeadBucket, Get/PutBucketVersioning, ListObjects
 * v1 and v2 with prefix, delimiter and paging, ListMultipartUploads); objects (PutObject, HeadObject,
 * DeleteObject of a version or by delete marker); multipart uploads (Create, UploadPart, Complete with part
 * ETags, order and 5 MiB minimum checked, Abort); If-None-Match: * and If-Match on PutObject and on
 * CompleteMultipartUpload (412, or 404 NoSuchKey for If-Match on no object); versions; metadata, content type,
 * server-side encryption header and tags kept; the body's SHA-256 checked against x-amz-content-sha256 (when a
 * hex digest), x-amz-checksum-sha256 (header or aws-chunked trailer) and Content-MD5, CRC32 too, each a 400
 * BadDigest (or XAmzContentSHA256Mismatch) when it differs; ETag the MD5 (multipart: MD5 of the part MD5s,
 * `-N`), checksums answered (a multipart object's SHA-256 is S3's composite, `-N`).
 * What it does not: signatures (any credentials pass), GetObject (the bytes are gone: `retainBodies` keeps
 * them in memory for tests, read through `versions()`), CopyObject, ACLs, lifecycle.
 *
 *   node dist/bench/sink.js            prints {"endpoint":"http://127.0.0.1:PORT"} once listening; SIGTERM ends it
 *   GET /__sink/stats                  {"requests":{"PutObject":N,...},"objects":N,"versions":N,"bytes":N}
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

/** One stored version's facts (its bytes only with `retainBodies`). */
export interface SinkVersion {
  readonly versionId: string;
  readonly deleteMarker: boolean;
  readonly sizeBytes: number;
  /** Quoted, as S3 sends it. */
  readonly etag: string;
  /** Base64; a multipart object's is the composite `…-N`. */
  readonly checksumSha256: string | undefined;
  readonly checksumCrc32: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly contentType: string | undefined;
  readonly sse: string | undefined;
  readonly tags: Readonly<Record<string, string>>;
  readonly lastModified: Date;
  readonly body: Buffer | undefined;
}

export interface SinkOptions {
  /** Keep every version's bytes in memory (tests compare them); the benchmark keeps none. */
  readonly retainBodies?: boolean;
}

export interface Sink {
  readonly endpoint: string;
  /** Every version of a key, oldest first (delete markers included). */
  versions(bucket: string, key: string): readonly SinkVersion[];
  /** Multipart uploads begun and neither completed nor aborted, in every bucket. */
  openUploads(): number;
  /** Requests answered so far, by S3 operation name. */
  requestCounts(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

interface Part {
  readonly sizeBytes: number;
  readonly etag: string;
  readonly md5: Buffer;
  readonly sha256: Buffer;
  readonly body: Buffer | undefined;
}

interface Upload {
  readonly key: string;
  readonly uploadId: string;
  readonly initiated: Date;
  readonly attributes: Attributes;
  readonly parts: Map<number, Part>;
}

/** What a PUT or a CreateMultipartUpload says about the object, apart from its bytes. */
interface Attributes {
  readonly metadata: Record<string, string>;
  readonly contentType: string | undefined;
  readonly sse: string | undefined;
  readonly tags: Record<string, string>;
}

interface Bucket {
  versioning: 'Enabled' | 'Suspended' | undefined;
  readonly objects: Map<string, SinkVersion[]>;
  readonly uploads: Map<string, Upload>;
  /** Keys in UTF-8 byte order, rebuilt on the next listing after a new key. */
  sorted: string[] | undefined;
}

/** An S3 error answer. */
class S3Error extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_KEYS = 1000;

/** The body of a PUT, decoded (aws-chunked framing removed), with its digests and any trailing headers. */
interface ReceivedBody {
  readonly sizeBytes: number;
  readonly md5: Buffer;
  readonly sha256: Buffer;
  readonly crc32: number;
  readonly trailers: Record<string, string>;
  readonly body: Buffer | undefined;
}

/**
 * Reads a request body to its end, hashing as it goes. aws-chunked bodies (`Content-Encoding: aws-chunked`,
 * or a STREAMING-* x-amz-content-sha256) are unframed: `hex-size[;ext]\r\n bytes \r\n … 0\r\n trailers \r\n`.
 */
async function receiveBody(request: IncomingMessage, retain: boolean): Promise<ReceivedBody> {
  const md5 = createHash('md5');
  const sha256 = createHash('sha256');
  let crc32 = 0;
  let sizeBytes = 0;
  const kept: Buffer[] = [];
  // CRC32 only when the client sends one (botocore does): it is a third pass over every byte.
  const wantsCrc32 = request.headers['x-amz-checksum-crc32'] !== undefined || /crc32(?!c)/i.test(String(request.headers['x-amz-trailer'] ?? ''));
  const take = (bytes: Buffer): void => {
    md5.update(bytes);
    sha256.update(bytes);
    if (wantsCrc32) crc32 = zlib.crc32(bytes, crc32);
    sizeBytes += bytes.length;
    if (retain) kept.push(bytes);
  };
  const contentSha = String(request.headers['x-amz-content-sha256'] ?? '');
  const chunked = /aws-chunked/.test(String(request.headers['content-encoding'] ?? '')) || contentSha.startsWith('STREAMING-');
  const unframe = chunked ? new AwsChunkedDecoder(take) : undefined;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    if (unframe) unframe.write(chunk);
    else take(chunk);
  }
  if (unframe && !unframe.ended) throw new S3Error(400, 'IncompleteBody', 'the aws-chunked body ended before its final chunk');
  return { sizeBytes, md5: md5.digest(), sha256: sha256.digest(), crc32, trailers: unframe?.trailers ?? {}, body: retain ? Buffer.concat(kept) : undefined };
}

/** Removes aws-chunked framing from a byte stream, handing on the payload and collecting the trailers. */
class AwsChunkedDecoder {
  readonly trailers: Record<string, string> = {};
  ended = false;
  private pending = Buffer.alloc(0);
  /** Payload bytes still due in the current chunk, then its CRLF. */
  private remaining = 0;
  private inTrailers = false;

  constructor(private readonly take: (bytes: Buffer) => void) {}

  write(chunk: Buffer): void {
    let data = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    for (;;) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, data.length);
        this.take(data.subarray(0, n));
        this.remaining -= n;
        data = data.subarray(n);
        if (this.remaining > 0) break;
        this.remaining = -2; // the CRLF after the chunk
      }
      if (this.remaining < 0) {
        if (data.length < 2) break;
        data = data.subarray(2);
        this.remaining = 0;
      }
      const eol = data.indexOf('\r\n');
      if (eol < 0) break;
      const line = data.subarray(0, eol).toString('latin1');
      data = data.subarray(eol + 2);
      if (this.inTrailers) {
        if (line === '') {
          this.ended = true;
          break;
        }
        const colon = line.indexOf(':');
        this.trailers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        continue;
      }
      const size = parseInt(line.split(';')[0] ?? '', 16);
      if (!Number.isFinite(size)) throw new S3Error(400, 'InvalidRequest', `bad aws-chunked chunk header: ${line.slice(0, 40)}`);
      if (size === 0) this.inTrailers = true;
      else this.remaining = size;
    }
    this.pending = Buffer.from(data);
    // A body that ends at the zero chunk without a blank line after trailers (some clients) is complete too.
    if (this.inTrailers && this.pending.length === 0) this.ended = true;
  }
}

/** Checks every digest the client sent against the bytes, as S3 does. @throws S3Error */
function checkDigests(headers: IncomingMessage['headers'], received: ReceivedBody): void {
  const contentSha = String(headers['x-amz-content-sha256'] ?? '');
  if (/^[0-9a-f]{64}$/.test(contentSha) && contentSha !== received.sha256.toString('hex')) {
    throw new S3Error(400, 'XAmzContentSHA256Mismatch', "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }
  const md5 = headers['content-md5'];
  if (md5 !== undefined && md5 !== received.md5.toString('base64')) throw new S3Error(400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
  const sha256 = checksumHeader(headers, received, 'x-amz-checksum-sha256');
  if (sha256 !== undefined && sha256 !== received.sha256.toString('base64')) {
    throw new S3Error(400, 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
  }
  const crc32 = checksumHeader(headers, received, 'x-amz-checksum-crc32');
  if (crc32 !== undefined && crc32 !== crc32Base64(received.crc32)) throw new S3Error(400, 'BadDigest', 'The CRC32 you specified did not match the calculated checksum.');
  const declared = headers['x-amz-decoded-content-length'];
  if (declared !== undefined && Number(declared) !== received.sizeBytes) throw new S3Error(400, 'IncompleteBody', 'The request body is not as long as x-amz-decoded-content-length');
}

function checksumHeader(headers: IncomingMessage['headers'], received: ReceivedBody, name: string): string | undefined {
  const value = headers[name] ?? received.trailers[name];
  return typeof value === 'string' ? value : undefined;
}

function crc32Base64(crc: number): string {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc >>> 0);
  return bytes.toString('base64');
}

function attributesOf(headers: IncomingMessage['headers']): Attributes {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
  }
  const tagging = headers['x-amz-tagging'];
  return {
    metadata,
    contentType: headers['content-type'],
    sse: headerString(headers['x-amz-server-side-encryption']),
    tags: typeof tagging === 'string' ? Object.fromEntries(new URLSearchParams(tagging)) : {},
  };
}

function headerString(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function xmlEscape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function xml(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</${root}>`;
}

/** The bare value of an ETag (S3 compares them without quotes). */
function bareEtag(etag: string): string {
  return etag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Starts a sink on 127.0.0.1 at `port` (0: any free port). */
export async function startSink(options: SinkOptions = {}, port = 0): Promise<Sink> {
  const retain = options.retainBodies ?? false;
  const buckets = new Map<string, Bucket>();
  const counts: Record<string, number> = {};
  let nextVersion = 0;
  let nextUpload = 0;
  let storedBytes = 0;

  const bucketOf = (name: string): Bucket => {
    const bucket = buckets.get(name);
    if (!bucket) throw new S3Error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    return bucket;
  };
  const latest = (bucket: Bucket, key: string): SinkVersion | undefined => {
    const current = bucket.objects.get(key)?.at(-1);
    return current?.deleteMarker ? undefined : current;
  };
  const newVersionId = (): string => `v${Date.now().toString(36)}.${(nextVersion++).toString(36).padStart(6, '0')}`;

  /** If-None-Match: * and If-Match, checked as the write commits (one event-loop turn: no other write between). */
  const checkConditions = (bucket: Bucket, key: string, headers: IncomingMessage['headers']): void => {
    const current = latest(bucket, key);
    const ifNoneMatch = headerString(headers['if-none-match']);
    if (ifNoneMatch !== undefined && current && (ifNoneMatch.trim() === '*' || bareEtag(ifNoneMatch) === bareEtag(current.etag))) {
      throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    }
    const ifMatch = headerString(headers['if-match']);
    if (ifMatch === undefined) return;
    if (!current) throw new S3Error(404, 'NoSuchKey', 'The specified key does not exist.');
    if (ifMatch.trim() !== '*' && bareEtag(ifMatch) !== bareEtag(current.etag)) {
      throw new S3Error(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
    }
  };

  const store = (bucket: Bucket, key: string, version: Omit<SinkVersion, 'versionId' | 'deleteMarker' | 'lastModified'>): SinkVersion => {
    const stored: SinkVersion = { ...version, versionId: bucket.versioning ? newVersionId() : 'null', deleteMarker: false, lastModified: new Date() };
    const versions = bucket.objects.get(key);
    if (!versions) {
      bucket.objects.set(key, [stored]);
      bucket.sorted = undefined;
    } else if (bucket.versioning === 'Enabled') {
      versions.push(stored);
    } else {
      versions.splice(0, versions.length, stored);
    }
    storedBytes += version.sizeBytes;
    return stored;
  };

  const versionHeaders = (bucket: Bucket, version: SinkVersion): Record<string, string> =>
    bucket.versioning ? { 'x-amz-version-id': version.versionId } : {};

  async function putObject(request: IncomingMessage, response: ServerResponse, bucket: Bucket, key: string): Promise<void> {
    if (request.headers['x-amz-copy-source'] !== undefined) throw new S3Error(501, 'NotImplemented', 'CopyObject is not part of the sink');
    const received = await receiveBody(request, retain);
    checkDigests(request.headers, received);
    checkConditions(bucket, key, request.headers);
    const wantsSha = /sha256/i.test(String(request.headers['x-amz-sdk-checksum-algorithm'] ?? request.headers['x-amz-checksum-algorithm'] ?? ''));
    const sha256 = checksumHeader(request.headers, received, 'x-amz-checksum-sha256') ?? (wantsSha ? received.sha256.toString('base64') : undefined);
    const crc32 = checksumHeader(request.headers, received, 'x-amz-checksum-crc32');
    const version = store(bucket, key, {
      ...attributesOf(request.headers),
      sizeBytes: received.sizeBytes,
      etag: `"${received.md5.toString('hex')}"`,
      checksumSha256: sha256,
      checksumCrc32: crc32,
      body: received.body,
    });
    response.writeHead(200, {
      ETag: version.etag,
      ...versionHeaders(bucket, version),
      ...(sha256 ? { 'x-amz-checksum-sha256': sha256 } : {}),
      ...(crc32 ? { 'x-amz-checksum-crc32': crc32 } : {}),
      ...(version.sse ? { 'x-amz-server-side-encryption': version.sse } : {}),
    });
    response.end();
  }

  function headObject(request: IncomingMessage, response: ServerResponse, bucket: Bucket, key: string, query: URLSearchParams): void {
    const versionId = query.get('versionId');
    const version = versionId === null ? latest(bucket, key) : bucket.objects.get(key)?.find((v) => v.versionId === versionId);
    if (!version || version.deleteMarker) throw new S3Error(404, 'NotFound', 'Not Found');
    const withChecksum = String(request.headers['x-amz-checksum-mode'] ?? '').toUpperCase() === 'ENABLED';
    response.writeHead(200, {
      ETag: version.etag,
      'Content-Length': version.sizeBytes,
      'Last-Modified': version.lastModified.toUTCString(),
      'Accept-Ranges': 'bytes',
      ...versionHeaders(bucket, version),
      ...(version.contentType ? { 'Content-Type': version.contentType } : {}),
      ...(version.sse ? { 'x-amz-server-side-encryption': version.sse } : {}),
      ...(withChecksum && version.checksumSha256 ? { 'x-amz-checksum-sha256': version.checksumSha256 } : {}),
      ...(withChecksum && version.checksumCrc32 ? { 'x-amz-checksum-crc32': version.checksumCrc32 } : {}),
      ...Object.fromEntries(Object.entries(version.metadata).map(([name, value]) => [`x-amz-meta-${name}`, value])),
    });
    response.end();
  }

  function deleteObject(response: ServerResponse, bucket: Bucket, key: string, query: URLSearchParams): void {
    const versionId = query.get('versionId');
    const versions = bucket.objects.get(key) ?? [];
    if (versionId !== null) {
      const index = versions.findIndex((v) => v.versionId === versionId);
      if (index >= 0) versions.splice(index, 1);
      response.writeHead(204, { 'x-amz-version-id': versionId });
    } else if (bucket.versioning === 'Enabled') {
      const marker = { ...emptyVersion(), versionId: newVersionId(), deleteMarker: true };
      if (versions.length === 0) bucket.objects.set(key, versions);
      versions.push(marker);
      response.writeHead(204, { 'x-amz-version-id': marker.versionId, 'x-amz-delete-marker': 'true' });
    } else {
      bucket.objects.delete(key);
      bucket.sorted = undefined;
      response.writeHead(204);
    }
    response.end();
  }

  async function createUpload(request: IncomingMessage, response: ServerResponse, bucketName: string, bucket: Bucket, key: string): Promise<void> {
    await receiveBody(request, false);
    const uploadId = `u${(nextUpload++).toString(36)}.${Date.now().toString(36)}`;
    bucket.uploads.set(uploadId, { key, uploadId, initiated: new Date(), attributes: attributesOf(request.headers), parts: new Map() });
    const algorithm = headerString(request.headers['x-amz-checksum-algorithm']);
    response.writeHead(200, { 'Content-Type': 'application/xml', ...(algorithm ? { 'x-amz-checksum-algorithm': algorithm } : {}) });
    response.end(xml('InitiateMultipartUploadResult', `<Bucket>${xmlEscape(bucketName)}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${uploadId}</UploadId>`));
  }

  const uploadOf = (bucket: Bucket, key: string, uploadId: string): Upload => {
    const upload = bucket.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new S3Error(404, 'NoSuchUpload', 'The specified upload does not exist.');
    return upload;
  };

  async function uploadPart(request: IncomingMessage, response: ServerResponse, bucket: Bucket, key: string, query: URLSearchParams): Promise<void> {
    const received = await receiveBody(request, retain);
    const upload = uploadOf(bucket, key, query.get('uploadId') ?? '');
    const partNumber = Number(query.get('partNumber'));
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) throw new S3Error(400, 'InvalidArgument', 'Part number must be an integer between 1 and 10000');
    checkDigests(request.headers, received);
    const part: Part = { sizeBytes: received.sizeBytes, etag: `"${received.md5.toString('hex')}"`, md5: received.md5, sha256: received.sha256, body: received.body };
    upload.parts.set(partNumber, part);
    const sha256 = checksumHeader(request.headers, received, 'x-amz-checksum-sha256');
    response.writeHead(200, { ETag: part.etag, ...(sha256 ? { 'x-amz-checksum-sha256': sha256 } : {}) });
    response.end();
  }

  async function completeUpload(request: IncomingMessage, response: ServerResponse, bucketName: string, bucket: Bucket, key: string, query: URLSearchParams): Promise<void> {
    const text = (await receiveBody(request, true)).body!.toString('utf8');
    const upload = uploadOf(bucket, key, query.get('uploadId') ?? '');
    const listed = [...text.matchAll(/<Part>([\s\S]*?)<\/Part>/g)].map((m) => ({
      number: Number(/<PartNumber>(\d+)<\/PartNumber>/.exec(m[1] ?? '')?.[1]),
      etag: /<ETag>([^<]*)<\/ETag>/.exec(m[1] ?? '')?.[1]?.replace(/&quot;/g, '"').replace(/&#34;/g, '"') ?? '',
    }));
    if (listed.length === 0) throw new S3Error(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema');
    const parts: Part[] = [];
    for (const [index, entry] of listed.entries()) {
      if (index > 0 && entry.number <= listed[index - 1]!.number) throw new S3Error(400, 'InvalidPartOrder', 'The list of parts was not in ascending order.');
      const part = upload.parts.get(entry.number);
      if (!part || bareEtag(part.etag) !== bareEtag(entry.etag)) throw new S3Error(400, 'InvalidPart', `One or more of the specified parts could not be found: part ${entry.number}`);
      parts.push(part);
    }
    if (parts.slice(0, -1).some((p) => p.sizeBytes < MIN_PART_BYTES)) throw new S3Error(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed object size.');
    // A failed precondition leaves the upload open, as on S3: the client aborts it (lib-storage does).
    checkConditions(bucket, key, request.headers);
    const etag = `"${createHash('md5').update(Buffer.concat(parts.map((p) => p.md5))).digest('hex')}-${parts.length}"`;
    const checksumSha256 = `${createHash('sha256').update(Buffer.concat(parts.map((p) => p.sha256))).digest('base64')}-${parts.length}`;
    const version = store(bucket, key, {
      ...upload.attributes,
      sizeBytes: parts.reduce((sum, p) => sum + p.sizeBytes, 0),
      etag,
      checksumSha256,
      checksumCrc32: undefined,
      body: retain ? Buffer.concat(parts.map((p) => p.body ?? Buffer.alloc(0))) : undefined,
    });
    bucket.uploads.delete(upload.uploadId);
    response.writeHead(200, { 'Content-Type': 'application/xml', ...versionHeaders(bucket, version), ...(version.sse ? { 'x-amz-server-side-encryption': version.sse } : {}) });
    response.end(
      xml(
        'CompleteMultipartUploadResult',
        `<Location>/${xmlEscape(bucketName)}/${xmlEscape(key)}</Location><Bucket>${xmlEscape(bucketName)}</Bucket><Key>${xmlEscape(key)}</Key>` +
          `<ETag>${xmlEscape(etag)}</ETag><ChecksumSHA256>${checksumSha256}</ChecksumSHA256>`,
      ),
    );
  }

  function abortUpload(response: ServerResponse, bucket: Bucket, key: string, query: URLSearchParams): void {
    const upload = uploadOf(bucket, key, query.get('uploadId') ?? '');
    bucket.uploads.delete(upload.uploadId);
    response.writeHead(204);
    response.end();
  }

  /** ListObjects (v1: marker) and ListObjectsV2 (continuation-token, start-after), with prefix and delimiter. */
  function listObjects(response: ServerResponse, bucketName: string, bucket: Bucket, query: URLSearchParams): void {
    const v2 = query.get('list-type') === '2';
    const prefix = query.get('prefix') ?? '';
    const delimiter = query.get('delimiter') ?? '';
    const maxKeys = Math.min(MAX_KEYS, Number(query.get('max-keys') ?? MAX_KEYS));
    const urlEncoded = query.get('encoding-type') === 'url';
    const encode = (text: string): string => xmlEscape(urlEncoded ? encodeURIComponent(text).replace(/%2F/g, '/') : text);
    const after = (v2 ? (query.get('continuation-token') ?? query.get('start-after')) : query.get('marker')) ?? '';
    bucket.sorted ??= [...bucket.objects.keys()].sort(compareUtf8);
    const contents: string[] = [];
    const prefixes = new Set<string>();
    let last = '';
    let truncated = false;
    for (const key of bucket.sorted) {
      if (!key.startsWith(prefix) || (after && compareUtf8(key, after) <= 0)) continue;
      const current = latest(bucket, key);
      if (!current) continue;
      const rest = key.slice(prefix.length);
      const cut = delimiter ? rest.indexOf(delimiter) : -1;
      const common = cut >= 0 ? prefix + rest.slice(0, cut + delimiter.length) : undefined;
      if (common !== undefined && prefixes.has(common)) continue;
      if (contents.length + prefixes.size >= maxKeys) {
        truncated = true;
        break;
      }
      last = common ?? key;
      if (common !== undefined) prefixes.add(common);
      else {
        contents.push(
          `<Contents><Key>${encode(key)}</Key><LastModified>${current.lastModified.toISOString()}</LastModified><ETag>${xmlEscape(current.etag)}</ETag>` +
            `<Size>${current.sizeBytes}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
        );
      }
    }
    // A common prefix is passed whole: the next page starts after every key under it.
    const resumeAt = last.endsWith(delimiter) && delimiter ? `${last}\u{10FFFF}` : last;
    const paging = v2
      ? `<KeyCount>${contents.length + prefixes.size}</KeyCount>${truncated ? `<NextContinuationToken>${xmlEscape(resumeAt)}</NextContinuationToken>` : ''}`
      : `<Marker>${encode(query.get('marker') ?? '')}</Marker>${truncated ? `<NextMarker>${encode(resumeAt)}</NextMarker>` : ''}`;
    response.writeHead(200, { 'Content-Type': 'application/xml' });
    response.end(
      xml(
        'ListBucketResult',
        `<Name>${xmlEscape(bucketName)}</Name><Prefix>${encode(prefix)}</Prefix>${delimiter ? `<Delimiter>${encode(delimiter)}</Delimiter>` : ''}` +
          `<MaxKeys>${maxKeys}</MaxKeys>${urlEncoded ? '<EncodingType>url</EncodingType>' : ''}<IsTruncated>${truncated}</IsTruncated>${paging}` +
          contents.join('') +
          [...prefixes].map((p) => `<CommonPrefixes><Prefix>${encode(p)}</Prefix></CommonPrefixes>`).join(''),
      ),
    );
  }

  function listUploads(response: ServerResponse, bucketName: string, bucket: Bucket, query: URLSearchParams): void {
    const prefix = query.get('prefix') ?? '';
    const uploads = [...bucket.uploads.values()].filter((u) => u.key.startsWith(prefix));
    response.writeHead(200, { 'Content-Type': 'application/xml' });
    response.end(
      xml(
        'ListMultipartUploadsResult',
        `<Bucket>${xmlEscape(bucketName)}</Bucket><Prefix>${xmlEscape(prefix)}</Prefix><IsTruncated>false</IsTruncated>` +
          uploads.map((u) => `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated></Upload>`).join(''),
      ),
    );
  }

  async function bucketRequest(request: IncomingMessage, response: ServerResponse, name: string, query: URLSearchParams): Promise<string> {
    const method = request.method ?? 'GET';
    if (method === 'PUT' && query.has('versioning')) {
      const text = (await receiveBody(request, true)).body!.toString('utf8');
      const status = /<Status>(Enabled|Suspended)<\/Status>/.exec(text)?.[1] as Bucket['versioning'];
      bucketOf(name).versioning = status;
      response.writeHead(200).end();
      return 'PutBucketVersioning';
    }
    if (method === 'PUT') {
      await receiveBody(request, false);
      if (buckets.has(name)) throw new S3Error(409, 'BucketAlreadyOwnedByYou', 'Your previous request to create the named bucket succeeded and you already own it.');
      buckets.set(name, { versioning: undefined, objects: new Map(), uploads: new Map(), sorted: undefined });
      response.writeHead(200, { Location: `/${name}` }).end();
      return 'CreateBucket';
    }
    const bucket = bucketOf(name);
    if (method === 'HEAD') {
      response.writeHead(200, { 'x-amz-bucket-region': 'us-east-1' }).end();
      return 'HeadBucket';
    }
    if (method !== 'GET') throw new S3Error(405, 'MethodNotAllowed', `${method} on a bucket is not part of the sink`);
    if (query.has('versioning')) {
      response.writeHead(200, { 'Content-Type': 'application/xml' });
      response.end(xml('VersioningConfiguration', bucket.versioning ? `<Status>${bucket.versioning}</Status>` : ''));
      return 'GetBucketVersioning';
    }
    if (query.has('location')) {
      response.writeHead(200, { 'Content-Type': 'application/xml' }).end(xml('LocationConstraint', ''));
      return 'GetBucketLocation';
    }
    if (query.has('uploads')) {
      listUploads(response, name, bucket, query);
      return 'ListMultipartUploads';
    }
    listObjects(response, name, bucket, query);
    return query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
  }

  async function objectRequest(request: IncomingMessage, response: ServerResponse, name: string, key: string, query: URLSearchParams): Promise<string> {
    const bucket = bucketOf(name);
    switch (request.method) {
      case 'PUT':
        if (query.has('uploadId')) {
          await uploadPart(request, response, bucket, key, query);
          return 'UploadPart';
        }
        await putObject(request, response, bucket, key);
        return 'PutObject';
      case 'HEAD':
        headObject(request, response, bucket, key, query);
        return 'HeadObject';
      case 'POST':
        if (query.has('uploads')) {
          await createUpload(request, response, name, bucket, key);
          return 'CreateMultipartUpload';
        }
        await completeUpload(request, response, name, bucket, key, query);
        return 'CompleteMultipartUpload';
      case 'DELETE':
        if (query.has('uploadId')) {
          abortUpload(response, bucket, key, query);
          return 'AbortMultipartUpload';
        }
        deleteObject(response, bucket, key, query);
        return 'DeleteObject';
      default:
        throw new S3Error(501, 'NotImplemented', `${request.method} on an object is not part of the sink (its bytes are not kept)`);
    }
  }

  function stats(response: ServerResponse): void {
    let objects = 0;
    let versions = 0;
    for (const bucket of buckets.values()) {
      for (const list of bucket.objects.values()) {
        if (list.at(-1)?.deleteMarker === false) objects += 1;
        versions += list.filter((v) => !v.deleteMarker).length;
      }
    }
    response.writeHead(200, { 'Content-Type': 'application/json' });
    response.end(JSON.stringify({ requests: counts, objects, versions, bytes: storedBytes }));
  }

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://sink');
    if (url.pathname === '/__sink/stats') return stats(response);
    const [, rawBucket = '', ...rawKey] = url.pathname.split('/');
    const name = decodeURIComponent(rawBucket);
    const key = rawKey.map(decodeURIComponent).join('/');
    let operation = 'Unknown';
    try {
      if (!name) throw new S3Error(501, 'NotImplemented', 'ListBuckets is not part of the sink');
      operation = key ? await objectRequest(request, response, name, key, url.searchParams) : await bucketRequest(request, response, name, url.searchParams);
    } catch (error) {
      if (!(error instanceof S3Error)) throw error;
      operation = `${request.method ?? ''} error ${error.code}`;
      // The rest of a refused body is read and dropped, so the connection stays usable.
      if (!request.readableEnded) request.resume();
      const body = request.method === 'HEAD' ? '' : xml('Error', `<Code>${error.code}</Code><Message>${xmlEscape(error.message)}</Message><Key>${xmlEscape(key)}</Key>`).replace(' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', '');
      response.writeHead(error.status, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
      response.end(body);
    } finally {
      counts[operation] = (counts[operation] ?? 0) + 1;
    }
  }

  const server: Server = createServer({ keepAlive: true }, (request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500, { 'Content-Type': 'application/xml' });
      response.end(xml('Error', `<Code>InternalError</Code><Message>${xmlEscape(String(error))}</Message>`));
    });
  });
  // Clients keep sockets alive between requests (the SDK's agent, rclone, botocore): so does the sink.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    versions: (bucket, key) => buckets.get(bucket)?.objects.get(key) ?? [],
    openUploads: () => [...buckets.values()].reduce((sum, b) => sum + b.uploads.size, 0),
    requestCounts: () => ({ ...counts }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function emptyVersion(): Omit<SinkVersion, 'versionId' | 'deleteMarker'> {
  return { sizeBytes: 0, etag: '""', checksumSha256: undefined, checksumCrc32: undefined, metadata: {}, contentType: undefined, sse: undefined, tags: {}, lastModified: new Date(), body: undefined };
}

if (process.argv[1]?.endsWith('sink.js')) {
  const sink = await startSink();
  process.stdout.write(`${JSON.stringify({ endpoint: sink.endpoint })}\n`);
  process.once('SIGTERM', () => void sink.close().then(() => process.exit(0)));
}

/** Creates a bucket on a sink (in this process or a child) with versioning on, as the benchmarks want it. */
export async function createSinkBucket(endpoint: string, name: string): Promise<void> {
  const created = await fetch(`${endpoint}/${encodeURIComponent(name)}`, { method: 'PUT' });
  const versioned = await fetch(`${endpoint}/${encodeURIComponent(name)}?versioning`, {
    method: 'PUT',
    body: '<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>',
  });
  if (!created.ok || !versioned.ok) throw new Error(`sink ${endpoint}: cannot create bucket ${name}: ${created.status} ${versioned.status}`);
}
