import { pipeline, Readable, Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header as TarHeaders } from 'tar-stream';
import yauzl from 'yauzl';
import { ArchiveRejectedError } from '../errors.js';
import type { SourceFile } from '../source/source-fs.js';
import type { ArchiveFormat } from './classify.js';

/** An entry of an archive, in the archive's order. Read `open()` to its end, or `skip()`, before the next. */
export interface ArchiveEntry {
  /** The name the archive gives it, decoded (zip: UTF-8 when flagged, CP437 otherwise; tar: UTF-8). */
  readonly name: string;
  /** `file` stores an object; `directory` and `metadata` store nothing; `rejected` rejects the archive. */
  readonly kind: 'file' | 'directory' | 'metadata' | 'rejected';
  /** Why a `rejected` entry is (a symlink, a device…), as the rule an operator reads. */
  readonly rule?: string;
  /** The CRC-32 the zip's central directory declares for the content; checked against the bytes. */
  readonly crc32?: number;
  open(): Promise<Readable>;
  skip(): void;
}

/** The streams an open archive reader holds: closing it ends them, whether or not every entry was read. */
export interface ArchiveReader extends AsyncIterable<ArchiveEntry> {
  close(): void;
}

/**
 * Streams the entries of an archive held open as `file` (size `sizeBytes`), one at a time: memory stays
 * bounded by one chunk, whatever the archive holds. A zip is read by random access (yauzl, central
 * directory first); a tar front to back (tar-stream, behind zlib for tar.gz); a gz is its one member.
 * Structure errors surface as the iteration's or the entry stream's error (the caller names the member).
 * @param gzMemberName the name of a gz's single member (the file name without `.gz`).
 */
export async function openArchive(
  file: SourceFile,
  format: ArchiveFormat,
  sizeBytes: number,
  gzMemberName: string,
  onInflated: (bytes: number) => void = () => undefined,
): Promise<ArchiveReader> {
  if (format === 'zip') return openZip(file, sizeBytes);
  if (format === 'gz') return singleMember(gzMemberName, () => gunzipped(file, sizeBytes, gzMemberName, onInflated));
  return openTar(format === 'tar.gz' ? gunzipped(file, sizeBytes, undefined, onInflated) : file.stream());
}

/**
 * The content of a gzip file: every member, as gunzip reads them. zlib fails on bytes after a member that
 * do not start another one, except when they start with a zero byte: it stops there and ignores the rest.
 * Those count as trailing bytes too (they are not another member), found by the input zlib consumed.
 * @param onInflated told of every chunk zlib produces, before tar-stream parses it (may throw to stop).
 */
function gunzipped(file: SourceFile, sizeBytes: number, member: string | undefined, onInflated: (bytes: number) => void): Readable {
  const gunzip = createGunzip();
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      try {
        onInflated(chunk.length);
        callback(null, chunk);
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback) {
      const ignored = sizeBytes - gunzip.bytesWritten;
      callback(ignored > 0 ? new ArchiveRejectedError('trailing bytes', member, `${ignored} bytes after the last gzip member are not another member`) : null);
    },
  });
  // pipeline(): an error anywhere (EIO, a corrupt deflate stream, a limit) reaches the reader of the output.
  return pipeline(file.stream(), firstMemberMethod(member), gunzip, counter, () => undefined);
}

/**
 * Passes a gzip stream through once its first member's compression method (byte 2) is deflate, the only one
 * RFC 1952 defines. zlib's own "unknown compression method" is read as bytes trailing a member (that is where
 * it meets one mid-file); at the first member, it is a file that merely starts with 1f 8b.
 */
function firstMemberMethod(member: string | undefined): Transform {
  let checked = false;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      if (!checked) {
        checked = true;
        // A first read of 2 bytes or fewer is the whole file (reads are 1 MiB): zlib calls it truncated.
        if (chunk.length > 2 && chunk[2] !== DEFLATE) {
          callback(new ArchiveRejectedError('gz structure', member, `compression method ${chunk[2]} is not deflate (${DEFLATE}): no gzip member`));
          return;
        }
      }
      callback(null, chunk);
    },
  });
}

/** gzip's compression method byte for deflate (RFC 1952, CM). */
const DEFLATE = 8;

function singleMember(name: string, open: () => Readable): ArchiveReader {
  let opened: Readable | undefined;
  const entry: ArchiveEntry = {
    name,
    kind: 'file',
    open: () => Promise.resolve((opened = open())),
    skip: () => undefined,
  };
  return {
    [Symbol.asyncIterator]: () => Readable.from([entry])[Symbol.asyncIterator]() as AsyncIterator<ArchiveEntry>,
    close: () => opened?.destroy(),
  };
}

function openTar(input: Readable): ArchiveReader {
  const extractor = tarExtract();
  // An error of the input (a gzip CRC, EIO) must end the iteration, not leave it waiting for the next entry.
  pipeline(input, extractor, () => undefined);
  return {
    async *[Symbol.asyncIterator]() {
      for await (const entry of extractor) {
        const header: TarHeaders = entry.header;
        yield {
          name: header.name,
          ...tarKind(header),
          open: () => Promise.resolve(entry as unknown as Readable),
          skip: () => entry.resume(),
        };
      }
    },
    close: () => {
      input.destroy();
      extractor.destroy();
    },
  };
}

