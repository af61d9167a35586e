import type { FileState } from './states.js';

/** What the filesystem says about a path now: the identity triple that decides "is this new content?". */
export interface FileStat {
  readonly sizeBytes: number;
  readonly mtimeMs: number;
  readonly inode: number;
}

/** The latest generation the ledger holds for a path. */
export interface LatestGeneration extends FileStat {
  readonly id: number;
  readonly generation: number;
  readonly state: FileState;
}

export type ObservationDecision =
  | { readonly kind: 'insert'; readonly generation: number }
  | { readonly kind: 'update-stat' } // not yet taken by a worker: the newer stat simply replaces the older
  | { readonly kind: 'requeue' } // a retrying row whose file changed: start over as pending
  | { readonly kind: 'mark-dirty' } // a worker holds it: it re-observes when done
  | { readonly kind: 'unchanged' };

export function sameStat(a: FileStat, b: FileStat): boolean {
  return a.sizeBytes === b.sizeBytes && a.mtimeMs === b.mtimeMs && a.inode === b.inode;
}

/**
 * Decides what an observation of a path means for the ledger. Pure, so the rules are tested in milliseconds.
 * A path has at most one active (pending/working/retry) generation: a change while a worker holds the row
 * never starts a second upload to the same key racing the first.
 */
export function decideObservation(latest: LatestGeneration | undefined, stat: FileStat): ObservationDecision {
  if (!latest) return { kind: 'insert', generation: 1 };
  const changed = !sameStat(latest, stat);
  switch (latest.state) {
    case 'pending':
      return changed ? { kind: 'update-stat' } : { kind: 'unchanged' };
    case 'retry':
      return changed ? { kind: 'requeue' } : { kind: 'unchanged' };
    case 'working':
      return changed ? { kind: 'mark-dirty' } : { kind: 'unchanged' };
    case 'gone':
      // It came back: whatever it holds now is a new generation, even with the same stat.
      return { kind: 'insert', generation: latest.generation + 1 };
    case 'archived':
    case 'quarantined':
      return changed ? { kind: 'insert', generation: latest.generation + 1 } : { kind: 'unchanged' };
  }
}
