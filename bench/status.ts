// `sftppush status` after years of service: builds a ledger of N generations (10 million by default) with SQL,
// then times what status asks of it, in-process and through the CLI, and a history prune batch.
//
//   make build && node dist/bench/status.js [--files 10000000] [--ledger /var/tmp/big.db] [--keep]
//
// Building 10M rows takes minutes and several GB of disk; --ledger and --keep reuse one between runs (each run
// prunes its oldest 50,000 history rows, last).
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { MIGRATIONS_DIR } from '../src/app.js';
import { Ledger } from '../src/ledger/ledger.js';
import { LedgerReader } from '../src/ledger/reader.js';
import { BIG_LEDGER_START_MS, bigLedgerPath, fillBigLedger } from '../test/support/big-ledger.js';
import { SFTPPUSH_BIN } from '../test/support/service.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '10000000' },
    ledger: { type: 'string', default: path.join(os.tmpdir(), 'sftppush-bench-status.db') },
    keep: { type: 'boolean', default: false },
  },
});
const files = Number(values.files);
const file = path.resolve(values.ledger);

/** Median of `runs` timings of fn, in ms, after one warm-up run. */
function median(fn: () => unknown, runs: number): number {
  fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

if (!existsSync(file)) {
  const start = Date.now();
  // A pass every 5 minutes for as long as the rows span (one row a second).
  fillBigLedger(file, { files, passes: Math.max(1, Math.floor(files / 300)) });
  console.log(`built ${files.toLocaleString('en')} generations in ${((Date.now() - start) / 1000).toFixed(0)} s: ${file}, ${(statSync(file).size / 2 ** 30).toFixed(2)} GiB`);
}

const reader = LedgerReader.open(file, { migrationsDir: MIGRATIONS_DIR });
const rows: [string, number][] = [
  ['status (counts per state and target, backlog, passes, watch, last errors)', median(() => reader.status(), 7)],
  ['status --failed (latest 1000 of retry, quarantined, gone)', median(() => reader.failures(1000), 7)],
  ['status PATH, no target (rel_path index)', median(() => reader.story(bigLedgerPath(Math.floor(files / 2))), 7)],
];
const summary = reader.status();
reader.close();
const cli = (args: string[]) => median(() => execFileSync(SFTPPUSH_BIN, args, { stdio: 'pipe' }), 3);
rows.push(['bin/sftppush status --json (whole process: node start, open, query, print)', cli(['status', '--json', '--ledger', file])]);
rows.push(['bin/sftppush status --failed', cli(['status', '--failed', '--ledger', file])]);
rows.push([`bin/sftppush status ${bigLedgerPath(7)}`, cli(['status', '--ledger', file, bigLedgerPath(7)])]);

// Last, since it deletes: a prune batch as the service runs it after a pass (the oldest 50,000 history rows).
const ledger = Ledger.open(file, { migrationsDir: MIGRATIONS_DIR });
const pruneStart = process.hrtime.bigint();
ledger.pruneHistory(BIG_LEDGER_START_MS + files * 1000, 50_000);
rows.push(['history prune, one batch of 50,000 rows (the running service, after a pass)', Number(process.hrtime.bigint() - pruneStart) / 1e6]);
ledger.close();

console.log(`\n${summary.counts.archived.toLocaleString('en')} archived, backlog ${summary.backlog.files}, ${os.cpus().length} cores, Node ${process.version}`);
console.log('| query | median ms |\n| --- | --- |');
for (const [name, ms] of rows) console.log(`| ${name} | ${ms.toFixed(1)} |`);
if (!values.keep) rmSync(file, { force: true });
