/**
 * Opening a dkms SQLite file the one way every store does: WAL, synchronous=FULL, held under an
 * exclusive lock while open (one process per file; the OS drops the lock even after kill -9),
 * and a schema created in one transaction, so a crash during the first start leaves an empty
 * file rather than half a schema.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DkmsError, type ErrorCode } from './errors.js';
import { privateSqliteFile } from './files.js';

export interface SqliteFileOptions {
  /** Four ASCII letters as a number: what kind of dkms file this is. */
  readonly applicationId: number;
  readonly version: number;
  readonly schema: string;
  /** SQL that takes a file of format `n` to `n + 1`, by `n`: older files are upgraded in place. */
  readonly migrations?: Readonly<Record<number, string>>;
  /** What the file is, for messages: "ledger store", "agency store". */
  readonly what: string;
  readonly busy: ErrorCode;
  readonly damaged: ErrorCode;
  readonly busyHint: string;
}

/** Maps a SQLite failure to the store's codes; DkmsErrors pass through. */
export function sqliteError(e: unknown, path: string, options: Pick<SqliteFileOptions, 'what' | 'busy' | 'damaged' | 'busyHint'>): DkmsError {
  if (e instanceof DkmsError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new DkmsError(options.busy, `${options.what} ${path} is in use by another process (${options.busyHint})`);
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new DkmsError(options.damaged, `${options.what} ${path} is damaged`);
  }
  return new DkmsError('IO_ERROR', `${options.what} ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

export function openSqliteFile(path: string, options: SqliteFileOptions): Database.Database {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  privateSqliteFile(path);
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: 250 });
  } catch (e) {
    throw sqliteError(e, path, options);
  }
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
    const version = Number(db.pragma('user_version', { simple: true }));
    const applicationId = db.pragma('application_id', { simple: true });
    if (version === 0 && applicationId === 0) {
      db.transaction(() => {
        db.exec(options.schema);
        db.pragma(`application_id = ${options.applicationId}`);
        db.pragma(`user_version = ${options.version}`);
      })();
    } else if (applicationId === options.applicationId && version < options.version && canMigrate(options, version)) {
      db.transaction(() => {
        for (let v = version; v < options.version; v++) db.exec(options.migrations?.[v] ?? '');
        db.pragma(`user_version = ${options.version}`);
      })();
    } else if (applicationId !== options.applicationId || version !== options.version) {
      throw new DkmsError(options.damaged, `${path} is not a dkms ${options.what} of format ${options.version}`);
    }
    return db;
  } catch (e) {
    db.close();
    throw sqliteError(e, path, options);
  }
}

function canMigrate(options: SqliteFileOptions, from: number): boolean {
  for (let v = from; v < options.version; v++) if (options.migrations?.[v] === undefined) return false;
  return true;
}

/** Opens the file and builds the store over it; a store that fails to build closes the file. */
export function openStore<T>(path: string, options: SqliteFileOptions, make: (db: Database.Database) => T): T {
  const db = openSqliteFile(path, options);
  try {
    return make(db);
  } catch (e) {
    db.close();
    throw sqliteError(e, path, options);
  }
}

/** Runs a synchronous store operation as a promise, with SQLite failures mapped to the store's codes. */
export function storeRunner(path: string, options: SqliteFileOptions): <T>(fn: () => T) => Promise<T> {
  return <T>(fn: () => T): Promise<T> => {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(sqliteError(e, path, options));
    }
  };
}
