import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createS3Client, S3Store } from '../../src/s3/s3-store.js';

/** Dummy credentials: moto accepts any; the AWS default chain reads them from the environment. */
export const MOTO_ENV = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
} as const;
Object.assign(process.env, MOTO_ENV);

export interface MotoServer {
  readonly endpoint: string;
  readonly client: S3Client;
  /** Creates a bucket with versioning on, so tests can count object versions. */
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/** A free loopback port: bind to 0, read it, release it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts a real moto_server on a free loopback port and waits until it answers. */
export async function startMoto(): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  await waitUntilAnswering(endpoint, child, () => stderr);
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: MOTO_ENV_CREDENTIALS });
  return {
    endpoint,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
      await client.send(new PutBucketVersioningCommand({ Bucket: name, VersioningConfiguration: { Status: 'Enabled' } }));
    },
    async stop() {
      client.destroy();
      await stopChild(child);
    },
  };
}

/** SIGTERM to a server child we started, and its exit awaited (at once if it has exited already). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const MOTO_ENV_CREDENTIALS = { accessKeyId: MOTO_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_ENV.AWS_SECRET_ACCESS_KEY };

async function waitUntilAnswering(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr()}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      if (response.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${stderr()}`);
}

/** Every version of every key under a prefix: the exactly-once check counts these. */
export async function listVersions(
  client: S3Client,
  bucket: string,
  prefix = '',
): Promise<{ key: string; versionId: string; isLatest: boolean; size: number }[]> {
  const versions: { key: string; versionId: string; isLatest: boolean; size: number }[] = [];
  let keyMarker: string | undefined;
  let versionIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(
      new ListObjectVersionsCommand({ Bucket: bucket, Prefix: prefix, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
    );
    for (const v of page.Versions ?? []) {
      versions.push({ key: v.Key ?? '', versionId: v.VersionId ?? '', isLatest: v.IsLatest ?? false, size: v.Size ?? 0 });
    }
    if (!page.IsTruncated) return versions;
    keyMarker = page.NextKeyMarker;
    versionIdMarker = page.NextVersionIdMarker;
  }
}

/** The latest version's bytes and metadata. */
export async function getObject(
  client: S3Client,
  bucket: string,
  key: string,
  versionId?: string,
): Promise<{ body: Buffer; metadata: Record<string, string> }> {
  const response = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, VersionId: versionId }));
  const bytes = await response.Body?.transformToByteArray();
  return { body: Buffer.from(bytes ?? []), metadata: response.Metadata ?? {} };
}

/** A moto_server with the pipeline's own S3 client and store on it, as integration suites use them. */
export interface MotoStore {
  readonly moto: MotoServer;
  readonly client: S3Client;
  readonly store: S3Store;
  readonly stop: () => Promise<void>;
}

/** Starts moto and an S3Store on it, with the client settings the service uses (`maxSockets` in flight). */
export async function startMotoStore(maxSockets = 8): Promise<MotoStore> {
  const moto = await startMoto();
  const client = storeClient(moto.endpoint, maxSockets);
  return {
    moto,
    client,
    store: new S3Store(client),
    stop: async () => {
      client.destroy();
      await moto.stop();
    },
  };
}

/** The service's S3 client for `endpoint` (loopback moto, or a fault proxy in front of it). */
export function storeClient(endpoint: string, maxSockets = 8): S3Client {
  return createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, maxSockets, requestTimeoutMs: 60_000 });
}
