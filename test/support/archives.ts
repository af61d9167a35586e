// Archive fixtures, generated on demand: nothing binary is committed. Each generator writes one file into `dir`
// under a fixed name (the name is part of the fixture: `d.csv.gz`, a tar.gz called `.gz`, a `.zip` that is text) and
// returns what a correct extractor must do with it: land `members` (a GoodArchive), or quarantine the whole file
// for the rule named in `expectRejection` (a HostileArchive). File names are distinct across generators, and so are
// the stems of the good ones, so every fixture can share one watched directory without two keys colliding.
//
// Zip files come from the small writer below rather than from a library, so a fixture can lie in exactly one byte
// (a CRC, a declared size, an offset). Tar comes from tar-stream, except GNU long names, which it cannot write.
// Large fixtures (the 50 MB member, the 1 GiB bombs) are streamed to disk in chunks: memory stays bounded.
//
// Generators write in place: a test that watches `dir` should generate into a staging directory and move the file in.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { patternBytes } from './fixtures.js';

export type ArchiveFormat = 'zip' | 'tar' | 'tar.gz' | 'gz' | 'plain';

/** The rule that must reject a hostile archive, as a short phrase a rejection reason should contain. */
export type RejectionRule =
  | 'path traversal'
  | 'absolute path'
  | 'backslash'
  | 'drive letter'
  | 'nul in name'
  | 'symlink member'
  | 'hardlink member'
  | 'device member'
  | 'fifo member'
  | 'encrypted'
  | 'crc'
  | 'declared size'
  | 'overlapping entries'
  | 'ratio'
  | 'duplicate name'
  | 'truncated'
  | 'trailing bytes'
  | 'gz structure';

/** A member's content: the bytes themselves, or (for members too large to hold) their size and sha256 (hex). */
export type MemberContent = Buffer | { size: number; sha256: string };

/** One object an extractor must write: `name` is the member path inside the archive (for gz and plain: the file). */
export interface FixtureMember {
  name: string;
  bytes: MemberContent;
}

/** An archive to extract. Directory entries are not members: they produce no object. */
export interface GoodArchive {
  path: string;
  format: ArchiveFormat;
  members: FixtureMember[];
}

/** An archive to quarantine whole. */
export interface HostileArchive {
  path: string;
  expectRejection: RejectionRule;
}

