/**
 * The ledger node's HTTP API as data: every route's request (path, query, body) and answers
 * (each status and media type) as zod schemas. The server validates requests with them
 * (converted to JSON Schema), the client checks answers with them, and the OpenAPI document
 * served at `GET /openapi.json` is generated from them: one description, three uses.
 */
import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { ServedHeadSchema } from './head.js';

/** Events per `POST /v1/events/batch`. */
export const MAX_BATCH = 500;
/** Subjects per `POST /v1/proofs/map`. */
export const MAX_MAP_PROOFS = 1000;
/** The longest a witness may wait at `GET /v1/head/next` for a newer head, milliseconds. */
export const MAX_HEAD_WAIT_MS = 30_000;

export const JSON_MEDIA = 'application/json';
export const PROBLEM_MEDIA = 'application/problem+json';

/** One answer of a route: what it means and its body by media type. */
export interface ResponseContract {
  readonly description: string;
  readonly content: Readonly<Record<string, z.ZodType>>;
}

/**
 * One route of an HTTP API. `route` is the server's path (`:name` parameters, a trailing `*`
 * named by `wildcard`); responses are keyed by status, or `default` for any other problem.
 */
export interface RouteContract {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly route: string;
  readonly summary: string;
  readonly wildcard?: { readonly name: string; readonly description: string };
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** Media types the body may be sent as (default application/json). */
  readonly bodyTypes?: readonly string[];
  /** Signed by an agent key (the agency's request authentication headers). */
  readonly signed?: boolean;
  readonly responses: Readonly<Record<string, ResponseContract>>;
}

/** An API: its title, what it is, its routes. */
export interface ApiContract {
  readonly title: string;
  readonly description: string;
  readonly routes: readonly RouteContract[];
}

const codes = Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]];

/** An RFC 9457 problem as every dkms server sends it (server/problem.ts). */
export const ProblemSchema = z.object({
  type: z.string().regex(/^urn:dkms:error:[A-Z_]+$/),
  title: z.enum(codes),
  status: z.number().int().min(400).max(599),
  detail: z.string(),
  code: z.enum(codes),
});

/** What a client reads of a problem: its code (checked against ERROR_CODES by the caller) and detail. */
export const ProblemCodeSchema = z.object({ code: z.string(), detail: z.string() });

/** A decimal integer in a query string, written plainly (server/query.ts reads it). */
export const NON_NEGATIVE_INT_PATTERN = '^(0|[1-9][0-9]{0,15})$';
export const MINUS_ONE_INT_PATTERN = '^(-1|0|[1-9][0-9]{0,15})$';
export const intText = (min: number) =>
  z
    .string()
    .regex(new RegExp(min < 0 ? MINUS_ONE_INT_PATTERN : NON_NEGATIVE_INT_PATTERN))
    .max(17);

export const LogRecordSchema = z.strictObject({ gseq: z.number().int().min(0), time: z.string().max(40), event: z.record(z.string(), z.unknown()) });
/** A proven read: the head, map proofs of the subjects it depends on, events each with its inclusion proof. */
export const ProvenSchema = z.object({
  head: ServedHeadSchema,
  subjects: z.record(z.string(), z.unknown()),
  history: z.array(LogRecordSchema),
  proofs: z.array(z.array(z.string())),
});
export const MapAnswerSchema = z.object({ head: ServedHeadSchema, subjects: z.record(z.string(), z.unknown()) });
export const ReceiptSchema = z.object({ id: z.string(), subject: z.string(), seq: z.number().int().min(0), gseq: z.number().int().min(0), time: z.string() });
export const ResultSchema = z.union([
  z.object({ ok: z.literal(true), receipt: ReceiptSchema }),
  z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) }),
]);
export const BatchAnswerSchema = z.object({ results: z.array(ResultSchema) });

const JsonObject = z.record(z.string(), z.unknown());
/** A policy read; `record` (the server's summary) only for a client that holds no state of its own. */
export const PolicyAnswerSchema = ProvenSchema.extend({ record: JsonObject.nullable().optional() });
/** A DID read; the document and its metadata only for a client that holds no state of its own. */
export const DidAnswerSchema = ProvenSchema.extend({ didDocument: JsonObject.nullable().optional(), didDocumentMetadata: JsonObject.nullable().optional() });
/** A 404 that proves itself: the head and the map's proof that the subject is absent. */
export const NotFoundProblemSchema = ProblemSchema.extend({ head: ServedHeadSchema, subjects: z.record(z.string(), z.unknown()) });

