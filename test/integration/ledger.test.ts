// The ledger against a real SQLite file: migrations, the observe/claim rules, recovery, history and status.
// The clock is injected, so backoff and ages are exact without sleeping.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { SftppushError } from '../../src/errors.js';
import { Ledger, type ArchiveProof, type ClaimedFile } from '../../src/ledger/ledger.js';
import { applyMigrations, readMigrations } from '../../src/ledger/migrations.js';
import type { FileStat } from '../../src/ledger/observation.js';
import { ManualClock, MIGRATIONS_DIR, openTestLedger, tempDir } from '../support/fixtures.js';

const TARGET = '/srv/sftp/incoming';
const OWNER = 'pid:4242';

/** A stat that differs from `stat(n)` for every other n. */
function stat(n: number, inode = 1000 + n): FileStat {
  return { sizeBytes: 100 + n, mtimeMs: 1_700_000_000_000 + n * 1000.5, inode, ctimeNs: 1_700_000_000_000_000_000n + BigInt(n) };
}

interface Env {
  dir: string;
  clock: ManualClock;
  ledger: Ledger;
}

function setup(t: TestContext): Env {
  const dir = tempDir(t, 'sftppush-ledger');
  const clock = new ManualClock();
  return { dir, clock, ledger: openTestLedger(t, dir, clock.now) };
}

function claim(ledger: Ledger, owner = OWNER): ClaimedFile {
  const claimed = ledger.claimNext(owner);
  assert.ok(claimed, 'expected a claimable row');
  return claimed;
}

function uploadedProof(key: string, sha256 = 'ab'.repeat(32)): ArchiveProof {
  return {
    kind: 'uploaded',
    objects: [
      {
        bucket: 'b',
        key,
        sha256,
        sizeBytes: 10,
        etag: '"etag-1"',
        versionId: 'v-1',
        checksumSha256: Buffer.from(sha256, 'hex').toString('base64'),
        foundByHead: false,
      },
    ],
  };
}

/** Observes, claims and archives one path: the usual life of a generation. */
function archiveOne(ledger: Ledger, relPath: string, s: FileStat, sha256 = 'ab'.repeat(32)): ClaimedFile {
  assert.equal(ledger.observe(TARGET, relPath, s), 'queued');
  const claimed = claim(ledger);
  assert.equal(claimed.relPath, relPath);
  ledger.markArchived(claimed, s, sha256, uploadedProof(relPath, sha256));
  return claimed;
}

function generations(ledger: Ledger, relPath: string): { generation: number; state: string; attempts: number }[] {
  return ledger.reader.story(relPath, TARGET).generations.map(({ generation, state, attempts }) => ({ generation, state, attempts }));
}

function transitions(ledger: Ledger, relPath: string): string[] {
  return ledger.reader.story(relPath, TARGET).history.map((h) => `${h.fromState ?? '-'}>${h.toState}`);
}

function userVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return Number(db.pragma('user_version', { simple: true }));
  } finally {
    db.close();
  }
}

function errorCode(error: unknown): string | undefined {
  return error instanceof SftppushError ? error.code : undefined;
}

void describe('migrations', () => {
  void test('a new ledger gets every migration once and user_version equals the number of migration files', (t) => {
    const { dir, ledger } = setup(t);
    const file = path.join(dir, 'ledger.db');
    const migrationFiles = fs.readdirSync(MIGRATIONS_DIR).filter((name) => /^\d{4}_.*\.sql$/.test(name));
    assert.ok(migrationFiles.length >= 1);
    assert.equal(ledger.observe(TARGET, 'kept.csv', stat(1)), 'queued');
    ledger.close();
    assert.equal(userVersion(file), migrationFiles.length);
  });

  void test('reopening an up-to-date ledger applies nothing and keeps its rows', (t) => {
    const { dir, clock, ledger } = setup(t);
    const file = path.join(dir, 'ledger.db');
    ledger.observe(TARGET, 'kept.csv', stat(1));
    ledger.close();

    const reopened = openTestLedger(t, dir, clock.now);
    assert.deepEqual(generations(reopened, 'kept.csv'), [{ generation: 1, state: 'pending', attempts: 0 }]);
    reopened.close();

    const db = new Database(file);
    t.after(() => db.close());
    assert.deepEqual(applyMigrations(db, readMigrations(MIGRATIONS_DIR), file), []);
  });

  void test('a ledger written by a newer sftppush is refused with E_LEDGER_NEWER and left untouched', (t) => {
    const dir = tempDir(t, 'sftppush-ledger');
    const file = path.join(dir, 'ledger.db');
    const newer = readMigrations(MIGRATIONS_DIR).length + 1;
    const db = new Database(file);
    db.pragma(`user_version = ${newer}`);
    db.close();

    assert.throws(
      () => openTestLedger(t, dir),
      (error: unknown) => errorCode(error) === 'E_LEDGER_NEWER' && String(error).includes(file),
    );
    assert.equal(userVersion(file), newer);
  });

  void test('a ledger SQLite cannot open (here a directory) is E_LEDGER_UNREADABLE naming the file, not a bare SQLITE_CANTOPEN', (t) => {
    const file = path.join(tempDir(t, 'sftppush-ledger'), 'ledger.db');
    fs.mkdirSync(file);
    assert.throws(() => Ledger.open(file, { migrationsDir: MIGRATIONS_DIR }), {
      code: 'E_LEDGER_UNREADABLE',
      message: new RegExp(`^${file.replace(/[.]/g, '\\.')}: cannot open the ledger: SQLITE_CANTOPEN`),
    });
  });
});

