// `sftppush status` as operators meet it: a monitoring user that may only read the ledger, whether the service
// runs or not; a ledger written by an older or a newer sftppush; a path the ledger does not know; hostile names.
// No S3 here: status answers from the ledger alone, so the ledger is written in-process the way the service would.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Ledger, type ClaimedFile } from '../../src/ledger/ledger.js';
import { applyMigrations, readMigrations } from '../../src/ledger/migrations.js';
import type { WatchHealth } from '../../src/watch/watcher.js';
import { MIGRATIONS_DIR, tempDir, waitUntil } from '../support/fixtures.js';
import { startMoto, type MotoServer } from '../support/moto.js';
import { createService, isFileOutcome, SFTPPUSH_BIN, type StatusJson } from '../support/service.js';

const execFileAsync = promisify(execFile);
const TARGET = '/srv/sftp/in';
const NOBODY = 65534;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(file: string, args: readonly string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileAsync(file, args);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const sftppush = (args: readonly string[]) => run(SFTPPUSH_BIN, args);

/**
 * Runs the CLI as a user who may only read the ledger. Root ignores permission bits, so a root test runner
 * drops to `nobody` (setpriv); any other user is bound by the bits already.
 */
function asMonitoringUser(args: readonly string[]): Promise<CliResult> {
  if (process.getuid?.() !== 0) return sftppush(args);
  return run('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', SFTPPUSH_BIN, ...args]);
}

/** A ledger directory the monitoring user can read but not write: the ledger file, its directory, its parents. */
function readOnlyLedgerDir(t: TestContext): { dir: string; file: string; lockDown: () => void } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-status-'));
  fs.chmodSync(root, 0o755); // mkdtemp makes it 0700: the monitoring user must reach the ledger
  const dir = path.join(root, 'var');
  fs.mkdirSync(dir, { mode: 0o755 });
  t.after(() => {
    fs.chmodSync(dir, 0o755); // or a non-root runner could not remove the files
    fs.rmSync(root, { recursive: true, force: true });
  });
  return {
    dir,
    file: path.join(dir, 'ledger.db'),
    lockDown: () => {
      for (const name of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, name), 0o444);
      fs.chmodSync(dir, 0o555);
    },
  };
}

const stat = (n: number) => ({ sizeBytes: 10 + n, mtimeMs: 1_700_000_000_000 + n, inode: 100 + n, ctimeNs: 1_700_000_000_000_000_000n + BigInt(n) });

/** What the service would have written: one archived file, one pending, one retrying. */
function writeLedger(file: string): Ledger {
  const ledger = Ledger.open(file, { migrationsDir: MIGRATIONS_DIR });
  for (const [n, name] of ['done.csv', 'flaky.csv', 'waiting.csv'].entries()) ledger.observe(TARGET, name, stat(n));
  const done = ledger.claimNext('pid:1') as ClaimedFile;
  ledger.markArchived(done, stat(0), 'ab'.repeat(32), {
    kind: 'uploaded',
    objects: [{ bucket: 'b', key: 'done.csv', sha256: 'ab'.repeat(32), sizeBytes: 10, etag: '"e"', versionId: 'v1', checksumSha256: undefined, foundByHead: false }],
  });
  ledger.scheduleRetry(ledger.claimNext('pid:1') as ClaimedFile, 'E_S3_RETRYABLE: SlowDown', Date.now() + 60_000);
  return ledger;
}

function journalMode(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return String(db.pragma('journal_mode', { simple: true }));
  } finally {
    db.close();
  }
}