/** A fixture that needs a tool the machine lacks. */
export interface SkippedFixture {
  skip: string;
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** Size and sha256 of a member's content, whichever form the descriptor holds it in. */
export function memberDigest(content: MemberContent): { size: number; sha256: string } {
  return Buffer.isBuffer(content) ? { size: content.length, sha256: sha256(content) } : content;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Small CSV-ish content, distinct per label. */
function csv(label: string, rows = 20): Buffer {
  const lines = ['id,label,value'];
  for (let i = 0; i < rows; i++) lines.push(`${i},${label},${(i * 7919) % 1000}`);
  return Buffer.from(lines.join('\n') + '\n');
}

/** `count` bytes of zeros, as 1 MiB chunks of one shared buffer: never more than 1 MiB in memory. */
function* zeros(count: number): Generator<Buffer> {
  const chunk = Buffer.alloc(MiB);
  for (let left = count; left > 0; left -= chunk.length) yield left >= chunk.length ? chunk : chunk.subarray(0, left);
}

/**
 * `count` deterministic bytes that do not compress, in 64 KiB chunks that all differ (a stream reading ahead holds a
 * few chunks, so they stay small); `digest` is filled after the last chunk.
 */
function* pattern(count: number, digest: { size: number; sha256: string }): Generator<Buffer> {
  const chunkSize = 64 * 1024;
  const hash = createHash('sha256');
  for (let offset = 0; offset < count; offset += chunkSize) {
    const chunk = patternBytes(Math.min(chunkSize, count - offset), offset / chunkSize + 1);
    hash.update(chunk);
    yield chunk;
  }
  digest.size = count;
  digest.sha256 = hash.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal zip writer (APPNOTE 6.3.x): local headers, central directory, EOCD, data descriptors, zip64 records.

const DOS_TIME = 0; // 00:00:00
const DOS_DATE = ((2024 - 1980) << 9) | (1 << 5) | 1; // 2024-01-01: fixed, so fixtures are byte-for-byte repeatable
const FLAG_DATA_DESCRIPTOR = 1 << 3;
const FLAG_UTF8 = 1 << 11;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;
const MADE_BY_UNIX = 3 << 8;

interface ZipEntryOptions {
  /** A string is written as UTF-8; a Buffer as is (CP437 bytes, a NUL). A trailing '/' makes a directory entry. */
  name: string | Buffer;
  /** Default deflate; directories are always stored. */
  method?: 'store' | 'deflate';
  /** General-purpose bit 11 (the name is UTF-8). Default: set when a string name is not ASCII, as Info-ZIP does. */
  utf8?: boolean;
  /** Bit 3: CRC and sizes are 0 in the local header and follow the data in a data descriptor. */
  dataDescriptor?: boolean;
  /** Sizes (and the central offset) read 0xFFFFFFFF, the real values being in a zip64 extra field (0x0001). */
  zip64?: boolean;
  /** A lie: written in both the local and the central header instead of the data's real CRC-32. */
  declaredCrc?: number;
  /** A lie: written in both headers instead of the real uncompressed size. */
  declaredSize?: number;
}

/** One entry as its headers declare it. */
interface ZipEntry {
  name: Buffer;
  flags: number;
  method: 0 | 8;
  crc: number;
  compressedSize: number;
  size: number;
  /** Of the local header. */
  offset: number;
  /** Of the entry's (compressed) data. */
  dataOffset: number;
  zip64: boolean;
  directory: boolean;
}

function zip64Extra(values: number[]): Buffer {
  const extra = Buffer.alloc(4 + 8 * values.length);
  extra.writeUInt16LE(0x0001, 0);
  extra.writeUInt16LE(8 * values.length, 2);
  values.forEach((value, i) => extra.writeBigUInt64LE(BigInt(value), 4 + 8 * i));
  return extra;
}

/** Local file header. In zip64 both sizes read 0xFFFFFFFF and the extra holds (size, compressed size), as `zip -fz`. */
function localHeader(e: Omit<ZipEntry, 'offset' | 'dataOffset'>): Buffer {
  const extra = e.zip64 ? zip64Extra([e.size, e.compressedSize]) : Buffer.alloc(0);
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(e.zip64 ? 45 : 20, 4); // version needed: 4.5 for zip64, 2.0 for deflate
  header.writeUInt16LE(e.flags, 6);
  header.writeUInt16LE(e.method, 8);
  header.writeUInt16LE(DOS_TIME, 10);
  header.writeUInt16LE(DOS_DATE, 12);
  header.writeUInt32LE(e.crc >>> 0, 14);
  header.writeUInt32LE(e.zip64 ? U32_MAX : e.compressedSize, 18);
  header.writeUInt32LE(e.zip64 ? U32_MAX : e.size, 22);
  header.writeUInt16LE(e.name.length, 26);
  header.writeUInt16LE(extra.length, 28);
  return Buffer.concat([header, e.name, extra]);
}

/** Data descriptor with its optional signature (Info-ZIP writes it); 32-bit sizes: see ZipWriter.add. */
function dataDescriptor(e: ZipEntry): Buffer {
  const descriptor = Buffer.alloc(16);
  descriptor.writeUInt32LE(0x08074b50, 0);
  descriptor.writeUInt32LE(e.crc >>> 0, 4);
  descriptor.writeUInt32LE(e.compressedSize, 8);
  descriptor.writeUInt32LE(e.size, 12);
  return descriptor;
}

/** Central directory header. In zip64 sizes and offset all read 0xFFFFFFFF: a reader must take them from the extra. */
function centralHeader(e: ZipEntry): Buffer {
  const extra = e.zip64 ? zip64Extra([e.size, e.compressedSize, e.offset]) : Buffer.alloc(0);
  const version = e.zip64 ? 45 : 20;
  const header = Buffer.alloc(46);
  header.writeUInt32LE(0x02014b50, 0);
  header.writeUInt16LE(MADE_BY_UNIX | version, 4);
  header.writeUInt16LE(version, 6);
  header.writeUInt16LE(e.flags, 8);
  header.writeUInt16LE(e.method, 10);
  header.writeUInt16LE(DOS_TIME, 12);
  header.writeUInt16LE(DOS_DATE, 14);
  header.writeUInt32LE(e.crc >>> 0, 16);
  header.writeUInt32LE(e.zip64 ? U32_MAX : e.compressedSize, 20);
  header.writeUInt32LE(e.zip64 ? U32_MAX : e.size, 24);
  header.writeUInt16LE(e.name.length, 28);
  header.writeUInt16LE(extra.length, 30);
  // comment length, disk number, internal attributes: 0. External attributes: Unix mode, plus MS-DOS directory bit.
  header.writeUInt32LE((e.directory ? (0o40755 << 16) | 0x10 : 0o100644 << 16) >>> 0, 38);
  header.writeUInt32LE(e.zip64 ? U32_MAX : e.offset, 42);
  return Buffer.concat([header, e.name, extra]);
}

/** Zip64 end of central directory record, then its locator. */
function zip64End(entries: number, centralSize: number, centralOffset: number, recordOffset: number): Buffer {
  const record = Buffer.alloc(56);
  record.writeUInt32LE(0x06064b50, 0);
  record.writeBigUInt64LE(44n, 4); // size of the rest of the record
  record.writeUInt16LE(MADE_BY_UNIX | 45, 12);
  record.writeUInt16LE(45, 14);
  // disk numbers (16, 20): 0
  record.writeBigUInt64LE(BigInt(entries), 24);
  record.writeBigUInt64LE(BigInt(entries), 32);
  record.writeBigUInt64LE(BigInt(centralSize), 40);
  record.writeBigUInt64LE(BigInt(centralOffset), 48);
  const locator = Buffer.alloc(20);
  locator.writeUInt32LE(0x07064b50, 0);
  locator.writeBigUInt64LE(BigInt(recordOffset), 8);
  locator.writeUInt32LE(1, 16); // total number of disks
  return Buffer.concat([record, locator]);
}

/** End of central directory record. With zip64 every field that has a zip64 twin reads all ones. */
function endOfCentralDirectory(entries: number, centralSize: number, centralOffset: number, zip64: boolean): Buffer {
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(zip64 ? U16_MAX : entries, 8);
  end.writeUInt16LE(zip64 ? U16_MAX : entries, 10);
  end.writeUInt32LE(zip64 ? U32_MAX : centralSize, 12);
  end.writeUInt32LE(zip64 ? U32_MAX : centralOffset, 16);
  return end;
}

class ZipWriter {
  readonly entries: ZipEntry[] = [];
  private position = 0;

  constructor(private readonly file: fsp.FileHandle) {}

  /** Bytes that are not part of the zip structure (a self-extractor's stub); later offsets count them. */
  async raw(bytes: Buffer): Promise<void> {
    await this.file.write(bytes, 0, bytes.length, this.position);
    this.position += bytes.length;
  }

  /** Writes one entry (stored, or deflated as a stream: chunks are pulled one at a time) and records it for finish(). */
  async add(options: ZipEntryOptions, content: Buffer | Iterable<Buffer> = Buffer.alloc(0)): Promise<ZipEntry> {
    const name = typeof options.name === 'string' ? Buffer.from(options.name) : options.name;
    const directory = name[name.length - 1] === 0x2f;
    const nonAscii = typeof options.name === 'string' && name.length !== options.name.length;
    const flags = (options.dataDescriptor ? FLAG_DATA_DESCRIPTOR : 0) | ((options.utf8 ?? nonAscii) ? FLAG_UTF8 : 0);
    const method = options.method === 'store' || directory ? 0 : 8;
    const zip64 = options.zip64 ?? false;
    // A zip64 descriptor (8-byte sizes) is a form of its own, and Debian's unzip mistakes it for overlapping entries.
    if (zip64 && options.dataDescriptor) throw new Error('this writer does not write zip64 data descriptors');
    const offset = this.position;
    // Placeholder CRC and sizes: final with a data descriptor, rewritten in place after the data otherwise.
    await this.raw(localHeader({ name, flags, method, crc: 0, compressedSize: 0, size: 0, zip64, directory }));
    const dataOffset = this.position;
    let crc = 0;
    let size = 0;
    function* counted(): Generator<Buffer> {
      for (const chunk of Buffer.isBuffer(content) ? [content] : content) {
        crc = zlib.crc32(chunk, crc);
        size += chunk.length;
        yield chunk;
      }
    }
    const sink = async (source: Iterable<Buffer> | AsyncIterable<Buffer>): Promise<void> => {
      for await (const chunk of source) await this.raw(chunk);
    };
    if (method === 8) await pipeline(counted(), zlib.createDeflateRaw(), sink);
    else await sink(counted());
    const entry: ZipEntry = {
      name,
      flags,
      method,
      crc: options.declaredCrc ?? crc,
      compressedSize: this.position - dataOffset,
      size: options.declaredSize ?? size,
      offset,
      dataOffset,
      zip64,
      directory,
    };
    if (options.dataDescriptor) await this.raw(dataDescriptor(entry));
    else await this.file.write(localHeader(entry), 0, undefined, offset);
    this.entries.push(entry);
    return entry;
  }

  /** Central directory (of `central`, by default every entry written), zip64 records if asked, EOCD. */
  async finish(
    options: { central?: ZipEntry[]; zip64?: boolean } = {},
  ): Promise<{ centralOffset: number; centralSize: number }> {
    const central = options.central ?? this.entries;
    const centralOffset = this.position;
    await this.raw(Buffer.concat(central.map(centralHeader)));
    const centralSize = this.position - centralOffset;
    if (options.zip64) await this.raw(zip64End(central.length, centralSize, centralOffset, this.position));
    await this.raw(endOfCentralDirectory(central.length, centralSize, centralOffset, options.zip64 ?? false));
    return { centralOffset, centralSize };
  }
}

async function writeZip<T>(file: string, build: (zip: ZipWriter) => Promise<T>): Promise<T> {
  const handle = await fsp.open(file, 'w');
  try {
    return await build(new ZipWriter(handle));
  } finally {
    await handle.close();
  }
}

/** Writes plain members (deflated unless `store`) and returns their descriptor. */
async function simpleZip(
  file: string,
  members: { name: string; bytes: Buffer; options?: Omit<ZipEntryOptions, 'name'> }[],
  finish: { zip64?: boolean } = {},
): Promise<GoodArchive> {
  await writeZip(file, async (zip) => {
    for (const m of members) await zip.add({ name: m.name, ...m.options }, m.bytes);
    await zip.finish(finish);
  });
  return { path: file, format: 'zip', members: members.map(({ name, bytes }) => ({ name, bytes })) };
}

// ---------------------------------------------------------------------------------------------------------------
// Tar, through tar-stream.

const TAR_MTIME = new Date('2024-01-01T00:00:00Z');

type TarHeader = Parameters<tar.Pack['entry']>[0];

interface TarEntry {
  header: TarHeader;
  /** A Buffer, or chunks whose total is `header.size`, written with backpressure. */
  body?: Buffer | Iterable<Buffer>;
}

async function writeTar(file: string, entries: TarEntry[], gzip = false): Promise<void> {
  const pack = tar.pack();
  const written = gzip
    ? pipeline(pack, zlib.createGzip(), fs.createWriteStream(file))
    : pipeline(pack, fs.createWriteStream(file));
  const add = async (): Promise<void> => {
    for (const { header, body } of entries) {
      await new Promise<void>((resolve, reject) => {
        const done = (error?: Error | null): void => (error ? reject(error) : resolve());
        const h = { mtime: TAR_MTIME, ...header };
        if (body === undefined) pack.entry(h, done);
        else if (Buffer.isBuffer(body)) pack.entry(h, body, done);
        else void streamInto(pack.entry(h, done), body).catch(reject);
      });
    }
    pack.finalize();
  };
  await Promise.all([written, add()]);
}

async function streamInto(sink: ReturnType<tar.Pack['entry']>, chunks: Iterable<Buffer>): Promise<void> {
  for (const chunk of chunks) {
    if (!sink.write(chunk)) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
  }
  sink.end(null); // streamx's end() takes an optional last chunk: none
}

function tarFiles(members: { name: string; bytes: Buffer }[]): TarEntry[] {
  return members.map(({ name, bytes }) => ({ header: { name }, body: bytes }));
}

// ---------------------------------------------------------------------------------------------------------------
// Good archives.

/** `mixed.zip`: a stored member, a deflated one, and `y/z.csv` below its directory entry `y/`. */
export async function zipArchive(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'mixed.zip');
  const stored = csv('stored');
  const deflated = csv('deflated', 200);
  const nested = csv('nested', 50);
  await writeZip(file, async (zip) => {
    await zip.add({ name: 'a.csv', method: 'store' }, stored);
    await zip.add({ name: 'b.csv' }, deflated);
    await zip.add({ name: 'y/' });
    await zip.add({ name: 'y/z.csv' }, nested);
    await zip.finish();
  });
  return {
    path: file,
    format: 'zip',
    members: [
      { name: 'a.csv', bytes: stored },
      { name: 'b.csv', bytes: deflated },
      { name: 'y/z.csv', bytes: nested },
    ],
  };
}

async function tarWithDirectory(file: string, label: string, gzip: boolean): Promise<GoodArchive> {
  const a = csv(`${label}-a`);
  const z = csv(`${label}-z`, 300);
  await writeTar(
    file,
    [
      { header: { name: 'a.csv' }, body: a },
      { header: { name: 'y', type: 'directory' } },
      { header: { name: 'y/z.csv' }, body: z },
    ],
    gzip,
  );
  const members = [
    { name: 'a.csv', bytes: a },
    { name: 'y/z.csv', bytes: z },
  ];
  return { path: file, format: gzip ? 'tar.gz' : 'tar', members };
}

/** `plain.tar`: ustar, `a.csv`, a directory `y/` and `y/z.csv`. */
export async function tarArchive(dir: string): Promise<GoodArchive> {
  return tarWithDirectory(path.join(dir, 'plain.tar'), 'tar', false);
}

/** `tarball.tar.gz`. */
export async function tarGzArchive(dir: string): Promise<GoodArchive> {
  return tarWithDirectory(path.join(dir, 'tarball.tar.gz'), 'tar.gz', true);
}

/** `tgzball.tgz`. */
export async function tgzArchive(dir: string): Promise<GoodArchive> {
  return tarWithDirectory(path.join(dir, 'tgzball.tgz'), 'tgz', true);
}

/** `disguised.gz`: a tar.gz whose name says plain gzip; its content (a tar) decides. */
export async function tarGzNamedGz(dir: string): Promise<GoodArchive> {
  return tarWithDirectory(path.join(dir, 'disguised.gz'), 'disguised', true);
}

/** `d.csv.gz`: one gzip member; the object is `d.csv`. */
export async function gzFile(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'd.csv.gz');
  const bytes = csv('gz', 500);
  await fsp.writeFile(file, zlib.gzipSync(bytes));
  return { path: file, format: 'gz', members: [{ name: 'd.csv', bytes }] };
}

/** `concat.csv.gz`: three gzip members back to back; one stream whose content is their concatenation (as gunzip). */
export async function concatenatedGz(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'concat.csv.gz');
  const parts = [csv('first'), csv('second', 40), csv('third', 5)];
  await fsp.writeFile(file, Buffer.concat(parts.map((part) => zlib.gzipSync(part))));
  return { path: file, format: 'gz', members: [{ name: 'concat.csv', bytes: Buffer.concat(parts) }] };
}

