// The command line as an operator meets it: exit codes, messages that name the key and the file, the
// `reconcile` one-shot, `status` from the ledger alone, and AWS_ENDPOINT_URL_S3 instead of a configured endpoint.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { tempDir } from '../support/fixtures.js';
import { getObject, listVersions, MOTO_ENV, startMoto, type MotoServer } from '../support/moto.js';
import { SFTPPUSH_BIN, type StatusJson } from '../support/service.js';

const execFileAsync = promisify(execFile);

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function sftppush(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(SFTPPUSH_BIN, args, { env: { ...process.env, ...MOTO_ENV, ...env } });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function writeConfig(dir: string, lines: readonly string[]): string {
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

void describe('sftppush command line', () => {
  let moto: MotoServer;
  before(async () => {
    moto = await startMoto();
    await moto.createBucket('cli-bucket');
  });
  after(() => moto.stop());

  void it('--version prints the package version and --help lists the commands, both exit 0', async () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal((await sftppush(['--version'])).stdout.trim(), pkg.version);
    const help = await sftppush(['--help']);
    assert.equal(help.code, 0);
    for (const command of ['watch', 'status', 'reconcile']) assert.match(help.stdout, new RegExp(command));
  });

  void it('an unknown key exits 2 with the key and the file in the message', async (t) => {
    const config = writeConfig(tempDir(t), ['[s3]', 'bucket = "cli-bucket"', 'bucktet = 1', '[[targets]]', 'path = "."']);
    const result = await sftppush(['watch', '--config', config]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /s3\.bucktet/);
    assert.ok(result.stderr.includes(config), result.stderr);
  });

  void it('credentials in config.toml exit 2 naming the key, pointing at the default chain, without echoing them', async (t) => {
    const config = writeConfig(tempDir(t), ['[s3]', 'bucket = "cli-bucket"', 'secret_access_key = "wJalrXUtnFEMIK7MDENGbPxRfiCY"', '[[targets]]', 'path = "."']);
    const result = await sftppush(['reconcile', '--config', config]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /s3\.secret_access_key: credentials never live in config\.toml; use the AWS default chain/);
    assert.doesNotMatch(result.stderr, /wJalrXUtnFEMIK7MDENGbPxRfiCY/);
  });

  void it('an unknown flag, and a --since that is neither a date nor a span, exit 2 naming the flag', async () => {
    assert.equal((await sftppush(['watch', '--no-such-flag'])).code, 2);
    const since = await sftppush(['reconcile', '--since', 'yesterday']);
    assert.equal(since.code, 2);
    assert.match(since.stderr, /--since "yesterday": not a date or a span; use e\.g\. .*7d/);
    // An empty value is a mistake, not "settle 0" (Number('') is 0).
    for (const bad of ['', '-1', 'abc']) {
      const settle = await sftppush(['reconcile', '--settle', bad]);
      assert.equal(settle.code, 2, `--settle ${JSON.stringify(bad)}`);
      assert.match(settle.stderr, /--settle must be a whole number of seconds/);
    }
  });

  void it('a target that does not exist exits 2 naming targets[0].path', async (t) => {
    const dir = tempDir(t);
    const config = writeConfig(dir, ['[s3]', 'bucket = "cli-bucket"', '[[targets]]', 'path = "missing"']);
    const result = await sftppush(['watch', '--config', config]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /targets\[0\]\.path: .*missing is not an existing directory/);
  });

  void it('--target replaces the configured targets (and is checked like them)', async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'configured'));
    const config = writeConfig(dir, ['[s3]', 'bucket = "cli-bucket"', '[[targets]]', 'path = "configured"']);
    const result = await sftppush(['watch', '--config', config, '--target', path.join(dir, 'from-flag')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--target .*from-flag: not an existing directory/);
    assert.doesNotMatch(result.stderr, /config\.toml/);
  });

  void it('status without a ledger exits 1 and says so', async (t) => {
    const result = await sftppush(['status', '--ledger', path.join(tempDir(t), 'none.db')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no ledger/);
  });

  void it('reconcile archives what it finds via AWS_ENDPOINT_URL_S3, exits 0, and status reads the ledger', async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'in', 'sub'), { recursive: true });
    for (const name of ['a.csv', 'sub/b.csv']) fs.writeFileSync(path.join(dir, 'in', name), `content of ${name}\n`);
    fs.writeFileSync(path.join(dir, 'in', 'fresh.csv'), 'younger than settle_seconds: waited for, not skipped\n');
    const config = writeConfig(dir, [
      '[s3]', 'bucket = "cli-bucket"', 'prefix = "rec/"', 'force_path_style = true',
      '[ledger]', 'path = "ledger.db"', '[reconcile]', 'settle_seconds = 1', '[[targets]]', 'path = "in"',
    ]);
    const env = { AWS_ENDPOINT_URL_S3: moto.endpoint };
    const result = await sftppush(['reconcile', '--config', config], env);
    assert.equal(result.code, 0, result.stderr);

    assert.equal((await getObject(moto.client, 'cli-bucket', 'rec/sub/b.csv')).body.toString(), 'content of sub/b.csv\n');
    const keys = (await listVersions(moto.client, 'cli-bucket', 'rec/')).map((v) => v.key).sort();
    assert.deepEqual(keys, ['rec/a.csv', 'rec/fresh.csv', 'rec/sub/b.csv']);

    const status = JSON.parse((await sftppush(['status', '--json', '--config', config])).stdout) as StatusJson;
    assert.equal(status.counts.archived, 3);
    assert.equal(status.counts.pending + status.counts.working + status.counts.retry, 0);
    assert.notEqual(status.lastReconcile, null);

    // A second run finds nothing new: no new versions.
    assert.equal((await sftppush(['reconcile', '--config', config], env)).code, 0);
    assert.equal((await listVersions(moto.client, 'cli-bucket', 'rec/')).length, 3);

    const failed = await sftppush(['status', '--failed', '--config', config]);
    assert.match(failed.stdout, /no files retrying, quarantined or gone/);
  });

  void it('reconcile exits 1 when S3 cannot be reached, and status --failed shows the error', async (t) => {
    const dir = tempDir(t);
    fs.mkdirSync(path.join(dir, 'in'));
    fs.writeFileSync(path.join(dir, 'in', 'x.csv'), 'x\n');
    const config = writeConfig(dir, [
      '[s3]', 'bucket = "cli-bucket"', 'endpoint = "http://127.0.0.1:9"', 'force_path_style = true',
      '[ledger]', 'path = "ledger.db"', '[reconcile]', 'settle_seconds = 0', '[[targets]]', 'path = "in"',
    ]);
    const result = await sftppush(['reconcile', '--config', config]);
    assert.equal(result.code, 1);
    const failed = await sftppush(['status', '--failed', '--config', config]);
    assert.match(failed.stdout, /retry .*x\.csv .*attempts=1 .*ECONNREFUSED/);
  });
});
