/**
 * The agency's HTTP API (fastify). Thin: authenticate, parse, call the Agency, map errors to
 * RFC 9457 problem+json. Every request but the public ones (health, a cloud agent's public
 * description, inbound envelopes) is signed by an agent key (agent/request-auth.ts).
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { decodePublicKey, fromBase64url, fromUtf8, toBase64url } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import type { Admit, Agency } from '../agency/agency.js';
import { AGENCY_API, BACKUP_BODY_LIMIT, ENVELOPE_TYPES, MAX_PICKUP, MAX_WAIT_SECONDS } from '../agency/api-schemas.js';
import { MAX_ENVELOPE_CHARS } from '../didcomm/index.js';
import { RequestVerifier, type SignedRequest } from '../agency/request-auth.js';
import { contractOf, openApiText, routeSchema } from './openapi.js';
import { installProblemHandlers, sendProblem } from './problem.js';
import { intParam } from './query.js';
import { sharedValidators } from './validators.js';

export interface AgencyServerOptions {
  /** Requests per second from one client address. */
  readonly rateLimitPerSecond?: number;
  /** Signed requests per second from one agent key (counted once the key is found allowed to make the request). */
  readonly agentRequestsPerSecond?: number;
  readonly logger?: boolean;
  /** Checks signed requests and remembers the nonces of admitted ones (default: a new one; tests pass theirs to look at its size). */
  readonly verifier?: RequestVerifier;
}

export { MAX_PICKUP, MAX_WAIT_SECONDS };

const LIMIT = intParam('limit', 1, MAX_PICKUP);
const WAIT = intParam('wait', 0, MAX_WAIT_SECONDS);
const VERSION = intParam('version', 1);

/** The route options (request schemas) of `method route`, converted from its contract. */
const contract = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', route: string) => ({ schema: routeSchema(contractOf(AGENCY_API, method, route)) });
const openApi = openApiText(AGENCY_API);
const isEnvelopeType = (type: string): boolean => (ENVELOPE_TYPES as readonly string[]).includes(type);

export function buildAgencyServer(agency: Agency, options: AgencyServerOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: MAX_ENVELOPE_CHARS + 4096,
    routerOptions: { maxParamLength: 100 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
    schemaController: { compilersFactory: sharedValidators },
    frameworkErrors: (error, request, reply) => sendProblem(reply, new DkmsError('BAD_INPUT', `bad request URL: ${error.message.split('\n')[0] ?? ''}`)),
  });
  app.addContentTypeParser('application/didcomm-encrypted+json', { parseAs: 'string' }, (request, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new DkmsError('ENVELOPE_MALFORMED', 'the envelope is not JSON'), undefined);
    }
  });
  installProblemHandlers(app, (url) => (url.startsWith('/v1/inbound') ? 'ENVELOPE_MALFORMED' : 'BAD_INPUT'), 'ENVELOPE_TOO_LARGE');
  // By address only: an unverified key header must not let anyone spend another agent's quota.
  void app.register(rateLimit, { max: options.rateLimitPerSecond ?? 200, timeWindow: 1000 });
  const verifier = options.verifier ?? new RequestVerifier();
  void app.register(async (api) => agencyRoutes(api, agency, verifier, options.agentRequestsPerSecond ?? 50));
  return app;
}

/** BAD_INPUT unless `value` is a multibase public key of `type`. */
function checkKey(value: string, type: 'ed25519' | 'x25519', field: string): void {
  try {
    decodePublicKey(value, type);
  } catch {
    throw new DkmsError('BAD_INPUT', `${field} must be a multibase ${type === 'ed25519' ? 'Ed25519' : 'X25519'} public key`);
  }
}

/** Counts each admitted agent's requests per second. */
function agentQuota(perSecond: number): (key: string) => void {
  let window = 0;
  let counts = new Map<string, number>();
  return (key) => {
    const now = Math.floor(Date.now() / 1000);
    if (now !== window) {
      window = now;
      counts = new Map();
    }
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n > perSecond) throw new DkmsError('RATE_LIMITED', 'too many requests from this agent: slow down and retry later');
  };
}

/**
 * A signed request's key, checked (signature, time), with the `admit` that the Agency calls once
 * it found the key allowed to make the request: only then are its budget and nonce spent.
 */
export interface Signed {
  readonly key: string;
  readonly admit: Admit;
}

