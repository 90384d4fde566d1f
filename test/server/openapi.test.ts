/**
 * The OpenAPI 3.1 documents of the ledger node and the agency: well formed (every operation
 * answered, every parameter of a path declared, every $ref found), the same routes the servers
 * register (no more, no fewer), and true to what the servers answer: a response recorded from a
 * real server, for each route and several failures, validates against the document's schema
 * for its status and media type, and against the zod schema the document was generated from.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Signer } from '../../src/crypto/index.js';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AGENCY_API } from '../../src/agency/api-schemas.js';
import { signRequest } from '../../src/agency/request-auth.js';
import { decodePublicKey, randomBytes, toBase58btc, toBase64url } from '../../src/crypto/index.js';
import { authcrypt, didKeyUrl, memoryAgreementKey, messageBytes, newMessage, wrapForward, type AgreementKey, type Jwe } from '../../src/didcomm/index.js';
import { x25519Generate } from '../../src/crypto/index.js';
import { LEDGER_API, type ApiContract, type RouteContract } from '../../src/ledger/api-schemas.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, PolicyAddress } from '../../src/ledger/events.js';
import { ServedHeadSchema, bareHead, cosignHead } from '../../src/ledger/head.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { buildAgencyServer } from '../../src/server/agency-api.js';
import { startAgency, type RunningAgency } from '../../src/server/agency-service.js';
import { buildLedgerServer } from '../../src/server/ledger-api.js';
import { openApiDocument, openApiPath } from '../../src/server/openapi.js';
import { edgeAgent } from '../helpers/edge.js';
import { call, type Answer } from '../helpers/http.js';
import { commitment, testKey } from '../helpers/ledger.js';
import { startLedger, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';

type Json = Record<string, unknown>;

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The value a local JSON pointer names in `doc`, or undefined. */
function resolvePointer(doc: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = doc;
  for (const part of ref
    .slice(2)
    .split('/')
    .map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))) {
    if (!isObject(at) || !Object.hasOwn(at, part)) return undefined;
    at = at[part];
  }
  return at;
}

/** Every `$ref` under `value`, with where it sits. */
function refsIn(value: unknown, where = '#'): { where: string; ref: string }[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => refsIn(v, `${where}/${i}`));
  if (!isObject(value)) return [];
  return Object.entries(value).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [{ where, ref: v }] : refsIn(v, `${where}/${k}`)));
}

/** What is wrong with `doc` as an OpenAPI 3.1 document (the parts dkms uses); empty when nothing. */
function structureProblems(doc: Json): string[] {
  const problems: string[] = [];
  const fail = (message: string) => problems.push(message);
  if (doc['openapi'] !== '3.1.0') fail('openapi is not 3.1.0');
  const info = doc['info'];
  if (!isObject(info) || typeof info['title'] !== 'string' || typeof info['version'] !== 'string') fail('info needs a title and a version');
  const paths = doc['paths'];
  if (!isObject(paths)) return [...problems, 'no paths'];
  const components = isObject(doc['components']) ? doc['components'] : {};
  const schemes = isObject(components['securitySchemes']) ? components['securitySchemes'] : {};
  const operationIds = new Set<string>();
  for (const [path, item] of Object.entries(paths)) {
    if (!path.startsWith('/')) fail(`${path}: a path starts with /`);
    if (!isObject(item)) {
      fail(`${path}: not a path item`);
      continue;
    }
    const templated = new Set([...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]));
    for (const [method, op] of Object.entries(item)) {
      const at = `${method.toUpperCase()} ${path}`;
      if (!METHODS.includes(method) || !isObject(op)) {
        fail(`${at}: not an operation`);
        continue;
      }
      const id = op['operationId'];
      if (typeof id !== 'string' || operationIds.has(id)) fail(`${at}: operationId missing or repeated`);
      else operationIds.add(id);
      const params = (op['parameters'] ?? []) as unknown[];
      const inPath = new Set<string>();
      for (const p of params) {
        if (!isObject(p) || typeof p['name'] !== 'string' || !['path', 'query', 'header', 'cookie'].includes(p['in'] as string) || !isObject(p['schema'])) {
          fail(`${at}: a parameter needs a name, an in and a schema`);
          continue;
        }
        if (p['in'] === 'path') {
          inPath.add(p['name']);
          if (p['required'] !== true) fail(`${at}: path parameter ${p['name']} must be required`);
        }
      }
      expect([...inPath].sort(), `${at}: path parameters`).toEqual([...templated].sort());
      const body = op['requestBody'];
      if (
        body !== undefined &&
        (!isObject(body) || !isObject(body['content']) || Object.values(body['content']).some((c) => !isObject(c) || !isObject(c['schema'])))
      )
        fail(`${at}: a request body needs content with schemas`);
      const responses = op['responses'];
      if (!isObject(responses) || Object.keys(responses).length === 0) {
        fail(`${at}: no responses`);
        continue;
      }
      for (const [status, response] of Object.entries(responses)) {
        if (!/^([1-5][0-9][0-9]|[1-5]XX|default)$/.test(status)) fail(`${at}: response key ${status}`);
        if (!isObject(response) || typeof response['description'] !== 'string') fail(`${at} ${status}: a response needs a description`);
        else if (
          response['content'] !== undefined &&
          (!isObject(response['content']) || Object.values(response['content']).some((c) => !isObject(c) || !isObject(c['schema'])))
        )
          fail(`${at} ${status}: content without a schema`);
      }
      for (const requirement of (op['security'] ?? []) as unknown[]) {
        for (const scheme of Object.keys(isObject(requirement) ? requirement : {}))
          if (!isObject(schemes[scheme])) fail(`${at}: security scheme ${scheme} is not declared`);
      }
    }
  }
  for (const { where, ref } of refsIn(doc)) if (resolvePointer(doc, ref) === undefined) fail(`${where}: $ref ${ref} does not resolve`);
  return problems;
}

