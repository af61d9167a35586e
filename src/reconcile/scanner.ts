import { isUtf8 } from 'node:buffer';
import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { describeCause, errnoCode, SftppushError } from '../errors.js';
import type { ScanSkip } from '../ledger/ledger.js';
import type { FileState } from '../ledger/states.js';
import type { Observer } from '../observe/observer.js';
import type { StatFailure } from '../native/stat-at.js';
import type { SourceDirectory, SourceDirs, SourceStat } from '../source/source-fs.js';

export interface ScanTally {
  filesSeen: number;
  /** Seen and in the pass's scope (`--since`: mtime at or after it; all files otherwise). */
  filesInScope: number;
  /** In scope and already in the ledger as they are (archived, or queued, retrying, quarantined earlier). */
  filesUnchanged: number;
  /** Of filesUnchanged, those the ledger holds archived (a duplicate included): nothing left to do for them. */
  filesArchived: number;
  filesQueued: number;
  /** Files not complete yet by the completion rule (observe/completion.ts); each is looked at again when due. */
  filesWaiting: number;
  /** Directories read to the end. */
  dirsScanned: number;
  /** Directories that could not be read (EACCES, EIO): skipped, counted in the pass record, each told to ScanScope.onSkip. */
  dirsUnreadable: number;
  /** Entries that were skipped (each told to ScanScope.onSkip): names that are not valid UTF-8 (no S3 key), files that could not be stat-ed. */
  entriesSkipped: number;
}

/** Which files a pass looks at, and whom it tells what it found besides the counts. */
export interface ScanScope {
  /** Only files whose mtime is at or after this (ms since the epoch); older ones are left alone, not even stat-ed twice. */
  readonly sinceMs?: number | undefined;
  /** Told of each entry skipped (also logged and counted): the pass records them for `status`. */
  readonly onSkip?: (skip: ScanSkip) => void;
  /** Told of each file in scope the pass queued (a dry run: would queue) or waits for (not settled yet). */
  readonly onFile?: (relPath: string, outcome: 'queued' | 'waiting') => void;
  /** Stops the walk between directories (a one-shot `reconcile` told to stop): the walk throws its reason. */
  readonly signal?: AbortSignal | undefined;
}

export function emptyTally(): ScanTally {
  return { filesSeen: 0, filesInScope: 0, filesUnchanged: 0, filesArchived: 0, filesQueued: 0, filesWaiting: 0, dirsScanned: 0, dirsUnreadable: 0, entriesSkipped: 0 };
}

/**
 * Walks a target (or one directory under it) and hands every regular file to the observer's completion
 * rule. Symlinks are never followed; ignored names prune whole subtrees; a directory that vanishes mid-walk
 * is skipped. Idempotent: a second scan over an unchanged tree queues nothing.
 *
 * Memory does not grow with the tree: depth first, each directory streamed a batch of entries at a time
 * (opendir), so what is held is the names of the subdirectories still to visit on the current path, one
 * batch of entries, and the ledger's rows for the one directory being read, plus the first batch of the one
 * directory started ahead.
 *
 * One directory ahead: while this thread compares a directory's files with the ledger, the next directory on
 * the stack (a sibling, or the first child once the parent is done) is already listed and its files being
 * lstat-ed off this thread. Without it the two took turns, each idle while the other worked.
 * @param tally counts are added here as the walk goes (a progress display reads them); returned.
 */
export async function scanTree(
  target: TargetConfig,
  relDir: string,
  deps: ScanDeps,
  scope: ScanScope = {},
  tally: ScanTally = emptyTally(),
): Promise<ScanTally> {
  const walk: Walk = { ...deps, target, scope, tally };
  const pending = [relDir];
  const startNext = (): StartedDirectory | undefined => {
    for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
      const started = startDirectory(walk, dir);
      if (started) return started;
    }
    return undefined;
  };
  for (let current = startNext(); current !== undefined; ) {
    if (scope.signal?.aborted) {
      current.dir.closeSync();
      scope.signal.throwIfAborted();
    }
    const ahead = startNext();
    let subdirs: string[];
    try {
      subdirs = await finishDirectory(walk, current);
    } catch (error) {
      ahead?.dir.closeSync();
      throw error;
    }
    // Reversed onto the stack: visited in the order listed.
    for (let i = subdirs.length - 1; i >= 0; i -= 1) pending.push(subdirs[i]!);
    current = ahead ?? startNext();
  }
  return tally;
}

