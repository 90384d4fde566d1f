/**
 * The owner console's API under `/ui/console/api/` (docs/dashboard.md, "Owner console API"),
 * served beside the dashboard by `dkms up` on a loopback address only. A login with the wallet's
 * passphrase opens the wallet in the data directory's unlock session (or checks the passphrase
 * against the session already running); the console then runs the CLI's own commands there
 * through a {@link ConsoleBackend} and answers what they print with `--json`. Private keys stay in
 * the session: what reaches the browser is what those commands print.
 *
 * Every request passes the dashboard's Host rule (web-routes.ts) and, but the login, carries the
 * console session's cookie and its CSRF token (`X-DKMS-CSRF`, GET included); everything but a GET
 * also comes from the page's own origin (`Origin`, `Sec-Fetch-Site`) with a JSON body. Nothing of
 * a refused request is run. Every answer is `Cache-Control: no-store`. The passphrase goes from
 * the request's body to the session's pipe or socket, and nowhere else: no log, no message.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { ConsoleSessions, LoginLimit, type ConsoleSessionLimits } from './console-sessions.js';
import type {
  ConsoleAgentList,
  ConsoleAuditShow,
  ConsoleBackups,
  ConsoleConnectionList,
  ConsoleCustodianStatus,
  ConsoleOverview,
  ConsoleProblem,
  ConsoleRecoveryStatus,
  ConsoleTrusteeList,
  ConsoleWallet,
} from './console-types.js';
import { requestSchema } from './openapi.js';
import { sendProblem } from './problem.js';

export const CONSOLE_API = '/ui/console/api';
export const CONSOLE_COOKIE = 'dkms_console';
const COOKIE_PATH = '/ui/console';
export const CSRF_HEADER = 'x-dkms-csrf';
const LOGIN_ROUTE = `${CONSOLE_API}/session`;
/** The largest request body the console takes. */
const BODY_LIMIT = 16 * 1024;
/** Audit records the overview shows, the newest. */
export const AUDIT_RECORDS_SHOWN = 200;

/** What a command run in the unlock session printed, and its exit status. */
export interface CommandRun {
  readonly status: number;
  readonly out: string;
  readonly err: string;
}

/** The unlock session a login is for: its process, and whether the console started it. */
export interface UnlockOf {
  readonly session: number;
  readonly started: boolean;
}

/**
 * What the console needs of the data directory's unlock session (cli/console-backend.ts; a fake
 * in tests). Errors are DkmsErrors with the codes named.
 */
export interface ConsoleBackend {
  /** The data directory. */
  readonly home: string;
  /**
   * Checks `passphrase` against the running unlock session, or starts one with it.
   *
   * @throws DkmsError WALLET_BAD_PASSPHRASE, WALLET_NOT_FOUND, CONSOLE_UNAVAILABLE (the wallet
   *   opens with more than a passphrase).
   */
  login(passphrase: string): Promise<UnlockOf>;
  /** The unlock session running now, if any. */
  current(): Promise<number | undefined>;
  /**
   * Runs `dkms argv` in the unlock session.
   *
   * @throws DkmsError SESSION_LOST when the session is gone or went away before the command ended.
   */
  run(argv: readonly string[]): Promise<CommandRun>;
  /** Locks unlock session `session`, if it is the one running. */
  lock(session: number): Promise<void>;
}

export interface ConsoleApiOptions {
  readonly backend: ConsoleBackend;
  /** The clock, in milliseconds (tests hold it). */
  readonly now?: () => number;
  readonly limits?: ConsoleSessionLimits;
}

// Requests and answers, route by route: the request schemas are what fastify validates, the
// answers what the routes send (docs/dashboard.md shows both).

/** POST /ui/console/api/session: log in. */
const LoginRequest = z.strictObject({ passphrase: z.string().min(1).max(1024) });
export const LoginAnswer = z.strictObject({ csrf: z.string(), expiresAt: z.iso.datetime(), idleSeconds: z.number().int() });

/** GET /ui/console/api/overview (ConsoleOverview, console-types.ts). */
const Section = z.record(z.string(), z.unknown()).nullable();
export const OverviewAnswer = z.strictObject({
  home: z.string(),
  wallet: z.strictObject({ factors: z.array(z.string()), keys: z.array(z.record(z.string(), z.unknown())) }).nullable(),
  agents: Section,
  recovery: Section,
  trustees: Section,
  backups: z.strictObject({ lastBackup: z.strictObject({ version: z.number(), at: z.string() }).nullable(), ageSeconds: z.number().nullable() }).nullable(),
  connections: Section,
  custody: Section,
  audit: Section,
  problems: z.array(z.strictObject({ section: z.string(), code: z.string(), message: z.string() })),
});