void describe('observe', () => {
  void test('a new path is queued as generation 1, pending', (t) => {
    const { ledger } = setup(t);
    assert.equal(ledger.observe(TARGET, 'a/new.csv', stat(1)), 'queued');
    assert.deepEqual(generations(ledger, 'a/new.csv'), [{ generation: 1, state: 'pending', attempts: 0 }]);
  });

  void test('the same stat observed again changes nothing', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'same.csv', stat(1));
    assert.equal(ledger.observe(TARGET, 'same.csv', stat(1)), 'unchanged');
    assert.equal(ledger.reader.story('same.csv').history.length, 1);
  });

  void test('a change while still pending updates the row in place: still one row, with the new stat', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'growing.csv', stat(1));
    assert.equal(ledger.observe(TARGET, 'growing.csv', stat(2)), 'updated');
    const rows = ledger.reader.story('growing.csv').generations;
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.sizeBytes, stat(2).sizeBytes);
    assert.equal(rows[0]?.mtimeMs, stat(2).mtimeMs);
    assert.equal(rows[0]?.state, 'pending');
  });

  void test('a change after the path was archived queues generation 2; the archived generation stays', (t) => {
    const { ledger } = setup(t);
    archiveOne(ledger, 'report.csv', stat(1));
    assert.equal(ledger.observe(TARGET, 'report.csv', stat(1)), 'unchanged');
    assert.equal(ledger.observe(TARGET, 'report.csv', stat(2)), 'queued');
    assert.deepEqual(generations(ledger, 'report.csv'), [
      { generation: 1, state: 'archived', attempts: 1 },
      { generation: 2, state: 'pending', attempts: 0 },
    ]);
  });

  void test('a change while a worker holds the row marks it dirty, and markArchived reports it', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'busy.csv', stat(1));
    const claimed = claim(ledger);
    assert.equal(ledger.observe(TARGET, 'busy.csv', stat(2)), 'dirty');
    // No second active generation: a second upload must never race the first to the same key.
    assert.equal(ledger.reader.story('busy.csv').generations.length, 1);
    assert.deepEqual(ledger.markArchived(claimed, stat(1), 'cd'.repeat(32), uploadedProof('busy.csv')), { dirty: true });
  });

  void test('an unchanged path while a worker holds it is not dirty', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'calm.csv', stat(1));
    const claimed = claim(ledger);
    assert.equal(ledger.observe(TARGET, 'calm.csv', stat(1)), 'unchanged');
    assert.deepEqual(ledger.markArchived(claimed, stat(1), 'cd'.repeat(32), uploadedProof('calm.csv')), { dirty: false });
  });

  void test('a retrying row whose file changed is pending again at once, keeping its attempts so the next claim HEADs', (t) => {
    const { clock, ledger } = setup(t);
    ledger.observe(TARGET, 'flaky.csv', stat(1));
    const first = claim(ledger);
    ledger.scheduleRetry(first, 'E_S3_RETRYABLE: boom', clock.now() + 60_000);
    assert.equal(ledger.observe(TARGET, 'flaky.csv', stat(2)), 'queued');
    const [row] = ledger.reader.story('flaky.csv').generations;
    assert.equal(row?.state, 'pending');
    assert.equal(row?.sizeBytes, stat(2).sizeBytes);
    assert.equal(ledger.reader.story('flaky.csv').generations.length, 1);
    // Claimable now, not at the old backoff deadline; and attempts > 1, because the failed PUT may have landed.
    const again = claim(ledger);
    assert.equal(again.id, first.id);
    assert.equal(again.attempts, 2);
  });

  void test('a requeued row waits until its not-before time, and a new close of the file ends the wait', (t) => {
    const { clock, ledger } = setup(t);
    ledger.observe(TARGET, 'growing.csv', stat(1));
    const first = claim(ledger);
    ledger.requeue(first, 'written to while being read', clock.now() + 4000);
    assert.equal(ledger.claimNext('pid:1:1'), undefined, 'not claimable while its writer may still append');
    assert.equal(ledger.hasClaimableWork(), false);
    assert.equal(ledger.nextRetryAt(), clock.now() + 4000, 'idle workers sleep until then');
    assert.equal(ledger.observe(TARGET, 'growing.csv', stat(2)), 'updated');
    const again = claim(ledger);
    assert.equal(again.id, first.id);
    assert.equal(ledger.reader.story('growing.csv').generations[0]?.sizeBytes, stat(2).sizeBytes);
  });

  void test('a path that was gone and reappears is a new generation, even with the same stat', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'ghost.csv', stat(1));
    ledger.markGone(claim(ledger), 'vanished before it could be archived');
    assert.equal(ledger.observe(TARGET, 'ghost.csv', stat(1)), 'queued');
    assert.deepEqual(generations(ledger, 'ghost.csv'), [
      { generation: 1, state: 'gone', attempts: 1 },
      { generation: 2, state: 'pending', attempts: 0 },
    ]);
  });
});

