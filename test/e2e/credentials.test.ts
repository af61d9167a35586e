// Credentials never reach a log (issue 10, item 9): every command runs with distinctive credentials in the
// environment (the AWS default chain's first source), at trace level, through the paths that log the most —
// S3 failing (503s from the fault proxy), retries, a multipart upload, --verify, status — and every byte each process
// wrote to stdout and stderr is searched for them.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startFaultProxy, target } from '../support/fault-proxy.js';
import { promisify } from 'node:util';
import { patternBytes } from '../support/fixtures.js';
import { createService, motoForSuite, SFTPPUSH_BIN } from '../support/service.js';

const execFileAsync = promisify(execFile);

const CREDENTIALS = {
  AWS_ACCESS_KEY_ID: 'AKIASFTPPUSHLEAKTEST1',
  AWS_SECRET_ACCESS_KEY: 'sftppush/Leak+Test/Secret0123456789abcdefGH',
  AWS_SESSION_TOKEN: 'FwoGZXIvYXdzEXAMPLEsftppushSessionTokenLeakTest',
};
const ENV = { ...process.env, ...CREDENTIALS, AWS_REGION: 'us-east-1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

function assertNoCredentials(output: string, what: string): void {
  for (const [name, value] of Object.entries(CREDENTIALS)) {
    // The secret's halves too: a log that cut or wrapped it would still leak it.
    for (const needle of [value, value.slice(0, 16), value.slice(-16)]) {
      assert.ok(!output.includes(needle), `${what} printed ${name} (${needle})`);
    }
  }
}

void describe('credentials never reach a log', () => {
  const env = motoForSuite();

  void it('watch (S3 failing, then multipart and single uploads), reconcile --verify and status, at trace level', async (t) => {
    const bucket = 'credentials-leak';
    const proxy = await startFaultProxy(env.moto.endpoint);
    t.after(() => proxy.stop());
    const service = await createService({
      moto: env.moto,
      bucket,
      endpoint: proxy.endpoint,
      uploadToml: 'multipart_threshold_mb = 5\npart_size_mb = 5\nmax_backoff_seconds = 1',
    });
    env.services.push(service);
    // S3 failing first (503 on both files' writes), so the error paths log too.
    proxy.inject({ ...target.putObject('small.csv'), kind: 'status', status: 503, code: 'SlowDown', times: 2 });
    proxy.inject({ ...target.uploadPart('large.bin'), kind: 'status', status: 503, code: 'SlowDown', times: 6 });
    const child = spawn(SFTPPUSH_BIN, ['watch', '--config', service.configFile, '--log-level', 'trace'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const waitFor = async (what: string, pattern: RegExp, count = 1): Promise<void> => {
      const deadline = Date.now() + 60_000;
      while ((output.match(new RegExp(pattern.source, 'g')) ?? []).length < count) {
        assert.ok(Date.now() < deadline, `waited 60 s for ${what}:\n${output.slice(-3000)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    await waitFor('watching', /"msg":"sftppush watching"/);
    fs.writeFileSync(path.join(service.targetDir, 'small.csv'), 'a,b\n1,2\n');
    fs.writeFileSync(path.join(service.targetDir, 'large.bin'), patternBytes(6 * 1024 * 1024));
    await waitFor('the failures while S3 throttles', /"state":"retry"/, 2);
    await waitFor('both files archived once S3 answers again', /"msg":"file archived"/, 2);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, output.slice(-3000));
    assertNoCredentials(output, 'watch');

    for (const args of [
      ['reconcile', '--config', service.configFile, '--verify', '--json', '--log-level', 'trace'],
      ['status', '--config', service.configFile, '--json'],
      ['status', '--config', service.configFile, 'large.bin'],
    ]) {
      const { stdout, stderr } = await execFileAsync(SFTPPUSH_BIN, args, { env: ENV, maxBuffer: 64 * 1024 * 1024 });
      assert.ok(stdout.length > 0, `${args[0]} printed its result`);
      assertNoCredentials(stdout + stderr, args.join(' '));
    }
  });
});
