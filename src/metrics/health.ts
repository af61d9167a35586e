import type { WatchHealth } from '../watch/watcher.js';
import type { S3Failure } from './s3-liveness.js';

/** What /healthz looks at. */
export interface HealthInput {
  readonly nowMs: number;
  readonly ledgerOpen: boolean;
  /** When S3 last answered, and the last attempt that got no answer. */
  readonly s3: { readonly lastAnswerAtMs: number | undefined; readonly lastFailure: S3Failure | undefined };
  /** `metrics.s3_stale_seconds`, ms: S3 is unhealthy once its last answer is older than this. */
  readonly s3StaleMs: number;
  /** The watcher's health; undefined until its watches are set up. */
  readonly watch: WatchHealth | undefined;
}

/** The body of /healthz (JSON): `problems` is empty exactly when `status` is `ok`. */
export interface HealthReport {
  readonly status: 'ok' | 'unhealthy';
  readonly problems: readonly string[];
  readonly ledger: 'open' | 'closed';
  readonly s3: { readonly lastAnswerAt: string | null; readonly lastFailure: { kind: string; operation: string; at: string } | null };
  readonly watches: { readonly directoriesWatched: number; readonly unwatched: number; readonly rootsUnwatched: number } | null;
}

/**
 * Healthy when the ledger is open, S3 answered within `s3StaleMs` (any answer below 500: a 404 or a 403 is
 * S3 answering, a timeout or a 503 is not) and every directory of every target is watched. Pure.
 */
export function assessHealth(input: HealthInput): HealthReport {
  const problems: string[] = [];
  if (!input.ledgerOpen) problems.push('ledger: not open');
  const { lastAnswerAtMs, lastFailure } = input.s3;
  const failure = lastFailure && `last failure: ${lastFailure.kind} (${lastFailure.operation}) at ${iso(lastFailure.atMs)}`;
  if (lastAnswerAtMs === undefined) {
    problems.push(`s3: no answer since the service started${failure ? `; ${failure}` : ''}`);
  } else if (input.nowMs - lastAnswerAtMs > input.s3StaleMs) {
    const silentSeconds = Math.round((input.nowMs - lastAnswerAtMs) / 1000);
    problems.push(`s3: no answer for ${silentSeconds} s (limit ${input.s3StaleMs / 1000} s)${failure ? `; ${failure}` : ''}`);
  }
  const watch = input.watch;
  if (!watch) {
    problems.push('watches: not set up yet');
  } else {
    for (const target of watch.targets) {
      if (target.rootLoss) problems.push(`watches: target ${target.target} is not watched (${target.rootLoss.reason})`);
      if (target.unwatchedCount > 0) {
        const codes = [...new Set(target.unwatched.map((dir) => dir.code))].join(', ');
        problems.push(`watches: ${target.unwatchedCount} directories of ${target.target} could not be watched (${codes})`);
      }
    }
  }
  return {
    status: problems.length === 0 ? 'ok' : 'unhealthy',
    problems,
    ledger: input.ledgerOpen ? 'open' : 'closed',
    s3: {
      lastAnswerAt: lastAnswerAtMs === undefined ? null : iso(lastAnswerAtMs),
      lastFailure: lastFailure ? { kind: lastFailure.kind, operation: lastFailure.operation, at: iso(lastFailure.atMs) } : null,
    },
    watches: watch
      ? { directoriesWatched: watch.directoriesWatched, unwatched: watch.unwatchedCount, rootsUnwatched: watch.rootsUnwatched }
      : null,
  };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
