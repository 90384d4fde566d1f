/**
 * Running a witness (ledger/witness.ts): it follows one ledger node over HTTP, polling its head,
 * cosigns each head that extends the last one it cosigned and hands the cosignature to the node
 * (which serves it with its head); and it serves a small API on which anyone may read its state
 * or report a head a node showed them. Used by `dkms ledger witness`.
 */
import { DEFAULT_WITNESS_PORT } from './ports.js';
import { join } from 'node:path';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance } from 'fastify';
import { z } from 'zod';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { fromBase64url } from '../crypto/index.js';
import { ServedHeadSchema, bareHead, type Cosignature, type ServedHead, type SignedTreeHead } from '../ledger/head.js';
import type { CosignatureSubmission } from '../ledger/node.js';
import { Witness, type ConsistencyProof, type Evidence } from '../ledger/witness.js';
import type { Signer } from '../crypto/index.js';
import { openUnattendedWallet } from '../wallet/unattended.js';
import { installProblemHandlers, sendProblem } from './problem.js';
import { CLOSE_GRACE_MS, closeWithin, settlesWithin } from './close.js';

const DEFAULT_INTERVAL_MS = 500;
const DEFAULT_TIMEOUT_MS = 5_000;
const WITNESS_KEY_NAME = 'witness';

export interface WitnessServiceOptions {
  /** Base URL of the ledger node followed. */
  readonly ledger: string;
  /** The node's key, pinned: heads signed by any other key are refused. */
  readonly nodeKey: string;
  readonly host?: string;
  /** Port of the witness's own API (default 8422; 0 picks a free one). */
  readonly port?: number;
  /** How often to poll the node's head (default 500 ms). */
  readonly intervalMs?: number;
  /** Heads older than this are not cosigned; a cosignature is renewed at half of it (default 60 s). */
  readonly maxHeadAgeMs?: number;
  /** Time allowed for each request to the node (default 5 s). */
  readonly timeoutMs?: number;
  /** Requests per second allowed from one client address (default 50). */
  readonly rateLimitPerSecond?: number;
  readonly now?: () => number;
  /** Called once for each new piece of evidence, the moment it is stored. */
  readonly onEvidence?: (evidence: Evidence) => void;
  /** Called when a round fails for another reason than the last failed round did (or after a success). */
  readonly onProblem?: (error: DkmsError) => void;
  /** How long closing lets the round and requests in flight finish before giving up on them (default CLOSE_GRACE_MS, 5 s). */
  readonly closeGraceMs?: number;
}

export type PollOutcome =
  | { readonly status: 'cosigned'; readonly head: SignedTreeHead; readonly cosignature: Cosignature }
  /** The node already serves a recent cosignature of this witness for the head's tree. */
  | { readonly status: 'current'; readonly head: SignedTreeHead }
  | { readonly status: 'failed'; readonly error: DkmsError };

export interface RunningWitness {
  /** Base URL of the witness's API. */
  readonly url: string;
  readonly witness: Witness;
  /** One round now (after any round in progress): fetch the node's head, check it, cosign and submit when due. */
  poll(): Promise<PollOutcome>;
  /** Stops polling and serving, within the close grace (`closeGraceMs`) or so whatever state it is in; requests to the node in flight are abandoned. */
  close(): Promise<void>;
}

export function witnessDir(home: string): string {
  // The CLI names the same directory without loading this module (commands/witness.ts).
  return join(home, 'witness');
}

export interface WitnessIdentity extends Signer {
  close(): void;
}

/** Opens (creating on first use) the witness's key, in a wallet of its own in `dir` (see wallet/unattended.ts). */
export async function openWitnessIdentity(dir: string): Promise<WitnessIdentity> {
  const wallet = await openUnattendedWallet(dir, 'witness-wallet', 'WALLET_TAMPERED');
  if (!wallet.listKeys('ed25519').some((k) => k.name === WITNESS_KEY_NAME)) wallet.createKey(WITNESS_KEY_NAME, 'ed25519');
  return { ...wallet.signer(WITNESS_KEY_NAME), close: () => wallet.close() };
}

const ProblemSchema = z.object({ code: z.string(), detail: z.string() });
const ProofSchema = z.object({ proof: z.array(z.string().regex(/^[A-Za-z0-9_-]{43}$/)).max(64) });

