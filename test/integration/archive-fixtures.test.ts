// The archive fixture generators (test/support/archives.ts) make what they claim. Checked without sftppush: by
// Info-ZIP unzip, GNU tar and gzip where the machine has them, and by yauzl and tar-stream (the parsers sftppush
// builds on) for what those tools hide: raw zip names, declared sizes, what a pax or GNU header decodes to.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import yauzl from 'yauzl';
import {
  GiB,
  MiB,
  concatenatedGz,
  corruptGzip,
  cp437NamesZip,
  crcMismatchZip,
  dataDescriptorZip,
  duplicateNameArchive,
  emptyTar,
  emptyZip,
  encryptedZip,
  gnuLongNameTar,
  gzFile,
  gzipBomb,
  gzipTrailingGarbage,
  largeMemberArchive,
  manyMembersTar,
  memberDigest,
  overlappingZip,
  paxLongNameTar,
  selfExtractingZip,
  sizeLieZip,
  specialMemberTar,
  tarArchive,
  tarGzArchive,
  tarGzNamedGz,
  tarThroughSymlink,
  textNamedZip,
  tgzArchive,
  truncatedTarGz,
  truncatedZip,
  unsafeNameArchive,
  utf8NamesZip,
  zip64Zip,
  zipArchive,
  zipBomb,
  zipDirectoriesOnly,
  type GoodArchive,
  type HostileArchive,
  type SpecialTarMember,
  type UnsafeName,
} from '../support/archives.js';
import { tempDir } from '../support/fixtures.js';

type Digest = { size: number; sha256: string };

const onPath = (command: string): boolean =>
  (process.env.PATH ?? '').split(path.delimiter).some((dir) => dir !== '' && fs.existsSync(path.join(dir, command)));
const UNZIP = onPath('unzip');
const TAR = onPath('tar');
const GZIP = onPath('gzip');
const skipWithout = (tool: string, present: boolean) => ({ skip: present ? false : `no ${tool} on this machine` });

/** Runs a command to completion; a non-zero exit is a result, not an error. */
function run(command: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 16 * MiB }, (error, stdout, stderr) => {
      if (!error) resolve({ code: 0, out: stdout + stderr });
      else if (typeof error.code === 'number') resolve({ code: error.code, out: stdout + stderr });
      else reject(new Error(`could not run ${command}: ${error.message}`, { cause: error }));
    });
  });
}

/** Size and sha256 of a command's stdout, hashed as it streams (for members too large to buffer). */
async function digestOfOutput(command: string, args: string[]): Promise<Digest> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const closed = once(child, 'close');
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of child.stdout) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const [code] = (await closed) as [number];
  assert.equal(code, 0, `${command} ${args.join(' ')}`);
  return { size, sha256: hash.digest('hex') };
}

const digest = (bytes: Buffer): Digest => memberDigest(bytes);

interface ZipRead {
  entry: yauzl.Entry;
  /** null for directories and encrypted entries, which are not read. */
  content: Digest | null;
}

/** Every entry of a zip, in central-directory order, each file read through yauzl (which checks sizes, not CRCs). */
async function readZip(file: string, options: yauzl.Options = {}): Promise<ZipRead[]> {
  const zip = await yauzl.openPromise(file, { lazyEntries: true, ...options });
  const read: ZipRead[] = [];
  return new Promise((resolve, reject) => {
    zip.on('error', reject);
    zip.on('end', () => resolve(read));
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileNameRaw.at(-1) === 0x2f || entry.isEncrypted()) {
        read.push({ entry, content: null });
        zip.readEntry();
        return;
      }
      zip.openReadStream(entry, (error, stream) => {
        if (error) return reject(error);
        const chunks: Buffer[] = [];
        stream.on('data', (chunk: Buffer) => chunks.push(chunk));
        stream.on('error', reject);
        stream.on('end', () => {
          read.push({ entry, content: digest(Buffer.concat(chunks)) });
          zip.readEntry();
        });
      });
    });
    zip.readEntry();
  });
}

/** Headers of a (small) tar or tar.gz as tar-stream decodes them. */
async function tarStreamHeaders(file: string): Promise<tar.Header[]> {
  const raw = await fsp.readFile(file);
  const extract = tar.extract();
  extract.end(raw[0] === 0x1f ? zlib.gunzipSync(raw) : raw);
  const headers: tar.Header[] = [];
  for await (const entry of extract) {
    headers.push(entry.header);
    entry.resume();
  }
  return headers;
}