/** POST /ui/console/api/agents/revoke: the agent's signing key. */
const RevokeRequest = z.strictObject({ key: z.string().regex(/^z6Mk[1-9A-HJ-NP-Za-km-z]{1,100}$/) });
/** POST /ui/console/api/backups and /ui/console/api/recovery/cancel: nothing to say. */
const EmptyRequest = z.strictObject({});
/** Every action's answer: the JSON its command printed. */
export const ActionAnswer = z.strictObject({ result: z.record(z.string(), z.unknown()) });

const body = (schema: z.ZodType) => ({ schema: { body: requestSchema(schema) }, exposeHeadRoute: false });
const LOGIN_SCHEMA = body(LoginRequest);
const REVOKE_SCHEMA = body(RevokeRequest);
const EMPTY_SCHEMA = body(EmptyRequest);

const loginRequired = (why: string) => new DkmsError('CONSOLE_LOGIN_REQUIRED', `${why}: log in with the wallet's passphrase`);
const refused = (why: string) => new DkmsError('CONSOLE_REQUEST_REFUSED', `${why}: the console's API answers its own page only`);

/** The value of cookie `name` in a Cookie header. */
function cookieOf(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const value = request.headers[name];
  return typeof value === 'string' ? value : undefined;
};

function setCookie(reply: FastifyReply, value: string, maxAgeSeconds: number): void {
  void reply
    .removeHeader('set-cookie')
    .header('set-cookie', `${CONSOLE_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=${COOKIE_PATH}; Max-Age=${maxAgeSeconds}`);
}

/**
 * Refuses a request that is not its page's own: for anything but GET, an `Origin` other than
 * the page's (`http://` and the Host the dashboard's rule let through), a `Sec-Fetch-Site` other
 * than same-origin, a body that is not JSON (a DELETE may have none).
 */
