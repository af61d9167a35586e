import { isUtf8 } from 'node:buffer';
import { lstatSync, promises as fsp, type BigIntStats } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { describeCause, errnoCode, SftppushError } from '../errors.js';
import type { Observer } from '../observe/observer.js';
import { toSourceStat, type SourceStat } from '../source/source-fs.js';

export interface ScanTally {
  filesSeen: number;
  /** Seen and in the pass's scope (`--since`: mtime at or after it; all files otherwise). */
  filesInScope: number;
  /** In scope and already in the ledger as they are (archived, or queued earlier). */
  filesUnchanged: number;
  filesQueued: number;
  /** Files not complete yet by the completion rule (observe/completion.ts); each is looked at again when due. */
  filesWaiting: number;
  /** Directories that could not be read (EACCES, EIO): skipped, reported in the pass record. */
  dirsUnreadable: number;
  /** Entries that were skipped: names that are not valid UTF-8 (no S3 key), files that could not be stat-ed. */
  entriesSkipped: number;
}

/** Which files a pass looks at. */
export interface ScanScope {
  /** Only files whose mtime is at or after this (ms since the epoch); older ones are left alone, not even stat-ed twice. */
  readonly sinceMs?: number | undefined;
}

export function emptyTally(): ScanTally {
  return { filesSeen: 0, filesInScope: 0, filesUnchanged: 0, filesQueued: 0, filesWaiting: 0, dirsUnreadable: 0, entriesSkipped: 0 };
}

export function addTally(into: ScanTally, from: ScanTally): void {
  for (const key of Object.keys(into) as (keyof ScanTally)[]) into[key] += from[key];
}

/**
 * Walks a target (or one directory under it) and hands every regular file to the observer's completion
 * rule. Symlinks are never followed; ignored names prune whole subtrees; a directory that vanishes mid-walk
 * is skipped. Idempotent: a second scan over an unchanged tree queues nothing.
 */
export async function scanTree(
  target: TargetConfig,
  relDir: string,
  observer: Pick<Observer, 'isIgnored' | 'noteScanned' | 'unchangedIn'>,
  log: Logger,
  scope: ScanScope = {},
): Promise<ScanTally> {
  const tally = emptyTally();
  const pending = [relDir];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const files: string[] = [];
    for (const entry of await readDirectory(target, dir, log, tally)) {
      const relPath = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (observer.isIgnored(target, relPath)) continue;
      if (entry.kind === 'directory') pending.push(relPath);
      else if (entry.kind === 'file') files.push(relPath);
    }
    // One ledger read for the whole directory: most files of most passes are exactly as it holds them.
    const unchanged = files.length > 0 ? observer.unchangedIn(target, dir) : () => false;
    // lstat(2) of a local file takes microseconds, a thread-pool round trip ten times that: stat in place,
    // a batch at a time, and let the event loop (the watcher's events, the workers) run between batches.
    for (let i = 0; i < files.length; i += STAT_BATCH) {
      for (const relPath of files.slice(i, i + STAT_BATCH)) {
        observeEntry(target, relPath, statEntry(target, relPath), observer, unchanged, log, tally, scope);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  return tally;
}

/** Files stat-ed between two turns of the event loop: well under a millisecond of blocking on a local disk. */
const STAT_BATCH = 128;

function statEntry(target: TargetConfig, relPath: string): BigIntStats | { error: unknown } {
  try {
    return lstatSync(path.join(target.path, relPath), { bigint: true });
  } catch (error) {
    return { error };
  }
}

function observeEntry(
  target: TargetConfig,
  relPath: string,
  stats: BigIntStats | { error: unknown },
  observer: Pick<Observer, 'noteScanned'>,
  unchanged: (relPath: string, stat: SourceStat) => boolean,
  log: Logger,
  tally: ScanTally,
  scope: ScanScope,
): void {
  let stat;
  try {
    if ('error' in stats) throw stats.error;
    stat = toSourceStat(stats);
  } catch (error) {
    const code = errnoCode(error);
    // One unreadable entry (a name too long, a race) must not stop the scan of everything else.
    if (code !== 'ENOENT') {
      log.error({ target: target.path, path: relPath, code }, 'cannot stat file: not archived');
      tally.entriesSkipped += 1;
    }
    return;
  }
  tally.filesSeen += 1;
  if (scope.sinceMs !== undefined && stat.mtimeMs < scope.sinceMs) return;
  tally.filesInScope += 1;
  if (unchanged(relPath, stat)) {
    tally.filesUnchanged += 1;
    return;
  }
  const result = observer.noteScanned(target, relPath, stat);
  if (result === 'queued') tally.filesQueued += 1;
  else if (result === 'waiting') tally.filesWaiting += 1;
  else if (result === 'unchanged' || result === 'updated') tally.filesUnchanged += 1;
}

interface Entry {
  readonly name: string;
  readonly kind: 'file' | 'directory' | 'other';
}

async function readDirectory(target: TargetConfig, relDir: string, log: Logger, tally: ScanTally): Promise<Entry[]> {
  let entries;
  try {
    entries = await fsp.readdir(path.join(target.path, relDir), { withFileTypes: true, encoding: 'buffer' });
  } catch (error) {
    const code = errnoCode(error);
    // A target root that is gone is an error of the whole pass (recorded, shown by status), never an empty
    // listing: "nothing to archive" and "cannot see the files" must not look the same.
    if (relDir === '') throw new SftppushError('E_TARGET_MISSING', `target ${target.path} cannot be read (${code ?? describeCause(error)})`);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    log.error({ target: target.path, dir: relDir, code }, 'cannot read directory: its files are not archived');
    tally.dirsUnreadable += 1;
    return [];
  }
  return entries.flatMap((entry) => {
    if (isUtf8(entry.name)) {
      const kind = entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : 'other';
      return [{ name: entry.name.toString('utf8'), kind } as const];
    }
    tally.entriesSkipped += 1;
    log.error(
      { target: target.path, dir: relDir, nameHex: entry.name.toString('hex') },
      'file name is not valid UTF-8 and cannot become an S3 key: not archived (rename it)',
    );
    return [];
  });
}
