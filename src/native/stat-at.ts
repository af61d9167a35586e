// Typed wrapper over native/stat.cc: lstat(2) of a batch of names in one directory.
import { constants } from 'node:os';
import type { SourceStat } from '../source/source-fs.js';
import { loadNativeAddon } from './addon.js';

interface NativeStat {
  lstatAt(dir: string, names: readonly string[]): Promise<{ numbers: Float64Array; ctimes: BigInt64Array }>;
}

/** The errno name of a failed lstat, as node:fs reports it (`error.code`). */
export interface StatFailure {
  readonly code: string;
}

/** Values per name in the native result's numbers: errno, regular file, size, mtimeMs, inode. */
const FIELDS = 5;

const ERRNO_NAMES = new Map(Object.entries(constants.errno).map(([name, errno]) => [errno, name]));

/**
 * lstat(2) of `names` in the directory `dir`, in one call run off the JS thread: fstatat(2) relative to
 * the directory, symlinks never followed (neither the names nor `dir` itself), as find does it. Each result
 * is exactly what toSourceStat(lstatSync(`${dir}/${name}`, { bigint: true })) gives, or the errno name of
 * the failure (ENOENT when the name or the directory is gone, ENOTDIR when the directory became something
 * else, ENAMETOOLONG when the full path is PATH_MAX or longer, which could not be archived).
 * @throws NativeAddonLoadError when the addon is not built.
 */
export async function lstatNames(dir: string, names: readonly string[]): Promise<(SourceStat | StatFailure)[]> {
  const { numbers, ctimes } = await loadNativeAddon<NativeStat>().lstatAt(dir, names);
  return names.map((_, i) => {
    const at = i * FIELDS;
    const errno = numbers[at]!;
    if (errno !== 0) return { code: ERRNO_NAMES.get(errno) ?? `errno ${errno}` };
    return { isFile: numbers[at + 1] === 1, sizeBytes: numbers[at + 2]!, mtimeMs: numbers[at + 3]!, inode: numbers[at + 4]!, ctimeNs: ctimes[i]! };
  });
}
