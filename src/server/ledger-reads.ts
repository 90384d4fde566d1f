/**
 * The ledger's proven reads, apart from HTTP: each builds the JSON answer a client verifies (the
 * head, map proofs for every subject the answer depends on, the events with inclusion proofs)
 * and keeps it while the head it was built under is current, so a repeated read costs a lookup.
 * The HTTP API serves these answers; `localLedgerFetch` serves them in the same process.
 */
import { didDocument, didDocumentMetadata } from '../did/document.js';
import { DkmsError } from '../errors.js';
import { LEDGER_API, MAX_MAP_PROOFS, type RouteContract } from '../ledger/api-schemas.js';
import { DID_PREFIX, POLICY_PREFIX, type Did, type PolicyAddress, type Subject } from '../ledger/events.js';
import type { ServedHead } from '../ledger/head.js';
import type { LedgerNode, Snapshot } from '../ledger/node.js';
import type { LogRecord } from '../ledger/state.js';
import type { LedgerTransport } from '../ledger/transport.js';
import { contractOf } from './openapi.js';
import { problemOf } from './problem.js';
import { intParam } from './query.js';

/** An answer ready to send: status, media type and the JSON text. */
export interface Answer {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

export interface ReadQuery {
  at?: number;
  time?: string;
  /** Only the subject's events with seq above this (the client holds the rest). */
  after?: number;
  /** For DID reads: only the controlling policy's events with seq above this. */
  policyAfter?: number;
}

export { MAX_MAP_PROOFS };

/** Answers kept per URL while the head they were built under is current (and keys asked once). */
const ANSWER_CACHE_LIMIT = 10_000;
const JSON_TYPE = 'application/json; charset=utf-8';

const ok = (body: unknown): Answer => ({ status: 200, type: JSON_TYPE, body: JSON.stringify(body) });

/**
 * Whether the asker holds a verified state of its own (it asks only for what came after it):
 * then the answer carries no convenience state (`record`, `didDocument`), which a verifying
 * client builds from the events itself. A warm answer is then a head and map proofs.
 */
const AT = intParam('at', 0);
export const AFTER = intParam('after', -1);
const POLICY_AFTER = intParam('policyAfter', -1);
export const FROM = intParam('from', 0);
export const TO = intParam('to', 0);

/** A read's query (as the server parsed it), its integers checked and parsed. */
export function readQueryOf(query: unknown): ReadQuery {
  const at = AT.read(query);
  const after = AFTER.read(query);
  const policyAfter = POLICY_AFTER.read(query);
  const time = (query as { time?: string }).time;
  return {
    ...(at === undefined ? {} : { at }),
    ...(after === undefined ? {} : { after }),
    ...(policyAfter === undefined ? {} : { policyAfter }),
    ...(time === undefined ? {} : { time }),
  };
}

const holdsState = (query: ReadQuery): boolean => query.after !== undefined || query.policyAfter !== undefined;

export class LedgerReads {
  readonly #node: LedgerNode;
  readonly #cache = new Map<string, { head: ServedHead; answer: Answer }>();
  /**
   * Keys asked for once under #askedHead. An answer is kept only when asked for again: most
   * keys are asked once (a warm client's ?after= for one subject), and keeping each answer would
   * carry it past the young generation (every collection then copies them: milliseconds of pause).
   */
  readonly #asked = new Set<string>();
  #askedHead: ServedHead | undefined;

  constructor(node: LedgerNode) {
    this.#node = node;
  }

  /** A cached answer built under the current head, or a new one built and kept. */
  async #answer(key: string, build: (snapshot: Snapshot) => Promise<Answer>): Promise<Answer> {
    const snapshot = await this.#node.snapshot();
    const entry = this.#cache.get(key);
    if (entry !== undefined && entry.head === snapshot.head) return entry.answer;
    const answer = await build(snapshot);
    if (this.#askedHead !== snapshot.head || this.#asked.size >= ANSWER_CACHE_LIMIT) {
      this.#asked.clear();
      this.#askedHead = snapshot.head;
    }
    if (!this.#asked.has(key)) {
      this.#asked.add(key);
      return answer;
    }
    if (this.#cache.size >= ANSWER_CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(key, { head: snapshot.head, answer });
    return answer;
  }

