/**
 * The ledger client: submits events and reads state, and verifies everything it reads instead
 * of trusting the server. For every answer it checks
 * - the tree head: signed by a node key it trusts, recent (not older than `maxHeadAgeMs`), and
 *   consistent with the last head it saw (a Merkle consistency proof), so a server cannot show
 *   it a stale, rolled-back, forked or rewritten log; with a quorum, cosigned by enough trusted
 *   witnesses, so a node alone cannot show it a fork even on first contact;
 * - the map proof of every subject the answer depends on: the subject's latest event under that
 *   head, so a server cannot leave out the newest events (or claim a subject does not exist);
 * - every event's inclusion under the head, and that the events end exactly at the map's entry;
 * - the subjects' chains from inception: signatures, seq, prev and authority at every step, by
 *   replaying them through the same validator the ledger runs.
 * What it returns is what it computed itself from verified events, never the server's summary.
 * What it verified is kept (VerifiedCache): a later read asks only for newer events.
 */
import { decodePublicKey, ed25519Verify, fromBase64url, prefetch, settle } from '../crypto/index.js';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import type { PolicyHistory } from '../policy/verify.js';
import { DID_PREFIX, POLICY_PREFIX, eventId, prepareEvent, subjectOf, type Did, type LedgerEvent, type PolicyAddress, type Subject } from './events.js';
import {
  BatchAnswerSchema,
  ConsistencyAnswerSchema,
  LogPageSchema,
  MAX_LOG_PAGE,
  MapAnswerSchema,
  ProblemCodeSchema as ProblemSchema,
  ProvenSchema,
  ReceiptSchema,
} from './api-schemas.js';
import { ServedHeadSchema, bareHead, mapRootBytes, rootBytes, verifyCosignature, verifyHeadSignature, type ServedHead, type SignedTreeHead } from './head.js';
import { mapKey, verifyMapProof, type MapEntry } from './map.js';
import { verifyConsistency, verifyInclusion } from './merkle.js';
import type { Receipt, SubmitResult } from './node.js';
import { Replay, recordLeaf } from './replay.js';
import type { DidRecord, LedgerView, LogRecord, PolicyRecord, SubjectRecord } from './state.js';
import { verifySignatures } from './validate.js';
import { VerifiedCache, type StateStep, type VerifiedRead } from './verified-cache.js';
import { toBase64url } from '../crypto/index.js';
import { fetchTransport, httpTransport, type LedgerTransport } from './transport.js';
import { retry } from '../retry.js';

export interface LedgerClientOptions {
  /** Base URL of a ledger node, e.g. http://127.0.0.1:8420. */
  readonly url: string;
  /**
   * Node keys whose tree heads this client accepts. When empty, the first key seen is pinned
   * (trust on first use, reported through `onFirstUse`) and every later head must be signed by it.
   */
  readonly trustedKeys?: readonly string[];
  /** Witness keys whose cosignatures count towards `quorum`. */
  readonly witnessKeys?: readonly string[];
  /**
   * Distinct trusted signers every head needs: the node's own signature counts as one, each
   * trusted witness's valid, recent cosignature as one more (default 1: the node alone).
   */
  readonly quorum?: number;
  /** Heads (and cosignatures) older than this are refused with LEDGER_STALE (default 60 s). */
  readonly maxHeadAgeMs?: number;
  /** How long to wait for witnesses to cosign a new head before LEDGER_UNWITNESSED (default 3 s). */
  readonly witnessWaitMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  readonly now?: () => number;
  /** The last head this client verified (persist it between runs to detect rollbacks and forks). */
  readonly lastHead?: SignedTreeHead;
  /** Called with each newly verified head, to persist it. */
  readonly onHead?: (head: SignedTreeHead) => void;
  /** Called when a node key is trusted on first use, because none was configured. */
  readonly onFirstUse?: (key: string) => void;
  /** What this client verified before (persist it to make later runs fast); a new one by default. */
  readonly cache?: VerifiedCache;
  readonly timeoutMs?: number;
  /** A fetch implementation to send requests with (tests and proxies pass their own). */
  readonly fetch?: typeof fetch;
  /**
   * How requests reach the node (default: node:http(s) with keep-alive, or `fetch` when given);
   * in-process callers pass localLedgerTransport.
   */
  readonly transport?: LedgerTransport;
  /** Ends requests in flight, and refuses new ones, once aborted (a cancelled command); for the default transport and `fetch`. */
  readonly signal?: AbortSignal;
}

export interface VerifiedHistory {
  readonly head: SignedTreeHead;
  /** The subject's events (and, for a DID, its policy's), in log order, each proven under `head`. */
  readonly history: readonly LogRecord[];
}