/** `empty-zip.zip`: 22 bytes, the EOCD alone (`PK\x05\x06`, zero entries). */
export async function emptyZip(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'empty-zip.zip');
  await writeZip(file, (zip) => zip.finish());
  return { path: file, format: 'zip', members: [] };
}

/**
 * `empty-tar.tar`: the two zero blocks that end a tar, nothing before them. Note for classification: it has no
 * `ustar` magic and no header whose checksum holds, so only its extension says tar.
 */
export async function emptyTar(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'empty-tar.tar');
  await writeTar(file, []);
  return { path: file, format: 'tar', members: [] };
}

/** `dirs-only.zip`: directory entries `a/`, `a/b/`, `c/` and no file: no object. */
export async function zipDirectoriesOnly(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'dirs-only.zip');
  await writeZip(file, async (zip) => {
    for (const name of ['a/', 'a/b/', 'c/']) await zip.add({ name });
    await zip.finish();
  });
  return { path: file, format: 'zip', members: [] };
}

/**
 * `large-zip.zip` (deflated) or `large-tar.tar`: one member `large.bin` of `size` bytes (default 50 MiB: several
 * multipart parts), streamed to disk chunk by chunk. Content is incompressible and no two 64 KiB chunks are alike.
 */
export async function largeMemberArchive(
  dir: string,
  options: { format: 'zip' | 'tar'; size?: number },
): Promise<GoodArchive> {
  const size = options.size ?? 50 * MiB;
  const file = path.join(dir, `large-${options.format}.${options.format}`);
  const digest = { size: 0, sha256: '' };
  if (options.format === 'zip') {
    await writeZip(file, async (zip) => {
      await zip.add({ name: 'large.bin' }, pattern(size, digest));
      await zip.finish();
    });
  } else {
    await writeTar(file, [{ header: { name: 'large.bin', size }, body: pattern(size, digest) }]);
  }
  return { path: file, format: options.format, members: [{ name: 'large.bin', bytes: digest }] };
}