/**
 * The peak growth of this process's RSS while `work` runs, sampled every 10 ms, and how long it took. Run a small
 * instance of the same work first: the first use of zlib, the thread pool and fresh JIT code costs MiBs once.
 */
/**
 * Writes a 1 GiB bomb (after a 1 MiB warm-up, so module loading is not counted) and checks it took under 20 s
 * and under 40 MiB of RSS growth, and that it is one the ratio limit must reject.
 */
async function writtenInBoundedTimeAndMemory(
  t: TestContext,
  dir: string,
  make: (dir: string, size?: number) => Promise<HostileArchive>,
): Promise<HostileArchive> {
  await make(dir, MiB);
  const { result: fixture, rssGrowth, ms } = await measured(() => make(dir));
    assert.equal(fixture.expectRejection, 'ratio');
    t.diagnostic(`written in ${Math.round(ms)} ms`);
    assert.ok(ms < 20_000, `${ms} ms`);
    const grew = `RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB`;
    t.diagnostic(grew);
    assert.ok(rssGrowth < 40 * MiB, grew);
  return fixture;
}

async function measured<T>(work: () => Promise<T>): Promise<{ result: T; rssGrowth: number; ms: number }> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 10);
  const start = performance.now();
  try {
    const result = await work();
    return { result, rssGrowth: Math.max(peak, process.memoryUsage.rss()) - base, ms: performance.now() - start };
  } finally {
    clearInterval(sample);
  }
}

async function assertZipMembers(fixture: GoodArchive): Promise<ZipRead[]> {
  const read = await readZip(fixture.path);
  assert.deepEqual(
    read.filter((r) => r.content !== null).map((r) => ({ name: r.entry.fileName, content: r.content })),
    fixture.members.map((m) => ({ name: m.name, content: memberDigest(m.bytes) })),
  );
  if (UNZIP) {
    const test = await run('unzip', ['-tq', fixture.path]);
    if (read.length === 0) assert.match(test.out, /zipfile is empty/); // a warning: exit code 1
    else assert.equal(test.code, 0, test.out);
  }
  return read;
}

async function assertTarMembers(fixture: GoodArchive): Promise<void> {
  const z = fixture.format === 'tar.gz' ? 'z' : '';
  const listing = await run('tar', [`-tv${z}f`, fixture.path]);
  assert.equal(listing.code, 0, listing.out);
  const regular = listing.out.split('\n').filter((line) => line.startsWith('-'));
  assert.equal(regular.length, fixture.members.length, listing.out);
  for (const m of fixture.members) {
    assert.deepEqual(await digestOfOutput('tar', [`-xO${z}f`, fixture.path, m.name]), memberDigest(m.bytes), m.name);
  }
}

