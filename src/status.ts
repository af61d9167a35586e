import type { FileRow, FileStory, ReconcilePass, StatusSummary } from './ledger/ledger.js';
import { FILE_STATES } from './ledger/states.js';
import type { ReconcileSummary } from './reconcile/summary.js';
import type { WatchHealth } from './watch/watcher.js';

/** Human-readable renderings of what `status` reads from the ledger. Pure: strings in, strings out. */
export function formatSummary(summary: StatusSummary): string {
  const width = Math.max(...FILE_STATES.map((s) => s.length));
  const lines = FILE_STATES.map((state) => `${state.padEnd(width)}  ${summary.counts[state]}`);
  lines.push(`oldest pending: ${summary.oldestPendingSeconds} s`);
  lines.push(`last reconcile: ${summary.lastReconcile ?? 'never'}`);
  if (summary.lastFullPass) lines.push(`last full pass: ${formatPass(summary.lastFullPass)}`);
  if (summary.lastPartialPass) lines.push(`last partial pass: ${formatPass(summary.lastPartialPass)}`);
  if (summary.lastFailedPass) {
    const failed = summary.lastFailedPass;
    lines.push(`LAST PASS FAILED: ${failed.finishedAt} (${failed.reason}): ${escapeControl(failed.error)}`);
  }
  lines.push(...formatWatchHealth(summary.watch));
  return lines.join('\n');
}

function formatPass(pass: ReconcilePass): string {
  const scope = pass.scope;
  const limits = [
    scope?.since ? `since ${scope.since}` : '',
    scope?.verify ? 'verify' : '',
    scope?.dryRun ? 'dry run' : '',
  ].filter(Boolean);
  const counts = pass.counts ? `, ${pass.counts.filesSeen ?? 0} scanned, ${pass.counts.filesQueued ?? 0} queued` : '';
  return `${pass.finishedAt} (${pass.reason}${limits.length > 0 ? `: ${limits.join(', ')}` : ''}${counts})`;
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
      const what = o.member === null ? 'object' : `member ${o.member} ->`;
      lines.push(`  ${what} s3://${o.bucket}/${o.key} ${o.sizeBytes} bytes version ${o.versionId ?? '-'} etag ${o.etag ?? '-'}`);
    }
  }
  return lines.join('\n');
}

/** The result of `sftppush reconcile`, for a person: one summary line, then what needs attention. */
export function formatReconcileSummary(summary: ReconcileSummary): string {
  const c = summary.counts;
  const scope = [
    summary.scope.since ? `since ${summary.scope.since}` : 'all files',
    summary.scope.verify ? 'verified' : '',
    summary.scope.dryRun ? 'DRY RUN (nothing written)' : '',
  ].filter(Boolean).join(', ');
  const lines = [
    `reconcile (${scope}): ${c.scanned} scanned in ${c.dirsScanned} directories, ${c.inScope} in scope, ${c.alreadyArchived} already archived, ` +
      `${c.queued} ${summary.scope.dryRun ? 'would be queued' : 'queued'}, ${c.uploaded} uploaded (${c.bytesUploaded} bytes), ${c.duplicates} duplicates, ` +
      `${c.waiting} ${summary.scope.dryRun ? 'not settled yet' : 'waited for'}` +
      (summary.scope.verify ? `, ${c.verified} verified, ${summary.verifyFindings.length} missing or replaced in S3` : '') +
      `, ${c.failed} not archived` +
      (c.dirsUnreadable + c.entriesSkipped > 0 ? `, ${c.dirsUnreadable} unreadable directories, ${c.entriesSkipped} entries skipped (see the log)` : '') +
      `, in ${(summary.durationMs / 1000).toFixed(1)} s`,
  ];
  for (const f of summary.verifyFindings) {
    lines.push(`  ${f.reason}: ${f.target}/${escapeControl(f.path)} (s3 key ${escapeControl(f.key)})${summary.scope.dryRun ? '' : ': uploaded again'}`);
  }
  for (const u of summary.unfinished) {
    lines.push(`  ${u.state}: ${u.target}/${escapeControl(u.path)}${u.error ? `  ${u.error}` : ''}`);
  }
  return lines.join('\n');
}

/** Names may hold control characters (an SFTP user can make them): never let them reach a terminal raw. */
function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
