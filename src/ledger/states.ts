/** The life of one file generation (DESIGN.md, "Ledger states"). Pure: no I/O. */
export const FILE_STATES = ['pending', 'working', 'retry', 'archived', 'quarantined', 'gone'] as const;
export type FileState = (typeof FILE_STATES)[number];

const ALLOWED: Readonly<Record<FileState, readonly FileState[]>> = {
  pending: ['working', 'gone'],
  // A worker may find the file vanished; the DESIGN's pending -> gone covers the scanner, this the worker.
  working: ['archived', 'pending', 'retry', 'quarantined', 'gone'],
  // A retry is claimed again, or the path changed (new content starts over) or vanished meanwhile.
  retry: ['working', 'pending', 'gone'],
  archived: [],
  quarantined: [],
  gone: [],
};

/** States in which a row still needs a worker. */
export const ACTIVE_STATES: readonly FileState[] = ['pending', 'working', 'retry'];

export function isTransitionAllowed(from: FileState, to: FileState): boolean {
  return ALLOWED[from].includes(to);
}

export function isFinal(state: FileState): boolean {
  return ALLOWED[state].length === 0;
}
