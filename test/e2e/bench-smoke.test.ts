// `npm run bench` must not rot between full runs: its smallest form (one run of 50 files through
// `sftppush watch` to the sink, next to the SDK loop and whichever of rclone and aws-cli are installed) runs
// here and must produce its table. Timing goals live in the benchmark itself, never in this test.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';

const RUN_JS = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

void test('the bench runs scenario f in its quick form and prints the result table and the goal', async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [RUN_JS, '--quick', '--only', 'f'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024, timeout: 240_000 });
  assert.match(stdout, /\| sftppush watch \(rename in -> archived in the ledger\) \| \d+ files\/s, [\d.]+ CPU-s per 1000 files/);
  assert.match(stdout, /\| @aws-sdk PutObject loop \| \d+ files\/s/);
  assert.match(stdout, /\| f: >= 2000 files\/s on the sink \| \d+ files\/s \| (met|missed) \|/);
});
