import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { ArchiveRejectedError, describeCause, SftppushError } from '../errors.js';
import type { SourceFile } from '../source/source-fs.js';
import type { ArchiveFormat } from './classify.js';
import { ExtractionBudget, type ArchiveLimits } from './limits.js';
import { memberPath } from './member-path.js';
import type { ArchiveEntry } from './readers.js';

/**
 * The readers, with yauzl and tar-stream, loaded when the first archive is read: most runs read none, and
 * every CLI start (a one-shot reconcile, status) would otherwise pay for loading them.
 */
const readers = (): Promise<typeof import('./readers.js')> => import('./readers.js');

/** One member as the validating pass found it: what will be stored, and the hash it must have. */
export interface MemberPlan {
  /** Its path inside the archive, cleaned (member-path.ts): the tail of its key. */
  readonly member: string;
  readonly sha256: string;
  readonly sizeBytes: number;
}

/** The archive held open, as both passes read it. */
export interface ArchiveSource {
  readonly file: SourceFile;
  readonly format: ArchiveFormat;
  readonly sizeBytes: number;
  /** A gz's single member: the file name without `.gz`. */
  readonly gzMemberName: string;
}

/**
 * The validating pass: decompresses every member, hashes it and applies every rule of DESIGN.md's
 * "Archive safety", writing nothing anywhere. Nothing is published from an archive this pass rejects, and
 * every member's sha256 is known before its upload starts. Memory: one chunk, plus one plan per member.
 * @returns the members in archive order (none for an empty archive or one of directories only).
 * @throws ArchiveRejectedError naming the member and the rule; the source's own I/O errors (EIO) as they are.
 */
export async function inspectArchive(source: ArchiveSource, limits: ArchiveLimits): Promise<MemberPlan[]> {
  if (source.format === 'zip') {
    const { assertNoOverlap, zipSpans } = await readers();
    const spans = await rejectingStructure(() => zipSpans(source.file, source.sizeBytes), undefined, source.format);
    // The central directory's own count: a zip declaring a million entries is refused before any inflating.
    if (spans.length > limits.maxMembers) {
      throw new ArchiveRejectedError('max_members', undefined, `${spans.length} entries, over ${limits.maxMembers}`);
    }
    assertNoOverlap(spans);
  }
  const budget = new ExtractionBudget(limits, source.sizeBytes);
  const plans: MemberPlan[] = [];
  const seen = new Set<string>();
  // Behind gzip, what zlib produces is counted (the whole tar, padding and trailing blocks too); a zip's
  // and a plain tar's expansion is its members' bytes.
  const gzipped = source.format === 'gz' || source.format === 'tar.gz';
  let current: string | undefined;
  const onInflated = (bytes: number): void => budget.countExpanded(current, bytes);
  await eachFileEntry(source, onInflated, async (member, entry) => {
    current = member;
    if (seen.has(member)) {
      throw new ArchiveRejectedError('duplicate name', member, 'two members would be one key with two contents');
    }
    seen.add(member);
    budget.countMember(member);
    const hash = createHash('sha256');
    let sizeBytes = 0;
    let crc = 0;
    for await (const chunk of await entry.open()) {
      const bytes = chunk as Buffer;
      sizeBytes += bytes.length;
      budget.countMemberBytes(member, sizeBytes);
      if (!gzipped) budget.countExpanded(member, bytes.length);
      hash.update(bytes);
      if (entry.crc32 !== undefined) crc = crc32(bytes, crc);
    }
    // yauzl checks a zip entry's length, not its CRC (zlib checks gzip's): a bit flipped in stored data.
    if (entry.crc32 !== undefined && crc !== entry.crc32) {
      throw new ArchiveRejectedError('crc', member, `content CRC-32 ${hex(crc)}, the zip declares ${hex(entry.crc32)}`);
    }
    plans.push({ member, sha256: hash.digest('hex'), sizeBytes });
  });
  return plans;
}

/**
 * Calls `visit` for every file member in archive order, with its cleaned path (and `onInflated` for every
 * chunk a gzip stream produces); directories and metadata
 * entries are passed over, a rejected entry (a link, a device, an encrypted member) throws. `visit` must
 * read the entry to its end or skip it. The reader is closed however the walk ends.
 * @throws ArchiveRejectedError (a structure error names the member being read); I/O errors as they are.
 */
export async function eachFileEntry(
  source: ArchiveSource,
  onInflated: ((bytes: number) => void) | undefined,
  visit: (member: string, entry: ArchiveEntry) => Promise<void>,
): Promise<void> {
  const { openArchive } = await readers();
  const reader = await rejectingStructure(
    () => openArchive(source.file, source.format, source.sizeBytes, source.gzMemberName, onInflated),
    undefined,
    source.format,
  );
  let current: string | undefined;
  try {
    await rejectingStructure(
      async () => {
        for await (const entry of reader) {
          current = entry.name;
          if (entry.kind === 'rejected') throw new ArchiveRejectedError(entry.rule ?? 'unsupported entry', entry.name, 'never extracted');
          const member = memberPath(entry.name);
          if (entry.kind !== 'file') {
            entry.skip();
            continue;
          }
          if (member === '') throw new ArchiveRejectedError('empty name', entry.name, 'a file named only by "." and "/"');
          current = member;
          await visit(member, entry);
        }
      },
      () => current,
      source.format,
    );
  } finally {
    reader.close();
  }
}

/** Reads a member whole (it is at most the multipart threshold): the bytes hashed are the bytes sent. */
export async function readWhole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Runs `step`, turning an archive library's error (yauzl, tar-stream, zlib) into a rejection naming the
 * member being read; the visitor's own errors stay what they are. A system call's error (EIO, ENOENT: it has a `syscall`) is the disk's, not the
 * archive's: it stays as it is, to be retried.
 */
async function rejectingStructure<T>(
  step: () => Promise<T>,
  member: (() => string | undefined) | undefined,
  format: ArchiveFormat,
): Promise<T> {
  try {
    return await step();
  } catch (error) {
    // Our own errors (a rejection, S3's answer to a member's upload, a change seen) pass as they are.
    if (error instanceof SftppushError || (error as { syscall?: unknown } | null)?.syscall !== undefined) throw error;
    throw new ArchiveRejectedError(structureRule(error, format), member?.(), describeCause(error));
  }
}

/** The rule an operator reads for a library's structure error, from its message (none has a stable code). */
function structureRule(error: unknown, format: ArchiveFormat): string {
  const message = error instanceof Error ? error.message : String(error);
  // A zip cut short loses its end of central directory record first.
  if (/unexpected end|truncated|premature close|end of central directory record signature not found/i.test(message)) return 'truncated';
  if (/incorrect data check|crc/i.test(message)) return 'crc';
  if (/expected \d+\. got|too many bytes|too few bytes|exceeds|size/i.test(message)) return 'declared size';
  // zlib reads on after a gzip member's trailer: what follows must be another member, and is not.
  if ((format === 'gz' || format === 'tar.gz') && /incorrect header check|unknown compression method/i.test(message)) {
    return 'trailing bytes';
  }
  return `${format} structure`;
}

function hex(value: number): string {
  return value.toString(16).padStart(8, '0');
}
