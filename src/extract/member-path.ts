import { ArchiveRejectedError } from '../errors.js';

/**
 * The path a member is stored under, from the name the archive gives it: `.` segments and repeated or
 * trailing slashes dropped (`./x.csv` is `x.csv`, as `tar -C dir .` writes it). Pure.
 * @returns '' for the archive's root directory entry (`./`), which stores nothing.
 * @throws ArchiveRejectedError for a name that could write outside its folder or cannot name one object:
 *   empty, a NUL, a backslash (a Windows separator some extractors honour), a drive letter, absolute, `..`.
 */
export function memberPath(raw: string): string {
  if (raw === '') throw new ArchiveRejectedError('empty name', raw, 'a member without a name');
  if (raw.includes('\0')) throw new ArchiveRejectedError('NUL in name', raw, 'a name with a NUL byte');
  if (raw.includes('\\')) throw new ArchiveRejectedError('backslash in name', raw, 'a Windows separator could write elsewhere');
  if (/^[A-Za-z]:/.test(raw)) throw new ArchiveRejectedError('drive letter', raw, 'a Windows absolute path');
  if (raw.startsWith('/')) throw new ArchiveRejectedError('absolute path', raw, 'members must be relative');
  const segments = raw.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw new ArchiveRejectedError('path traversal', raw, 'a ".." segment');
  return segments.join('/');
}
