// decideObservation: what one look at a path means for the ledger, for every state the latest row can be in.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { decideObservation, sameStat, type FileStat, type LatestGeneration, type ObservationDecision } from '../../src/ledger/observation.js';
import { FILE_STATES, type FileState } from '../../src/ledger/states.js';

const STAT: FileStat = { sizeBytes: 1024, mtimeMs: 1_709_296_496_789.5, inode: 4242, ctimeNs: 1_709_296_496_789_512_345n };

function latest(state: FileState, generation = 3): LatestGeneration {
  return { ...STAT, id: 17, generation, state };
}

/** Each way a file can differ from what the ledger saw: any one field is enough. */
const CHANGES: Record<string, FileStat> = {
  size: { ...STAT, sizeBytes: STAT.sizeBytes + 1 },
  mtime: { ...STAT, mtimeMs: STAT.mtimeMs + 0.001 },
  inode: { ...STAT, inode: STAT.inode + 1 },
  // A rewrite in place whose client restored size and mtime: only the inode change time tells.
  ctime: { ...STAT, ctimeNs: STAT.ctimeNs + 1n },
};

void describe('sameStat', () => {
  void test('equal size, mtime, inode and ctime are the same stat', () => {
    assert.equal(sameStat(STAT, { ...STAT }), true);
  });

  void test('a ctime the ledger never recorded (a row from before ctimes) matches any ctime', () => {
    assert.equal(sameStat({ ...STAT, ctimeNs: null }, CHANGES.ctime!), true);
    assert.equal(sameStat({ ...STAT, ctimeNs: null }, CHANGES.size!), false);
  });

  for (const [field, changed] of Object.entries(CHANGES)) {
    void test(`a different ${field} is a different stat, either way round`, () => {
      assert.equal(sameStat(STAT, changed), false);
      assert.equal(sameStat(changed, STAT), false);
    });
  }
});

void describe('decideObservation', () => {
  void test('a path the ledger has never seen is inserted as generation 1', () => {
    assert.deepEqual(decideObservation(undefined, STAT), { kind: 'insert', generation: 1 });
  });

  /** The decision for each state when the file changed, and when it did not. */
  const EXPECTED: Record<FileState, { changed: ObservationDecision; unchanged: ObservationDecision }> = {
    pending: { changed: { kind: 'update-stat' }, unchanged: { kind: 'unchanged' } },
    retry: { changed: { kind: 'requeue' }, unchanged: { kind: 'unchanged' } },
    working: { changed: { kind: 'mark-dirty' }, unchanged: { kind: 'unchanged' } },
    archived: { changed: { kind: 'insert', generation: 4 }, unchanged: { kind: 'unchanged' } },
    quarantined: { changed: { kind: 'insert', generation: 4 }, unchanged: { kind: 'unchanged' } },
    // A path that comes back after vanishing is new content whatever its stat says.
    gone: { changed: { kind: 'insert', generation: 4 }, unchanged: { kind: 'insert', generation: 4 } },
  };

  void test('the table covers every state', () => {
    assert.deepEqual(Object.keys(EXPECTED).sort(), [...FILE_STATES].sort());
  });

  for (const state of FILE_STATES) {
    void test(`${state}, unchanged: ${EXPECTED[state].unchanged.kind}`, () => {
      assert.deepEqual(decideObservation(latest(state), { ...STAT }), EXPECTED[state].unchanged);
    });

    void test(`${state}, changed (size, mtime, inode or ctime): ${EXPECTED[state].changed.kind}`, () => {
      for (const changed of Object.values(CHANGES)) {
        assert.deepEqual(decideObservation(latest(state), changed), EXPECTED[state].changed);
      }
    });
  }

  void test('an upgraded row without a ctime adopts the first one seen instead of becoming new work', () => {
    for (const state of ['pending', 'working', 'retry', 'archived', 'quarantined'] as const) {
      assert.deepEqual(decideObservation({ ...latest(state), ctimeNs: null }, CHANGES.ctime!), { kind: 'adopt-ctime' }, state);
      assert.deepEqual(decideObservation({ ...latest(state), ctimeNs: null }, CHANGES.size!), EXPECTED[state].changed, state);
    }
  });

  void test('a new generation is numbered one after the latest, whatever it was', () => {
    assert.deepEqual(decideObservation(latest('archived', 41), CHANGES.size ?? STAT), { kind: 'insert', generation: 42 });
  });

  void test('no decision ever starts a second active generation beside a pending, working or retry row', () => {
    for (const state of ['pending', 'working', 'retry'] as const) {
      for (const stat of [STAT, ...Object.values(CHANGES)]) {
        assert.notEqual(decideObservation(latest(state), stat).kind, 'insert', `${state} must not get a second generation`);
      }
    }
  });
});
