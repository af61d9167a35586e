// The rescan path: scanTree over a real directory tree into a real ledger, and the Reconciler's promise of
// one scan at a time.
import Database from 'better-sqlite3';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { ScanSkip } from '../../src/ledger/ledger.js';
import { createLogger } from '../../src/log.js';
import { Observer } from '../../src/observe/observer.js';
import { nodeSourceDirs, nodeSourceFs } from '../../src/source/source-fs.js';
import { Reconciler, SCAN_SKIPS_KEPT } from '../../src/reconcile/reconciler.js';
import { scanTree } from '../../src/reconcile/scanner.js';
import {
  captureLines,
  openTestLedger,
  targetConfig,
  tempDir,
  waitUntil,
  writeFile,
  type LogRecord,
} from '../support/fixtures.js';

const HOUR_AGO = new Date(Date.now() - 3_600_000);

/** settle_seconds 0 by default: utimes can age an mtime, never a ctime, and the settle rule looks at both. */
function setup(t: TestContext, settleMs = 0, ignore: string[] = ['.*', '*.filepart']) {
  const dir = tempDir(t, 'sftppush-scan');
  const root = path.join(dir, 'target');
  fs.mkdirSync(root);
  const ledger = openTestLedger(t, dir);
  const logs: LogRecord[] = [];
  const log = createLogger('debug', captureLines(logs));
  const queued: number[] = [];
  const observer = new Observer({
    ledger,
    source: nodeSourceFs,
    dirs: nodeSourceDirs,
    log,
    settleMs,
    now: Date.now,
    onQueued: () => queued.push(1),
    onFatal: (error) => assert.fail(String(error)),
  });
  t.after(() => observer.close());
  const target = targetConfig({ path: root, ignore });
  const oldFile = (relPath: string, content = relPath): string => {
    const file = writeFile(root, relPath, content);
    fs.utimesSync(file, HOUR_AGO, HOUR_AGO);
    return file;
  };
  const states = (relPath: string) => ledger.reader.story(relPath).generations.map((g) => g.state);
  return { root, ledger, logs, log, observer, dirs: nodeSourceDirs, target, oldFile, states, queued };
}