const asError = (e: unknown): DkmsError =>
  e instanceof DkmsError ? e : new DkmsError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`);

/** The few calls a witness makes to its node, each bounded in time and abandoned on close. */
class NodeLink {
  readonly #url: string;
  readonly #timeoutMs: number;
  readonly #closing = new AbortController();

  constructor(url: string, timeoutMs: number) {
    this.#url = url.replace(/\/+$/, '');
    this.#timeoutMs = timeoutMs;
  }

  abort(): void {
    this.#closing.abort();
  }

  async #request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    let response: Response;
    let payload: unknown;
    try {
      response = await fetch(`${this.#url}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#timeoutMs)]),
      });
    } catch (e) {
      throw new DkmsError('LEDGER_UNREACHABLE', `cannot reach the ledger node at ${this.#url}: ${e instanceof Error ? e.message : String(e)}`);
    }
    try {
      payload = await response.json();
    } catch {
      throw new DkmsError('LEDGER_BAD_RESPONSE', `the node answered ${method} ${path.split('?')[0] ?? ''} with status ${response.status} and no JSON`);
    }
    if (response.ok) return payload;
    const problem = ProblemSchema.safeParse(payload);
    if (problem.success && Object.hasOwn(ERROR_CODES, problem.data.code))
      throw new DkmsError(problem.data.code as ErrorCode, `the node answered ${method} ${path.split('?')[0] ?? ''}: ${problem.data.detail}`);
    throw new DkmsError('LEDGER_BAD_RESPONSE', `the node answered ${method} ${path.split('?')[0] ?? ''} with status ${response.status}`);
  }

  /**
   * The node's newest head, published or not (a node with witnesses serves a new tree to clients
   * only once they cosigned it): at once if it is larger than `after`, else when one is, or after
   * `waitMs` whatever it is.
   */
  async head(after = -1, waitMs = 0): Promise<ServedHead> {
    const parsed = ServedHeadSchema.safeParse(await this.#request('GET', `/v1/head/next?after=${after}&wait=${waitMs}`));
    if (!parsed.success) throw new DkmsError('LEDGER_BAD_RESPONSE', "the node's tree head is malformed");
    return parsed.data;
  }

  /** The node's consistency proof between two sizes; an error (not a proof that fails) when it will not give one. */
  async consistency(from: number, to: number): Promise<Uint8Array[]> {
    let answer: unknown;
    try {
      answer = await this.#request('GET', `/v1/proofs/consistency?from=${from}&to=${to}`);
    } catch (e) {
      if (e instanceof DkmsError && e.code !== 'LEDGER_UNREACHABLE')
        throw new DkmsError('LEDGER_BAD_RESPONSE', `the node will not prove that its ${from} events are a prefix of its ${to}: ${e.message}`);
      throw e;
    }
    const parsed = ProofSchema.safeParse(answer);
    if (!parsed.success) throw new DkmsError('LEDGER_BAD_RESPONSE', 'the consistency proof is malformed');
    return parsed.data.proof.map((p) => fromBase64url(p));
  }

  async submit(submission: CosignatureSubmission): Promise<void> {
    await this.#request('POST', '/v1/cosignatures', submission);
  }
}

/** The consistency proof `witness` needs for `head` (see Witness.proofNeeded), from the node. */
async function proofFor(link: NodeLink, witness: Witness, head: SignedTreeHead, reported: boolean): Promise<ConsistencyProof | undefined> {
  const needed = witness.proofNeeded(head, reported);
  return needed === undefined ? undefined : { ...needed, hashes: await link.consistency(needed.from, needed.to) };
}

/** Whether the served head carries this witness's cosignature, made less than `ms` ago. */
function holdsRecent(served: ServedHead, key: string, now: number, ms: number): boolean {
  return (served.cosignatures ?? []).some((c) => c.key === key && now - Date.parse(c.time) < ms);
}

/**
 * Starts a witness whose key and state live in `<home>/witness/`: polls the node at once and
 * then every `intervalMs`, and serves its API (loopback by default).
 */