/** A DID's verified state and its controlling policy's (did/resolve.ts builds the DID document from them). */
export interface ResolvedDidRecord extends VerifiedHistory {
  readonly record: DidRecord;
  readonly policy: PolicyRecord;
  readonly policyHistory: PolicyHistory;
}

export interface ResolvedPolicy extends VerifiedHistory {
  readonly record: PolicyRecord;
  readonly policyHistory: PolicyHistory;
}

/** A page of the log: every record proven included under `head`, and every signature on its event valid. */
export interface VerifiedLogPage {
  readonly head: SignedTreeHead;
  readonly records: readonly LogRecord[];
  /** `proofs[i]`: the inclusion proof of `records[i]` under `head`, as checked (base64url hashes). */
  readonly proofs: readonly (readonly string[])[];
}

/** A point in the past to read the state at: before global sequence number `at`, or as of `time`. */
export interface AsOf {
  readonly at?: number;
  readonly time?: string;
}

const bad = (code: ErrorCode, message: string) => new DkmsError(code, message);

/** A refused answer that carries a head and map proofs: a "not found" the client can check. */
class ProvenProblem extends Error {
  constructor(
    readonly code: string,
    readonly detail: string,
    readonly payload: unknown,
  ) {
    super(detail);
  }
}

const DEFAULT_MAX_AGE_MS = 60_000;
const DEFAULT_WITNESS_WAIT_MS = 3_000;
const HEAD_MEMO_LIMIT = 64;
const ANSWER_MEMO_LIMIT = 4096;
/** Answers longer than this are not kept for reuse (bounds the memory: at most 64 MiB of texts). */
const ANSWER_MEMO_MAX_CHARS = 16_384;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

/** The same signed head: every signed field equal. */
function sameHead(a: SignedTreeHead, b: SignedTreeHead | undefined): boolean {
  return b !== undefined && a.sig === b.sig && a.size === b.size && a.root === b.root && a.map === b.map && a.time === b.time && a.key === b.key;
}

export class LedgerClient {
  readonly url: string;
  readonly #trusted: Set<string>;
  readonly #witnessKeys: ReadonlySet<string>;
  readonly #quorum: number;
  readonly #maxAgeMs: number;
  readonly #witnessWaitMs: number;
  readonly #now: () => number;
  readonly #onHead: ((head: SignedTreeHead) => void) | undefined;
  readonly #onFirstUse: ((key: string) => void) | undefined;
  readonly #timeoutMs: number;
  readonly #transport: LedgerTransport;
  readonly cache: VerifiedCache;
  /**
   * The last answer verified for each subject read, by its exact text: the same text under the
   * same head (the one this client holds as its latest) verifies to the same result, so it is
   * only checked for freshness. The text is kept only once an answer of the same length came
   * under the same head before (a repeat, most likely): most warm reads are of another subject
   * each time, and keeping every text would carry each past the young generation (every
   * collection then copies them: milliseconds of pause).
   */
  readonly #answers = new Map<Subject, { text: string | undefined; length: number; head: SignedTreeHead; read: VerifiedRead }>();
  /** Results built from a verified read's states (no cut), kept while those are the cached ones. */
  readonly #resolved = new WeakMap<VerifiedRead['steps'], Omit<ResolvedDidRecord, 'head'>>();
  /** Heads whose signature (and quorum) this client checked already, by their exact text. */
  readonly #checkedHeads = new Set<string>();
  /** Map entries proven under a map root, by root and subject: an unchanged map needs no proof. */
  readonly #provenEntries = new Map<string, string>();
  #lastHead: SignedTreeHead | undefined;
  /** The key this client pinned on first use, if it did. */
  firstUseKey: string | undefined;

