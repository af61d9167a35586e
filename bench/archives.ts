/**
 * Extraction throughput (issue 9, scenario g): a tar.gz and a zip of N x 1 MB members (200 in a full run), each archived by one
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
import { bySeconds, medianRun, ratio, run, timed, type BenchSettings, type Row } from './measure.js';

const MEMBER_BYTES = 1024 * 1024;

export async function measureArchives(service: Service, moto: MotoServer, settings: BenchSettings): Promise<Row[]> {
  const MEMBERS = settings.archiveMembers;
  const MB = (MEMBERS * MEMBER_BYTES) / 1e6;
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
    // Each run its own ledger and key prefix: a second run would otherwise find the archive archived already.
    const ours = (await medianRun(settings.runs, bySeconds, (r) => {
      const config = path.join(service.dir, `archives-${name}-${r}.toml`);
      writeFileSync(
        config,
        readFileSync(service.configFile, 'utf8')
          .replace('path = "target"', `path = "${only}"`)
          .replace('path = "var/ledger.db"', `path = "var/archives-${name}-${r}.db"`)
          .replace('[s3]', `[s3]\nprefix = "bench-${name}-${r}/"`),
      );
      return timed(SFTPPUSH_BIN, ['reconcile', '--config', config, '--settle', '0', '--log-level', 'warn'], env);
    }))!;
    const scripted = await medianRun(settings.runs, bySeconds, (r) => scriptedRun(name, incoming, work, r, moto, service.bucket, env));
    const label = `${name.endsWith('.zip') ? 'unzip' : 'tar xzf'} + aws s3 cp --recursive`;
    rows.push({
      measure: `sftppush reconcile of a ${Math.round(MB)} MB ${name.slice(4)}`,
      value: `${(MB / ours.seconds).toFixed(1)} MB/s, ${ours.rssMb} MB peak RSS`,
      ratio: scripted ? `${ratio(scripted.seconds, ours.seconds)} ${label}` : undefined,
      detail: `${MEMBERS} members of 1 MB (random), validated then stored, one process; ${ours.seconds} s`,
    });
    rows.push(
      scripted
        ? {
            measure: label,
            value: `${(MB / scripted.seconds).toFixed(1)} MB/s, ${scripted.rssMb} MB peak RSS`,
            ratio: 'reference',
            detail: `the same archive; extract ${scripted.extractSeconds} s + copy ${scripted.copySeconds} s, ${Math.round(MB)} MB of temporary files`,
          }
        : { measure: label, value: 'absent', detail: 'aws-cli is not installed' },
    );
  }
  rmSync(work, { recursive: true, force: true });
  return rows;
}

/** `tar xzf` or `unzip`, then `aws s3 cp --recursive`. @returns undefined when aws-cli is not installed. */
async function scriptedRun(
  name: string,
  incoming: string,
  work: string,
  index: number,
  moto: MotoServer,
  bucket: string,
  env: NodeJS.ProcessEnv,
): Promise<{ seconds: number; rssMb: number; extractSeconds: number; copySeconds: number } | undefined> {
  if ((await run('aws', ['--version'], env)).code !== 0) return undefined;
  const out = path.join(work, `extracted-${name}-${index}`);
  mkdirSync(out);
  const archive = path.join(incoming, name);
  const extract = name.endsWith('.zip') ? await timed('unzip', ['-q', archive, '-d', out]) : await timed('tar', ['xzf', archive, '-C', out]);
  const copy = await timed('aws', ['--endpoint-url', moto.endpoint, 's3', 'cp', '--recursive', '--quiet', out, `s3://${bucket}/scripted-${name}-${index}/`], env);
  rmSync(out, { recursive: true, force: true });
  return { seconds: extract.seconds + copy.seconds, rssMb: Math.max(extract.rssMb, copy.rssMb), extractSeconds: extract.seconds, copySeconds: copy.seconds };
}

async function mustRun(command: string, args: readonly string[], cwd?: string): Promise<void> {
  const result = await run(command, args, process.env, cwd);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
}