/** DESIGN.md, "Archive safety": links and special files are never extracted, so never stored. */
function tarKind(header: TarHeaders): Pick<ArchiveEntry, 'kind' | 'rule'> {
  // tar-stream yields every type it parses; its typings list only the common ones.
  switch (header.type as string | null) {
    case 'file':
    case 'contiguous-file':
      return { kind: 'file' };
    case 'directory':
      return { kind: 'directory' };
    case 'pax-global-header':
      return { kind: 'metadata' };
    case 'symlink':
      return { kind: 'rejected', rule: `symlink member (to ${JSON.stringify(header.linkname ?? '')})` };
    case 'link':
      return { kind: 'rejected', rule: `hardlink member (to ${JSON.stringify(header.linkname ?? '')})` };
    case 'character-device':
    case 'block-device':
    case 'fifo':
      return { kind: 'rejected', rule: `${header.type} member` };
    default:
      return { kind: 'rejected', rule: `unsupported tar entry type ${String(header.type)}` };
  }
}

/** yauzl reads through our descriptor: the bytes classified and hashed are the bytes extracted. */
class SourceFileReader extends yauzl.RandomAccessReader {
  constructor(private readonly file: SourceFile) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return this.file.stream({ start, end });
  }
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

async function openZip(file: SourceFile, sizeBytes: number): Promise<ArchiveReader> {
  const zip = await yauzl.fromRandomAccessReaderPromise(new SourceFileReader(file), sizeBytes, {
    lazyEntries: true,
    autoClose: false,
    // Names are decoded by zipName() and checked by memberPath(), with rules that name the member: yauzl's own
    // check fails a whole listing with a bare message, and its lenient mode turns backslashes into slashes.
    decodeStrings: false,
    // A stream that inflates to more or fewer bytes than the zip declares is a structure error.
    validateEntrySizes: true,
  });
  const open = new Set<Readable>();
  return {
    async *[Symbol.asyncIterator]() {
      for await (const entry of zip.eachEntry()) {
        const name = zipName(entry);
        yield {
          name,
          ...zipKind(entry, name),
          crc32: entry.crc32,
          async open() {
            const stream = await zip.openReadStreamPromise(entry);
            open.add(stream);
            stream.once('close', () => open.delete(stream));
            return stream;
          },
          skip: () => undefined,
        };
      }
    },
    close: () => {
      for (const stream of open) stream.destroy();
      zip.close();
    },
  };
}

/**
 * An entry's name as its writer meant it: UTF-8 when general purpose bit 11 says so (or an Info-ZIP Unicode
 * Path extra field gives one), CP437 otherwise, as the zip specification says; backslashes kept as they are.
 */
function zipName(entry: yauzl.Entry): string {
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
}

function zipKind(entry: yauzl.Entry, name: string): Pick<ArchiveEntry, 'kind' | 'rule'> {
  if (entry.isEncrypted()) return { kind: 'rejected', rule: 'encrypted member' };
  // Unix mode bits, when the zip was made on Unix (version made by, high byte 3): links and devices too.
  const mode = entry.versionMadeBy >> 8 === 3 ? (entry.externalFileAttributes >>> 16) & S_IFMT : 0;
  if (mode === S_IFLNK) return { kind: 'rejected', rule: 'symlink member' };
  if (name.endsWith('/') || mode === S_IFDIR) return { kind: 'directory' };
  if (mode !== 0 && mode !== S_IFREG) return { kind: 'rejected', rule: `special file member (mode ${mode.toString(8)})` };
  if (!entry.canDecodeFileData()) {
    return { kind: 'rejected', rule: `unsupported compression method ${entry.compressionMethod}` };
  }
  return { kind: 'file' };
}

/** Where a zip entry's bytes lie: local header offset and compressed size, from the central directory. */
export interface ZipSpan {
  readonly name: string;
  readonly offset: number;
  readonly compressedSize: number;
}

/** The fixed part of a zip local file header: no entry's data starts closer than this to its header. */
const LOCAL_HEADER_BYTES = 30;

/**
 * Entries whose bytes overlap (several central directory entries sharing one local file, or one entry's
 * data running into the next's header) are how a zip makes its declared sizes lie: a few kilobytes that
 * inflate to gigabytes (Fifield's non-recursive zip bomb). Pure. @throws ArchiveRejectedError naming both.
 */
export function assertNoOverlap(spans: ZipSpan[]): void {
  const sorted = [...spans].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const before = sorted[i - 1]!;
    const next = sorted[i]!;
    if (next.offset < before.offset + LOCAL_HEADER_BYTES + before.compressedSize) {
      throw new ArchiveRejectedError(
        'overlapping entries',
        next.name,
        `its bytes overlap those of ${JSON.stringify(before.name)} (offsets ${before.offset} and ${next.offset})`,
      );
    }
  }
}

/** Every zip entry's span, read from the central directory alone (nothing is inflated). */
export async function zipSpans(file: SourceFile, sizeBytes: number): Promise<ZipSpan[]> {
  const zip = await yauzl.fromRandomAccessReaderPromise(new SourceFileReader(file), sizeBytes, {
    lazyEntries: true,
    autoClose: false,
    decodeStrings: false,
  });
  try {
    const spans: ZipSpan[] = [];
    for await (const entry of zip.eachEntry()) {
      spans.push({ name: zipName(entry), offset: entry.relativeOffsetOfLocalHeader, compressedSize: entry.compressedSize });
    }
    return spans;
  } finally {
    zip.close();
  }
}
