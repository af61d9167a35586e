// What `sftppush status` prints: the summary, the failure list and one file's story.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { FileRow, FileStory, HistoryRow, ObjectRow, StatusSummary } from '../../src/ledger/reader.js';
import { formatFailures, formatScanSkips, formatStory, formatSummary } from '../../src/status.js';

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

const ZERO = { pending: 0, working: 0, retry: 0, archived: 0, quarantined: 0, gone: 0 };

void describe('formatSummary', () => {
  const summary: StatusSummary = {
    counts: { pending: 3, working: 1, retry: 2, archived: 1500, quarantined: 0, gone: 7 },
    oldestPendingSeconds: 42,
    lastReconcile: '2024-03-01T12:05:00.000Z',
    lastFullPass: null,
    lastPartialPass: null,
    lastFailedPass: null,
    watch: null,
    watchRecordedAt: null,
    targets: [
      { target: '/srv/sftp/in', counts: { pending: 3, working: 1, retry: 2, archived: 1000, quarantined: 0, gone: 7 } },
      { target: '/srv/sftp/other', counts: { ...ZERO, archived: 500 } },
    ],
    backlog: { files: 6, oldest: { target: '/srv/sftp/in', relPath: 'a/report.csv', since: '2024-03-01T11:59:18.000Z' } },
    lastErrors: [],
    afterActionsFailed: 0,
    scanSkips: { counts: { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 }, rows: [] },
  };

  void test('a table of every state per target with a total, then the backlog, passes and watch health', () => {
    assert.equal(
      formatSummary(summary),
      [
        'target           pending  working  retry  archived  quarantined  gone',
        '/srv/sftp/in           3        1      2      1000            0     7',
        '/srv/sftp/other        0        0      0       500            0     0',
        'total                  3        1      2      1500            0     7',
        'backlog: 6 files, oldest pending 42 s: /srv/sftp/in/a/report.csv (since 2024-03-01T11:59:18.000Z)',
        'last full pass: never',
        'last partial pass: never',
        'watch: no health recorded yet (the service records it after each pass)',
      ].join('\n'),
    );
  });

  void test('an empty ledger: a total of zeros and an empty backlog', () => {
    const empty = { ...summary, counts: ZERO, targets: [], oldestPendingSeconds: 0, backlog: { files: 0, oldest: null } };
    const lines = formatSummary(empty).split('\n');
    assert.match(lines[1]!, /^total +0 +0 +0 +0 +0 +0$/);
    assert.equal(lines[2], 'backlog: 0 files');
  });

  void test('the last full and partial passes with their scope and counts', () => {
    const full = { reason: 'schedule', finishedAt: '2024-03-01T12:05:00.000Z', scope: null, counts: { filesSeen: 10, filesQueued: 1 } };
    const partial = {
      reason: 'command',
      finishedAt: '2024-03-01T12:06:00.000Z',
      scope: { since: '2024-02-01T00:00:00.000Z', verify: true, dryRun: false, targets: ['/srv/sftp/in/a'], partial: true },
      counts: null,
    };
    const text = formatSummary({ ...summary, lastFullPass: full, lastPartialPass: partial });
    assert.match(text, /^last full pass: 2024-03-01T12:05:00\.000Z \(schedule, 10 scanned, 1 queued\)$/m);
    assert.match(text, /^last partial pass: 2024-03-01T12:06:00\.000Z \(command: since 2024-02-01T00:00:00\.000Z, \/srv\/sftp\/in\/a, verify\)$/m);
  });

  void test('the watcher\'s health: counts, the last overflow, an unwatched root and unwatched directories', () => {
    const watch = {
      directoriesWatched: 40,
      unwatchedCount: 13,
      lastOverflowAtMs: T0,
      targets: [
        { target: '/srv/in', rootLoss: { reason: 'deleted', sinceMs: T0 }, unwatched: [], unwatchedCount: 0 },
        {
          target: '/srv/b',
          rootLoss: null,
          unwatchedCount: 13,
          unwatched: Array.from({ length: 11 }, (_, i) => ({ relDir: `x/y${i}\x1b`, code: 'ENOSPC', sinceMs: T0 })),
        },
      ],
    };
    const lines = formatSummary({ ...summary, watch, watchRecordedAt: '2024-03-01T12:05:00.000Z' }).split('\n').slice(7);
    assert.deepEqual(lines, [
      'watch (as of 2024-03-01T12:05:00.000Z): 40 directories watched, 13 not watched, last inotify overflow: 2024-03-01T12:00:00.000Z',
      '  /srv/in: NOT WATCHED (deleted since 2024-03-01T12:00:00.000Z)',
      ...Array.from({ length: 10 }, (_, i) => `  /srv/b/x/y${i}\\x1b: not watched (ENOSPC)`),
      '  /srv/b: 3 more directories not watched',
    ]);
  });

  void test('a pass that failed after the last good one says so, with its error, control characters escaped', () => {
    const failed = { reason: 'schedule', finishedAt: '2024-03-01T12:10:00.000Z', error: 'E_TARGET_MISSING: target /srv/in\x1b[2J cannot be read (ENOENT)' };
    assert.match(formatSummary({ ...summary, lastFailedPass: failed }), /^LAST PASS FAILED: 2024-03-01T12:10:00.000Z \(schedule\): E_TARGET_MISSING: target \/srv\/in\\x1b\[2J cannot be read \(ENOENT\)$/m);
  });

  void test('the last errors, as --failed shows them', () => {
    const text = formatSummary({ ...summary, lastErrors: [row({ state: 'gone', lastError: 'vanished' })] });
    assert.deepEqual(text.split('\n').slice(-2), [
      'last errors (all: status --failed):',
      '  gone        /srv/sftp/in/a/report.csv  attempts=0  since 2024-03-01T12:00:00.000Z  vanished',
    ]);
  });
});

void describe('formatScanSkips', () => {
  const at = '2024-03-01T12:00:00.000Z';
  const skips = {
    counts: { 'unreadable-directory': 1, 'invalid-name': 2, 'unstatable-file': 1 },
    rows: [
      { target: '/srv/in', path: 'locked', kind: 'unreadable-directory' as const, code: 'EACCES', nameHex: null, firstSeenAt: at, lastSeenAt: at },
      // caf\xe9.csv in Latin-1, and a name holding a backslash and an ESC: both shown escaped, never raw.
      { target: '/srv/in', path: 'a', kind: 'invalid-name' as const, code: null, nameHex: Buffer.from('caf\xe9.csv', 'latin1').toString('hex'), firstSeenAt: at, lastSeenAt: at },
      { target: '/srv/in', path: '', kind: 'invalid-name' as const, code: null, nameHex: Buffer.from([0x5c, 0x1b, 0xff]).toString('hex'), firstSeenAt: at, lastSeenAt: at },
    ],
  };

  void test('counts by kind, then each skip with where and why; the rest are counted, with where to find them', () => {
    assert.deepEqual(formatScanSkips(skips, 'all: status --failed'), [
      'scan skips (not archived until fixed; the next pass clears what it can read again): 1 unreadable directories, 2 names not UTF-8, 1 files that cannot be stat-ed',
      '  unreadable directory /srv/in/locked  EACCES',
      '  name not UTF-8       /srv/in/a/caf\\xe9.csv',
      '  name not UTF-8       /srv/in/\\\\\\x1b\\xff',
      '  (1 more: all: status --failed)',
    ]);
  });

  void test('nothing skipped: no lines at all', () => {
    assert.deepEqual(formatScanSkips({ counts: { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 }, rows: [] }, 'x'), []);
  });
});

void describe('formatFailures', () => {
  const counts = { ...ZERO, retry: 1, gone: 1 };

  void test('no failing rows prints one reassuring line', () => {
    assert.equal(formatFailures([], ZERO), 'no files retrying, quarantined or gone');
  });

  void test('each failing row shows state, full path, attempts, since when, the next try and the last error', () => {
    const text = formatFailures(
      [
        row({ state: 'retry', attempts: 3, nextAttemptAt: T0 + 60_000, lastError: 'E_S3_RETRYABLE: put s3://archive/in/a.csv: SlowDown' }),
        row({ id: 2, relPath: 'März/b c.csv', state: 'gone', attempts: 0, lastError: 'vanished before it could be archived' }),
      ],
      counts,
    );
    assert.deepEqual(text.split('\n'), [
      'retry       /srv/sftp/in/a/report.csv  attempts=3  since 2024-03-01T12:00:00.000Z  next try 2024-03-01T12:01:00.000Z  E_S3_RETRYABLE: put s3://archive/in/a.csv: SlowDown',
      'gone        /srv/sftp/in/März/b c.csv  attempts=0  since 2024-03-01T12:00:00.000Z  vanished before it could be archived',
    ]);
  });

  void test('a row without an error still shows its path and attempts', () => {
    assert.match(formatFailures([row({ state: 'quarantined', attempts: 1 })], { ...ZERO, quarantined: 1 }), /^quarantined \/srv\/sftp\/in\/a\/report\.csv {2}attempts=1 {2}since \S+$/);
  });

  void test('a list cut short says how many there are in all', () => {
    assert.match(formatFailures([row({ state: 'gone' })], { ...ZERO, retry: 2, quarantined: 3, gone: 1995 }), /\(the latest 1 of 2000: 2 retrying, 3 quarantined, 1995 gone\)$/);
  });

  void test('a failed after-archive action shows its path, generation, when and why, and that it is tried again', () => {
    const failed = { target: '/srv/sftp/in', relPath: 'a\x07.csv', generation: 2, action: 'move:/srv/done', failedAt: '2024-03-01T12:00:00.000Z' };
    const text = formatFailures([], ZERO, [{ ...failed, detail: 'move failed: /srv/done/a.csv already exists, never overwritten; source kept' }], 3);
    assert.deepEqual(text.split('\n'), [
      'no files retrying, quarantined or gone',
      'after       /srv/sftp/in/a\\x07.csv  generation=2  failed 2024-03-01T12:00:00.000Z  move failed: /srv/done/a.csv already exists, never overwritten; source kept  (tried again at every pass)',
      '(the latest 1 of 3 failed after-archive actions)',
    ]);
  });

  void test('control characters in a name or an error are escaped, backslashes doubled', () => {
    const text = formatFailures([row({ state: 'gone', relPath: 'a\x1b[31m\\x07\u202e.csv', lastError: 'bell\x07\u009b' })], { ...ZERO, gone: 1 });
    assert.equal(text, 'gone        /srv/sftp/in/a\\x1b[31m\\\\x07\\u{202e}.csv  attempts=0  since 2024-03-01T12:00:00.000Z  bell\\x07\\x9b');
  });
});

void describe('formatStory', () => {
  void test('each generation is followed by its own history and objects, never another generation', () => {
    const story: FileStory = {
      generations: [
        row({ id: 1, generation: 1, state: 'archived', sha256: 'c'.repeat(64), attempts: 2, lastError: 'E_S3_RETRYABLE: SlowDown', updatedAt: T0 + 2000 }),
        row({ id: 2, generation: 2, state: 'pending', sizeBytes: 2000, updatedAt: T0 + 60_000 }),
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
        `/srv/sftp/in/a/report.csv generation 1: archived since 2024-03-01T12:00:02.000Z (1234 bytes, sha256 ${'c'.repeat(64)}, attempts 2)`,
        '  last error: E_S3_RETRYABLE: SlowDown',
        '  2024-03-01T12:00:00.000Z  - -> pending  observed by watcher',
        '  2024-03-01T12:00:01.000Z  pending -> working',
        '  2024-03-01T12:00:02.000Z  working -> archived',
        `  object s3://archive/in/a/report.csv 1234 bytes version v1 etag "etag1" sha256 ${'c'.repeat(64)}`,
        '/srv/sftp/in/a/report.csv generation 2: pending since 2024-03-01T12:01:00.000Z (2000 bytes, sha256 unknown, attempts 0)',
        '  2024-03-01T12:01:00.000Z  - -> pending',
      ].join('\n'),
    );
  });

  void test('a duplicate names the generation it repeats, never a row id', () => {
    const story: FileStory = {
      generations: [row({ id: 41, generation: 1, state: 'archived' }), row({ id: 97, generation: 2, state: 'archived', duplicateOf: 41 })],
      history: [history(97, 'working', 'archived', 5, 'same content as generation 1 (archived at 2024-03-01T12:00:00.000Z): not uploaded again')],
      objects: [],
    };
    const text = formatStory(story);
    assert.match(text, /generation 2: archived since \S+ \(1234 bytes, sha256 unknown, attempts 0, same content as generation 1\)$/m);
    assert.doesNotMatch(text, /41|97/);
  });

  void test('a generation whose history was pruned says so, and still shows its state', () => {
    const text = formatStory({ generations: [row({ state: 'archived' })], history: [], objects: [] });
    assert.match(text, /generation 1: archived since/);
    assert.match(text, /^ {2}\(no transitions kept: history older than ledger\.history_days is pruned\)$/m);
  });

  void test('an object without version id or etag prints dashes', () => {
    const story: FileStory = {
      generations: [row({ state: 'archived' })],
      history: [],
      objects: [object(1, { versionId: undefined, etag: undefined })],
    };
    assert.match(formatStory(story), /object s3:\/\/archive\/in\/a\/report\.csv 1234 bytes version - etag - sha256 c{64}$/m);
  });

  void test('an archive lists each member with its key, size, version id and sha256', () => {
    const story: FileStory = {
      generations: [row({ relPath: 'a/e.zip', state: 'archived' })],
      history: [],
      objects: [
        object(1, { member: 'x.csv', key: 'in/a/e/x.csv', sizeBytes: 10, versionId: 'v7' }),
        object(1, { member: 'y/z.csv', key: 'in/a/e/y/z.csv', sizeBytes: 20, versionId: 'v8', sha256: 'd'.repeat(64) }),
      ],
    };
    const text = formatStory(story);
    assert.match(text, /^ {2}member x\.csv -> s3:\/\/archive\/in\/a\/e\/x\.csv 10 bytes version v7 /m);
    assert.match(text, /^ {2}member y\/z\.csv -> s3:\/\/archive\/in\/a\/e\/y\/z\.csv 20 bytes version v8 .* sha256 d{64}$/m);
  });

  void test('control characters in the path, the history, a member and a key are escaped', () => {
    const evil = 'x\x1b]0;owned\x07';
    const text = formatStory({
      generations: [row({ relPath: `${evil}.zip`, state: 'archived', lastError: evil })],
      history: [history(1, 'working', 'archived', 1, `uploaded: b/${evil}`)],
      objects: [object(1, { member: evil, key: `in/${evil}` })],
    });
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f]/);
    assert.equal(text.split('x\\x1b]0;owned\\x07').length - 1, 5);
  });
});