/** Routes as `METHOD /path` with every parameter written `{}`, so server routes and document paths compare. */
const normal = (method: string, path: string) => `${method.toUpperCase()} ${path.replace(/\{[^}]+\}|:[A-Za-z0-9_]+|\*$/g, '{}')}`;

/** The routes `app` registers (HEAD ones are fastify's own, for each GET). */
async function serverRoutes(app: FastifyInstance): Promise<string[]> {
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(normal(method, route.url));
  });
  await app.ready();
  await app.close();
  return routes.sort();
}

const documentRoutes = (doc: Json): string[] =>
  Object.entries(doc['paths'] as Record<string, Json>)
    .flatMap(([path, item]) => Object.keys(item).map((method) => normal(method, path)))
    .sort();

const ajv = new Ajv2020({ allErrors: true, strict: false });

/**
 * Checks a recorded answer of `method route` against the document: its status is documented
 * (or covered by `default`), its media type too, and its body validates against that schema
 * and against the contract's zod schema. Returns the status key it matched.
 */
function conforms(api: ApiContract, doc: Json, method: RouteContract['method'], route: string, answer: Answer): string {
  const contract = api.routes.find((r) => r.method === method && r.route === route);
  if (contract === undefined) throw new Error(`no contract for ${method} ${route}`);
  const op = (doc['paths'] as Record<string, Record<string, Json>>)[openApiPath(contract)]?.[method.toLowerCase()];
  const responses = op?.['responses'] as Record<string, Json> | undefined;
  expect(responses, `${method} ${route} is documented`).toBeDefined();
  const status = String(answer.status);
  const key = responses !== undefined && Object.hasOwn(responses, status) ? status : 'default';
  const response = responses?.[key];
  expect(response, `${method} ${route} answered ${status}: documented`).toBeDefined();
  const media = answer.contentType.replace(/;\s*charset=utf-8$/i, '');
  const content = (response?.['content'] ?? {}) as Record<string, { schema: Json }>;
  expect(Object.keys(content), `${method} ${route} ${status}: media type`).toContain(media);
  let schema: unknown = content[media]?.schema;
  if (isObject(schema) && typeof schema['$ref'] === 'string') schema = resolvePointer(doc, schema['$ref']);
  const valid = ajv.validate(schema as object, answer.body);
  expect(valid ? [] : ajv.errors, `${method} ${route} ${status}: body against the document`).toEqual([]);
  const zod = contract.responses[key]?.content[media];
  expect(zod?.safeParse(answer.body).success, `${method} ${route} ${status}: body against the zod schema`).toBe(true);
  return key;
}

/** Records answers and checks each as it comes; `seen` collects `METHOD route status`. */
function recorder(api: ApiContract, doc: Json, base: string) {
  const seen = new Set<string>();
  return {
    seen,
    async check(method: RouteContract['method'], route: string, path: string, init: RequestInit = {}): Promise<Answer> {
      const answer = await call(`${base}${path}`, { method, ...init });
      seen.add(`${method} ${route} ${conforms(api, doc, method, route, answer)}`);
      return answer;
    },
  };
}

const jsonBody = (body: unknown): RequestInit => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function signedInit(signer: Signer, method: string, path: string, body?: unknown): RequestInit {
  const auth = signRequest(signer, method, path, body);
  return {
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  };
}

