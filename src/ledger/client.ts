/**
 * The ledger client: submits events and reads state, and verifies everything it reads instead
 * of trusting the server. For every answer it checks
 * - the tree head's signature, by a node key it trusts;
 * - that the head is consistent with the last head it saw (a Merkle consistency proof), so a
 *   server cannot show it a rewritten or forked history;
 * - every event's inclusion under that head;
 * - the subject's whole chain from inception: signatures, seq, prev and authority at every
 *   step, by replaying it through the same validator the ledger runs.
 * What it returns is what it computed itself from verified events, never the server's summary.
 */
import { z } from 'zod';
import { fromBase64url } from '../crypto/index.js';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { didDocument, didDocumentMetadata, type DidDocument, type DidDocumentMetadata } from '../did/document.js';
import type { PolicyHistory } from '../policy/verify.js';
import { DID_PREFIX, POLICY_PREFIX, eventId, type Did, type LedgerEvent, type PolicyAddress, type Subject } from './events.js';
import { SignedTreeHeadSchema, rootBytes, verifyHeadSignature, type SignedTreeHead } from './head.js';
import { verifyConsistency, verifyInclusion } from './merkle.js';
import type { Receipt, SubmitResult } from './node.js';
import { Replay, recordLeaf } from './replay.js';
import type { DidRecord, LogRecord, PolicyRecord } from './state.js';

export interface LedgerClientOptions {
  /** Base URL of a ledger node, e.g. http://127.0.0.1:8420. */
  readonly url: string;
  /**
   * Node keys whose tree heads this client accepts. When empty, the first key seen is pinned
   * (trust on first use) and every later head must be signed by it.
   */
  readonly trustedKeys?: readonly string[];
  /** The last head this client verified (persist it between runs to detect rollbacks and forks). */
  readonly lastHead?: SignedTreeHead;
  /** Called with each newly verified head, to persist it. */
  readonly onHead?: (head: SignedTreeHead) => void;
  readonly timeoutMs?: number;
  /** The fetch implementation (default: the global one); tests and in-process callers pass their own. */
  readonly fetch?: typeof fetch;
  /**
   * Other ledger nodes serving the same log. With `threshold` k above 1, every head is accepted
   * only once k distinct trusted node keys have signed it (the node's own and the witnesses').
   */
  readonly witnesses?: readonly string[];
  readonly threshold?: number;
  /** Called when a trusted node signs a different root for a size: a node that diverges. */
  readonly onDivergence?: (divergence: Divergence) => void;
}

/** A trusted node that signed another log than the one the quorum agrees on. */
export interface Divergence {
  readonly url: string;
  readonly key: string;
  readonly size: number;
  readonly root: string;
  readonly expected: string;
}

export interface VerifiedHistory {
  readonly head: SignedTreeHead;
  /** The subject's events (and, for a DID, its policy's), in log order, each proven under `head`. */
  readonly history: readonly LogRecord[];
}

export interface ResolvedDid extends VerifiedHistory {
  readonly didDocument: DidDocument;
  readonly didDocumentMetadata: DidDocumentMetadata;
  readonly record: DidRecord;
  readonly policy: PolicyRecord;
  readonly policyHistory: PolicyHistory;
}

export interface ResolvedPolicy extends VerifiedHistory {
  readonly record: PolicyRecord;
  readonly policyHistory: PolicyHistory;
}

const LogRecordSchema = z.strictObject({ gseq: z.number().int().min(0), time: z.string().max(40), event: z.record(z.string(), z.unknown()) });
const ProvenSchema = z.object({ head: SignedTreeHeadSchema, history: z.array(LogRecordSchema), proofs: z.array(z.array(z.string())) });
const ProblemSchema = z.object({ code: z.string(), detail: z.string() });
const ReceiptSchema = z.object({ id: z.string(), subject: z.string(), seq: z.number().int().min(0), gseq: z.number().int().min(0), time: z.string() });
const ResultSchema = z.union([
  z.object({ ok: z.literal(true), receipt: ReceiptSchema }),
  z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) }),
]);

const bad = (code: ErrorCode, message: string) => new DkmsError(code, message);

