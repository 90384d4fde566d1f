/** Durable file writes shared by every layer. */
import { chmodSync, closeSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { DkmsError } from './errors.js';

/** Writes through a temporary file, flushed, then renamed: the file is the old one or the whole new one. */
export function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): void {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(temp, data, { mode, flush: true });
    renameSync(temp, path);
  } catch (e) {
    rmSync(temp, { force: true });
    throw new DkmsError('IO_ERROR', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/**
 * Makes a SQLite file private to this user before it is opened: creates it (empty) as 0600 if
 * it does not exist, and takes group and other access away from it and from its write-ahead
 * log and shared-memory files if they have any (files of older versions were 0644). SQLite
 * gives the files it creates beside a database the database's own mode.
 */
export function privateSqliteFile(path: string): void {
  try {
    closeSync(openSync(path, 'a', 0o600));
    for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
      let mode: number;
      try {
        mode = statSync(file).mode;
      } catch {
        continue;
      }
      if ((mode & 0o077) !== 0) chmodSync(file, mode & 0o700);
    }
  } catch (e) {
    throw new DkmsError('IO_ERROR', `cannot make ${path} private: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