export const HealthSchema = z.object({ status: z.literal('ok'), size: z.number().int().min(0), key: z.string() });
/** The most records one `GET /v1/log` answers. */
export const MAX_LOG_PAGE = 1000;
/** A page of the log; with `proofs=true`, `proofs[i]` is the inclusion proof of `records[i]` under `head`. */
export const LogPageSchema = z.object({ head: ServedHeadSchema, records: z.array(LogRecordSchema), proofs: z.array(z.array(z.string())).optional() });
export const InclusionAnswerSchema = z.object({ gseq: z.number().int().min(0), size: z.number().int().min(1), proof: z.array(z.string()) });
export const ConsistencyAnswerSchema = z.object({ from: z.number().int().min(0), to: z.number().int().min(0), proof: z.array(z.string()) });
export const CosignedAnswerSchema = z.object({ head: ServedHeadSchema });

/** The OpenAPI document itself: an object (its own structure is OpenAPI 3.1). */
export const OpenApiDocumentSchema = z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.looseObject({}) });

export const SubjectParamsSchema = z.object({ subject: z.string().max(100) });
export const ReadQuerySchema = z.strictObject({
  at: intText(0).optional(),
  after: intText(-1).optional(),
  policyAfter: intText(-1).optional(),
  time: z.string().max(40).optional(),
});
export const CosignatureBodySchema = z.strictObject({
  key: z.string().max(64),
  time: z.string().max(40),
  sig: z.string().max(100),
  size: z.number().int().min(0),
  root: z.string().max(64),
  map: z.string().max(64),
});
export const BatchBodySchema = z.strictObject({ events: z.array(z.unknown()).min(1).max(MAX_BATCH) });
export const MapBodySchema = z.strictObject({ subjects: z.array(z.string().max(100)).min(1).max(MAX_MAP_PROOFS) });

// Universal Resolver driver answers (server/universal-resolver.ts).
export const DID_DOCUMENT_MEDIA = ['application/did+ld+json', 'application/did+json', 'application/did'] as const;
export const RESOLUTION_MEDIA = ['application/did-resolution', 'application/ld+json;profile="https://w3id.org/did-resolution"'] as const;
export const DidDocumentSchema = z.looseObject({ id: z.string() });
export const ResolutionResultSchema = z.looseObject({
  '@context': z.string(),
  didResolutionMetadata: z.looseObject({ error: z.string().optional(), message: z.string().optional() }),
  didDocument: DidDocumentSchema.nullable(),
  didDocumentMetadata: z.looseObject({}),
});

const json = (description: string, schema: z.ZodType): ResponseContract => ({ description, content: { [JSON_MEDIA]: schema } });
const problem = (description: string, schema: z.ZodType = ProblemSchema): ResponseContract => ({ description, content: { [PROBLEM_MEDIA]: schema } });

/** The problems any route may answer with. */
const COMMON_PROBLEMS = {
  '400': problem('BAD_INPUT: the request is malformed (or, for events, EVENT_MALFORMED)'),
  '429': problem('RATE_LIMITED: too many requests from this address'),
  '500': problem('INTERNAL: the server failed; its operator finds the cause in its error output'),
  default: problem('any other dkms error, by its code (docs/errors.md)'),
} as const;

const resolution = (description: string): ResponseContract => ({
  description,
  content: Object.fromEntries(RESOLUTION_MEDIA.map((m) => [m, ResolutionResultSchema])),
});

