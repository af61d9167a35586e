// lstatNames (native/stat.cc): the rescan's batch lstat must say exactly what lstatSync + toSourceStat say,
// because the ledger compares identities recorded by either, and must never follow a symlink.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { lstatNames } from '../../src/native/stat-at.js';
import { toSourceStat } from '../../src/source/source-fs.js';
import { tempDir } from '../support/fixtures.js';

void describe('lstatNames', () => {
  void it('gives what lstatSync gives, to the nanosecond, for files, directories, symlinks and FIFOs', async (t) => {
    const dir = tempDir(t, 'sftppush-stat-at');
    fs.writeFileSync(path.join(dir, 'a.csv'), 'some bytes\n');
    fs.writeFileSync(path.join(dir, 'empty'), '');
    fs.writeFileSync(path.join(dir, 'März – 日本.csv'), 'non-ASCII name\n');
    // Sub-millisecond mtimes and one before 1970: the mtimeMs arithmetic must round as JavaScript does.
    fs.utimesSync(path.join(dir, 'a.csv'), new Date(1_700_000_000_123), 1_700_000_000.123456);
    fs.utimesSync(path.join(dir, 'empty'), -1.5, -1.5);
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.symlinkSync(path.join(dir, 'a.csv'), path.join(dir, 'link'));
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    const names = ['a.csv', 'empty', 'März – 日本.csv', 'sub', 'link', 'fifo'];

    const stats = await lstatNames(dir, names);
    names.forEach((name, i) => {
      assert.deepEqual(stats[i], toSourceStat(fs.lstatSync(path.join(dir, name), { bigint: true })), name);
    });
    assert.equal((stats[4] as { isFile: boolean }).isFile, false, 'the symlink itself, not what it points at');
  });

  void it('reports a vanished name, a vanished directory and a path too long to archive by errno name', async (t) => {
    const dir = tempDir(t, 'sftppush-stat-at');
    fs.writeFileSync(path.join(dir, 'here'), 'x');
    const long = 'n'.repeat(255);
    const deep = path.join(dir, ...Array.from({ length: 16 }, () => 'd'.repeat(250)));
    assert.deepEqual((await lstatNames(dir, ['gone', 'here'])).map((s) => ('code' in s ? s.code : 'ok')), ['ENOENT', 'ok']);
    assert.deepEqual(await lstatNames(path.join(dir, 'no-such-dir'), ['here']), [{ code: 'ENOENT' }]);
    fs.mkdirSync(deep, { recursive: true });
    assert.ok(deep.length + 1 + long.length >= 4096);
    assert.deepEqual(await lstatNames(deep, [long]), [{ code: 'ENAMETOOLONG' }]);
  });

  void it('does not enter a directory given as a symlink (swapped in since it was listed)', async (t) => {
    const dir = tempDir(t, 'sftppush-stat-at');
    fs.mkdirSync(path.join(dir, 'real'));
    fs.writeFileSync(path.join(dir, 'real', 'f'), 'x');
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'alias'));
    assert.deepEqual(await lstatNames(path.join(dir, 'alias'), ['f']), [{ code: 'ENOTDIR' }]);
  });
});
