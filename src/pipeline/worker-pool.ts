import type { Logger } from 'pino';
import { LedgerConflictError, type ClaimedFile, type Ledger } from '../ledger/ledger.js';
import type { Checkpoint } from '../kill-points.js';
import type { ArchiveOutcome } from './archive-file.js';

export interface WorkerPoolDeps {
  readonly ledger: Pick<Ledger, 'claimBatch' | 'requeue' | 'nextRetryAt' | 'hasClaimableWork'>;
  /**
   * Archives a claim and records its outcome. Throws only when the process cannot go on (the ledger
   * failed, or S3 refuses the configuration): the pool stops.
   */
  readonly archive: (claim: ClaimedFile) => Promise<ArchiveOutcome>;
  readonly log: Logger;
  readonly now: () => number;
  /** Identifies this process's claims, so crash recovery leaves a live process's rows alone. */
  readonly owner: string;
  readonly concurrency: number;
  /** The ledger itself failed (disk full, corrupt), or S3 refused the configuration: the service must stop rather than spin. */
  readonly onFatal: (error: unknown) => void;
  /** Named instants a crash test may kill the process at (kill-points.ts); a no-op in production. */
  readonly checkpoint?: Checkpoint;
}

/** Longest idle sleep: rows another process (a `reconcile` command) queued are noticed within this. */
const IDLE_POLL_MS = 2000;

/**
 * `concurrency` loops that claim from the ledger and archive. Work reaches them only through the ledger;
 * `wake()` is just a hint that saves them a poll interval.
 */
export class WorkerPool {
  private stopping = false;
  private loops: Promise<void>[] = [];
  private inFlight = 0;
  private sleepers: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Rows claimed in a batch that no worker has started yet (claiming syncs the ledger to disk: once per batch). */
  private claimed: ClaimedFile[] = [];

  constructor(private readonly deps: WorkerPoolDeps) {}

  start(): void {
    this.loops = Array.from({ length: this.deps.concurrency }, (_, index) => this.runLoop(index));
  }

  /** New work may be claimable. */
  wake(): void {
    for (const sleeper of [...this.sleepers]) sleeper();
  }

  /**
   * Resolves once nothing is claimable and no worker holds a file (retries not yet due are left), or once
   * the pool has stopped: after a fatal error nobody will claim what is left.
   */
  async drained(): Promise<void> {
    while (this.inFlight > 0 || (!this.stopping && (this.claimed.length > 0 || this.deps.ledger.hasClaimableWork()))) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  /** Stops claiming, waits for the files in hand to finish, and gives back the rows claimed but not started. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await Promise.all(this.loops);
    try {
      for (const claim of this.claimed.splice(0)) this.deps.ledger.requeue(claim, 'claimed, not started: the service stopped', this.deps.now());
    } catch (error) {
      // The ledger failed: the rows stay `working` under this owner, and the next start recovers them.
      this.deps.log.error({ error }, 'could not give back rows claimed but not started');
    }
  }

  /** Whether the pool stopped claiming (stop(), or a fatal error): nothing more gets archived here. */
  get stopped(): boolean {
    return this.stopping;
  }

  get busy(): number {
    return this.inFlight;
  }

  private async runLoop(index: number): Promise<void> {
    while (!this.stopping) {
      let claim: ClaimedFile | undefined;
      try {
        claim = this.nextClaim();
        if (!claim) {
          this.notifyIdle();
          await this.sleep();
          continue;
        }
        this.inFlight += 1;
        this.deps.checkpoint?.('after-claim');
        await this.deps.archive(claim);
      } catch (error) {
        if (error instanceof LedgerConflictError) {
          // Rows are recovered only from owners proven gone, so this is a hand in the ledger or a defect:
          // whoever holds the row now owns its outcome, and our write was refused, never applied.
          this.deps.log.error({ worker: index, error: error.message }, 'row no longer held by this worker: outcome not recorded');
          continue;
        }
        this.deps.log.fatal({ worker: index, error }, 'cannot go on: stopping');
        if (!this.stopping) this.deps.onFatal(error);
        this.stopping = true;
        this.wake();
      } finally {
        if (claim) this.inFlight -= 1;
      }
    }
    this.notifyIdle();
  }

  /** The next row claimed in a batch, claiming a new batch (as many rows as there are workers) when none is left. */
  private nextClaim(): ClaimedFile | undefined {
    if (this.claimed.length === 0) {
      this.claimed = this.deps.ledger.claimBatch(this.deps.owner, this.deps.concurrency);
      // The rest of the batch is for the workers asleep.
      if (this.claimed.length > 1) this.wake();
    }
    return this.claimed.shift();
  }

  private notifyIdle(): void {
    if (this.inFlight === 0) for (const waiter of this.idleWaiters.splice(0)) waiter();
  }

  private async sleep(): Promise<void> {
    const retryAt = this.deps.ledger.nextRetryAt();
    const untilRetry = retryAt === undefined ? IDLE_POLL_MS : Math.max(10, retryAt - this.deps.now());
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.sleepers = this.sleepers.filter((sleeper) => sleeper !== done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(untilRetry, IDLE_POLL_MS));
      this.sleepers.push(done);
    });
  }
}