void describe('claimNext', () => {
  void test('claims pending rows first-in first-out, counting an attempt and recording the owner', (t) => {
    const { ledger } = setup(t);
    for (const [n, name] of ['first.csv', 'second.csv', 'third.csv'].entries()) ledger.observe(TARGET, name, stat(n));
    // A later change to the first path does not move it to the back of the queue.
    ledger.observe(TARGET, 'first.csv', stat(9));
    const claimed = [claim(ledger, 'pid:1'), claim(ledger, 'pid:2'), claim(ledger, 'pid:3')];
    assert.deepEqual(claimed.map((c) => c.relPath), ['first.csv', 'second.csv', 'third.csv']);
    assert.deepEqual(claimed.map((c) => c.attempts), [1, 1, 1]);
    assert.equal(ledger.claimNext('pid:4'), undefined);

    const owners: string[] = [];
    ledger.recoverAbandoned((owner) => (owners.push(owner), true));
    assert.deepEqual(owners.sort(), ['pid:1', 'pid:2', 'pid:3']);
  });

  void test('a claim carries its owner and the target it belongs to', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'sub/dir/x.csv', stat(3));
    const claimed = claim(ledger);
    assert.equal(claimed.target, TARGET);
    assert.equal(claimed.generation, 1);
    assert.equal(claimed.owner, OWNER);
  });

  void test('the inode change time is kept to the nanosecond, and an upgraded row adopts its first one quietly', (t) => {
    const { dir, ledger } = setup(t);
    archiveOne(ledger, 'exact.csv', stat(4));
    archiveOne(ledger, 'upgraded.csv', stat(5));
    assert.equal(ledger.reader.story('exact.csv').generations[0]?.ctimeNs, String(stat(4).ctimeNs));
    // Only the ctime differs: a rewrite in place whose client restored size and mtime.
    assert.equal(ledger.observe(TARGET, 'exact.csv', { ...stat(4), ctimeNs: stat(4).ctimeNs + 1n }), 'queued');
    // A row from before migration 0003 has no ctime: the next observation records it and queues nothing.
    const db = new Database(path.join(dir, 'ledger.db'));
    db.prepare(`UPDATE files SET ctime_ns = NULL WHERE rel_path = 'upgraded.csv'`).run();
    db.close();
    assert.equal(ledger.observe(TARGET, 'upgraded.csv', { ...stat(5), ctimeNs: 42n }), 'unchanged');
    assert.equal(ledger.reader.story('upgraded.csv').generations[0]?.ctimeNs, '42');
    assert.equal(ledger.observe(TARGET, 'upgraded.csv', { ...stat(5), ctimeNs: 43n }), 'queued', 'from then on, the ctime counts');
  });

  void test('a retry is claimed only once its backoff has passed, and then before older pending rows', (t) => {
    const { clock, ledger } = setup(t);
    ledger.observe(TARGET, 'retrying.csv', stat(1));
    const first = claim(ledger);
    ledger.scheduleRetry(first, 'E_S3_RETRYABLE: down', clock.now() + 5000);
    assert.equal(ledger.claimNext(OWNER), undefined);
    assert.equal(ledger.hasClaimableWork(), false);
    assert.equal(ledger.nextRetryAt(), clock.now() + 5000);

    ledger.observe(TARGET, 'waiting.csv', stat(2));
    clock.advance(4999);
    assert.equal(claim(ledger).relPath, 'waiting.csv');
    assert.equal(ledger.claimNext(OWNER), undefined);

    clock.advance(1);
    ledger.observe(TARGET, 'later.csv', stat(3));
    const retried = claim(ledger);
    assert.equal(retried.relPath, 'retrying.csv');
    assert.equal(retried.attempts, 2);
    assert.equal(claim(ledger).relPath, 'later.csv');
  });

  void test('claimBatch takes at most its max in one go: due retries first, then pending, oldest first', (t) => {
    const { clock, ledger } = setup(t);
    for (const [n, name] of ['p1.csv', 'r1.csv', 'p2.csv', 'r2.csv', 'p3.csv'].entries()) ledger.observe(TARGET, name, stat(n));
    const [p1, r1, p2, r2] = ledger.claimBatch(OWNER, 4);
    assert.deepEqual([p1, r1, p2, r2].map((c) => c?.relPath), ['p1.csv', 'r1.csv', 'p2.csv', 'r2.csv']);
    ledger.scheduleRetry(r2!, 'E_S3_RETRYABLE: down', clock.now() + 10);
    ledger.scheduleRetry(r1!, 'E_S3_RETRYABLE: down', clock.now() + 20);
    for (const done of [p1!, p2!]) ledger.requeue(done, 'changed', clock.now());
    clock.advance(20);

    const batch = ledger.claimBatch(OWNER, 3);
    assert.deepEqual(batch.map((c) => c.relPath), ['r2.csv', 'r1.csv', 'p1.csv']);
    assert.deepEqual(batch.map((c) => c.attempts), [2, 2, 2]);
    assert.deepEqual(ledger.claimBatch('pid:2', 10).map((c) => [c.relPath, c.owner]), [['p2.csv', 'pid:2'], ['p3.csv', 'pid:2']]);
    assert.deepEqual(ledger.claimBatch(OWNER, 10), []);
  });

  void test('a clock that jumped back does not stall a retry: a due time beyond any wait we set is due now', (t) => {
    const dir = tempDir(t, 'sftppush-ledger');
    const clock = new ManualClock();
    const ledger = openTestLedger(t, dir, clock.now, 'ledger.db', 60_000);
    ledger.observe(TARGET, 'scheduled-ahead.csv', stat(1));
    ledger.scheduleRetry(claim(ledger), 'E_S3_RETRYABLE: down', clock.now() + 30_000);
    clock.advance(-3_600_000); // NTP steps the clock back an hour: the retry now looks 1 h 30 s away
    assert.equal(ledger.hasClaimableWork(), true);
    assert.equal(claim(ledger).relPath, 'scheduled-ahead.csv');
    // A wait within the cap is still honoured.
    ledger.observe(TARGET, 'waits.csv', stat(2));
    ledger.scheduleRetry(claim(ledger), 'E_S3_RETRYABLE: down', clock.now() + 30_000);
    assert.equal(ledger.claimNext(OWNER), undefined);
  });

  void test('two ledger handles on one file (two processes) never claim the same row', (t) => {
    const { dir, clock, ledger } = setup(t);
    const other = openTestLedger(t, dir, clock.now);
    for (let n = 0; n < 10; n += 1) ledger.observe(TARGET, `f${n}.csv`, stat(n));
    const ids: number[] = [];
    for (let turn = 0; ; turn += 1) {
      const claimed = (turn % 2 === 0 ? ledger : other).claimNext(`pid:${turn % 2}`);
      if (!claimed) break;
      ids.push(claimed.id);
    }
    assert.equal(ids.length, 10);
    assert.equal(new Set(ids).size, 10);
  });
});

