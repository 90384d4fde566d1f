/**
 * The ledger node's HTTP API (fastify). Thin: parse, call the node, map errors to RFC 9457
 * problem+json with dkms codes. Every read that a client must trust comes with the signed tree
 * head and Merkle inclusion proofs, so the client verifies rather than believes.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { DkmsError } from '../errors.js';
import { DID_PREFIX, POLICY_PREFIX, type Did, type PolicyAddress, type Subject } from '../ledger/events.js';
import type { CosignatureSubmission, LedgerNode } from '../ledger/node.js';
import { LEDGER_API, MAX_BATCH, MAX_HEAD_WAIT_MS, MAX_LOG_PAGE } from '../ledger/api-schemas.js';
import { intParam } from './query.js';
import { AFTER, FROM, LedgerReads, TO, readQueryOf, type Answer } from './ledger-reads.js';
import { contractOf, openApiText, routeSchema } from './openapi.js';
import { installProblemHandlers, sendProblem } from './problem.js';
import { universalResolverRoutes } from './universal-resolver.js';
import { sharedValidators } from './validators.js';
import { dashboardNotFound, isDashboardUrl, registerWebRoutes, type WebOptions } from './web-routes.js';

export interface LedgerServerOptions {
  /** Requests per second allowed from one client address (default 200; 0: no limit). */
  readonly rateLimitPerSecond?: number;
  /** Largest request body, bytes. */
  readonly bodyLimit?: number;
  readonly logger?: boolean;
  /** The web dashboard, served under /ui/ (docs/dashboard.md); without it the node serves the API alone. */
  readonly web?: WebOptions;
}

export { MAX_BATCH };

/** The route options (request schemas) of `method route`, converted from its contract. */
const contract = (method: 'GET' | 'POST', route: string) => ({ schema: routeSchema(contractOf(LEDGER_API, method, route)) });
const openApi = openApiText(LEDGER_API);

function checkSubject(subject: string, prefix: string): Subject {
  if (!subject.startsWith(prefix)) throw new DkmsError('BAD_INPUT', `expected a subject starting with ${prefix}`);
  return subject as Subject;
}

export function buildLedgerServer(node: LedgerNode, options: LedgerServerOptions = {}): FastifyInstance {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    routerOptions: { maxParamLength: 200 },
    // Unknown query parameters are refused, not silently dropped, and nothing is coerced into an array.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
    schemaController: { compilersFactory: sharedValidators },
    frameworkErrors: (error, request, reply) =>
      options.web !== undefined && isDashboardUrl(request.url)
        ? dashboardNotFound(request, reply)
        : sendProblem(reply, new DkmsError('BAD_INPUT', `bad request URL: ${error.message.split('\n')[0] ?? ''}`)),
  });
  installProblemHandlers(app, (url) => (url.startsWith('/v1/events') ? 'EVENT_MALFORMED' : 'BAD_INPUT'));
  // Rate limiting hooks the routes declared after it: the routes live in a plugin registered next.
  const limit = options.rateLimitPerSecond ?? 200;
  // No limit at all (not a very high one): behind a proxy that limits, or to measure the node.
  if (limit > 0) void app.register(rateLimit, { max: limit, timeWindow: 1000 });
  void app.register(async (api) => ledgerRoutes(api, node));
  // A plugin of its own: its hooks (the Host check, the security headers) stay with its routes.
  const web = options.web;
  if (web !== undefined) void app.register(async (ui) => registerWebRoutes(ui, web));
  return app;
}

const WAIT_MS = intParam('wait', 0, MAX_HEAD_WAIT_MS);
const GSEQ = intParam('gseq', 0);
const SIZE = intParam('size', 1);

