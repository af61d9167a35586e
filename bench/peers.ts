/**
 * The S3 endpoints a benchmark runs against (moto_server, the sink) and the tools users would pick instead of
 * sftppush, run on the same endpoint and the same files: a hand-written @aws-sdk PutObject loop, `rclone copy`,
 * `aws s3 cp`. A tool that is not installed is reported absent (undefined), never fatal.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { MOTO_ENV, startMoto, stopChild, type MotoServer } from '../test/support/moto.js';
import { createSinkBucket } from './sink.js';
import { timed, versionOf, type Timing } from './measure.js';

/** An S3 endpoint on loopback, by name. */
export interface Endpoint extends MotoServer {
  readonly name: 'moto' | 'sink';
}

export async function startMotoEndpoint(): Promise<Endpoint> {
  return { ...(await startMoto()), name: 'moto' };
}

/** The sink (bench/sink.ts) in its own process: its CPU is not this process's, nor the service's. */
export async function startSinkEndpoint(): Promise<Endpoint> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./sink.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = await Promise.race([
    (async () => {
      for await (const first of createInterface({ input: child.stdout })) return [first];
      return [undefined];
    })(),
    new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`the sink exited with ${code} before listening`)))),
  ]);
  const endpoint = (JSON.parse(line ?? '{}') as { endpoint: string }).endpoint;
  const client = plainClient(endpoint);
  return {
    name: 'sink',
    endpoint,
    client,
    createBucket: (bucket) => createSinkBucket(endpoint, bucket),
    async stop() {
      client.destroy();
      await stopChild(child);
    },
  };
}

/** An SDK client as a user's script would make it: defaults, path style for a loopback endpoint. */
function plainClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: MOTO_ENV.AWS_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: MOTO_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: MOTO_ENV.AWS_SECRET_ACCESS_KEY },
  });
}

/** A peer's run: wall seconds and CPU seconds (and peak RSS for an external tool). */
export type PeerTiming = Timing;

/**
 * The hand-written loop: `concurrency` workers, each reading a file and PutObject-ing it, on a fresh client
 * with the SDK's defaults. Runs in this process: its CPU is this process's CPU over the loop.
 */
export async function sdkPutLoop(endpoint: Endpoint, bucket: string, prefix: string, files: readonly { path: string; key: string }[], concurrency: number): Promise<PeerTiming> {
  const client = plainClient(endpoint.endpoint);
  let next = 0;
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < files.length; i = next++) {
        const file = files[i]!;
        await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${file.key}`, Body: await readFile(file.path) }));
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  client.destroy();
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6, rssMb: NaN };
}

/** Credentials and endpoint for the command-line peers, by environment (no config file of the user's is read). */
function peerEnv(endpoint: Endpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...MOTO_ENV,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ENDPOINT: endpoint.endpoint,
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: MOTO_ENV.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: MOTO_ENV.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_BENCH_REGION: MOTO_ENV.AWS_REGION,
    // rclone's own "no config file" notice, once per run, is not a result.
    RCLONE_CONFIG: '/dev/null',
  };
  // rclone fails on these machines' AWS_CA_BUNDLE (it names a bundle rclone cannot read): as `env -u AWS_CA_BUNDLE`.
  delete env.AWS_CA_BUNDLE;
  return env;
}

/** `rclone copy --transfers N SRC bench:BUCKET/PREFIX`. @returns undefined when rclone is not installed. */
export async function rcloneCopy(endpoint: Endpoint, source: string, bucket: string, prefix: string, transfers?: number): Promise<PeerTiming | undefined> {
  if (!(await versions()).rclone) return undefined;
  return timed('rclone', ['copy', ...(transfers ? ['--transfers', String(transfers)] : []), source, `bench:${bucket}/${prefix}`], peerEnv(endpoint));
}

/** `aws s3 cp [--recursive] SRC s3://BUCKET/KEY` at its default settings. @returns undefined when aws-cli is not installed. */
export async function awsCp(endpoint: Endpoint, source: string, bucket: string, key: string, recursive: boolean): Promise<PeerTiming | undefined> {
  if (!(await versions()).aws) return undefined;
  const args = ['--endpoint-url', endpoint.endpoint, 's3', 'cp', ...(recursive ? ['--recursive'] : []), '--quiet', source, `s3://${bucket}/${key}`];
  return timed('aws', args, peerEnv(endpoint));
}

/** The command lines the peers run, for BENCHMARKS.md. */
export const PEER_COMMANDS = [
  'rclone: `env -u AWS_CA_BUNDLE rclone copy [--transfers N] SRC bench:BUCKET/PREFIX`, the remote given by ' +
    'RCLONE_CONFIG_BENCH_TYPE=s3, _PROVIDER=Other, _ENDPOINT=http://127.0.0.1:PORT, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY, _REGION=us-east-1',
  'aws-cli: `aws --endpoint-url http://127.0.0.1:PORT s3 cp [--recursive] --quiet SRC s3://BUCKET/PREFIX` (its defaults: 10 requests in flight, 8 MB parts)',
  'SDK loop: N workers, each `await client.send(new PutObjectCommand({ Bucket, Key, Body: await readFile(path) }))`, one `new S3Client` with the SDK defaults (bench/peers.ts)',
];

let known: Promise<{ node: string; moto?: string; rclone?: string; aws?: string }> | undefined;

/** Versions of every tool in the run (undefined: not installed). */
export function versions(): Promise<{ node: string; moto?: string; rclone?: string; aws?: string }> {
  known ??= (async () => ({
    node: process.version,
    moto: (await versionOf('python3', ['-c', 'import moto; print("moto " + moto.__version__)'])) ?? undefined,
    rclone: await versionOf('rclone', ['version']),
    aws: await versionOf('aws', ['--version']),
  }))();
  return known;
}