function agencyRoutes(app: FastifyInstance, agency: Agency, verifier: RequestVerifier, agentRequestsPerSecond: number): void {
  const quota = agentQuota(agentRequestsPerSecond);
  const signer = (request: FastifyRequest): Signed => {
    const checked: SignedRequest = verifier.check(request.headers, request.method, request.url, request.body ?? undefined);
    return {
      key: checked.key,
      admit: async () => {
        quota(checked.key);
        await verifier.admit(checked);
      },
    };
  };

  app.get('/openapi.json', async (request, reply) => reply.type('application/json; charset=utf-8').send(openApi()));
  app.get('/v1/health', async () => ({ status: 'ok', service: 'agency' }));

  app.post('/v1/cloud-agents', contract('POST', '/v1/cloud-agents'), async (request, reply) => {
    const { key, admit } = signer(request);
    const info = await agency.register(key, (request.body as { policy: string }).policy, admit);
    return reply.code(201).send(info);
  });

  app.get('/v1/cloud-agents/:id', contract('GET', '/v1/cloud-agents/:id'), async (request) =>
    agency.info(await agency.cloudAgent((request.params as { id: string }).id)),
  );

  app.post('/v1/cloud-agents/:id/sync', contract('POST', '/v1/cloud-agents/:id/sync'), async (request) => {
    const { key, admit } = signer(request);
    return agency.sync(key, (request.params as { id: string }).id, admit);
  });

  backupRoutes(app, agency, signer);

  app.post('/v1/guests', contract('POST', '/v1/guests'), async (request, reply) => {
    const { key, admit } = signer(request);
    const body = request.body as { cloud: string; key: string };
    checkKey(body.key, 'ed25519', 'key');
    checkKey(body.cloud, 'x25519', 'cloud');
    return reply.code(201).send(await agency.allowGuest(key, body.cloud, body.key, admit));
  });

  app.put('/v1/cloud-agents/:id/sponsors', contract('PUT', '/v1/cloud-agents/:id/sponsors'), async (request) => {
    const { key, admit } = signer(request);
    const keys = (request.body as { keys: string[] }).keys;
    for (const k of keys) checkKey(k, 'ed25519', 'keys');
    return agency.setSponsors(key, (request.params as { id: string }).id, keys, admit);
  });

  app.post('/v1/inbound', contract('POST', '/v1/inbound'), async (request, reply) => {
    const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (!isEnvelopeType(type)) throw new DkmsError('ENVELOPE_MALFORMED', `post envelopes as ${ENVELOPE_TYPES[0]}`);
    const { ids } = await agency.inbound(request.body, request.ip);
    return reply.code(202).send({ accepted: ids.length });
  });

  app.get('/v1/mailbox', contract('GET', '/v1/mailbox'), async (request) => {
    const limit = LIMIT.read(request.query) ?? 100;
    const wait = WAIT.read(request.query) ?? 0;
    const { key, admit } = signer(request);
    const aborted = new AbortController();
    request.raw.once('close', () => aborted.abort());
    const messages = await agency.pickup(key, limit, wait * 1000, admit, aborted.signal);
    return { messages: messages.map((m) => ({ id: m.id, received: m.received, envelope: JSON.parse(fromUtf8(m.envelope)) as unknown })) };
  });

  app.post('/v1/mailbox/ack', contract('POST', '/v1/mailbox/ack'), async (request) => {
    const { key, admit } = signer(request);
    return { acknowledged: await agency.ack(key, (request.body as { ids: string[] }).ids, admit) };
  });
}

/**
 * Backups: an owner's agents store them under the locator (derived from R); only a request
 * signed by a recovery key the owner's policy commits to gets one back.
 */
function backupRoutes(app: FastifyInstance, agency: Agency, signer: (request: FastifyRequest) => Signed): void {
  app.post('/v1/cloud-agents/:id/backups', { bodyLimit: BACKUP_BODY_LIMIT, ...contract('POST', '/v1/cloud-agents/:id/backups') }, async (request, reply) => {
    const { key, admit } = signer(request);
    const body = request.body as { locator: string; data: string };
    const stored = await agency.putBackup(key, (request.params as { id: string }).id, body.locator, fromBase64url(body.data, 'backup'), admit);
    return reply.code(201).send({ version: stored.version, created: stored.created, size: stored.size });
  });

  app.delete('/v1/cloud-agents/:id/backups/:locator', contract('DELETE', '/v1/cloud-agents/:id/backups/:locator'), async (request) => {
    const { key, admit } = signer(request);
    const params = request.params as { id: string; locator: string };
    return { deleted: await agency.deleteBackups(key, params.id, params.locator, admit) };
  });

  app.get('/v1/backups/:locator', contract('GET', '/v1/backups/:locator'), async (request) => {
    const index = await agency.backupIndex((request.params as { locator: string }).locator);
    return { policy: index.policy, cloud: index.cloud, versions: index.versions.map((v) => ({ version: v.version, created: v.created, size: v.size })) };
  });

  app.get('/v1/backups/:locator/data', contract('GET', '/v1/backups/:locator/data'), async (request) => {
    const version = VERSION.read(request.query);
    let signed: Signed;
    try {
      signed = signer(request);
    } catch (e) {
      if (isDkmsError(e, 'REQUEST_UNAUTHORIZED')) throw new DkmsError('BACKUP_UNAUTHORIZED', e.message);
      throw e;
    }
    const found = await agency.getBackup(signed.key, (request.params as { locator: string }).locator, version, signed.admit);
    return { version: found.record.version, created: found.record.created, data: toBase64url(found.data) };
  });
}
