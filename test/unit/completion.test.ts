// When is a file complete? The one rule (observe/completion.ts) that the watcher, the new-directory scan and
// every rescan share, as a table, including the findings of issue 7 that each path used to answer differently.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  decideCompletion,
  scanSettleMs,
  type CompletionDecision,
  type CompletionRule,
  type CompletionStat,
  type Waiting,
} from '../../src/observe/completion.js';

const T = Date.parse('2030-01-01T00:00:00Z');
const S = 1000;

/** A stat whose mtime and ctime are `ageMs` before T. */
function stat(ageMs: number, sizeBytes = 10): CompletionStat {
  const atMs = T - ageMs;
  return { sizeBytes, mtimeMs: atMs, inode: 7, ctimeNs: BigInt(atMs) * 1_000_000n };
}

const rule = (quietMs: number, settleMs = 30 * S): CompletionRule => ({ quietMs, settleMs });

function dueAt(decision: CompletionDecision): number | 'take' | 'hold' {
  return decision.action === 'wait' ? decision.dueAt : decision.action;
}

/** Runs a sequence of sightings from nothing pending; returns every decision. */
function run(r: CompletionRule, ...sightings: Parameters<typeof decideCompletion>[1][]): CompletionDecision[] {
  let waiting: Waiting | undefined;
  return sightings.map((sighting) => {
    const decision = decideCompletion(waiting, sighting, r);
    waiting = decision.action === 'take' ? undefined : decision.waiting;
    return decision;
  });
}

void describe('completion rule: a writer finished the file (close, rename in, link in)', () => {
  void test('quiet_ms 0: taken at once, whatever the file\'s age (a link finish carries content complete when linked)', () => {
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'finished', at: T, stat: stat(0) }, rule(0))), 'take');
  });

  void test('quiet_ms: due that long after the event', () => {
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'finished', at: T, stat: stat(0) }, rule(4 * S))), T + 4 * S);
  });

  void test('a later close restarts the quiet period from itself (a slow appender)', () => {
    const [, second] = run(rule(4 * S), { kind: 'finished', at: T, stat: stat(0) }, { kind: 'finished', at: T + 12 * S, stat: stat(0, 20) });
    assert.equal(dueAt(second!), T + 16 * S);
  });

  void test('unchanged when the quiet period ends: taken; changed without a new close (SETSTAT, put -p): quiet again', () => {
    const r = rule(4 * S);
    const [, same] = run(r, { kind: 'finished', at: T, stat: stat(0) }, { kind: 'seen', at: T + 4 * S, stat: stat(0) });
    assert.equal(dueAt(same!), 'take');
    const [, changed] = run(r, { kind: 'finished', at: T, stat: stat(0) }, { kind: 'seen', at: T + 4 * S, stat: stat(-3 * S, 11) });
    assert.equal(dueAt(changed!), T + 8 * S);
  });
});

void describe('completion rule: a writer at work again after its close (finding 6, the stale close)', () => {
  void test('a modify after the close cancels the close\'s wait: held until the next close', () => {
    const [, writing] = run(rule(4 * S), { kind: 'finished', at: T, stat: stat(0) }, { kind: 'writing', at: T + 1 });
    assert.equal(dueAt(writing!), 'hold');
    assert.equal(writing!.action === 'hold' && writing!.waiting.evidence, 'writing');
  });

  void test('even with quiet_ms 0 a modify holds the file, and the next close takes it', () => {
    const decisions = run(rule(0), { kind: 'writing', at: T }, { kind: 'writing', at: T + 5 }, { kind: 'finished', at: T + 9, stat: stat(0) });
    assert.deepEqual(decisions.map(dueAt), ['hold', 'hold', 'take']);
  });

  void test('a writer whose close never comes (a lost event, a held-open file) is taken by the settle rule', () => {
    const decisions = run(rule(0), { kind: 'writing', at: T - 40 * S }, { kind: 'seen', at: T, stat: stat(31 * S) });
    assert.equal(dueAt(decisions[1]!), 'take');
  });
});

void describe('completion rule: found by a scan, no event', () => {
  void test('older than settle_seconds (mtime and ctime): taken', () => {
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'seen', at: T, stat: stat(31 * S) }, rule(0))), 'take');
  });

  void test('younger: due when its last change is settle_seconds old', () => {
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'seen', at: T, stat: stat(10 * S) }, rule(0))), T + 20 * S);
  });

  void test('a ctime younger than the mtime (put -p restored an old mtime) counts: the later of the two', () => {
    const restored: CompletionStat = { ...stat(5 * S), mtimeMs: T - 3600 * S };
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'seen', at: T, stat: restored }, rule(0))), T + 25 * S);
  });

  void test('the target\'s quiet_ms applies to scans too when it is longer (finding 1)', () => {
    const r = rule(25 * S, 5 * S);
    assert.equal(scanSettleMs(r), 25 * S);
    assert.equal(dueAt(decideCompletion(undefined, { kind: 'seen', at: T, stat: stat(12 * S) }, r)), T + 13 * S);
  });

  void test('a scan never replaces a close\'s quiet period, longer or shorter (finding 2)', () => {
    const r = rule(4 * S, 30 * S);
    const [, scan] = run(r, { kind: 'finished', at: T, stat: stat(0) }, { kind: 'seen', at: T + 1 * S, stat: stat(0) });
    assert.equal(dueAt(scan!), T + 4 * S, 'still the close\'s 4 s, not the scan\'s 30 s');
    const long = rule(25 * S, 5 * S);
    const [, scan2] = run(long, { kind: 'finished', at: T, stat: stat(0) }, { kind: 'seen', at: T + 6 * S, stat: stat(0) });
    assert.equal(dueAt(scan2!), T + 25 * S, 'nor shortens it to an mtime-based settle');
  });

  void test('a future mtime waits one settle period from when it was first seen, across any number of scans (finding 3)', () => {
    const future: CompletionStat = { sizeBytes: 10, inode: 7, mtimeMs: Date.parse('2076-01-01T00:00:00Z'), ctimeNs: BigInt(T) * 1_000_000n };
    const scans = Array.from({ length: 13 }, (_, i) => ({ kind: 'seen' as const, at: T + i * 5 * S, stat: future }));
    const decisions = run(rule(0, 30 * S), ...scans);
    assert.deepEqual(decisions.slice(0, 6).map(dueAt), Array(6).fill(T + 30 * S), 'each scan keeps the first sighting\'s due time');
    assert.equal(dueAt(decisions[6]!), 'take', 'taken at the first scan after one settle period');
  });

  void test('a changed stat restarts the wait from the change', () => {
    const decisions = run(rule(0), { kind: 'seen', at: T, stat: stat(10 * S) }, { kind: 'seen', at: T + 5 * S, stat: stat(-5 * S, 11) });
    assert.equal(dueAt(decisions[1]!), T + 35 * S);
  });

  void test('a clock that jumped back (every file now looks future) still takes files within one settle period', () => {
    const ahead = stat(-3600 * S);
    const decisions = run(rule(0), { kind: 'seen', at: T, stat: ahead }, { kind: 'seen', at: T + 30 * S, stat: ahead });
    assert.deepEqual(decisions.map(dueAt), [T + 30 * S, 'take']);
  });
});