  /** The cutoff of the convenience state: before global sequence number `at`, or accepted by `time`. */
  async #cutoff(query: ReadQuery, size: number): Promise<number> {
    if (query.at !== undefined && query.time !== undefined) throw new DkmsError('BAD_INPUT', 'give at or time, not both');
    if (query.time !== undefined) {
      if (Number.isNaN(Date.parse(query.time))) throw new DkmsError('BAD_INPUT', 'time must be an ISO 8601 date-time');
      return Math.min(await this.#node.gseqAtTime(new Date(query.time).toISOString()), size);
    }
    return Math.min(query.at ?? size, size);
  }

  /** 404 with the head and the map's proof that the subject is absent under it. */
  static #notFound(snapshot: Snapshot, subject: Subject, what: string): Answer {
    const problem = problemOf(new DkmsError('SUBJECT_NOT_FOUND', `no ${what} ${subject}`));
    return {
      status: problem.status,
      type: 'application/problem+json',
      body: JSON.stringify({ ...problem, head: snapshot.head, subjects: { [subject]: snapshot.mapProof(subject) } }),
    };
  }

  /**
   * The subject's events under the snapshot's head with seq above `after` (all for undefined).
   * None without a read when the map's entry shows the client holds the latest: a warm answer.
   */
  async #newer(snapshot: Snapshot, subject: Subject, after = -1): Promise<LogRecord[]> {
    const latest = snapshot.entry(subject)?.seq ?? -1;
    return after >= latest ? [] : this.#node.subjectLog(subject, snapshot.head.size, after);
  }

  /** Records with an inclusion proof each under `size`, only those below it (the store may be ahead). */
  #proven(records: readonly LogRecord[], size: number): { history: LogRecord[]; proofs: string[][] } {
    const history = records.filter((r) => r.gseq < size);
    return { history, proofs: history.map((r) => this.#node.inclusionProof(r.gseq, size)) };
  }

  /** `GET /v1/policies/:policy`. */
  policy(subject: PolicyAddress, query: ReadQuery, key: string): Promise<Answer> {
    if (query.policyAfter !== undefined) throw new DkmsError('BAD_INPUT', 'policyAfter is for DID reads; use after');
    return this.#answer(key, async (snapshot) => {
      const { size } = snapshot.head;
      if (snapshot.entry(subject) === undefined) return LedgerReads.#notFound(snapshot, subject, 'policy');
      const until = await this.#cutoff(query, size);
      const records = await this.#newer(snapshot, subject, query.after);
      return ok({
        head: snapshot.head,
        subjects: { [subject]: snapshot.mapProof(subject) },
        ...this.#proven(records, size),
        ...(holdsState(query) ? {} : { record: (await this.#node.stateAt(subject, until)) ?? null }),
      });
    });
  }

  /** `GET /v1/dids/:did`: the DID's events and its controlling policy's, merged in log order. */
  did(subject: Did, query: ReadQuery, key: string): Promise<Answer> {
    return this.#answer(key, async (snapshot) => {
      const { size } = snapshot.head;
      if (snapshot.entry(subject) === undefined) return LedgerReads.#notFound(snapshot, subject, 'DID');
      const until = await this.#cutoff(query, size);
      const holds = holdsState(query);
      const did = holds ? undefined : await this.#node.stateAt(subject, until);
      // Every record of a DID names its controller; as of before its creation, the current one does.
      const controller = did?.kind === 'did' ? did.controller : await this.#node.controllerOf(subject);
      if (controller === undefined) throw new DkmsError('INTERNAL', `no inception event for ${subject}`);
      const [own, policy] = await Promise.all([this.#newer(snapshot, subject, query.after), this.#newer(snapshot, controller, query.policyAfter)]);
      const records = [...own, ...policy].sort((a, b) => a.gseq - b.gseq);
      const answer = {
        head: snapshot.head,
        subjects: { [subject]: snapshot.mapProof(subject), [controller]: snapshot.mapProof(controller) },
        ...this.#proven(records, size),
      };
      if (holds) return ok(answer);
      const policyRecord = await this.#node.stateAt(controller, until);
      const current = did?.kind === 'did' && policyRecord?.kind === 'policy';
      return ok({
        ...answer,
        didDocument: current ? didDocument(did, policyRecord) : null,
        didDocumentMetadata: current ? didDocumentMetadata(did) : null,
      });
    });
  }

  /** `POST /v1/proofs/map`: map proofs of several subjects under one head. */
  async mapProofs(subjects: readonly Subject[]): Promise<{ head: ServedHead; subjects: Record<string, unknown> }> {
    if (subjects.length > MAX_MAP_PROOFS) throw new DkmsError('BAD_INPUT', `at most ${MAX_MAP_PROOFS} subjects per request`);
    const snapshot = await this.#node.snapshot();
    return { head: snapshot.head, subjects: Object.fromEntries(subjects.map((s) => [s, snapshot.mapProof(s)])) };
  }
}

function subjectOfPath(path: string, prefix: string): Subject {
  const subject = decodeURIComponent(path);
  if (!subject.startsWith(prefix) || subject.length > 200) throw new DkmsError('BAD_INPUT', `expected a subject starting with ${prefix}`);
  return subject as Subject;
}

/**
 * A transport answering the ledger API's reads and submissions from a node in the same process,
 * without HTTP: for in-process clients (an agency beside its node, tests, benchmarks). It serves
 * the same answers the HTTP API does, so the client verifies them the same way.
 */
export function localLedgerTransport(node: LedgerNode): LedgerTransport {
  const reads = new LedgerReads(node);
  const json = (status: number, body: unknown, type = JSON_TYPE): Answer => ({ status, type, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const handle = async (method: string, target: string, body: string | undefined): Promise<Answer> => {
    const mark = target.indexOf('?');
    const path = mark < 0 ? target : target.slice(0, mark);
    const query = Object.fromEntries(new URLSearchParams(mark < 0 ? '' : target.slice(mark + 1)));
    // Each request is checked against its route's contract, the schemas the HTTP server checks it with.
    const route = (verb: RouteContract['method'], name: string) => {
      const contract = contractOf(LEDGER_API, verb, name);
      checkPart(contract, 'query', query, 'BAD_INPUT');
      return contract;
    };
    if (method === 'GET' && path === '/v1/head') {
      route('GET', '/v1/head');
      await node.current();
      return json(200, node.servedHead());
    }
    if (method === 'GET' && path.startsWith('/v1/policies/')) {
      route('GET', '/v1/policies/:subject');
      await node.current();
      return reads.policy(subjectOfPath(path.slice('/v1/policies/'.length), POLICY_PREFIX) as PolicyAddress, readQueryOf(query), target);
    }
    if (method === 'GET' && path.startsWith('/v1/dids/')) {
      route('GET', '/v1/dids/:subject');
      await node.current();
      return reads.did(subjectOfPath(path.slice('/v1/dids/'.length), DID_PREFIX) as Did, readQueryOf(query), target);
    }
    if (method === 'GET' && path === '/v1/proofs/consistency') {
      route('GET', '/v1/proofs/consistency');
      const from = FROM.read(query) ?? 0;
      const to = TO.read(query) ?? node.size;
      if (from > to || to > node.size) throw new DkmsError('BAD_INPUT', `need from <= to <= ${node.size}`);
      return json(200, { from, to, proof: node.consistencyProof(from, to) });
    }
    const payload = parseBody(body, path);
    if (method === 'POST' && path === '/v1/proofs/map') {
      const { subjects } = checkPart(route('POST', '/v1/proofs/map'), 'body', payload, 'BAD_INPUT') as { subjects: Subject[] };
      return json(200, await reads.mapProofs(subjects));
    }
    if (method === 'POST' && path === '/v1/events') {
      route('POST', '/v1/events');
      return json(201, await node.submit(payload));
    }
    if (method === 'POST' && path === '/v1/events/batch') {
      const { events } = checkPart(route('POST', '/v1/events/batch'), 'body', payload, 'EVENT_MALFORMED') as { events: unknown[] };
      return json(200, { results: await node.submitMany(events) });
    }
    throw new DkmsError('NOT_FOUND', `no route ${method} ${path}`);
  };
  return async ({ method, path, body }) => {
    try {
      return await handle(method, path, body);
    } catch (e) {
      const error = e instanceof DkmsError ? e : new DkmsError('INTERNAL', 'internal error');
      const problem = problemOf(error);
      return json(problem.status, problem, 'application/problem+json');
    }
  };
}

/** `value` checked against the contract's schema for `part`; `code` with the first problem otherwise. */
function checkPart(contract: RouteContract, part: 'query' | 'body', value: unknown, code: 'BAD_INPUT' | 'EVENT_MALFORMED'): unknown {
  const schema = contract[part];
  if (schema === undefined) return value;
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new DkmsError(code, `${part}${issue === undefined || issue.path.length === 0 ? '' : `.${issue.path.join('.')}`}: ${issue?.message ?? 'invalid'}`);
}

function parseBody(body: string | undefined, path: string): unknown {
  if (body === undefined) return undefined;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    throw new DkmsError(path.startsWith('/v1/events') ? 'EVENT_MALFORMED' : 'BAD_INPUT', 'the request body is not JSON');
  }
}
