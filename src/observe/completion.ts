/**
 * When is a file complete? One rule for every path that can see a file (DESIGN.md): the watcher's events,
 * the scan of a new directory, and every rescan. Pure: the tables in test/unit/completion.test.ts pin it.
 *
 * - Finished by its writer (closed after writing, renamed in, linked in): taken once it has been quiet for
 *   the target's `quiet_ms` since that event (0: at once).
 * - A writer at work again after the close (IN_MODIFY): the close is stale; wait for the next one.
 * - Found by a scan, with no event: taken once its mtime and ctime are older than the settle time (the
 *   larger of `settle_seconds` and the target's `quiet_ms`: a target that says its writers pause that long
 *   is not second-guessed by a rescan). A change time in the future (a client's clock, `cp -p` from such a
 *   machine) or a clock that jumped back counts from when the file was first seen unchanged instead, so it
 *   is taken within one settle period.
 * - A scan never replaces an event's wait, nor a shorter pending wait; a later event restarts the quiet
 *   period from itself, so no event ever shortens a wait another path set.
 */

/** The parts of a stat the rule looks at. */
export interface CompletionStat {
  readonly sizeBytes: number;
  readonly mtimeMs: number;
  readonly inode: number;
  readonly ctimeNs: bigint;
}

export interface CompletionRule {
  /** The target's quiet period after a writer finished, ms. */
  readonly quietMs: number;
  /** How old (mtime and ctime) a file found without an event must be, ms. */
  readonly settleMs: number;
}

/** What is known of a path that is not taken yet. */
export type Waiting =
  /** A writer finished it at `since` (stat-ed then as `stat`): due at since + quietMs if still unchanged. */
  | { readonly evidence: 'finished'; readonly since: number; readonly stat: CompletionStat }
  /** A writer is at work after any close: held until its next close (or, should that never come, a scan). */
  | { readonly evidence: 'writing'; readonly since: number }
  /** A scan found it; `since` is when it was first seen with this very stat. */
  | { readonly evidence: 'scanned'; readonly since: number; readonly stat: CompletionStat };

export type Sighting =
  /** IN_CLOSE_WRITE, IN_MOVED_TO or a link, and the stat taken right after it. */
  | { readonly kind: 'finished'; readonly at: number; readonly stat: CompletionStat }
  /** IN_MODIFY. */
  | { readonly kind: 'writing'; readonly at: number }
  /** A scan found it, or a wait's timer fired and it was stat-ed again. */
  | { readonly kind: 'seen'; readonly at: number; readonly stat: CompletionStat };

export type CompletionDecision =
  /** Record it in the ledger now. */
  | { readonly action: 'take' }
  /** Look again at `dueAt` (ms), remembering `waiting`. */
  | { readonly action: 'wait'; readonly dueAt: number; readonly waiting: Waiting }
  /** Schedule nothing: the writer's next close (or the next scan) brings news. */
  | { readonly action: 'hold'; readonly waiting: Waiting };

/** Same content as far as a stat can tell (size, mtime, inode, ctime). */
export function sameCompletionStat(a: CompletionStat, b: CompletionStat): boolean {
  return a.sizeBytes === b.sizeBytes && a.mtimeMs === b.mtimeMs && a.inode === b.inode && a.ctimeNs === b.ctimeNs;
}

/** The later of a stat's mtime and ctime, ms since the epoch. */
export function lastChangeMs(stat: CompletionStat): number {
  return Math.max(stat.mtimeMs, Number(stat.ctimeNs / 1_000_000n));
}

/** How old a file found by a scan must be: a target's quiet_ms is never second-guessed by a rescan. */
export function scanSettleMs(rule: CompletionRule): number {
  return Math.max(rule.settleMs, rule.quietMs);
}

/**
 * Decides what one sighting of a path means, given what was pending before (undefined: nothing).
 * @returns take now, wait until a time, or hold until an event or a scan brings news.
 */
export function decideCompletion(before: Waiting | undefined, sighting: Sighting, rule: CompletionRule): CompletionDecision {
  switch (sighting.kind) {
    case 'finished':
      // A close (rename, link) restarts the quiet period from itself, whatever was pending: never shorter.
      return quietAfter({ evidence: 'finished', since: sighting.at, stat: sighting.stat }, sighting.at, rule);
    case 'writing':
      // The close seen before (if any) is stale: whatever was read of it may be half-written.
      return { action: 'hold', waiting: { evidence: 'writing', since: before?.evidence === 'writing' ? before.since : sighting.at } };
    case 'seen':
      if (before?.evidence === 'finished') {
        // A scan neither shortens nor replaces a close's quiet period; a change since the close (no new
        // close: a SETSTAT, an append) starts the quiet period again from now.
        const waiting = sameCompletionStat(before.stat, sighting.stat) ? before : { ...before, since: sighting.at, stat: sighting.stat };
        return quietAfter(waiting, sighting.at, rule);
      }
      return settled(before, sighting.stat, sighting.at, rule);
  }
}

function quietAfter(waiting: Waiting & { evidence: 'finished' }, at: number, rule: CompletionRule): CompletionDecision {
  const dueAt = waiting.since + rule.quietMs;
  return dueAt <= at ? { action: 'take' } : { action: 'wait', dueAt, waiting };
}

/**
 * The scan rule: due once the mtime and ctime are `scanSettleMs` old; when they are in the future (or the
 * clock went back), `scanSettleMs` after the file was first seen with this stat. A file still written to
 * (evidence 'writing') whose close never comes is taken by the same rule: the settle time is the net.
 */
function settled(before: Waiting | undefined, stat: CompletionStat, at: number, rule: CompletionRule): CompletionDecision {
  const unchanged = before?.evidence === 'scanned' && sameCompletionStat(before.stat, stat);
  const waiting: Waiting = { evidence: 'scanned', since: unchanged ? Math.min(before.since, at) : at, stat };
  const dueAt = Math.min(lastChangeMs(stat), waiting.since) + scanSettleMs(rule);
  return dueAt <= at ? { action: 'take' } : { action: 'wait', dueAt, waiting };
}
