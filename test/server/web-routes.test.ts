/**
 * The dashboard served by a ledger node (server/web-routes.ts, docs/dashboard.md "Serving"):
 * exact headers on every answer, caching, ETags, HEAD, the page for the client's own routes,
 * paths that try to leave the build, the Host rule on loopback, and an API that answers as it
 * did without a dashboard. Requests go through fastify's inject, and through a real socket where
 * the raw bytes of a path or a Host header matter.
 */
import { request as httpRequest } from 'node:http';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { LedgerNode } from '../../src/ledger/node.js';
import { buildLedgerServer, type LedgerServerOptions } from '../../src/server/ledger-api.js';
import { loadWebAssets, type WebAssets } from '../../src/server/web-assets.js';
import { DASHBOARD_CSP, DASHBOARD_HEADERS, type DashboardConfig } from '../../src/server/web-routes.js';
import { openNode } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/** Every header the dashboard's answers carry, exactly. */
const SECURITY = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  'x-frame-options': 'DENY',
};

const INDEX =
  '<!doctype html><html lang="en"><head><title>dkms</title><script type="module" src="/ui/assets/main-3f9a.js"></script></head><body></body></html>';

const FILES: Record<string, string> = {
  'index.html': INDEX,
  'favicon.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>',
  'assets/main-3f9a.js': 'export const main = 1;\n',
  'assets/main-3f9a.css': 'body { margin: 0 }\n',
  'assets/logo-77aa.svg': '<svg xmlns="http://www.w3.org/2000/svg"/>',
  '.vite/manifest.json': '{"index.html":{"file":"assets/main-3f9a.js"}}',
};

/** The build as Vite lays it out, in a directory of its own inside `parent`. */
function writeBuild(parent = tempDir('dkms-web-')): string {
  const dir = join(parent, 'web');
  for (const [path, content] of Object.entries(FILES)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

async function assetsIn(dir: string): Promise<WebAssets> {
  const assets = await loadWebAssets(dir);
  if (assets === undefined) throw new Error(`no build in ${dir}`);
  return assets;
}

const configOf = (node: LedgerNode): DashboardConfig => ({ nodeKey: node.key, witnessKeys: ['z6MkWitness'], quorum: 2, console: false });

/** A ledger server on a fresh node (with the dashboard unless `web` is false), closed when the test ends. */
async function server(options: { web?: boolean; assets?: WebAssets; server?: LedgerServerOptions } = {}): Promise<{ app: FastifyInstance; node: LedgerNode }> {
  const node = await openNode(tempDir());
  const assets = options.assets ?? (await assetsIn(writeBuild()));
  const app = buildLedgerServer(node, { ...options.server, ...(options.web === false ? {} : { web: { assets, config: configOf(node) } }) });
  onTestFinished(async () => {
    await app.close();
    await node.close();
  });
  return { app, node };
}

const get = (app: FastifyInstance, url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers });

function expectSecurityHeaders(answer: LightMyRequestResponse | { headers: Record<string, unknown> }, what: string): void {
  for (const [name, value] of Object.entries(SECURITY)) expect(answer.headers[name], `${name} of ${what}`).toBe(value);
}

function expectNotFound(answer: { statusCode: number; headers: Record<string, unknown>; body: string }, what: string): void {
  expect(answer.statusCode, what).toBe(404);
  expect(answer.headers['content-type'], what).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(answer.body), what).toMatchObject({ code: 'NOT_FOUND', status: 404 });
  expectSecurityHeaders(answer, what);
}