export async function startWitness(home: string, options: WitnessServiceOptions): Promise<RunningWitness> {
  const dir = witnessDir(home);
  const identity = await openWitnessIdentity(dir);
  let witness: Witness;
  try {
    witness = Witness.open(dir, identity, {
      node: options.nodeKey,
      ...(options.maxHeadAgeMs === undefined ? {} : { maxHeadAgeMs: options.maxHeadAgeMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.onEvidence === undefined ? {} : { onEvidence: options.onEvidence }),
    });
  } catch (e) {
    identity.close();
    throw e;
  }
  const now = options.now ?? Date.now;
  const interval = options.intervalMs ?? DEFAULT_INTERVAL_MS;
  const link = new NodeLink(options.ledger, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);

  const round = async (): Promise<PollOutcome> => {
    // Waits at the node for a newer head, but not so long that the cosignature it holds grows old.
    const served = await link.head(witness.last?.size ?? -1, Math.min(interval, witness.maxHeadAgeMs / 4));
    const head = bareHead(served);
    const cosignature = witness.check(head, await proofFor(link, witness, head, false));
    if (holdsRecent(served, witness.key, now(), witness.maxHeadAgeMs / 2)) return { status: 'current', head };
    await link.submit({ ...cosignature, size: head.size, root: head.root, map: head.map });
    return { status: 'cosigned', head, cosignature };
  };

  let rounds: Promise<unknown> = Promise.resolve();
  let lastProblem: ErrorCode | undefined;
  const poll = (): Promise<PollOutcome> => {
    const run = rounds.then(async (): Promise<PollOutcome> => {
      try {
        const outcome = await round();
        lastProblem = undefined;
        return outcome;
      } catch (e) {
        const error = asError(e);
        // Refusals once the node is caught were reported as evidence (onEvidence), once.
        const evidenced = witness.caught && error.code === 'WITNESS_REFUSED';
        if (error.code !== lastProblem && !evidenced) options.onProblem?.(error);
        lastProblem = error.code;
        return { status: 'failed', error };
      }
    });
    rounds = run;
    return run;
  };

  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  // After a good round the next starts at once (it waits at the node); after a failure, a pause.
  const schedule = (delay: number) => {
    if (closed) return;
    timer = setTimeout(() => void poll().then((outcome) => schedule(outcome.status === 'failed' ? interval : 0)), delay);
    timer.unref();
  };

  const app = buildWitnessServer(witness, link, options.rateLimitPerSecond ?? 50);
  let url: string;
  try {
    url = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? DEFAULT_WITNESS_PORT });
  } catch (e) {
    identity.close();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new DkmsError(
        'ADDRESS_IN_USE',
        `${options.host ?? '127.0.0.1'}:${options.port ?? DEFAULT_WITNESS_PORT} is already in use (is another witness running?)`,
      );
    }
    throw e;
  }
  schedule(0);
  let closing: Promise<void> | undefined;
  const close = async () => {
    closed = true;
    clearTimeout(timer);
    // The node's answers are not waited for: the round in progress and reports being checked fail at once.
    link.abort();
    try {
      const graceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
      await Promise.all([settlesWithin(rounds, graceMs), closeWithin(app, graceMs)]);
    } finally {
      identity.close();
    }
  };
  return {
    url,
    witness,
    poll,
    close: () => (closing ??= close()),
  };
}

/** The witness's own API: its state, and heads reported by anyone. */
function buildWitnessServer(witness: Witness, link: NodeLink, rateLimitPerSecond: number): FastifyInstance {
  const app = Fastify({
    logger: false,
    bodyLimit: 4096,
    frameworkErrors: (error, _request, reply) => sendProblem(reply, new DkmsError('BAD_INPUT', `bad request: ${error.message.split('\n')[0] ?? ''}`)),
  });
  installProblemHandlers(app, () => 'BAD_INPUT', 'BAD_INPUT');
  void app.register(rateLimit, { max: rateLimitPerSecond, timeWindow: 1000 });
  void app.register(async (api) => {
    api.get('/v1/witness', async () => ({ key: witness.key, node: witness.node, last: witness.last ?? null, evidence: witness.evidence }));

    // Anyone may report a head a node showed them: a conflicting one becomes evidence. Only the
    // witness's own polling cosigns, so a report can never make it sign a head the node does not serve.
    api.post('/v1/heads', async (request) => {
      const parsed = ServedHeadSchema.safeParse(request.body);
      if (!parsed.success) throw new DkmsError('BAD_INPUT', 'expected a signed tree head: {size, root, map, time, key, sig}');
      const head = bareHead(parsed.data);
      const result = witness.examine(head, await proofFor(link, witness, head, true));
      return { result, last: witness.last ?? null };
    });
  });
  return app;
}

export { DEFAULT_WITNESS_PORT };
