/**
 * How a file is stored: as it is, or as the members of an archive (DESIGN.md, "S3 key layout"). Pure: the
 * worker reads the first bytes (and, for gzip, the first inflated bytes) and this table decides.
 */
export type ArchiveFormat = 'zip' | 'tar' | 'tar.gz' | 'gz';

export interface Classification {
  readonly format: ArchiveFormat | 'plain';
  /** Set when the name and the content disagree in a way the operator should hear about. */
  readonly warning?: string;
}

/** Bytes a classification reads from the start of the file (and of its inflated content): one tar header. */
export const HEAD_BYTES = 512;

export type Magic = 'gzip' | 'zip' | 'empty-zip' | 'tar' | 'none';

/** What the first bytes say, by magic number alone. */
export function magicOf(head: Buffer): Magic {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0x06054b50) return 'empty-zip';
  return isTarHeader(head) ? 'tar' : 'none';
}

/**
 * A tar header: `ustar` at offset 257 (POSIX and GNU), or, for old v7 archives, a header whose checksum
 * holds (the unsigned or, as some old tars wrote it, signed sum of the block with the checksum field read as
 * spaces). An all-zero block is no header: its checksum field is empty.
 */
export function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  if (block.toString('latin1', 257, 262) === 'ustar') return true;
  const field = block.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]{1,7}$/.test(field)) return false;
  const stored = parseInt(field, 8);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

const ARCHIVE_EXTENSIONS: readonly [suffix: string, format: ArchiveFormat][] = [
  ['.tar.gz', 'tar.gz'],
  ['.tgz', 'tar.gz'],
  ['.tar', 'tar'],
  ['.zip', 'zip'],
  ['.gz', 'gz'],
];

/** The format a name claims, by its extension (case-insensitive), if any. */
export function formatByName(fileName: string): ArchiveFormat | undefined {
  const lower = fileName.toLowerCase();
  return ARCHIVE_EXTENSIONS.find(([suffix]) => lower.endsWith(suffix))?.[1];
}

/**
 * Decides the format: magic bytes first, the extension only to break ties (an empty tar is two zero blocks,
 * with no header to recognise). A gzip whose content starts with a tar header is a tar.gz whatever its name.
 * @param head the first HEAD_BYTES bytes (fewer for a shorter file).
 * @param inflatedHead for a gzip, the first HEAD_BYTES bytes of its content; ignored otherwise.
 * @param sizeBytes the whole file's size.
 */
export function classify(fileName: string, head: Buffer, sizeBytes: number, inflatedHead?: Buffer): Classification {
  const magic = magicOf(head);
  const named = formatByName(fileName);
  if (magic === 'gzip') {
    const inner = inflatedHead ?? Buffer.alloc(0);
    const tarInside = isTarHeader(inner) || (named === 'tar.gz' && isZeroBlock(inner));
    return { format: tarInside ? 'tar.gz' : 'gz' };
  }
  if (magic === 'zip' || magic === 'empty-zip') return { format: 'zip' };
  if (magic === 'tar') return { format: 'tar' };
  // The one tie: an empty tar (zero blocks only) has no header; its name says what it is.
  if (named === 'tar' && sizeBytes >= 1024 && isZeroBlock(head)) return { format: 'tar' };
  if (named) {
    return { format: 'plain', warning: `named like a ${named} file but its content is not one: archived as it is` };
  }
  return { format: 'plain' };
}

function isZeroBlock(block: Buffer): boolean {
  return block.length === 512 && block.every((byte) => byte === 0);
}