/** `many.tar`: `count` small members `m/00000.txt`, …: a test passes its configured max_members + 1, or 2,000. */
export async function manyMembersTar(dir: string, count: number): Promise<GoodArchive> {
  const file = path.join(dir, 'many.tar');
  const members = Array.from({ length: count }, (_, i) => ({
    name: `m/${String(i).padStart(5, '0')}.txt`,
    bytes: Buffer.from(`member ${i}\n`),
  }));
  await writeTar(file, tarFiles(members));
  return { path: file, format: 'tar', members };
}

/** `utf8-names.zip`: `données/été.csv` and `日本/データ.csv`, names in UTF-8 with general-purpose bit 11 set. */
export async function utf8NamesZip(dir: string): Promise<GoodArchive> {
  return simpleZip(path.join(dir, 'utf8-names.zip'), [
    { name: 'données/été.csv', bytes: csv('utf8') },
    { name: '日本/データ.csv', bytes: csv('cjk') },
  ]);
}

/** `cp437-names.zip`: bit 11 clear and the name bytes `r\x82sum\x82/caf\x82.csv`: 0x82 is 'é' in CP437. */
export async function cp437NamesZip(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'cp437-names.zip');
  const bytes = csv('cp437');
  await writeZip(file, async (zip) => {
    await zip.add({ name: Buffer.from('r\x82sum\x82/caf\x82.csv', 'latin1'), utf8: false }, bytes);
    await zip.finish();
  });
  return { path: file, format: 'zip', members: [{ name: 'résumé/café.csv', bytes }] };
}

