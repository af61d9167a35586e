/**
 * Extraction throughput (issue 9): a 200 MB tar.gz and a 200 MB zip of 1 MB members, each archived by one
 * `sftppush reconcile --settle 0` (both passes: validate, then store every member), next to what an operator
 * would script instead: `tar xzf` / `unzip` into a directory, then `aws s3 cp --recursive` of it, on the same
 * endpoint. Members are random bytes, so the archives are as large as their content and moto, not zlib, is
 * what both sides wait on. Seconds and peak RSS by GNU time; MB/s of member bytes.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MOTO_ENV, type MotoServer } from '../test/support/moto.js';
import { SFTPPUSH_BIN, type Service } from '../test/support/service.js';
import { run, timed, type Row } from './run.js';

const MEMBERS = 200;
const MEMBER_BYTES = 1024 * 1024;
const MB = MEMBERS * MEMBER_BYTES / 1e6;

export async function measureArchives(service: Service, moto: MotoServer): Promise<Row[]> {
  const work = path.join(service.dir, 'archives');
  const members = path.join(work, 'members');
  mkdirSync(members, { recursive: true });
  for (let i = 0; i < MEMBERS; i += 1) writeFileSync(path.join(members, `m${String(i).padStart(3, '0')}.bin`), randomBytes(MEMBER_BYTES));
  const incoming = path.join(work, 'incoming');
  mkdirSync(incoming);
  await mustRun('tar', ['czf', path.join(incoming, 'day.tar.gz'), '-C', members, '.']);
  await mustRun('zip', ['-q', '-r', path.join(incoming, 'day.zip'), '.'], members);
  const env = { ...process.env, ...MOTO_ENV, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

  const rows: Row[] = [];
  for (const name of ['day.tar.gz', 'day.zip']) {
    const only = path.join(work, `only-${name}`);
    mkdirSync(only);
    writeFileSync(path.join(only, name), readFileSync(path.join(incoming, name)));
    const config = path.join(service.dir, `archives-${name}.toml`);
    writeFileSync(
      config,
      readFileSync(service.configFile, 'utf8')
        .replace('path = "target"', `path = "${only}"`)
        .replace('path = "var/ledger.db"', `path = "var/archives-${name}.db"`)
        .replace('[s3]', `[s3]\nprefix = "bench-${name}/"`),
    );
    const ours = await timed(SFTPPUSH_BIN, ['reconcile', '--config', config, '--settle', '0', '--log-level', 'warn'], env);
    rows.push({
      measure: `sftppush reconcile of a ${Math.round(MB)} MB ${name.slice(4)}`,
      value: `${(MB / ours.seconds).toFixed(1)} MB/s, ${ours.rssMb} MB peak RSS`,
      detail: `${MEMBERS} members of 1 MB (random), validated then stored, one process; ${ours.seconds} s`,
    });
    rows.push(await measureScripted(name, incoming, work, moto, service.bucket, env));
  }
  rmSync(work, { recursive: true, force: true });
  return rows;
}

/** `tar xzf` or `unzip`, then `aws s3 cp --recursive`: reported absent when aws-cli is not installed. */
async function measureScripted(name: string, incoming: string, work: string, moto: MotoServer, bucket: string, env: NodeJS.ProcessEnv): Promise<Row> {
  const label = `${name.endsWith('.zip') ? 'unzip' : 'tar xzf'} + aws s3 cp --recursive`;
  if ((await run('aws', ['--version'], env).catch(() => ({ code: 127 }))).code !== 0) {
    return { measure: label, value: 'absent', detail: 'aws-cli is not installed' };
  }
  const out = path.join(work, `extracted-${name}`);
  mkdirSync(out);
  const archive = path.join(incoming, name);
  const extract = name.endsWith('.zip') ? await timed('unzip', ['-q', archive, '-d', out]) : await timed('tar', ['xzf', archive, '-C', out]);
  const copy = await timed('aws', ['--endpoint-url', moto.endpoint, 's3', 'cp', '--recursive', '--quiet', out, `s3://${bucket}/scripted-${name}/`], env);
  const seconds = extract.seconds + copy.seconds;
  return {
    measure: label,
    value: `${(MB / seconds).toFixed(1)} MB/s, ${Math.max(extract.rssMb, copy.rssMb)} MB peak RSS`,
    detail: `the same archive; extract ${extract.seconds} s + copy ${copy.seconds} s, ${Math.round(MB)} MB of temporary files`,
  };
}

async function mustRun(command: string, args: readonly string[], cwd?: string): Promise<void> {
  const result = await run(command, args, process.env, cwd);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
}