export const LEDGER_API: ApiContract = {
  title: 'dkms ledger node',
  description: 'Signed tree heads, proven reads and event submission of a dkms ledger node, and its Universal Resolver driver endpoint.',
  routes: [
    {
      method: 'GET',
      route: '/openapi.json',
      summary: 'This document',
      responses: { '200': json('the OpenAPI 3.1 document', OpenApiDocumentSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/health',
      summary: 'Liveness, the log size and the node key',
      responses: { '200': json('the node is up', HealthSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/1.0/identifiers/*',
      summary: 'Resolve a did:dkms DID URL (Universal Resolver driver); Accept picks the representation',
      wildcard: { name: 'didUrl', description: 'the DID URL, percent-encoded or not' },
      responses: {
        '200': {
          description: 'the DID document, or the whole resolution result',
          content: {
            ...Object.fromEntries(DID_DOCUMENT_MEDIA.map((m) => [m, DidDocumentSchema])),
            ...Object.fromEntries(RESOLUTION_MEDIA.map((m) => [m, ResolutionResultSchema])),
          },
        },
        '400': {
          description: 'invalidDid or invalidDidUrl; a request URL the server cannot read at all is a BAD_INPUT problem',
          content: { ...resolution('').content, [PROBLEM_MEDIA]: ProblemSchema },
        },
        '404': resolution('notFound'),
        '406': resolution('representationNotSupported: no representation the Accept header allows'),
        '410': resolution('the DID is deactivated'),
        '429': problem('RATE_LIMITED: too many requests from this address'),
        '500': resolution('internalError'),
        '501': resolution('methodNotSupported: not a did:dkms DID'),
      },
    },
    {
      method: 'GET',
      route: '/v1/head',
      summary: 'The current signed tree head (cosigned as the node requires)',
      query: z.strictObject({}),
      responses: { '200': json('the head', ServedHeadSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/head/next',
      summary: 'For witnesses: the newest head, waiting up to `wait` ms for one newer than `after`',
      query: z.strictObject({ after: intText(-1).optional(), wait: intText(0).optional() }),
      responses: { '200': json('the newest head', ServedHeadSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'POST',
      route: '/v1/cosignatures',
      summary: "A witness's cosignature of a head",
      body: CosignatureBodySchema,
      responses: { '200': json('the head as now served', CosignedAnswerSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'POST',
      route: '/v1/events',
      summary: 'Submit one signed event; answered once it is durable',
      body: z.looseObject({}),
      responses: {
        '201': json('the receipt', ReceiptSchema),
        ...COMMON_PROBLEMS,
        '409': problem("the event conflicts with the subject's chain"),
        '413': problem('EVENT_TOO_LARGE'),
        '422': problem('the event is refused by validation'),
      },
    },
    {
      method: 'POST',
      route: '/v1/events/batch',
      summary: 'Submit events in order; each is accepted or refused on its own',
      body: BatchBodySchema,
      responses: { '200': json('one result per event', BatchAnswerSchema), ...COMMON_PROBLEMS, '413': problem('EVENT_TOO_LARGE') },
    },
    {
      method: 'GET',
      route: '/v1/policies/:subject',
      summary: "A policy's events with inclusion and map proofs under the head",
      params: SubjectParamsSchema,
      query: ReadQuerySchema,
      responses: {
        '200': json('the proven read', PolicyAnswerSchema),
        ...COMMON_PROBLEMS,
        '404': problem('SUBJECT_NOT_FOUND, proven absent under the head', NotFoundProblemSchema),
      },
    },
    {
      method: 'GET',
      route: '/v1/dids/:subject',
      summary: "A DID's events and its controlling policy's, with proofs",
      params: SubjectParamsSchema,
      query: ReadQuerySchema,
      responses: {
        '200': json('the proven read', DidAnswerSchema),
        ...COMMON_PROBLEMS,
        '404': problem('SUBJECT_NOT_FOUND, proven absent under the head', NotFoundProblemSchema),
      },
    },
    {
      method: 'POST',
      route: '/v1/proofs/map',
      summary: 'Map proofs of several subjects under one head',
      body: MapBodySchema,
      responses: { '200': json('the proofs', MapAnswerSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/log',
      summary: "A page of the log (at most 1000 records) from `from`; with `proofs=true`, each record's inclusion proof under the head",
      query: z.strictObject({ from: intText(0), to: intText(0).optional(), proofs: z.enum(['true', 'false']).optional() }),
      responses: { '200': json('the head and the records', LogPageSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/proofs/inclusion',
      summary: 'The inclusion proof of record `gseq` under the tree of `size` records',
      query: z.strictObject({ gseq: intText(0), size: intText(1).optional() }),
      responses: { '200': json('the proof', InclusionAnswerSchema), ...COMMON_PROBLEMS },
    },
    {
      method: 'GET',
      route: '/v1/proofs/consistency',
      summary: 'The consistency proof between the trees of `from` and `to` records',
      query: z.strictObject({ from: intText(0), to: intText(0).optional() }),
      responses: { '200': json('the proof', ConsistencyAnswerSchema), ...COMMON_PROBLEMS },
    },
  ],
};
