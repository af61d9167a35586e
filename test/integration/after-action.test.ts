// After the archive (a target's `after`): the due action recorded with the archive, carried out on real files,
// never on a file that changed since it was hashed, a move that keeps the relative path and never overwrites,
// and the taking over of actions a stopped process left due.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import type { ArchiveProof, Ledger } from '../../src/ledger/ledger.js';
import type { FileStat } from '../../src/ledger/observation.js';
import { carryOutAfterAction, type DueAction } from '../../src/pipeline/after-action.js';
import { formatAfterAction, type AfterAction } from '../../src/pipeline/after-plan.js';
import { nodeSourceFs } from '../../src/source/source-fs.js';
import { openTestLedger, silentLog, statOf, targetConfig, tempDir, writeFile } from '../support/fixtures.js';

const OWNER = 'pid:4242';
const SHA = 'ab'.repeat(32);

interface Env {
  readonly root: string;
  readonly targetDir: string;
  readonly ledger: Ledger;
}

function setup(t: TestContext): Env {
  const root = tempDir(t, 'sftppush-after');
  const targetDir = path.join(root, 'in');
  fs.mkdirSync(targetDir);
  return { root, targetDir, ledger: openTestLedger(t, root) };
}

function proof(relPath: string): ArchiveProof {
  return {
    kind: 'uploaded',
    objects: [{ bucket: 'b', key: relPath, sha256: SHA, sizeBytes: 1, etag: '"e"', versionId: 'v1', checksumSha256: undefined, foundByHead: false }],
  };
}

/** Writes a file, then observes, claims and archives it with `action` due, as a worker does; returns the due action. */
function archived(env: Env, relPath: string, content: string, action: AfterAction): DueAction {
  const hashed: FileStat = statOf(writeFile(env.targetDir, relPath, content));
  env.ledger.observe(env.targetDir, relPath, hashed);
  const claim = env.ledger.claimNext(OWNER);
  assert.ok(claim);
  env.ledger.markArchived(claim, hashed, SHA, proof(relPath), formatAfterAction(action));
  return { fileId: claim.id, owner: OWNER, target: env.targetDir, relPath, action, hashed };
}

function carryOut(env: Env, due: DueAction, configured: AfterAction = due.action): ReturnType<typeof carryOutAfterAction> {
  const target = targetConfig({ path: env.targetDir, after: configured });
  return carryOutAfterAction(due, { ledger: env.ledger, source: nodeSourceFs, log: silentLog, targetFor: (p) => (p === target.path ? target : undefined) });
}

/** The after-archive steps of the file's story (history rows archived -> archived). */
function afterSteps(env: Env, relPath: string): string[] {
  return env.ledger.reader
    .story(relPath, env.targetDir)
    .history.filter((h) => h.fromState === 'archived')
    .map((h) => h.detail ?? '');
}

void describe('after = "delete"', () => {
  void test('deletes the archived source, and the story says so', async (t) => {
    const env = setup(t);
    const due = archived(env, 'a/b.csv', 'x,y\n', { kind: 'delete' });
    assert.equal(await carryOut(env, due), 'done');
    assert.equal(fs.existsSync(path.join(env.targetDir, 'a/b.csv')), false);
    assert.deepEqual(afterSteps(env, 'a/b.csv'), [`after: deleted ${path.join(env.targetDir, 'a/b.csv')}`]);
    assert.deepEqual(env.ledger.adoptDueAfterActions('pid:1', () => false), [], 'settled: nothing left due');
  });

  void test('a file rewritten between the hash and the delete is left alone (a new generation)', async (t) => {
    const env = setup(t);
    const due = archived(env, 'c.csv', 'first\n', { kind: 'delete' });
    // Same size, mtime restored (sftp put -p): only the ctime (and the bytes) differ from what was hashed.
    const file = path.join(env.targetDir, 'c.csv');
    const { atime, mtime } = fs.statSync(file);
    await new Promise((resolve) => setTimeout(resolve, 20));
    fs.writeFileSync(file, 'other\n');
    fs.utimesSync(file, atime, mtime);
    assert.equal(await carryOut(env, due), 'skipped');
    assert.equal(fs.readFileSync(file, 'utf8'), 'other\n', 'the new content is still there');
    assert.deepEqual(afterSteps(env, 'c.csv'), ['after: delete skipped: changed since it was hashed: a new generation, left alone']);
  });

  void test('a target whose after is now "keep" keeps the file, whatever was due', async (t) => {
    const env = setup(t);
    const due = archived(env, 'k.csv', 'k\n', { kind: 'delete' });
    assert.equal(await carryOut(env, due, { kind: 'keep' }), 'skipped');
    assert.ok(fs.existsSync(path.join(env.targetDir, 'k.csv')));
  });
});