export class LedgerClient {
  readonly url: string;
  readonly #trusted: Set<string>;
  readonly #onHead: ((head: SignedTreeHead) => void) | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #witnesses: readonly string[];
  readonly #threshold: number;
  readonly #onDivergence: ((divergence: Divergence) => void) | undefined;
  readonly #quorate = new Set<string>();
  readonly divergent: Divergence[] = [];
  #lastHead: SignedTreeHead | undefined;

  constructor(options: LedgerClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.#trusted = new Set(options.trustedKeys ?? []);
    this.#lastHead = options.lastHead;
    this.#onHead = options.onHead;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#fetch = options.fetch ?? fetch;
    this.#witnesses = (options.witnesses ?? []).map((w) => w.replace(/\/+$/, ''));
    this.#threshold = options.threshold ?? 1;
    this.#onDivergence = options.onDivergence;
    if (this.#threshold > 1 && this.#trusted.size < this.#threshold) {
      throw bad('BAD_INPUT', `requiring ${this.#threshold} node signatures needs at least that many trusted node keys`);
    }
    if (this.#threshold > 1 + this.#witnesses.length) throw bad('BAD_INPUT', `requiring ${this.#threshold} node signatures needs at least ${this.#threshold - 1} witness nodes`);
    if (this.#trusted.size === 0 && options.lastHead !== undefined) this.#trusted.add(options.lastHead.key);
  }

  get lastHead(): SignedTreeHead | undefined {
    return this.#lastHead;
  }

  async #request(method: 'GET' | 'POST', path: string, body?: unknown, base = this.url): Promise<unknown> {
    let response: Response;
    try {
      response = await this.#fetch(`${base}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (e) {
      throw bad('LEDGER_UNREACHABLE', `cannot reach the ledger at ${base}: ${e instanceof Error ? e.message : String(e)}`);
    }
    let payload: unknown;
    try {
      payload = await response.json();
    } catch {
      throw bad('LEDGER_BAD_RESPONSE', `the ledger answered ${method} ${path} with status ${response.status} and no JSON`);
    }
    if (!response.ok) {
      const problem = ProblemSchema.safeParse(payload);
      if (problem.success && Object.hasOwn(ERROR_CODES, problem.data.code)) throw new DkmsError(problem.data.code as ErrorCode, problem.data.detail);
      throw bad('LEDGER_BAD_RESPONSE', `the ledger answered ${method} ${path} with status ${response.status}`);
    }
    return payload;
  }

  /** Submits one event; resolves with the ledger's receipt once it is durable. */
  async submit(event: LedgerEvent): Promise<Receipt> {
    const receipt = ReceiptSchema.safeParse(await this.#request('POST', '/v1/events', event));
    if (!receipt.success || receipt.data.id !== eventId(event)) throw bad('LEDGER_BAD_RESPONSE', 'the ledger acknowledged the event with something that is not its receipt');
    return receipt.data as Receipt;
  }

  /** Submits events in order; each is accepted or refused on its own. */
  async submitBatch(events: readonly LedgerEvent[]): Promise<SubmitResult[]> {
    const answer = z.object({ results: z.array(ResultSchema) }).safeParse(await this.#request('POST', '/v1/events/batch', { events }));
    if (!answer.success || answer.data.results.length !== events.length) throw bad('LEDGER_BAD_RESPONSE', 'the ledger did not answer for every event of the batch');
    answer.data.results.forEach((result, i) => {
      const event = events[i];
      if (result.ok && event !== undefined && result.receipt.id !== eventId(event)) throw bad('LEDGER_BAD_RESPONSE', `the receipt for event ${i} is for another event`);
    });
    return answer.data.results as SubmitResult[];
  }

  /** The node's current head, verified and checked consistent with the last one seen. */
  async head(): Promise<SignedTreeHead> {
    const parsed = SignedTreeHeadSchema.safeParse(await this.#request('GET', '/v1/head'));
    if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', 'the tree head is malformed');
    await this.#acceptHead(parsed.data);
    return parsed.data;
  }

  /**
   * Accepts a head only if it is signed by a trusted node key and extends the last head seen:
   * same size and root, or larger with a valid consistency proof.
   */
  async #acceptHead(head: SignedTreeHead): Promise<void> {
    if (!verifyHeadSignature(head)) throw bad('LEDGER_BAD_HEAD', 'the tree head signature does not verify');
    if (this.#trusted.size > 0 && !this.#trusted.has(head.key)) throw bad('LEDGER_BAD_HEAD', `the tree head is signed by ${head.key}, which is not a trusted ledger node key`);
    const last = this.#lastHead;
    if (last !== undefined) {
      if (head.size < last.size) throw bad('LEDGER_INCONSISTENT', `the ledger went back from ${last.size} to ${head.size} events`);
      if (head.size === last.size && head.root !== last.root) throw bad('LEDGER_INCONSISTENT', `two different logs of ${head.size} events were shown: the ledger forked`);
      if (head.size > last.size && last.size > 0) {
        const proof = await this.#consistencyProof(last.size, head.size);
        if (!verifyConsistency(last.size, head.size, proof, rootBytes(last), rootBytes(head))) {
          throw bad('LEDGER_INCONSISTENT', `the log of ${head.size} events does not extend the ${last.size} seen before: the ledger forked or rewrote history`);
        }
      }
    }
    if (this.#trusted.size === 0) this.#trusted.add(head.key);
    if (this.#threshold > 1 && head.size > 0) await this.#quorum(head);
    if (last === undefined || head.size > last.size) {
      this.#lastHead = head;
      this.#onHead?.(head);
    }
  }

  /**
   * Collects the witnesses' signatures on `head` (same size, root and time): at least
   * `threshold` distinct trusted keys, counting the head's own. A witness that signs another
   * root for the size is recorded as divergent; one that is down or behind simply does not count.
   */
  async #quorum(head: SignedTreeHead): Promise<void> {
    const id = `${head.size}:${head.root}`;
    if (this.#quorate.has(id)) return;
    const signers = new Set([head.key]);
    const answers = await Promise.all(
      this.#witnesses.map(async (url) => {
        try {
          return { url, head: SignedTreeHeadSchema.parse(await this.#request('GET', `/v1/head?size=${head.size}`, undefined, url)) };
        } catch {
          return undefined;
        }
      }),
    );
    for (const answer of answers) {
      if (answer === undefined) continue;
      const witness = answer.head;
      if (!this.#trusted.has(witness.key) || witness.size !== head.size || !verifyHeadSignature(witness)) continue;
      if (witness.root === head.root && witness.time === head.time) signers.add(witness.key);
      else if (witness.root !== head.root) {
        const divergence: Divergence = { url: answer.url, key: witness.key, size: witness.size, root: witness.root, expected: head.root };
        this.divergent.push(divergence);
        this.#onDivergence?.(divergence);
      }
    }
    if (signers.size < this.#threshold) {
      throw bad('LEDGER_BAD_HEAD', `only ${signers.size} of the ${this.#threshold} required ledger nodes signed the head of ${head.size} events`);
    }
    this.#quorate.add(id);
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
    const parsed = z.object({ proof: z.array(z.string()) }).safeParse(answer);
    if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', 'the consistency proof is malformed');
    return parsed.data.proof.map((p) => decodeHash(p));
  }

  /** Checks each record's inclusion under the head and replays the chain; returns the replay. */
  async #verifyHistory(subject: Subject, payload: unknown, cutoff: { at?: number; time?: string } = {}): Promise<{ head: SignedTreeHead; history: LogRecord[]; replay: Replay; policyHistory: Map<string, { time: string; policy: PolicyRecord['policy'] }[]> }> {
    const parsed = ProvenSchema.safeParse(payload);
    if (!parsed.success) throw bad('LEDGER_BAD_RESPONSE', `the answer for ${subject} is malformed`);
    const { head, proofs } = parsed.data;
    const proven = parsed.data.history as unknown as LogRecord[];
    await this.#acceptHead(head);
    if (proofs.length !== proven.length) throw bad('LEDGER_BAD_PROOF', 'the answer does not prove every event');
    const root = rootBytes(head);
    proven.forEach((record, i) => {
      if (i > 0 && record.gseq <= (proven[i - 1]?.gseq ?? -1)) throw bad('LEDGER_BAD_CHAIN', `events of ${subject} are out of log order`);
      const proof = (proofs[i] ?? []).map((p) => decodeHash(p));
      if (record.gseq >= head.size || !verifyInclusion(recordLeaf(record), record.gseq, head.size, proof, root)) {
        throw bad('LEDGER_BAD_PROOF', `event ${record.gseq} of ${subject} is not in the log the head commits to`);
      }
    });
    // A historical read is cut here, whatever the server did with the query: each record's
    // position and time are proven, so the client needs no trust in the server's cutoff.
    const until = cutoff.time === undefined ? undefined : new Date(cutoff.time).toISOString();
    const history = proven.filter((r) => (cutoff.at === undefined || r.gseq < cutoff.at) && (until === undefined || r.time <= until));
    const replay = new Replay();
    const policyHistory = new Map<string, { time: string; policy: PolicyRecord['policy'] }[]>();
    for (const record of history) {
      try {
        const accepted = await replay.apply(record);
        if (accepted.record.kind === 'policy') {
          const list = policyHistory.get(accepted.subject) ?? [];
          list.push({ time: record.time, policy: accepted.record.policy });
          policyHistory.set(accepted.subject, list);
        }
      } catch (e) {
        const reason = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
        throw bad('LEDGER_BAD_CHAIN', `the chain of ${subject} does not verify at event ${record.gseq} (${reason})`);
      }
    }
    return { head, history, replay, policyHistory };
  }

  static #query(options: { at?: number; time?: string }): string {
    if (options.time !== undefined && Number.isNaN(Date.parse(options.time))) throw bad('BAD_INPUT', `'${options.time}' is not an ISO 8601 date-time`);
    if (options.at !== undefined) return `?at=${options.at}`;
    if (options.time !== undefined) return `?time=${encodeURIComponent(options.time)}`;
    return '';
  }

  /** Resolves a policy, as of `at`/`time` when given, verifying its whole chain. */
  async resolvePolicy(address: PolicyAddress, options: { at?: number; time?: string } = {}): Promise<ResolvedPolicy> {
    if (!address.startsWith(POLICY_PREFIX)) throw bad('BAD_INPUT', `${address} is not a policy address`);
    const payload = await this.#request('GET', `/v1/policies/${address}${LedgerClient.#query(options)}`);
    const { head, history, replay, policyHistory } = await this.#verifyHistory(address, payload, options);
    const record = await replay.view.subject(address);
    if (record?.kind !== 'policy') throw bad('LEDGER_BAD_CHAIN', `the answer does not contain the inception of ${address}`);
    return { head, history, record, policyHistory: policyHistory.get(address) ?? [] };
  }

  /** Resolves a DID to its document, computed here from its verified chain and its policy's. */
  async resolveDid(did: Did, options: { at?: number; time?: string } = {}): Promise<ResolvedDid> {
    if (!did.startsWith(DID_PREFIX)) throw bad('BAD_INPUT', `${did} is not a did:dkms DID`);
    const payload = await this.#request('GET', `/v1/dids/${did}${LedgerClient.#query(options)}`);
    const { head, history, replay, policyHistory } = await this.#verifyHistory(did, payload, options);
    const record = await replay.view.subject(did);
    if (record?.kind !== 'did') throw bad('LEDGER_BAD_CHAIN', `the answer does not contain the inception of ${did}`);
    const policy = await replay.view.subject(record.controller);
    if (policy?.kind !== 'policy') throw bad('LEDGER_BAD_CHAIN', `the answer does not contain the controlling policy of ${did}`);
    return {
      head,
      history,
      record,
      policy,
      policyHistory: policyHistory.get(record.controller) ?? [],
      didDocument: didDocument(record, policy),
      didDocumentMetadata: didDocumentMetadata(record),
    };
  }
}

function decodeHash(text: string): Uint8Array {
  try {
    return fromBase64url(text);
  } catch {
    throw bad('LEDGER_BAD_PROOF', 'a proof element is not base64url');
  }
}
