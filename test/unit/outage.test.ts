import assert from 'node:assert/strict';
import { test } from 'node:test';

import { NotS3AnswerError, StoreError, UploadAbandonedError } from '../../src/errors.js';
import { PreconditionFailedError } from '../../src/s3/object-store.js';
import { outageKind, S3Outage } from '../../src/s3/outage.js';
import { captureLines, ManualClock, type LogRecord } from '../support/fixtures.js';
import { pino } from 'pino';

/** A StoreError around an SDK-shaped error. */
function storeError(cause: object): StoreError {
  return new StoreError('put', 's3://b/k', true, { cause: Object.assign(new Error('x'), cause) });
}

void test('outageKind tells throttling, 5xx, timeouts and unreachable apart; answers and our own verdicts are not outages', () => {
  assert.equal(outageKind(storeError({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } })), 'throttled');
  assert.equal(outageKind(storeError({ name: 'Error', $metadata: { httpStatusCode: 429 } })), 'throttled');
  assert.equal(outageKind(storeError({ name: 'InternalError', $metadata: { httpStatusCode: 500 } })), 'server-error');
  assert.equal(outageKind(storeError({ name: 'TimeoutError' })), 'timeout');
  assert.equal(outageKind(storeError({ code: 'ECONNREFUSED' })), 'unreachable');
  assert.equal(outageKind(new StoreError('put', 's3://b/k', true, { cause: new NotS3AnswerError('http://proxy:8080', 502, 'text/html') })), 'not-s3');
  assert.equal(outageKind(storeError({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })), undefined);
  assert.equal(outageKind(new PreconditionFailedError('s3://b/k', { cause: new Error('412') })), undefined);
  assert.equal(outageKind(new UploadAbandonedError('s3://b/k')), undefined);
  assert.equal(outageKind(new Error('not a StoreError')), undefined);
});

void test('S3Outage says once that S3 fails and once that it recovered, however many failures between', () => {
  const lines: LogRecord[] = [];
  const clock = new ManualClock(1000);
  const outage = new S3Outage(pino({ level: 'debug' }, captureLines(lines)), clock.now);
  outage.answered();
  for (let i = 0; i < 50; i += 1) assert.equal(outage.failed(storeError({ name: 'SlowDown', $metadata: { httpStatusCode: 503 } })), true);
  assert.equal(outage.failed(storeError({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })), false);
  clock.advance(7000);
  outage.answered();
  outage.answered();
  assert.deepEqual(
    lines.map((l) => ({ level: l.level, msg: l.msg.split(':')[0], kind: l.kind, failures: l.failures, outageMs: l.outageMs })),
    [
      { level: 40, msg: 'S3 is failing', kind: 'throttled', failures: undefined, outageMs: undefined },
      { level: 30, msg: 'S3 recovered', kind: undefined, failures: 50, outageMs: 7000 },
    ],
  );
});
