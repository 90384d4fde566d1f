/** File input and output for commands: stdin as '-', atomic writes that never clobber by accident. */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { DkmsError, badInput } from '../errors.js';
import { isSpecialFile, writeFileAtomic } from '../files.js';
import type { CommandIo } from './io.js';

/** The file at `path`, or the command's standard input for '-'. */
export function readInput(io: CommandIo, path: string): Uint8Array {
  if (path === '-') return io.stdin();
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new DkmsError('IO_ERROR', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/**
 * Writes `data` to `path` through a temporary file and a rename, so the file is either the
 * old one or the complete new one. Refuses to replace an existing file unless `force`.
 */
export function writeOutput(path: string, data: Uint8Array, options: { force?: boolean; mode?: number } = {}): void {
  checkOutput(path, options.force === true);
  writeFileAtomic(path, data, options.mode ?? 0o600);
}

/** FILE_EXISTS if `path` exists and may not be replaced: what writeOutput refuses, for a command to check before its first step. */
export function checkOutput(path: string, force: boolean): void {
  // Writing into a device or pipe (/dev/null, /dev/stdout) replaces nothing.
  if (!force && existsSync(path) && !isSpecialFile(path)) throw new DkmsError('FILE_EXISTS', `${path} already exists (use --force to replace it)`);
}

/**
 * BAD_INPUT unless the command will be able to write at `path` (`flag` names the option): a file
 * in a directory that exists and is writable, or a directory that exists or can be made. For
 * commands that write their files after other steps, to be refused before the first.
 */
export function checkWritable(path: string, flag: string, kind: 'file' | 'dir'): void {
  const target = resolve(path);
  const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory();
  if (existsSync(target) && isDir(target) !== (kind === 'dir')) throw badInput(`${flag} ${path}: ${kind === 'dir' ? 'not a directory' : 'is a directory'}`);
  let dir = kind === 'dir' && existsSync(target) ? target : dirname(target);
  // A directory to be made is made in the nearest one that exists.
  while (kind === 'dir' && !existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    if (isDir(dir) !== true) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch {
    throw badInput(`${flag} ${path}: cannot write in ${dir}`);
  }
}
