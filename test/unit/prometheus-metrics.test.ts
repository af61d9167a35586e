// The prom-client adapter of the Metrics port: events counted per target, gauges read at scrape time.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FILE_STATES } from '../../src/ledger/states.js';
import { PrometheusMetrics } from '../../src/metrics/prometheus.js';
import type { WatchHealth } from '../../src/watch/watcher.js';
import { parseSamples, sampleValue } from '../support/prometheus-text.js';

const [A, B] = ['/srv/a', '/srv/b'];

const health: WatchHealth = {
  targets: [
    { target: A, rootWatched: true, rootLoss: null, directoriesWatched: 4, unwatchedCount: 0, unwatched: [] },
    { target: B, rootWatched: false, rootLoss: { reason: 'deleted', sinceMs: 0 }, directoriesWatched: 0, unwatchedCount: 2, unwatched: [] },
  ],
  directoriesWatched: 4,
  unwatchedCount: 2,
  rootsUnwatched: 1,
  lastOverflowAtMs: null,
  lastHealAtMs: null,
};

void test('events are counted per target, gauges come from the ledger and the watcher, defaults are there', async () => {
  let now = 1_000_000;
  const metrics = new PrometheusMetrics([A, B], () => now);
  metrics.fileQueued(A);
  metrics.fileQueued(A);
  metrics.fileFinished(A, 'archived');
  metrics.fileFinished(A, 'duplicate');
  metrics.fileFinished(B, 'retry');
  metrics.fileFinished(B, 'quarantined');
  metrics.fileFinished(B, 'gone');
  metrics.objectUploaded(A, 1000, 20);
  metrics.objectUploaded(A, 24, 3_000);
  metrics.s3Attempt({ operation: 'PutObjectCommand', answered: true, error: undefined });
  now += 500;
  metrics.s3Attempt({ operation: 'PutObjectCommand', answered: false, error: 'network' });
  metrics.inotifyOverflow();
  metrics.reconcilePassFinished({ reason: 'startup', durationMs: 200, failed: false });
  metrics.reconcilePassFinished({ reason: 'schedule', durationMs: 50, failed: true });
  const counts = Object.fromEntries(FILE_STATES.map((state, i) => [state, i + 1])) as Record<(typeof FILE_STATES)[number], number>;

  const samples = parseSamples(await metrics.scrape({ ledgerStatus: () => ({ counts, oldestPendingSeconds: 42 }), watchHealth: () => health }));
  const value = (name: string, labels?: Record<string, string>): number => sampleValue(samples, name, labels);

  assert.equal(value('sftppush_files_observed_total', { target: A }), 2);
  assert.equal(value('sftppush_files_observed_total', { target: B }), 0, 'every target starts at 0');
  assert.equal(value('sftppush_files_archived_total', { target: A }), 1);
  assert.equal(value('sftppush_files_duplicate_total', { target: A }), 1);
  assert.equal(value('sftppush_retries_total', { target: B }), 1);
  assert.equal(value('sftppush_files_quarantined_total', { target: B }), 1);
  assert.equal(value('sftppush_files_gone_total', { target: B }), 1);
  assert.equal(value('sftppush_uploaded_bytes_total', { target: A }), 1024);
  assert.equal(value('sftppush_upload_duration_seconds_count'), 2);
  assert.equal(value('sftppush_upload_duration_seconds_sum'), 3.02);
  assert.equal(value('sftppush_upload_duration_seconds_bucket', { le: '0.025' }), 1);
  assert.equal(value('sftppush_s3_requests_total', { operation: 'PutObject' }), 2);
  assert.equal(value('sftppush_s3_errors_total', { kind: 'network' }), 1);
  assert.equal(value('sftppush_s3_errors_total', { kind: 'throttled' }), 0, 'every kind starts at 0');
  assert.equal(value('sftppush_s3_last_answer_timestamp_seconds'), 1000);
  assert.equal(value('sftppush_inotify_overflows_total'), 1);
  assert.equal(value('sftppush_reconcile_passes_total', { reason: 'schedule', result: 'failed' }), 1);
  assert.equal(value('sftppush_reconcile_duration_seconds_count'), 2);
  assert.equal(value('sftppush_ledger_files', { state: 'archived' }), counts.archived);
  assert.equal(value('sftppush_backlog_files'), counts.pending + counts.working + counts.retry);
  assert.equal(value('sftppush_oldest_pending_seconds'), 42);
  assert.equal(value('sftppush_watched_directories', { target: A }), 4);
  assert.equal(value('sftppush_unwatched_directories', { target: B }), 2);
  assert.equal(value('sftppush_target_root_watched', { target: B }), 0);
  assert.ok(samples.some((s) => s.name === 'process_resident_memory_bytes'), "prom-client's process defaults");
  assert.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'), "prom-client's Node.js defaults");
  assert.equal(metrics.s3.lastFailure?.kind, 'network');
});

void test('two adapters keep separate registries (never the global one)', async () => {
  const first = new PrometheusMetrics([A], Date.now);
  const second = new PrometheusMetrics([A], Date.now);
  first.fileQueued(A);
  const sources = { ledgerStatus: () => ({ counts: Object.fromEntries(FILE_STATES.map((s) => [s, 0])) as never, oldestPendingSeconds: 0 }), watchHealth: () => undefined };
  assert.equal(sampleValue(parseSamples(await second.scrape(sources)), 'sftppush_files_observed_total', { target: A }), 0);
});
