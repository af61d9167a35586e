// The watcher's walks (at start, and at every pass's heal) look for subdirectories in every watched directory.
// They used to read each directory whole (readdirSync): a target holding 100,000 files cost ~150 MB at every
// pass, and a directory of a million, a gigabyte. They now stream it with opendir, as the scanner does. Peak RSS
// is the kernel's, so the walk runs in a child process of its own: nothing else of this suite's memory counts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const FILES = 100_000;
const MIB = 1024 * 1024;

/** Runs in the child: a Watcher on `root`, started and healed twice; prints the growth of peak RSS in bytes. */
const CHILD = `
const [{ Watcher }, { Inotify }, { nodeSourceDirs }, { targetConfig }, { createLogger }] = await Promise.all([
  import(process.env.DIST + '/src/watch/watcher.js'),
  import(process.env.DIST + '/src/watch/inotify.js'),
  import(process.env.DIST + '/src/source/source-fs.js'),
  import(process.env.DIST + '/test/support/fixtures.js'),
  import(process.env.DIST + '/src/log.js'),
]);
const watcher = new Watcher({
  targets: [targetConfig({ path: process.env.ROOT })],
  observer: { isIgnored: () => false, noteFinished() {}, noteWriting() {}, scanDirectory: async () => {} },
  log: createLogger('silent'),
  dirs: nodeSourceDirs,
  createInotify: (onEvents) => new Inotify(onEvents),
  onRescanNeeded() {},
  now: Date.now,
});
const baseline = process.resourceUsage().maxRSS * 1024;
watcher.start();
watcher.heal();
watcher.heal();
const watched = watcher.watchCount;
watcher.close();
console.log(JSON.stringify({ watched, growth: process.resourceUsage().maxRSS * 1024 - baseline }));
`;

void describe('watcher memory', () => {
  void it(`walks a directory of ${FILES} files without holding its listing: peak RSS grows under 40 MiB`, async (t) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sftppush-watch-mem-'));
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    for (let i = 0; i < FILES; i += 1) fs.closeSync(fs.openSync(path.join(root, `file-${i}.csv`), 'w'));
    fs.mkdirSync(path.join(root, 'sub'));
    const dist = fileURLToPath(new URL('../..', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, DIST: dist, ROOT: root },
    });
    const { watched, growth } = JSON.parse(stdout) as { watched: number; growth: number };
    assert.equal(watched, 2, 'the root and its one subdirectory are watched');
    assert.ok(growth < 40 * MIB, `peak RSS grew ${(growth / MIB).toFixed(0)} MiB over three walks`);
  });
});
