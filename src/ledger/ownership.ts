/**
 * Who holds a `working` row, and when its rows may be taken back. Pure: the facts about processes come in
 * through a `ProcessProbe`, so every rule is tested in milliseconds.
 *
 * An owner is `pid:<pid>:<start ticks>:<role>`: the pid with the process's start time (field 22 of
 * /proc/PID/stat) names one process even after its pid is reused; `?` when the start time could not be read.
 * Rows written before roles existed carry `pid:<pid>:<ticks>`.
 */
export type OwnerRole = 'watch' | 'reconcile';

export interface Owner {
  readonly pid: number;
  /** Undefined when it could not be read (`?`). */
  readonly startTicks: string | undefined;
  /** Undefined for owners written before roles were recorded. */
  readonly role: OwnerRole | undefined;
}

export function formatOwner(pid: number, startTicks: string | undefined, role: OwnerRole): string {
  return `pid:${pid}:${startTicks ?? '?'}:${role}`;
}

/** @returns undefined for a string that is not an owner (an operator's hand in the ledger). */
export function parseOwner(owner: string): Owner | undefined {
  const match = /^pid:(\d+):([^:\s]+)(?::(watch|reconcile))?$/.exec(owner);
  if (!match) return undefined;
  return { pid: Number(match[1]), startTicks: match[2] === '?' ? undefined : match[2], role: match[3] as OwnerRole | undefined };
}

/** What the deciding process can find out about other processes. */
export interface ProcessProbe {
  /** The deciding process's own owner string. */
  readonly self: string;
  /** The start ticks of a running pid; undefined when there is no such process or it cannot be read. */
  startTicks(pid: number): string | undefined;
  /** Whether some process has this pid (kill(pid, 0) did not answer ESRCH). */
  pidExists(pid: number): boolean;
  /**
   * Whether a `watch` other than the deciding process holds the ledger's instance lock. The kernel releases
   * it when its holder dies, whatever the pid namespace, so for a watch's rows it is the truth.
   */
  otherWatchHoldsLock(): boolean;
}

/**
 * Whether a row's owner may still be working on it. Answers true whenever the owner cannot be proven gone:
 * taking a live process's row uploads the same content twice.
 */
export function isOwnerAlive(owner: string, probe: ProcessProbe): boolean {
  if (owner === probe.self) return true;
  const parsed = parseOwner(owner);
  if (!parsed) return false; // not written by sftppush: nobody will ever finish it
  // The instance lock says whether any watch runs, even one in another pid namespace sharing the ledger.
  if (parsed.role === 'watch') return probe.otherWatchHoldsLock();
  const running = probe.startTicks(parsed.pid);
  if (running !== undefined && parsed.startTicks !== undefined) return running === parsed.startTicks;
  // A start time is unreadable (hidepid, another user): only a pid that no longer exists proves it gone.
  return probe.pidExists(parsed.pid);
}
