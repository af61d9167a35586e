import type {
  FailedAfterAction,
  FileRow,
  FileStory,
  ReconcilePass,
  ScanSkipKind,
  ScanSkipRow,
  ScanSkips,
  StateCounts,
  StatusSummary,
} from './ledger/reader.js';
import { FILE_STATES } from './ledger/states.js';
import type { ReconcileSummary } from './reconcile/summary.js';
import type { WatchHealth } from './watch/watcher.js';

/** Human-readable renderings of what `status` reads from the ledger. Pure: strings in, strings out. */
export function formatSummary(summary: StatusSummary): string {
  const lines = formatCounts(summary);
  const oldest = summary.backlog.oldest;
  lines.push(
    `backlog: ${summary.backlog.files} files` +
      (oldest ? `, oldest pending ${summary.oldestPendingSeconds} s: ${escapeControl(`${oldest.target}/${oldest.relPath}`)} (since ${oldest.since})` : ''),
  );
  lines.push(`last full pass: ${summary.lastFullPass ? formatPass(summary.lastFullPass) : 'never'}`);
  lines.push(`last partial pass: ${summary.lastPartialPass ? formatPass(summary.lastPartialPass) : 'never'}`);
  if (summary.lastFailedPass) {
    const failed = summary.lastFailedPass;
    lines.push(`LAST PASS FAILED: ${failed.finishedAt} (${failed.reason}): ${escapeControl(failed.error)}`);
  }
  lines.push(...formatWatchHealth(summary.watch, summary.watchRecordedAt));
  if (summary.afterActionsFailed > 0) {
    lines.push(`after-archive actions failed: ${summary.afterActionsFailed} (sources kept, tried again at every pass: status --failed)`);
  }
  lines.push(...formatScanSkips(summary.scanSkips, 'all: status --failed'));
  if (summary.lastErrors.length > 0) {
    lines.push('last errors (all: status --failed):');
    lines.push(...summary.lastErrors.map((row) => `  ${formatFailure(row)}`));
  }
  return lines.join('\n');
}

/** Generations per state and target, right-aligned, with a total row. */
function formatCounts(summary: StatusSummary): string[] {
  const rows: [string, StateCounts][] = [...summary.targets.map((t): [string, StateCounts] => [escapeControl(t.target), t.counts]), ['total', summary.counts]];
  const firstWidth = Math.max('target'.length, ...rows.map(([name]) => name.length));
  const widths = FILE_STATES.map((state) => Math.max(state.length, ...rows.map(([, counts]) => String(counts[state]).length)));
  const line = (first: string, cells: readonly string[]) =>
    [first.padEnd(firstWidth), ...cells.map((cell, i) => cell.padStart(widths[i]!))].join('  ').trimEnd();
  return [line('target', FILE_STATES), ...rows.map(([name, counts]) => line(name, FILE_STATES.map((state) => String(counts[state]))))];
}

function formatPass(pass: ReconcilePass): string {
  const scope = pass.scope;
  const limits = [
    scope?.since ? `since ${scope.since}` : '',
    scope?.targets && scope.partial ? scope.targets.map(escapeControl).join(', ') : '',
    scope?.verify ? 'verify' : '',
    scope?.dryRun ? 'dry run' : '',
  ].filter(Boolean);
  const skipped = (pass.counts?.dirsUnreadable ?? 0) + (pass.counts?.entriesSkipped ?? 0) > 0
    ? `, ${pass.counts?.dirsUnreadable ?? 0} unreadable directories, ${pass.counts?.entriesSkipped ?? 0} entries skipped`
    : '';
  const counts = pass.counts ? `, ${pass.counts.filesSeen ?? 0} scanned, ${pass.counts.filesQueued ?? 0} queued${skipped}` : '';
  return `${pass.finishedAt} (${pass.reason}${limits.length > 0 ? `: ${limits.join(', ')}` : ''}${counts})`;
}

/** How many unwatched directories of a target the summary names. */
const UNWATCHED_SHOWN = 10;

