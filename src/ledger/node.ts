/**
 * A ledger node: validates submitted events, orders them, commits them in batches (group
 * commit: whatever arrives while one batch is being written forms the next), extends the
 * Merkle tree, and signs a tree head per batch. Reads come with proofs.
 */
import { canonicalJson, decodePublicKey, fromBase64url, isSmallOrderEd25519, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { isDid, prepareEvent, subjectOf, type EventId, type PreparedEvent, type Subject } from './events.js';
import { signHead, verifyHeadSignature, type SignedTreeHead } from './head.js';
import { consistencyProof, inclusionProof, rootAt } from './merkle.js';
import { Replay, recordLeaf, recordLeafFromCanonical } from './replay.js';
import { OverlayView, ReadAheadView, type LogRecord, type SubjectRecord } from './state.js';
import type { LogStore, StoredEvent } from './store.js';
import { CompactTree } from './tree.js';
import { validateEvent, type Accepted } from './validate.js';
import { VerifyPool } from './verify-pool.js';

export interface NodeSigner {
  /** The node's Ed25519 public key, multibase. */
  readonly key: string;
  sign(message: Uint8Array): Uint8Array;
}

export interface Receipt {
  readonly id: EventId;
  readonly subject: Subject;
  readonly seq: number;
  readonly gseq: number;
  readonly time: string;
}

export type SubmitResult = { readonly ok: true; readonly receipt: Receipt } | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

interface Pending {
  readonly raw: unknown;
  readonly resolve: (receipt: Receipt) => void;
  readonly reject: (error: unknown) => void;
}

interface Batch {
  readonly batch: Pending[];
  readonly ready: Promise<Prepared[]>;
}

/** A submission parsed, with its signatures' results when the workers checked them. */
interface Prepared {
  readonly pending: Pending;
  readonly prepared: PreparedEvent;
  verified?: boolean[];
}

export interface NodeOptions {
  /** Clock in milliseconds; ledger time never goes backwards, whatever it says. */
  readonly now?: () => number;
  readonly maxBatch?: number;
  /** Worker threads that check signatures; 0 (the default) checks them on the node's own thread. */
  readonly verifyThreads?: number;
}

/** Below this many signatures in a batch, handing them to workers costs more than it saves. */
const POOL_THRESHOLD = 16;

const LEAF_CHUNK = 20_000;
/** Tries to place one batch when other nodes sharing the store keep appending first. */
const MAX_CONFLICTS = 100;
/** Subject records a node keeps in memory for validation. */
const RECORD_CACHE_LIMIT = 4_096;

function asError(e: unknown): DkmsError {
  if (e instanceof DkmsError) return e;
  return new DkmsError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

export class LedgerNode {
  readonly store: LogStore;
  readonly #signer: NodeSigner;
  readonly #tree: CompactTree;
  readonly #now: () => number;
  readonly #maxBatch: number;
  readonly #pool: VerifyPool | undefined;
  #head: SignedTreeHead;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #lastTime: string;
  #lock: Promise<void> = Promise.resolve();
  /**
   * Subject records as of the log's first `tree.size` events (or later: a record read ahead of
   * that only makes the next append conflict). Validation reads them here instead of the store;
   * an append's compare-and-swap on the log's size proves they were current.
   */
  readonly #records = new Map<Subject, SubjectRecord | undefined>();

  private constructor(store: LogStore, signer: NodeSigner, tree: CompactTree, head: SignedTreeHead, options: NodeOptions) {
    this.store = store;
    this.#signer = signer;
    this.#tree = tree;
    this.#head = head;
    this.#lastTime = head.time;
    this.#now = options.now ?? Date.now;
    this.#maxBatch = Math.min(options.maxBatch ?? 256, store.maxBatch ?? Number.MAX_SAFE_INTEGER);
    this.#pool = (options.verifyThreads ?? 0) > 0 ? new VerifyPool(options.verifyThreads) : undefined;
  }

  /** Opens a node over a store, rebuilding the Merkle tree and checking it against the last signed head. */
  static async open(store: LogStore, signer: NodeSigner, options: NodeOptions = {}): Promise<LedgerNode> {
    // The head first: with other nodes appending, it and the leaves below it stay consistent
    // (a head and its size are written together, leaves never change); the rest is caught up later.
    let head = await store.latestHead();
    const size = head?.size ?? (await store.size());
    const tree = new CompactTree();
    for (let from = 0; from < size; from += LEAF_CHUNK) {
      const leaves = await store.leaves(from, Math.min(size, from + LEAF_CHUNK));
      tree.commit(tree.pending(leaves), from + leaves.length);
    }
    const root = toBase64url(tree.root());
    if (head !== undefined && (head.size !== size || head.root !== root || !verifyHeadSignature(head))) {
      throw new DkmsError('LEDGER_STORE_DAMAGED', `the log (size ${size}) does not match its last signed tree head (size ${head.size}): run 'dkms ledger verify'`);
    }
    const time = new Date((options.now ?? Date.now)()).toISOString();
    if (head === undefined || head.key !== signer.key) head = signHead({ size, root, time: head?.time ?? time }, signer.key, (m) => signer.sign(m));
    return new LedgerNode(store, signer, tree, head, options);
  }

  get key(): string {
    return this.#signer.key;
  }

  get size(): number {
    return this.#tree.size;
  }

  head(): SignedTreeHead {
    return this.#head;
  }

  /** Submits one event; resolves once it is durable, or rejects with the validation code. */
  submit(raw: unknown): Promise<Receipt> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ raw, resolve, reject });
      this.#schedule();
    });
  }

  /** Submits several events, in order; each is accepted or refused on its own, seeing the ones before it. */
  async submitMany(raws: readonly unknown[]): Promise<SubmitResult[]> {
    const settled = await Promise.allSettled(raws.map((raw) => this.submit(raw)));
    return settled.map((s) => (s.status === 'fulfilled' ? { ok: true, receipt: s.value } : { ok: false, error: { code: asError(s.reason).code, message: asError(s.reason).message } }));
  }

  #schedule(): void {
    if (this.#flushing !== undefined) return;
    this.#flushing = (async () => {
      // Let every submission of this turn of the event loop join the batch.
      await new Promise((resolve) => setImmediate(resolve));
      let current = this.#take();
      while (current !== undefined) {
        const { batch, ready } = current;
        let next: Batch | undefined;
        try {
          const prepared = await ready;
          // Parsing and signature checks need no state: the next batch's run on the workers
          // while this one is validated and written.
          next = this.#take();
          await this.#commit(prepared);
        } catch (e) {
          // A bug must not leave submitters waiting forever; settled promises ignore this.
          for (const pending of batch) pending.reject(asError(e));
        }
        current = next ?? this.#take();
      }
    })().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0) this.#schedule();
    });
  }

  /** The next batch from the queue, its preparation started. */
  #take(): Batch | undefined {
    if (this.#queue.length === 0) return undefined;
    const batch = this.#queue.splice(0, this.#maxBatch);
    const ready = this.#prepare(batch);
    // Awaited later; a failure must not surface as an unhandled rejection meanwhile.
    ready.catch(() => undefined);
    return { batch, ready };
  }

  #nextTime(): string {
    const now = new Date(this.#now()).toISOString();
    this.#lastTime = now > this.#lastTime ? now : this.#lastTime;
    return this.#lastTime;
  }

  /** Parses the batch and, with a pool, checks all its signatures on the worker threads at once. */
  async #prepare(batch: readonly Pending[]): Promise<Prepared[]> {
    const ready: Prepared[] = [];
    for (const pending of batch) {
      try {
        ready.push({ pending, prepared: prepareEvent(pending.raw) });
      } catch (e) {
        pending.reject(asError(e));
      }
    }
    const jobs = ready.flatMap(({ prepared }) =>
      prepared.event.sigs.map(({ kid, sig }) => ({ key: decodePublicKey(kid, 'ed25519').publicKey, message: prepared.signingBytes, signature: fromBase64url(sig) })),
    );
    if (this.#pool === undefined || jobs.length < POOL_THRESHOLD) return ready;
    // Workers run bare node:crypto: small-order keys are refused here, as ed25519Verify does.
    const results = (await this.#pool.verify(jobs)).map((ok, i) => ok && !isSmallOrderEd25519(jobs[i]?.key ?? new Uint8Array()));
    let offset = 0;
    for (const item of ready) {
      item.verified = results.slice(offset, offset + item.prepared.event.sigs.length);
      offset += item.prepared.event.sigs.length;
    }
    return ready;
  }

  /**
   * Brings the tree and head up to the store: other nodes sharing the store may have appended.
   * Their events were validated by them and are verified by any client; this node only hashes
   * them into its tree and signs a head of its own over the new size.
   */
  async #catchUp(): Promise<void> {
    const size = await this.store.size();
    if (size <= this.#tree.size) return;
    let last: LogRecord | undefined;
    for (let from = this.#tree.size; from < size; from += LEAF_CHUNK) {
      const to = Math.min(size, from + LEAF_CHUNK);
      const [leaves, records] = await Promise.all([this.store.leaves(from, to), this.store.range(from, to)]);
      if (leaves.length !== to - from || records.length !== to - from) throw new DkmsError('LEDGER_STORE_DAMAGED', `the store lists ${leaves.length} leaves and ${records.length} events for events ${from}..${to - 1}`);
      // Other nodes changed these subjects: what this node remembers of them is out of date.
      for (const record of records) this.#records.delete(subjectOf(record.event));
      this.#tree.commit(this.#tree.pending(leaves), to);
      last = records.at(-1);
    }
    if (last !== undefined && last.time > this.#lastTime) this.#lastTime = last.time;
    this.#head = signHead({ size, root: toBase64url(this.#tree.root()), time: last?.time ?? this.#lastTime }, this.#signer.key, (m) => this.#signer.sign(m));
  }

  /**
   * This node's signature on the head of the log's first `size` events. Its time is the time of
   * the last of them, so every node that signs the same size signs the same head: a client that
   * wants k of n nodes to vouch for a head collects their signatures on exactly this.
   */
  async headAt(size: number): Promise<SignedTreeHead> {
    if (!Number.isInteger(size) || size < 1 || size > this.size) throw new DkmsError('BAD_INPUT', `size must be 1 to ${this.size}`);
    if (size === this.#head.size) return this.#head;
    const [last] = await this.store.range(size - 1, size);
    if (last === undefined) throw new DkmsError('LEDGER_STORE_DAMAGED', `event ${size - 1} is missing from the store`);
    return signHead({ size, root: toBase64url(rootAt(size, this.#tree.read)), time: last.time }, this.#signer.key, (m) => this.#signer.sign(m));
  }

  /**
   * Validates and appends a batch at the end of the log. When another node sharing the store
   * appended first (LEDGER_CONFLICT), it catches up and validates the batch again against the
   * new state: an event is never accepted against a state that is not the log's latest.
   */
  async #commit(batch: readonly Prepared[]): Promise<void> {
    return this.#exclusive(() => this.#commitNow(batch));
  }

  /** The store's records through this node's memory of them. */
  readonly #cachedView = {
    subject: async (subject: Subject): Promise<SubjectRecord | undefined> => {
      if (this.#records.has(subject)) return this.#records.get(subject);
      const record = await this.store.subject(subject);
      this.#remember(subject, record);
      return record;
    },
    eventAt: (subject: Subject, seq: number) => this.store.eventAt(subject, seq),
  };

  #remember(subject: Subject, record: SubjectRecord | undefined): void {
    if (this.#records.size >= RECORD_CACHE_LIMIT) this.#records.clear();
    this.#records.set(subject, record);
  }

  /** Runs `fn` alone: the tree and head change only under this lock. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Catches up with what other nodes sharing the store appended; the head this node now signs. */
  refresh(): Promise<SignedTreeHead> {
    return this.#exclusive(async () => {
      await this.#catchUp();
      return this.#head;
    });
  }

  async #commitNow(batch: readonly Prepared[]): Promise<void> {
    let remaining = batch;
    for (let attempt = 1; ; attempt++) {
      // Optimistic: append at the size this node knows; the store refuses if the log grew.
      if (attempt > 1) await this.#catchUp();
      const outcome = await this.#tryCommit(remaining);
      if (outcome === 'done') return;
      remaining = outcome;
      if (attempt >= MAX_CONFLICTS) {
        const error = new DkmsError('LEDGER_CONFLICT', `other ledger nodes kept appending first (${attempt} tries); resubmit`);
        for (const { pending } of remaining) pending.reject(error);
        return;
      }
      // A short random pause, so that nodes that keep colliding stop doing it in step.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(20, attempt * 2)));
    }
  }

  /**
   * One attempt, validated against this node's memory of the records, which may be behind the
   * log: a refusal is final only once the log is known not to have grown (the append's
   * compare-and-swap succeeded, or, with nothing to append, the store's size says so).
   * Returns 'done', or the whole batch to try again after catching up.
   */
  async #tryCommit(batch: readonly Prepared[]): Promise<'done' | Prepared[]> {
    const ahead = new ReadAheadView(this.#cachedView);
    await ahead.readAhead(batch.flatMap(({ prepared: { event, subject } }) => (event.type === 'did.create' ? [subject, event.policy as Subject] : [subject])));
    const overlay = new OverlayView(ahead);
    const time = this.#nextTime();
    const accepted: { item: Prepared; accepted: Accepted; gseq: number }[] = [];
    const refused: { item: Prepared; error: DkmsError }[] = [];
    for (const item of batch) {
      const { pending, prepared, verified } = item;
      const gseq = this.#tree.size + accepted.length;
      try {
        const result = await validateEvent(pending.raw, overlay, { gseq, time }, { prepared, ...(verified === undefined ? {} : { verified }) });
        overlay.put(result.record, result.event);
        accepted.push({ item, accepted: result, gseq });
      } catch (e) {
        refused.push({ item, error: asError(e) });
      }
    }
    const refuse = () => {
      for (const { item, error } of refused) item.pending.reject(error);
    };
    if (accepted.length === 0) {
      if ((await this.store.size()) !== this.#tree.size) return [...batch];
      refuse();
      return 'done';
    }

    const events: StoredEvent[] = accepted.map(({ accepted: a, gseq }) => {
      const record: LogRecord = { gseq, time, event: a.event };
      return { record, id: a.id, subject: a.subject, canonical: a.canonical, leaf: recordLeafFromCanonical(record, a.canonical) };
    });
    const nodes = this.#tree.pending(events.map((e) => e.leaf));
    const size = this.#tree.size + events.length;
    const head = signHead({ size, root: toBase64url(this.#tree.rootWith(size, nodes)), time }, this.#signer.key, (m) => this.#signer.sign(m));
    try {
      await this.store.append({ events, subjects: overlay.changed(), head });
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'LEDGER_CONFLICT') return [...batch];
      refuse();
      for (const { item } of accepted) item.pending.reject(asError(e));
      return 'done';
    }
    this.#tree.commit(nodes, size);
    this.#head = head;
    for (const record of overlay.changed()) this.#remember(record.subject, record);
    refuse();
    for (const { item, accepted: a, gseq } of accepted) {
      item.pending.resolve({ id: a.id, subject: a.subject, seq: a.event.seq, gseq, time });
    }
    return 'done';
  }

  /** Waits until everything submitted so far is committed or refused. */
  async drain(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  // Reads

  subject(subject: Subject): Promise<SubjectRecord | undefined> {
    return this.store.subject(subject);
  }

  /**
   * The events a verifier needs for `subject`: its own chain and, for a DID, its controlling
   * policy's chain, merged in log order, up to global sequence number `untilGseq` (exclusive).
   */
  async history(subject: Subject, untilGseq?: number): Promise<LogRecord[]> {
    const own = await this.store.subjectLog(subject, untilGseq);
    if (!isDid(subject) || own.length === 0) return own;
    const first = own[0]?.event;
    const controller = first?.type === 'did.create' ? first.policy : undefined;
    if (controller === undefined) return own;
    const policy = await this.store.subjectLog(controller as Subject, untilGseq);
    return [...own, ...policy].sort((a, b) => a.gseq - b.gseq);
  }

  /**
   * The subject's record as of a point: the state after every event with gseq < `untilGseq`.
   * The present is read from the store; the past is rebuilt by replaying the subject's events.
   */
  async stateAt(subject: Subject, untilGseq: number): Promise<SubjectRecord | undefined> {
    if (untilGseq >= this.size) {
      const record = await this.store.subject(subject);
      if (record === undefined || record.updated.gseq < untilGseq) return record;
    }
    const replay = new Replay();
    await replay.applyAll(await this.history(subject, untilGseq));
    return replay.view.subject(subject);
  }

  /** The global sequence number just past the last event accepted at or before `time`. */
  async gseqAtTime(time: string): Promise<number> {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const [record] = await this.store.range(mid, mid + 1);
      if (record !== undefined && record.time <= time) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  range(from: number, to: number): Promise<LogRecord[]> {
    return this.store.range(from, Math.min(to, this.size));
  }

  inclusionProof(gseq: number, size = this.size): string[] {
    return inclusionProof(gseq, size, this.#tree.read).map(toBase64url);
  }

  consistencyProof(from: number, to = this.size): string[] {
    return consistencyProof(from, to, this.#tree.read).map(toBase64url);
  }

  /**
   * Rebuilds every subject record from the log alone and compares it with the stored state.
   * With `write`, replaces the stored state with the rebuilt one.
   */
  async reindex(write: boolean): Promise<{ events: number; subjects: number; differences: string[] }> {
    await this.drain();
    const replay = new Replay();
    const size = this.size;
    for (let from = 0; from < size; from += LEAF_CHUNK) {
      await replay.applyAll(await this.store.range(from, Math.min(size, from + LEAF_CHUNK)));
    }
    const rebuilt = new Map(replay.records().map((r) => [r.subject, canonicalJson(r)]));
    const stored = new Map((await this.store.subjects()).map((r) => [r.subject, canonicalJson(r)]));
    const differences = [...new Set([...rebuilt.keys(), ...stored.keys()])].filter((s) => rebuilt.get(s) !== stored.get(s)).sort();
    if (write) {
      await this.store.replaceSubjects(replay.records());
      this.#records.clear();
    }
    return { events: size, subjects: rebuilt.size, differences };
  }

  /**
   * Audits the whole log: re-validates every event from inception (chains, signatures,
   * authority), recomputes every leaf and the Merkle root, checks the signed head, and
   * compares the stored state. Returns the problems found (none for a sound ledger).
   */
  async verify(): Promise<{ events: number; problems: string[] }> {
    await this.drain();
    const problems: string[] = [];
    const check = new CompactTree();
    const size = this.size;
    const replay = new Replay();
    for (let from = 0; from < size; from += LEAF_CHUNK) {
      const records = await this.store.range(from, Math.min(size, from + LEAF_CHUNK));
      const stored = await this.store.leaves(from, from + records.length);
      records.forEach((record, i) => {
        if (record.gseq !== from + i) problems.push(`event ${from + i}: missing from the log`);
        const leaf = recordLeaf(record);
        if (toBase64url(leaf) !== toBase64url(stored[i] ?? new Uint8Array())) problems.push(`event ${record.gseq}: stored leaf hash does not match the event`);
      });
      for (const record of records) {
        try {
          await replay.apply(record);
        } catch (e) {
          problems.push(`event ${record.gseq}: ${asError(e).code}: ${asError(e).message}`);
        }
      }
      check.commit(check.pending(records.map(recordLeaf)), from + records.length);
    }
    const head = this.#head;
    if (!verifyHeadSignature(head)) problems.push('the latest tree head signature does not verify');
    if (head.size !== size || head.root !== toBase64url(check.root())) problems.push(`the Merkle root of the ${size} events does not match the signed tree head`);
    const { differences } = await this.reindex(false);
    for (const subject of differences) problems.push(`${subject}: stored state differs from the state the log implies`);
    return { events: size, problems };
  }

  async close(): Promise<void> {
    await this.drain();
    await this.#pool?.close();
    await this.store.close();
  }
}

