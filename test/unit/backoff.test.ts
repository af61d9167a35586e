// Retry delays: exponential from 2 s, capped at max_backoff_seconds, jittered between half and all of the ceiling.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { retryDelayMs } from '../../src/pipeline/backoff.js';

const NO_JITTER_LOW = (): number => 0;
const NO_JITTER_HIGH = (): number => 0.999_999_999;
const MIDDLE = (): number => 0.5;

void describe('retryDelayMs', () => {
  void test('the first retry waits between 1 s and 2 s', () => {
    assert.equal(retryDelayMs(1, 900, NO_JITTER_LOW), 1000);
    assert.equal(retryDelayMs(1, 900, NO_JITTER_HIGH), 2000);
  });

  void test('the delay doubles with each attempt until the cap', () => {
    const delays = [1, 2, 3, 4, 5].map((attempt) => retryDelayMs(attempt, 900, NO_JITTER_HIGH));
    assert.deepEqual(delays, [2000, 4000, 8000, 16_000, 32_000]);
  });

  void test('the delay never decreases as attempts grow', () => {
    let previous = 0;
    for (let attempt = 1; attempt <= 40; attempt++) {
      const delay = retryDelayMs(attempt, 900, MIDDLE);
      assert.ok(delay >= previous, `attempt ${attempt}: ${delay} < ${previous}`);
      previous = delay;
    }
  });

  void test('the delay is capped at max_backoff_seconds, however many attempts', () => {
    for (const attempt of [10, 11, 50, 1000, Number.MAX_SAFE_INTEGER]) {
      const high = retryDelayMs(attempt, 900, NO_JITTER_HIGH);
      assert.ok(Number.isFinite(high) && high <= 900_000, `attempt ${attempt}: ${high}`);
      assert.equal(retryDelayMs(attempt, 900, NO_JITTER_LOW), 450_000);
    }
  });

  void test('a cap below the first delay wins over it', () => {
    assert.equal(retryDelayMs(1, 1, NO_JITTER_HIGH), 1000);
    assert.equal(retryDelayMs(1, 1, NO_JITTER_LOW), 500);
  });

  void test('jitter spreads delays over [ceiling/2, ceiling]', () => {
    for (const attempt of [1, 3, 7, 12]) {
      const ceiling = Math.min(900_000, 2000 * 2 ** (attempt - 1));
      const low = retryDelayMs(attempt, 900, NO_JITTER_LOW);
      const high = retryDelayMs(attempt, 900, NO_JITTER_HIGH);
      assert.equal(low, ceiling / 2);
      assert.equal(high, ceiling);
      assert.ok(low < retryDelayMs(attempt, 900, MIDDLE) && retryDelayMs(attempt, 900, MIDDLE) < high);
    }
  });

  void test('attempt 0 or below is treated as the first attempt', () => {
    assert.equal(retryDelayMs(0, 900, NO_JITTER_HIGH), 2000);
    assert.equal(retryDelayMs(-3, 900, NO_JITTER_HIGH), 2000);
  });

  void test('the delay is a whole number of milliseconds', () => {
    assert.ok(Number.isInteger(retryDelayMs(3, 900, () => 0.123_456_789)));
  });
});
