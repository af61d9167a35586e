// What a one-shot `reconcile` shows while it runs without a terminal: a log line every few seconds with the
// same counts a terminal's bar shows (directories and files scanned, queued, uploaded, bytes, rate, ETA).
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';

import { createLogger } from '../../src/log.js';
import { startProgress, type ProgressCounts } from '../../src/reconcile/progress.js';
import { captureLines, type LogRecord } from '../support/fixtures.js';

void describe('reconcile progress without a terminal', () => {
  void test('logs the counts, the rate and the ETA every five seconds, and stops when told', async (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const lines: LogRecord[] = [];
    let now = 0;
    const counts: ProgressCounts = { dirsScanned: 12, filesScanned: 3400, queued: 100, done: 40, uploaded: 38, bytesUploaded: 4_000_000 };
    const progress = await startProgress('log', createLogger('info', captureLines(lines)), () => counts, { now: () => now, stream: new PassThrough() });
    progress.phase('uploading');

    now = 4999;
    t.mock.timers.tick(4999);
    assert.equal(lines.length, 0, 'nothing before five seconds');
    now = 5000;
    t.mock.timers.tick(1);
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.equal(line.msg, 'reconcile progress');
    assert.equal(line.phase, 'uploading');
    for (const [key, value] of Object.entries(counts)) assert.equal(line[key], value, key);
    assert.equal(line.filesPerSecond, 8, '40 files done in 5 s');
    assert.equal(line.etaSeconds, 8, '60 files left at 8 files/s (7.5 s, rounded)');

    progress.stop();
    now = 20_000;
    t.mock.timers.tick(15_000);
    assert.equal(lines.length, 1, 'no line after stop');
  });
});