void describe('sftppush status for a read-only monitoring user', () => {
  void it('reads a stopped service\'s ledger (no -wal, no -shm, read-only directory) and leaves it as it was', async (t) => {
    const { dir, file, lockDown } = readOnlyLedgerDir(t);
    writeLedger(file).close();
    assert.deepEqual(fs.readdirSync(dir), ['ledger.db'], 'a closed WAL ledger has no -wal or -shm');
    lockDown();

    const result = await asMonitoringUser(['status', '--json', '--ledger', file]);
    assert.equal(result.code, 0, result.stderr);
    const status = JSON.parse(result.stdout) as StatusJson;
    assert.deepEqual(status.counts, { pending: 1, working: 0, retry: 1, archived: 1, quarantined: 0, gone: 0 });
    assert.deepEqual(fs.readdirSync(dir), ['ledger.db'], 'status created nothing next to the ledger');
    assert.equal(journalMode(file), 'wal');
  });

  void it('reads a running service\'s ledger, including what is only in its -wal so far', async (t) => {
    const { file, lockDown } = readOnlyLedgerDir(t);
    const service = writeLedger(file);
    t.after(() => service.close());
    lockDown();

    const result = await asMonitoringUser(['status', '--json', '--ledger', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as StatusJson).counts.archived, 1);
    service.observe(TARGET, 'later.csv', stat(9));
    const later = await asMonitoringUser(['status', '--json', '--ledger', file]);
    assert.equal((JSON.parse(later.stdout) as StatusJson).counts.pending, 2);
  });

  void it('--failed and PATH work read-only too', async (t) => {
    const { file, lockDown } = readOnlyLedgerDir(t);
    writeLedger(file).close();
    lockDown();
    const failed = await asMonitoringUser(['status', '--failed', '--ledger', file]);
    assert.equal(failed.code, 0, failed.stderr);
    assert.match(failed.stdout, /retry .*flaky\.csv.*SlowDown/);
    const story = await asMonitoringUser(['status', '--ledger', file, 'done.csv']);
    assert.equal(story.code, 0, story.stderr);
    assert.match(story.stdout, /done\.csv generation 1: archived/);
  });

  for (const running of [false, true]) {
    void it(`a ledger the user may not read (${running ? 'service running' : 'service stopped'}) is E_LEDGER_UNREADABLE naming the file`, async (t) => {
      const { dir, file } = readOnlyLedgerDir(t);
      const service = writeLedger(file);
      if (running) t.after(() => service.close());
      else service.close();
      for (const name of fs.readdirSync(dir)) fs.chmodSync(path.join(dir, name), 0o600);

      const result = await asMonitoringUser(['status', '--ledger', file]);
      assert.equal(result.code, 1, result.stdout);
      assert.match(result.stderr, new RegExp(`^sftppush: E_LEDGER_UNREADABLE: ${file.replace(/[.]/g, '\\.')}: cannot read the ledger: `), result.stderr);
    });
  }
});

