/** Durable file writes shared by every layer. */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
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
