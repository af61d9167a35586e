// reconcile --since WHEN: ISO dates and spans, and a clear error for anything else.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ConfigError } from '../../src/errors.js';
import { parseSince } from '../../src/reconcile/since.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');

void describe('parseSince', () => {
  void test('spans count back from now', () => {
    assert.equal(parseSince('90m', NOW), NOW - 90 * 60_000);
    assert.equal(parseSince('6h', NOW), NOW - 6 * 3_600_000);
    assert.equal(parseSince('7d', NOW), NOW - 7 * 86_400_000);
    assert.equal(parseSince('2w', NOW), NOW - 14 * 86_400_000);
  });

  void test('ISO date-times with a zone are exact; dates and zone-less times are local time', () => {
    assert.equal(parseSince('2026-11-01T06:00:00Z', NOW), Date.parse('2026-11-01T06:00:00Z'));
    assert.equal(parseSince('2026-11-01T06:00:00+01:00', NOW), Date.parse('2026-11-01T05:00:00Z'));
    assert.equal(parseSince('2026-11-01', NOW), new Date(2026, 10, 1).getTime());
    assert.equal(parseSince('2026-11-01 06:30', NOW), new Date(2026, 10, 1, 6, 30).getTime());
  });

  void test("RFC 3339's lowercase t and z are the same instant as T and Z", () => {
    assert.equal(parseSince('2026-11-29t20:00:00z', NOW), Date.parse('2026-11-29T20:00:00Z'));
  });

  void test('anything else is a ConfigError naming --since with good examples', () => {
    for (const bad of ['', 'yesterday', '7', '7 days', '-3d', '2026-13-45', '2026-02-30', '2026-04-31T10:00Z', '11/01/2026', '1.5h']) {
      assert.throws(
        () => parseSince(bad, NOW),
        (error: unknown) => error instanceof ConfigError && error.message.includes('--since') && error.message.includes('7d'),
        bad,
      );
    }
  });
});
