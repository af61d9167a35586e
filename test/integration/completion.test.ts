// Issue 7's findings 1-3 through the real Observer and scanner: real files, a real ledger, real timers. Each
// test is a path that used to answer "is this file complete?" differently from the others.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { Observer } from '../../src/observe/observer.js';
import { nodeSourceDirs, nodeSourceFs } from '../../src/source/source-fs.js';
import { scanTree } from '../../src/reconcile/scanner.js';
import { openTestLedger, silentLog, targetConfig, tempDir, waitUntil, writeFile } from '../support/fixtures.js';

function setup(t: TestContext, options: { quietMs: number; settleMs: number }) {
  const dir = tempDir(t, 'sftppush-complete');
  const root = path.join(dir, 'target');
  fs.mkdirSync(root);
  const ledger = openTestLedger(t, dir);
  const observer = new Observer({
    ledger,
    source: nodeSourceFs,
    dirs: nodeSourceDirs,
    log: silentLog,
    settleMs: options.settleMs,
    now: Date.now,
    onQueued: () => undefined,
    onFatal: (error) => assert.fail(String(error)),
  });
  t.after(() => observer.close());
  const target = targetConfig({ path: root, quietMs: options.quietMs });
  const generations = (relPath: string): number => ledger.reader.story(relPath).generations.length;
  const scan = () => scanTree(target, '', { observer, log: silentLog, dirs: nodeSourceDirs });
  return { root, ledger, observer, target, generations, scan };
}

/** Sets a file's mtime `ageMs` in the past (its ctime stays now, as after any real write). */
function age(file: string, ageMs: number): void {
  const at = new Date(Date.now() - ageMs);
  fs.utimesSync(file, at, at);
}

void describe('one completion rule for every path', () => {
  void it('a rescan honours the target\'s quiet_ms: a file last changed within it is not taken (finding 1)', async (t) => {
    const s = setup(t, { quietMs: 1500, settleMs: 100 });
    writeFile(s.root, 'slow.csv', 'part 1\n');
    await new Promise((resolve) => setTimeout(resolve, 300)); // older than settle_seconds, younger than quiet_ms
    const tally = await s.scan();
    assert.deepEqual(tally, { filesSeen: 1, filesInScope: 1, filesUnchanged: 0, filesArchived: 0, filesQueued: 0, filesWaiting: 1, dirsScanned: 1, dirsUnreadable: 0, entriesSkipped: 0 });
    assert.equal(s.generations('slow.csv'), 0, 'not taken by a rescan while inside quiet_ms');
    await waitUntil('taken once quiet_ms has passed', () => s.generations('slow.csv') === 1, 5000);
  });

  void it('a rescan does not replace a close\'s shorter quiet period (finding 2)', async (t) => {
    const s = setup(t, { quietMs: 400, settleMs: 5000 });
    writeFile(s.root, 'appender.csv', 'row\n');
    const closedAt = Date.now();
    s.observer.noteFinished(s.target, 'appender.csv', 'closed');
    await new Promise((resolve) => setTimeout(resolve, 50));
    await s.scan(); // would wait 5 s by the settle rule
    await waitUntil('taken at the close\'s quiet period', () => s.generations('appender.csv') === 1, 3000);
    const waited = Date.now() - closedAt;
    assert.ok(waited < 2000, `taken ${waited} ms after the close, not after the scan's settle time`);
  });

  void it('a file whose mtime is in the future is taken within one settle period, however often it is rescanned (finding 3)', async (t) => {
    const s = setup(t, { quietMs: 0, settleMs: 1000 });
    const file = writeFile(s.root, 'from-2076.csv', 'copied with cp -p from a machine whose clock is wrong\n');
    const future = new Date('2076-01-01T00:00:00Z');
    fs.utimesSync(file, future, future);
    const started = Date.now();
    for (let i = 0; i < 8 && s.generations('from-2076.csv') === 0; i += 1) {
      await s.scan();
      await new Promise((resolve) => setTimeout(resolve, 400)); // scans more often than the settle time
    }
    assert.equal(s.generations('from-2076.csv'), 1, 'archived, not waiting forever');
    assert.ok(Date.now() - started < 2500, 'within about one settle period');
  });

  void it('a scan takes a file only once both its mtime and ctime are settled: a restored old mtime does not hurry it', async (t) => {
    const s = setup(t, { quietMs: 0, settleMs: 600 });
    age(writeFile(s.root, 'restored.csv', 'old mtime, fresh ctime\n'), 3_600_000); // cp -p, put -p, touch -d
    writeFile(s.root, 'fresh.csv', 'fresh\n');
    const tally = await s.scan();
    assert.deepEqual(tally, { filesSeen: 2, filesInScope: 2, filesUnchanged: 0, filesArchived: 0, filesQueued: 0, filesWaiting: 2, dirsScanned: 1, dirsUnreadable: 0, entriesSkipped: 0 });
    await waitUntil('both taken once settled', () => s.generations('restored.csv') === 1 && s.generations('fresh.csv') === 1, 5000);
  });

  void it('a writer at work after its close holds the file until the next close, and the observer says so', async (t) => {
    const s = setup(t, { quietMs: 0, settleMs: 60_000 });
    writeFile(s.root, 'reopened.csv', 'first line\n');
    s.observer.noteWriting(s.target, 'reopened.csv');
    assert.equal(s.observer.isBeingWritten(s.target, 'reopened.csv'), true);
    await s.scan();
    assert.equal(s.generations('reopened.csv'), 0, 'a scan does not take a file being written (not settled)');
    writeFile(s.root, 'reopened.csv', 'first line\nsecond line\n');
    s.observer.noteFinished(s.target, 'reopened.csv', 'closed');
    await waitUntil('taken at the close', () => s.generations('reopened.csv') === 1, 3000);
    assert.equal(s.observer.isBeingWritten(s.target, 'reopened.csv'), false);
  });
});
