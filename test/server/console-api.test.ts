/**
 * The owner console's API (server/console-api.ts, docs/dashboard.md "Owner console API") through
 * fastify's inject, over a fake backend standing for the unlock session: the login and its limit,
 * the cookie and CSRF token every request needs, the origin, fetch-site and content-type checks of
 * every non-GET, the Host rule, sessions that expire on a held clock, `no-store` on every answer,
 * the overview built from the commands' JSON, the actions and their failures, the logout that locks
 * what the console started; the passphrase in no log line and no problem; and no console API when
 * the console is off or the server is not on loopback.
 */
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { DkmsError } from '../../src/errors.js';
import { ActionAnswer, LoginAnswer, OverviewAnswer, type CommandRun, type ConsoleBackend, type UnlockOf } from '../../src/server/console-api.js';
import type { ConsoleOverview } from '../../src/server/console-types.js';
import { installProblemHandlers } from '../../src/server/problem.js';
import { sharedValidators } from '../../src/server/validators.js';
import { webAsset, type WebAsset } from '../../src/server/web-assets.js';
import { registerWebRoutes, type WebOptions } from '../../src/server/web-routes.js';

const PASSPHRASE = 'correct-horse-7Qx-battery-staple';
const WRONG = ['wrong-horse-1', 'wrong-horse-2', 'wrong-horse-3', 'wrong-horse-4', 'wrong-horse-5'];
const HOST = '127.0.0.1:8420';
const ORIGIN = `http://${HOST}`;
const T0 = Date.parse('2026-03-01T10:00:00Z');
const MINUTE = 60_000;
const CAROL = 'z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK';

const html = (text: string): WebAsset => webAsset(Buffer.from(text), 'text/html; charset=utf-8');
const ASSETS = new Map<string, WebAsset>([
  ['/ui/index.html', html('<!doctype html><title>explorer</title>')],
  ['/ui/console/index.html', html('<!doctype html><title>console</title>')],
]);

const ok = (value: unknown): CommandRun => ({ status: 0, out: `${JSON.stringify(value)}\n`, err: '' });
const failed = (code: string, message: string, status: number): CommandRun => ({
  status,
  out: `${JSON.stringify({ error: { code, message } })}\n`,
  err: `dkms: ${code}: ${message}\n`,
});

/** What each command prints, by its words (`agent list`), in the fake session. */
const PRINTED: Record<string, CommandRun> = {
  'wallet info': ok({
    path: '/home/ana/.dkms/wallet.db',
    format: 1,
    kdf: { alg: 'argon2id', tier: 'interactive', memoryKiB: 19456, passes: 2, lanes: 1 },
    protection: { passphrase: true, keyTokens: [] },
    keyVersion: 0,
    createdAt: '2026-02-01T00:00:00Z',
    profiles: ['default'],
    items: 9,
  }),
  'key list': ok({
    keys: [{ name: 'agent-sign', type: 'ed25519', publicKey: 'z6MkAgent', createdAt: '2026-02-01T00:00:00Z', location: 'wallet' }],
  }),
  'agent list': ok({
    policy: 'policy:zPolicy',
    agents: [
      { key: 'z6MkAgent', label: 'laptop', flags: 'ADMIN,PROVE,PROVE_GRANT,PROVE_REVOKE', kx: 'z6LSx', me: true },
      { key: CAROL, label: 'phone', flags: 'PROVE', kx: '', me: false },
    ],
    listed: true,
  }),
  'recovery status': ok({
    setUp: true,
    provisional: false,
    offline: true,
    social: null,
    delay: 0,
    lastBackup: { version: 3, at: '2026-03-01T09:00:00Z' },
    prepared: null,
    pending: null,
  }),
  'trustee list': ok({ trustees: [], threshold: null, prepared: null, holding: [] }),
  'connection list': ok({ connections: [] }),
  'audit show': ok({ records: [] }),
};

