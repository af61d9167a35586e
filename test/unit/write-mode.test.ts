// s3.conditional_writes: how WriteModes turns the setting and one probe per bucket into the gate's mode.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ConfigError, StoreError } from '../../src/errors.js';
import type { ConditionalWriteSupport } from '../../src/s3/object-store.js';
import { WriteModes } from '../../src/s3/write-mode.js';
import { captureLines, type LogRecord } from '../support/fixtures.js';
import { createLogger } from '../../src/log.js';

function modes(setting: 'auto' | boolean, answers: (ConditionalWriteSupport | Error)[]) {
  const lines: LogRecord[] = [];
  let probes = 0;
  const subject = new WriteModes({
    setting,
    probe: () => {
      const answer = answers[probes++] ?? answers.at(-1)!;
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
    log: createLogger('debug', captureLines(lines)),
    source: '/etc/sftppush/config.toml',
  });
  return { subject, lines, probes: () => probes };
}

const unreachable = new StoreError('probe', 's3://b/k', true, { cause: new Error('ECONNREFUSED') });

void describe('WriteModes', () => {
  void test('auto: honoured means conditional writes, probed once per bucket, said once in the log', async () => {
    const m = modes('auto', ['honoured']);
    assert.equal(await m.subject.modeFor('b'), 'conditional');
    assert.equal(await m.subject.modeFor('b'), 'conditional');
    assert.equal(m.probes(), 1);
    assert.equal(m.lines.filter((l) => /conditional writes on/.test(l.msg)).length, 1);
  });

  void test('auto: an endpoint that refuses or ignores the headers gets a HEAD before every write, with a warning', async () => {
    for (const answer of ['refused', 'ignored'] as const) {
      const m = modes('auto', [answer]);
      assert.equal(await m.subject.modeFor('b'), 'head-first');
      assert.ok(m.lines.some((l) => l.level === 40 && /HEAD precedes every write/.test(l.msg)), answer);
    }
  });

  void test('true: an endpoint without them is a configuration error naming the key and the file', async () => {
    const m = modes(true, ['ignored']);
    await assert.rejects(m.subject.modeFor('b'), (error: unknown) => error instanceof ConfigError && /s3\.conditional_writes = true/.test(error.message) && error.message.includes('/etc/sftppush/config.toml'));
  });

  void test('false: never probes, always HEAD first', async () => {
    const m = modes(false, ['honoured']);
    assert.equal(await m.subject.modeFor('b'), 'head-first');
    assert.equal(m.probes(), 0);
  });

  void test('a probe that could not ask (S3 down, bucket missing) decides nothing: the next write asks again', async () => {
    const m = modes('auto', [unreachable, 'honoured']);
    await assert.rejects(m.subject.modeFor('b'), StoreError);
    assert.equal(await m.subject.modeFor('b'), 'conditional');
    assert.equal(m.probes(), 2);
  });
});