void describe('recoverAbandoned', () => {
  void test('rows held by a dead owner are pending again; a live owner keeps its rows', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'dead.csv', stat(1));
    ledger.observe(TARGET, 'live.csv', stat(2));
    claim(ledger, 'pid:dead');
    claim(ledger, 'pid:live');

    assert.equal(ledger.recoverAbandoned((owner) => owner === 'pid:live'), 1);
    assert.equal(ledger.reader.story('dead.csv').generations[0]?.state, 'pending');
    assert.equal(ledger.reader.story('live.csv').generations[0]?.state, 'working');
    assert.match(ledger.reader.story('dead.csv').history.at(-1)?.detail ?? '', /pid:dead/);

    // The recovered row's next claim is its second attempt: the archiver HEADs before writing.
    const again = claim(ledger, 'pid:new');
    assert.equal(again.relPath, 'dead.csv');
    assert.equal(again.attempts, 2);
  });
});

void describe('history and transitions', () => {
  void test('every transition is a history row, in order, and the story tells it', (t) => {
    const { clock, ledger } = setup(t);
    ledger.observe(TARGET, 'life.csv', stat(1));
    const first = claim(ledger);
    ledger.scheduleRetry(first, 'E_S3_RETRYABLE: down', clock.now() + 1000);
    clock.advance(1000);
    const second = claim(ledger);
    ledger.requeue(second, 'changed during upload', clock.now());
    const third = claim(ledger);
    ledger.markArchived(third, stat(1), 'ab'.repeat(32), uploadedProof('life.csv'));

    assert.deepEqual(transitions(ledger, 'life.csv'), [
      '->pending',
      'pending>working',
      'working>retry',
      'retry>working',
      'working>pending',
      'pending>working',
      'working>archived',
    ]);
    const history = ledger.reader.story('life.csv').history;
    assert.ok(history.every((h, i) => i === 0 || h.at >= history[i - 1]!.at), 'history times never go backwards');
    assert.match(history[2]?.detail ?? '', /E_S3_RETRYABLE/);
  });

  void test('an outcome for a row that is already final is a conflict and changes nothing', (t) => {
    const { ledger } = setup(t);
    const archived = archiveOne(ledger, 'done.csv', stat(1));
    const before = transitions(ledger, 'done.csv');
    assert.throws(() => ledger.markGone(archived, 'no'), (error: unknown) => errorCode(error) === 'E_LEDGER_CONFLICT');
    assert.deepEqual(transitions(ledger, 'done.csv'), before);
    assert.equal(ledger.reader.story('done.csv').generations[0]?.state, 'archived');
  });

  void test('a worker whose row is no longer its claim is refused every outcome: no silent overwrite', (t) => {
    const { clock, ledger } = setup(t);
    ledger.observe(TARGET, 'notmine.csv', stat(1));
    const stale = claim(ledger, 'pid:1:1:watch');
    assert.equal(ledger.recoverAbandoned(() => false), 1);
    const current = claim(ledger, 'pid:2:2:watch');
    const conflict = (error: unknown): boolean => errorCode(error) === 'E_LEDGER_CONFLICT';
    assert.throws(() => ledger.markArchived(stale, stat(1), 'ab'.repeat(32), uploadedProof('notmine.csv')), conflict);
    assert.throws(() => ledger.requeue(stale, 'changed', 0), conflict);
    assert.throws(() => ledger.scheduleRetry(stale, 'E_S3_RETRYABLE: down', clock.now()), conflict);
    assert.throws(() => ledger.markGone(stale, 'vanished'), conflict);
    assert.throws(() => ledger.markQuarantined(stale, 'bad'), conflict);
    ledger.markArchived(current, stat(1), 'ab'.repeat(32), uploadedProof('notmine.csv'));
    assert.deepEqual(transitions(ledger, 'notmine.csv'), ['->pending', 'pending>working', 'working>pending', 'pending>working', 'working>archived']);
  });
});