/** Whom a walk tells what it finds, and how it reads directories. */
export interface ScanDeps {
  readonly observer: Pick<Observer, 'isIgnoredEntry' | 'noteScanned' | 'unchangedIn'>;
  readonly log: Logger;
  readonly dirs: Pick<SourceDirs, 'openDirectory' | 'lstatNames'>;
}

/** What every step of one walk shares. */
interface Walk extends ScanDeps {
  readonly target: TargetConfig;
  readonly scope: ScanScope;
  readonly tally: ScanTally;
}

/**
 * Entries read from the kernel at a time (opendir's bufferSize), the files among them stat-ed in one native
 * call: the event loop turns between batches, and a getdents(2) of 256 entries blocks well under a millisecond.
 */
const BATCH_ENTRIES = 256;

/** A batch of one directory: its subdirectories, and its files with their lstat results on the way. */
interface StartedBatch {
  readonly subdirs: string[];
  readonly files: readonly { readonly relPath: string }[];
  /** lstat of `files`, in order; undefined when there are none. Never rejects unobserved (see startBatch). */
  readonly stats: Promise<(SourceStat | StatFailure)[]> | undefined;
  readonly more: boolean;
}

/** A directory open for streaming, its first batch read and being stat-ed. */
interface StartedDirectory {
  readonly relDir: string;
  readonly absoluteDir: string;
  readonly dir: SourceDirectory;
  readonly first: StartedBatch;
}

/** Opens `relDir` and starts its first batch; undefined when it cannot be read (reported) or is gone. */
function startDirectory(walk: Walk, relDir: string): StartedDirectory | undefined {
  const dir = openDirectory(walk, relDir);
  if (!dir) return undefined;
  const absoluteDir = relDir === '' ? walk.target.path : path.join(walk.target.path, relDir);
  try {
    return { relDir, absoluteDir, dir, first: startBatch(walk, dir, relDir, absoluteDir) };
  } catch (error) {
    dir.closeSync();
    throw error;
  }
}

/** Reads the next batch of `dir` and sends its files to be lstat-ed, off this thread. */
function startBatch(walk: Walk, dir: SourceDirectory, relDir: string, absoluteDir: string): StartedBatch {
  const batch = readBatch(dir, walk.target, relDir, walk.log, walk.tally, walk.scope);
  const subdirs: string[] = [];
  const files: { name: string; relPath: string }[] = [];
  for (const entry of batch.entries) {
    const relPath = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
    if (walk.observer.isIgnoredEntry(walk.target, relPath, entry.name)) continue;
    if (entry.kind === 'directory') subdirs.push(relPath);
    else if (entry.kind === 'file') files.push({ name: entry.name, relPath });
  }
  const stats = files.length > 0 ? walk.dirs.lstatNames(absoluteDir, files.map((f) => f.name)) : undefined;
  // A batch started ahead may be dropped unawaited when the walk fails before it: not an unhandled rejection.
  stats?.catch(() => undefined);
  return { subdirs, files, stats, more: batch.more };
}

/**
 * Observes the files of one started directory, batch after batch; returns the names of its subdirectories
 * (not ignored) to walk next. Each batch is compared with the ledger's rows for the directory, read in one
 * index range query when the first file shows up. Those rows are held as one Map for the whole directory: a
 * merge join would hold less, but it needs the listing in name order, which getdents does not give, and
 * sorting the listing would hold all of its names instead. So a directory of a million files costs its
 * million rows while it is read, and only then.
 */
