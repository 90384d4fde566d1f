/**
 * OpenAPI 3.1 documents generated from an API's route contracts (ledger/api-schemas.ts,
 * agency/api-schemas.ts), and the JSON Schemas the servers validate requests with, converted
 * from the same zod schemas: what is documented is what is checked.
 */
import { z } from 'zod';
import { AUTH_HEADERS } from '../agency/request-auth.js';
import { JSON_MEDIA, PROBLEM_MEDIA, ProblemSchema, type ApiContract, type RouteContract } from '../ledger/api-schemas.js';

type JsonSchema = Record<string, unknown>;

/** The version of the HTTP API (the `/v1/` of its paths), not of the package. */
const API_VERSION = '1.0.0';
const PROBLEM_REF = '#/components/schemas/Problem';

/** A zod schema as a JSON Schema without its `$schema` (it sits inside another document). */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output', target: 'draft-07' | 'draft-2020-12'): JsonSchema {
  const converted = { ...(z.toJSONSchema(schema, { io, target, unrepresentable: 'throw' }) as JsonSchema) };
  delete converted['$schema'];
  return converted;
}

/**
 * The JSON Schema a fastify server validates a request part with: draft-07 (the server's
 * validator), strict objects as `additionalProperties: false`, nothing more allowed than zod does.
 */
export const requestSchema = (schema: z.ZodType): JsonSchema => jsonSchema(schema, 'input', 'draft-07');

type RouteSchema = { params?: JsonSchema; querystring?: JsonSchema; body?: JsonSchema };

/** Each contract's route schema, made once: the same objects for every server of the process. */
const routeSchemas = new WeakMap<RouteContract, RouteSchema>();

/**
 * The fastify route schema of a contract: its params, query string and body. The same objects
 * each time, so that a validator compiler shared by the process's servers (sharedValidators)
 * compiles each of them once.
 */
export function routeSchema(contract: RouteContract): RouteSchema {
  let schema = routeSchemas.get(contract);
  if (schema === undefined) {
    schema = {
      ...(contract.params === undefined ? {} : { params: requestSchema(contract.params) }),
      ...(contract.query === undefined ? {} : { querystring: requestSchema(contract.query) }),
      ...(contract.body === undefined ? {} : { body: requestSchema(contract.body) }),
    };
    routeSchemas.set(contract, schema);
  }
  return schema;
}

/** The contract of `method route` in `api`; a programming error when there is none. */
export function contractOf(api: ApiContract, method: RouteContract['method'], route: string): RouteContract {
  const found = api.routes.find((r) => r.method === method && r.route === route);
  if (found === undefined) throw new Error(`no contract for ${method} ${route} in ${api.title}`);
  return found;
}

/** The OpenAPI path of a server route: `:name` as `{name}`, the trailing `*` by its name. */
export function openApiPath(contract: RouteContract): string {
  const path = contract.route.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
  return contract.wildcard === undefined ? path : path.replace(/\*$/, `{${contract.wildcard.name}}`);
}

function parameters(contract: RouteContract): JsonSchema[] {
  const of = (where: 'path' | 'query', object: z.ZodObject | undefined): JsonSchema[] => {
    if (object === undefined) return [];
    const schema = jsonSchema(object, 'input', 'draft-2020-12');
    const properties = (schema['properties'] ?? {}) as Record<string, JsonSchema>;
    const required = new Set((schema['required'] ?? []) as string[]);
    return Object.entries(properties).map(([name, property]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: property }));
  };
  const wildcard =
    contract.wildcard === undefined
      ? []
      : [{ name: contract.wildcard.name, in: 'path', required: true, description: contract.wildcard.description, schema: { type: 'string' } }];
  return [...of('path', contract.params), ...wildcard, ...of('query', contract.query)];
}

function responses(contract: RouteContract): JsonSchema {
  return Object.fromEntries(
    Object.entries(contract.responses).map(([status, response]) => [
      status,
      {
        description: response.description,
        content: Object.fromEntries(
          Object.entries(response.content).map(([media, schema]) => [
            media,
            { schema: schema === ProblemSchema && media === PROBLEM_MEDIA ? { $ref: PROBLEM_REF } : jsonSchema(schema, 'output', 'draft-2020-12') },
          ]),
        ),
      },
    ]),
  );
}

function operation(contract: RouteContract): JsonSchema {
  const params = parameters(contract);
  const bodySchema = contract.body;
  const body =
    bodySchema === undefined
      ? {}
      : {
          requestBody: {
            required: true,
            content: Object.fromEntries(
              (contract.bodyTypes ?? [JSON_MEDIA]).map((media) => [media, { schema: jsonSchema(bodySchema, 'input', 'draft-2020-12') }]),
            ),
          },
        };
  return {
    summary: contract.summary,
    operationId: `${contract.method.toLowerCase()}${openApiPath(contract).replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
    ...(params.length > 0 ? { parameters: params } : {}),
    ...body,
    responses: responses(contract),
    ...(contract.signed === true ? { security: [{ agentKey: [], requestTime: [], requestNonce: [], requestSignature: [] }] } : {}),
  };
}

/** The security schemes of signed requests (agency/request-auth.ts): four headers, sent together. */
const SIGNED_REQUEST_SCHEMES = {
  agentKey: { type: 'apiKey', in: 'header', name: AUTH_HEADERS.key, description: "The agent's Ed25519 public key, multibase" },
  requestTime: { type: 'apiKey', in: 'header', name: AUTH_HEADERS.time, description: "The request's time, ISO 8601; within the agency's clock window" },
  requestNonce: { type: 'apiKey', in: 'header', name: AUTH_HEADERS.nonce, description: 'A fresh random nonce, base64url; never taken twice' },
  requestSignature: {
    type: 'apiKey',
    in: 'header',
    name: AUTH_HEADERS.signature,
    description:
      'Ed25519 signature, base64url, of the canonical JSON of {v: 1, method, path with query, time, nonce, body: base64url SHA-256 of the canonical body or ""}',
  },
} as const;

/** The OpenAPI 3.1 document of `api`. */
export function openApiDocument(api: ApiContract): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const contract of api.routes) (paths[openApiPath(contract)] ??= {})[contract.method.toLowerCase()] = operation(contract);
  const signed = api.routes.some((r) => r.signed === true);
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    info: { title: api.title, version: API_VERSION, description: `${api.description} Generated from the schemas the server and its client use.` },
    paths,
    components: {
      schemas: { Problem: { ...jsonSchema(ProblemSchema, 'output', 'draft-2020-12'), description: 'An RFC 9457 problem carrying the dkms error code' } },
      ...(signed ? { securitySchemes: SIGNED_REQUEST_SCHEMES } : {}),
    },
  };
}

/** The document of `api`, built once, as the text a server sends. */
export function openApiText(api: ApiContract): () => string {
  let text: string | undefined;
  return () => (text ??= JSON.stringify(openApiDocument(api)));
}
