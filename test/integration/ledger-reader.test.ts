// What `status` reads, against real SQLite files: every query a range read or an index lookup whatever the
// ledger's size, counters that follow every transition, history retention, and the read-only open.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { ClaimedFile, Ledger } from '../../src/ledger/ledger.js';
import { applyMigrations, readMigrations } from '../../src/ledger/migrations.js';
import { LedgerReader, type ReaderDb } from '../../src/ledger/reader.js';
import { FILE_STATES } from '../../src/ledger/states.js';
import { BIG_TARGETS, bigLedgerPath, fillBigLedger } from '../support/big-ledger.js';
import { ManualClock, MIGRATIONS_DIR, openTestLedger, tempDir } from '../support/fixtures.js';

const TARGET = '/srv/sftp/in';
const OTHER = '/srv/sftp/other';
const stat = (n: number) => ({ sizeBytes: 10 + n, mtimeMs: 1_700_000_000_000 + n, inode: 100 + n, ctimeNs: BigInt(n) });

function claim(ledger: Ledger): ClaimedFile {
  const claimed = ledger.claimNext('pid:1');
  assert.ok(claimed);
  return claimed;
}

/** A reader over `file` that records every statement it runs with its parameters. */
function spyingReader(file: string): { reader: LedgerReader; runs: { sql: string; params: unknown[] }[]; db: Database.Database } {
  const db = new Database(file, { readonly: true });
  const runs: { sql: string; params: unknown[] }[] = [];
  const spy: ReaderDb = {
    prepare(sql) {
      const statement = db.prepare(sql);
      return {
        get: (...params: unknown[]) => (runs.push({ sql, params }), statement.get(...params)),
        all: (...params: unknown[]) => (runs.push({ sql, params }), statement.all(...params)),
      };
    },
    pragma: (sql, options) => db.pragma(sql, options),
    close: () => db.close(),
  };
  return { reader: new LedgerReader(spy, Date.now), runs, db };
}

void describe('status queries stay cheap as the ledger grows', () => {
  void test('every query of status, --failed and PATH is an index lookup or range read: no table scan, no sort', (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'ledger.db');
    fillBigLedger(file, { files: 2000, passes: 500 });
    const { reader, runs, db } = spyingReader(file);
    t.after(() => db.close());
    reader.status();
    reader.failures(1000);
    reader.scanSkips(1000);
    reader.story(bigLedgerPath(77));
    reader.story(bigLedgerPath(77), BIG_TARGETS[1]);
    assert.ok(runs.length >= 8, `${runs.length} queries`);
    for (const { sql, params } of runs) {
      const plan = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail);
      for (const step of plan) {
        assert.doesNotMatch(step, /^SCAN (files|history|objects|reconcile_runs)\b(?!.*USING (COVERING )?INDEX)/, `${sql}\n${plan.join('\n')}`);
        assert.doesNotMatch(step, /TEMP B-TREE/, `${sql}\n${plan.join('\n')}`);
      }
    }
  });

  void test('with 200,000 rows, counts, backlog, --failed and PATH answer in well under 100 ms', (t) => {
    const file = path.join(tempDir(t), 'ledger.db');
    fillBigLedger(file, { files: 200_000, passes: 20_000 });
    const reader = LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR });
    t.after(() => reader.close());
    const timings: Record<string, number> = {};
    // The best of five, after a run that prepares the statements and warms the page cache: the machine running
    // the suite is shared, and what is measured is the queries, not the scheduler.
    const time = (name: string, fn: () => unknown) => {
      fn();
      timings[name] = Infinity;
      for (let run = 0; run < 5; run++) {
        const start = process.hrtime.bigint();
        fn();
        timings[name] = Math.min(timings[name], Number(process.hrtime.bigint() - start) / 1e6);
      }
    };
    time('status', () => reader.status());
    time('failures', () => reader.failures(1000));
    time('story', () => reader.story(bigLedgerPath(123_457)));
    for (const [name, ms] of Object.entries(timings)) assert.ok(ms < 100, `${name} took ${ms.toFixed(1)} ms: ${JSON.stringify(timings)}`);
    const summary = reader.status();
    assert.equal(summary.counts.archived, 200_000 - 20 * 80);
    assert.equal(summary.backlog.files, 20 * 20);
    assert.equal(reader.story(bigLedgerPath(123_457)).generations.length, 1);
  });
});