/** The unlock session, faked: one wallet, one passphrase, commands that print what PRINTED says. */
class FakeSession implements ConsoleBackend {
  readonly home = '/home/ana/.dkms';
  running: number | undefined;
  nextPid = 4000;
  readonly runs: string[][] = [];
  readonly locked: number[] = [];
  readonly printed: Record<string, CommandRun> = { ...PRINTED };
  /** The session goes away while the next command runs. */
  loseNext = false;

  async login(passphrase: string): Promise<UnlockOf> {
    if (passphrase !== PASSPHRASE) throw new DkmsError('WALLET_BAD_PASSPHRASE', 'wrong passphrase for this wallet');
    if (this.running !== undefined) return { session: this.running, started: false };
    this.running = ++this.nextPid;
    return { session: this.running, started: true };
  }

  async current(): Promise<number | undefined> {
    return this.running;
  }

  async run(argv: readonly string[]): Promise<CommandRun> {
    this.runs.push([...argv]);
    if (this.running === undefined || this.loseNext) {
      this.running = undefined;
      throw new DkmsError('SESSION_LOST', 'the unlock session ended before the command finished');
    }
    const words = argv
      .filter((a) => !a.startsWith('-'))
      .slice(0, 2)
      .join(' ');
    return this.printed[words] ?? ok({});
  }

  async lock(session: number): Promise<void> {
    if (this.running !== session) return;
    this.locked.push(session);
    this.running = undefined;
  }
}

interface Console {
  readonly app: FastifyInstance;
  readonly backend: FakeSession;
  /** Every line fastify logged. */
  readonly log: string[];
  /** The held clock. */
  now: number;
}

/** The dashboard with the console over a fake session, logging everything at trace level. */
async function consoleServer(options: { console?: boolean; backend?: FakeSession } = {}): Promise<Console> {
  const log: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      log.push(chunk.toString('utf8'));
      done();
    },
  });
  // As the ledger server is made (ledger-api.ts): unknown fields refused, not dropped.
  const app = Fastify({
    logger: { level: 'trace', stream },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
    schemaController: { compilersFactory: sharedValidators },
  });
  installProblemHandlers(
    app,
    () => 'BAD_INPUT',
    'BAD_INPUT',
    () => undefined,
  );
  const backend = options.backend ?? new FakeSession();
  const state: Console = { app, backend, log, now: T0 };
  const web: WebOptions = {
    assets: ASSETS,
    config: { nodeKey: 'z6MkNode', witnessKeys: [], quorum: 1, console: options.console !== false },
    ...(options.console === false ? {} : { console: { backend, now: () => state.now } }),
  };
  void app.register(async (ui) => registerWebRoutes(ui, web));
  onTestFinished(() => app.close());
  await app.ready();
  return state;
}