void describe('archive fixtures: good zips', () => {
  const generators = { zipArchive, utf8NamesZip, zip64Zip, dataDescriptorZip, zipDirectoriesOnly, emptyZip };
  for (const [name, generate] of Object.entries(generators)) {
    void it(`${name}: every member reads back with its bytes, and unzip -t passes`, async (t) => {
      const fixture = await generate(tempDir(t, 'archive-fixtures'));
      assert.equal(fixture.format, 'zip');
      await assertZipMembers(fixture);
    });
  }

  void it('zipArchive stores a.csv, deflates b.csv, and has the directory entry y/', async (t) => {
    const read = await assertZipMembers(await zipArchive(tempDir(t, 'archive-fixtures')));
    assert.deepEqual(
      read.map((r) => [r.entry.fileName, r.entry.compressionMethod]),
      [['a.csv', 0], ['b.csv', 8], ['y/', 0], ['y/z.csv', 8]],
    );
  });

  void it('zipDirectoriesOnly has three directory entries; emptyZip is the 22-byte EOCD alone', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const dirs = await readZip((await zipDirectoriesOnly(dir)).path);
    assert.deepEqual(dirs.map((r) => r.entry.fileName), ['a/', 'a/b/', 'c/']);
    const empty = await fsp.readFile((await emptyZip(dir)).path);
    assert.equal(empty.length, 22);
    assert.equal(empty.toString('latin1', 0, 4), 'PK\x05\x06');
  });

  void it('utf8NamesZip sets bit 11; cp437NamesZip clears it and its 0x82 bytes decode as é', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    for (const r of await readZip((await utf8NamesZip(dir)).path)) assert.equal(r.entry.generalPurposeBitFlag & 0x800, 0x800);
    const cp437 = await cp437NamesZip(dir);
    const [only] = await assertZipMembers(cp437);
    assert.equal(only?.entry.generalPurposeBitFlag, 0);
    assert.deepEqual(only?.entry.fileNameRaw, Buffer.from('r\x82sum\x82/caf\x82.csv', 'latin1'));
  });

  void it('zip64Zip has zip64 extras, a zip64 EOCD record and locator, and an EOCD that defers to them', async (t) => {
    const fixture = await zip64Zip(tempDir(t, 'archive-fixtures'));
    const bytes = await fsp.readFile(fixture.path);
    const eocd = bytes.subarray(-22);
    assert.equal(bytes.subarray(-22 - 20, -22).readUInt32LE(0), 0x07064b50, 'locator right before the EOCD');
    assert.equal(bytes.readUInt32LE(bytes.subarray(-22 - 20, -22).readUInt32LE(8)), 0x06064b50, 'the record it points at');
    assert.deepEqual([eocd.readUInt16LE(10), eocd.readUInt32LE(12), eocd.readUInt32LE(16)], [0xffff, 0xffffffff, 0xffffffff]);
    assert.equal(bytes.readUInt32LE(18), 0xffffffff, 'local compressed size defers to the extra');
    assert.equal(bytes.readUInt16LE(30 + bytes.readUInt16LE(26)), 0x0001, 'zip64 extra field');
  });

  void it('dataDescriptorZip: bit 3 set, CRC and sizes 0 in local headers, a signed descriptor after the data', async (t) => {
    const fixture = await dataDescriptorZip(tempDir(t, 'archive-fixtures'));
    const bytes = await fsp.readFile(fixture.path);
    for (const r of await readZip(fixture.path)) {
      const local = bytes.subarray(r.entry.relativeOffsetOfLocalHeader);
      assert.equal(local.readUInt16LE(6) & 0x8, 0x8);
      assert.deepEqual([local.readUInt32LE(14), local.readUInt32LE(18), local.readUInt32LE(22)], [0, 0, 0]);
      const after = bytes.subarray(r.entry.relativeOffsetOfLocalHeader + 30 + local.readUInt16LE(26) + r.entry.compressedSize);
      assert.deepEqual([after.readUInt32LE(0), after.readUInt32LE(4)], [0x08074b50, r.entry.crc32]);
    }
  });
});

