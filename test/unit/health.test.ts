// /healthz: healthy when the ledger is open, S3 answered within s3_stale_seconds and every directory is watched.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { assessHealth, type HealthInput } from '../../src/metrics/health.js';
import type { TargetWatchHealth, WatchHealth } from '../../src/watch/watcher.js';

const NOW = Date.parse('2026-11-29T12:00:00Z');

function watch(targets: Partial<TargetWatchHealth>[] = [{}]): WatchHealth {
  const full = targets.map(
    (t, i): TargetWatchHealth => ({
      target: `/srv/t${i}`,
      rootWatched: true,
      rootLoss: null,
      directoriesWatched: 3,
      unwatchedCount: 0,
      unwatched: [],
      ...t,
    }),
  );
  return {
    targets: full,
    directoriesWatched: full.reduce((n, t) => n + t.directoriesWatched, 0),
    unwatchedCount: full.reduce((n, t) => n + t.unwatchedCount, 0),
    rootsUnwatched: full.filter((t) => !t.rootWatched).length,
    lastOverflowAtMs: null,
    lastHealAtMs: null,
  };
}

function input(overrides: Partial<HealthInput> = {}): HealthInput {
  return {
    nowMs: NOW,
    ledgerOpen: true,
    s3: { lastAnswerAtMs: NOW - 5_000, lastFailure: undefined },
    s3StaleMs: 60_000,
    watch: watch(),
    ...overrides,
  };
}

void test('all well: ok, no problems, the facts behind it', () => {
  const report = assessHealth(input());
  assert.equal(report.status, 'ok');
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.watches, { directoriesWatched: 3, unwatched: 0, rootsUnwatched: 0 });
  assert.equal(report.s3.lastAnswerAt, new Date(NOW - 5_000).toISOString());
});

void test('S3 silent for longer than s3_stale_seconds: unhealthy, with the last failure; a failure within it is not', () => {
  const failure = { kind: 'network' as const, operation: 'HeadObjectCommand', atMs: NOW - 1_000 };
  assert.equal(assessHealth(input({ s3: { lastAnswerAtMs: NOW - 60_000, lastFailure: failure } })).status, 'ok');
  const stale = assessHealth(input({ s3: { lastAnswerAtMs: NOW - 75_000, lastFailure: failure } }));
  assert.equal(stale.status, 'unhealthy');
  assert.deepEqual(stale.problems, [
    `s3: no answer for 75 s (limit 60 s); last failure: network (HeadObjectCommand) at ${new Date(NOW - 1_000).toISOString()}`,
  ]);
  const never = assessHealth(input({ s3: { lastAnswerAtMs: undefined, lastFailure: undefined } }));
  assert.deepEqual(never.problems, ['s3: no answer since the service started']);
});

void test('a closed ledger, watches not set up, a lost root and refused directories are each a problem', () => {
  assert.deepEqual(assessHealth(input({ ledgerOpen: false })).problems, ['ledger: not open']);
  assert.deepEqual(assessHealth(input({ watch: undefined })).problems, ['watches: not set up yet']);
  const partial = watch([
    { rootWatched: false, rootLoss: { reason: 'deleted', sinceMs: NOW }, directoriesWatched: 0 },
    { unwatchedCount: 2, unwatched: [{ relDir: 'a', code: 'ENOSPC', sinceMs: NOW }, { relDir: 'b', code: 'ENOSPC', sinceMs: NOW }] },
  ]);
  assert.deepEqual(assessHealth(input({ watch: partial })).problems, [
    'watches: target /srv/t0 is not watched (deleted)',
    'watches: 2 directories of /srv/t1 could not be watched (ENOSPC)',
  ]);
});
