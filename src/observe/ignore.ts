import picomatch from 'picomatch';

/**
 * Builds the ignore test for one target. A glob without '/' matches any single path segment, so `.*` hides
 * dot-files and everything under dot-directories, and `*.filepart` matches at any depth; a glob with '/'
 * matches the whole relative path. Pure: no I/O.
 */
export function createIgnoreMatcher(globs: readonly string[]): (relPath: string) => boolean {
  const segmentGlobs = globs.filter((glob) => !glob.includes('/'));
  const pathGlobs = globs.filter((glob) => glob.includes('/'));
  const matchesSegment = segmentGlobs.length > 0 ? picomatch(segmentGlobs, { dot: true }) : () => false;
  const matchesPath = pathGlobs.length > 0 ? picomatch(pathGlobs, { dot: true }) : () => false;
  return (relPath) => matchesPath(relPath) || relPath.split('/').some((segment) => matchesSegment(segment));
}
