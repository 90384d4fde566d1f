/**
 * Serving the web dashboard under `/ui/` on the ledger node's own port, from the build held in
 * memory (web-assets.ts): exact files by URL, the page itself for the client's own routes, a
 * strict Content-Security-Policy and the other security headers on every answer, and, on a
 * loopback address, only to requests naming that address (docs/dashboard.md, "Serving").
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DkmsError } from '../errors.js';
import { CONSOLE_API, registerConsoleApi, type ConsoleApiOptions } from './console-api.js';
import { sendProblem } from './problem.js';
import { WEB_ROOT, webAsset, type WebAsset, type WebAssets } from './web-assets.js';

/**
 * What the page is told about the node serving it, at `/ui/config.json`. A hint only: the page
 * verifies against the keys its user trusts (`#trust=` in its URL, or what it kept), never
 * against what the server says of itself.
 */
export interface DashboardConfig {
  /** The node's head-signing key (multikey). */
  readonly nodeKey: string;
  /** Witness keys whose cosignatures the node accepts and serves. */
  readonly witnessKeys: readonly string[];
  /** Signers a head needs, counted as `--quorum` counts them: the node and the witnesses it waits for. */
  readonly quorum: number;
  /** Whether the owner console (`/ui/console/`) is served: built, and on a loopback address. */
  readonly console: boolean;
}

export interface WebOptions {
  readonly assets: WebAssets;
  readonly config: DashboardConfig;
  /** The owner console's API (console-api.ts), under `/ui/console/api/`: without it, those paths are 404. */
  readonly console?: ConsoleApiOptions;
}

/**
 * The Content-Security-Policy of every dashboard answer: the page's own scripts, styles, images,
 * fonts and API calls only, no inline script or style, no plugin, no framing, no form posting
 * elsewhere, and no string reaching an HTML or script sink (Trusted Types with no policy).
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; manifest-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/** The headers of every answer under `/ui` (and of the redirect at `/`), errors included. */
export const DASHBOARD_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
  'x-frame-options': 'DENY',
};

/** Vite's content-hashed files never change under their name. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

/** Which Host headers a server answers the dashboard for: a DNS-rebinding defence on loopback. */
export interface HostRule {
  allows(host: string | undefined): boolean;
  /** The hosts allowed, for the refusal's message. */
  readonly names: string;
}

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];
const ANY_HOST: HostRule = { allows: () => true, names: 'any' };

/** Whether `address` (an IP address or `localhost`) is one only this machine reaches. */
export function isLoopbackAddress(address: string): boolean {
  return address === '::1' || address === 'localhost' || /^(::ffff:)?127\./i.test(address);
}

/**
 * The Host rule of a server listening at `address`. On a loopback address, a browser reaches
 * it only by that address or `localhost`; any other name is a page of another site whose
 * domain was pointed at 127.0.0.1 (DNS rebinding), so only `127.0.0.1:PORT`, `localhost:PORT`,
 * `[::1]:PORT` and the address itself are allowed (without the port too on port 80, as browsers
 * send it). On any other address the dashboard is public and any Host is answered. A server
 * not listening (fastify's `inject`, `address` null) allows the loopback names on any port.
 */
export function hostRule(address: AddressInfo | string | null): HostRule {
  if (address === null) {
    return { allows: (host) => host !== undefined && LOOPBACK_NAMES.includes(host.toLowerCase().replace(/:\d+$/, '')), names: LOOPBACK_NAMES.join(', ') };
  }
  if (typeof address === 'string' || !isLoopbackAddress(address.address)) return ANY_HOST;
  const own = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const names = [...new Set([...LOOPBACK_NAMES, own])];
  const allowed = new Set(names.map((name) => `${name}:${address.port}`));
  if (address.port === 80) for (const name of names) allowed.add(name);
  return { allows: (host) => host !== undefined && allowed.has(host.toLowerCase()), names: [...allowed].join(', ') };
}

/**
 * The segments of `path` (under `/ui/`), percent-decoded; undefined for a path that no file and
 * no page of the dashboard can have: a `.` or `..` segment (encoded or not), an empty segment
 * but the last, a backslash, a control character, an encoded slash, or a bad encoding.
 */
export function dashboardSegments(path: string): string[] | undefined {
  if (!path.startsWith(WEB_ROOT) || path.includes('\\')) return undefined;
  const raw = path.slice(WEB_ROOT.length).split('/');
  const segments: string[] = [];
  for (const [i, part] of raw.entries()) {
    let segment: string;
    try {
      segment = decodeURIComponent(part);
    } catch {
      return undefined;
    }
    if (segment === '.' || segment === '..' || /[\\/\p{Cc}]/u.test(segment)) return undefined;
    if (segment === '' && i < raw.length - 1) return undefined;
    segments.push(segment);
  }
  return segments;
}