void describe('scanTree', () => {
  void it('queues every regular file at any depth, pruning ignored names and never following symlinks', async (t) => {
    const s = setup(t);
    s.oldFile('a.csv');
    s.oldFile('deep/er/b.csv');
    s.oldFile('upload.csv.filepart');
    s.oldFile('.hidden/c.csv');
    const outside = tempDir(t, 'sftppush-outside');
    writeFile(outside, 'secret.txt', 'not ours');
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(s.root, 'link.txt'));
    fs.symlinkSync(outside, path.join(s.root, 'linkdir'));

    const tally = await scanTree(s.target, '', s);

    // The target, deep/ and deep/er/: .hidden/ is pruned, linkdir is a symlink and never followed.
    assert.deepEqual(tally, { filesSeen: 2, filesInScope: 2, filesUnchanged: 0, filesArchived: 0, filesQueued: 2, filesWaiting: 0, dirsScanned: 3, dirsUnreadable: 0, entriesSkipped: 0 });
    assert.deepEqual(s.states('a.csv'), ['pending']);
    assert.deepEqual(s.states('deep/er/b.csv'), ['pending']);
    for (const skipped of ['upload.csv.filepart', '.hidden/c.csv', 'link.txt', 'linkdir/secret.txt']) {
      assert.deepEqual(s.states(skipped), [], `${skipped} is not recorded`);
    }
  });

  void it('a second scan of an unchanged tree queues nothing', async (t) => {
    const s = setup(t);
    s.oldFile('a.csv');
    await scanTree(s.target, '', s);
    const again = await scanTree(s.target, '', s);
    assert.deepEqual(again, { filesSeen: 1, filesInScope: 1, filesUnchanged: 1, filesArchived: 0, filesQueued: 0, filesWaiting: 0, dirsScanned: 1, dirsUnreadable: 0, entriesSkipped: 0 });
    assert.equal(s.ledger.reader.story('a.csv').generations.length, 1);
  });

  void it('a rescan reads each directory\'s rows once, and an upgraded row (no ctime yet) adopts the one it sees', async (t) => {
    const s = setup(t);
    for (const name of ['a.csv', 'b.csv', 'sub/c.csv']) s.oldFile(name);
    await scanTree(s.target, '', s);
    const db = new Database(path.join(path.dirname(s.root), 'ledger.db'));
    db.prepare(`UPDATE files SET ctime_ns = NULL WHERE rel_path = 'sub/c.csv'`).run();
    db.close();
    const again = await scanTree(s.target, '', s);
    assert.equal(again.filesUnchanged, 3);
    assert.equal(again.filesQueued, 0);
    assert.notEqual(s.ledger.reader.story('sub/c.csv').generations[0]?.ctimeNs, null, 'the ctime is recorded');
    assert.equal(s.ledger.reader.story('sub/c.csv').generations.length, 1);
  });

  void it('a file younger than the settle time waits, then is taken once it has stayed unchanged', async (t) => {
    const s = setup(t, 300);
    writeFile(s.root, 'fresh.csv', 'just written');
    const tally = await scanTree(s.target, '', s);
    assert.deepEqual(tally, { filesSeen: 1, filesInScope: 1, filesUnchanged: 0, filesArchived: 0, filesQueued: 0, filesWaiting: 1, dirsScanned: 1, dirsUnreadable: 0, entriesSkipped: 0 });
    assert.deepEqual(s.states('fresh.csv'), []);
    await waitUntil('the fresh file to be taken', () => s.states('fresh.csv').length === 1, 5000);
    assert.deepEqual(s.states('fresh.csv'), ['pending']);
  });

  void it('a directory of many batches is streamed, the event loop turning between batches; a non-UTF-8 name is skipped and counted', async (t) => {
    const s = setup(t);
    const n = 1000; // about four of the walk's batches of entries
    for (let i = 0; i < n; i += 1) s.oldFile(`big/f${i}.csv`);
    const badName = Buffer.from([0x62, 0x61, 0x64, 0xff, 0x2e, 0x63, 0x73, 0x76]); // "bad\xff.csv"
    fs.writeFileSync(Buffer.concat([Buffer.from(`${s.root}/big/`), badName]), 'latin-1 name\n');
    let turns = 0;
    let scanning = true;
    const turn = (): void => {
      turns += 1;
      if (scanning) setImmediate(turn);
    };
    setImmediate(turn);
    const tally = await scanTree(s.target, '', s);
    scanning = false;
    assert.equal(tally.filesQueued, n);
    assert.equal(tally.dirsScanned, 2);
    assert.equal(tally.entriesSkipped, 1);
    assert.ok(turns >= 3, `the event loop turned ${turns} times during the scan`);
    assert.ok(s.logs.some((line) => line.nameHex === badName.toString('hex') && line.level === 50), 'the skipped name is logged by its bytes');
  });

  void it('an entry that cannot be stat-ed is logged and skipped; the rest of the tree is still scanned', async (t) => {
    const s = setup(t, 0);
    // Nested long names, each legal, built by walking down relatively: the full path is over PATH_MAX, so the
    // scanner's lstat of it fails ENAMETOOLONG (an SFTP user can do exactly this).
    const cwd = process.cwd();
    try {
      process.chdir(s.root);
      for (let i = 0; i < 18; i += 1) {
        const name = `${String(i).padStart(3, '0')}${'d'.repeat(240)}`;
        fs.mkdirSync(name);
        process.chdir(name);
      }
      fs.writeFileSync('too-deep.csv', 'x');
    } finally {
      process.chdir(cwd);
    }
    s.oldFile('ok.csv');
    try {
      const skips: ScanSkip[] = [];
      const tally = await scanTree(s.target, '', s, { onSkip: (skip) => skips.push(skip) });
      assert.equal(tally.filesQueued, 1, 'ok.csv is still queued');
      assert.ok(s.logs.some((line) => line.level === 50 && line.code === 'ENAMETOOLONG'), 'the unreadable entry is logged');
      // Where the path passes PATH_MAX, the directory (opendir) or the file (lstat) fails: either is reported.
      assert.equal(skips.length, 1, `reported to the pass: ${JSON.stringify(skips)}`);
      assert.equal(skips[0]?.code, 'ENAMETOOLONG');
      assert.ok(skips[0]?.kind === 'unstatable-file' || skips[0]?.kind === 'unreadable-directory');
    } finally {
      // fs.rmSync cannot remove a tree deeper than PATH_MAX; GNU rm walks it with openat.
      execFileSync('rm', ['-rf', path.join(s.root, `000${'d'.repeat(240)}`)]);
    }
    assert.deepEqual(s.states('ok.csv'), ['pending']);
  });
});

function reconcilerFor(s: ReturnType<typeof setup>): Reconciler {
  return new Reconciler({ ...s, targets: [s.target], now: Date.now });
}