  constructor(options: LedgerClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.#trusted = new Set(options.trustedKeys ?? []);
    this.#witnessKeys = new Set(options.witnessKeys ?? []);
    this.#quorum = options.quorum ?? 1;
    this.#maxAgeMs = options.maxHeadAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.#witnessWaitMs = options.witnessWaitMs ?? DEFAULT_WITNESS_WAIT_MS;
    this.#now = options.now ?? Date.now;
    this.#lastHead = options.lastHead;
    this.#onHead = options.onHead;
    this.#onFirstUse = options.onFirstUse;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#transport =
      options.transport ?? (options.fetch === undefined ? httpTransport(this.url, options.signal) : fetchTransport(this.url, options.fetch, options.signal));
    this.cache = options.cache ?? new VerifiedCache();
    if (!Number.isInteger(this.#quorum) || this.#quorum < 1) throw bad('BAD_INPUT', 'the quorum must be a whole number of signers, at least 1');
    if (this.#quorum > 1 + this.#witnessKeys.size) {
      throw bad('BAD_INPUT', `requiring ${this.#quorum} signers needs at least ${this.#quorum - 1} trusted witness keys`);
    }
    if (this.#trusted.size === 0 && options.lastHead !== undefined) this.#trusted.add(options.lastHead.key);
  }

  get lastHead(): SignedTreeHead | undefined {
    return this.#lastHead;
  }

  /** Sends a request; the answer's text when it is a success, or the error it stands for. */
  async #requestText(method: 'GET' | 'POST', path: string, body?: unknown): Promise<string> {
    let answer;
    try {
      answer = await this.#transport({ method, path, ...(body === undefined ? {} : { body: JSON.stringify(body) }), timeoutMs: this.#timeoutMs });
    } catch (e) {
      if (e instanceof DkmsError) throw e;
      throw bad('LEDGER_UNREACHABLE', `cannot reach the ledger at ${this.url}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (answer.status >= 200 && answer.status < 300) return answer.body;
    let payload: unknown;
    try {
      payload = JSON.parse(answer.body);
    } catch {
      throw bad('LEDGER_BAD_RESPONSE', `the ledger answered ${method} ${path} with status ${answer.status} and no JSON`);
    }
    const problem = ProblemSchema.safeParse(payload);
    if (problem.success && Object.hasOwn(ERROR_CODES, problem.data.code)) {
      if (problem.data.code === 'SUBJECT_NOT_FOUND') throw new ProvenProblem(problem.data.code, problem.data.detail, payload);
      throw new DkmsError(problem.data.code as ErrorCode, problem.data.detail);
    }
    throw bad('LEDGER_BAD_RESPONSE', `the ledger answered ${method} ${path} with status ${answer.status}`);
  }

  async #request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const text = await this.#requestText(method, path, body);
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw bad('LEDGER_BAD_RESPONSE', `the ledger answered ${method} ${path} with no JSON`);
    }
  }

  /** Submits one event; resolves with the ledger's receipt once it is durable. */
  async submit(event: LedgerEvent): Promise<Receipt> {
    const receipt = ReceiptSchema.safeParse(await this.#request('POST', '/v1/events', event));
    if (!receipt.success || receipt.data.id !== (await settle(() => eventId(event))))
      throw bad('LEDGER_BAD_RESPONSE', 'the ledger acknowledged the event with something that is not its receipt');
    return receipt.data as Receipt;
  }

  /** Submits events in order; each is accepted or refused on its own. */
  async submitBatch(events: readonly LedgerEvent[]): Promise<SubmitResult[]> {
    const answer = BatchAnswerSchema.safeParse(await this.#request('POST', '/v1/events/batch', { events }));
    if (!answer.success || answer.data.results.length !== events.length)
      throw bad('LEDGER_BAD_RESPONSE', 'the ledger did not answer for every event of the batch');
    for (const [i, result] of answer.data.results.entries()) {
      const event = events[i];
      if (result.ok && event !== undefined && result.receipt.id !== (await settle(() => eventId(event))))
        throw bad('LEDGER_BAD_RESPONSE', `the receipt for event ${i} is for another event`);
    }
    return answer.data.results as SubmitResult[];
  }

  /** The node's current head, verified, recent, witnessed as required, and consistent with the last one seen. */
  async head(): Promise<ServedHead> {
    return this.#witnessed(async () => {
      const floor = this.#lastHead;
      const parsed = ServedHeadSchema.safeParse(await this.#request('GET', '/v1/head'));
      if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', 'the tree head is malformed');
      await this.#acceptHead(parsed.data, floor);
      return parsed.data;
    });
  }

  /**
   * Runs a read again while its head lacks the witnesses' cosignatures only because they have
   * not caught up yet (a head of a few milliseconds), up to `witnessWaitMs`.
   */
  async #witnessed<T>(read: () => Promise<T>): Promise<T> {
    try {
      return await retry(read, {
        retryOn: (e) => e instanceof WaitingForWitnesses,
        deadlineMs: this.#witnessWaitMs,
        baseDelayMs: 25,
        maxDelayMs: 200,
        now: this.#now,
      });
    } catch (e) {
      throw e instanceof WaitingForWitnesses ? e.error : e;
    }
  }

  /**
   * Accepts a head only if it is signed by a trusted node key, recent, has the quorum of trusted
   * signers, and extends `floor`, the last head seen when the request was sent: same size and
   * roots, or larger with a valid consistency proof. A head older than one accepted since (two
   * reads in flight at once) must be a prefix of it.
   */
  async #acceptHead(served: ServedHead, floor: SignedTreeHead | undefined): Promise<SignedTreeHead> {
    const head = bareHead(served);
    const id = JSON.stringify(served);
    const checked = this.#checkedHeads.has(id);
    if (!checked) {
      if (!(await settle(() => verifyHeadSignature(head)))) throw bad('LEDGER_BAD_HEAD', 'the tree head signature does not verify');
      if (this.#trusted.size > 0 && !this.#trusted.has(head.key))
        throw bad('LEDGER_BAD_HEAD', `the tree head is signed by ${head.key}, which is not a trusted ledger node key`);
    }
    await this.#checkExtends(head, floor);
    this.#checkFresh(head.time, 'the tree head');
    if (!checked) await this.#checkQuorum(served);
    if (this.#trusted.size === 0) {
      this.#trusted.add(head.key);
      this.firstUseKey = head.key;
      this.#onFirstUse?.(head.key);
    }
    if (this.#checkedHeads.size >= HEAD_MEMO_LIMIT) this.#checkedHeads.clear();
    this.#checkedHeads.add(id);
    const last = this.#lastHead;
    if (last === undefined || head.size > last.size || (head.size === last.size && head.time > last.time)) {
      this.#lastHead = head;
      // Persisted only when the log grew: the same tree signed again adds nothing to check against.
      if (last === undefined || head.size > last.size) this.#onHead?.(head);
    }
    return head;
  }

  /**
   * A head must extend `floor`, the last one this client had verified when it asked (a node that
   * shows less than that went back), and agree with the newest it has verified since: the same
   * tree, a consistent larger one, or — an answer that crossed a newer one in flight — a prefix.
   */
  async #checkExtends(head: SignedTreeHead, floor: SignedTreeHead | undefined): Promise<void> {
    if (floor !== undefined && head.size < floor.size) throw bad('LEDGER_INCONSISTENT', `the ledger went back from ${floor.size} to ${head.size} events`);
    const last = this.#lastHead;
    if (last === undefined) return;
    if (head.size === last.size && (head.root !== last.root || head.map !== last.map)) {
      throw bad('LEDGER_INCONSISTENT', `two different logs of ${head.size} events were shown: the ledger forked`);
    }
    if (head.size === last.size || Math.min(head.size, last.size) === 0) return;
    const [older, newer] = head.size < last.size ? [head, last] : [last, head];
    const proof = await this.#consistencyProof(older.size, newer.size);
    if (!(await settle(() => verifyConsistency(older.size, newer.size, proof, rootBytes(older), rootBytes(newer))))) {
      throw bad('LEDGER_INCONSISTENT', `the log of ${newer.size} events does not extend the ${older.size} seen: the ledger forked or rewrote history`);
    }
  }

  /** Refuses a time further from now than the maximum age, either way (clocks may differ a little). */
  #checkFresh(time: string, what: string): void {
    const at = Date.parse(time);
    if (Number.isNaN(at)) throw bad('LEDGER_BAD_HEAD', `${what} has no valid time`);
    const age = this.#now() - at;
    if (age > this.#maxAgeMs)
      throw bad(
        'LEDGER_STALE',
        `${what} is ${Math.round(age / 1000)} s old (at most ${Math.round(this.#maxAgeMs / 1000)} s accepted): the node is stuck, cut off, or replaying an old head`,
      );
    if (-age > this.#maxAgeMs) throw bad('LEDGER_STALE', `${what} is dated ${Math.round(-age / 1000)} s in the future: check this machine's clock`);
  }

  /** The node's signature plus each trusted witness's valid, recent cosignature must reach the quorum. */
  async #checkQuorum(served: ServedHead): Promise<void> {
    if (this.#quorum <= 1) return;
    const head = bareHead(served);
    const signers = new Set([head.key]);
    const problems: string[] = [];
    for (const cosignature of served.cosignatures ?? []) {
      if (!this.#witnessKeys.has(cosignature.key) || signers.has(cosignature.key)) continue;
      if (!(await settle(() => verifyCosignature(head, cosignature)))) {
        problems.push(`the cosignature by ${cosignature.key} does not verify`);
        continue;
      }
      try {
        this.#checkFresh(cosignature.time, `the cosignature by ${cosignature.key}`);
      } catch (e) {
        problems.push(e instanceof Error ? e.message : String(e));
        continue;
      }
      signers.add(cosignature.key);
    }
    if (signers.size >= this.#quorum) return;
    const error = bad(
      'LEDGER_UNWITNESSED',
      `the head of ${head.size} events has ${signers.size} of the ${this.#quorum} trusted signatures required${problems.length === 0 ? '' : ` (${problems.join('; ')})`}`,
    );
    // Missing cosignatures may yet come (witnesses follow the node); bad ones will not.
    throw problems.length === 0 ? new WaitingForWitnesses(error) : error;
  }

  /** A consistency proof between two sizes the server itself announced: refusing it is the ledger's fault. */
  async #consistencyProof(from: number, to: number): Promise<Uint8Array[]> {
    let answer: unknown;
    try {
      answer = await this.#request('GET', `/v1/proofs/consistency?from=${from}&to=${to}`);
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'LEDGER_UNREACHABLE') throw e;
      throw bad('LEDGER_INCONSISTENT', `the ledger will not prove that its ${to} events extend the ${from} seen before`);
    }
    const parsed = ConsistencyAnswerSchema.pick({ proof: true }).safeParse(answer);
    if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', 'the consistency proof is malformed');
    return parsed.data.proof.map((p) => decodeHash(p));
  }

  /**
   * The subject's entry in the map under `head`, from the answer's proof; undefined when the
   * proof shows the subject absent. Entries already proven under the same map root need no proof.
   */
  async #entry(head: SignedTreeHead, subjects: Record<string, unknown>, subject: Subject): Promise<MapEntry | undefined> {
    const memo = `${head.map}|${subject}`;
    const known = this.#provenEntries.get(memo);
    if (known !== undefined) return known === '' ? undefined : (JSON.parse(known) as MapEntry);
    if (!Object.hasOwn(subjects, subject)) throw bad('LEDGER_BAD_MAP_PROOF', `the answer has no map proof for ${subject}`);
    const result = await settle(() => verifyMapProof(mapRootBytes(head), mapKey(subject), subjects[subject]));
    if (!result.ok) throw bad('LEDGER_BAD_MAP_PROOF', `the map proof for ${subject} does not verify under the head of ${head.size} events (${result.reason})`);
    if (this.#provenEntries.size >= 65_536) this.#provenEntries.clear();
    this.#provenEntries.set(memo, result.entry === undefined ? '' : JSON.stringify(result.entry));
    return result.entry;
  }

  /**
   * Reads `path` and verifies it as an answer about `main` (and, for a DID, its policy): head,
   * map proofs, inclusion, completeness, chains. Resumes from what was verified before.
   */
  async #read(main: Subject, path: (cached: VerifiedRead | undefined) => string): Promise<{ head: SignedTreeHead; read: VerifiedRead }> {
    return this.#witnessed(async () => {
      const cached = this.cache.get(main);
      const floor = this.#lastHead;
      let text: string;
      try {
        text = await this.#requestText('GET', path(cached));
      } catch (e) {
        if (e instanceof ProvenProblem) await this.#provenAbsent(main, e, floor);
        throw e;
      }
      const seen = this.#answers.get(main);
      if (seen !== undefined && seen.text === text && seen.read === cached && sameHead(seen.head, this.#lastHead)) {
        this.#checkFresh(seen.head.time, 'the tree head');
        return { head: seen.head, read: seen.read };
      }
      let payload: unknown;
      try {
        payload = JSON.parse(text) as unknown;
      } catch {
        throw bad('LEDGER_BAD_RESPONSE', `the answer for ${main} is not JSON`);
      }
      const parsed = ProvenSchema.safeParse(payload);
      if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', `the answer for ${main} is malformed`);
      const head = await this.#acceptHead(parsed.data.head, floor);
      const records = parsed.data.history as unknown as LogRecord[];
      await prefetchRecords(records);
      await this.#checkIncluded(main, head, records, parsed.data.proofs);
      const read = await this.#extend(main, head, parsed.data.subjects, cached, records);
      this.cache.set(main, read);
      // Warm answers are small and repeat; a first read's full history never does (the next asks ?after=).
      if (text.length <= ANSWER_MEMO_MAX_CHARS) {
        if (this.#answers.size >= ANSWER_MEMO_LIMIT) this.#answers.clear();
        const again = seen !== undefined && seen.length === text.length && sameHead(seen.head, head);
        this.#answers.set(main, { text: again ? text : undefined, length: text.length, head, read });
      } else {
        this.#answers.delete(main);
      }
      return { head, read };
    });
  }

  /** A "not found" holds only with a valid head and a map proof that the subject is absent. */
  async #provenAbsent(subject: Subject, problem: ProvenProblem, floor: SignedTreeHead | undefined): Promise<never> {
    const parsed = MapAnswerSchema.safeParse(problem.payload);
    if (!parsed.success) throw bad('LEDGER_BAD_MAP_PROOF', `the ledger says ${subject} does not exist without proving it`);
    const head = await this.#acceptHead(parsed.data.head, floor);
    if ((await this.#entry(head, parsed.data.subjects, subject)) !== undefined) {
      throw bad('LEDGER_INCOMPLETE', `the ledger says ${subject} does not exist, but its own map holds it: it is withholding it`);
    }
    throw bad('SUBJECT_NOT_FOUND', `no ${subject} on the ledger (proven absent under the head of ${head.size} events)`);
  }

  /** Every record is included under the head, in log order. */
  async #checkIncluded(
    subject: Subject | 'the log',
    head: SignedTreeHead,
    records: readonly LogRecord[],
    proofs: readonly (readonly string[])[],
  ): Promise<void> {
    if (proofs.length !== records.length) throw bad('LEDGER_BAD_PROOF', 'the answer does not prove every event');
    const root = rootBytes(head);
    for (const [i, record] of records.entries()) {
      if (i > 0 && record.gseq <= (records[i - 1]?.gseq ?? -1)) throw bad('LEDGER_BAD_CHAIN', `events of ${subject} are out of log order`);
      const proof = (proofs[i] ?? []).map((p) => decodeHash(p));
      if (record.gseq >= head.size || !(await settle(() => verifyInclusion(recordLeaf(record), record.gseq, head.size, proof, root)))) {
        throw bad('LEDGER_BAD_PROOF', `event ${record.gseq} of ${subject} is not in the log the head commits to`);
      }
    }
  }

  /**
   * Checks that the new records bring each subject of the read exactly to its map entry, then
   * replays them on top of the verified state. Returns the read extended.
   */
  async #extend(
    main: Subject,
    head: SignedTreeHead,
    proofs: Record<string, unknown>,
    cached: VerifiedRead | undefined,
    records: readonly LogRecord[],
  ): Promise<VerifiedRead> {
    const last = cached?.history.at(-1)?.gseq ?? -1;
    if (records.some((r) => r.gseq <= last)) throw bad('LEDGER_BAD_CHAIN', `the answer for ${main} repeats events already verified`);
    const controller = main.startsWith(DID_PREFIX) ? await settle(() => didController(main, cached, records)) : undefined;
    const subjects: Subject[] = controller === undefined ? [main] : [main, controller];
    const entries: Record<string, MapEntry> = {};
    for (const subject of subjects) {
      const entry = await this.#entry(head, proofs, subject);
      if (entry === undefined) throw bad('LEDGER_INCOMPLETE', `the ledger's map says ${subject} does not exist, yet it answered with its events`);
      await settle(() =>
        checkComplete(
          subject,
          entry,
          cached?.entries[subject],
          records.filter((r) => subjectOf(r.event) === subject),
        ),
      );
      entries[subject] = entry;
    }
    if (await settle(() => records.some((r) => !subjects.includes(subjectOf(r.event)))))
      throw bad('LEDGER_BAD_CHAIN', `the answer for ${main} holds events of other subjects`);
    // Unchanged: the same verified state (under a new map root, now proven under it too).
    if (records.length === 0 && cached !== undefined) return cached.map === head.map ? cached : { ...cached, map: head.map };
    const steps = await replayFrom(main, cached, records);
    return { map: head.map, entries, history: [...(cached?.history ?? []), ...records], steps };
  }

  static #after(cached: VerifiedRead | undefined, subject: Subject): number {
    return cached?.entries[subject]?.seq ?? -1;
  }

  /** Resolves a policy, as of `at`/`time` when given, verifying its whole chain. */
  async resolvePolicy(address: PolicyAddress, options: AsOf = {}): Promise<ResolvedPolicy> {
    if (!address.startsWith(POLICY_PREFIX)) throw bad('BAD_INPUT', `${address} is not a policy address`);
    const cut = cutoff(options);
    const { head, read } = await this.#read(
      address,
      (cached) => `/v1/policies/${address}${cached === undefined ? '' : `?after=${LedgerClient.#after(cached, address)}`}`,
    );
    const record = stateAt(read.steps[address], cut);
    if (record?.kind !== 'policy') throw notYet(address, cut);
    return { head, history: read.history.filter(cut.keep), record, policyHistory: policyHistory(read.steps[address], cut) };
  }

  /** Resolves a DID's state, as of `at`/`time` when given, verifying its chain and its policy's. */
  async resolveDidRecord(did: Did, options: AsOf = {}): Promise<ResolvedDidRecord> {
    if (!did.startsWith(DID_PREFIX)) throw bad('BAD_INPUT', `${did} is not a did:dkms DID`);
    const cut = cutoff(options);
    const { head, read } = await this.#read(did, (cached) => {
      if (cached === undefined) return `/v1/dids/${did}`;
      const controller = Object.keys(cached.entries).find((s) => s !== did) as Subject | undefined;
      return `/v1/dids/${did}?after=${LedgerClient.#after(cached, did)}&policyAfter=${controller === undefined ? -1 : LedgerClient.#after(cached, controller)}`;
    });
    const current = options.at === undefined && options.time === undefined;
    const known = current ? this.#resolved.get(read.steps) : undefined;
    if (known !== undefined) return { head, ...known };
    const record = stateAt(read.steps[did], cut);
    if (record?.kind !== 'did') throw notYet(did, cut);
    const policy = stateAt(read.steps[record.controller], cut);
    if (policy?.kind !== 'policy') throw bad('LEDGER_BAD_CHAIN', `the answer does not contain the controlling policy of ${did}`);
    const resolved = {
      history: read.history.filter(cut.keep),
      record,
      policy,
      policyHistory: policyHistory(read.steps[record.controller], cut),
    };
    // Shared by every later resolve of this read: frozen, so that no caller can change another's.
    if (current) this.#resolved.set(read.steps, deepFreeze(resolved));
    return { head, ...resolved };
  }

  /**
   * Records `from` up to `to` (exclusive; at most 1,000, and no further than the log), from one
   * answer: its head verified like any other, every record proven included under it at its
   * position, none left out, and every signature on each event valid. Whether each signer was
   * allowed to make its event is a property of the subject's chain: `resolvePolicy` and
   * `resolveDidRecord` check that.
   */
  async log(from: number, to?: number): Promise<VerifiedLogPage> {
    if (!Number.isSafeInteger(from) || from < 0) throw bad('BAD_INPUT', 'from must be a non-negative integer');
    if (to !== undefined && (!Number.isSafeInteger(to) || to < from)) throw bad('BAD_INPUT', 'to must be an integer no smaller than from');
    return this.#witnessed(async () => {
      const floor = this.#lastHead;
      const query = `from=${from}${to === undefined ? '' : `&to=${to}`}&proofs=true`;
      const parsed = LogPageSchema.safeParse(await this.#request('GET', `/v1/log?${query}`));
      if (!parsed.success || parsed.data.proofs === undefined) throw bad('LEDGER_BAD_RESPONSE', 'the log page is malformed');
      const head = await this.#acceptHead(parsed.data.head, floor);
      const records = parsed.data.records as unknown as LogRecord[];
      const expected = Math.max(0, Math.min(to ?? from + MAX_LOG_PAGE, from + MAX_LOG_PAGE, head.size) - from);
      if (records.length !== expected || records.some((r, i) => r.gseq !== from + i)) {
        throw bad('LEDGER_INCOMPLETE', `the log page from ${from} under the head of ${head.size} events must hold events ${from} to ${from + expected - 1}`);
      }
      await prefetchRecords(records);
      await this.#checkIncluded('the log', head, records, parsed.data.proofs);
      for (const record of records) {
        try {
          await settle(() => {
            const prepared = prepareEvent(record.event);
            verifySignatures(prepared.event, prepared.signingBytes);
          });
        } catch (e) {
          const reason = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
          throw bad('LEDGER_BAD_CHAIN', `event ${record.gseq} is in the log but not a valid signed event (${reason})`);
        }
      }
      return { head, records, proofs: parsed.data.proofs };
    });
  }

