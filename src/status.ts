import type { FileRow, FileStory, StatusSummary } from './ledger/ledger.js';
import { FILE_STATES } from './ledger/states.js';
import type { WatchHealth } from './watch/watcher.js';

/** Human-readable renderings of what `status` reads from the ledger. Pure: strings in, strings out. */
export function formatSummary(summary: StatusSummary): string {
  const width = Math.max(...FILE_STATES.map((s) => s.length));
  const lines = FILE_STATES.map((state) => `${state.padEnd(width)}  ${summary.counts[state]}`);
  lines.push(`oldest pending: ${summary.oldestPendingSeconds} s`);
  lines.push(`last reconcile: ${summary.lastReconcile ?? 'never'}`);
  lines.push(...formatWatchHealth(summary.watch));
  return lines.join('\n');
}

/** The watcher's health as `watch` recorded it (the shape of Watcher.health()); nothing before the first pass. */
function formatWatchHealth(watch: unknown): string[] {
  const health = watch as Partial<WatchHealth> | null;
  if (!health?.targets) return [];
  const lines = [
    `watched directories: ${health.directoriesWatched ?? 0}, not watched: ${health.unwatchedCount ?? 0}` +
      `, last overflow: ${health.lastOverflowAtMs ? new Date(health.lastOverflowAtMs).toISOString() : 'never'}`,
  ];
  for (const target of health.targets) {
    if (target.rootLoss) lines.push(`  ${target.target}: NOT WATCHED (${target.rootLoss.reason} since ${new Date(target.rootLoss.sinceMs).toISOString()})`);
    for (const dir of target.unwatched.slice(0, 10)) lines.push(`  ${target.target}/${dir.relDir}: not watched (${dir.code})`);
  }
  return lines;
}

export function formatFailures(rows: readonly FileRow[]): string {
  if (rows.length === 0) return 'no files retrying, quarantined or gone';
  return rows
    .map((row) => `${row.state.padEnd(11)} ${row.target}/${row.relPath}  attempts=${row.attempts}  ${row.lastError ?? ''}`)
    .join('\n');
}

export function formatStory(story: FileStory): string {
  if (story.generations.length === 0) return 'no such file in the ledger';
  const lines: string[] = [];
  for (const generation of story.generations) {
    lines.push(
      `${generation.target}/${generation.relPath} generation ${generation.generation}: ${generation.state}` +
        ` (${generation.sizeBytes} bytes, sha256 ${generation.sha256 ?? 'unknown'}, attempts ${generation.attempts})`,
    );
    if (generation.lastError) lines.push(`  last error: ${generation.lastError}`);
    for (const h of story.history.filter((entry) => entry.fileId === generation.id)) {
      lines.push(`  ${new Date(h.at).toISOString()}  ${h.fromState ?? '-'} -> ${h.toState}  ${h.detail ?? ''}`);
    }
    for (const o of story.objects.filter((entry) => entry.fileId === generation.id)) {
      lines.push(`  object s3://${o.bucket}/${o.key} version ${o.versionId ?? '-'} etag ${o.etag ?? '-'}`);
    }
  }
  return lines.join('\n');
}
