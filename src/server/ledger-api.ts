/**
 * The ledger node's HTTP API (fastify). Thin: parse, call the node, map errors to RFC 9457
 * problem+json with dkms codes. Every read that a client must trust comes with the signed tree
 * head and Merkle inclusion proofs, so the client verifies rather than believes.
 */
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { didDocument, didDocumentMetadata } from '../did/document.js';
import { DkmsError } from '../errors.js';
import { DID_PREFIX, POLICY_PREFIX, type Did, type Subject } from '../ledger/events.js';
import type { ServedHead } from '../ledger/head.js';
import type { CosignatureSubmission, LedgerNode, Snapshot } from '../ledger/node.js';
import type { LogRecord } from '../ledger/state.js';
import { installProblemHandlers, problemOf, sendProblem } from './problem.js';

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

/** Answers kept per URL while the head they were built under is current. */
const ANSWER_CACHE_LIMIT = 10_000;

/** An answer ready to send: status, media type and the JSON text. */
interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

class AnswerCache {
  readonly #entries = new Map<string, { head: ServedHead; answer: Answer }>();

  get(url: string, head: ServedHead): Answer | undefined {
    const entry = this.#entries.get(url);
    return entry !== undefined && entry.head === head ? entry.answer : undefined;
  }

  put(url: string, head: ServedHead, answer: Answer): void {
    if (this.#entries.size >= ANSWER_CACHE_LIMIT) this.#entries.clear();
    this.#entries.set(url, { head, answer });
  }
}

const JSON_TYPE = 'application/json; charset=utf-8';

const readQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    at: { type: 'integer', minimum: 0 },
    time: { type: 'string', maxLength: 40 },
    after: { type: 'integer', minimum: -1 },
    policyAfter: { type: 'integer', minimum: -1 },
  },
} as const;

interface ReadQuery {
  at?: number;
  time?: string;
  after?: number;
  policyAfter?: number;
}

export const MAX_MAP_PROOFS = 1000;