/** The headers the console page's fetch sends (a browser adds Origin and Sec-Fetch-Site itself). */
function browser(extra: Record<string, string> = {}): Record<string, string> {
  return { host: HOST, origin: ORIGIN, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json', ...extra };
}

async function login(c: Console, passphrase = PASSPHRASE, headers: Record<string, string> = browser()): Promise<LightMyRequestResponse> {
  return c.app.inject({ method: 'POST', url: '/ui/console/api/session', headers, payload: JSON.stringify({ passphrase }) });
}

/** Logs in; the cookie and token the page then sends. */
async function loggedIn(c: Console): Promise<{ cookie: string; csrf: string; headers: Record<string, string> }> {
  const answer = await login(c);
  expect(answer.statusCode, answer.body).toBe(200);
  const cookie = String(answer.headers['set-cookie']).split(';')[0] ?? '';
  const { csrf } = LoginAnswer.parse(answer.json());
  return { cookie, csrf, headers: browser({ cookie, 'x-dkms-csrf': csrf }) };
}

function expectProblem(answer: LightMyRequestResponse, status: number, code: string, what = code): void {
  expect({ what, status: answer.statusCode, type: answer.headers['content-type'] }).toEqual({
    what,
    status,
    type: 'application/problem+json; charset=utf-8',
  });
  expect(answer.json(), what).toMatchObject({ code, status, type: `urn:dkms:error:${code}` });
  expect(answer.headers['cache-control'], what).toBe('no-store');
}

const overview = (c: Console, headers: Record<string, string>) => c.app.inject({ method: 'GET', url: '/ui/console/api/overview', headers });
const revoke = (c: Console, headers: Record<string, string>, payload: unknown = { key: CAROL }) =>
  c.app.inject({ method: 'POST', url: '/ui/console/api/agents/revoke', headers, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

describe('the console login', () => {
  it('opens a session with the right passphrase: the cookie HttpOnly, SameSite=Strict, under /ui/console, its token in the answer', async () => {
    const c = await consoleServer();
    const wrong = await login(c, WRONG[0]);
    expectProblem(wrong, 401, 'WALLET_BAD_PASSPHRASE');
    expect(wrong.headers['set-cookie']).toBeUndefined();

    const answer = await login(c);
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.headers['content-security-policy']).toMatch(/^default-src 'none'/);
    const body = LoginAnswer.parse(answer.json());
    expect(body).toEqual({ csrf: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/), expiresAt: '2026-03-01T18:00:00.000Z', idleSeconds: 900 });
    expect(answer.headers['set-cookie']).toMatch(/^dkms_console=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/ui\/console; Max-Age=900$/);
    // The console started the unlock session: no other ran.
    expect(c.backend.running).toBe(4001);
  });

  it("refuses a login that is not the page's own: another origin, a cross-site fetch, a form, a foreign Host", async () => {
    const c = await consoleServer();
    const cases: [string, Record<string, string>, number, string][] = [
      ['no Origin', browser({ origin: '' }), 403, 'CONSOLE_REQUEST_REFUSED'],
      ['another site', browser({ origin: 'http://evil.example' }), 403, 'CONSOLE_REQUEST_REFUSED'],
      ['cross-site', browser({ 'sec-fetch-site': 'cross-site' }), 403, 'CONSOLE_REQUEST_REFUSED'],
      ['a form', browser({ 'content-type': 'application/x-www-form-urlencoded' }), 403, 'CONSOLE_REQUEST_REFUSED'],
      ['a foreign Host', browser({ host: 'evil.example:8420', origin: 'http://evil.example:8420' }), 403, 'DASHBOARD_HOST_REFUSED'],
    ];
    for (const [what, headers, status, code] of cases) {
      const clean = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== ''));
      expectProblem(await login(c, PASSPHRASE, clean), status, code, what);
    }
    expect(c.backend.running).toBeUndefined();
  });

  it('allows five logins a minute from one address: the sixth, even with the right passphrase, waits until the minute has passed', async () => {
    const c = await consoleServer();
    for (const wrong of WRONG) expectProblem(await login(c, wrong), 401, 'WALLET_BAD_PASSPHRASE');
    c.now += 30_000;
    expectProblem(await login(c), 429, 'RATE_LIMITED', 'the sixth');
    c.now = T0 + MINUTE - 1;
    expectProblem(await login(c), 429, 'RATE_LIMITED', 'just before the minute');
    expect(c.backend.running).toBeUndefined();
    c.now = T0 + MINUTE;
    expect((await login(c)).statusCode).toBe(200);
  });

  it('checks the passphrase against an unlock session already running, which it then leaves running at logout', async () => {
    const backend = new FakeSession();
    backend.running = 77;
    const c = await consoleServer({ backend });
    const { headers } = await loggedIn(c);
    const out = await c.app.inject({
      method: 'DELETE',
      url: '/ui/console/api/session',
      headers: Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'content-type')),
    });
    expect(out.statusCode).toBe(204);
    expect(backend.locked).toEqual([]);
    expect(backend.running).toBe(77);
  });
});

