// The pure rules of extraction (DESIGN.md, "Archive safety"): format by magic bytes, member paths, limits and
// overlapping zip entries. Milliseconds, no files.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ArchiveRejectedError } from '../../src/errors.js';
import { classify, isTarHeader, magicOf } from '../../src/extract/classify.js';
import { ExtractionBudget, RATIO_FLOOR_BYTES, type ArchiveLimits } from '../../src/extract/limits.js';
import { memberPath } from '../../src/extract/member-path.js';
import { assertNoOverlap } from '../../src/extract/readers.js';

/** A ustar header for one file, checksum and all, as GNU tar writes it. */
function tarHeader(name: string, options: { ustar?: boolean; size?: number } = {}): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 'utf8');
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  block.write(`${(options.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  block.write('00000000000\0', 136);
  block.write('        ', 148);
  block.write('0', 156);
  if (options.ustar ?? true) block.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

function rejection(rule: string): (error: unknown) => boolean {
  return (error) => error instanceof ArchiveRejectedError && error.rule === rule;
}

void describe('classify: magic bytes decide, the extension only breaks ties', () => {
  const text = Buffer.from('id,name\n1,a\n');

  void test('each magic number', () => {
    assert.equal(magicOf(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
    assert.equal(magicOf(Buffer.from('PK\x03\x04rest', 'latin1')), 'zip');
    assert.equal(magicOf(Buffer.from('PK\x05\x06rest', 'latin1')), 'empty-zip');
    assert.equal(magicOf(tarHeader('x.csv')), 'tar');
    assert.equal(magicOf(text), 'none');
  });

  void test('a v7 tar (no ustar) is recognised by its checksum; a corrupted one is not', () => {
    const v7 = tarHeader('x.csv', { ustar: false });
    assert.equal(isTarHeader(v7), true);
    v7.writeUInt8(v7.readUInt8(0) ^ 1, 0);
    assert.equal(isTarHeader(v7), false);
    assert.equal(isTarHeader(Buffer.alloc(512)), false);
  });

  void test('names never override content', () => {
    assert.equal(classify('report.csv', Buffer.from('PK\x03\x04', 'latin1'), 100).format, 'zip');
    assert.equal(classify('e.zip', tarHeader('x'), 2048).format, 'tar');
    assert.equal(classify('data.bin', Buffer.from([0x1f, 0x8b]), 100, text).format, 'gz');
  });

  void test('a gzip holding a tar is a tar.gz whatever its name; any other gzip is one file', () => {
    assert.equal(classify('backup.gz', Buffer.from([0x1f, 0x8b]), 100, tarHeader('x.csv')).format, 'tar.gz');
    assert.equal(classify('d.csv.gz', Buffer.from([0x1f, 0x8b]), 100, gzipSync(text).subarray(0, 0)).format, 'gz');
    assert.equal(classify('e.tgz', Buffer.from([0x1f, 0x8b]), 100, text).format, 'gz');
  });

  void test('the ties: an empty tar (zero blocks) is a tar only when named so; an empty tar.gz likewise', () => {
    assert.equal(classify('empty.tar', Buffer.alloc(512), 10240).format, 'tar');
    assert.equal(classify('zeros.bin', Buffer.alloc(512), 10240).format, 'plain');
    assert.equal(classify('empty.tar.gz', Buffer.from([0x1f, 0x8b]), 40, Buffer.alloc(512)).format, 'tar.gz');
  });

  void test('an archive extension on other content is plain, with a warning; a self-extracting zip is plain', () => {
    const fake = classify('e.zip', text, text.length);
    assert.equal(fake.format, 'plain');
    assert.match(fake.warning ?? '', /named like a zip/);
    assert.deepEqual(classify('notes.txt', text, text.length), { format: 'plain' });
    const sfx = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(100), Buffer.from('PK\x03\x04', 'latin1')]);
    assert.equal(classify('setup.exe', sfx, sfx.length).format, 'plain');
  });
});

void describe('memberPath', () => {
  void test('clean names pass; "." segments and repeated slashes are dropped', () => {
    assert.equal(memberPath('x.csv'), 'x.csv');
    assert.equal(memberPath('./y//z.csv'), 'y/z.csv');
    assert.equal(memberPath('dir/'), 'dir');
    assert.equal(memberPath('./'), '');
    assert.equal(memberPath('données/été.csv'), 'données/été.csv');
    assert.equal(memberPath('a..b/c..'), 'a..b/c..');
  });

  void test('each hostile name is rejected by its rule', () => {
    const cases: [string, string][] = [
      ['', 'empty name'],
      ['a\0b', 'NUL in name'],
      ['a\\b.txt', 'backslash in name'],
      ['..\\evil', 'backslash in name'],
      ['C:evil', 'drive letter'],
      ['c:/windows/evil', 'drive letter'],
      ['/etc/evil', 'absolute path'],
      ['../evil.txt', 'path traversal'],
      ['a/../../evil', 'path traversal'],
      ['a/..', 'path traversal'],
    ];
    for (const [name, rule] of cases) assert.throws(() => memberPath(name), rejection(rule), JSON.stringify(name));
  });
});

void describe('ExtractionBudget', () => {
  const limits: ArchiveLimits = { maxTotalBytes: 10 * RATIO_FLOOR_BYTES, maxMembers: 3, maxRatio: 100, maxMemberBytes: 4 * RATIO_FLOOR_BYTES };

  void test('members past max_members', () => {
    const budget = new ExtractionBudget(limits, 1_000_000);
    for (const name of ['a', 'b', 'c']) budget.countMember(name);
    assert.throws(() => budget.countMember('d'), rejection('max_members'));
  });

  void test('one member past max_member_bytes, all past max_total_bytes, counted from bytes produced', () => {
    const budget = new ExtractionBudget(limits, 1_000_000_000);
    budget.countMemberBytes('big', 4 * RATIO_FLOOR_BYTES);
    assert.throws(() => budget.countMemberBytes('big', 4 * RATIO_FLOOR_BYTES + 1), rejection('max_member_bytes'));
    const total = new ExtractionBudget(limits, 1_000_000_000);
    for (let i = 0; i < 10; i++) total.countExpanded(`m${i}`, RATIO_FLOOR_BYTES);
    assert.throws(() => total.countExpanded('m10', 1), rejection('max_total_bytes'));
  });

  void test('the ratio applies past the floor: a tiny archive of text may expand a lot, a bomb may not', () => {
    const small = new ExtractionBudget(limits, 100);
    small.countExpanded('x', RATIO_FLOOR_BYTES); // 10,000:1, but only a mebibyte
    const bomb = new ExtractionBudget(limits, 10_000);
    assert.throws(() => bomb.countExpanded(undefined, RATIO_FLOOR_BYTES + 1), rejection('max_ratio'));
  });
});

void describe('assertNoOverlap (zip)', () => {
  void test('entries laid end to end pass', () => {
    assertNoOverlap([
      { name: 'a', offset: 0, compressedSize: 10 },
      { name: 'b', offset: 41, compressedSize: 5 },
    ]);
  });

  void test('two central entries at one local header, or data running into the next header, are rejected', () => {
    assert.throws(
      () => assertNoOverlap([{ name: 'a', offset: 0, compressedSize: 10 }, { name: 'b', offset: 0, compressedSize: 10 }]),
      rejection('overlapping entries'),
    );
    assert.throws(
      () => assertNoOverlap([{ name: 'kernel', offset: 100, compressedSize: 5000 }, { name: 'b', offset: 200, compressedSize: 10 }]),
      rejection('overlapping entries'),
    );
  });
});
