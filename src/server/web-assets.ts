/**
 * The web dashboard's built files (Vite's output, `dist/web/` of the package), read once into
 * memory when a server starts and served from there: no request ever touches the filesystem,
 * so no URL can name a file outside the build (docs/dashboard.md, "Serving").
 */
import type { Dirent } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { sha256, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

/** One file of the build, ready to send. */
export interface WebAsset {
  readonly body: Buffer;
  /** The Content-Type it is sent with. */
  readonly type: string;
  /** A strong validator: the quoted SHA-256 of the body (base64url). */
  readonly etag: string;
  /** Content-hashed by Vite (under `assets/`): cached for a year and never revalidated. */
  readonly immutable: boolean;
}

/** The build's files by URL path under `/ui/`: `/ui/index.html`, `/ui/assets/main-3f9a.js`. */
export type WebAssets = ReadonlyMap<string, WebAsset>;

/** Where the dashboard lives on a server; the build's files are served below it. */
export const WEB_ROOT = '/ui/';

/** Bounds on what a build may hold: it is kept in memory for as long as the server runs. */
export interface WebLimits {
  /** Total bytes of every file (default 20 MiB). */
  readonly maxBytes?: number;
  /** Number of files (default 500). */
  readonly maxFiles?: number;
}

export const MAX_WEB_BYTES = 20 * 1024 * 1024;
export const MAX_WEB_FILES = 500;

/** What each kind of file is sent as; anything else is `application/octet-stream` (never sniffed: nosniff). */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The Content-Type of a file named `name`. */
export function contentTypeOf(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/** A strong ETag for `body`: the same bytes always get the same tag, on every server. */
export function etagOf(body: Uint8Array): string {
  return `"${toBase64url(sha256(body))}"`;
}

/** An asset made from `body` (a file of the build, or what the server writes itself, as config.json). */
export function webAsset(body: Buffer, type: string, immutable = false): WebAsset {
  return { body, type, etag: etagOf(body), immutable };
}

const ioError = (path: string, e: unknown): DkmsError =>
  new DkmsError('IO_ERROR', `cannot read the dashboard's ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e });

/** The file at `path`, unless it is larger than `room` bytes (then BAD_INPUT, saying `tooLarge()`). */
async function readBounded(path: string, room: number, tooLarge: () => string): Promise<Buffer> {
  let body: Buffer;
  try {
    if ((await stat(path)).size > room) throw new DkmsError('BAD_INPUT', tooLarge());
    body = await readFile(path);
  } catch (e) {
    throw e instanceof DkmsError ? e : ioError(path, e);
  }
  // A file that grew between the two calls.
  if (body.length > room) throw new DkmsError('BAD_INPUT', tooLarge());
  return body;
}

/**
 * Reads the build in `dir` into memory: every regular file, keyed by its URL path under
 * `/ui/`. Names beginning with a dot are left out, `.vite/` (Vite's manifest) among them.
 * Returns undefined when `dir/index.html` is not there (the dashboard was not built).
 *
 * @throws DkmsError BAD_INPUT when the build holds more than `limits` allow, or an entry that is
 *   neither a file nor a directory (a symbolic link, a socket); IO_ERROR when a file cannot be read.
 * @example
 *   const assets = await loadWebAssets(fileURLToPath(new URL('dist/web/', packageDir())));
 *   assets?.get('/ui/index.html')?.type; // 'text/html; charset=utf-8'
 */
export async function loadWebAssets(dir: string, limits: WebLimits = {}): Promise<WebAssets | undefined> {
  const maxBytes = limits.maxBytes ?? MAX_WEB_BYTES;
  const maxFiles = limits.maxFiles ?? MAX_WEB_FILES;
  try {
    if (!(await stat(join(dir, 'index.html'))).isFile()) return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw ioError(join(dir, 'index.html'), e);
  }
  const assets = new Map<string, WebAsset>();
  let bytes = 0;
  // Directories still to read, as paths relative to dir ('' is dir itself).
  const pending = [''];
  for (let relative = pending.pop(); relative !== undefined; relative = pending.pop()) {
    let entries: Dirent[];
    try {
      entries = await readdir(join(dir, relative), { withFileTypes: true });
    } catch (e) {
      throw ioError(join(dir, relative), e);
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) {
        pending.push(path);
        continue;
      }
      if (!entry.isFile())
        throw new DkmsError('BAD_INPUT', `the dashboard's ${join(dir, path)} is not a regular file: a build holds only files and directories`);
      if (assets.size >= maxFiles) throw new DkmsError('BAD_INPUT', `the dashboard in ${dir} holds more than ${maxFiles} files: is it the right directory?`);
      // Sized before it is read: a stray large file is refused without being loaded.
      const body = await readBounded(
        join(dir, path),
        maxBytes - bytes,
        () => `the dashboard in ${dir} holds more than ${maxBytes} bytes: is it the right directory?`,
      );
      bytes += body.length;
      assets.set(`${WEB_ROOT}${path}`, webAsset(body, contentTypeOf(entry.name), path.startsWith('assets/')));
    }
  }
  return assets;
}
