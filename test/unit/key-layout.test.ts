// Object keys and metadata for plain files (DESIGN.md, "S3 key layout"): pure, checked here in milliseconds.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  archiveStem,
  KeyLayoutError,
  MAX_KEY_BYTES,
  memberKeyFor,
  objectKeyFor,
  objectMetadata,
  quarantineKeyFor,
} from '../../src/pipeline/key-layout.js';

/** S3 allows 2 KB of user metadata: the UTF-8 bytes of every name and value together. */
const S3_MAX_METADATA_BYTES = 2048;

function metadataBytes(metadata: Record<string, string>): number {
  return Object.entries(metadata).reduce((sum, [name, value]) => sum + Buffer.byteLength(name) + Buffer.byteLength(value), 0);
}

function sourceFor(relPath: string): Parameters<typeof objectMetadata>[0] {
  return { relPath, sha256: 'a'.repeat(64), sourceSha256: 'b'.repeat(64), mtimeMs: Date.UTC(2024, 2, 1, 12, 34, 56, 789) };
}

void describe('objectKeyFor', () => {
  void test('the key is the prefix followed by the relative path', () => {
    assert.equal(objectKeyFor('', 'c.csv'), 'c.csv');
    assert.equal(objectKeyFor('archive/', 'a/b/c.csv'), 'archive/a/b/c.csv');
    assert.equal(objectKeyFor('tenant-1/in/', 'x.csv'), 'tenant-1/in/x.csv');
  });

  void test('the prefix is prepended verbatim: without a trailing "/" it joins the first segment', () => {
    assert.equal(objectKeyFor('incoming', 'a.csv'), 'incominga.csv');
  });

  void test('spaces and non-ASCII characters are kept as they are', () => {
    assert.equal(objectKeyFor('in/', 'März Berichte/Überweisung – 日本.csv'), 'in/März Berichte/Überweisung – 日本.csv');
  });

  void test('paths that are not clean relative paths are refused', () => {
    for (const relPath of ['', '/etc/passwd', '..', '../x.csv', 'a/../../x.csv', 'a/..', './a.csv', 'a/./b', 'a//b', 'a/b/']) {
      assert.throws(() => objectKeyFor('p/', relPath), KeyLayoutError, JSON.stringify(relPath));
    }
  });

  void test('a name that only contains dots is not mistaken for ".."', () => {
    assert.equal(objectKeyFor('', 'a/..b/...'), 'a/..b/...');
  });

  void test('a key of exactly 1024 bytes is accepted and one more byte is refused, prefix included', () => {
    assert.equal(MAX_KEY_BYTES, 1024);
    assert.equal(objectKeyFor('pre/', 'x'.repeat(1020)).length, 1024);
    assert.throws(() => objectKeyFor('pre/', 'x'.repeat(1021)), /1025 bytes, over S3's limit of 1024/);
  });

  void test('the limit counts UTF-8 bytes, not characters', () => {
    // "é" is two bytes and "日" three: 512 and 341 characters fit, one more does not.
    assert.equal(objectKeyFor('', 'é'.repeat(512)).length, 512);
    assert.throws(() => objectKeyFor('', 'é'.repeat(513)), KeyLayoutError);
    assert.equal(objectKeyFor('', '日'.repeat(341)).length, 341);
    assert.throws(() => objectKeyFor('', '日'.repeat(342)), /1026 bytes/);
  });
});

void describe('objectMetadata', () => {
  void test('carries sha256, source, source-sha256 and the ISO mtime', () => {
    assert.deepEqual(objectMetadata(sourceFor('a/b/c.csv')), {
      sha256: 'a'.repeat(64),
      source: 'a/b/c.csv',
      'source-sha256': 'b'.repeat(64),
      'source-mtime': '2024-03-01T12:34:56.789Z',
    });
  });

  void test('a sub-millisecond mtime is written to the millisecond', () => {
    const source = { ...sourceFor('a'), mtimeMs: Date.UTC(2024, 0, 2, 3, 4, 5, 6) + 0.75 };
    assert.equal(objectMetadata(source)['source-mtime'], '2024-01-02T03:04:05.006Z');
  });

  void test('source is percent-encoded so it can travel in an HTTP header, and decodes back to the path', () => {
    const relPath = 'März Berichte/50% #1 & co – 日本.csv';
    const { source } = objectMetadata(sourceFor(relPath));
    assert.match(source ?? '', /^[\x21-\x7e]+$/);
    assert.equal(source, 'M%C3%A4rz%20Berichte/50%25%20#1%20&%20co%20%E2%80%93%20%E6%97%A5%E6%9C%AC.csv');
    assert.equal(decodeURI(source ?? ''), relPath);
  });

  void test('every value is printable ASCII', () => {
    for (const value of Object.values(objectMetadata(sourceFor('ä/ö/ü.csv')))) assert.match(value, /^[\x20-\x7e]+$/);
  });

  // Percent-encoding can triple a path's length, so a key objectKeyFor accepts (up to 1024 UTF-8 bytes) could
  // need ~3 KB of metadata; real S3 refuses that PUT with 400 MetadataTooLarge (moto does not check).
  void test('the metadata of any key objectKeyFor accepts fits in S3s 2 KB of user metadata', () => {
    const relPath = `報告/${'日本語のファイル名 '.repeat(25)}.csv`;
    assert.doesNotThrow(() => objectKeyFor('', relPath));
    const bytes = metadataBytes(objectMetadata(sourceFor(relPath)));
    assert.ok(bytes <= S3_MAX_METADATA_BYTES, `${Buffer.byteLength(relPath)}-byte path needs ${bytes} bytes of metadata`);
  });
});

void describe('memberKeyFor (archives)', () => {
  void test('the DESIGN.md table: zip, tar, tar.gz and tgz members go under the archive stem', () => {
    for (const [name, format] of [['e.zip', 'zip'], ['e.tar', 'tar'], ['e.tar.gz', 'tar.gz'], ['e.tgz', 'tar.gz']] as const) {
      assert.equal(memberKeyFor('p/', `a/b/${name}`, format, 'x.csv'), 'p/a/b/e/x.csv', name);
      assert.equal(memberKeyFor('p/', `a/b/${name}`, format, 'y/z.csv'), 'p/a/b/e/y/z.csv', name);
    }
  });

  void test('a gz member takes the place of the file: d.csv.gz -> d.csv', () => {
    assert.equal(memberKeyFor('p/', 'a/b/d.csv.gz', 'gz', archiveStem('d.csv.gz', 'gz')), 'p/a/b/d.csv');
    assert.equal(memberKeyFor('', 'd.csv.gz', 'gz', 'd.csv'), 'd.csv');
  });

  void test('a tar.gz named .gz has its stem without .gz; names without an extension stay whole', () => {
    assert.equal(archiveStem('backup.gz', 'tar.gz'), 'backup');
    assert.equal(archiveStem('data', 'zip'), 'data');
    assert.equal(archiveStem('.zip', 'zip'), '.zip');
    assert.equal(archiveStem('REPORT.ZIP', 'zip'), 'REPORT');
    // A .tgz whose content is no tar is one gzip: its member is named as gunzip names it.
    assert.equal(archiveStem('notar.tgz', 'gz'), 'notar.tar');
    assert.equal(archiveStem('notar.tar.gz', 'gz'), 'notar.tar');
  });

  void test('a member key over S3 limit is a KeyLayoutError', () => {
    assert.throws(() => memberKeyFor('', 'e.zip', 'zip', 'm'.repeat(MAX_KEY_BYTES)), KeyLayoutError);
  });
});

void describe('quarantineKeyFor', () => {
  void test('the original bytes go to {quarantine_prefix}{relative path}', () => {
    assert.equal(quarantineKeyFor('_quarantine/', 'a/b/e.zip'), '_quarantine/a/b/e.zip');
  });

  void test('a path too long for a key goes under long-names/ by the sha256 of the path', () => {
    const key = quarantineKeyFor('_quarantine/', `${'d'.repeat(600)}/${'f'.repeat(600)}`);
    assert.match(key, /^_quarantine\/long-names\/[0-9a-f]{64}$/);
  });
});

void describe('objectMetadata of a member', () => {
  void test('names the member, percent-encoded, and stays within S3 metadata limits', () => {
    const metadata = objectMetadata({ ...sourceFor('a/e.zip'), member: 'données/été.csv' });
    assert.equal(metadata.member, encodeURI('données/été.csv'));
    const long = objectMetadata({ ...sourceFor('s'.repeat(1000)), member: 'm'.repeat(1000) });
    assert.ok(metadataBytes(long) <= S3_MAX_METADATA_BYTES);
    assert.equal(long.source, 's'.repeat(1000));
  });
});
