// The logger's second line of defence: credentials an object carries never reach a log line (src/log.ts).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/log.js';

/** Every line the logger wrote, parsed. */
function capture(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[]; text: () => string } {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (chunk: Buffer) => chunks.push(chunk));
  const text = (): string => Buffer.concat(chunks).toString('utf8');
  return { log: createLogger('info', out), text, lines: () => text().trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>) };
}

const SECRETS = { accessKeyId: 'AKIAEXAMPLEKEY', secretAccessKey: 'wJalrXUtnFEMI/SECRET', sessionToken: 'session-token-value' };

void test('secret fields of a logged object and of an error are censored; the rest is kept', () => {
  const { log, lines, text } = capture();
  const error = Object.assign(new Error('request failed'), { credentials: { ...SECRETS }, authorization: 'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY', Code: 'Denied' });
  log.child({ worker: 3 }).error({ error, config: { ...SECRETS, bucket: 'b' }, client: { ...SECRETS, region: 'eu-west-1' }, bytes: 3 }, 'failed');
  for (const secret of [...Object.values(SECRETS), 'AWS4-HMAC-SHA256']) assert.ok(!text().includes(secret), `${secret} reached the log`);
  const [line] = lines();
  assert.deepEqual(line?.config, { accessKeyId: '[redacted]', secretAccessKey: '[redacted]', sessionToken: '[redacted]', bucket: 'b' });
  assert.deepEqual(line?.client, { accessKeyId: '[redacted]', secretAccessKey: '[redacted]', sessionToken: '[redacted]', region: 'eu-west-1' });
  const logged = line?.error as Record<string, unknown>;
  assert.equal(logged.message, 'request failed');
  assert.equal(logged.Code, 'Denied');
  assert.equal(logged.credentials, '[redacted]');
  assert.equal(logged.authorization, '[redacted]');
  assert.equal(line?.bytes, 3);
});

void test('a line without secrets is written as given; an error given as text stays text', () => {
  const { log, lines } = capture();
  const fields = { path: 'd/f.csv', nested: { key: 'd/f.csv' } };
  log.info(fields, 'file archived');
  log.warn({ error: 'E_S3_UNAVAILABLE: 503' }, 'archive failed: will retry');
  assert.deepEqual(lines().map((l) => [l.path, l.nested, l.error]), [['d/f.csv', { key: 'd/f.csv' }, undefined], [undefined, undefined, 'E_S3_UNAVAILABLE: 503']]);
  assert.deepEqual(fields, { path: 'd/f.csv', nested: { key: 'd/f.csv' } });
});

void test('an Error under any key, or given alone, keeps its message and stack with its secret fields censored', () => {
  const { log, lines, text } = capture();
  const failure = (): Error => Object.assign(new Error('denied by the endpoint'), { secretAccessKey: SECRETS.secretAccessKey, Code: 'AccessDenied' });
  log.error({ err: failure() }, 'as err');
  log.error({ cause: failure() }, 'as cause');
  log.error(failure(), 'alone');
  assert.ok(!text().includes(SECRETS.secretAccessKey), 'the secret reached the log');
  for (const line of lines()) {
    const logged = (line.err ?? line.cause) as Record<string, unknown>;
    assert.equal(logged.message, 'denied by the endpoint', JSON.stringify(line));
    assert.match(String(logged.stack), /denied by the endpoint/);
    assert.equal(logged.secretAccessKey, '[redacted]');
    assert.equal(logged.Code, 'AccessDenied');
  }
});

void test('child bindings are censored too, and the child logs as its parent does', () => {
  const { log, lines, text } = capture();
  log.child({ client: { ...SECRETS, region: 'eu-west-1' } }).child({ worker: 2 }).info({ config: { sessionToken: 'x' } }, 'child line');
  assert.ok(!Object.values(SECRETS).some((secret) => text().includes(secret)), 'a secret reached the log');
  const [line] = lines();
  assert.deepEqual(line?.client, { accessKeyId: '[redacted]', secretAccessKey: '[redacted]', sessionToken: '[redacted]', region: 'eu-west-1' });
  assert.deepEqual([line?.worker, line?.config], [2, { sessionToken: '[redacted]' }]);
});
