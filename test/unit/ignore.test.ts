// Which paths a target ignores: temporary upload names and dot-files, at any depth, and nothing an operator wants.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { DEFAULT_IGNORE } from '../../src/config.js';
import { createIgnoreMatcher } from '../../src/observe/ignore.js';

function assertIgnored(matches: (relPath: string) => boolean, paths: string[], expected: boolean): void {
  for (const relPath of paths) assert.equal(matches(relPath), expected, `${relPath} should ${expected ? '' : 'not '}be ignored`);
}

void describe('the default ignore globs', () => {
  const ignored = createIgnoreMatcher(DEFAULT_IGNORE);

  void test('temporary upload names are ignored at the top and at any depth', () => {
    assertIgnored(ignored, ['report.csv.filepart', 'a.part', 'b.tmp', 'in/2024/report.csv.filepart', 'x/y/z/data.part', 'deep/er/c.tmp'], true);
  });

  void test('dot-files are ignored at any depth', () => {
    assertIgnored(ignored, ['.bash_history', 'in/.report.csv.swp', 'a/b/.DS_Store'], true);
  });

  void test('a dot-directory hides its whole subtree', () => {
    assertIgnored(ignored, ['.ssh', '.ssh/authorized_keys', '.cache/x/y/report.csv', 'in/.staging/report.csv'], true);
  });

  void test('ordinary names are not ignored, including spaces and non-ASCII', () => {
    assertIgnored(
      ignored,
      ['report.csv', 'Monthly Report 2024.csv', 'März/Überweisung – 日本.csv', 'in/sub dir/a b.txt', 'archive.tar.gz'],
      false,
    );
  });

  void test('a name that merely contains an ignored suffix or a dot is not ignored', () => {
    assertIgnored(ignored, ['data.partial', 'data.tmp.csv', 'tmp', 'part', 'filepart.csv', 'a.b.c', 'dir.d/file', 'v1.2/notes.txt'], false);
  });
});

void describe('custom ignore globs', () => {
  void test('a glob with "/" matches the whole relative path, anchored at the target root', () => {
    const ignored = createIgnoreMatcher(['staging/*.csv']);
    assertIgnored(ignored, ['staging/a.csv'], true);
    assertIgnored(ignored, ['other/staging/a.csv', 'staging/sub/a.csv', 'staging/a.txt', 'a.csv'], false);
  });

  void test('a glob with "**/" matches at any depth', () => {
    const ignored = createIgnoreMatcher(['**/outgoing/**']);
    assertIgnored(ignored, ['outgoing/a.csv', 'x/outgoing/y/a.csv'], true);
    assertIgnored(ignored, ['incoming/a.csv'], false);
  });

  void test('a segment glob also hides a directory of that name and everything in it', () => {
    const ignored = createIgnoreMatcher(['lost+found', '*.lock']);
    assertIgnored(ignored, ['lost+found/123', 'in/lost+found/a', 'job.lock', 'a/job.lock/b'], true);
    assertIgnored(ignored, ['found', 'job.locks'], false);
  });

  void test('a glob matches names with spaces and non-ASCII literally', () => {
    const ignored = createIgnoreMatcher(['Entwürfe *']);
    assertIgnored(ignored, ['Entwürfe 2024', 'in/Entwürfe alt/a.csv'], true);
    assertIgnored(ignored, ['Entwürfe', 'Entwurf 2024'], false);
  });

  void test('no globs ignore nothing, not even dot-files', () => {
    assertIgnored(createIgnoreMatcher([]), ['.hidden', 'a.tmp', 'x/.y/z'], false);
  });
});

void describe('the test a walk makes for each entry', () => {
  void test('gives the whole-path answer for every entry whose directory is not ignored (a walk prunes the others)', () => {
    const globSets = [[...DEFAULT_IGNORE], ['staging/*.csv', '*.lock'], ['**/outgoing/**'], []];
    const paths = ['a.csv', '.hidden', 'x/a.tmp', 'staging/a.csv', 'staging/sub/a.csv', 'in/job.lock', 'outgoing/a', 'x/outgoing/y/a.csv', 'März/a b.csv'];
    for (const globs of globSets) {
      const ignored = createIgnoreMatcher(globs);
      for (const relPath of paths) {
        const segments = relPath.split('/');
        const parentIgnored = segments.slice(1).some((_, i) => ignored(segments.slice(0, i + 1).join('/')));
        if (parentIgnored) continue;
        assert.equal(ignored.entry(relPath, segments.at(-1)!), ignored(relPath), `${relPath} with ${JSON.stringify(globs)}`);
      }
    }
  });
});
