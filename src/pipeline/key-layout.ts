import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type { ArchiveFormat } from '../extract/classify.js';
import { SftppushError } from '../errors.js';

/** S3's limit on a key's UTF-8 length. */
export const MAX_KEY_BYTES = 1024;

export class KeyLayoutError extends SftppushError {
  constructor(message: string) {
    super('E_KEY_LAYOUT', message);
  }
}

/**
 * The object key for a plain file: `{prefix}{relative path}` (DESIGN.md, "S3 key layout"). Pure.
 * @throws KeyLayoutError when the key cannot exist in S3 (too long, or a segment S3 tools mishandle).
 */
export function objectKeyFor(prefix: string, relPath: string): string {
  if (relPath === '' || relPath.startsWith('/') || relPath.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new KeyLayoutError(`${JSON.stringify(relPath)}: not a clean relative path`);
  }
  const key = `${prefix}${relPath}`;
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new KeyLayoutError(`${relPath}: S3 key would be ${bytes} bytes, over S3's limit of ${MAX_KEY_BYTES}`);
  }
  return key;
}

/**
 * The key of an archive's member (DESIGN.md, "S3 key layout"): `{prefix}{dir}/{stem}/{member}`, the stem
 * being the archive's name without its extension (`e.tar.gz` -> `e`); a gz's one member takes the stem's
 * place (`d.csv.gz` -> `{prefix}{dir}/d.csv`). Pure. @throws KeyLayoutError as objectKeyFor does.
 */
export function memberKeyFor(prefix: string, relPath: string, format: ArchiveFormat, member: string): string {
  const slash = relPath.lastIndexOf('/');
  const dir = relPath.slice(0, slash + 1);
  if (format === 'gz') return objectKeyFor(prefix, `${dir}${member}`);
  return objectKeyFor(prefix, `${dir}${archiveStem(relPath.slice(slash + 1), format)}/${member}`);
}

/**
 * A file name without its archive extension: `e.zip` -> `e`, `e.tgz` -> `e`, `d.csv.gz` -> `d.csv` (a gz
 * named `.tgz` that holds no tar: `x.tar`, as gunzip names it). A name
 * without one (a zip named `data`), or nothing but one (`.zip`), stays whole. Pure.
 */
export function archiveStem(fileName: string, format: ArchiveFormat): string {
  const lower = fileName.toLowerCase();
  // A gzip named `.tgz` whose content is no tar is still named as gunzip names it: `x.tgz` -> `x.tar`.
  if (format === 'gz' && lower.endsWith('.tgz') && lower.length > 4) return `${fileName.slice(0, -4)}.tar`;
  const suffix = STEM_SUFFIXES[format].find((s) => lower.endsWith(s) && lower.length > s.length);
  return suffix ? fileName.slice(0, -suffix.length) : fileName;
}

const STEM_SUFFIXES: Record<ArchiveFormat, readonly string[]> = {
  zip: ['.zip'],
  tar: ['.tar'],
  'tar.gz': ['.tar.gz', '.tgz', '.gz'],
  gz: ['.gz'],
};

/**
 * Where a quarantined file's original bytes go: `{quarantine_prefix}{relative path}`; when that key would
 * be over S3's limit (the very reason some files are quarantined), `{quarantine_prefix}long-names/{sha256
 * of the path}`, the ledger row naming the path. Pure.
 */
export function quarantineKeyFor(quarantinePrefix: string, relPath: string): string {
  try {
    return objectKeyFor(quarantinePrefix, relPath);
  } catch {
    return `${quarantinePrefix}long-names/${createHash('sha256').update(relPath).digest('hex')}`;
  }
}

/** mime-types' lookup, loaded by the first upload: its database costs every CLI start 20 ms of CPU otherwise. */
let mimeLookup: typeof import('mime-types').lookup | undefined;

/**
 * The Content-Type an object is served with, by the extension of its key's last segment (`x.csv` is
 * `text/csv`), from the mime-types database; `application/octet-stream` when it names none. Pure.
 */
export function contentTypeFor(key: string): string {
  mimeLookup ??= (createRequire(import.meta.url)('mime-types') as typeof import('mime-types')).lookup;
  return mimeLookup(key.slice(key.lastIndexOf('/') + 1)) || 'application/octet-stream';
}

/** The metadata every object carries (DESIGN.md); values are ASCII-safe because HTTP headers must be. */
export function objectMetadata(source: {
  relPath: string;
  sha256: string;
  sourceSha256: string;
  mtimeMs: number;
  /** An archive member's path inside the archive. */
  member?: string | undefined;
}): Record<string, string> {
  const encodedSource = encodeURI(source.relPath);
  const withSource = encodedSource.length <= MAX_SOURCE_METADATA_CHARS;
  const encodedMember = source.member === undefined ? undefined : encodeURI(source.member);
  const withMember =
    encodedMember !== undefined && encodedMember.length + (withSource ? encodedSource.length : 0) <= MAX_SOURCE_METADATA_CHARS;
  return {
    sha256: source.sha256,
    // Percent-encoded: S3 metadata travels in HTTP headers, which cannot carry raw non-ASCII names. Left
    // out when it would overflow S3's 2 KB of user metadata (the key itself still names the source).
    ...(withSource ? { source: encodedSource } : {}),
    'source-sha256': source.sourceSha256,
    'source-mtime': new Date(source.mtimeMs).toISOString(),
    ...(withMember ? { member: encodedMember } : {}),
  };
}

/** S3 allows 2048 bytes of user metadata (names and values); the other fields take about 200. */
const MAX_SOURCE_METADATA_CHARS = 1800;
