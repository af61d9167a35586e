// The after-archive decision: when a target's `after` is due, and whether it may run on the path as it is now.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  dueAfterAction,
  formatAfterAction,
  parseAfterAction,
  planAfterAction,
  type AfterAction,
  type AfterPlanInput,
} from '../../src/pipeline/after-plan.js';
import type { SourceStat } from '../../src/source/source-fs.js';

const HASHED: SourceStat = { sizeBytes: 1024, mtimeMs: 1_709_296_496_789.5, inode: 4242, ctimeNs: 1_709_296_496_789_512_345n, isFile: true };
const DELETE: AfterAction = { kind: 'delete' };
const MOVE: AfterAction = { kind: 'move', dir: '/srv/done' };

function input(overrides: Partial<AfterPlanInput> = {}): AfterPlanInput {
  return { recorded: DELETE, configured: DELETE, targetPath: '/srv/in', relPath: 'a/b.csv', hashed: HASHED, current: HASHED, ...overrides };
}

void describe('dueAfterAction', () => {
  void test('keep owes nothing; delete and move are recorded as the config spells them', () => {
    assert.equal(dueAfterAction({ kind: 'keep' }), undefined);
    assert.equal(dueAfterAction(DELETE), 'delete');
    assert.equal(dueAfterAction(MOVE), 'move:/srv/done');
  });

  void test('what the ledger records reads back as the same action', () => {
    for (const action of [{ kind: 'keep' } as const, DELETE, MOVE]) assert.deepEqual(parseAfterAction(formatAfterAction(action)), action);
    assert.equal(parseAfterAction('move:'), undefined);
    assert.equal(parseAfterAction('remove'), undefined);
  });
});

void describe('planAfterAction', () => {
  void test('the path still holds the bytes hashed: delete it, or move it keeping its relative path', () => {
    assert.deepEqual(planAfterAction(input()), { kind: 'delete', path: '/srv/in/a/b.csv' });
    assert.deepEqual(planAfterAction(input({ recorded: MOVE, configured: MOVE })), {
      kind: 'move',
      from: '/srv/in/a/b.csv',
      to: '/srv/done/a/b.csv',
    });
  });

  void test('any change of size, mtime, ctime or inode since the hash: a new generation, left alone', () => {
    const changes: Record<string, Partial<SourceStat>> = {
      size: { sizeBytes: HASHED.sizeBytes + 1 },
      mtime: { mtimeMs: HASHED.mtimeMs + 0.001 },
      // Rewritten in place, size and mtime restored (sftp put -p): only the ctime tells.
      ctime: { ctimeNs: HASHED.ctimeNs + 1n },
      // Replaced by rename: another inode.
      inode: { inode: HASHED.inode + 1 },
    };
    for (const [what, change] of Object.entries(changes)) {
      for (const action of [DELETE, MOVE]) {
        const step = planAfterAction(input({ recorded: action, configured: action, current: { ...HASHED, ...change } }));
        assert.deepEqual(step, { kind: 'skip', reason: 'changed since it was hashed: a new generation, left alone' }, what);
      }
    }
  });

  void test('gone, or no longer a regular file: nothing to do', () => {
    assert.deepEqual(planAfterAction(input({ current: undefined })), { kind: 'skip', reason: 'source already gone' });
    assert.deepEqual(planAfterAction(input({ current: { ...HASHED, isFile: false } })), { kind: 'skip', reason: 'no longer a regular file' });
  });

  void test('an action the configuration no longer asks for (changed after, dropped target) is not carried out', () => {
    assert.deepEqual(planAfterAction(input({ configured: { kind: 'keep' } })), {
      kind: 'skip',
      reason: 'the target\'s after is now "keep", not "delete"',
    });
    assert.deepEqual(planAfterAction(input({ recorded: MOVE, configured: { kind: 'move', dir: '/srv/other' } })), {
      kind: 'skip',
      reason: 'the target\'s after is now "move:/srv/other", not "move:/srv/done"',
    });
    assert.deepEqual(planAfterAction(input({ configured: undefined })), { kind: 'skip', reason: 'target /srv/in is no longer configured' });
  });
});
