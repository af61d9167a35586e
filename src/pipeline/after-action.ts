import path from 'node:path';
import type { Logger } from 'pino';
import type { TargetConfig } from '../config.js';
import { describeCause, errnoCode } from '../errors.js';
import type { KillPoint } from '../kill-points.js';
import type { AfterOutcome, Ledger } from '../ledger/ledger.js';
import type { FileStat } from '../ledger/observation.js';
import type { SourceFs } from '../source/source-fs.js';
import { planAfterAction, type AfterAction } from './after-plan.js';

export interface AfterActionDeps {
  readonly ledger: Pick<Ledger, 'settleAfterAction'>;
  readonly source: Pick<SourceFs, 'stat' | 'unlink' | 'link' | 'syncDirectory'>;
  readonly log: Logger;
  /** Looks up a target by its path (as the ledger stores it); undefined when no longer configured. */
  readonly targetFor: (targetPath: string) => TargetConfig | undefined;
  /** Named instants a crash test may kill the process at (kill-points.ts); a no-op in production. */
  readonly checkpoint?: ((point: Extract<KillPoint, 'after-archive-record'>) => void) | undefined;
}

/** One due action, as the worker that archived the generation or the process that recovered it holds it. */
export interface DueAction {
  readonly fileId: number;
  readonly owner: string;
  readonly target: string;
  readonly relPath: string;
  readonly action: AfterAction;
  /** The identity of the bytes archived: the action runs only on a path that still holds exactly them. */
  readonly hashed: FileStat;
  /** Said in the story when it is not the archiving worker's own step (`finished at start after … stopped`). */
  readonly recovery?: string | undefined;
  /** The reason the last attempt failed, when this is its retry (see Ledger.adoptDueAfterActions). */
  readonly previousFailure?: string | undefined;
}

/**
 * Carries out a due after-archive action and records how it ended (a history row of the file). Never throws
 * for the file's own problems: a failed unlink or a taken name is recorded as `failed` with the reason, and
 * the source stays; the next pass or start tries it again. A retry that fails for the same reason is logged at
 * debug only (one error line, not one per pass). Throws only when the ledger fails.
 *
 * A move never overwrites: link(2) to the new name (EEXIST when taken), then unlink of the old one; the
 * directories under DIR are created as needed, and DIR's directory entry is synced before the source's is
 * removed. A changed file between the check and the link is caught by the link's inode and mtime, and the
 * link undone.
 */
export async function carryOutAfterAction(due: DueAction, deps: AfterActionDeps): Promise<AfterOutcome> {
  const log = deps.log.child({ path: due.relPath, target: due.target, after: due.action.kind });
  deps.checkpoint?.('after-archive-record');
  const retried = due.previousFailure === undefined ? undefined : `retried after: ${due.previousFailure}`;
  const settle = (outcome: AfterOutcome, detail: string): AfterOutcome => {
    // A failure's detail is its reason alone, so a retry failing the same way is recognised as the same step.
    const note = outcome === 'failed' ? due.recovery : (retried ?? due.recovery);
    deps.ledger.settleAfterAction(due.fileId, due.owner, outcome, note ? `${detail} (${note})` : detail);
    return outcome;
  };
  const failed = (reason: string, detail: string): AfterOutcome => {
    const again = detail === due.previousFailure;
    log[again ? 'debug' : 'error']({ reason, retry: due.previousFailure !== undefined }, 'after-archive action failed: source kept');
    return settle('failed', detail);
  };
  const absolute = path.join(due.target, due.relPath);
  let step;
  try {
    step = planAfterAction({
      recorded: due.action,
      configured: deps.targetFor(due.target)?.after,
      targetPath: due.target,
      relPath: due.relPath,
      hashed: due.hashed,
      current: await deps.source.stat(absolute),
    });
  } catch (error) {
    return failed(describeCause(error), `${due.action.kind} failed: ${describeError(error)}; source kept`);
  }
  if (step.kind === 'skip') {
    log.info({ reason: step.reason, recovery: due.recovery }, 'after-archive action skipped');
    return settle('skipped', `${due.action.kind} skipped: ${step.reason}`);
  }
  try {
    if (step.kind === 'delete') {
      await deps.source.unlink(step.path);
      log.info({ recovery: due.recovery }, 'source deleted after archive');
      return settle('done', `deleted ${step.path}`);
    }
    const moved = await moveNoReplace(step.from, step.to, due.hashed, deps.source);
    if (!moved) {
      log.info({ to: step.to }, 'after-archive action skipped: changed while being moved');
      return settle('skipped', `move skipped: changed while being moved; source kept`);
    }
    log.info({ to: step.to, recovery: due.recovery }, 'source moved after archive');
    return settle('done', `moved to ${step.to}`);
  } catch (error) {
    const reason = errnoCode(error) === 'EEXIST' && step.kind === 'move' ? `${step.to} already exists, never overwritten` : describeError(error);
    return failed(reason, `${step.kind} failed: ${reason}; source kept`);
  }
}

/**
 * link + unlink: the new name is made only if free, and the old one removed only once the new one is durable
 * and names the very inode hashed (same size and mtime; link(2) itself changes the ctime).
 * @returns false when the file changed between the caller's check and the link (the link is undone).
 * @throws the errno error (EEXIST: the name is taken; EXDEV: another filesystem).
 */
async function moveNoReplace(
  from: string,
  to: string,
  hashed: FileStat,
  source: Pick<SourceFs, 'stat' | 'unlink' | 'link' | 'syncDirectory'>,
): Promise<boolean> {
  await source.link(from, to);
  const linked = await source.stat(to);
  if (linked?.inode !== hashed.inode || linked.sizeBytes !== hashed.sizeBytes || linked.mtimeMs !== hashed.mtimeMs) {
    await source.unlink(to);
    return false;
  }
  await source.syncDirectory(path.dirname(to));
  await source.unlink(from);
  return true;
}

function describeError(error: unknown): string {
  const code = errnoCode(error);
  return code ? `${code}: ${describeCause(error)}` : describeCause(error);
}
