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

/** The metadata every object carries (DESIGN.md); values are ASCII-safe because HTTP headers must be. */
export function objectMetadata(source: {
  relPath: string;
  sha256: string;
  sourceSha256: string;
  mtimeMs: number;
}): Record<string, string> {
  const encodedSource = encodeURI(source.relPath);
  return {
    sha256: source.sha256,
    // Percent-encoded: S3 metadata travels in HTTP headers, which cannot carry raw non-ASCII names. Left
    // out when it would overflow S3's 2 KB of user metadata (the key itself still names the source).
    ...(encodedSource.length <= MAX_SOURCE_METADATA_CHARS ? { source: encodedSource } : {}),
    'source-sha256': source.sourceSha256,
    'source-mtime': new Date(source.mtimeMs).toISOString(),
  };
}

/** S3 allows 2048 bytes of user metadata (names and values); the other fields take about 200. */
const MAX_SOURCE_METADATA_CHARS = 1800;