  /**
   * The current map entries of several subjects under one verified head (undefined: proven
   * absent). A follower compares them with what it holds and reads only the subjects that moved.
   */
  async entries(subjects: readonly Subject[]): Promise<{ head: SignedTreeHead; entries: Map<Subject, MapEntry | undefined> }> {
    return this.#witnessed(async () => {
      const floor = this.#lastHead;
      const parsed = MapAnswerSchema.safeParse(await this.#request('POST', '/v1/proofs/map', { subjects }));
      if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', 'the map proofs are malformed');
      const head = await this.#acceptHead(parsed.data.head, floor);
      const entries = new Map<Subject, MapEntry | undefined>();
      for (const subject of subjects) entries.set(subject, await this.#entry(head, parsed.data.subjects, subject));
      return { head, entries };
    });
  }
}

/** A head without enough cosignatures yet: worth asking again shortly. */
class WaitingForWitnesses extends Error {
  constructor(readonly error: DkmsError) {
    super(error.message);
  }
}

/** The policy controlling a DID: from the verified state, or from the DID's inception in the answer. */
function didController(did: Subject, cached: VerifiedRead | undefined, records: readonly LogRecord[]): PolicyAddress {
  const known = cached?.steps[did]?.[0]?.record;
  if (known?.kind === 'did') return known.controller;
  const inception = records.find((r) => r.event.seq === 0 && subjectOf(r.event) === did)?.event;
  if (inception?.type !== 'did.create') throw bad('LEDGER_BAD_CHAIN', `the answer does not contain the inception of ${did}`);
  return inception.policy as PolicyAddress;
}

