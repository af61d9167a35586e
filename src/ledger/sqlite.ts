// better-sqlite3 reads SQLITE_USE_URI once, when its addon loads at the first connection: URI filenames let
// LedgerReader open a stopped service's ledger `immutable` where it may not create the -wal (see reader.ts).
// Every ledger path is absolute, so no other open is ever taken for a URI.
process.env.SQLITE_USE_URI = '1';

export { default as Database } from 'better-sqlite3';