function ledgerRoutes(app: FastifyInstance, node: LedgerNode): void {
  // Other nodes may share the store: reads first take in what they appended.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'GET') await node.current();
  });
  const reads = new LedgerReads(node);
  // Witnesses waiting at /v1/head/next must not hold the server open when it stops, nor must
  // clients that keep polling on a keep-alive connection: it is closed the moment it is idle.
  app.addHook('preClose', (done) => {
    node.wake();
    const sweep = setInterval(() => app.server.closeIdleConnections(), 10);
    app.server.once('close', () => clearInterval(sweep));
    done();
  });
  const send = (reply: FastifyReply, answer: Answer) => reply.code(answer.status).type(answer.type).send(answer.body);

  app.get('/openapi.json', async (request, reply) => reply.type('application/json; charset=utf-8').send(openApi()));
  app.get('/v1/health', async () => ({ status: 'ok', size: node.size, key: node.key }));
  universalResolverRoutes(app, node);

  app.get('/v1/head', contract('GET', '/v1/head'), async () => node.servedHead());

  // For witnesses: the newest head, which a node with witnesses serves to clients only once cosigned.
  app.get('/v1/head/next', contract('GET', '/v1/head/next'), async (request) => {
    const after = AFTER.read(request.query) ?? -1;
    const wait = WAIT_MS.read(request.query) ?? 0;
    return node.nextHead(after, wait);
  });

  app.post('/v1/cosignatures', contract('POST', '/v1/cosignatures'), async (request) => {
    node.addCosignature(request.body as CosignatureSubmission);
    return { head: node.servedHead() };
  });

  app.post('/v1/events', contract('POST', '/v1/events'), async (request, reply) => {
    const receipt = await node.submit(request.body);
    return reply.code(201).send(receipt);
  });

  app.post('/v1/events/batch', contract('POST', '/v1/events/batch'), async (request) => ({
    results: await node.submitMany((request.body as { events: unknown[] }).events),
  }));

  app.get('/v1/policies/:subject', contract('GET', '/v1/policies/:subject'), async (request, reply) =>
    send(
      reply,
      await reads.policy(
        checkSubject((request.params as { subject: string }).subject, POLICY_PREFIX) as PolicyAddress,
        readQueryOf(request.query),
        request.url,
      ),
    ),
  );

  app.get('/v1/dids/:subject', contract('GET', '/v1/dids/:subject'), async (request, reply) =>
    send(reply, await reads.did(checkSubject((request.params as { subject: string }).subject, DID_PREFIX) as Did, readQueryOf(request.query), request.url)),
  );

  app.post('/v1/proofs/map', contract('POST', '/v1/proofs/map'), async (request) =>
    reads.mapProofs(
      (request.body as { subjects: string[] }).subjects.map((s) => (s.startsWith(DID_PREFIX) ? checkSubject(s, DID_PREFIX) : checkSubject(s, POLICY_PREFIX))),
    ),
  );

  app.get('/v1/log', contract('GET', '/v1/log'), async (request) => {
    const from = FROM.read(request.query) ?? 0;
    const to = TO.read(request.query);
    const head = node.servedHead();
    const end = Math.min(to ?? from + MAX_LOG_PAGE, from + MAX_LOG_PAGE, head.size);
    const records = end > from ? await node.range(from, end) : [];
    if ((request.query as { proofs?: string }).proofs !== 'true') return { head, records };
    return { head, records, proofs: records.map((r) => node.inclusionProof(r.gseq, head.size)) };
  });

  app.get('/v1/proofs/inclusion', contract('GET', '/v1/proofs/inclusion'), async (request) => {
    const gseq = GSEQ.read(request.query) ?? 0;
    const size = SIZE.read(request.query) ?? node.size;
    if (gseq >= size || size > node.size) throw new DkmsError('BAD_INPUT', `need gseq < size <= ${node.size}`);
    return { gseq, size, proof: node.inclusionProof(gseq, size) };
  });

  app.get('/v1/proofs/consistency', contract('GET', '/v1/proofs/consistency'), async (request) => {
    const from = FROM.read(request.query) ?? 0;
    const to = TO.read(request.query) ?? node.size;
    if (from > to || to > node.size) throw new DkmsError('BAD_INPUT', `need from <= to <= ${node.size}`);
    return { from, to, proof: node.consistencyProof(from, to) };
  });
}