/** The watcher's health as `watch` recorded it (the shape of Watcher.health()); nothing before the first pass. */
function formatWatchHealth(watch: unknown, recordedAt: string | null): string[] {
  const health = watch as Partial<WatchHealth> | null;
  if (!health?.targets) return ['watch: no health recorded yet (the service records it after each pass)'];
  const lines = [
    `watch (as of ${recordedAt ?? 'unknown'}): ${health.directoriesWatched ?? 0} directories watched, ${health.unwatchedCount ?? 0} not watched` +
      `, last inotify overflow: ${health.lastOverflowAtMs ? new Date(health.lastOverflowAtMs).toISOString() : 'never'}`,
  ];
  for (const target of health.targets) {
    const name = escapeControl(target.target);
    if (target.rootLoss) lines.push(`  ${name}: NOT WATCHED (${escapeControl(target.rootLoss.reason)} since ${new Date(target.rootLoss.sinceMs).toISOString()})`);
    for (const dir of target.unwatched.slice(0, UNWATCHED_SHOWN)) lines.push(`  ${name}/${escapeControl(dir.relDir)}: not watched (${escapeControl(dir.code)})`);
    const more = target.unwatchedCount - Math.min(target.unwatched.length, UNWATCHED_SHOWN);
    if (more > 0) lines.push(`  ${name}: ${more} more directories not watched`);
  }
  return lines;
}

const SKIP_KINDS: Record<ScanSkipKind, string> = {
  'unreadable-directory': 'unreadable directory',
  'invalid-name': 'name not UTF-8',
  'unstatable-file': 'cannot stat',
};

/**
 * What the passes skipped, and so could not archive: counts by kind, then each row listed (the latest first).
 * Nothing at all when there is nothing: the common case stays one line shorter. `more` says where the rest is.
 */
export function formatScanSkips(skips: ScanSkips, more: string): string[] {
  const total = Object.values(skips.counts).reduce((sum, n) => sum + n, 0);
  if (total === 0) return [];
  const lines = [
    `scan skips (not archived until fixed; the next pass clears what it can read again): ${skips.counts['unreadable-directory']} unreadable directories, ` +
      `${skips.counts['invalid-name']} names not UTF-8, ${skips.counts['unstatable-file']} files that cannot be stat-ed`,
  ];
  for (const row of skips.rows) lines.push(`  ${formatSkip(row)}`);
  if (total > skips.rows.length) lines.push(`  (${total - skips.rows.length} more: ${more})`);
  return lines;
}

/** One skip: its kind, where, and why (the errno, or a name's bytes shown escaped). */
export function formatSkip(skip: Pick<ScanSkipRow, 'target' | 'path' | 'kind' | 'code' | 'nameHex'>): string {
  const where = escapeControl(skip.path === '' ? skip.target : `${skip.target}/${skip.path}`);
  const name = skip.nameHex === null ? '' : `/${escapeNameBytes(Buffer.from(skip.nameHex, 'hex'))}`;
  return `${SKIP_KINDS[skip.kind].padEnd(20)} ${where}${name}${skip.code === null ? '' : `  ${escapeControl(skip.code)}`}`;
}

/**
 * A name that is not valid UTF-8, shown as escapeControl shows text: printable ASCII as is, a backslash
 * doubled, every other byte `\xNN` (so the bytes can be told apart, and typed back with $'...').
 */
