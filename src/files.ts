/** Durable file writes shared by every layer. */
import { chmodSync, closeSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { DkmsError } from './errors.js';

/** Whether `path` is a device, a pipe or a socket (`/dev/null`, `/dev/stdout`, a FIFO): written into, never replaced. */
export function isSpecialFile(path: string): boolean {
  const stat = statSync(path, { throwIfNoEntry: false });
  return stat !== undefined && (stat.isCharacterDevice() || stat.isBlockDevice() || stat.isFIFO() || stat.isSocket());
}

/**
 * Writes through a temporary file, flushed, then renamed: the file is the old one or the whole
 * new one. A device or pipe (`/dev/null`, `/dev/stdout`) is written into: a rename would put a
 * plain file in the device's place.
 */
export function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): void {
  if (isSpecialFile(path)) {
    try {
      writeFileSync(path, data);
      return;
    } catch (e) {
      throw new DkmsError('IO_ERROR', `cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
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