describe('OpenAPI documents', () => {
  const ledgerDoc = openApiDocument(LEDGER_API);
  const agencyDoc = openApiDocument(AGENCY_API);

  it('are well-formed OpenAPI 3.1: operations, parameters, responses, security schemes, $refs', () => {
    expect(structureProblems(ledgerDoc)).toEqual([]);
    expect(structureProblems(agencyDoc)).toEqual([]);
    expect(refsIn(ledgerDoc).length).toBeGreaterThan(0);
    // Signed agency requests name the four authentication headers.
    const schemes = (agencyDoc['components'] as Json)['securitySchemes'] as Record<string, Json>;
    expect(Object.values(schemes).map((s) => s['name'])).toEqual(['x-dkms-key', 'x-dkms-time', 'x-dkms-nonce', 'x-dkms-signature']);
    const mailbox = (agencyDoc['paths'] as Record<string, Record<string, Json>>)['/v1/mailbox']?.['get'];
    expect(mailbox?.['security']).toEqual([{ agentKey: [], requestTime: [], requestNonce: [], requestSignature: [] }]);
  });

  it('notices what is wrong with a document', () => {
    const broken = structuredClone(ledgerDoc);
    (broken['paths'] as Record<string, Record<string, Json>>)['/v1/health'] = {
      get: {
        operationId: 'getV1Health',
        responses: { '200': { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Nothing' } } } } },
      },
    };
    expect(structureProblems(broken).join('\n')).toMatch(/does not resolve/);
    expect(structureProblems({ ...ledgerDoc, openapi: '3.0.3' })).toContain('openapi is not 3.1.0');
  });

  it('hold exactly the routes the servers register', async () => {
    const ledger = await startLedger(tempDir('dkms-openapi-ledger-'));
    expect(await serverRoutes(buildLedgerServer(ledger.node, { rateLimitPerSecond: 0 }))).toEqual(documentRoutes(ledgerDoc));
    const agency = await runAgency(ledger);
    expect(await serverRoutes(buildAgencyServer(agency.agency))).toEqual(documentRoutes(agencyDoc));
  });
});

async function runAgency(ledger: RunningLedger): Promise<RunningAgency> {
  const running = await startAgency(tempDir('dkms-openapi-agency-'), { ledgerUrl: ledger.url, port: 0 });
  onTestFinished(() => running.close());
  return running;
}

describe('OpenAPI documents: recorded answers of real servers conform', () => {
  it('ledger node: every route, successes and problems', async () => {
    const ledger = await startLedger(tempDir('dkms-openapi-ledger-'));
    const doc = openApiDocument(LEDGER_API);
    const { check, seen } = recorder(LEDGER_API, doc, ledger.url);
    const laptop = testKey();
    const create = signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]);

    expect((await check('GET', '/openapi.json', '/openapi.json')).body).toEqual(doc);
    await check('GET', '/v1/health', '/v1/health');
    const receipt = (await check('POST', '/v1/events', '/v1/events', jsonBody(create))).body as { subject: PolicyAddress };
    const policy = receipt.subject;
    const didEvent = signEvent(didCreate(policy, [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'http://127.0.0.1:8421/' }]), [laptop]);
    const record = await ledger.node.subject(policy);
    if (record === undefined) throw new Error('policy missing');
    const grant = signEvent(nextEvent('policy.grant', policy, record, { agent: testKey().agent(FLAGS.PROVE) }), [laptop]);
    const batch = await check('POST', '/v1/events/batch', '/v1/events/batch', jsonBody({ events: [didEvent, grant, grant] }));
    const did = ((batch.body as { results: { receipt?: { subject: string } }[] }).results[0]?.receipt?.subject ?? '') as Did;
    await check('POST', '/v1/events', '/v1/events', jsonBody({ nonsense: true }));
    await check('POST', '/v1/events/batch', '/v1/events/batch', jsonBody({ events: [] }));

    const head = (await check('GET', '/v1/head', '/v1/head')).body as { size: number };
    await check('GET', '/v1/head', '/v1/head?x=1');
    await check('GET', '/v1/head/next', `/v1/head/next?after=${head.size - 1}&wait=0`);
    await check('GET', '/v1/head/next', '/v1/head/next?wait=1e3');
    await check(
      'POST',
      '/v1/cosignatures',
      '/v1/cosignatures',
      jsonBody({ key: 'z', time: new Date().toISOString(), sig: 'A'.repeat(86), size: 0, root: 'A', map: 'A' }),
    );
    await check('POST', '/v1/cosignatures', '/v1/cosignatures', jsonBody({ key: 'z' }));
    // A witness's cosignature, at a node that takes it.
    const witness = testKey();
    const witnessed = await startLedger(tempDir('dkms-openapi-witnessed-'), { node: { witnessKeys: [witness.multikey] } });
    const served = bareHead(ServedHeadSchema.parse((await call(`${witnessed.url}/v1/head`)).body));
    const time = new Date().toISOString();
    const cosignature = cosignHead(served, time, witness);
    const cosigned = await recorder(LEDGER_API, doc, witnessed.url).check(
      'POST',
      '/v1/cosignatures',
      '/v1/cosignatures',
      jsonBody({ ...cosignature, size: served.size, root: served.root, map: served.map }),
    );
    expect(cosigned.status).toBe(200);
    seen.add('POST /v1/cosignatures 200');

    await check('GET', '/v1/policies/:subject', `/v1/policies/${policy}`);
    await check('GET', '/v1/policies/:subject', `/v1/policies/${policy}?after=0`);
    await check('GET', '/v1/policies/:subject', `/v1/policies/${policy.slice(0, -3)}abc`);
    await check('GET', '/v1/policies/:subject', `/v1/policies/${policy}?at=x`);
    await check('GET', '/v1/dids/:subject', `/v1/dids/${did}`);
    await check('GET', '/v1/dids/:subject', `/v1/dids/${did}?after=0&policyAfter=1`);
    await check('GET', '/v1/dids/:subject', `/v1/dids/${did}?time=${encodeURIComponent(new Date(0).toISOString())}`);
    await check('GET', '/v1/dids/:subject', `/v1/dids/did:dkms:${toBase58btc(randomBytes(32))}`);
    await check('POST', '/v1/proofs/map', '/v1/proofs/map', jsonBody({ subjects: [policy, did, `did:dkms:${toBase58btc(randomBytes(32))}`] }));
    await check('POST', '/v1/proofs/map', '/v1/proofs/map', jsonBody({ subjects: [] }));

    await check('GET', '/v1/log', '/v1/log?from=0');
    await check('GET', '/v1/log', '/v1/log');
    await check('GET', '/v1/proofs/inclusion', '/v1/proofs/inclusion?gseq=1&size=3');
    await check('GET', '/v1/proofs/inclusion', '/v1/proofs/inclusion?gseq=9');
    await check('GET', '/v1/proofs/consistency', '/v1/proofs/consistency?from=1&to=3');
    await check('GET', '/v1/proofs/consistency', '/v1/proofs/consistency?from=4');

    const resolve = (path: string, accept?: string) =>
      check('GET', '/1.0/identifiers/*', `/1.0/identifiers/${path}`, accept === undefined ? {} : { headers: { accept } });
    await resolve(did);
    await resolve(did, 'application/did+json');
    await resolve(did, 'application/did-resolution');
    await resolve(did, 'application/ld+json;profile="https://w3id.org/did-resolution"');
    await resolve(`did:dkms:${toBase58btc(randomBytes(32))}`);
    await resolve(did, 'text/html');
    await resolve('did:web:example.org');
    await resolve('%E0%A4%A');

    // Every route of the document was heard from, with a success and at least one problem.
    for (const contract of LEDGER_API.routes) {
      const success = Object.keys(contract.responses).find((s) => s.startsWith('2'));
      expect(seen, `${contract.method} ${contract.route}`).toContain(`${contract.method} ${contract.route} ${success ?? ''}`);
    }
    expect([...seen].filter((s) => !/ 2\d\d$/.test(s)).length).toBeGreaterThanOrEqual(12);
  });

  it('agency: every route, signed and public, successes and problems', async () => {
    const ledger = await startLedger(tempDir('dkms-openapi-ledger-'));
    const laptop = edgeAgent();
    const recoveryKey = testKey();
    const create = signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([recoveryKey])), [laptop]);
    const policy = (await ledger.node.submit(create)).subject;
    const running = await runAgency(ledger);
    const doc = openApiDocument(AGENCY_API);
    const { check, seen } = recorder(AGENCY_API, doc, running.url);
    const signed = (method: RouteContract['method'], route: string, path: string, body?: unknown, signer: Signer = laptop.signer) =>
      check(method, route, path, signedInit(signer, method, path, body));

    expect((await check('GET', '/openapi.json', '/openapi.json')).body).toEqual(doc);
    await check('GET', '/v1/health', '/v1/health');
    const cloud = (await signed('POST', '/v1/cloud-agents', '/v1/cloud-agents', { policy })).body as {
      id: string;
      kx: string;
      routingKey: string;
      did: string;
    };
    await signed('POST', '/v1/cloud-agents', '/v1/cloud-agents', { policy: 'short' });
    await check('POST', '/v1/cloud-agents', '/v1/cloud-agents', jsonBody({ policy }));
    await check('GET', '/v1/cloud-agents/:id', `/v1/cloud-agents/${cloud.id}`);
    await check('GET', '/v1/cloud-agents/:id', `/v1/cloud-agents/${toBase58btc(randomBytes(16))}`);
    await signed('POST', '/v1/cloud-agents/:id/sync', `/v1/cloud-agents/${cloud.id}/sync`, {});
    await signed('POST', '/v1/cloud-agents/:id/sync', `/v1/cloud-agents/${cloud.id}/sync`, {}, edgeAgent().signer);

    const guest = edgeAgent();
    await signed('POST', '/v1/guests', '/v1/guests', { cloud: cloud.kx, key: guest.key });
    await signed('POST', '/v1/guests', '/v1/guests', { cloud: cloud.kx, key: 'z123' });
    await signed('PUT', '/v1/cloud-agents/:id/sponsors', `/v1/cloud-agents/${cloud.id}/sponsors`, { keys: [guest.key] });
    await signed('PUT', '/v1/cloud-agents/:id/sponsors', `/v1/cloud-agents/${cloud.id}/sponsors`, { keys: [guest.key], more: 1 });

    const older = toBase58btc(randomBytes(16));
    const newer = toBase58btc(randomBytes(16));
    const data = toBase64url(randomBytes(64));
    await signed('POST', '/v1/cloud-agents/:id/backups', `/v1/cloud-agents/${cloud.id}/backups`, { locator: older, data });
    await signed('POST', '/v1/cloud-agents/:id/backups', `/v1/cloud-agents/${cloud.id}/backups`, { locator: newer, data });
    await signed('POST', '/v1/cloud-agents/:id/backups', `/v1/cloud-agents/${cloud.id}/backups`, { locator: newer, data }, guest.signer);
    await check('GET', '/v1/backups/:locator', `/v1/backups/${older}`);
    await check('GET', '/v1/backups/:locator', `/v1/backups/${toBase58btc(randomBytes(16))}`);
    const recoverer: Signer = recoveryKey;
    await signed('GET', '/v1/backups/:locator/data', `/v1/backups/${newer}/data`, undefined, recoverer);
    await signed('GET', '/v1/backups/:locator/data', `/v1/backups/${newer}/data?version=1`, undefined, recoverer);
    await signed('GET', '/v1/backups/:locator/data', `/v1/backups/${newer}/data`);
    await signed('DELETE', '/v1/cloud-agents/:id/backups/:locator', `/v1/cloud-agents/${cloud.id}/backups/${older}`, undefined, recoverer);
    await signed('DELETE', '/v1/cloud-agents/:id/backups/:locator', `/v1/cloud-agents/${cloud.id}/backups/${newer}`);

    const envelope = forward(cloud, laptop.agreement, 'hello');
    await check('POST', '/v1/inbound', '/v1/inbound', { headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: JSON.stringify(envelope) });
    await check('POST', '/v1/inbound', '/v1/inbound', { headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: '{not json' });
    const mail = (await signed('GET', '/v1/mailbox', '/v1/mailbox?limit=10&wait=1')).body as { messages: { id: string }[] };
    expect(mail.messages.length).toBe(1);
    await signed('GET', '/v1/mailbox', '/v1/mailbox?limit=0');
    await check('GET', '/v1/mailbox', '/v1/mailbox');
    await signed('POST', '/v1/mailbox/ack', '/v1/mailbox/ack', { ids: mail.messages.map((m) => m.id) });
    await signed('POST', '/v1/mailbox/ack', '/v1/mailbox/ack', { ids: ['x'] });

    for (const contract of AGENCY_API.routes) {
      const success = Object.keys(contract.responses).find((s) => s.startsWith('2'));
      expect(seen, `${contract.method} ${contract.route}`).toContain(`${contract.method} ${contract.route} ${success ?? ''}`);
    }
    expect([...seen].filter((s) => !/ 2\d\d$/.test(s)).length).toBeGreaterThanOrEqual(10);
  });
});

/** A forward to the cloud agent carrying a note for `to`, from a throwaway sender. */
function forward(cloud: { kx: string; routingKey: string; did: string }, to: AgreementKey, text: string): Jwe {
  const pair = x25519Generate();
  const sender = memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
  const inner = authcrypt(messageBytes(newMessage('https://example.org/test/1.0/note', { text })), sender, [{ kid: to.kid, publicKey: to.publicKey }]);
  return wrapForward(inner, cloud.did, [{ kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey }]);
}