/**
 * The new records of one subject must continue the verified ones without a gap (seq by seq)
 * and end exactly at the map's entry: its seq, its position and its leaf hash. Anything left
 * out, at the end or in between, fails here or in the replay's prev check.
 */
function checkComplete(subject: Subject, entry: MapEntry, known: MapEntry | undefined, records: readonly LogRecord[]): void {
  const incomplete = (why: string) => bad('LEDGER_INCOMPLETE', `the history of ${subject} is incomplete: ${why}`);
  if (known !== undefined && entry.seq < known.seq) throw incomplete(`the map's entry (seq ${entry.seq}) is older than the seq ${known.seq} already verified`);
  const from = (known?.seq ?? -1) + 1;
  records.forEach((r, i) => {
    if (r.event.seq !== from + i) throw incomplete(`expected seq ${from + i}, got ${r.event.seq}`);
  });
  const lastRecord = records.at(-1);
  if (lastRecord === undefined) {
    if (known === undefined) throw incomplete('no events were given');
    if (known.seq !== entry.seq || known.gseq !== entry.gseq || known.leaf !== entry.leaf)
      throw incomplete(`the map holds seq ${entry.seq} but no newer events were given`);
    return;
  }
  if (lastRecord.event.seq !== entry.seq || lastRecord.gseq !== entry.gseq || toBase64url(recordLeaf(lastRecord)) !== entry.leaf) {
    throw incomplete(`the events end at seq ${lastRecord.event.seq}, but the map's latest is seq ${entry.seq} (event ${entry.gseq})`);
  }
}

