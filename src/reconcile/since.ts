import { ConfigError } from '../errors.js';

const SPAN = /^(\d+)(m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * Parses `reconcile --since WHEN`: an ISO 8601 date or date-time (`2026-11-01`, `2026-11-01T06:00:00Z`;
 * without a zone it is local time, as `date` prints it), or a span back from `nowMs` (`90m`, `6h`, `7d`, `2w`).
 * @returns the earliest mtime in scope, ms since the epoch.
 * @throws ConfigError naming the flag and showing good examples (exit 2).
 */
export function parseSince(when: string, nowMs: number): number {
  // RFC 3339 allows a lowercase `t` and `z`; Date.parse and the pattern below take the uppercase ones.
  const text = when.trim().replace(/^(\d{4}-\d{2}-\d{2})t/, '$1T').replace(/z$/, 'Z');
  const span = SPAN.exec(text);
  if (span) return nowMs - Number(span[1]) * UNIT_MS[span[2]!]!;
  // Date.parse takes many loose forms; only ISO 8601 dates are accepted, so a typo is never a silent scope.
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
    const at = Date.parse(dateOnly ? `${text}T00:00:00` : text.replace(' ', 'T'));
    if (!Number.isNaN(at) && isCalendarDate(text.slice(0, 10))) return at;
  }
  throw new ConfigError(
    `--since ${JSON.stringify(when)}: not a date or a span; use e.g. --since 2026-11-01, --since 2026-11-01T06:00:00Z, --since 90m, 6h, 7d or 2w`,
  );
}

/** Date.parse rolls 2026-02-30 over to March 2: a day that does not exist is a typo, not a scope. */
function isCalendarDate(ymd: string): boolean {
  const [year, month, day] = ymd.split('-').map(Number) as [number, number, number];
  const date = new Date(Date.UTC(year, month - 1, day));
  return date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day;
}