/**
 * `zip64.zip`: small members in zip64 form, as `zip -fz` writes them: version 4.5, local sizes 0xFFFFFFFF with a
 * zip64 extra; central sizes and offset 0xFFFFFFFF with a zip64 extra; a zip64 EOCD record and locator, and an EOCD
 * whose counts, size and offset all defer to it.
 */
export async function zip64Zip(dir: string): Promise<GoodArchive> {
  return simpleZip(
    path.join(dir, 'zip64.zip'),
    [
      { name: 'a.csv', bytes: csv('zip64-a'), options: { zip64: true } },
      { name: 'y/z.csv', bytes: csv('zip64-z', 80), options: { zip64: true, method: 'store' } },
    ],
    { zip64: true },
  );
}

/** `descriptors.zip`: written as a streaming zipper does: bit 3, CRC and sizes 0 locally, data descriptors after. */
export async function dataDescriptorZip(dir: string): Promise<GoodArchive> {
  return simpleZip(path.join(dir, 'descriptors.zip'), [
    { name: 'a.csv', bytes: csv('dd-a', 100), options: { dataDescriptor: true } },
    { name: 'y/z.csv', bytes: csv('dd-z', 100), options: { dataDescriptor: true } },
  ]);
}

/** A member name over ustar's 100 + 155 bytes: a last segment of 120 characters cannot be split at a '/'. */
const LONG_NAME = `long/${'n'.repeat(120)}.csv`;