void describe('archive fixtures: good tars and gzips', () => {
  const tars = { tarArchive, tarGzArchive, tgzArchive, tarGzNamedGz, paxLongNameTar, gnuLongNameTar };
  for (const [name, generate] of Object.entries(tars)) {
    void it(`${name}: GNU tar lists and extracts every member with its bytes`, skipWithout('tar', TAR), async (t) => {
      const fixture = await generate(tempDir(t, 'archive-fixtures'));
      await assertTarMembers(fixture);
      const names = (await tarStreamHeaders(fixture.path)).filter((h) => h.type === 'file').map((h) => h.name);
      assert.deepEqual(names, fixture.members.map((m) => m.name), 'as tar-stream decodes them');
    });
  }

  void it('the names say tar.gz, tgz and gz; the content of all three is gzip', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const fixtures = [await tarGzArchive(dir), await tgzArchive(dir), await tarGzNamedGz(dir)];
    assert.deepEqual(fixtures.map((f) => path.basename(f.path)), ['tarball.tar.gz', 'tgzball.tgz', 'disguised.gz']);
    for (const fixture of fixtures) {
      assert.equal(fixture.format, 'tar.gz');
      assert.deepEqual([...(await fsp.readFile(fixture.path)).subarray(0, 2)], [0x1f, 0x8b]);
    }
  });

  void it('paxLongNameTar carries its name in a pax header; gnuLongNameTar in a ././@LongLink of type L', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const pax = await fsp.readFile((await paxLongNameTar(dir)).path);
    assert.equal(String.fromCharCode(pax[156]!), 'x');
    const gnu = await fsp.readFile((await gnuLongNameTar(dir)).path);
    assert.equal(gnu.toString('latin1', 0, 13), '././@LongLink');
    assert.equal(String.fromCharCode(gnu[156]!), 'L');
  });

  void it('emptyTar is the two zero blocks alone, which GNU tar lists as empty', skipWithout('tar', TAR), async (t) => {
    const fixture = await emptyTar(tempDir(t, 'archive-fixtures'));
    assert.deepEqual(await fsp.readFile(fixture.path), Buffer.alloc(1024));
    assert.deepEqual(await run('tar', ['-tf', fixture.path]), { code: 0, out: '' });
  });

  void it('manyMembersTar(2000) holds 2,000 members in order', skipWithout('tar', TAR), async (t) => {
    const fixture = await manyMembersTar(tempDir(t, 'archive-fixtures'), 2000);
    const listing = await run('tar', ['-tf', fixture.path]);
    assert.deepEqual(listing.out.trim().split('\n'), fixture.members.map((m) => m.name));
    assert.equal(fixture.members.length, 2000);
  });

  void it('gzFile and concatenatedGz: gzip -t passes and gzip -dc gives the member', skipWithout('gzip', GZIP), async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    for (const fixture of [await gzFile(dir), await concatenatedGz(dir)]) {
      assert.equal(fixture.format, 'gz');
      assert.equal((await run('gzip', ['-t', fixture.path])).code, 0);
      const [member] = fixture.members;
      assert.deepEqual(await digestOfOutput('gzip', ['-dc', fixture.path]), memberDigest(member!.bytes));
    }
  });

  void it('concatenatedGz is three gzip members whose contents join into the one member', async (t) => {
    const fixture = await concatenatedGz(tempDir(t, 'archive-fixtures'));
    const bytes = await fsp.readFile(fixture.path);
    const header = zlib.gzipSync('').subarray(0, 10); // Node's fixed 10-byte member header
    let members = 0;
    for (let at = bytes.indexOf(header); at !== -1; at = bytes.indexOf(header, at + 1)) members++;
    assert.equal(members, 3);
    assert.deepEqual(zlib.gunzipSync(bytes), fixture.members[0]?.bytes);
  });

  void it('selfExtractingZip does not start with PK, yet unzip finds its zip; textNamedZip is no zip', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const sfx = await selfExtractingZip(dir);
    const text = await textNamedZip(dir);
    for (const fixture of [sfx, text]) {
      assert.equal(fixture.format, 'plain');
      const bytes = await fsp.readFile(fixture.path);
      assert.notEqual(bytes.toString('latin1', 0, 2), 'PK');
      assert.deepEqual(fixture.members, [{ name: path.basename(fixture.path), bytes }]);
    }
    if (UNZIP) {
      assert.equal((await run('unzip', ['-tq', sfx.path])).code, 0);
      assert.notEqual((await run('unzip', ['-tq', text.path])).code, 0);
    }
  });

  for (const format of ['zip', 'tar'] as const) {
    // No RSS bound here: at 50 MiB, collectable garbage (every chunk is a fresh buffer) dominates RSS, so it could not
    // tell streaming from buffering. ZipWriter.add's streaming is bounded by the zipBomb test below (1 GiB through it).
    void it(`largeMemberArchive(${format}): an odd-sized member, then the 50 MiB one, read back whole`, async (t) => {
      const dir = tempDir(t, 'archive-fixtures');
      for (const [options, size] of [
        [{ format, size: 3 * MiB + 5 }, 3 * MiB + 5],
        [{ format }, 50 * MiB],
      ] as const) {
        const fixture = await largeMemberArchive(dir, options);
        const [member] = fixture.members;
        assert.equal(memberDigest(member!.bytes).size, size);
        const [command, args]: [string, string[]] =
          format === 'zip' ? ['unzip', ['-p', fixture.path, 'large.bin']] : ['tar', ['-xOf', fixture.path, 'large.bin']];
        if (onPath(command)) assert.deepEqual(await digestOfOutput(command, args), memberDigest(member!.bytes));
      }
    });
  }
});