void describe('after = "move:DIR"', () => {
  void test('keeps the relative path under DIR, creating the directories', async (t) => {
    const env = setup(t);
    const dir = path.join(env.root, 'done');
    const due = archived(env, 'x/y/z.csv', 'moved\n', { kind: 'move', dir });
    assert.equal(await carryOut(env, due), 'done');
    assert.equal(fs.existsSync(path.join(env.targetDir, 'x/y/z.csv')), false, 'the source is gone from the target');
    const moved = path.join(dir, 'x/y/z.csv');
    assert.equal(fs.readFileSync(moved, 'utf8'), 'moved\n');
    assert.equal(fs.statSync(moved).ino, due.hashed.inode, 'the same inode: renamed, not copied');
    assert.deepEqual(afterSteps(env, 'x/y/z.csv'), [`after: moved to ${moved}`]);
  });

  void test('never overwrites: a taken name is a clear error in the ledger and the file stays', async (t) => {
    const env = setup(t);
    const dir = path.join(env.root, 'done');
    writeFile(dir, 'taken.csv', 'older, not ours\n');
    const due = archived(env, 'taken.csv', 'ours\n', { kind: 'move', dir });
    assert.equal(await carryOut(env, due), 'failed');
    assert.equal(fs.readFileSync(path.join(dir, 'taken.csv'), 'utf8'), 'older, not ours\n', 'the existing file is untouched');
    assert.equal(fs.readFileSync(path.join(env.targetDir, 'taken.csv'), 'utf8'), 'ours\n', 'the source stays');
    assert.deepEqual(afterSteps(env, 'taken.csv'), [
      `after: move failed: ${path.join(dir, 'taken.csv')} already exists, never overwritten; source kept`,
    ]);
  });
});

void describe('failed actions are tried again', () => {
  void test('a failed move is taken again by any process (once), fails again without a new step, then succeeds saying so', async (t) => {
    const env = setup(t);
    const dir = path.join(env.root, 'done');
    writeFile(dir, 'm.csv', 'taken\n');
    const due = archived(env, 'm.csv', 'ours\n', { kind: 'move', dir });
    assert.equal(await carryOut(env, due), 'failed');
    const reason = `move failed: ${path.join(dir, 'm.csv')} already exists, never overwritten; source kept`;
    assert.deepEqual(env.ledger.reader.failedAfterActions(10).map((a) => [a.relPath, a.detail]), [['m.csv', reason]]);
    const [retry] = env.ledger.adoptDueAfterActions('pid:6', () => true);
    assert.equal(retry?.previousFailure, reason, 'a live owner does not keep a failed action: it is taken, with its reason');
    assert.deepEqual(env.ledger.adoptDueAfterActions('pid:7', () => true), [], 'taken once: due under pid:6 now');
    assert.deepEqual(env.ledger.reader.failedAfterActions(10), [], 'in hand, not failed');
    const again = { ...due, owner: 'pid:6', previousFailure: retry.previousFailure };
    assert.equal(await carryOut(env, again), 'failed');
    assert.deepEqual(afterSteps(env, 'm.csv'), [`after: ${reason}`], 'the same failure again is not a new step');
    fs.rmSync(path.join(dir, 'm.csv'));
    const [last] = env.ledger.adoptDueAfterActions('pid:6', () => true);
    assert.equal(await carryOut(env, { ...due, owner: 'pid:6', previousFailure: last?.previousFailure }), 'done');
    assert.deepEqual(afterSteps(env, 'm.csv'), [`after: ${reason}`, `after: moved to ${path.join(dir, 'm.csv')} (retried after: ${reason})`]);
    assert.equal(env.ledger.reader.status().afterActionsFailed, 0);
  });
});

void describe('due actions across a crash', () => {
  void test('only a stopped owner\'s due actions are taken over, and only their new owner settles them', (t) => {
    const env = setup(t);
    const due = archived(env, 'd.csv', 'd\n', { kind: 'delete' });
    assert.deepEqual(env.ledger.adoptDueAfterActions('pid:5', () => true), [], 'a live owner keeps its own');
    const adopted = env.ledger.adoptDueAfterActions('pid:5', (owner) => owner !== OWNER);
    assert.deepEqual(
      adopted.map(({ fileId, action, owner, previousOwner, relPath, hashed }) => ({ fileId, action, owner, previousOwner, relPath, hashed })),
      [{ fileId: due.fileId, action: 'delete', owner: 'pid:5', previousOwner: OWNER, relPath: 'd.csv', hashed: due.hashed }],
    );
    assert.equal(env.ledger.settleAfterAction(due.fileId, OWNER, 'done', 'deleted'), false, 'the stopped owner no longer holds it');
    assert.equal(env.ledger.settleAfterAction(due.fileId, 'pid:5', 'done', 'deleted'), true);
    assert.equal(env.ledger.settleAfterAction(due.fileId, 'pid:5', 'done', 'deleted'), false, 'settled once');
  });
});