describe('a console request', () => {
  it('needs the cookie of a live session and its CSRF token, GET included; nothing refused is run', async () => {
    const c = await consoleServer();
    const { cookie, csrf, headers } = await loggedIn(c);
    const other = await loggedIn(c);
    const runs = c.backend.runs.length;
    expectProblem(await overview(c, browser({ 'x-dkms-csrf': csrf })), 401, 'CONSOLE_LOGIN_REQUIRED', 'no cookie');
    expectProblem(await overview(c, browser({ cookie: 'dkms_console=forged', 'x-dkms-csrf': csrf })), 401, 'CONSOLE_LOGIN_REQUIRED', 'an unknown cookie');
    expectProblem(await overview(c, browser({ cookie })), 403, 'CONSOLE_REQUEST_REFUSED', 'no token');
    expectProblem(await overview(c, browser({ cookie, 'x-dkms-csrf': other.csrf })), 403, 'CONSOLE_REQUEST_REFUSED', "another session's token");
    expectProblem(await overview(c, browser({ cookie, 'x-dkms-csrf': `${csrf}A` })), 403, 'CONSOLE_REQUEST_REFUSED', 'a longer token');
    expectProblem(await revoke(c, browser({ cookie })), 403, 'CONSOLE_REQUEST_REFUSED', 'a POST without its token');
    expect(c.backend.runs.length).toBe(runs);
    const answer = await overview(c, headers);
    expect(answer.statusCode).toBe(200);
    expect(answer.headers['cache-control']).toBe('no-store');
    // Each answer renews the cookie for the idle time.
    expect(answer.headers['set-cookie']).toBe(`${cookie}; HttpOnly; SameSite=Strict; Path=/ui/console; Max-Age=900`);
  });

  it('refuses a POST with a wrong or missing Origin, a cross-site or same-site fetch, or a body that is not JSON', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    const runs = c.backend.runs.length;
    const without = (name: string) => Object.fromEntries(Object.entries(headers).filter(([k]) => k !== name));
    const cases: [string, Record<string, string>][] = [
      ['no Origin', without('origin')],
      ['another site', { ...headers, origin: 'https://evil.example' }],
      ['the same host on another port', { ...headers, origin: 'http://127.0.0.1:8421' }],
      ['https', { ...headers, origin: `https://${HOST}` }],
      ['an opaque origin', { ...headers, origin: 'null' }],
      ['cross-site', { ...headers, 'sec-fetch-site': 'cross-site' }],
      ['same-site', { ...headers, 'sec-fetch-site': 'same-site' }],
      ['none (typed in the address bar)', { ...headers, 'sec-fetch-site': 'none' }],
      ['a form', { ...headers, 'content-type': 'application/x-www-form-urlencoded' }],
      ['a multipart form', { ...headers, 'content-type': 'multipart/form-data; boundary=x' }],
      ['plain text', { ...headers, 'content-type': 'text/plain' }],
      ['no content type', without('content-type')],
    ];
    for (const [what, refusedHeaders] of cases) expectProblem(await revoke(c, refusedHeaders), 403, 'CONSOLE_REQUEST_REFUSED', what);
    expectProblem(
      await c.app.inject({ method: 'DELETE', url: '/ui/console/api/session', headers: without('origin') }),
      403,
      'CONSOLE_REQUEST_REFUSED',
      'a DELETE without Origin',
    );
    // Sec-Fetch-Site is left out by older browsers: its absence is no refusal.
    expect((await revoke(c, without('sec-fetch-site'))).statusCode).toBe(200);
    expect(c.backend.runs.length).toBe(runs + 1);
  });

  it('answers a foreign Host with DASHBOARD_HOST_REFUSED, cookie and token notwithstanding', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    expectProblem(await overview(c, { ...headers, host: 'rebound.example:8420' }), 403, 'DASHBOARD_HOST_REFUSED');
    expectProblem(await revoke(c, { ...headers, host: 'rebound.example:8420', origin: 'http://rebound.example:8420' }), 403, 'DASHBOARD_HOST_REFUSED');
  });

  it('ends a session after 15 minutes without a request, and 8 hours after its login however busy', async () => {
    const c = await consoleServer();
    const first = await loggedIn(c);
    c.now += 14 * MINUTE;
    expect((await overview(c, first.headers)).statusCode).toBe(200);
    c.now += 15 * MINUTE;
    expectProblem(await overview(c, first.headers), 401, 'CONSOLE_LOGIN_REQUIRED', 'idle');

    c.now += MINUTE;
    const second = await loggedIn(c);
    const end = c.now + 8 * 60 * MINUTE;
    for (c.now += 10 * MINUTE; c.now < end; c.now += 10 * MINUTE) expect((await overview(c, second.headers)).statusCode).toBe(200);
    expectProblem(await overview(c, second.headers), 401, 'CONSOLE_LOGIN_REQUIRED', 'eight hours');
  });

  it('ends when the unlock session it logged in to is gone, or goes away mid-command', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    c.backend.running = 999;
    expectProblem(await overview(c, headers), 401, 'CONSOLE_LOGIN_REQUIRED', 'another session');
    const again = await loggedIn(c);
    c.backend.loseNext = true;
    expectProblem(await revoke(c, again.headers), 401, 'CONSOLE_LOGIN_REQUIRED', 'lost mid-command');
    c.backend.loseNext = false;
    expectProblem(await overview(c, again.headers), 401, 'CONSOLE_LOGIN_REQUIRED', 'after');
  });
});

