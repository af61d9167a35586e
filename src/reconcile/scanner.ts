import { isUtf8 } from 'node:buffer';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { errnoCode } from '../errors.js';
import type { Observer } from '../observe/observer.js';
import { toSourceStat } from '../pipeline/source-file.js';

export interface ScanTally {
  filesSeen: number;
  filesQueued: number;
  /** Files too fresh to take now; each is taken once it has been quiet for the rest of the settle time. */
  filesWaiting: number;
}

export interface ScanOptions {
  /** A file must be this old (by mtime) to be taken at once. */
  readonly settleMs: number;
  readonly now: () => number;
  readonly log: Logger;
}

/**
 * Walks a target (or one directory under it) and observes every regular file. Symlinks are never
 * followed; ignored names prune whole subtrees; a directory that vanishes mid-walk is skipped.
 * Idempotent: a second scan over an unchanged tree queues nothing.
 */
export async function scanTree(
  target: TargetConfig,
  relDir: string,
  observer: Observer,
  options: ScanOptions,
): Promise<ScanTally> {
  const tally: ScanTally = { filesSeen: 0, filesQueued: 0, filesWaiting: 0 };
  const pending = [relDir];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    for (const entry of await readDirectory(target, dir, options.log)) {
      const relPath = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (observer.isIgnored(target, relPath)) continue;
      if (entry.kind === 'directory') pending.push(relPath);
      else if (entry.kind === 'file') await observeEntry(target, relPath, observer, options, tally);
    }
  }
  return tally;
}

async function observeEntry(
  target: TargetConfig,
  relPath: string,
  observer: Observer,
  options: ScanOptions,
  tally: ScanTally,
): Promise<void> {
  let stat;
  try {
    stat = toSourceStat(await fsp.lstat(path.join(target.path, relPath), { bigint: true }));
  } catch (error) {
    const code = errnoCode(error);
    // One unreadable entry (a name too long, a race) must not stop the scan of everything else.
    if (code !== 'ENOENT') options.log.error({ target: target.path, path: relPath, code }, 'cannot stat file: not archived');
    return;
  }
  tally.filesSeen += 1;
  const ageMs = options.now() - stat.mtimeMs;
  if (ageMs < options.settleMs) {
    // A future mtime (a client's clock, touch -d) must not postpone the file by more than one settle period.
    observer.observeWhenQuiet(target, relPath, Math.ceil(Math.min(options.settleMs - ageMs, options.settleMs)), stat);
    tally.filesWaiting += 1;
    return;
  }
  if (observer.observeStat(target, relPath, stat) === 'queued') tally.filesQueued += 1;
}

interface Entry {
  readonly name: string;
  readonly kind: 'file' | 'directory' | 'other';
}

async function readDirectory(target: TargetConfig, relDir: string, log: Logger): Promise<Entry[]> {
  let entries;
  try {
    entries = await fsp.readdir(path.join(target.path, relDir), { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    log.error({ target: target.path, dir: relDir, code }, 'cannot read directory: its files are not archived');
    return [];
  }
  return entries.flatMap((entry) => {
    if (isUtf8(entry.name)) {
      const kind = entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : 'other';
      return [{ name: entry.name.toString('utf8'), kind } as const];
    }
    log.error(
      { target: target.path, dir: relDir, nameHex: entry.name.toString('hex') },
      'file name is not valid UTF-8 and cannot become an S3 key: not archived (rename it)',
    );
    return [];
  });
}