void describe('status, failures and story', () => {
  void test('status counts every state, the oldest unfinished row\'s age and the last successful reconcile', (t) => {
    const { clock, ledger } = setup(t);
    assert.deepEqual(ledger.reader.status(), {
      counts: { pending: 0, working: 0, retry: 0, archived: 0, quarantined: 0, gone: 0 },
      oldestPendingSeconds: 0,
      lastReconcile: null,
      lastFullPass: null,
      lastPartialPass: null,
      lastFailedPass: null,
      watch: null,
      watchRecordedAt: null,
      targets: [],
      backlog: { files: 0, oldest: null },
      lastErrors: [],
      afterActionsFailed: 0,
      scanSkips: { counts: { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 }, rows: [] },
    });
    ledger.recordServiceState('watch', { directoriesWatched: 3 });
    assert.deepEqual(ledger.reader.status().watch, { directoriesWatched: 3 }, 'the watcher\'s health as the service recorded it');

    archiveOne(ledger, 'archived.csv', stat(0));
    clock.advance(10_000);
    for (const [n, name] of ['working.csv', 'retry.csv', 'quarantined.csv', 'gone.csv', 'pending.csv'].entries()) {
      ledger.observe(TARGET, name, stat(n + 1));
    }
    const working = claim(ledger);
    ledger.scheduleRetry(claim(ledger), 'E_S3: denied', clock.now() + 60_000);
    ledger.markQuarantined(claim(ledger), 'E_KEY_LAYOUT: too long');
    ledger.markGone(claim(ledger), 'vanished');
    assert.equal(working.relPath, 'working.csv');

    clock.advance(90_000);
    const run = ledger.beginReconcile('startup');
    clock.advance(500);
    ledger.finishReconcile(run, { filesSeen: 6, filesQueued: 1 });
    const finishedAt = clock.now();
    clock.advance(1000);
    ledger.finishReconcile(ledger.beginReconcile('cron'), { filesSeen: 0, filesQueued: 0 }, 'EACCES: scan failed');

    const summary = ledger.reader.status();
    assert.deepEqual(summary.counts, { pending: 1, working: 1, retry: 1, archived: 1, quarantined: 1, gone: 1 });
    // The archived row is older but finished; the oldest unfinished rows were created 91.5 s ago.
    assert.equal(summary.oldestPendingSeconds, 92);
    assert.equal(summary.backlog.files, 3);
    assert.deepEqual(summary.backlog.oldest, { target: TARGET, relPath: 'working.csv', since: new Date(clock.now() - 91_500).toISOString() });
    assert.deepEqual(summary.targets, [{ target: TARGET, counts: summary.counts }]);
    assert.deepEqual(summary.lastErrors.map((row) => row.relPath), ['gone.csv', 'quarantined.csv', 'retry.csv']);
    assert.equal(summary.watchRecordedAt, new Date(Date.parse('2030-01-01T00:00:00Z')).toISOString());
    // A failed run is not the last reconcile an operator can rely on.
    assert.equal(summary.lastReconcile, new Date(finishedAt).toISOString());
    assert.equal(summary.lastFullPass?.reason, 'startup');
    assert.equal(summary.lastPartialPass, null);
    // A partial pass (--since, --target) is shown apart: it proves nothing about the files outside its scope.
    const partial = { since: '2030-01-01T00:00:00.000Z', verify: true, dryRun: false, targets: [TARGET], partial: true };
    clock.advance(1000);
    ledger.finishReconcile(ledger.beginReconcile('command', partial), { filesSeen: 3, filesQueued: 0 });
    const after = ledger.reader.status();
    assert.equal(after.lastReconcile, new Date(finishedAt).toISOString(), 'lastReconcile stays the last full pass');
    assert.deepEqual(after.lastPartialPass?.scope, partial);
    assert.deepEqual(after.lastPartialPass?.counts, { filesSeen: 3, filesQueued: 0 });
    assert.equal(after.lastFullPass?.reason, 'startup');
    // A failed pass after the last good one is shown (not hidden behind the older success).
    assert.deepEqual(after.lastFailedPass?.error, 'EACCES: scan failed', 'the failed cron pass came after the last full one');
  });

  void test('failures lists retrying, quarantined and gone rows, most recently changed first', (t) => {
    const { clock, ledger } = setup(t);
    archiveOne(ledger, 'fine.csv', stat(0));
    for (const [n, name] of ['r.csv', 'q.csv', 'g.csv', 'p.csv'].entries()) ledger.observe(TARGET, name, stat(n + 1));
    ledger.scheduleRetry(claim(ledger), 'E_S3_RETRYABLE: slow down', clock.now() + 1000);
    clock.advance(10);
    ledger.markQuarantined(claim(ledger), 'E_KEY_LAYOUT: too long');
    clock.advance(10);
    ledger.markGone(claim(ledger), 'vanished before it could be archived');

    const failures = ledger.reader.failures(10);
    assert.deepEqual(
      failures.map((f) => [f.relPath, f.state, f.lastError]),
      [
        ['g.csv', 'gone', 'vanished before it could be archived'],
        ['q.csv', 'quarantined', 'E_KEY_LAYOUT: too long'],
        ['r.csv', 'retry', 'E_S3_RETRYABLE: slow down'],
      ],
    );
    assert.equal(ledger.reader.failures(1).length, 1);
  });

  void test('story finds a path on any target, or on one target when named, with its objects', (t) => {
    const { ledger } = setup(t);
    const otherTarget = '/srv/sftp/other';
    archiveOne(ledger, 'shared/name.csv', stat(1), '11'.repeat(32));
    ledger.observe(otherTarget, 'shared/name.csv', stat(2));

    const everywhere = ledger.reader.story('shared/name.csv');
    assert.deepEqual(everywhere.generations.map((g) => g.target).sort(), [otherTarget, TARGET].sort());
    const one = ledger.reader.story('shared/name.csv', TARGET);
    assert.equal(one.generations.length, 1);
    assert.deepEqual(
      one.objects.map(({ key, sha256, etag, versionId, checksumSha256, foundByHead }) => ({
        key,
        sha256,
        etag,
        versionId,
        checksumSha256,
        foundByHead,
      })),
      [
        {
          key: 'shared/name.csv',
          sha256: '11'.repeat(32),
          etag: '"etag-1"',
          versionId: 'v-1',
          checksumSha256: Buffer.from('11'.repeat(32), 'hex').toString('base64'),
          foundByHead: false,
        },
      ],
    );
    assert.deepEqual(ledger.reader.story('no/such.csv'), { generations: [], history: [], objects: [] });
  });

  void test('a duplicate proof archives the generation with duplicate_of and records no object', (t) => {
    const { ledger } = setup(t);
    const sha = 'ee'.repeat(32);
    const first = archiveOne(ledger, 'again.csv', stat(1), sha);
    assert.equal(ledger.observe(TARGET, 'again.csv', stat(2)), 'queued');
    assert.deepEqual(ledger.previousArchived(TARGET, 'again.csv', 2), { id: first.id, sha256: sha });
    const second = claim(ledger);
    ledger.markArchived(second, stat(2), sha, { kind: 'duplicate', duplicateOf: first.id });

    const story = ledger.reader.story('again.csv');
    assert.deepEqual(
      story.generations.map((g) => [g.generation, g.state, g.sha256, g.duplicateOf]),
      [
        [1, 'archived', sha, null],
        [2, 'archived', sha, first.id],
      ],
    );
    assert.deepEqual(story.objects.map((o) => o.fileId), [first.id]);
    // An operator reads generations and times, never a row id.
    const archivedAt = new Date(story.generations[0]!.updatedAt).toISOString();
    assert.equal(story.history.at(-1)?.detail, `same content as generation 1 (archived at ${archivedAt}): not uploaded again`);
    assert.doesNotMatch(story.history.map((h) => h.detail).join('\n'), /#\d/);
  });
});

void describe('planned objects and members', () => {
  const member = (key: string, sha = 'cd'.repeat(32)) => ({ member: key.split('/').pop(), bucket: 'b', key, sha256: sha, sizeBytes: 3 });
  const stored = (key: string, sha = 'cd'.repeat(32)) => ({
    bucket: 'b', key, sha256: sha, sizeBytes: 3, etag: `"${key}"`, versionId: 'v', checksumSha256: undefined, foundByHead: false,
  });

  void test('a key another path reserved is a conflict naming it; the same path\'s next generation may reuse it', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'e.zip', stat(1));
    ledger.observe(TARGET, 'e/x.csv', stat(2));
    const archive = claim(ledger);
    assert.equal(ledger.reserveKeys(archive, [member('e/x.csv'), member('e/y.csv')]), undefined);
    const plain = claim(ledger);
    assert.deepEqual(ledger.reserveKeys(plain, [{ ...member('e/x.csv'), member: undefined }]), { key: 'e/x.csv', target: TARGET, relPath: 'e.zip' });
    // Reserving again (a retry that read other content) replaces the plan of the same generation.
    assert.equal(ledger.reserveKeys(archive, [member('e/y.csv')]), undefined);
    assert.equal(ledger.reserveKeys(plain, [{ ...member('e/x.csv'), member: undefined }]), undefined);
  });

  void test('an object recorded by another path holds its key even once that path is gone; a quarantined plan does not', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'a.zip', stat(1));
    ledger.observe(TARGET, 'b.zip', stat(2));
    ledger.observe(TARGET, 'c.zip', stat(3));
    const a = claim(ledger);
    ledger.reserveKeys(a, [member('k/one')]);
    ledger.recordObject(a, stored('k/one'), 'one');
    ledger.markGone(a, 'deleted after its first member was stored');
    const b = claim(ledger);
    assert.equal(ledger.reserveKeys(b, [member('k/one')])?.relPath, 'a.zip');
    ledger.reserveKeys(b, [member('k/two')]);
    ledger.markQuarantined(b, 'rejected');
    const c = claim(ledger);
    assert.equal(ledger.reserveKeys(c, [member('k/two')]), undefined);
  });

  void test('members recorded one by one are what a resumed claim skips, and the story shows each with its member', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'e.zip', stat(1));
    const first = claim(ledger);
    ledger.recordObject(first, stored('e/x.csv'), 'x.csv');
    assert.equal(ledger.recoverAbandoned(() => false), 1);
    const resumed = claim(ledger, 'pid:9');
    assert.equal(resumed.id, first.id);
    assert.deepEqual([...ledger.recordedObjects(resumed.id).keys()], ['e/x.csv']);
    assert.throws(() => ledger.recordObject(first, stored('e/y.csv'), 'y.csv'), /expected state working held by pid:4242/);
    ledger.recordObject(resumed, stored('e/y.csv'), 'y.csv');
    ledger.markArchived(resumed, stat(1), 'ef'.repeat(32), { kind: 'members', count: 2, foundByHead: 0 });
    const story = ledger.reader.story('e.zip');
    assert.deepEqual(story.objects.map((o) => [o.key, o.member]), [['e/x.csv', 'x.csv'], ['e/y.csv', 'y.csv']]);
    assert.match(story.history.at(-1)?.detail ?? '', /2 members stored/);
    assert.deepEqual([...ledger.archivedObjectsInScope(TARGET, 'b', 'e/', 0)].map((o) => o.key), ['e/x.csv', 'e/y.csv']);
  });

  void test('a quarantined row keeps the object of its original bytes', (t) => {
    const { ledger } = setup(t);
    ledger.observe(TARGET, 'bad.zip', stat(1));
    const bad = claim(ledger);
    ledger.markQuarantined(bad, 'E_ARCHIVE_REJECTED: member "../x": path traversal', stored('_quarantine/bad.zip'));
    const story = ledger.reader.story('bad.zip');
    assert.equal(story.generations[0]?.state, 'quarantined');
    assert.deepEqual(story.objects.map((o) => o.key), ['_quarantine/bad.zip']);
    // Quarantined originals are no archive proof: verify never checks them.
    assert.deepEqual([...ledger.archivedObjectsInScope(TARGET, 'b', '', 0)], []);
  });

  void test('an archived object stays in verify\'s scope when another path\'s object was recorded later at its key', (t) => {
    const { ledger } = setup(t);
    // A ledger from before quarantine keys were reserved: `bad.zip`'s original went to the very key the plain file
    // `_quarantine/bad.zip` was archived at. Verify must still check that file's object (S3's latest is foreign now).
    archiveOne(ledger, '_quarantine/bad.zip', stat(1));
    ledger.observe(TARGET, 'bad.zip', stat(2));
    const bad = claim(ledger);
    ledger.markQuarantined(bad, 'E_ARCHIVE_REJECTED: truncated', stored('_quarantine/bad.zip'));
    assert.deepEqual(
      [...ledger.archivedObjectsInScope(TARGET, 'b', '', 0)].map((o) => [o.relPath, o.key, o.etag]),
      [['_quarantine/bad.zip', '_quarantine/bad.zip', '"etag-1"']],
    );
  });
});