/** `pax-long.tar`: tar-stream writes a pax 'x' header (`path=`) for a name ustar cannot hold. */
export async function paxLongNameTar(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'pax-long.tar');
  const members = [{ name: LONG_NAME, bytes: csv('pax') }];
  await writeTar(file, tarFiles(members));
  return { path: file, format: 'tar', members };
}

/** A GNU-format tar header (magic `ustar  \0`), crafted because tar-stream cannot write type 'L'. */
function gnuHeader(name: Buffer, size: number, typeflag: string): Buffer {
  const header = Buffer.alloc(512);
  name.copy(header, 0, 0, Math.min(name.length, 100));
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write(`${Math.floor(TAR_MTIME.getTime() / 1000).toString(8).padStart(11, '0')}\0`, 136, 'latin1');
  header.write(typeflag, 156, 'latin1');
  header.write('ustar  \0', 257, 'latin1');
  header.fill(' ', 148, 156); // the checksum counts its own field as spaces
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}

function padToBlock(data: Buffer): Buffer {
  return Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

/** `gnu-long.tar`: a `././@LongLink` header of type 'L' carries the long name; the next header holds its first 100 bytes. */
export async function gnuLongNameTar(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'gnu-long.tar');
  const name = Buffer.from(LONG_NAME);
  const bytes = csv('gnu');
  const longLink = Buffer.concat([name, Buffer.from([0])]);
  await fsp.writeFile(
    file,
    Buffer.concat([
      gnuHeader(Buffer.from('././@LongLink'), longLink.length, 'L'),
      padToBlock(longLink),
      gnuHeader(name, bytes.length, '0'),
      padToBlock(bytes),
      Buffer.alloc(1024),
    ]),
  );
  return { path: file, format: 'tar', members: [{ name: LONG_NAME, bytes }] };
}

/**
 * `sfx.zip`: a self-extractor: an ELF-like stub, then a valid zip whose offsets count the stub (as `zip -A` leaves
 * them, so `unzip` reads it). It does not start with `PK`, so by the magic-byte rule it is one plain file.
 */
export async function selfExtractingZip(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'sfx.zip');
  await writeZip(file, async (zip) => {
    await zip.raw(Buffer.concat([Buffer.from('\x7fELF\x02\x01\x01\0', 'latin1'), Buffer.alloc(4088, 0x90)]));
    await zip.add({ name: 'inside.csv' }, csv('sfx'));
    await zip.finish();
  });
  return { path: file, format: 'plain', members: [{ name: 'sfx.zip', bytes: await fsp.readFile(file) }] };
}

/** `notes.zip`: text with a zip's extension; stored as a plain file (with a warning). */
export async function textNamedZip(dir: string): Promise<GoodArchive> {
  const file = path.join(dir, 'notes.zip');
  const bytes = Buffer.from('These are meeting notes, not a zip archive.\n');
  await fsp.writeFile(file, bytes);
  return { path: file, format: 'plain', members: [{ name: 'notes.zip', bytes }] };
}

// ---------------------------------------------------------------------------------------------------------------
// Hostile archives.

/** `bomb.csv.gz`: gzip of `size` zeros (default 1 GiB), about 1 MB on disk: a ratio near 1000. */
export async function gzipBomb(dir: string, size = GiB): Promise<HostileArchive> {
  const file = path.join(dir, 'bomb.csv.gz');
  await pipeline(zeros(size), zlib.createGzip(), fs.createWriteStream(file));
  return { path: file, expectRejection: 'ratio' };
}

/** `bomb.zip`: one deflated member of `size` zeros (default 1 GiB), its CRC and sizes true: only the ratio gives. */
export async function zipBomb(dir: string, size = GiB): Promise<HostileArchive> {
  const file = path.join(dir, 'bomb.zip');
  await writeZip(file, async (zip) => {
    await zip.add({ name: 'zeros.bin' }, zeros(size));
    await zip.finish();
  });
  return { path: file, expectRejection: 'ratio' };
}

/**
 * `overlap.zip` (Fifield's full overlap): one local file `a.csv` and `copies` central entries `a.csv`, `b.csv`, …
 * whose local-header offset field (central header bytes 42-45) is 0 in every one, so one compressed kernel is
 * extracted `copies` times (and every entry but the first names a local header that is not its own). The kernel is CSV that
 * deflates only about 4:1, so no ratio limit fires first: only the overlap gives it away.
 */
export async function overlappingZip(dir: string, copies = 10): Promise<HostileArchive> {
  const file = path.join(dir, 'overlap.zip');
  await writeZip(file, async (zip) => {
    const kernel = await zip.add({ name: 'a.csv' }, csv('kernel', 2000));
    const central = Array.from({ length: copies }, (_, i) => ({
      ...kernel,
      name: Buffer.from(`${String.fromCharCode(0x61 + (i % 26))}${i >= 26 ? i : ''}.csv`),
    }));
    await zip.finish({ central });
  });
  return { path: file, expectRejection: 'overlapping entries' };
}

