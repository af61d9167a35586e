import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SftppushError } from '../errors.js';

/** The slice of better-sqlite3 the migrator needs. */
export interface MigrationDb {
  exec(sql: string): unknown;
  pragma(sql: string, options: { simple: true }): unknown;
  transaction(fn: () => void): () => void;
}

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

const MIGRATION_FILE = /^(\d{4})_[\w-]+\.sql$/;

/** Reads `NNNN_name.sql` files in version order; a gap or a duplicate number is a packaging error. */
export function readMigrations(dir: string): Migration[] {
  const migrations = readdirSync(dir)
    .flatMap((name) => {
      const match = MIGRATION_FILE.exec(name);
      return match ? [{ version: Number(match[1]), name, sql: readFileSync(path.join(dir, name), 'utf8') }] : [];
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new SftppushError('E_MIGRATIONS', `${dir}: expected migration ${index + 1}, found ${migration.name}`);
    }
  });
  return migrations;
}

/**
 * Applies, each in its own transaction, the migrations newer than the database's `user_version`.
 * Refuses a database written by a newer sftppush: running old code on a newer schema could corrupt it.
 * @returns the versions applied.
 */
export function applyMigrations(db: MigrationDb, migrations: readonly Migration[], file: string): number[] {
  const current = Number(db.pragma('user_version', { simple: true }));
  const latest = migrations.length;
  if (current > latest) {
    throw new SftppushError(
      'E_LEDGER_NEWER',
      `${file}: ledger schema version ${current} is newer than this sftppush understands (${latest}); upgrade sftppush`,
    );
  }
  const applied: number[] = [];
  for (const migration of migrations.slice(current)) {
    db.transaction(() => {
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`, { simple: true });
    })();
    applied.push(migration.version);
  }
  return applied;
}