function checkOrigin(request: FastifyRequest): void {
  if (request.method === 'GET') return;
  const origin = header(request, 'origin');
  const host = (request.headers.host ?? '').toLowerCase();
  if (origin === undefined || host === '' || origin.toLowerCase() !== `http://${host}`)
    throw refused('the request did not come from the console page (Origin)');
  const site = header(request, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin') throw refused(`the request came from ${JSON.stringify(site.slice(0, 40))} (Sec-Fetch-Site)`);
  const type = header(request, 'content-type');
  const media = type?.split(';')[0]?.trim().toLowerCase();
  if (media !== 'application/json' && !(request.method === 'DELETE' && type === undefined)) throw refused('the body must be application/json');
}

/** What a failure may tell the page: a server-side failure's code without its message (which may name files). */
function forPage(error: DkmsError): DkmsError {
  const status = ERROR_CODES[error.code].http;
  return status >= 500 && status < 502 ? new DkmsError(error.code, `the console failed (${error.code}); see the output of dkms up`) : error;
}

function fromFastify(error: FastifyError): DkmsError {
  if (error instanceof DkmsError) return forPage(error);
  if (error.statusCode === 429) return new DkmsError('RATE_LIMITED', 'too many requests: slow down and retry later');
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new DkmsError('BAD_INPUT', `the body is larger than ${BODY_LIMIT} bytes`);
  // A schema's message names the field and the rule, never the value.
  if (error.validation !== undefined) return new DkmsError('BAD_INPUT', (error.message.split('\n')[0] ?? 'bad request').slice(0, 300));
  return new DkmsError('INTERNAL', 'the console failed (INTERNAL); see the output of dkms up');
}

/** The last line a command printed on standard output, as JSON; undefined when it is not. */
function lastJson(out: string): unknown {
  const line = out.trimEnd().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A failed command's error, as it printed it with --json (or, failing that, its exit status). */
function failureOf(run: CommandRun, printed: unknown): DkmsError {
  const error = isObject(printed) && isObject(printed['error']) ? printed['error'] : undefined;
  const code = error?.['code'];
  if (typeof code === 'string' && code in ERROR_CODES) return new DkmsError(code as ErrorCode, String(error?.['message'] ?? '').slice(0, 1000));
  const known = (Object.keys(ERROR_CODES) as ErrorCode[]).find((c) => ERROR_CODES[c].exit === run.status);
  return new DkmsError(known ?? 'INTERNAL', (run.err.trim().split('\n').at(-1) ?? `the command ended with status ${run.status}`).slice(0, 1000));
}

type Outcome = { readonly ok: true; readonly value: Record<string, unknown> } | { readonly ok: false; readonly error: DkmsError };

/** The words for what opens the wallet, from `dkms wallet info --json`. */
function factorsOf(info: Record<string, unknown>): string[] {
  const protection = isObject(info['protection']) ? info['protection'] : {};
  const kdf = isObject(info['kdf']) ? info['kdf'] : undefined;
  const factors: string[] = [];
  if (protection['passphrase'] === true) factors.push(kdf?.['alg'] === 'raw' ? 'raw key' : 'passphrase');
  if (isObject(protection['token'])) factors.push(`token ${String(protection['token']['token'])}`);
  if (isObject(protection['custody'])) factors.push(`custodians (${String(protection['custody']['mode'])})`);
  return factors;
}

function walletOf(info: Record<string, unknown>, keys: Record<string, unknown>): ConsoleWallet {
  const list = Array.isArray(keys['keys']) ? (keys['keys'] as unknown[]).filter(isObject) : [];
  return {
    factors: factorsOf(info),
    keys: list.map((k) => ({
      name: String(k['name']),
      type: String(k['type']),
      location: String(k['location']),
      ...(typeof k['publicKey'] === 'string' ? { publicKey: k['publicKey'] } : {}),
    })),
  };
}

function backupsOf(recovery: ConsoleRecoveryStatus, now: number): ConsoleBackups {
  const last = recovery.lastBackup ?? null;
  const at = last === null ? NaN : Date.parse(last.at);
  return { lastBackup: last, ageSeconds: Number.isNaN(at) ? null : Math.max(0, Math.floor((now - at) / 1000)) };
}

/**
 * The console's routes on `app` (the dashboard's plugin instance, whose Host rule and headers
 * they keep): answered only while `offered()` (the server listens on a loopback address), 404
 * otherwise. Console sessions end, and an unlock session the console started is locked, when the
 * server closes.
 */
export function registerConsoleApi(app: FastifyInstance, options: ConsoleApiOptions, offered: () => boolean): void {
  const { backend } = options;
  const now = options.now ?? Date.now;
  const sessions = new ConsoleSessions<UnlockOf>(options.limits);
  const logins = new LoginLimit();
  /** Unlock sessions the console started, locked when it stops. */
  const started = new Set<number>();

  // What the body says is parsed here, so that no parser's message ever quotes it.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_request, text, done) => {
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text as string));
    } catch {
      done(new DkmsError('BAD_INPUT', 'the body is not JSON'), undefined);
    }
  });
  app.setErrorHandler((error: FastifyError, _request, reply) => sendProblem(reply, fromFastify(error)));
  /** Each request's console session, found before its body is read. */
  const authenticated = new WeakMap<FastifyRequest, { id: string; unlock: UnlockOf }>();
  app.addHook('onRequest', async (request, reply) => {
    if (!offered()) throw new DkmsError('NOT_FOUND', `no ${request.method} ${request.url.split('?')[0] ?? ''}: the owner console is served on loopback only`);
    checkOrigin(request);
    if (request.routeOptions.url === LOGIN_ROUTE && request.method === 'POST') {
      if (!logins.allow(request.ip, now())) throw new DkmsError('RATE_LIMITED', 'too many logins from this address: wait a minute');
      return;
    }
    // A logout needs no unlock session still running: it ends the console's own.
    authenticated.set(request, await authenticate(request, reply, request.method !== 'DELETE'));
  });
  const sessionOf = (request: FastifyRequest): { id: string; unlock: UnlockOf } => {
    const found = authenticated.get(request);
    if (found === undefined) throw new DkmsError('INTERNAL', 'a console request went unauthenticated');
    return found;
  };
  app.addHook('onSend', async (_request, reply, payload) => {
    void reply.header('cache-control', 'no-store');
    return payload;
  });
  app.addHook('onClose', async () => {
    sessions.endAll();
    for (const session of started) await backend.lock(session);
    started.clear();
  });

  /**
   * The live console session of the request (its cookie and token), its cookie's life renewed;
   * with `unlocked`, also that the unlock session it logged in to still runs.
   */
  const authenticate = async (request: FastifyRequest, reply: FastifyReply, unlocked = true): Promise<{ id: string; unlock: UnlockOf }> => {
    const id = cookieOf(request, CONSOLE_COOKIE);
    const found = sessions.check(id, header(request, CSRF_HEADER), now());
    if (!found.ok || id === undefined) {
      throw found.ok || found.why === 'login'
        ? loginRequired('no console session, or it has ended')
        : refused("the X-DKMS-CSRF header is not the session's token");
    }
    const unlock = found.session.data;
    if (unlocked && (await backend.current()) !== unlock.session) {
      sessions.end(id);
      throw loginRequired('the wallet was locked');
    }
    setCookie(reply, id, found.session.maxAgeSeconds);
    return { id, unlock };
  };

  /** Runs `dkms --json argv` in the unlock session: what it printed, or how it failed. A session gone ends the console's. */
  const command = async (id: string, argv: readonly string[]): Promise<Outcome> => {
    let run: CommandRun;
    try {
      run = await backend.run(['--json', ...argv]);
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'SESSION_LOST') {
        sessions.end(id);
        throw loginRequired('the wallet was locked');
      }
      throw e;
    }
    const printed = lastJson(run.out);
    if (run.status === 0 && isObject(printed)) return { ok: true, value: printed };
    return { ok: false, error: failureOf(run, printed) };
  };

  /** An action's answer: what its command printed, or its failure as a problem with its code's status. */
  const act = async (request: FastifyRequest, reply: FastifyReply, argv: readonly string[]) => {
    const { id } = sessionOf(request);
    const outcome = await command(id, argv);
    if (!outcome.ok) return sendProblem(reply, outcome.error);
    return reply.send({ result: outcome.value });
  };

  app.post(LOGIN_ROUTE, LOGIN_SCHEMA, async (request, reply) => {
    const { passphrase } = request.body as z.infer<typeof LoginRequest>;
    const unlock = await backend.login(passphrase);
    if (unlock.started) started.add(unlock.session);
    const previous = cookieOf(request, CONSOLE_COOKIE);
    if (previous !== undefined) sessions.end(previous);
    const made = sessions.create(now(), unlock);
    setCookie(reply, made.id, sessions.idleSeconds);
    return reply.send({ csrf: made.csrf, expiresAt: new Date(made.expiresAt).toISOString(), idleSeconds: sessions.idleSeconds });
  });

  app.delete(LOGIN_ROUTE, { exposeHeadRoute: false }, async (request, reply) => {
    const { id, unlock } = sessionOf(request);
    sessions.end(id);
    if (started.delete(unlock.session)) await backend.lock(unlock.session);
    setCookie(reply, '', 0);
    return reply.code(204).send();
  });

  app.get(`${CONSOLE_API}/overview`, { exposeHeadRoute: false }, async (request, reply) => {
    const { id } = sessionOf(request);
    const problems: ConsoleProblem[] = [];
    const section = <T>(name: string, outcome: Outcome): T | null => {
      if (outcome.ok) return outcome.value as T;
      problems.push({ section: name, code: outcome.error.code, message: outcome.error.message });
      return null;
    };
    const [info, keys] = await Promise.all([command(id, ['wallet', 'info']), command(id, ['key', 'list'])]);
    const hasCustody = info.ok && isObject(info.value['protection']) && isObject(info.value['protection']['custody']);
    const [agents, recovery, trustees, connections, audit, custody] = await Promise.all([
      command(id, ['agent', 'list']),
      command(id, ['recovery', 'status']),
      command(id, ['trustee', 'list']),
      command(id, ['connection', 'list']),
      command(id, ['audit', 'show', '--last', String(AUDIT_RECORDS_SHOWN)]),
      hasCustody ? command(id, ['custodian', 'status']) : undefined,
    ]);
    // The sections in the overview's order, so that its problems come in that order too.
    const wallet = info.ok && keys.ok ? walletOf(info.value, keys.value) : section<ConsoleWallet>('wallet', info.ok ? keys : info);
    const agentList = section<ConsoleAgentList>('agents', agents);
    const recoveryStatus = section<ConsoleRecoveryStatus>('recovery', recovery);
    const backups = recoveryStatus === null ? section<ConsoleBackups>('backups', recovery) : backupsOf(recoveryStatus, now());
    const trusteeList = section<ConsoleTrusteeList>('trustees', trustees);
    const connectionList = section<ConsoleConnectionList>('connections', connections);
    const custodians = custody === undefined ? null : section<ConsoleCustodianStatus>('custody', custody);
    const shownAudit = section<ConsoleAuditShow>('audit', audit);
    const overview: ConsoleOverview = {
      home: backend.home,
      wallet,
      agents: agentList,
      recovery: recoveryStatus,
      trustees: trusteeList,
      backups,
      connections: connectionList,
      custody: custodians,
      // No record: no audit log in this data directory.
      audit: shownAudit === null || shownAudit.records.length === 0 ? null : shownAudit,
      problems,
    };
    return reply.send(overview);
  });

  app.post(`${CONSOLE_API}/agents/revoke`, REVOKE_SCHEMA, async (request, reply) =>
    // --wait 0: when co-signers are needed, they are asked and the answer says so (state 'waiting').
    act(request, reply, ['agent', 'revoke', '--wait', '0', '--', (request.body as z.infer<typeof RevokeRequest>).key]),
  );
  app.post(`${CONSOLE_API}/backups`, EMPTY_SCHEMA, async (request, reply) => act(request, reply, ['recovery', 'backup']));
  app.post(`${CONSOLE_API}/recovery/cancel`, EMPTY_SCHEMA, async (request, reply) => act(request, reply, ['recovery', 'cancel']));
}
