import type { FileState } from './states.js';

/**
 * What the filesystem says about a path now: the identity that decides "is this new content?".
 * ctime is in it because a client can restore an mtime after rewriting a file in place (sftp `put -p`,
 * `cp -p`, `rsync --inplace -t`), but no client can set the inode change time.
 */
export interface FileStat {
  readonly sizeBytes: number;
  /** fs.Stats.mtimeMs: sub-millisecond, compared exactly. */
  readonly mtimeMs: number;
  readonly inode: number;
  /** Inode change time, nanoseconds since the epoch (fs.BigIntStats.ctimeNs). */
  readonly ctimeNs: bigint;
}

/** The latest generation the ledger holds for a path. */
export interface LatestGeneration extends Omit<FileStat, 'ctimeNs'> {
  readonly id: number;
  readonly generation: number;
  readonly state: FileState;
  /** Null on rows recorded before the ledger kept ctimes: the next observation adopts the one it sees. */
  readonly ctimeNs: bigint | null;
}

export type ObservationDecision =
  | { readonly kind: 'insert'; readonly generation: number }
  | { readonly kind: 'update-stat' } // not yet taken by a worker: the newer stat simply replaces the older
  | { readonly kind: 'requeue' } // a retrying row whose file changed: start over as pending
  | { readonly kind: 'mark-dirty' } // a worker holds it: it re-observes when done
  | { readonly kind: 'adopt-ctime' } // an upgraded row meets its first ctime: record it, nothing changed
  | { readonly kind: 'unchanged' };

/** Same identity. A ctime the ledger does not know yet (null) matches any, so an upgrade requeues nothing. */
export function sameStat(a: Pick<LatestGeneration, keyof FileStat>, b: Pick<LatestGeneration, keyof FileStat>): boolean {
  return (
    a.sizeBytes === b.sizeBytes &&
    a.mtimeMs === b.mtimeMs &&
    a.inode === b.inode &&
    (a.ctimeNs === null || b.ctimeNs === null || a.ctimeNs === b.ctimeNs)
  );
}

/**
 * Decides what an observation of a path means for the ledger. Pure, so the rules are tested in milliseconds.
 * A path has at most one active (pending/working/retry) generation: a change while a worker holds the row
 * never starts a second upload to the same key racing the first.
 */
export function decideObservation(latest: LatestGeneration | undefined, stat: FileStat): ObservationDecision {
  if (!latest) return { kind: 'insert', generation: 1 };
  if (latest.state === 'gone') {
    // It came back: whatever it holds now is a new generation, even with the same stat.
    return { kind: 'insert', generation: latest.generation + 1 };
  }
  if (sameStat(latest, stat)) return latest.ctimeNs === null ? { kind: 'adopt-ctime' } : { kind: 'unchanged' };
  switch (latest.state) {
    case 'pending':
      return { kind: 'update-stat' };
    case 'retry':
      return { kind: 'requeue' };
    case 'working':
      return { kind: 'mark-dirty' };
    case 'archived':
    case 'quarantined':
      return { kind: 'insert', generation: latest.generation + 1 };
  }
}