async function finishDirectory(walk: Walk, started: StartedDirectory): Promise<string[]> {
  const { target, observer, log, scope, tally } = walk;
  const { relDir, absoluteDir, dir } = started;
  const subdirs: string[] = [];
  let unchanged: UnchangedTest | undefined;
  try {
    for (let batch: StartedBatch | undefined = started.first; batch !== undefined; ) {
      subdirs.push(...batch.subdirs);
      if (batch.stats) {
        // Most files of most passes are exactly as the ledger holds them: its rows are read (once for the
        // whole directory) while the batch's lstat calls run.
        unchanged ??= observer.unchangedIn(target, relDir);
        const statted = await batch.stats;
        batch.files.forEach(({ relPath }, i) => observeEntry(target, relPath, statted[i]!, observer, unchanged!, log, tally, scope));
      } else {
        // Let the event loop (the watcher's events, the workers) run between batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
      batch = batch.more ? startBatch(walk, dir, relDir, absoluteDir) : undefined;
    }
  } finally {
    dir.closeSync();
  }
  return subdirs;
}

function observeEntry(
  target: TargetConfig,
  relPath: string,
  stat: SourceStat | StatFailure,
  observer: Pick<Observer, 'noteScanned'>,
  unchanged: UnchangedTest,
  log: Logger,
  tally: ScanTally,
  scope: ScanScope,
): void {
  if ('code' in stat) {
    // Gone since it was listed (or its directory was, or was swapped for a symlink): nothing to archive.
    // Any other failure (a name too long, EIO) must not stop the scan of everything else.
    if (stat.code !== 'ENOENT' && stat.code !== 'ENOTDIR') {
      log.error({ target: target.path, path: relPath, code: stat.code }, 'cannot stat file: not archived');
      tally.entriesSkipped += 1;
      scope.onSkip?.({ kind: 'unstatable-file', relPath, code: stat.code });
    }
    return;
  }
  tally.filesSeen += 1;
  if (scope.sinceMs !== undefined && stat.mtimeMs < scope.sinceMs) return;
  tally.filesInScope += 1;
  const held = unchanged(relPath, stat);
  if (held !== undefined) {
    tally.filesUnchanged += 1;
    if (held === 'archived') tally.filesArchived += 1;
    return;
  }
  const result = observer.noteScanned(target, relPath, stat);
  if (result === 'queued') tally.filesQueued += 1;
  else if (result === 'waiting') tally.filesWaiting += 1;
  if (result === 'queued' || result === 'waiting') scope.onFile?.(relPath, result);
  else if (result === 'unchanged' || result === 'updated') tally.filesUnchanged += 1;
}

/** Observer.unchangedIn's answer for one file: the state the ledger holds it in, when it holds it as it is. */
type UnchangedTest = (relPath: string, stat: SourceStat) => FileState | undefined;

interface Entry {
  readonly name: string;
  readonly kind: 'file' | 'directory' | 'other';
}

/** Opens a directory for streaming; undefined when it is gone (nothing to do) or unreadable (reported). */
function openDirectory(walk: Walk, relDir: string): SourceDirectory | undefined {
  const { target, log, tally, scope } = walk;
  try {
    return walk.dirs.openDirectory(path.join(target.path, relDir), BATCH_ENTRIES);
  } catch (error) {
    const code = errnoCode(error);
    // A target root that is gone is an error of the whole pass (recorded, shown by status), never an empty
    // listing: "nothing to archive" and "cannot see the files" must not look the same.
    if (relDir === '') throw new SftppushError('E_TARGET_MISSING', `target ${target.path} cannot be read (${code ?? describeCause(error)})`);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    log.error({ target: target.path, dir: relDir, code }, 'cannot read directory: its files are not archived');
    tally.dirsUnreadable += 1;
    scope.onSkip?.({ kind: 'unreadable-directory', relPath: relDir, code: code ?? describeCause(error) });
    return undefined;
  }
}

/**
 * The next entries of an open directory, up to one buffer's worth: readSync hands out what the last
 * getdents(2) buffered and makes the next call only when that is used up. `more` is false at the end.
 */
function readBatch(
  dir: SourceDirectory,
  target: TargetConfig,
  relDir: string,
  log: Logger,
  tally: ScanTally,
  scope: ScanScope,
): { entries: Entry[]; more: boolean } {
  const entries: Entry[] = [];
  while (entries.length < BATCH_ENTRIES) {
    let entry;
    try {
      entry = dir.readSync();
    } catch (error) {
      // EIO mid-listing (a failing disk, a stale NFS handle): the rest of the directory is unseen.
      const code = errnoCode(error) ?? describeCause(error);
      log.error({ target: target.path, dir: relDir, code }, 'cannot read directory: its files are not archived');
      tally.dirsUnreadable += 1;
      scope.onSkip?.({ kind: 'unreadable-directory', relPath: relDir, code });
      return { entries, more: false };
    }
    if (entry === null) {
      tally.dirsScanned += 1;
      return { entries, more: false };
    }
    if (isUtf8(entry.name)) {
      const kind = entry.isFile() ? 'file' : entry.isDirectory() ? 'directory' : 'other';
      entries.push({ name: entry.name.toString('utf8'), kind });
      continue;
    }
    const nameHex = entry.name.toString('hex');
    tally.entriesSkipped += 1;
    scope.onSkip?.({ kind: 'invalid-name', relPath: relDir, nameHex });
    log.error({ target: target.path, dir: relDir, nameHex }, 'file name is not valid UTF-8 and cannot become an S3 key: not archived (rename it)');
  }
  return { entries, more: true };
}