/**
 * `size-lie.zip`: `a.csv` inflates to 1000 bytes, but its uncompressed-size field (local header bytes 22-25,
 * central header bytes 24-27) reads 10. Compressed size and CRC are true.
 */
export async function sizeLieZip(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'size-lie.zip');
  await writeZip(file, async (zip) => {
    await zip.add({ name: 'a.csv', declaredSize: 10 }, Buffer.alloc(1000, 'x'));
    await zip.finish();
  });
  return { path: file, expectRejection: 'declared size' };
}

/**
 * `bad-crc.zip`: `b.csv`'s CRC-32 field (local header bytes 14-17, central header bytes 16-19) holds the true CRC
 * with every bit flipped; its data and sizes are intact, and `a.csv` before it is sound.
 */
export async function crcMismatchZip(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'bad-crc.zip');
  const bytes = csv('crc');
  await writeZip(file, async (zip) => {
    await zip.add({ name: 'a.csv' }, csv('fine'));
    await zip.add({ name: 'b.csv', declaredCrc: ~zlib.crc32(bytes) >>> 0 }, bytes);
    await zip.finish();
  });
  return { path: file, expectRejection: 'crc' };
}

/**
 * `trailing-zeros.csv.gz` / `trailing-text.csv.gz`: a complete gzip member followed by bytes that are not one: 512
 * NUL bytes (tape padding, which Node's gunzip skips without a word: only an explicit check sees them), or a line of
 * text (which Node's gunzip does refuse).
 */
export async function gzipTrailingGarbage(dir: string, trailer: 'zeros' | 'text' = 'zeros'): Promise<HostileArchive> {
  const file = path.join(dir, `trailing-${trailer}.csv.gz`);
  const garbage = trailer === 'zeros' ? Buffer.alloc(512) : Buffer.from('not gzip, just trailing bytes\n');
  await fsp.writeFile(file, Buffer.concat([zlib.gzipSync(csv('trailing')), garbage]));
  return { path: file, expectRejection: 'trailing bytes' };
}

/**
 * `bad-method.csv.gz`: gzip's magic bytes, then a compression method that is not deflate (byte 2: 0x07), as in
 * any file that happens to start with 1f 8b: no member was ever read, so nothing "trails" one.
 */
export async function gzipBadMethod(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'bad-method.csv.gz');
  const gz = zlib.gzipSync(csv('method'));
  gz[2] = 0x07;
  await fsp.writeFile(file, gz);
  return { path: file, expectRejection: 'gz structure' };
}

/** `corrupt.csv.gz`: the trailer's CRC-32 (the 8th to 5th last bytes) has every bit flipped; data and ISIZE are intact. */
export async function corruptGzip(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'corrupt.csv.gz');
  const gz = zlib.gzipSync(csv('corrupt', 100));
  gz.writeUInt32LE(~gz.readUInt32LE(gz.length - 8) >>> 0, gz.length - 8);
  await fsp.writeFile(file, gz);
  return { path: file, expectRejection: 'crc' };
}

/** `through-symlink.tar`: a symlink `link -> /tmp`, then a file `link/evil`: a naive extractor writes /tmp/evil. */
export async function tarThroughSymlink(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'through-symlink.tar');
  await writeTar(file, [
    { header: { name: 'link', type: 'symlink', linkname: '/tmp' } },
    { header: { name: 'link/evil' }, body: Buffer.from('written through a symlink\n') },
  ]);
  return { path: file, expectRejection: 'symlink member' };
}

export type UnsafeName = 'traversal' | 'absolute' | 'backslash' | 'drive' | 'nul';

const UNSAFE_NAMES: Record<UnsafeName, { name: string; rule: RejectionRule }> = {
  traversal: { name: '../evil.txt', rule: 'path traversal' },
  absolute: { name: '/etc/evil', rule: 'absolute path' },
  backslash: { name: 'a\\b.txt', rule: 'backslash' },
  drive: { name: 'C:/evil.txt', rule: 'drive letter' },
  nul: { name: 'a\0b.txt', rule: 'nul in name' },
};

/**
 * `zip-<kind>.zip` / `tar-<kind>.tar`: a harmless `ok.csv`, then a member named `../evil.txt`, `/etc/evil`,
 * `a\b.txt`, `C:/evil.txt` or `a<NUL>b.txt`. A tar header ends a name at its first NUL, so in tar the NUL name
 * travels in a pax `path=` record, as any tar with such a name must carry it.
 */
