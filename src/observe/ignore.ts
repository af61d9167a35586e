import picomatch from 'picomatch';

/** One target's ignore test. Pure: no I/O. */
export interface IgnoreMatcher {
  /** Whether the path is ignored: a segment glob matches any of its segments, or a path glob the whole path. */
  (relPath: string): boolean;
  /**
   * The same answer for an entry of a directory already known not to be ignored (a walk, which prunes ignored
   * directories): only the entry's own name and the path globs are tested, not every segment again.
   */
  entry(relPath: string, name: string): boolean;
}

/**
 * Builds the ignore test for one target. A glob without '/' matches any single path segment, so `.*` hides
 * dot-files and everything under dot-directories, and `*.filepart` matches at any depth; a glob with '/'
 * matches the whole relative path.
 */
export function createIgnoreMatcher(globs: readonly string[]): IgnoreMatcher {
  const segmentGlobs = globs.filter((glob) => !glob.includes('/'));
  const pathGlobs = globs.filter((glob) => glob.includes('/'));
  const matchesSegment = segmentGlobs.length > 0 ? picomatch(segmentGlobs, { dot: true }) : () => false;
  const matchesPath = pathGlobs.length > 0 ? picomatch(pathGlobs, { dot: true }) : () => false;
  return Object.assign((relPath: string) => matchesPath(relPath) || relPath.split('/').some((segment) => matchesSegment(segment)), {
    entry: (relPath: string, name: string) => matchesSegment(name) || matchesPath(relPath),
  });
}
