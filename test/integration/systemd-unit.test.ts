// The shipped systemd unit (scripts/sftppush.service) starts as shipped: systemd accepts it, the ledger lives in
// the state directory systemd creates (never under /etc, which ProtectSystem=strict makes read-only), and the
// hardening the README promises is there.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/fixtures.js';

const UNIT = fileURLToPath(new URL('../../../scripts/sftppush.service', import.meta.url));

function directives(text: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match) map.set(match[1]!, [...(map.get(match[1]!) ?? []), match[2]!]);
  }
  return map;
}

void describe('scripts/sftppush.service', () => {
  const unit = directives(fs.readFileSync(UNIT, 'utf8'));
  const one = (key: string): string => {
    const values = unit.get(key) ?? [];
    assert.equal(values.length, 1, `${key} set once`);
    return values[0]!;
  };

  void test('the ledger is in the state directory systemd creates, passed with --ledger', () => {
    assert.equal(one('StateDirectory'), 'sftppush');
    assert.match(one('ExecStart'), / watch --config \/etc\/sftppush\/config\.toml --ledger \/var\/lib\/sftppush\/ledger\.db'$/);
    assert.equal(one('WorkingDirectory'), '/var/lib/sftppush');
  });

  void test('hardened, and restarted on failure', () => {
    assert.equal(one('NoNewPrivileges'), 'yes');
    assert.equal(one('ProtectSystem'), 'strict');
    assert.equal(one('Restart'), 'on-failure');
    assert.equal(one('CapabilityBoundingSet'), 'CAP_LEASE');
  });

  void test('systemd-analyze verify accepts it (where systemd-analyze exists)', (t) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) return t.skip('systemd-analyze is not installed');
    // verify wants the unit's own name; a copy keeps the check independent of the checkout's path.
    const copy = path.join(tempDir(t, 'sftppush-unit'), 'sftppush.service');
    fs.copyFileSync(UNIT, copy);
    const result = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    // A directive systemd cannot parse is only a warning ("…, ignoring"): a clean unit says nothing at all.
    assert.equal(result.stderr, '');
    assert.equal(result.status, 0);
  });
});
