/** The raw limit several benches measure their storage against: single-row SQLite commits. */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { opsPerSecond } from './report.js';

/**
 * Commits per second of one `rowBytes` row each into a fresh SQLite file at `path`, set up as
 * the project's stores are (exclusive lock, WAL, synchronous=FULL): what one durable write
 * costs on this disk.
 */
export function rawSqliteCommitsPerSecond(path: string, commits: number, rowBytes: number): number {
  return withRawTable(path, rowBytes, (db, insert, value) => opsPerSecond(commits, (i) => insert.run(`row-${i}`, value)));
}

/** A fresh SQLite file at `path` set up as the project's stores are, with one table of name → `rowBytes` value, for `use`. */
function withRawTable<T>(path: string, rowBytes: number, use: (db: Database.Database, insert: Database.Statement<[string, Buffer]>, value: Buffer) => T): T {
  const db = new Database(path);
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (name TEXT PRIMARY KEY, value BLOB NOT NULL)');
    return use(db, db.prepare<[string, Buffer]>('INSERT INTO t (name, value) VALUES (?, ?)'), randomBytes(rowBytes));
  } finally {
    db.close();
  }
}

/** Reads by key per second of `reads` rows of `rowBytes` each from a fresh SQLite file at `path`, set up as above. */
export function rawSqliteReadsPerSecond(path: string, reads: number, rowBytes: number): number {
  return withRawTable(path, rowBytes, (db, insert, value) => {
    db.transaction(() => {
      for (let i = 0; i < reads; i++) insert.run(`row-${i}`, value);
    })();
    const read = db.prepare<[string], { value: Buffer }>('SELECT value FROM t WHERE name = ?');
    return opsPerSecond(reads, (i) => read.get(`row-${i}`));
  });
}
