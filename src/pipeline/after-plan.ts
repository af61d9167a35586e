import path from 'node:path';
import { sameStat, type FileStat } from '../ledger/observation.js';
import type { SourceStat } from '../source/source-fs.js';

/** A target's `after`: what becomes of a source once its archive is verified in S3 and recorded. */
export type AfterAction = { readonly kind: 'keep' } | { readonly kind: 'delete' } | { readonly kind: 'move'; readonly dir: string };

/** The action as config.toml and the ledger spell it: `keep`, `delete`, `move:/abs/dir`. */
export function formatAfterAction(action: AfterAction): string {
  return action.kind === 'move' ? `move:${action.dir}` : action.kind;
}

/** Reads an action as formatAfterAction writes it; undefined when the text is none. */
export function parseAfterAction(text: string): AfterAction | undefined {
  if (text === 'keep' || text === 'delete') return { kind: text };
  const dir = /^move:(.+)$/.exec(text)?.[1];
  return dir === undefined ? undefined : { kind: 'move', dir };
}

/**
 * What a generation that has just become `archived` owes its source: the action to record as due in the same
 * transaction, or undefined for `keep`. Quarantined, gone and requeued generations never get here: only an
 * archive S3 verified (uploaded, found, or a duplicate of one) lets the source go.
 */
export function dueAfterAction(action: AfterAction): string | undefined {
  return action.kind === 'keep' ? undefined : formatAfterAction(action);
}

export type AfterStep =
  | { readonly kind: 'skip'; readonly reason: string }
  | { readonly kind: 'delete'; readonly path: string }
  | { readonly kind: 'move'; readonly from: string; readonly to: string };

export interface AfterPlanInput {
  /** The action recorded as due when the generation was archived. */
  readonly recorded: AfterAction;
  /** The target's `after` now; undefined when the target is no longer configured. */
  readonly configured: AfterAction | undefined;
  readonly targetPath: string;
  readonly relPath: string;
  /** The generation's identity when it was hashed (as the ledger recorded it with the archive). */
  readonly hashed: FileStat;
  /** lstat of the path now; undefined when nothing is there. */
  readonly current: SourceStat | undefined;
}

/**
 * Decides, right before touching the file, whether the due action may run. Pure. Never on a path that no
 * longer holds the bytes hashed (size, mtime, ctime, inode): a changed file is a new generation, left alone
 * for its own archive. Never when the operator has since changed the target's `after` (or dropped the
 * target): a crash must not carry out an action the configuration no longer asks for.
 */
export function planAfterAction(input: AfterPlanInput): AfterStep {
  const { recorded, configured, current } = input;
  if (configured === undefined) return { kind: 'skip', reason: `target ${input.targetPath} is no longer configured` };
  if (formatAfterAction(configured) !== formatAfterAction(recorded)) {
    return { kind: 'skip', reason: `the target's after is now "${formatAfterAction(configured)}", not "${formatAfterAction(recorded)}"` };
  }
  if (recorded.kind === 'keep') return { kind: 'skip', reason: 'after = "keep"' };
  if (current === undefined) return { kind: 'skip', reason: 'source already gone' };
  if (!current.isFile) return { kind: 'skip', reason: 'no longer a regular file' };
  if (!sameStat(input.hashed, current)) return { kind: 'skip', reason: 'changed since it was hashed: a new generation, left alone' };
  const from = path.join(input.targetPath, input.relPath);
  if (recorded.kind === 'delete') return { kind: 'delete', path: from };
  return { kind: 'move', from, to: path.join(recorded.dir, input.relPath) };
}