describe('the console answers', () => {
  it('builds the overview from the commands run in the session, each with --json', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    c.now = Date.parse('2026-03-01T10:10:00Z');
    const answer = await overview(c, headers);
    expect(answer.statusCode).toBe(200);
    const body = OverviewAnswer.parse(answer.json()) as ConsoleOverview;
    expect(body).toEqual({
      home: '/home/ana/.dkms',
      wallet: { factors: ['passphrase'], keys: [{ name: 'agent-sign', type: 'ed25519', location: 'wallet', publicKey: 'z6MkAgent' }] },
      agents: JSON.parse(PRINTED['agent list']?.out ?? ''),
      recovery: JSON.parse(PRINTED['recovery status']?.out ?? ''),
      trustees: { trustees: [], threshold: null, prepared: null, holding: [] },
      backups: { lastBackup: { version: 3, at: '2026-03-01T09:00:00Z' }, ageSeconds: 4200 },
      connections: { connections: [] },
      custody: null,
      audit: null,
      problems: [],
    });
    expect(c.backend.runs.map((argv) => argv.join(' ')).sort()).toEqual(
      [
        '--json wallet info',
        '--json key list',
        '--json agent list',
        '--json recovery status',
        '--json trustee list',
        '--json connection list',
        '--json audit show --last 200',
      ].sort(),
    );
  });

  it('lists a section whose command failed as a problem, the section null, and still answers 200; shows custodians and the audit log when there are', async () => {
    const c = await consoleServer();
    c.backend.printed['agent list'] = failed('LEDGER_UNREACHABLE', 'cannot reach the ledger at http://127.0.0.1:8420', 50);
    c.backend.printed['recovery status'] = failed('LEDGER_UNREACHABLE', 'cannot reach the ledger at http://127.0.0.1:8420', 50);
    c.backend.printed['wallet info'] = ok({
      format: 2,
      kdf: { alg: 'argon2id' },
      protection: { passphrase: true, custody: { set: 's1', epoch: 1, mode: 'approval' }, keyTokens: [] },
    });
    const custody = { pending: [], set: 's1', epoch: 1, mode: 'approval', threshold: 2, custodians: [], digest: 'd' };
    c.backend.printed['custodian status'] = ok(custody);
    const records = [{ seq: 1, time: '2026-03-01T09:00:00Z', op: 'sign', outcome: 'done', detail: {} }];
    c.backend.printed['audit show'] = ok({ records });
    const { headers } = await loggedIn(c);
    const body = (await overview(c, headers)).json<ConsoleOverview>();
    expect(body.agents).toBeNull();
    expect(body.recovery).toBeNull();
    expect(body.backups).toBeNull();
    expect(body.problems).toEqual(
      ['agents', 'recovery', 'backups'].map((section) => ({
        section,
        code: 'LEDGER_UNREACHABLE',
        message: 'cannot reach the ledger at http://127.0.0.1:8420',
      })),
    );
    expect(body.wallet?.factors).toEqual(['passphrase', 'custodians (approval)']);
    expect(body.custody).toEqual(custody);
    expect(body.audit).toEqual({ records });
  });

  it('revokes an agent by its key, answering what the command printed (waiting for co-signers too); refuses what is not a key', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    const revoked = { state: 'revoked', target: CAROL, signatures: 1, needed: 1, rotated: [] };
    c.backend.printed['agent revoke'] = ok(revoked);
    const answer = await revoke(c, headers);
    expect(answer.statusCode).toBe(200);
    expect(ActionAnswer.parse(answer.json())).toEqual({ result: revoked });
    expect(c.backend.runs.at(-1)).toEqual(['--json', 'agent', 'revoke', '--wait', '0', '--', CAROL]);

    const waiting = { state: 'waiting', target: CAROL, requestId: 'r1', signatures: 1, needed: 2 };
    c.backend.printed['agent revoke'] = ok(waiting);
    expect((await revoke(c, headers)).json()).toEqual({ result: waiting });

    const runs = c.backend.runs.length;
    for (const payload of [{ key: '--home=/tmp/x' }, { key: 'phone' }, { key: CAROL, more: 1 }, {}, '{"key":', '']) {
      expectProblem(await revoke(c, headers, payload), 400, 'BAD_INPUT', JSON.stringify(payload));
    }
    expect(c.backend.runs.length).toBe(runs);
  });

  it("answers a command's failure as a problem with its code and that code's status", async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    c.backend.printed['recovery backup'] = failed('RECOVERY_NOT_SET_UP', 'recovery is not set up on this agent: run `dkms recovery setup`', 97);
    const backup = await c.app.inject({ method: 'POST', url: '/ui/console/api/backups', headers, payload: '{}' });
    expectProblem(backup, 409, 'RECOVERY_NOT_SET_UP');
    expect(backup.json()).toMatchObject({ detail: 'recovery is not set up on this agent: run `dkms recovery setup`' });
    c.backend.printed['recovery cancel'] = ok({ cancelled: '2026-03-01T09:59:00Z' });
    const cancel = await c.app.inject({ method: 'POST', url: '/ui/console/api/recovery/cancel', headers, payload: '{}' });
    expect(cancel.json()).toEqual({ result: { cancelled: '2026-03-01T09:59:00Z' } });
    expect(c.backend.runs.slice(-2)).toEqual([
      ['--json', 'recovery', 'backup'],
      ['--json', 'recovery', 'cancel'],
    ]);
  });

  it('logs out: the cookie cleared, the session ended, and the unlock session the console started locked', async () => {
    const c = await consoleServer();
    const { headers } = await loggedIn(c);
    const out = await c.app.inject({
      method: 'DELETE',
      url: '/ui/console/api/session',
      headers: Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'content-type')),
    });
    expect(out.statusCode).toBe(204);
    expect(out.headers['cache-control']).toBe('no-store');
    expect(out.headers['set-cookie']).toBe('dkms_console=; HttpOnly; SameSite=Strict; Path=/ui/console; Max-Age=0');
    expect(c.backend.locked).toEqual([4001]);
    expectProblem(await overview(c, headers), 401, 'CONSOLE_LOGIN_REQUIRED');
  });

  it('locks the unlock session it started when the server closes', async () => {
    const c = await consoleServer();
    await loggedIn(c);
    await c.app.close();
    expect(c.backend.locked).toEqual([4001]);
  });

  it('puts the passphrase in no log line and no problem, whatever the request', async () => {
    const c = await consoleServer();
    const texts: string[] = [];
    const keep = (answer: LightMyRequestResponse) => texts.push(answer.body, JSON.stringify(answer.headers));
    keep(await login(c, WRONG[0]));
    keep(await login(c));
    keep(await login(c, PASSPHRASE.repeat(40)));
    keep(await c.app.inject({ method: 'POST', url: '/ui/console/api/session', headers: browser(), payload: `{"passphrase": ${PASSPHRASE}}` }));
    keep(
      await c.app.inject({
        method: 'POST',
        url: '/ui/console/api/session',
        headers: browser(),
        payload: `{"passphrase":"${PASSPHRASE}","and":"${PASSPHRASE}"}`,
      }),
    );
    keep(await c.app.inject({ method: 'POST', url: '/ui/console/api/session', headers: browser({ 'content-type': 'text/plain' }), payload: PASSPHRASE }));
    keep(
      await c.app.inject({ method: 'POST', url: '/ui/console/api/session', headers: browser(), payload: `{"passphrase":"${PASSPHRASE}"`.padEnd(20_000, ' ') }),
    );
    expect(texts.length).toBe(14);
    expect(c.log.length).toBeGreaterThan(10);
    for (const text of [...texts, ...c.log]) {
      expect(text).not.toContain(PASSPHRASE);
      expect(text).not.toContain(WRONG[0]);
      expect(text).not.toContain('correct-horse');
    }
  });
});

