// nodeSourceFs.open on a real filesystem: the descriptor a worker reads a source through (source/source-fs.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { nodeSourceFs } from '../../src/source/source-fs.js';
import { tempDir } from '../support/fixtures.js';

void describe('nodeSourceFs.open', () => {
  void test('a failed open is a rejected promise with the errno code, never a throw', async (t) => {
    const dir = tempDir(t, 'sftppush-source');
    fs.writeFileSync(path.join(dir, 'real.csv'), 'x');
    fs.symlinkSync(path.join(dir, 'real.csv'), path.join(dir, 'link.csv'));
    let opening: Promise<unknown> | undefined;
    assert.doesNotThrow(() => (opening = nodeSourceFs.open(path.join(dir, 'missing.csv'))));
    await assert.rejects(opening!, { code: 'ENOENT' });
    await assert.rejects(nodeSourceFs.open(path.join(dir, 'link.csv')), { code: 'ELOOP' });
  });

  void test('small and large files read whole; a read in flight finishes before close() lets the descriptor go', async (t) => {
    const dir = tempDir(t, 'sftppush-source');
    const small = randomBytes(4096);
    const large = randomBytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(path.join(dir, 'small.csv'), small);
    fs.writeFileSync(path.join(dir, 'large.csv'), large);
    const smallFile = await nodeSourceFs.open(path.join(dir, 'small.csv'));
    assert.deepEqual(await smallFile.readAll(small.length), small);
    await smallFile.close();
    const file = await nodeSourceFs.open(path.join(dir, 'large.csv'));
    const reading = file.readAll(large.length);
    const closing = file.close();
    assert.deepEqual(await reading, large);
    await closing;
  });

  void test('a second close() never closes the descriptor number a later open was given', async (t) => {
    const dir = tempDir(t, 'sftppush-source');
    fs.writeFileSync(path.join(dir, 'a.csv'), 'first');
    fs.writeFileSync(path.join(dir, 'b.csv'), 'second');
    const first = await nodeSourceFs.open(path.join(dir, 'a.csv'));
    await first.close();
    // The lowest free number: most likely the one `first` had.
    const second = await nodeSourceFs.open(path.join(dir, 'b.csv'));
    await first.close();
    assert.equal((await second.readAll(6)).toString(), 'second');
    assert.equal((await second.stat()).sizeBytes, 6);
    await second.close();
  });
});

void describe('nodeSourceFs.stat', () => {
  void test('nothing there (ENOENT, ENOTDIR) is undefined; a symlink is not followed; other errors reject', async (t) => {
    const dir = tempDir(t, 'sftppush-source');
    fs.writeFileSync(path.join(dir, 'real.csv'), 'abc');
    fs.symlinkSync(path.join(dir, 'real.csv'), path.join(dir, 'link.csv'));
    assert.equal(await nodeSourceFs.stat(path.join(dir, 'missing.csv')), undefined);
    assert.equal(await nodeSourceFs.stat(path.join(dir, 'real.csv', 'under-a-file.csv')), undefined);
    assert.equal((await nodeSourceFs.stat(path.join(dir, 'real.csv')))?.sizeBytes, 3);
    assert.equal((await nodeSourceFs.stat(path.join(dir, 'link.csv')))?.isFile, false);
    await assert.rejects(nodeSourceFs.stat(path.join(dir, 'x'.repeat(300))), { code: 'ENAMETOOLONG' });
  });
});

void describe('nodeSourceFs.open: after close()', () => {
  void test('a read after close() fails with EBADF, never reads the file a later open was given the number of', async (t) => {
    const dir = tempDir(t, 'sftppush-source');
    fs.writeFileSync(path.join(dir, 'a.bin'), Buffer.alloc(3 * 1024 * 1024, 'A'));
    fs.writeFileSync(path.join(dir, 'b.bin'), Buffer.alloc(3 * 1024 * 1024, 'B'));
    const first = await nodeSourceFs.open(path.join(dir, 'a.bin'));
    const stream = first.stream();
    const chunks: Buffer[] = [];
    stream.pause();
    await first.close();
    const second = await nodeSourceFs.open(path.join(dir, 'b.bin'));
    try {
      await assert.rejects(first.readAt(0, 16), { code: 'EBADF' });
      await assert.rejects(
        (async () => {
          for await (const chunk of stream) chunks.push(chunk as Buffer);
        })(),
        { code: 'EBADF' },
      );
      assert.ok(!Buffer.concat(chunks).includes('B'), 'no byte of the other file');
    } finally {
      await second.close();
    }
  });
});