function escapeNameBytes(bytes: Buffer): string {
  let text = '';
  for (const byte of bytes) {
    if (byte === 0x5c) text += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return text;
}

/**
 * `status --failed`: each row retrying, quarantined or gone with its reason, latest first; `counts` says how
 * many there are in all, when the list is cut short.
 */
export function formatFailures(rows: readonly FileRow[], counts: StateCounts, afterActions: readonly FailedAfterAction[] = [], afterActionsFailed = 0): string {
  const lines = rows.length === 0 ? ['no files retrying, quarantined or gone'] : rows.map(formatFailure);
  const total = counts.retry + counts.quarantined + counts.gone;
  if (total > rows.length) lines.push(`(the latest ${rows.length} of ${total}: ${counts.retry} retrying, ${counts.quarantined} quarantined, ${counts.gone} gone)`);
  for (const action of afterActions) {
    lines.push(
      `${'after'.padEnd(11)} ${escapeControl(`${action.target}/${action.relPath}`)}  generation=${action.generation}` +
        `  failed ${action.failedAt}  ${escapeControl(action.detail)}  (tried again at every pass)`,
    );
  }
  if (afterActionsFailed > afterActions.length) lines.push(`(the latest ${afterActions.length} of ${afterActionsFailed} failed after-archive actions)`);
  return lines.join('\n');
}

function formatFailure(row: FileRow): string {
  const next = row.state === 'retry' && row.nextAttemptAt !== null ? `  next try ${new Date(row.nextAttemptAt).toISOString()}` : '';
  return (
    `${row.state.padEnd(11)} ${escapeControl(`${row.target}/${row.relPath}`)}  attempts=${row.attempts}` +
    `  since ${new Date(row.updatedAt).toISOString()}${next}  ${escapeControl(row.lastError ?? '')}`
  ).trimEnd();
}

export function formatStory(story: FileStory): string {
  const lines: string[] = [];
  for (const generation of story.generations) {
    const original = story.generations.find((g) => g.id === generation.duplicateOf);
    lines.push(
      `${escapeControl(`${generation.target}/${generation.relPath}`)} generation ${generation.generation}: ${generation.state}` +
        ` since ${new Date(generation.updatedAt).toISOString()}` +
        ` (${generation.sizeBytes} bytes, sha256 ${generation.sha256 ?? 'unknown'}, attempts ${generation.attempts}` +
        `${original ? `, same content as generation ${original.generation}` : ''})`,
    );
    if (generation.lastError) lines.push(`  last error: ${escapeControl(generation.lastError)}`);
    const history = story.history.filter((entry) => entry.fileId === generation.id);
    if (history.length === 0) lines.push('  (no transitions kept: history older than ledger.history_days is pruned)');
    for (const h of history) {
      lines.push(`  ${new Date(h.at).toISOString()}  ${h.fromState ?? '-'} -> ${h.toState}  ${escapeControl(h.detail ?? '')}`.trimEnd());
    }
    for (const o of story.objects.filter((entry) => entry.fileId === generation.id)) {
      const what = o.member === null ? 'object' : `member ${escapeControl(o.member)} ->`;
      lines.push(
        `  ${what} s3://${escapeControl(`${o.bucket}/${o.key}`)} ${o.sizeBytes} bytes version ${o.versionId ?? '-'} etag ${o.etag ?? '-'} sha256 ${o.sha256}`,
      );
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
      `${c.queued} ${summary.scope.dryRun ? 'would be queued' : 'queued'}` +
      (c.resumed > 0 ? `, ${c.resumed} queued already${summary.scope.dryRun ? ' (would be uploaded)' : ''}` : '') +
      (c.byOthers > 0 ? `, ${c.byOthers} being archived by another sftppush process` : '') +
      `, ${c.uploaded} uploaded (${c.bytesUploaded} bytes), ${c.duplicates} duplicates, ` +
      `${c.waiting} ${summary.scope.dryRun ? 'not settled yet' : 'waited for'}` +
      (summary.scope.verify ? `, ${c.verified} verified, ${summary.verifyFindings.length} missing or replaced in S3` : '') +
      `, ${c.failed} not archived` +
      (c.failed > 0 ? ` (${c.retrying} retrying, ${c.quarantined} quarantined, ${c.gone} gone)` : '') +
      (c.dirsUnreadable + c.entriesSkipped > 0 ? `, ${c.dirsUnreadable} unreadable directories, ${c.entriesSkipped} entries skipped` : '') +
      `, in ${(summary.durationMs / 1000).toFixed(1)} s`,
  ];
  for (const file of summary.planned?.files ?? []) {
    const action = { queue: 'would queue', wait: 'would wait for (not settled yet)', upload: 'would upload (queued already)' }[file.action];
    lines.push(`  ${action}: ${escapeControl(`${file.target}/${file.path}`)}`);
  }
  if (summary.planned && summary.planned.more > 0) lines.push(`  (${summary.planned.more} more files to queue or wait for, not listed)`);
  for (const f of summary.verifyFindings) {
    lines.push(`  ${f.reason}: ${escapeControl(`${f.target}/${f.path}`)} (s3 key ${escapeControl(f.key)})${summary.scope.dryRun ? '' : ': uploaded again'}`);
  }
  for (const u of summary.unfinished) {
    lines.push(`  ${u.state}: ${escapeControl(`${u.target}/${u.path}`)}${u.error ? `  ${escapeControl(u.error)}` : ''}`);
  }
  if (summary.unfinishedMore > 0) lines.push(`  (${summary.unfinishedMore} more not archived, not listed)`);
  for (const skip of summary.skipped.listed) lines.push(`  skipped: ${formatSkip(skip)}`);
  if (summary.skipped.more > 0) lines.push(`  (${summary.skipped.more} more skipped, not listed)`);
  return lines.join('\n');
}

/**
 * Names may hold control characters (an SFTP user can make them): never let them reach a terminal raw. C0, DEL
 * and C1 controls become `\xNN`, the bidirectional overrides that reorder what a terminal shows `\u{NNNN}`, and
 * a backslash is doubled so that an escape can never be mistaken for a name that spells one.
 */
export function escapeControl(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\\') return '\\\\';
    return code > 0xff ? `\\u{${code.toString(16)}}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}