/** Whether `etag` is among those an If-None-Match header names (weak comparison, RFC 9110 13.1.2). */
function notModified(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((tag) => {
    const trimmed = tag.trim();
    return trimmed === '*' || trimmed.replace(/^W\//, '') === etag;
  });
}

function sendAsset(request: FastifyRequest, reply: FastifyReply, asset: WebAsset): FastifyReply {
  void reply.header('etag', asset.etag).header('cache-control', asset.immutable ? IMMUTABLE : 'no-cache');
  if (notModified(request.headers['if-none-match'], asset.etag)) return reply.code(304).send();
  return reply.type(asset.type).send(asset.body);
}

const pathOf = (request: FastifyRequest): string => request.url.split('?')[0] ?? '';

function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  sendProblem(reply, new DkmsError('NOT_FOUND', `no ${request.method} ${pathOf(request).slice(0, 200)} in the dashboard`));
  return reply;
}

/** Whether `url` is the dashboard's (`/ui`, or under `/ui/`). */
export function isDashboardUrl(url: string): boolean {
  return /^\/ui(\/|\?|$)/.test(url);
}

/**
 * The answer to a dashboard URL the router cannot even read (a bad percent-encoding): not
 * found, with the dashboard's headers, as any other path of it that holds nothing.
 */
export function dashboardNotFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return notFound(request, reply.headers(DASHBOARD_HEADERS));
}

const readsOnly = (request: FastifyRequest): boolean => request.method === 'GET' || request.method === 'HEAD';

/**
 * The dashboard's routes on `app` (a plugin's own instance: its hooks stay with these routes).
 * `GET /` and `GET /ui` redirect to `/ui/`; `/ui/` is index.html; `/ui/config.json` is
 * `options.config`; `/ui/<path>` is the build's file at that path, or, for a path without a file
 * extension, index.html (the page routes it itself); anything else is 404 problem+json.
 */
export function registerWebRoutes(app: FastifyInstance, options: WebOptions): void {
  const index = options.assets.get(`${WEB_ROOT}index.html`);
  if (index === undefined) throw new DkmsError('BAD_INPUT', 'the dashboard has no index.html: build it (npm run build)');
  const config = webAsset(Buffer.from(JSON.stringify(options.config)), 'application/json; charset=utf-8');

  let hosts = hostRule(null);
  // fastify's inject (no listening) stands for loopback, as the Host rule does.
  let onLoopback = true;
  app.server.once('listening', () => {
    const address = app.server.address();
    hosts = hostRule(address);
    onLoopback = address !== null && typeof address !== 'string' && isLoopbackAddress(address.address);
  });
  app.addHook('onRequest', async (request) => {
    if (hosts.allows(request.headers.host)) return;
    const named = JSON.stringify((request.headers.host ?? '').slice(0, 100));
    throw new DkmsError('DASHBOARD_HOST_REFUSED', `the dashboard answers requests for ${hosts.names} only, and this one was for ${named}`);
  });
  // onSend: errors and 404s get them too.
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.headers(DASHBOARD_HEADERS);
    return payload;
  });

  // A plugin of its own, after the hooks above (the Host rule, the headers): its own hooks stay with its routes.
  const consoleApi = options.console;
  if (consoleApi !== undefined) void app.register(async (api) => registerConsoleApi(api, consoleApi, () => onLoopback));
  const consoleIndex = consoleApi === undefined ? undefined : options.assets.get(`${WEB_ROOT}console/index.html`);

  const toRoot = async (request: FastifyRequest, reply: FastifyReply) =>
    readsOnly(request) ? reply.code(302).header('location', WEB_ROOT).send() : notFound(request, reply);
  app.all('/', toRoot);
  app.all('/ui', toRoot);
  app.all('/ui/*', async (request, reply) => {
    // The console's API is its routes alone (none of them when it is off), never a file or a page.
    if (`${pathOf(request)}/`.startsWith(`${CONSOLE_API}/`)) return notFound(request, reply.header('cache-control', 'no-store'));
    const segments = readsOnly(request) ? dashboardSegments(pathOf(request)) : undefined;
    if (segments === undefined) return notFound(request, reply);
    const key = `${WEB_ROOT}${segments.join('/')}`;
    if (key === WEB_ROOT) return sendAsset(request, reply, index);
    if (key === `${WEB_ROOT}config.json`) return sendAsset(request, reply, config);
    const asset = options.assets.get(key);
    if (asset !== undefined) return sendAsset(request, reply, asset);
    // A route of the page's own (`/ui/policy/…`, `/ui/console/`): the page, which shows it.
    if (!(segments.at(-1) ?? '').includes('.'))
      return sendAsset(request, reply, segments[0] === 'console' && consoleIndex !== undefined ? consoleIndex : index);
    return notFound(request, reply);
  });
}