void describe('Reconciler', () => {
  void it('never runs two scans at once: requests during a scan fold into one more scan after it', async (t) => {
    const s = setup(t);
    for (let i = 0; i < 50; i += 1) s.oldFile(`f${i}.csv`);
    const reconciler = reconcilerFor(s);
    await Promise.all([reconciler.scan('a'), reconciler.scan('b'), reconciler.scan('c')]);
    await waitUntil('the folded rescan to finish', () => s.logs.filter((l) => l.msg === 'reconcile scan finished').length === 2, 5000);
    const finished = s.logs.filter((line) => line.msg === 'reconcile scan finished');
    assert.deepEqual(finished.map((line) => line.reason), ['a', 'b'], 'b and c fold into one scan after a');
    assert.equal(finished[0]?.filesQueued, 50);
    assert.equal(finished[1]?.filesQueued, 0);
    assert.notEqual(s.ledger.reader.status().lastReconcile, null);
  });

  void it('records what a pass skips in the ledger, at most SCAN_SKIPS_KEPT per target, and clears each once it is valid again', async (t) => {
    const s = setup(t);
    const n = SCAN_SKIPS_KEPT + 200;
    fs.mkdirSync(path.join(s.root, 'bad'));
    const names = Array.from({ length: n }, (_, i) => Buffer.concat([Buffer.from(`f${i}-`), Buffer.from([0xff]), Buffer.from('.csv')]));
    for (const name of names) fs.writeFileSync(Buffer.concat([Buffer.from(`${s.root}/bad/`), name]), 'x');
    s.oldFile('ok.csv');
    const reconciler = reconcilerFor(s);

    const tally = await reconciler.scan('schedule');
    assert.equal(tally.entriesSkipped, n, 'every bad name is counted');
    const skips = s.ledger.reader.scanSkips(5000);
    assert.equal(skips.rows.length, SCAN_SKIPS_KEPT, 'but the ledger keeps a bounded number');
    assert.equal(skips.counts['invalid-name'], SCAN_SKIPS_KEPT);
    assert.ok(skips.rows.every((row) => row.kind === 'invalid-name' && row.path === 'bad' && row.target === s.root && row.code === null));
    const kept = new Set(names.map((name) => name.toString('hex')));
    assert.ok(skips.rows.every((row) => kept.has(row.nameHex!)), 'each row names a bad name by its bytes');
    assert.equal(reconciler.findings.skips.items.length + reconciler.findings.skips.more, n);
    assert.equal(s.ledger.reader.status().lastFullPass?.counts?.entriesSkipped, n, 'the pass record counts them all');

    // A second pass over the same tree: the same rows, updated, not more of them.
    await reconciler.scan('schedule');
    assert.equal(s.ledger.reader.scanSkips(5000).rows.length, SCAN_SKIPS_KEPT);

    // Renamed to valid names: the next pass clears them all (and queues the files).
    names.forEach((name, i) => fs.renameSync(Buffer.concat([Buffer.from(`${s.root}/bad/`), name]), path.join(s.root, 'bad', `f${i}.csv`)));
    const after = await reconciler.scan('schedule');
    assert.equal(after.entriesSkipped, 0);
    assert.deepEqual(s.ledger.reader.scanSkips(10), { counts: { 'unreadable-directory': 0, 'invalid-name': 0, 'unstatable-file': 0 }, rows: [] });
  });

  void it('a pass over a subtree clears only the skips under it; a failed pass (target missing) clears none', async (t) => {
    const s = setup(t);
    const bad = (dir: string) => fs.writeFileSync(Buffer.concat([Buffer.from(`${s.root}/${dir}/`), Buffer.from([0x78, 0xfe])]), 'x');
    fs.mkdirSync(path.join(s.root, 'a'));
    fs.mkdirSync(path.join(s.root, 'ab'));
    bad('a');
    bad('ab');
    await reconcilerFor(s).scan('startup');
    assert.deepEqual(s.ledger.reader.scanSkips(10).rows.map((row) => row.path).sort(), ['a', 'ab']);

    fs.rmSync(path.join(s.root, 'a'), { recursive: true });
    fs.mkdirSync(path.join(s.root, 'a'));
    fs.rmSync(path.join(s.root, 'ab'), { recursive: true });
    const subtree = new Reconciler({ ...s, targets: [s.target], now: Date.now, scope: { verify: false, dryRun: false, partial: true, subtrees: [{ target: s.target, relDir: 'a' }] } });
    await subtree.scan('command');
    assert.deepEqual(s.ledger.reader.scanSkips(10).rows.map((row) => row.path), ['ab'], "a/ is clear; ab/ (a sibling, not under a/) is left for a pass that walks it");

    fs.rmSync(s.root, { recursive: true });
    await assert.rejects(reconcilerFor(s).scan('schedule'), /cannot be read/);
    assert.deepEqual(s.ledger.reader.scanSkips(10).rows.map((row) => row.path), ['ab'], 'a pass that could not walk the target clears nothing');
  });

  // Recovery runs once, when a process starts and before it claims: a scan taking rows back raced live workers.
  void it('only observes: a working row stays with its owner, whoever that is', async (t) => {
    const s = setup(t);
    s.oldFile('held.csv');
    await scanTree(s.target, '', s);
    assert.ok(s.ledger.claimNext('pid:1:1:reconcile'));
    await reconcilerFor(s).scan('schedule');
    assert.deepEqual(s.states('held.csv'), ['working']);
  });
});