void describe('sftppush status and the ledger schema', () => {
  void it('reads a ledger of the previous schema without migrating it or changing its journal mode', async (t) => {
    const file = path.join(tempDir(t), 'old.db');
    const db = new Database(file);
    db.pragma('journal_mode = WAL');
    const migrations = readMigrations(MIGRATIONS_DIR);
    applyMigrations(db, migrations.slice(0, 7), file);
    db.prepare(
      `INSERT INTO files (target, rel_path, generation, size_bytes, mtime_ms, inode, state, created_at, updated_at)
       VALUES ('/srv/in', 'old.csv', 1, 1, 1, 1, 'archived', 1, 1)`,
    ).run();
    db.close();

    const result = await sftppush(['status', '--json', '--ledger', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal((JSON.parse(result.stdout) as StatusJson).counts.archived, 1);
    const after = new Database(file, { readonly: true });
    assert.equal(after.pragma('user_version', { simple: true }), 7, 'not migrated');
    after.close();
    assert.equal(journalMode(file), 'wal');
  });

  void it('a ledger written by a newer sftppush exits 1 with a message that says so', async (t) => {
    const file = path.join(tempDir(t), 'new.db');
    const ledger = Ledger.open(file, { migrationsDir: MIGRATIONS_DIR });
    ledger.close();
    const db = new Database(file);
    db.pragma('user_version = 999');
    db.close();
    const result = await sftppush(['status', '--ledger', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /E_LEDGER_NEWER: .*schema version 999 is newer than this sftppush understands/);
  });
});

void describe('sftppush status PATH', () => {
  void it('a path the ledger does not know exits 1 and says so', async (t) => {
    const file = path.join(tempDir(t), 'ledger.db');
    writeLedger(file).close();
    const result = await sftppush(['status', '--ledger', file, 'no/such.csv']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /"no\/such\.csv": not in the ledger/);
    const json = await sftppush(['status', '--json', '--ledger', file, 'no/such.csv']);
    assert.equal(json.code, 1);
  });

  void it('control characters in names and errors never reach the terminal raw', async (t) => {
    const file = path.join(tempDir(t), 'ledger.db');
    const ledger = writeLedger(file);
    const evil = 'evil\x1b]0;pwned\x07.csv';
    ledger.observe(TARGET, evil, stat(5));
    ledger.markGone(ledger.claimNext('pid:1') as ClaimedFile, `vanished: ${evil}`);
    ledger.close();
    for (const args of [['status', '--ledger', file, evil], ['status', '--failed', '--ledger', file], ['status', '--ledger', file]]) {
      const result = await sftppush(args);
      assert.equal(result.code, 0, result.stderr);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(result.stdout, /[\x00-\x09\x0b-\x1f\x7f]/, `${args.join(' ')}: ${JSON.stringify(result.stdout)}`);
      assert.match(result.stdout, /evil\\x1b\]0;pwned\\x07\.csv/);
    }
  });

  void it('a ledger path with control characters is escaped in the error that names it', async (t) => {
    const file = path.join(tempDir(t), 'x\x1b[31m', 'l.db');
    const result = await sftppush(['status', '--ledger', file]);
    assert.equal(result.code, 1);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(result.stderr, /[\x00-\x09\x0b-\x1f\x7f]/, JSON.stringify(result.stderr));
    assert.match(result.stderr, /^sftppush: E_LEDGER_MISSING: .*\/x\\x1b\[31m\/l\.db: no ledger here/);
  });
});

void describe('sftppush status with its configuration', () => {
  void it('the table shows every configured target, those with no file yet with zero counts', async (t) => {
    const dir = tempDir(t);
    const file = path.join(dir, 'ledger.db');
    writeLedger(file).close();
    const configFile = path.join(dir, 'config.toml');
    fs.writeFileSync(
      configFile,
      `[s3]\nbucket = "status-test"\n[ledger]\npath = ${JSON.stringify(file)}\n` +
        `[[targets]]\npath = ${JSON.stringify(TARGET)}\nprefix = "in/"\n[[targets]]\npath = "/srv/sftp/quiet"\nprefix = "quiet/"\n`,
    );
    const result = await sftppush(['status', '--config', configFile]);
    assert.equal(result.code, 0, result.stderr);
    const table = result.stdout.split('\n').slice(0, 4).map((line) => line.split(/\s+/));
    assert.deepEqual(table.map((cells) => cells[0]), ['target', TARGET, '/srv/sftp/quiet', 'total']);
    assert.deepEqual(table[2]!.slice(1), ['0', '0', '0', '0', '0', '0']);
    const json = JSON.parse((await sftppush(['status', '--json', '--config', configFile])).stdout) as StatusJson & { targets: { target: string }[] };
    assert.deepEqual(json.targets.map((row) => row.target), [TARGET, '/srv/sftp/quiet']);
  });
});

void describe('history retention in the running service', () => {
  let moto: MotoServer;
  before(async () => {
    moto = await startMoto();
  });
  after(() => moto.stop());

  void it('a pass prunes transitions older than ledger.history_days; the file\'s state, object and status PATH remain', async (t) => {
    const service = await createService({ moto, bucket: 'status-retention', ledgerToml: 'history_days = 1' });
    t.after(() => service.cleanup());
    const first = await service.start();
    fs.writeFileSync(path.join(service.targetDir, 'old.csv'), 'old\n');
    await first.waitForOutcomes('old.csv');
    assert.equal(await first.stop(), 0);
    assert.equal(first.logs.filter((l) => l.msg === 'history pruned').length, 0, 'nothing was old enough');

    // Two days pass (for the history; the clock is the machine's).
    const db = new Database(service.ledgerPath);
    db.prepare(`UPDATE history SET at = at - 2 * 86400000`).run();
    db.close();
    const second = await service.start();
    const pruned = await second.waitForLog('the start-up pass to prune', (l) => l.msg === 'history pruned');
    assert.equal(pruned.deleted, 3, 'observed, claimed, archived');
    assert.equal(await second.stop(), 0);

    const story = await sftppush(['status', '--config', service.configFile, 'old.csv']);
    assert.equal(story.code, 0, story.stderr);
    assert.match(story.stdout, /old\.csv generation 1: archived since/);
    assert.match(story.stdout, /no transitions kept/);
    assert.match(story.stdout, /object s3:\/\/status-retention\/old\.csv 4 bytes version \S+ etag \S+ sha256 [0-9a-f]{64}/);
    assert.equal(first.logs.filter(isFileOutcome('old.csv')).length, 1);
  });

  void it('a target root lost under the running service shows in status at once, not at the next pass', async (t) => {
    // No scheduled pass while the test runs: only the watcher itself can tell status.
    const service = await createService({ moto, bucket: 'status-root-lost', reconcileToml: 'schedule = "0 0 1 1 *"' });
    t.after(() => service.cleanup());
    const run = await service.start();
    const rootOf = async () => ((await service.status()).watch as WatchHealth | null)?.targets[0];
    await waitUntil('the start-up pass to record the watches', async () => (await rootOf())?.rootWatched === true, 20_000, 200);

    fs.renameSync(service.targetDir, `${service.targetDir}.gone`);
    await run.waitForLog('the watcher to lose the root', (l) => l.msg.startsWith('target directory is not watched'));
    await waitUntil('status to show the root lost', async () => (await rootOf())?.rootLoss?.reason === 'moved', 10_000, 200);
    const text = await sftppush(['status', '--config', service.configFile]);
    assert.match(text.stdout, /target: NOT WATCHED \(moved since /);
    assert.equal(await run.stop(), 0);
  });
});