void describe('group commit (Ledger.grouped)', () => {
  /** The paths another connection sees committed: what a crash at this instant would leave. */
  function committedPaths(dir: string): string[] {
    const db = new Database(path.join(dir, 'ledger.db'), { readonly: true });
    try {
      return (db.prepare('SELECT rel_path AS relPath FROM files ORDER BY rel_path').all() as { relPath: string }[]).map((r) => r.relPath);
    } finally {
      db.close();
    }
  }

  void test('the works of one turn commit together, and only once settled does their caller go on', async (t) => {
    const { dir, ledger } = setup(t);
    const first = ledger.grouped(() => ledger.observe(TARGET, 'a.csv', stat(1)));
    const second = ledger.grouped(() => ledger.observe(TARGET, 'b.csv', stat(2)));
    // Queued, not written: nothing is in the file yet.
    assert.deepEqual(committedPaths(dir), []);
    let settledBeforeCommit = false;
    void first.then(() => (settledBeforeCommit = committedPaths(dir).length !== 2));
    assert.deepEqual(await Promise.all([first, second]), ['queued', 'queued']);
    assert.equal(settledBeforeCommit, false);
    assert.deepEqual(committedPaths(dir), ['a.csv', 'b.csv']);
  });

  void test('a work that throws is rolled back alone; the others of its group commit', async (t) => {
    const { dir, ledger } = setup(t);
    const kept = ledger.grouped(() => ledger.observe(TARGET, 'kept.csv', stat(1)));
    const failed = ledger.grouped(() => {
      ledger.observe(TARGET, 'undone.csv', stat(2));
      throw new SftppushError('E_TEST', 'a failure after a write');
    });
    const conflicting = ledger.grouped(() => ledger.markArchived({ id: 1, owner: 'pid:1' }, stat(1), 'ab'.repeat(32), uploadedProof('k')));
    assert.equal(await kept, 'queued');
    await assert.rejects(failed, /a failure after a write/);
    await assert.rejects(conflicting, /pending -> archived|not a legal transition|working/);
    assert.deepEqual(committedPaths(dir), ['kept.csv']);
    assert.equal(ledger.reader.story('kept.csv').generations[0]?.state, 'pending');
  });

  void test('close() commits what waits for a group commit', (t) => {
    const dir = tempDir(t, 'sftppush-ledger');
    const ledger = Ledger.open(path.join(dir, 'ledger.db'), { migrationsDir: MIGRATIONS_DIR });
    const queued = ledger.grouped(() => ledger.observe(TARGET, 'last.csv', stat(1)));
    ledger.close();
    assert.deepEqual(committedPaths(dir), ['last.csv']);
    return queued.then((outcome) => assert.equal(outcome, 'queued'));
  });
});