void describe('archive fixtures: hostile archives', () => {
  void it('gzipBomb: 1 GiB of zeros in under 5 MB, written in < 20 s and bounded memory', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const fixture = await writtenInBoundedTimeAndMemory(t, dir, gzipBomb);
    const bytes = await fsp.readFile(fixture.path);
    assert.ok(bytes.length < 5_000_000, `${bytes.length} bytes`);
    assert.equal(bytes.readUInt32LE(bytes.length - 4), GiB % 2 ** 32, 'ISIZE: 1 GiB');
    if (GZIP) assert.equal((await run('gzip', ['-t', fixture.path])).code, 0, 'it really inflates, CRC and all');
  });

  void it('zipBomb: one member of 1 GiB of zeros in under 5 MB, written in < 20 s and bounded memory', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const fixture = await writtenInBoundedTimeAndMemory(t, dir, zipBomb);
    assert.ok((await fsp.stat(fixture.path)).size < 5_000_000);
    const zip = await yauzl.openPromise(fixture.path, { lazyEntries: true });
    const first = once(zip, 'entry');
    zip.readEntry();
    const [entry] = (await first) as [yauzl.Entry];
    zip.close();
    assert.equal(entry.uncompressedSize, GiB);
    if (UNZIP) assert.equal((await run('unzip', ['-tq', fixture.path])).code, 0, 'sizes and CRC are true');
  });

  void it('overlappingZip: ten central entries, one local header; unzip sees the overlap', async (t) => {
    const fixture = await overlappingZip(tempDir(t, 'archive-fixtures'));
    assert.equal(fixture.expectRejection, 'overlapping entries');
    const read = await readZip(fixture.path);
    assert.equal(read.length, 10);
    assert.equal(new Set(read.map((r) => r.entry.fileName)).size, 10);
    assert.deepEqual(new Set(read.map((r) => r.entry.relativeOffsetOfLocalHeader)), new Set([0]));
    if (UNZIP) assert.match((await run('unzip', ['-tq', fixture.path])).out, /overlapped components/);
  });

  void it('sizeLieZip declares 10 bytes and inflates to 1000; yauzl refuses it', async (t) => {
    const fixture = await sizeLieZip(tempDir(t, 'archive-fixtures'));
    assert.equal(fixture.expectRejection, 'declared size');
    const [lying] = await readZip(fixture.path, { validateEntrySizes: false });
    assert.equal(lying?.entry.uncompressedSize, 10);
    assert.equal(lying?.content?.size, 1000);
    await assert.rejects(readZip(fixture.path), /too many bytes/);
  });

  void it('crcMismatchZip: unzip -t reports the bad CRC', skipWithout('unzip', UNZIP), async (t) => {
    const fixture = await crcMismatchZip(tempDir(t, 'archive-fixtures'));
    assert.equal(fixture.expectRejection, 'crc');
    const test = await run('unzip', ['-t', fixture.path]);
    assert.notEqual(test.code, 0);
    assert.match(test.out, /b\.csv\s+bad CRC/);
  });

  void it('gzipTrailingGarbage: gzip and Node both skip zero padding silently; text after the member is flagged', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const zeros = await gzipTrailingGarbage(dir, 'zeros');
    const text = await gzipTrailingGarbage(dir, 'text');
    for (const f of [zeros, text]) assert.equal(f.expectRejection, 'trailing bytes');
    const padded = await fsp.readFile(zeros.path);
    assert.deepEqual(padded.subarray(-512), Buffer.alloc(512));
    assert.doesNotThrow(() => zlib.gunzipSync(padded), 'so only an explicit check sees these bytes');
    if (GZIP) {
      assert.equal((await run('gzip', ['-t', zeros.path])).code, 0);
      const test = await run('gzip', ['-t', text.path]);
      assert.equal(test.code, 2);
      assert.match(test.out, /trailing garbage/);
    }
  });

  void it('corruptGzip fails its CRC; truncatedTarGz ends early', skipWithout('gzip', GZIP), async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const corrupt = await corruptGzip(dir);
    assert.equal(corrupt.expectRejection, 'crc');
    assert.match((await run('gzip', ['-t', corrupt.path])).out, /crc error/);
    const truncated = await truncatedTarGz(dir);
    assert.equal(truncated.expectRejection, 'truncated');
    assert.match((await run('gzip', ['-t', truncated.path])).out, /unexpected end of file/);
  });

  for (const cut of ['data', 'central'] as const) {
    void it(`truncatedZip(${cut}): starts like a zip, has no EOCD left`, async (t) => {
      const fixture = await truncatedZip(tempDir(t, 'archive-fixtures'), cut);
      assert.equal(fixture.expectRejection, 'truncated');
      const bytes = await fsp.readFile(fixture.path);
      assert.equal(bytes.readUInt32LE(0), 0x04034b50);
      assert.equal(bytes.indexOf(Buffer.from('PK\x05\x06', 'latin1')), -1);
      assert.equal(bytes.indexOf(Buffer.from('PK\x01\x02', 'latin1')) === -1, cut === 'data');
      await assert.rejects(readZip(fixture.path), /end of central directory/i);
      if (UNZIP) assert.notEqual((await run('unzip', ['-tq', fixture.path])).code, 0);
    });
  }

  void it('tarThroughSymlink: symlink link -> /tmp, then a file link/evil', async (t) => {
    const fixture = await tarThroughSymlink(tempDir(t, 'archive-fixtures'));
    assert.equal(fixture.expectRejection, 'symlink member');
    const headers = await tarStreamHeaders(fixture.path);
    assert.deepEqual(
      headers.map((h) => [h.name, h.type, h.linkname]),
      [['link', 'symlink', '/tmp'], ['link/evil', 'file', null]],
    );
  });

  const unsafe: Record<UnsafeName, string> = {
    traversal: '../evil.txt',
    absolute: '/etc/evil',
    backslash: 'a\\b.txt',
    drive: 'C:/evil.txt',
    nul: 'a\0b.txt',
  };
  for (const [kind, name] of Object.entries(unsafe) as [UnsafeName, string][]) {
    void it(`unsafeNameArchive(${kind}): after ok.csv, a member named ${JSON.stringify(name)} in zip and tar`, async (t) => {
      const dir = tempDir(t, 'archive-fixtures');
      const zip = await unsafeNameArchive(dir, kind, 'zip');
      const raw = await readZip(zip.path, { decodeStrings: false });
      assert.deepEqual(raw.map((r) => r.entry.fileNameRaw), [Buffer.from('ok.csv'), Buffer.from(name)]);
      const tarFixture = await unsafeNameArchive(dir, kind, 'tar');
      assert.deepEqual((await tarStreamHeaders(tarFixture.path)).map((h) => h.name), ['ok.csv', name]);
      assert.equal(zip.expectRejection, tarFixture.expectRejection);
    });
  }

  const special: Record<SpecialTarMember, [tarStreamType: string, gnuTarLetter: string]> = {
    symlink: ['symlink', 'l'],
    hardlink: ['link', 'h'],
    'character-device': ['character-device', 'c'],
    'block-device': ['block-device', 'b'],
    fifo: ['fifo', 'p'],
  };
  for (const [kind, [type, letter]] of Object.entries(special) as [SpecialTarMember, [string, string]][]) {
    void it(`specialMemberTar(${kind}): ok.csv, then a ${type} member`, async (t) => {
      const fixture = await specialMemberTar(tempDir(t, 'archive-fixtures'), kind);
      assert.deepEqual((await tarStreamHeaders(fixture.path)).map((h) => h.type), ['file', type]);
      if (TAR) {
        const listing = await run('tar', ['-tvf', fixture.path]);
        assert.deepEqual(listing.out.split('\n').filter((l) => /^[-a-z]{10} /.test(l)).map((l) => l[0]), ['-', letter]);
      }
    });
  }

  void it('encryptedZip: bit 0 set, and only the password opens it', async (t) => {
    const fixture = await encryptedZip(tempDir(t, 'archive-fixtures'));
    if ('skip' in fixture) return t.skip(fixture.skip);
    assert.equal(fixture.expectRejection, 'encrypted');
    const [entry] = await readZip(fixture.path);
    assert.equal(entry?.entry.isEncrypted(), true);
    if (UNZIP) assert.equal((await run('unzip', ['-tq', '-P', 'secret', fixture.path])).code, 0);
  });

  void it('duplicateNameArchive: two dup.csv with different content, in zip and in tar', async (t) => {
    const dir = tempDir(t, 'archive-fixtures');
    const zip = await duplicateNameArchive(dir, 'zip');
    const read = await readZip(zip.path);
    assert.deepEqual(read.map((r) => r.entry.fileName), ['dup.csv', 'dup.csv']);
    assert.notDeepEqual(read[0]?.content, read[1]?.content);
    const tarFixture = await duplicateNameArchive(dir, 'tar');
    assert.deepEqual((await tarStreamHeaders(tarFixture.path)).map((h) => h.name), ['dup.csv', 'dup.csv']);
    for (const f of [zip, tarFixture]) assert.equal(f.expectRejection, 'duplicate name');
  });
});