void describe('counters', () => {
  function groupBy(file: string): Record<string, number> {
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare(`SELECT target, state, COUNT(*) AS n FROM files GROUP BY target, state`).all() as { target: string; state: string; n: number }[];
      return Object.fromEntries(rows.map((r) => [`${r.target} ${r.state}`, r.n]));
    } finally {
      db.close();
    }
  }

  function fromCounters(reader: LedgerReader): Record<string, number> {
    return Object.fromEntries(
      reader.status().targets.flatMap((t) => FILE_STATES.filter((s) => t.counts[s] > 0).map((s) => [`${t.target} ${s}`, t.counts[s]])),
    );
  }

  void test('per-target counts follow every transition, and equal a full count', (t) => {
    const dir = tempDir(t);
    const clock = new ManualClock();
    const ledger = openTestLedger(t, dir, clock.now);
    const file = path.join(dir, 'ledger.db');
    for (let n = 0; n < 6; n++) ledger.observe(n < 4 ? TARGET : OTHER, `f${n}.csv`, stat(n));
    const first = claim(ledger);
    ledger.markArchived(first, stat(0), 'ab'.repeat(32), { kind: 'uploaded', objects: [] });
    ledger.scheduleRetry(claim(ledger), 'E_S3_RETRYABLE: x', clock.now() + 1000);
    ledger.markQuarantined(claim(ledger), 'E_ARCHIVE_REJECTED: x');
    ledger.markGone(claim(ledger), 'vanished');
    claim(ledger); // left working
    ledger.observe(TARGET, 'f1.csv', stat(11)); // the retry row changed: pending again
    ledger.reopen(first.id, 'missing in S3');
    assert.deepEqual(fromCounters(ledger.reader), groupBy(file));
    assert.deepEqual(ledger.reader.status().counts, { pending: 3, working: 1, retry: 0, archived: 1, quarantined: 1, gone: 1 });
    assert.deepEqual(ledger.reader.status().targets.map((x) => x.target), [TARGET, OTHER]);

    // An operator deleting rows by hand keeps them right too.
    const db = new Database(file);
    db.prepare(`DELETE FROM history`).run();
    db.prepare(`DELETE FROM files WHERE target = ? AND state = 'gone'`).run(OTHER);
    db.close();
    assert.deepEqual(fromCounters(ledger.reader), groupBy(file));
  });

  void test('migrating an existing ledger counts the rows it already holds', (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'ledger.db');
    fillBigLedger(file, { files: 1000, passes: 1 });
    // fillBigLedger inserted through the triggers; drop the counters (and what later migrations made) and migrate
    // again from 7 to see the backfill.
    const db = new Database(file);
    db.exec(`DELETE FROM file_counts; DROP TABLE after_actions; DROP TABLE scan_skips; PRAGMA user_version = 7;`);
    db.exec(`DROP TRIGGER files_counts_insert; DROP TRIGGER files_counts_update; DROP TRIGGER files_counts_delete;
             DROP TABLE file_counts; DROP INDEX files_path; DROP INDEX files_unfinished; DROP INDEX files_failed;
             DROP INDEX history_at; DROP INDEX reconcile_runs_failed;`);
    db.close();
    const ledger = openTestLedger(t, dir);
    assert.deepEqual(fromCounters(ledger.reader), groupBy(file));
  });
});

void describe('migration 0008 on an existing ledger', () => {
  void test('a duplicate\'s old history text, `same content as #<row id>`, names the generation and when it was archived', (t) => {
    const file = path.join(tempDir(t), 'ledger.db');
    const db = new Database(file);
    applyMigrations(db, readMigrations(MIGRATIONS_DIR).slice(0, 7), file);
    const insert = db.prepare(
      `INSERT INTO files (id, target, rel_path, generation, size_bytes, mtime_ms, inode, state, duplicate_of, created_at, updated_at)
       VALUES (?, '/srv/in', 'a.csv', ?, 1, 1, 1, 'archived', ?, 0, ?)`,
    );
    insert.run(41, 1, null, Date.parse('2024-03-01T12:00:00.250Z'));
    insert.run(97, 2, 41, Date.parse('2024-03-02T00:00:00Z'));
    db.prepare(`INSERT INTO history (file_id, from_state, to_state, at, detail) VALUES (97, 'working', 'archived', 0, ?)`).run(
      'same content as #41: not uploaded again',
    );
    db.close();
    const ledger = openTestLedger(t, path.dirname(file));
    assert.deepEqual(
      ledger.reader.story('a.csv').history.map((h) => h.detail),
      ['same content as generation 1 (archived at 2024-03-01T12:00:00.250Z): not uploaded again'],
    );
  });
});