/** A request with exactly this path and Host, bytes as written (fetch and inject would normalize both). */
function raw(url: string, path: string, host?: string): Promise<{ statusCode: number; headers: Record<string, unknown>; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: 'GET', agent: false, headers: host === undefined ? {} : { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the dashboard routes', () => {
  it('send the exact CSP and security headers on every answer: pages, assets, config, redirects, 404s, refusals', async () => {
    const { app } = await server();
    expect(DASHBOARD_CSP).toBe(CSP);
    expect(DASHBOARD_HEADERS).toEqual(SECURITY);
    for (const url of ['/', '/ui', '/ui/', '/ui/index.html', '/ui/assets/main-3f9a.js', '/ui/config.json', '/ui/policy/x', '/ui/nothing.js']) {
      expectSecurityHeaders(await get(app, url), url);
    }
    expectSecurityHeaders(await get(app, '/ui/', { host: 'evil.example' }), 'a refused Host');
    expectSecurityHeaders(await app.inject({ method: 'POST', url: '/ui/', payload: {} }), 'POST /ui/');
  });

  it('serve each file with its content type, and cache only the content-hashed assets/ for good', async () => {
    const { app } = await server();
    const expected: [string, string, string][] = [
      ['/ui/', 'text/html; charset=utf-8', 'no-cache'],
      ['/ui/index.html', 'text/html; charset=utf-8', 'no-cache'],
      ['/ui/favicon.svg', 'image/svg+xml', 'no-cache'],
      ['/ui/config.json', 'application/json; charset=utf-8', 'no-cache'],
      ['/ui/assets/main-3f9a.js', 'text/javascript; charset=utf-8', 'public, max-age=31536000, immutable'],
      ['/ui/assets/main-3f9a.css', 'text/css; charset=utf-8', 'public, max-age=31536000, immutable'],
      ['/ui/assets/logo-77aa.svg', 'image/svg+xml', 'public, max-age=31536000, immutable'],
    ];
    for (const [url, type, cache] of expected) {
      const answer = await get(app, url);
      expect({ url, status: answer.statusCode, type: answer.headers['content-type'], cache: answer.headers['cache-control'] }).toEqual({
        url,
        status: 200,
        type,
        cache,
      });
    }
    expect((await get(app, '/ui/assets/main-3f9a.js')).body).toBe(FILES['assets/main-3f9a.js']);
    expect((await get(app, '/ui/')).body).toBe(INDEX);
  });

  it('answer 304 to a matching If-None-Match, with the same validators and headers and no body', async () => {
    const { app } = await server();
    for (const url of ['/ui/', '/ui/assets/main-3f9a.js', '/ui/config.json']) {
      const first = await get(app, url);
      const etag = String(first.headers['etag']);
      expect(etag).toMatch(/^"[A-Za-z0-9_-]{43}"$/);
      for (const header of [etag, `W/${etag}`, `"other", ${etag}`, '*']) {
        const again = await get(app, url, { 'if-none-match': header });
        expect({ url, header, status: again.statusCode, body: again.body, etag: again.headers['etag'] }).toEqual({ url, header, status: 304, body: '', etag });
        expect(again.headers['cache-control']).toBe(first.headers['cache-control']);
        expectSecurityHeaders(again, `304 of ${url}`);
      }
      expect((await get(app, url, { 'if-none-match': '"other"' })).statusCode).toBe(200);
    }
  });

  it('answer HEAD as GET without the body', async () => {
    const { app } = await server();
    for (const url of ['/ui/', '/ui/assets/main-3f9a.js', '/ui/config.json', '/ui/policy/x']) {
      const [full, head] = [await get(app, url), await app.inject({ method: 'HEAD', url })];
      expect({ status: head.statusCode, body: head.body }).toEqual({ status: 200, body: '' });
      for (const name of ['content-type', 'content-length', 'etag', 'cache-control', 'content-security-policy'])
        expect(head.headers[name], `${name} of HEAD ${url}`).toBe(full.headers[name]);
    }
    const moved = await app.inject({ method: 'HEAD', url: '/' });
    expect({ status: moved.statusCode, location: moved.headers['location'] }).toEqual({ status: 302, location: '/ui/' });
  });

  it("answer the page itself for the client's own routes (no extension), and 404 for a missing file", async () => {
    const { app } = await server();
    for (const url of ['/ui/policy/policy:z6Mk', '/ui/did/did%3Adkms%3Az6Mk', '/ui/events/', '/ui/a/b/c', '/ui/policy/x?tab=agents']) {
      const answer = await get(app, url);
      expect({ url, status: answer.statusCode, body: answer.body, cache: answer.headers['cache-control'] }).toEqual({
        url,
        status: 200,
        body: INDEX,
        cache: 'no-cache',
      });
    }
    for (const url of ['/ui/missing.js', '/ui/assets/main-0000.js', '/ui/policy/x.json', '/ui/.vite/manifest.json']) {
      expectNotFound(await get(app, url), url);
    }
    for (const method of ['POST', 'PUT', 'DELETE', 'OPTIONS'] as const)
      expectNotFound(await app.inject({ method, url: '/ui/index.html' }), `${method} /ui/index.html`);
  });

  it('redirect / and /ui to /ui/', async () => {
    const { app } = await server();
    for (const url of ['/', '/ui']) {
      const answer = await get(app, url);
      expect({ url, status: answer.statusCode, location: answer.headers['location'] }).toEqual({ url, status: 302, location: '/ui/' });
    }
  });

  it('serve config.json as given: the node key, witnesses, quorum and console, nothing else', async () => {
    const { app, node } = await server();
    const answer = await get(app, '/ui/config.json');
    expect(JSON.parse(answer.body)).toStrictEqual({ nodeKey: node.key, witnessKeys: ['z6MkWitness'], quorum: 2, console: false });
  });

  it('never step outside the build: raw traversal paths are 404 and show no file, and no request reads the disk', async () => {
    const parent = tempDir('dkms-web-');
    writeFileSync(join(parent, 'secret.txt'), 'the secret next to the build');
    const dir = writeBuild(parent);
    const { app } = await server({ assets: await assetsIn(dir) });
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    // From here on the build is only in memory.
    rmSync(dir, { recursive: true });
    expect((await raw(url, '/ui/assets/main-3f9a.js')).body).toBe(FILES['assets/main-3f9a.js']);
    for (const path of [
      '/ui/../secret.txt',
      '/ui/../../package.json',
      '/ui/%2e%2e/secret.txt',
      '/ui/%2E%2E/%2e%2e/package.json',
      '/ui/assets/..%2f..%2fsecret.txt',
      '/ui/..%5csecret.txt',
      '/ui/..\\secret.txt',
      '/ui/assets\\main-3f9a.js',
      '/ui/%00',
      '/ui/index.html%00.js',
      '/ui/%zz',
      '/ui/./index.html',
      '/ui//etc/passwd',
    ]) {
      const answer = await raw(url, path);
      expectNotFound(answer, path);
      expect(answer.body).not.toMatch(/secret next|"name"|root:/);
    }
  });

  it('on loopback, answer only requests naming its address (DNS rebinding): others get DASHBOARD_HOST_REFUSED', async () => {
    const { app } = await server();
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const port = Number(new URL(url).port);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`, `LocalHost:${port}`])
      expect((await raw(url, '/ui/', host)).statusCode, host).toBe(200);
    for (const host of ['evil.example', `evil.example:${port}`, `localhost:${port + 1}`, `127.0.0.1.nip.io:${port}`]) {
      for (const path of ['/ui/', '/ui/assets/main-3f9a.js', '/ui/config.json', '/']) {
        const answer = await raw(url, path, host);
        expect({ host, path, status: answer.statusCode }).toEqual({ host, path, status: 403 });
        expect(JSON.parse(answer.body)).toMatchObject({ code: 'DASHBOARD_HOST_REFUSED', status: 403, detail: expect.stringContaining(`localhost:${port}`) });
        expectSecurityHeaders(answer, `${host} ${path}`);
      }
      // The API is the API: its clients are not browsers on a rebound name.
      expect((await raw(url, '/v1/health', host)).statusCode).toBe(200);
    }
    // Through inject (no address), the loopback names pass and others do not.
    expect((await get(app, '/ui/', { host: 'evil.example' })).statusCode).toBe(403);
  });

  it('off loopback, answer any Host: the explorer is public and read-only', async () => {
    const { app } = await server();
    const url = (await app.listen({ host: '0.0.0.0', port: 0 })).replace(/\/\/[^:]+:/, '//127.0.0.1:');
    const answer = await raw(url, '/ui/', 'dkms.example.org');
    expect({ status: answer.statusCode, body: answer.body }).toEqual({ status: 200, body: INDEX });
  });

  it('are rate limited like the API', async () => {
    const { app } = await server({ server: { rateLimitPerSecond: 2 } });
    const answers = [await get(app, '/ui/'), await get(app, '/ui/'), await get(app, '/ui/')];
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 429]);
    expect(JSON.parse(answers[2]?.body ?? '')).toMatchObject({ code: 'RATE_LIMITED' });
    expectSecurityHeaders(answers[2] ?? { headers: {} }, 'a 429');
  });

  it('leave the API as it was: the same answers and headers with or without the dashboard', async () => {
    const plain = await server({ web: false });
    const withWeb = await server();
    const strip = (answer: LightMyRequestResponse, node: LedgerNode) => ({
      status: answer.statusCode,
      type: answer.headers['content-type'],
      body: answer.body.replaceAll(node.key, 'KEY'),
      headers: Object.keys(answer.headers)
        .filter((h) => h !== 'date' && h !== 'content-length' && !h.startsWith('x-ratelimit'))
        .sort(),
    });
    for (const url of ['/v1/health', '/v1/proofs/consistency?from=0&to=0', '/openapi.json', '/v1/nothing', '/v1/dids/nope', '/uix', '/%zz', '/v1/%zz']) {
      const [a, b] = [await get(plain.app, url), await get(withWeb.app, url)];
      expect(strip(b, withWeb.node), url).toEqual(strip(a, plain.node));
      expect(b.headers['content-security-policy'], url).toBeUndefined();
    }
    // Without the dashboard, / and /ui/ are what they were: no route.
    expect((await get(plain.app, '/')).statusCode).toBe(404);
    expect((await get(plain.app, '/ui/')).statusCode).toBe(404);
  });
});