/**
 * Asks WebCrypto at once for what verifying `records` will need of it (their leaf hashes, event
 * ids, signature verdicts, and the digests of signers that may be recovery keys), so that each
 * check then runs in one round: a no-op on Node (crypto/platform.ts). It decides nothing: the
 * checks that follow do, each as always.
 */
function prefetchRecords(records: readonly LogRecord[]): Promise<void> {
  return prefetch(() => {
    for (const record of records) {
      try {
        recordLeaf(record);
        const prepared = prepareEvent(record.event);
        for (const { kid, sig } of prepared.event.sigs) {
          ed25519Verify(decodePublicKey(kid, 'ed25519').publicKey, prepared.signingBytes, fromBase64url(sig));
          recoveryKeyDigest(kid);
        }
      } catch {
        // A malformed record: the checks that follow say what is wrong with it.
      }
    }
  });
}

/** A view whose records are the last verified states: the base to resume a replay from. */
function resumeView(cached: VerifiedRead | undefined): LedgerView {
  const latest = new Map<string, SubjectRecord>();
  for (const [subject, steps] of Object.entries(cached?.steps ?? {})) {
    const last = steps.at(-1);
    if (last !== undefined) latest.set(subject, last.record);
  }
  return { subject: async (s) => latest.get(s), eventAt: async () => undefined };
}

