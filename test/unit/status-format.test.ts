// What `sftppush status` prints: the summary, the failure list and one file's story.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { FileRow, FileStory, HistoryRow, ObjectRow, StatusSummary } from '../../src/ledger/ledger.js';
import { formatFailures, formatStory, formatSummary } from '../../src/status.js';

const T0 = Date.UTC(2024, 2, 1, 12, 0, 0);

function row(overrides: Partial<FileRow> = {}): FileRow {
  return {
    id: 1,
    target: '/srv/sftp/in',
    relPath: 'a/report.csv',
    generation: 1,
    sizeBytes: 1234,
    mtimeMs: T0,
    inode: 99,
    ctimeNs: null,
    sha256: null,
    state: 'pending',
    attempts: 0,
    lastError: null,
    nextAttemptAt: null,
    duplicateOf: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

function history(fileId: number, fromState: HistoryRow['fromState'], toState: HistoryRow['toState'], atSeconds: number, detail: string | null = null): HistoryRow {
  return { fileId, fromState, toState, at: T0 + atSeconds * 1000, detail };
}

function object(fileId: number, overrides: Partial<ObjectRow> = {}): ObjectRow {
  return {
    fileId,
    member: null,
    bucket: 'archive',
    key: 'in/a/report.csv',
    sha256: 'c'.repeat(64),
    sizeBytes: 1234,
    etag: '"etag1"',
    versionId: 'v1',
    checksumSha256: 'x',
    foundByHead: false,
    recordedAt: T0,
    ...overrides,
  };
}

void describe('formatSummary', () => {
  const summary: StatusSummary = {
    counts: { pending: 3, working: 1, retry: 2, archived: 1500, quarantined: 0, gone: 7 },
    oldestPendingSeconds: 42,
    lastReconcile: '2024-03-01T12:05:00.000Z',
    lastFullPass: null,
    lastPartialPass: null,
    lastFailedPass: null,
    watch: null,
  };

  void test('lists every state with its count in aligned columns, then the oldest pending and last reconcile', () => {
    assert.equal(
      formatSummary(summary),
      [
        'pending      3',
        'working      1',
        'retry        2',
        'archived     1500',
        'quarantined  0',
        'gone         7',
        'oldest pending: 42 s',
        'last reconcile: 2024-03-01T12:05:00.000Z',
      ].join('\n'),
    );
  });

  void test('the watcher\'s health: counts, the last overflow, an unwatched root and unwatched directories', () => {
    const watch = {
      directoriesWatched: 40,
      unwatchedCount: 2,
      lastOverflowAtMs: T0,
      targets: [
        { target: '/srv/in', rootLoss: { reason: 'deleted', sinceMs: T0 }, unwatched: [] },
        { target: '/srv/b', rootLoss: null, unwatched: [{ relDir: 'x/y', code: 'ENOSPC', sinceMs: T0 }] },
      ],
    };
    const lines = formatSummary({ ...summary, watch }).split('\n').slice(8);
    assert.deepEqual(lines, [
      'watched directories: 40, not watched: 2, last overflow: 2024-03-01T12:00:00.000Z',
      '  /srv/in: NOT WATCHED (deleted since 2024-03-01T12:00:00.000Z)',
      '  /srv/b/x/y: not watched (ENOSPC)',
    ]);
  });

  void test('a pass that failed after the last good one says so, with its error, control characters escaped', () => {
    const failed = { reason: 'schedule', finishedAt: '2024-03-01T12:10:00.000Z', error: 'E_TARGET_MISSING: target /srv/in\x1b[2J cannot be read (ENOENT)' };
    assert.match(formatSummary({ ...summary, lastFailedPass: failed }), /^LAST PASS FAILED: 2024-03-01T12:10:00.000Z \(schedule\): E_TARGET_MISSING: target \/srv\/in\\x1b\[2J cannot be read \(ENOENT\)$/m);
  });

  void test('a ledger that was never reconciled says so', () => {
    assert.match(formatSummary({ ...summary, lastReconcile: null }), /^last reconcile: never$/m);
  });
});

void describe('formatFailures', () => {
  void test('no failing rows prints one reassuring line', () => {
    assert.equal(formatFailures([]), 'no files retrying, quarantined or gone');
  });

  void test('each failing row shows state, full path, attempts and the last error', () => {
    const text = formatFailures([
      row({ state: 'retry', attempts: 3, lastError: 'E_S3_RETRYABLE: put s3://archive/in/a.csv: SlowDown' }),
      row({ id: 2, relPath: 'März/b c.csv', state: 'gone', attempts: 0, lastError: 'vanished before it could be archived' }),
    ]);
    const lines = text.split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], 'retry       /srv/sftp/in/a/report.csv  attempts=3  E_S3_RETRYABLE: put s3://archive/in/a.csv: SlowDown');
    assert.equal(lines[1], 'gone        /srv/sftp/in/März/b c.csv  attempts=0  vanished before it could be archived');
  });

  void test('a row without an error still shows its path and attempts', () => {
    assert.match(formatFailures([row({ state: 'quarantined', attempts: 1 })]), /^quarantined \/srv\/sftp\/in\/a\/report\.csv {2}attempts=1/);
  });
});

void describe('formatStory', () => {
  void test('a path the ledger does not know says so', () => {
    assert.equal(formatStory({ generations: [], history: [], objects: [] }), 'no such file in the ledger');
  });

  void test('each generation is followed by its own history and objects, never another generation', () => {
    const story: FileStory = {
      generations: [
        row({ id: 1, generation: 1, state: 'archived', sha256: 'c'.repeat(64), attempts: 2, lastError: 'E_S3_RETRYABLE: SlowDown' }),
        row({ id: 2, generation: 2, state: 'pending', sizeBytes: 2000 }),
      ],
      history: [
        history(1, null, 'pending', 0, 'observed by watcher'),
        history(1, 'pending', 'working', 1),
        history(2, null, 'pending', 60),
        history(1, 'working', 'archived', 2),
      ],
      objects: [object(1)],
    };
    assert.equal(
      formatStory(story),
      [
        `/srv/sftp/in/a/report.csv generation 1: archived (1234 bytes, sha256 ${'c'.repeat(64)}, attempts 2)`,
        '  last error: E_S3_RETRYABLE: SlowDown',
        '  2024-03-01T12:00:00.000Z  - -> pending  observed by watcher',
        '  2024-03-01T12:00:01.000Z  pending -> working  ',
        '  2024-03-01T12:00:02.000Z  working -> archived  ',
        '  object s3://archive/in/a/report.csv 1234 bytes version v1 etag "etag1"',
        '/srv/sftp/in/a/report.csv generation 2: pending (2000 bytes, sha256 unknown, attempts 0)',
        '  2024-03-01T12:01:00.000Z  - -> pending  ',
      ].join('\n'),
    );
  });

  void test('an object without version id or etag prints dashes', () => {
    const story: FileStory = {
      generations: [row({ state: 'archived' })],
      history: [],
      objects: [object(1, { versionId: undefined, etag: undefined })],
    };
    assert.match(formatStory(story), /object s3:\/\/archive\/in\/a\/report\.csv 1234 bytes version - etag -$/m);
  });

  void test('an archive lists each member with its key, size and version id', () => {
    const story: FileStory = {
      generations: [row({ relPath: 'a/e.zip', state: 'archived' })],
      history: [],
      objects: [
        object(1, { member: 'x.csv', key: 'in/a/e/x.csv', sizeBytes: 10, versionId: 'v7' }),
        object(1, { member: 'y/z.csv', key: 'in/a/e/y/z.csv', sizeBytes: 20, versionId: 'v8' }),
      ],
    };
    const text = formatStory(story);
    assert.match(text, /^ {2}member x\.csv -> s3:\/\/archive\/in\/a\/e\/x\.csv 10 bytes version v7 /m);
    assert.match(text, /^ {2}member y\/z\.csv -> s3:\/\/archive\/in\/a\/e\/y\/z\.csv 20 bytes version v8 /m);
  });
});
