// Who holds a working row and when it may be taken back: the rules of ledger/ownership.ts against a fake
// process table, including the finding that a process treated its own claims as a dead predecessor's.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { formatOwner, isOwnerAlive, parseOwner, type ProcessProbe } from '../../src/ledger/ownership.js';

const SELF = formatOwner(4242, '9001', 'watch');

/** A process table: pid -> start ticks (undefined: it exists but its start time is unreadable). */
function probe(table: Record<number, string | undefined>, options: { self?: string; watchLock?: boolean } = {}): ProcessProbe {
  return {
    self: options.self ?? SELF,
    startTicks: (pid) => table[pid],
    pidExists: (pid) => pid in table,
    otherWatchHoldsLock: () => options.watchLock ?? false,
  };
}

void describe('owner strings', () => {
  void test('format and parse round-trip, with an unreadable start time as ?', () => {
    assert.deepEqual(parseOwner(formatOwner(7, '123', 'reconcile')), { pid: 7, startTicks: '123', role: 'reconcile' });
    assert.deepEqual(parseOwner(formatOwner(7, undefined, 'watch')), { pid: 7, startTicks: undefined, role: 'watch' });
  });

  void test('owners written before roles existed still parse', () => {
    assert.deepEqual(parseOwner('pid:7:123'), { pid: 7, startTicks: '123', role: undefined });
  });

  void test('anything else is not an owner', () => {
    for (const text of ['', 'pid:', 'pid:x:1', 'pid:7', 'pid:7:1:cron', 'someone']) assert.equal(parseOwner(text), undefined, text);
  });
});

void describe('isOwnerAlive', () => {
  void test('this very process is alive, even though its pid is ours (the finding: it took back its own rows)', () => {
    assert.equal(isOwnerAlive(SELF, probe({ 4242: '9001' })), true);
  });

  void test('a previous process that had our pid (a restarted container is pid 1 again) is gone', () => {
    assert.equal(isOwnerAlive(formatOwner(4242, '8000', 'reconcile'), probe({ 4242: '9001' })), false);
  });

  void test('a reconcile owner is alive while its pid runs with the same start time', () => {
    const owner = formatOwner(77, '500', 'reconcile');
    assert.equal(isOwnerAlive(owner, probe({ 77: '500' })), true);
    assert.equal(isOwnerAlive(owner, probe({ 77: '501' })), false, 'pid reused by another process');
    assert.equal(isOwnerAlive(owner, probe({})), false, 'no such pid');
  });

  void test('when a start time cannot be read, only a pid that no longer exists counts as gone', () => {
    assert.equal(isOwnerAlive(formatOwner(77, '500', 'reconcile'), probe({ 77: undefined })), true, 'hidepid: cannot tell');
    assert.equal(isOwnerAlive(formatOwner(77, undefined, 'reconcile'), probe({ 77: '500' })), true, 'owner wrote ?');
    assert.equal(isOwnerAlive(formatOwner(77, undefined, 'reconcile'), probe({})), false);
  });

  void test('a watch owner is alive exactly while another watch holds the instance lock, whatever the pids say', () => {
    // Another pid namespace: its pid means nothing here, the kernel's lock does.
    const owner = formatOwner(1, '300', 'watch');
    assert.equal(isOwnerAlive(owner, probe({}, { watchLock: true })), true);
    assert.equal(isOwnerAlive(owner, probe({ 1: '300' }, { watchLock: false })), false, 'lock free: no watch runs');
  });

  void test('legacy owners follow the pid and start-time rules', () => {
    assert.equal(isOwnerAlive('pid:77:500', probe({ 77: '500' })), true);
    assert.equal(isOwnerAlive('pid:77:500', probe({ 77: '999' })), false);
  });

  void test('a row whose owner is not an sftppush owner string can never be finished by anyone: gone', () => {
    assert.equal(isOwnerAlive('pid:2147483646', probe({})), false);
  });
});
