// The ledger's state machine (DESIGN.md, "Ledger states"): every documented transition, and nothing else.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ACTIVE_STATES, FILE_STATES, isFinal, isTransitionAllowed, type FileState } from '../../src/ledger/states.js';

/** The transitions DESIGN.md lists, each with the reason it names. */
const DOCUMENTED: [FileState, FileState, string][] = [
  ['pending', 'working', 'a worker claims the file'],
  ['working', 'archived', 'uploaded and verified'],
  ['working', 'pending', 'crash recovery at start, or the file changed during upload'],
  ['working', 'retry', 'a transient error, with backoff'],
  ['working', 'quarantined', 'bad input'],
  ['pending', 'gone', 'vanished before it could be archived'],
  ['retry', 'working', 'a retry is claimed again once its backoff is over'],
];

/** Transitions that would break the contract if the ledger accepted them. */
const ILLEGAL: [FileState, FileState, string][] = [
  ['pending', 'archived', 'archived without a worker ever holding it'],
  ['pending', 'retry', 'a retry without an attempt'],
  ['pending', 'quarantined', 'quarantined without being read'],
  ['retry', 'archived', 'archived without being claimed again'],
  ['archived', 'pending', 'an archived generation is final: new content is a new generation'],
  ['archived', 'working', 'an archived generation is never uploaded again'],
  ['quarantined', 'working', 'a quarantined generation is final'],
  ['gone', 'pending', 'a path that comes back is a new generation'],
  ['gone', 'working', 'a gone generation is final'],
];

void describe('isTransitionAllowed', () => {
  for (const [from, to, why] of DOCUMENTED) {
    void test(`${from} -> ${to} is allowed (${why})`, () => {
      assert.equal(isTransitionAllowed(from, to), true);
    });
  }

  for (const [from, to, why] of ILLEGAL) {
    void test(`${from} -> ${to} is refused (${why})`, () => {
      assert.equal(isTransitionAllowed(from, to), false);
    });
  }

  void test('no state moves to itself: every transition is a real change with its own history row', () => {
    for (const state of FILE_STATES) assert.equal(isTransitionAllowed(state, state), false, state);
  });
});

void describe('isFinal', () => {
  void test('archived, quarantined and gone are final; pending, working and retry are not', () => {
    assert.deepEqual(FILE_STATES.filter(isFinal).sort(), ['archived', 'gone', 'quarantined']);
  });

  void test('a final state allows no transition at all', () => {
    for (const from of FILE_STATES.filter(isFinal)) {
      for (const to of FILE_STATES) assert.equal(isTransitionAllowed(from, to), false, `${from} -> ${to}`);
    }
  });

  void test('the active states are exactly the states that are not final', () => {
    assert.deepEqual([...ACTIVE_STATES].sort(), FILE_STATES.filter((s) => !isFinal(s)).sort());
  });

  void test('every active state can still reach archived', () => {
    const reachesArchived = (state: FileState, seen = new Set<FileState>()): boolean =>
      state === 'archived' ||
      (!seen.has(state) && FILE_STATES.some((next) => isTransitionAllowed(state, next) && reachesArchived(next, new Set([...seen, state]))));
    for (const state of ACTIVE_STATES) assert.ok(reachesArchived(state), state);
  });
});
