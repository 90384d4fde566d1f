/** File input and output for commands: stdin as '-', atomic writes that never clobber by accident. */
import { existsSync, readFileSync } from 'node:fs';
import { DkmsError } from '../errors.js';
import { writeFileAtomic } from '../files.js';

export function readInput(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path === '-' ? 0 : path));
  } catch (e) {
    throw new DkmsError('IO_ERROR', `cannot read ${path === '-' ? 'standard input' : path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/**
 * Writes `data` to `path` through a temporary file and a rename, so the file is either the
 * old one or the complete new one. Refuses to replace an existing file unless `force`.
 */
export function writeOutput(path: string, data: Uint8Array, options: { force?: boolean; mode?: number } = {}): void {
  if (options.force !== true && existsSync(path)) {
    throw new DkmsError('FILE_EXISTS', `${path} already exists (use --force to replace it)`);
  }
  writeFileAtomic(path, data, options.mode ?? 0o600);
}