function ledgerRoutes(app: FastifyInstance, node: LedgerNode): void {
  // Other nodes may share the store: reads first take in what they appended.
  app.addHook('onRequest', async (request) => {
    if (request.method === 'GET') await node.current();
  });
  const cache = new AnswerCache();

  /** The cutoff a historical read asks for: everything before global sequence number `at`, or accepted by `time`. */
  const cutoff = async (query: ReadQuery, size: number): Promise<number> => {
    if (query.at !== undefined && query.time !== undefined) throw new DkmsError('BAD_INPUT', 'give at or time, not both');
    if (query.time !== undefined) {
      if (Number.isNaN(Date.parse(query.time))) throw new DkmsError('BAD_INPUT', 'time must be an ISO 8601 date-time');
      return Math.min(await node.gseqAtTime(new Date(query.time).toISOString()), size);
    }
    return Math.min(query.at ?? size, size);
  };

  /** Serves a cached answer, or builds, caches and sends a new one. */
  const answer = async (request: FastifyRequest, reply: FastifyReply, build: (snapshot: Snapshot) => Promise<Answer>) => {
    const snapshot = await node.snapshot();
    let ready = cache.get(request.url, snapshot.head);
    if (ready === undefined) {
      ready = await build(snapshot);
      cache.put(request.url, snapshot.head, ready);
    }
    return reply.code(ready.status).type(ready.type).send(ready.body);
  };
  const ok = (body: unknown): Answer => ({ status: 200, type: JSON_TYPE, body: JSON.stringify(body) });

  /** 404 with the head and the map's proof that the subject is absent under it. */
  const notFound = (snapshot: Snapshot, subject: Subject, what: string): Answer => {
    const problem = problemOf(new DkmsError('SUBJECT_NOT_FOUND', `no ${what} ${subject}`));
    return { status: problem.status, type: 'application/problem+json', body: JSON.stringify({ ...problem, head: snapshot.head, subjects: { [subject]: snapshot.mapProof(subject) } }) };
  };

  /** Records with an inclusion proof each under `size`, only those below it (the store may be ahead). */
  const proven = (records: readonly LogRecord[], size: number) => {
    const history = records.filter((r) => r.gseq < size);
    return { history, proofs: history.map((r) => node.inclusionProof(r.gseq, size)) };
  };

  app.get('/v1/health', async () => ({ status: 'ok', size: node.size, key: node.key }));

  app.get('/v1/head', { schema: { querystring: { type: 'object', additionalProperties: false, properties: {} } } }, async () => node.servedHead());

  app.post(
    '/v1/cosignatures',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['key', 'time', 'sig', 'size', 'root', 'map'],
          properties: {
            key: { type: 'string', maxLength: 64 },
            time: { type: 'string', maxLength: 40 },
            sig: { type: 'string', maxLength: 100 },
            size: { type: 'integer', minimum: 0 },
            root: { type: 'string', maxLength: 64 },
            map: { type: 'string', maxLength: 64 },
          },
        },
      },
    },
    async (request) => {
      node.addCosignature(request.body as CosignatureSubmission);
      return { head: node.servedHead() };
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

  app.get('/v1/policies/:subject', { schema: { params: subjectParams, querystring: readQuery } }, async (request, reply) => {
    const subject = checkSubject((request.params as { subject: string }).subject, POLICY_PREFIX);
    const query = request.query as ReadQuery;
    if (query.policyAfter !== undefined) throw new DkmsError('BAD_INPUT', 'policyAfter is for DID reads; use after');
    return answer(request, reply, async (snapshot) => {
      const { size } = snapshot.head;
      if (snapshot.entry(subject) === undefined) return notFound(snapshot, subject, 'policy');
      const until = await cutoff(query, size);
      const records = await node.subjectLog(subject, size, query.after ?? -1);
      return ok({
        head: snapshot.head,
        subjects: { [subject]: snapshot.mapProof(subject) },
        ...proven(records, size),
        record: (await node.stateAt(subject, until)) ?? null,
      });
    });
  });

  app.get('/v1/dids/:subject', { schema: { params: subjectParams, querystring: readQuery } }, async (request, reply) => {
    const subject = checkSubject((request.params as { subject: string }).subject, DID_PREFIX) as Did;
    const query = request.query as ReadQuery;
    return answer(request, reply, async (snapshot) => {
      const { size } = snapshot.head;
      if (snapshot.entry(subject) === undefined) return notFound(snapshot, subject, 'DID');
      const controller = await node.controllerOf(subject);
      if (controller === undefined) throw new DkmsError('INTERNAL', `no inception event for ${subject}`);
      const until = await cutoff(query, size);
      const [own, policy] = await Promise.all([node.subjectLog(subject, size, query.after ?? -1), node.subjectLog(controller, size, query.policyAfter ?? -1)]);
      const records = [...own, ...policy].sort((a, b) => a.gseq - b.gseq);
      const did = await node.stateAt(subject, until);
      const policyRecord = await node.stateAt(controller, until);
      const current = did?.kind === 'did' && policyRecord?.kind === 'policy';
      return ok({
        head: snapshot.head,
        subjects: { [subject]: snapshot.mapProof(subject), [controller]: snapshot.mapProof(controller) },
        ...proven(records, size),
        didDocument: current ? didDocument(did, policyRecord) : null,
        didDocumentMetadata: current ? didDocumentMetadata(did) : null,
      });
    });
  });

  app.post(
    '/v1/proofs/map',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['subjects'],
          properties: { subjects: { type: 'array', minItems: 1, maxItems: MAX_MAP_PROOFS, items: { type: 'string', maxLength: 100 } } },
        },
      },
    },
    async (request) => {
      const subjects = (request.body as { subjects: string[] }).subjects.map((s) => (s.startsWith(DID_PREFIX) ? checkSubject(s, DID_PREFIX) : checkSubject(s, POLICY_PREFIX)));
      const snapshot = await node.snapshot();
      return { head: snapshot.head, subjects: Object.fromEntries(subjects.map((s) => [s, snapshot.mapProof(s)])) };
    },
  );

  app.get(
    '/v1/log',
    { schema: { querystring: { type: 'object', additionalProperties: false, required: ['from'], properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } } } } },
    async (request) => {
      const { from, to } = request.query as { from: number; to?: number };
      const head = node.servedHead();
      const end = Math.min(to ?? from + MAX_PAGE, from + MAX_PAGE, head.size);
      return { head, records: end > from ? await node.range(from, end) : [] };
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