void describe('history retention', () => {
  void test('pruning deletes history older than the cutoff, a batch at a time, and keeps every file\'s state and objects', (t) => {
    const dir = tempDir(t);
    const clock = new ManualClock();
    const ledger = openTestLedger(t, dir, clock.now);
    ledger.observe(TARGET, 'old.csv', stat(1));
    const old = claim(ledger);
    ledger.markArchived(old, stat(1), 'ab'.repeat(32), {
      kind: 'uploaded',
      objects: [{ bucket: 'b', key: 'old.csv', sha256: 'ab'.repeat(32), sizeBytes: 11, etag: '"e"', versionId: 'v1', checksumSha256: undefined, foundByHead: false }],
    });
    clock.advance(10 * 86_400_000);
    ledger.observe(TARGET, 'new.csv', stat(2));
    const cutoff = clock.now() - 86_400_000;

    assert.equal(ledger.pruneHistory(cutoff, 2), 2, 'one batch of two');
    assert.equal(ledger.pruneHistory(cutoff, 2), 1, 'the rest');
    assert.equal(ledger.pruneHistory(cutoff, 2), 0, 'nothing left to prune');
    const story = ledger.reader.story('old.csv');
    assert.deepEqual(story.history, []);
    assert.equal(story.generations[0]?.state, 'archived');
    assert.equal(story.objects[0]?.versionId, 'v1');
    assert.equal(ledger.reader.story('new.csv').history.length, 1);
  });
});

void describe('LedgerReader.open', () => {
  function ledgerFile(t: TestContext): string {
    const dir = tempDir(t);
    openTestLedger(t, dir).close();
    return path.join(dir, 'ledger.db');
  }

  void test('a stopped service\'s ledger: read as it is, nothing created beside it, no lock a starting service waits for', (t) => {
    const file = ledgerFile(t);
    const dir = path.dirname(file);
    assert.deepEqual(fs.readdirSync(dir), ['ledger.db']);
    const reader = LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR });
    t.after(() => reader.close());
    assert.deepEqual(reader.status().counts, { pending: 0, working: 0, retry: 0, archived: 0, quarantined: 0, gone: 0 });
    const service = openTestLedger(t, dir); // starts while status reads: not blocked
    service.observe('/srv/in', 'a.csv', stat(1));
    assert.equal(reader.status().counts.pending, 0, 'the reader\'s view is the file as the stopped service left it');
    reader.close();
    service.close();
    assert.deepEqual(fs.readdirSync(dir), ['ledger.db']);
  });

  void test('a running service\'s ledger: read through its -wal, what it commits seen at the next read', (t) => {
    const file = ledgerFile(t);
    const service = openTestLedger(t, path.dirname(file));
    service.observe('/srv/in', 'a.csv', stat(1));
    const reader = LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR });
    t.after(() => reader.close());
    assert.equal(reader.status().counts.pending, 1);
    service.observe('/srv/in', 'b.csv', stat(2));
    assert.equal(reader.status().counts.pending, 2);
    const check = new Database(file, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), readMigrations(MIGRATIONS_DIR).length, 'migrated by the service only');
    check.close();
  });

  void test('a missing ledger is E_LEDGER_MISSING, naming it', (t) => {
    const file = path.join(tempDir(t), 'none.db');
    assert.throws(() => LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR }), { code: 'E_LEDGER_MISSING', message: new RegExp(file) });
    assert.equal(fs.existsSync(file), false, 'not created');
  });

  void test('a ledger older than the previous schema asks for the service to upgrade it first', (t) => {
    const file = ledgerFile(t);
    const db = new Database(file);
    db.pragma('user_version = 5');
    db.close();
    assert.throws(() => LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR }), { code: 'E_LEDGER_OLDER', message: /schema version 5/ });
  });
});