/** Replays the new records on top of the verified state; the states after each, appended to the cached ones. */
async function replayFrom(main: Subject, cached: VerifiedRead | undefined, records: readonly LogRecord[]): Promise<Record<string, StateStep[]>> {
  const steps: Record<string, StateStep[]> = {};
  for (const [subject, list] of Object.entries(cached?.steps ?? {})) steps[subject] = [...list];
  const replay = new Replay(resumeView(cached));
  for (const record of records) {
    try {
      // Validation only reads: the step may run again (crypto/platform.ts).
      const accepted = await settle(() => replay.apply(record));
      (steps[accepted.subject] ??= []).push({ gseq: record.gseq, time: record.time, record: accepted.record });
    } catch (e) {
      const reason = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
      throw bad('LEDGER_BAD_CHAIN', `the chain of ${main} does not verify at event ${record.gseq} (${reason})`);
    }
  }
  return steps;
}

interface Cut {
  readonly at: number | undefined;
  readonly time: string | undefined;
  keep(record: { gseq: number; time: string }): boolean;
}

/** Where a historical read ends; each record's position and time are proven, so the client cuts, not the server. */
function cutoff(options: AsOf): Cut {
  if (options.at !== undefined && options.time !== undefined) throw bad('BAD_INPUT', 'give at or time, not both');
  if (options.at !== undefined && (!Number.isSafeInteger(options.at) || options.at < 0)) throw bad('BAD_INPUT', 'at must be a non-negative integer');
  if (options.time !== undefined && Number.isNaN(Date.parse(options.time))) throw bad('BAD_INPUT', `'${options.time}' is not an ISO 8601 date-time`);
  const at = options.at;
  const time = options.time === undefined ? undefined : new Date(options.time).toISOString();
  return { at, time, keep: (r) => (at === undefined || r.gseq < at) && (time === undefined || r.time <= time) };
}

function stateAt(steps: readonly StateStep[] | undefined, cut: Cut): SubjectRecord | undefined {
  let found: SubjectRecord | undefined;
  for (const step of steps ?? []) if (cut.keep(step)) found = step.record;
  return found;
}

function policyHistory(steps: readonly StateStep[] | undefined, cut: Cut): PolicyHistory {
  return (steps ?? []).filter((s) => cut.keep(s) && s.record.kind === 'policy').map((s) => ({ time: s.time, policy: (s.record as PolicyRecord).policy }));
}

function notYet(subject: Subject, cut: Cut): DkmsError {
  return bad('SUBJECT_NOT_FOUND', `${subject} did not exist yet ${cut.at === undefined ? `at ${cut.time ?? ''}` : `before event ${cut.at}`}`);
}

function decodeHash(text: string): Uint8Array {
  try {
    return fromBase64url(text);
  } catch {
    throw bad('LEDGER_BAD_PROOF', 'a proof element is not base64url');
  }
}
