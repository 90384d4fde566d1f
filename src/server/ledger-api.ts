/**
 * The ledger node's HTTP API (fastify). Thin: parse, call the node, map errors to RFC 9457
 * problem+json with dkms codes. Every read that a client must trust comes with the signed tree
 * head and Merkle inclusion proofs, so the client verifies rather than believes.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { didDocument, didDocumentMetadata } from '../did/document.js';
import { DkmsError } from '../errors.js';
import { DID_PREFIX, POLICY_PREFIX, type Subject } from '../ledger/events.js';
import type { LedgerNode } from '../ledger/node.js';
import type { LogRecord } from '../ledger/state.js';
import { installProblemHandlers, sendProblem } from './problem.js';

export interface LedgerServerOptions {
  /** Requests per second allowed from one client address. */
  readonly rateLimitPerSecond?: number;
  /** Largest request body, bytes. */
  readonly bodyLimit?: number;
  readonly logger?: boolean;
}

export const MAX_BATCH = 500;
const MAX_PAGE = 1000;

const subjectParams = { type: 'object', required: ['subject'], properties: { subject: { type: 'string', maxLength: 100 } } } as const;
const atQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { at: { type: 'integer', minimum: 0 }, time: { type: 'string', maxLength: 40 } },
} as const;

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
    frameworkErrors: (error, request, reply) => sendProblem(reply, new DkmsError('BAD_INPUT', `bad request URL: ${error.message.split('\n')[0] ?? ''}`)),
  });
  installProblemHandlers(app, (url) => (url.startsWith('/v1/events') ? 'EVENT_MALFORMED' : 'BAD_INPUT'));
  // Rate limiting hooks the routes declared after it: the routes live in a plugin registered next.
  void app.register(rateLimit, { max: options.rateLimitPerSecond ?? 200, timeWindow: 1000 });
  void app.register(async (api) => ledgerRoutes(api, node));
  return app;
}

function ledgerRoutes(app: FastifyInstance, node: LedgerNode): void {
  // Other nodes may share the store: every read first takes in what they appended.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'GET') await node.refresh();
  });

  /** The cutoff a historical read asks for: everything before global sequence number `at`, or accepted by `time`. */
  const cutoff = async (query: { at?: number; time?: string }): Promise<number> => {
    if (query.at !== undefined && query.time !== undefined) throw new DkmsError('BAD_INPUT', 'give at or time, not both');
    if (query.time !== undefined) {
      if (Number.isNaN(Date.parse(query.time))) throw new DkmsError('BAD_INPUT', 'time must be an ISO 8601 date-time');
      return node.gseqAtTime(new Date(query.time).toISOString());
    }
    return Math.min(query.at ?? node.size, node.size);
  };

  /** The records with an inclusion proof each, all under one head. */
  const proven = (history: readonly LogRecord[]) => {
    const head = node.head();
    return { head, history, proofs: history.map((r) => node.inclusionProof(r.gseq, head.size)) };
  };

  app.get('/v1/health', async () => ({ status: 'ok', size: node.size, key: node.key }));

  app.get(
    '/v1/head',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { size: { type: 'integer', minimum: 1 } } } } },
    async (request) => {
      const { size } = request.query as { size?: number };
      return size === undefined ? node.head() : node.headAt(size);
    },
  );

  app.post('/v1/events', { schema: { body: { type: 'object' } } }, async (request, reply) => {
    const receipt = await node.submit(request.body);
    return reply.code(201).send(receipt);
  });

  app.post(
    '/v1/events/batch',
    { schema: { body: { type: 'object', required: ['events'], additionalProperties: false, properties: { events: { type: 'array', minItems: 1, maxItems: MAX_BATCH } } } } },
    async (request) => ({ results: await node.submitMany((request.body as { events: unknown[] }).events) }),
  );

  app.get('/v1/policies/:subject', { schema: { params: subjectParams, querystring: atQuery } }, async (request) => {
    const subject = checkSubject((request.params as { subject: string }).subject, POLICY_PREFIX);
    const until = await cutoff(request.query as { at?: number; time?: string });
    const history = await node.history(subject, until);
    if (history.length === 0) throw new DkmsError('SUBJECT_NOT_FOUND', `no policy ${subject}${until < node.size ? ` as of ${until}` : ''}`);
    return { record: await node.stateAt(subject, until), ...proven(history) };
  });

  app.get('/v1/dids/:subject', { schema: { params: subjectParams, querystring: atQuery } }, async (request) => {
    const subject = checkSubject((request.params as { subject: string }).subject, DID_PREFIX);
    const until = await cutoff(request.query as { at?: number; time?: string });
    const history = await node.history(subject, until);
    if (history.length === 0) throw new DkmsError('SUBJECT_NOT_FOUND', `no DID ${subject}${until < node.size ? ` as of ${until}` : ''}`);
    const did = await node.stateAt(subject, until);
    const first = history.find((r) => r.event.type === 'did.create')?.event;
    const policy = first?.type === 'did.create' ? await node.stateAt(first.policy as Subject, until) : undefined;
    if (did?.kind !== 'did' || policy?.kind !== 'policy') throw new DkmsError('INTERNAL', `inconsistent state for ${subject}`);
    return { didDocument: didDocument(did, policy), didDocumentMetadata: didDocumentMetadata(did), ...proven(history) };
  });

  app.get(
    '/v1/log',
    { schema: { querystring: { type: 'object', additionalProperties: false, required: ['from'], properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } } } } },
    async (request) => {
      const { from, to } = request.query as { from: number; to?: number };
      const end = Math.min(to ?? from + MAX_PAGE, from + MAX_PAGE, node.size);
      return { head: node.head(), records: end > from ? await node.range(from, end) : [] };
    },
  );

  app.get(
    '/v1/proofs/inclusion',
    { schema: { querystring: { type: 'object', additionalProperties: false, required: ['gseq'], properties: { gseq: { type: 'integer', minimum: 0 }, size: { type: 'integer', minimum: 1 } } } } },
    async (request) => {
      const { gseq, size = node.size } = request.query as { gseq: number; size?: number };
      if (gseq >= size || size > node.size) throw new DkmsError('BAD_INPUT', `need gseq < size <= ${node.size}`);
      return { gseq, size, proof: node.inclusionProof(gseq, size) };
    },
  );

  app.get(
    '/v1/proofs/consistency',
    { schema: { querystring: { type: 'object', additionalProperties: false, required: ['from'], properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } } } } },
    async (request) => {
      const { from, to = node.size } = request.query as { from: number; to?: number };
      if (from > to || to > node.size) throw new DkmsError('BAD_INPUT', `need from <= to <= ${node.size}`);
      return { from, to, proof: node.consistencyProof(from, to) };
    },
  );
}