export async function unsafeNameArchive(
  dir: string,
  kind: UnsafeName,
  format: 'zip' | 'tar' = 'zip',
): Promise<HostileArchive> {
  const file = path.join(dir, `${format}-${kind}.${format}`);
  const { name, rule } = UNSAFE_NAMES[kind];
  const ok = { name: 'ok.csv', bytes: csv('ok') };
  const evil = Buffer.from('evil\n');
  if (format === 'zip') {
    await simpleZip(file, [ok, { name, bytes: evil }]);
  } else {
    // Any `pax` makes tar-stream write a pax header (`path=a\0b.txt`) instead of cutting the name in the ustar field.
    const header = { name, ...(kind === 'nul' ? { pax: {} } : {}) };
    await writeTar(file, [...tarFiles([ok]), { header, body: evil }]);
  }
  return { path: file, expectRejection: rule };
}

export type SpecialTarMember = 'symlink' | 'hardlink' | 'character-device' | 'block-device' | 'fifo';

const SPECIAL_MEMBERS: Record<SpecialTarMember, { header: TarHeader; rule: RejectionRule }> = {
  symlink: { header: { name: 'passwd', type: 'symlink', linkname: '/etc/passwd' }, rule: 'symlink member' },
  hardlink: { header: { name: 'shadow', type: 'link', linkname: '/etc/shadow' }, rule: 'hardlink member' },
  'character-device': {
    header: { name: 'console', type: 'character-device', devmajor: 5, devminor: 1 },
    rule: 'device member',
  },
  'block-device': { header: { name: 'sda', type: 'block-device', devmajor: 8, devminor: 0 }, rule: 'device member' },
  fifo: { header: { name: 'pipe', type: 'fifo' }, rule: 'fifo member' },
};

/** `tar-<kind>.tar`: a harmless `ok.csv`, then a symlink, hardlink, device or FIFO member. */
export async function specialMemberTar(dir: string, kind: SpecialTarMember): Promise<HostileArchive> {
  const file = path.join(dir, `tar-${kind}.tar`);
  const { header, rule } = SPECIAL_MEMBERS[kind];
  await writeTar(file, [...tarFiles([{ name: 'ok.csv', bytes: csv('ok') }]), { header: { ...header } }]);
  return { path: file, expectRejection: rule };
}

/** `encrypted.zip`, made by Info-ZIP `zip -P secret` (traditional PKWARE encryption, bit 0 set). */
export async function encryptedZip(dir: string): Promise<HostileArchive | SkippedFixture> {
  const file = path.resolve(dir, 'encrypted.zip'); // absolute: zip runs in another directory
  const source = await fsp.mkdtemp(path.join(os.tmpdir(), 'sftppush-zip-'));
  try {
    await fsp.writeFile(path.join(source, 'secret.csv'), csv('secret'));
    await promisify(execFile)('zip', ['-q', '-P', 'secret', file, 'secret.csv'], { cwd: source });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { skip: 'no `zip` binary on this machine' };
    throw error;
  } finally {
    await fsp.rm(source, { recursive: true, force: true });
  }
  return { path: file, expectRejection: 'encrypted' };
}

/**
 * `truncated-data.zip`: cut in the middle of the first member's data; `truncated-central.zip`: cut in the middle of
 * the central directory. Both start with `PK\x03\x04` and have no EOCD left.
 */
export async function truncatedZip(dir: string, cut: 'data' | 'central'): Promise<HostileArchive> {
  const file = path.join(dir, `truncated-${cut}.zip`);
  const at = await writeZip(file, async (zip) => {
    const first = await zip.add({ name: 'a.csv' }, csv('truncated-a', 300));
    await zip.add({ name: 'b.csv' }, csv('truncated-b', 300));
    const { centralOffset, centralSize } = await zip.finish();
    return cut === 'data'
      ? first.dataOffset + Math.floor(first.compressedSize / 2)
      : centralOffset + Math.floor(centralSize / 2);
  });
  await fsp.truncate(file, at);
  return { path: file, expectRejection: 'truncated' };
}

/** `truncated.tar.gz`: a tar.gz of 64 KiB of incompressible data cut in half: the deflate stream stops mid-block. */
export async function truncatedTarGz(dir: string): Promise<HostileArchive> {
  const file = path.join(dir, 'truncated.tar.gz');
  await writeTar(file, [{ header: { name: 'a.bin' }, body: patternBytes(64 * 1024) }], true);
  const { size } = await fsp.stat(file);
  await fsp.truncate(file, Math.floor(size / 2));
  return { path: file, expectRejection: 'truncated' };
}

/** `zip-duplicate.zip` / `tar-duplicate.tar`: two members named `dup.csv` with different content. */
export async function duplicateNameArchive(dir: string, format: 'zip' | 'tar'): Promise<HostileArchive> {
  const file = path.join(dir, `${format}-duplicate.${format}`);
  const members = [
    { name: 'dup.csv', bytes: csv('first') },
    { name: 'dup.csv', bytes: csv('second') },
  ];
  if (format === 'zip') await simpleZip(file, members);
  else await writeTar(file, tarFiles(members));
  return { path: file, expectRejection: 'duplicate name' };
}
