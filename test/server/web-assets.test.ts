/**
 * The dashboard's build in memory (server/web-assets.ts) and the pure rules of serving it
 * (server/web-routes.ts): which URL paths can name a file or a page, and which Host headers a
 * server on loopback answers.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DkmsError } from '../../src/errors.js';
import { contentTypeOf, loadWebAssets } from '../../src/server/web-assets.js';
import { dashboardSegments, hostRule, isDashboardUrl } from '../../src/server/web-routes.js';
import { tempDir } from '../helpers/tmp.js';

/** Writes `files` (path → content) under a fresh directory and returns it. */
function build(files: Record<string, string | Buffer>): string {
  const dir = tempDir('dkms-web-');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

async function refusal(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof DkmsError)) throw new Error(`expected a DkmsError, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

describe('loadWebAssets', () => {
  it('is undefined when the dashboard was not built: no index.html, or no directory at all', async () => {
    expect(await loadWebAssets(build({ 'assets/app-1a2b.js': 'x' }))).toBeUndefined();
    expect(await loadWebAssets(join(tempDir(), 'dist', 'web'))).toBeUndefined();
  });

  it('keys every file by its URL under /ui/, leaves out .vite/ and other dot files, and types each by its extension', async () => {
    const files = {
      'index.html': '<!doctype html>',
      'console/index.html': '<!doctype html>',
      'favicon.svg': '<svg/>',
      'favicon.ico': Buffer.from([0, 0, 1, 0]),
      'assets/main-3f9a.js': 'export {}',
      'assets/main-3f9a.css': 'body{}',
      'assets/logo-77aa.png': Buffer.from([0x89, 0x50]),
      'assets/font-0b1c.woff2': Buffer.from([0x77, 0x4f]),
      'assets/data-5d5d.json': '{}',
      'assets/blob-9e9e.bin': 'x',
      '.vite/manifest.json': '{"secret":"build paths"}',
      '.DS_Store': 'x',
      'assets/.hidden.js': 'x',
    };
    const assets = await loadWebAssets(build(files));
    expect(new Map([...(assets ?? [])].map(([key, a]) => [key, a.type]))).toEqual(
      new Map([
        ['/ui/index.html', 'text/html; charset=utf-8'],
        ['/ui/console/index.html', 'text/html; charset=utf-8'],
        ['/ui/favicon.svg', 'image/svg+xml'],
        ['/ui/favicon.ico', 'image/x-icon'],
        ['/ui/assets/main-3f9a.js', 'text/javascript; charset=utf-8'],
        ['/ui/assets/main-3f9a.css', 'text/css; charset=utf-8'],
        ['/ui/assets/logo-77aa.png', 'image/png'],
        ['/ui/assets/font-0b1c.woff2', 'font/woff2'],
        ['/ui/assets/data-5d5d.json', 'application/json; charset=utf-8'],
        ['/ui/assets/blob-9e9e.bin', 'application/octet-stream'],
      ]),
    );
    expect(assets?.get('/ui/assets/main-3f9a.js')?.body.toString()).toBe('export {}');
    expect(contentTypeOf('INDEX.HTML')).toBe('text/html; charset=utf-8');
  });

  it('marks only the files under assets/ immutable (content-hashed), and tags each with the SHA-256 of its bytes', async () => {
    const assets = await loadWebAssets(
      build({ 'index.html': 'page', 'favicon.svg': 'icon', 'assets/a-1.js': 'same', 'assets/b-2.js': 'same', 'x/assets/c.js': 'c' }),
    );
    const immutable = [...(assets ?? [])].filter(([, a]) => a.immutable).map(([key]) => key);
    expect(immutable.sort()).toEqual(['/ui/assets/a-1.js', '/ui/assets/b-2.js']);
    const page = assets?.get('/ui/index.html');
    expect(page?.etag).toBe(`"${createHash('sha256').update('page').digest('base64url')}"`);
    expect(assets?.get('/ui/assets/a-1.js')?.etag).toBe(assets?.get('/ui/assets/b-2.js')?.etag);
  });

  it('refuses a build over its bounds, counted in files or in bytes, and an entry that is not a file', async () => {
    const many = Object.fromEntries([['index.html', 'x'], ...Array.from({ length: 5 }, (_, i) => [`assets/f${i}.js`, 'x'])]);
    expect(await refusal(loadWebAssets(build(many), { maxFiles: 5 }))).toMatchObject({
      code: 'BAD_INPUT',
      message: expect.stringMatching(/more than 5 files/),
    });
    expect((await loadWebAssets(build(many), { maxFiles: 6 }))?.size).toBe(6);

    const big = build({ 'index.html': 'x'.repeat(600), 'assets/a.js': 'y'.repeat(600) });
    expect(await refusal(loadWebAssets(big, { maxBytes: 1000 }))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/more than 1000 bytes/) });
    expect((await loadWebAssets(big, { maxBytes: 1200 }))?.size).toBe(2);

    const linked = build({ 'index.html': 'x' });
    symlinkSync('/etc/hostname', join(linked, 'hostname.txt'));
    expect(await refusal(loadWebAssets(linked))).toMatchObject({ code: 'BAD_INPUT', message: expect.stringMatching(/hostname\.txt is not a regular file/) });
  });
});

describe('dashboard paths', () => {
  it('decodes the segments of a path under /ui/', () => {
    expect(dashboardSegments('/ui/')).toEqual(['']);
    expect(dashboardSegments('/ui/assets/main-3f9a.js')).toEqual(['assets', 'main-3f9a.js']);
    expect(dashboardSegments('/ui/did/did%3Adkms%3Az6Mk')).toEqual(['did', 'did:dkms:z6Mk']);
    expect(dashboardSegments('/ui/policy/')).toEqual(['policy', '']);
  });

  it('refuses every path that could step outside the build or hide a byte', () => {
    for (const path of [
      '/ui/../package.json',
      '/ui/%2e%2e/package.json',
      '/ui/%2E%2E/%2e%2e/package.json',
      '/ui/./index.html',
      '/ui/%2e/index.html',
      '/ui/assets/..%2f..%2fpackage.json',
      '/ui/..%5cpackage.json',
      '/ui/..\\package.json',
      '/ui/assets\\main.js',
      '/ui/%00',
      '/ui/index.html%00.js',
      '/ui/a%0d%0aSet-Cookie:%20x',
      '/ui/%zz',
      '/ui//index.html',
      '/uix/index.html',
      '/package.json',
    ]) {
      expect(dashboardSegments(path), path).toBeUndefined();
    }
  });

  it('tells the dashboard URLs from the rest', () => {
    for (const url of ['/ui', '/ui/', '/ui?x=1', '/ui/assets/a.js']) expect(isDashboardUrl(url), url).toBe(true);
    for (const url of ['/', '/uix', '/v1/health', '/openapi.json']) expect(isDashboardUrl(url), url).toBe(false);
  });
});

describe('the Host rule', () => {
  const at = (address: string, port: number) => hostRule({ address, port, family: address.includes(':') ? 'IPv6' : 'IPv4' });

  it('on a loopback address, allows only the loopback names with the port listened on (DNS rebinding)', () => {
    const rule = at('127.0.0.1', 8420);
    for (const host of ['127.0.0.1:8420', 'localhost:8420', 'LOCALHOST:8420', '[::1]:8420']) expect(rule.allows(host), host).toBe(true);
    for (const host of ['evil.example:8420', 'evil.example', 'localhost:8421', 'localhost', '127.0.0.1', '127.0.0.1.evil.example:8420', '', undefined]) {
      expect(rule.allows(host), String(host)).toBe(false);
    }
    expect(at('::1', 7000).allows('[::1]:7000')).toBe(true);
    expect(at('127.0.0.2', 7000).allows('127.0.0.2:7000')).toBe(true);
    // Browsers leave the default port out.
    expect(at('127.0.0.1', 80).allows('localhost')).toBe(true);
  });

  it('on any other address, allows every Host: the explorer is public and read-only', () => {
    for (const address of ['0.0.0.0', '::', '10.0.0.5']) expect(at(address, 8420).allows('dkms.example.org'), address).toBe(true);
  });

  it('before the server listens (inject), allows the loopback names on any port', () => {
    const rule = hostRule(null);
    expect(rule.allows('localhost:80')).toBe(true);
    expect(rule.allows('[::1]:1')).toBe(true);
    expect(rule.allows('evil.example:80')).toBe(false);
  });
});