describe('the console off', () => {
  it('serves no console API without the console: 404 for every method, the console page not served', async () => {
    const c = await consoleServer({ console: false });
    for (const [method, url] of [
      ['POST', '/ui/console/api/session'],
      ['GET', '/ui/console/api/overview'],
      ['DELETE', '/ui/console/api/session'],
      ['POST', '/ui/console/api/backups'],
    ] as const) {
      const answer = await c.app.inject({ method, url, headers: browser(), payload: JSON.stringify({ passphrase: PASSPHRASE }) });
      expectProblem(answer, 404, 'NOT_FOUND', `${method} ${url}`);
    }
    expect((await c.app.inject({ method: 'GET', url: '/ui/console/', headers: { host: HOST } })).body).toContain('explorer');
    expect(c.backend.runs).toEqual([]);
  });

  it('serves the console page under /ui/console/ when on, and 404 for any other path or method under its API', async () => {
    const c = await consoleServer();
    expect((await c.app.inject({ method: 'GET', url: '/ui/console/', headers: { host: HOST } })).body).toContain('console');
    for (const [method, url] of [
      ['GET', '/ui/console/api'],
      ['GET', '/ui/console/api/'],
      ['GET', '/ui/console/api/nothing'],
      ['HEAD', '/ui/console/api/overview'],
      ['PUT', '/ui/console/api/session'],
      ['GET', '/ui/console/api/session'],
    ] as const) {
      const answer = await c.app.inject({ method, url, headers: { host: HOST, origin: ORIGIN } });
      expect(answer.statusCode, `${method} ${url}`).toBe(404);
      expect(answer.headers['cache-control'], `${method} ${url}`).toBe('no-store');
    }
  });

  it('answers 404 under the console API on a server not listening on loopback', async () => {
    const c = await consoleServer();
    const url = (await c.app.listen({ host: '0.0.0.0', port: 0 })).replace(/\/\/[^:]+:/, '//127.0.0.1:');
    const { port } = new URL(url);
    const answer = await fetch(`${url}/ui/console/api/session`, {
      method: 'POST',
      headers: { origin: `http://127.0.0.1:${port}`, 'content-type': 'application/json' },
      body: JSON.stringify({ passphrase: PASSPHRASE }),
    });
    expect(answer.status).toBe(404);
    expect(((await answer.json()) as { code: string }).code).toBe('NOT_FOUND');
    expect(c.backend.running).toBeUndefined();
  });
});
