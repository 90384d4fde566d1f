/**
 * A ledger node: validates submitted events, orders them, commits them in batches (group
 * commit: whatever arrives while one batch is being written forms the next), extends the
 * Merkle tree, and signs a tree head per batch. Reads come with proofs.
 */
import { canonicalJson, decodePublicKey, fromBase64url, isSmallOrderEd25519, toBase64url, type Signer } from '../crypto/index.js';
import { settlesWithin } from '../bounded.js';
import { DkmsError } from '../errors.js';
import { isDid, prepareEvent, subjectOf, type Did, type EventId, type PolicyAddress, type PreparedEvent, type Subject } from './events.js';
import { MapVersions, type MapUndo } from './map-versions.js';
import { MemoryDerived, StoredDerived, type Derived, type DerivedRecord, type PreparedDerived } from './derived.js';
import { signHead, verifyCosignature, verifyHeadSignature, type Cosignature, type ServedHead, type SignedTreeHead } from './head.js';
import { MAP_EMPTY, mapKey, mapProof, mapRoot, updateMap, MemoryMapNodes, type MapProof } from './map.js';
import { CompactTree } from './tree.js';
import { consistencyProof, inclusionProof, type RangeMemo } from './merkle.js';
import { Replay, recordLeaf, recordLeafFromCanonical } from './replay.js';
import { OverlayView, ReadAheadView, type LogRecord, type SubjectRecord } from './state.js';
import type { AppendBatch, LogStore, StoredEvent } from './store.js';
import { validateEvent, type Accepted } from './validate.js';
import { VerifyPool } from './verify-pool.js';
import { retry } from '../retry.js';

export interface Receipt {
  readonly id: EventId;
  readonly subject: Subject;
  readonly seq: number;
  readonly gseq: number;
  readonly time: string;
}

export type SubmitResult =
  { readonly ok: true; readonly receipt: Receipt } | { readonly ok: false; readonly error: { readonly code: string; readonly message: string } };

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
  /**
   * The node signs its head again when it is this old, even with nothing new (default 5 s), so
   * clients can tell a current head from a replayed one. 0 turns the timer off (tests).
   */
  readonly headIntervalMs?: number;
  /**
   * Witness keys whose cosignatures the node accepts and serves with its heads. With witnesses,
   * a new tree is published (served to clients) once `witnessQuorum` of them cosigned it, or
   * once it waited `witnessWaitMs` (default 2 s) without; appends are acknowledged meanwhile.
   */
  readonly witnessKeys?: readonly string[];
  /** Cosignatures a new tree waits for (default: every witness key). */
  readonly witnessQuorum?: number;
  readonly witnessWaitMs?: number;
}

/** A cosignature as a witness submits it: for the head it names by size and roots. */
export interface CosignatureSubmission extends Cosignature {
  readonly size: number;
  readonly root: string;
  readonly map: string;
}

/** A consistent view for one read: the head, and map proofs under it. */
export interface Snapshot {
  readonly head: ServedHead;
  mapProof(subject: Subject): MapProof;
  /** The subject's entry in the map under `head`, if it has one. */
  entry(subject: Subject): { seq: number; gseq: number } | undefined;
}

/** Below this many signatures in a batch, handing them to workers costs more than it saves. */
const POOL_THRESHOLD = 16;

const LEAF_CHUNK = 20_000;
const DEFAULT_HEAD_INTERVAL_MS = 5_000;
const DEFAULT_WITNESS_WAIT_MS = 2_000;
/** Unpublished heads kept for witnesses to cosign; older ones are dropped (a newer one will do). */
const CANDIDATE_LIMIT = 1_024;

const treeId = (head: { size: number; root: string; map: string }): string => `${head.size}:${head.root}:${head.map}`;
/** Tries to place one batch when other nodes sharing the store keep appending first. */
const MAX_CONFLICTS = 100;
/** How long `close` waits for the batches in flight when the store stops answering. */
const DEFAULT_CLOSE_GRACE_MS = 5_000;
/** Subject records a node keeps in memory for validation. */
const RECORD_CACHE_LIMIT = 4_096;
/** DIDs whose controlling policy is remembered (a warm DID read then reads nothing from the store). */
const CONTROLLER_CACHE_LIMIT = 65_536;

const derivedRecord = (record: LogRecord): DerivedRecord => ({
  gseq: record.gseq,
  subject: subjectOf(record.event),
  seq: record.event.seq,
  leaf: recordLeaf(record),
});

function asError(e: unknown): DkmsError {
  if (e instanceof DkmsError) return e;
  return new DkmsError('INTERNAL', `unexpected error: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
}

/** An attempt to commit that other nodes' appends got ahead of (#commitNow tries again). */
const OUTRUN = Symbol('outrun');

export class LedgerNode {
  readonly store: LogStore;
  readonly #signer: Signer;
  readonly #derived: Derived;
  readonly #now: () => number;
  readonly #headIntervalMs: number;
  readonly #witnessKeys: ReadonlySet<string>;
  readonly #witnessQuorum: number;
  readonly #witnessWaitMs: number;
  /** Cosignatures by tree (published or candidate), each witness's latest. */
  readonly #cosignatures = new Map<string, Map<string, Cosignature>>();
  /** Heads signed after the published one, waiting for witnesses: oldest first, with when they were made. */
  #candidates: { head: SignedTreeHead; since: number }[] = [];
  /** Times of heads signed for batches written but not yet durable (so not yet offered), oldest first. */
  #inFlight: string[] = [];
  /** The map as of the published head, while newer batches are not published yet. */
  readonly #versions = new MapVersions();
  /** Witnesses waiting for a head newer than a size. */
  #waiters: { after: number; resolve: () => void }[] = [];
  #servedHead: ServedHead | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #maxBatch: number;
  readonly #pool: VerifyPool | undefined;
  #head: SignedTreeHead;
  /** When the served head was signed, in milliseconds (parsed once). */
  #headAt = 0;
  #queue: Pending[] = [];
  /** Every submission not answered yet: queued, in a batch being written, or waiting for the disk. */
  readonly #outstanding = new Set<Pending>();
  #flushing: Promise<void> | undefined;
  #lastTime: string;
  #lock: Promise<void> = Promise.resolve();
  /** Settles once every batch written so far is durable and answered. */
  #durable: Promise<void> = Promise.resolve();
  /** Set when a written batch could not be made durable: the node takes nothing more. */
  #broken: DkmsError | undefined;
  /**
   * Subject records as of the log's first `tree.size` events (or later: a record read ahead of
   * that only makes the next append conflict). Validation reads them here instead of the store;
   * an append's compare-and-swap on the log's size proves they were current.
   */
  readonly #records = new Map<Subject, SubjectRecord | undefined>();
  /** The policy controlling each DID read lately: fixed by the DID's inception, never out of date. */
  readonly #controllers = new Map<Did, PolicyAddress>();

  private constructor(store: LogStore, signer: Signer, derived: Derived, lastTime: string, options: NodeOptions) {
    this.store = store;
    this.#signer = signer;
    this.#derived = derived;
    this.#lastTime = lastTime;
    this.#now = options.now ?? Date.now;
    this.#headIntervalMs = options.headIntervalMs ?? DEFAULT_HEAD_INTERVAL_MS;
    this.#witnessKeys = new Set(options.witnessKeys ?? []);
    this.#witnessQuorum = Math.min(options.witnessQuorum ?? this.#witnessKeys.size, this.#witnessKeys.size);
    this.#witnessWaitMs = options.witnessWaitMs ?? DEFAULT_WITNESS_WAIT_MS;
    this.#head = this.#sign();
    this.#headAt = Date.parse(this.#head.time);
    this.#maxBatch = Math.min(options.maxBatch ?? 256, store.maxBatch ?? Number.MAX_SAFE_INTEGER);
    this.#pool = (options.verifyThreads ?? 0) > 0 ? new VerifyPool(options.verifyThreads) : undefined;
    if (this.#headIntervalMs > 0) {
      this.#timer = setInterval(() => void this.refresh().catch(() => undefined), Math.max(50, Math.floor(this.#headIntervalMs / 2)));
      this.#timer.unref();
    }
  }

  /**
   * Opens a node over a store. With a store that keeps derived data, that takes constant time
   * (after a one-time catch-up when an older file is first opened); otherwise the Merkle tree and
   * the map are rebuilt from the log. Either way they are checked against the last stored head.
   */
  static async open(store: LogStore, signer: Signer, options: NodeOptions = {}): Promise<LedgerNode> {
    // The head first: with other nodes appending, it and the events below it stay consistent
    // (a head and its size are written together, events never change); the rest is caught up later.
    const stored = await store.latestHead();
    const size = stored?.size ?? (await store.size());
    const derived = store.derived === undefined ? new MemoryDerived() : new StoredDerived(store.derived);
    if (derived.size > size)
      throw new DkmsError('LEDGER_STORE_DAMAGED', `the store's derived data covers ${derived.size} events but its log has ${size}: run 'dkms ledger verify'`);
    let lastTime = new Date(0).toISOString();
    for (let from = derived.size; from < size; from += LEAF_CHUNK) {
      const records = await store.range(from, Math.min(size, from + LEAF_CHUNK));
      const prepared = derived.prepare(records.map(derivedRecord));
      if (derived instanceof StoredDerived) derived.write(prepared);
      else derived.commit(prepared);
      lastTime = records.at(-1)?.time ?? lastTime;
    }
    if (size > 0 && lastTime === new Date(0).toISOString()) lastTime = (await store.range(size - 1, size))[0]?.time ?? lastTime;
    const root = toBase64url(derived.root());
    const map = toBase64url(derived.mapRoot());
    if (stored !== undefined && (stored.size !== size || stored.root !== root || (stored.map !== undefined && stored.map !== map))) {
      throw new DkmsError(
        'LEDGER_STORE_DAMAGED',
        `the log (size ${size}) does not match its last signed tree head (size ${stored.size}): run 'dkms ledger verify'`,
      );
    }
    return new LedgerNode(store, signer, derived, lastTime, options);
  }

  /** A fresh signature on the current tree, at the current ledger time. */
  #sign(): SignedTreeHead {
    const head = { size: this.#derived.size, root: toBase64url(this.#derived.root()), map: toBase64url(this.#derived.mapRoot()), time: this.#nextTime() };
    return signHead(head, this.#signer);
  }

  get key(): string {
    return this.#signer.multikey;
  }

  get size(): number {
    return this.#derived.size;
  }

  /** The published head (what clients are served), without cosignatures. */
  head(): SignedTreeHead {
    return this.#head;
  }

  /** The published head with the cosignatures this node holds for its tree. */
  servedHead(): ServedHead {
    if (this.#servedHead === undefined) {
      const head = this.#head;
      const cosignatures = [...(this.#cosignatures.get(treeId(head))?.values() ?? [])];
      this.#servedHead = cosignatures.length === 0 ? head : { ...head, cosignatures };
    }
    return this.#servedHead;
  }

  /** The newest head, published or not: what witnesses check and cosign. */
  latestHead(): ServedHead {
    const newest = this.#candidates.at(-1)?.head;
    if (newest === undefined) return this.servedHead();
    const cosignatures = [...(this.#cosignatures.get(treeId(newest))?.values() ?? [])];
    return cosignatures.length === 0 ? newest : { ...newest, cosignatures };
  }

  /** Resolves with the newest head once it is larger than `after`, or after `waitMs` whatever it is. */
  async nextHead(after: number, waitMs: number): Promise<ServedHead> {
    if (this.latestHead().size <= after && waitMs > 0 && !this.#closed) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          resolve();
        }, waitMs);
        timer.unref();
        const waiter = { after, resolve: () => (clearTimeout(timer), resolve()) };
        this.#waiters.push(waiter);
      });
    }
    return this.latestHead();
  }

  /** How many requests wait for a newer head now (`nextHead`). */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Answers every witness waiting for a newer head now, with the head there is (when the server stops). */
  wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  #setHead(head: SignedTreeHead): void {
    this.#head = head;
    this.#headAt = Date.parse(head.time);
    this.#servedHead = undefined;
  }

  /**
   * A new head: published at once without witnesses; with them, kept as a candidate until
   * enough witnesses cosigned it (or a newer one), or until it waited too long.
   */
  #offer(head: SignedTreeHead): void {
    if (this.#witnessKeys.size === 0) {
      this.#publish(head);
    } else {
      if (this.#candidates.length === 0) {
        // Published without them if the witnesses do not answer in time.
        setTimeout(() => this.#maybePublish(), this.#witnessWaitMs).unref();
      }
      this.#candidates.push({ head, since: this.#now() });
      if (this.#candidates.length > CANDIDATE_LIMIT) this.#candidates.splice(0, this.#candidates.length - CANDIDATE_LIMIT);
      this.#maybePublish();
    }
    const size = this.latestHead().size;
    const ready = this.#waiters.filter((w) => size > w.after);
    this.#waiters = this.#waiters.filter((w) => size <= w.after);
    for (const waiter of ready) waiter.resolve();
  }

  #publish(head: SignedTreeHead): void {
    this.#setHead(head);
    this.#candidates = this.#candidates.filter((c) => c.head.size > head.size);
    this.#versions.prune(head.size);
    const keep = new Set([treeId(head), ...this.#candidates.map((c) => treeId(c.head))]);
    for (const id of this.#cosignatures.keys()) if (!keep.has(id)) this.#cosignatures.delete(id);
  }

  /** Publishes the newest candidate enough witnesses cosigned; or the newest one, once the oldest waited too long. */
  #maybePublish(): void {
    for (let i = this.#candidates.length - 1; i >= 0; i--) {
      const candidate = this.#candidates[i];
      if (candidate !== undefined && (this.#cosignatures.get(treeId(candidate.head))?.size ?? 0) >= this.#witnessQuorum) {
        this.#publish(candidate.head);
        return;
      }
    }
    const oldest = this.#candidates[0];
    const newest = this.#candidates.at(-1);
    if (oldest !== undefined && newest !== undefined && this.#now() - oldest.since >= this.#witnessWaitMs) this.#publish(newest.head);
  }

  /**
   * Takes a witness's cosignature of the published tree or of a newer one not yet published.
   * Refused (WITNESS_REFUSED) from a key this node was not told to accept, for any other tree,
   * or with a signature that does not verify.
   */
  addCosignature(submission: CosignatureSubmission): void {
    if (!this.#witnessKeys.has(submission.key)) throw new DkmsError('WITNESS_REFUSED', `${submission.key} is not a witness this node accepts`);
    const id = treeId(submission);
    const head = treeId(this.#head) === id ? this.#head : this.#candidates.find((c) => treeId(c.head) === id)?.head;
    if (head === undefined)
      throw new DkmsError(
        'WITNESS_REFUSED',
        `the cosignature is for a tree of ${submission.size} events this node does not serve (it serves ${this.#head.size}, newest ${this.latestHead().size})`,
      );
    const cosignature: Cosignature = { key: submission.key, time: submission.time, sig: submission.sig };
    if (!verifyCosignature(head, cosignature)) throw new DkmsError('WITNESS_REFUSED', `the cosignature by ${submission.key} does not verify`);
    let byWitness = this.#cosignatures.get(id);
    if (byWitness === undefined) this.#cosignatures.set(id, (byWitness = new Map()));
    const known = byWitness.get(submission.key);
    if (known !== undefined && known.time >= submission.time) return;
    byWitness.set(submission.key, cosignature);
    if (head === this.#head) this.#servedHead = undefined;
    else this.#maybePublish();
  }

  /**
   * A consistent view for a read: the published head and map proofs under it. Waits while an
   * append is half taken in (the store has it, this node's view not yet), a few microtasks.
   */
  async snapshot(): Promise<Snapshot> {
    if (this.#headOverdue()) await this.refresh();
    while (!this.#derived.settled()) await this.refresh();
    const head = this.servedHead();
    const nodes = this.#versions.at(head.size, this.#derived.mapNodes);
    // A read asks for a subject's entry and then its proof: one walk down the map serves both.
    const proofs = new Map<Subject, MapProof>();
    const proofOf = (subject: Subject): MapProof => {
      let proof = proofs.get(subject);
      if (proof === undefined) proofs.set(subject, (proof = this.#derived.reading(() => mapProof(nodes, mapKey(subject)))));
      return proof;
    };
    return {
      head,
      mapProof: proofOf,
      entry: (subject) => {
        const { entry } = proofOf(subject);
        return entry === undefined ? undefined : { seq: entry.seq, gseq: entry.gseq };
      },
    };
  }

  /** Submits one event; resolves once it is durable, or rejects with the validation code. */
  submit(raw: unknown): Promise<Receipt> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (this.#closed) return Promise.reject(new DkmsError('LEDGER_STORE_UNAVAILABLE', 'the ledger node is closing: submit to it again once it is back'));
    return new Promise((resolve, reject) => {
      // Kept until answered, so that a close that gives up on the store can answer it (close).
      const pending: Pending = {
        raw,
        resolve: (receipt) => {
          this.#outstanding.delete(pending);
          resolve(receipt);
        },
        reject: (error) => {
          this.#outstanding.delete(pending);
          reject(error);
        },
      };
      this.#outstanding.add(pending);
      this.#queue.push(pending);
      this.#schedule();
    });
  }

  /** Submits several events, in order; each is accepted or refused on its own, seeing the ones before it. */
  async submitMany(raws: readonly unknown[]): Promise<SubmitResult[]> {
    const settled = await Promise.allSettled(raws.map((raw) => this.submit(raw)));
    return settled.map((s) =>
      s.status === 'fulfilled' ? { ok: true, receipt: s.value } : { ok: false, error: { code: asError(s.reason).code, message: asError(s.reason).message } },
    );
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
      prepared.event.sigs.map(({ kid, sig }) => ({
        key: decodePublicKey(kid, 'ed25519').publicKey,
        message: prepared.signingBytes,
        signature: fromBase64url(sig),
      })),
    );
    if (this.#pool === undefined || !this.#pool.usable || jobs.length < POOL_THRESHOLD) return ready;
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
    if (size <= this.#derived.size) return;
    for (let from = this.#derived.size; from < size; from += LEAF_CHUNK) {
      const to = Math.min(size, from + LEAF_CHUNK);
      const records = await this.store.range(from, to);
      if (records.length !== to - from) throw new DkmsError('LEDGER_STORE_DAMAGED', `the store lists ${records.length} events for events ${from}..${to - 1}`);
      // Other nodes changed these subjects: what this node remembers of them is out of date.
      for (const record of records) this.#records.delete(subjectOf(record.event));
      // A store that keeps derived data has it already, written with their appends.
      if (!(this.#derived instanceof StoredDerived)) this.#install(this.#derived.prepare(records.map(derivedRecord)));
      const last = records.at(-1);
      if (last !== undefined && last.time > this.#lastTime) this.#lastTime = last.time;
    }
    if (this.#derived instanceof StoredDerived) {
      // Another node rewrote the stored map: older versions of it are gone, so publish at once.
      this.#derived.adopt();
      this.#candidates = [];
      this.#publish(this.#sign());
    } else {
      this.#offer(this.#sign());
    }
  }

  /** Makes derived data current, keeping what it overwrites while an older head is served. */
  #install(prepared: PreparedDerived, undo: MapUndo | undefined = this.#undo(prepared)): void {
    this.#derived.commit(prepared);
    if (undo !== undefined) this.#versions.install(undo);
  }

  /**
   * What a batch overwrites in the map: needed when the served head can lag the map (heads wait
   * for witnesses, or for the disk while the next batch is written).
   */
  #undo(prepared: PreparedDerived): MapUndo | undefined {
    if (this.#witnessKeys.size === 0 && this.store.appendWritten === undefined) return undefined;
    return MapVersions.undo(prepared.size, prepared.map, prepared.before);
  }

  /**
   * Brings this node up to date before a read: takes in what other nodes appended, and signs its
   * head again if the timer has not yet (a machine that slept, a busy event loop).
   */
  async current(): Promise<void> {
    if (this.store.derived === undefined || !this.#derived.settled() || this.#headOverdue()) await this.refresh();
  }

  /**
   * Whether the served head is older than the head interval and can be signed again later than it
   * is: never later than a head already signed for a larger tree (see #resignTime).
   */
  #headOverdue(): boolean {
    if (this.#headIntervalMs <= 0 || this.#now() - this.#headAt < this.#headIntervalMs) return false;
    const limit = this.#aheadTime();
    return limit === undefined || limit > this.#head.time;
  }

  /** The time of the oldest head signed for a tree larger than the served one: a candidate, or a batch not yet durable. */
  #aheadTime(): string | undefined {
    return this.#candidates[0]?.head.time ?? this.#inFlight[0];
  }

  /**
   * The time to sign the served tree again at: now, but never later than a head already signed
   * for a larger tree. An honest log never signs a smaller tree after a larger one, and witnesses
   * take a smaller tree signed later for a rollback (docs/witness.md).
   */
  #resignTime(): string {
    const now = this.#nextTime();
    const limit = this.#aheadTime();
    return limit !== undefined && limit < now ? limit : now;
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

  /**
   * Catches up with what other nodes sharing the store appended, and signs the head again if it
   * has grown older than the head interval; the head this node now serves.
   */
  refresh(): Promise<ServedHead> {
    if (this.#closed) return Promise.resolve(this.servedHead());
    return this.#exclusive(async () => {
      await this.#catchUp();
      this.#maybePublish();
      const head = this.#head;
      if (this.#headOverdue()) {
        this.#setHead(signHead({ size: head.size, root: head.root, map: head.map, time: this.#resignTime() }, this.#signer));
      }
      return this.servedHead();
    });
  }

  async #commitNow(batch: readonly Prepared[]): Promise<void> {
    let remaining = batch;
    try {
      await retry(
        async (attempt) => {
          // Optimistic: append at the size this node knows; the store refuses if the log grew.
          if (attempt > 1) await this.#catchUp();
          const outcome = await this.#tryCommit(remaining);
          if (outcome === 'done') return;
          remaining = outcome;
          throw OUTRUN;
        },
        // Short random pauses, so that nodes that keep colliding stop doing it in step.
        { retryOn: (e) => e === OUTRUN, attempts: MAX_CONFLICTS, baseDelayMs: 2, maxDelayMs: 20 },
      );
    } catch (e) {
      if (e !== OUTRUN) throw e;
      const error = new DkmsError('LEDGER_CONFLICT', `other ledger nodes kept appending first (${MAX_CONFLICTS} tries); resubmit`);
      for (const { pending } of remaining) pending.reject(error);
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
      const gseq = this.#derived.size + accepted.length;
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
      if ((await this.store.size()) !== this.#derived.size) return [...batch];
      refuse();
      return 'done';
    }

    const events: StoredEvent[] = accepted.map(({ accepted: a, gseq }) => {
      const record: LogRecord = { gseq, time, event: a.event };
      return { record, id: a.id, subject: a.subject, canonical: a.canonical, leaf: recordLeafFromCanonical(record, a.canonical) };
    });
    const derived = this.#derived.prepare(events.map((e) => ({ gseq: e.record.gseq, subject: e.subject, seq: e.record.event.seq, leaf: e.leaf })));
    const undo = this.#undo(derived);
    const head = this.#headFor(derived, time);
    const append: AppendBatch = { events, subjects: overlay.changed(), head, tree: derived.tree, map: derived.map };
    let durable: Promise<void>;
    try {
      if (this.store.appendWritten === undefined) {
        await this.store.append(append);
        durable = Promise.resolve();
      } else {
        ({ durable } = await this.store.appendWritten(append));
      }
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'LEDGER_CONFLICT') return [...batch];
      refuse();
      for (const { item } of accepted) item.pending.reject(asError(e));
      return 'done';
    }
    // Written: the next batch is validated against it at once. Its submitters are answered, and
    // its head served, once it is durable (in order: a sync covers everything written before it).
    this.#install(derived, undo);
    for (const record of overlay.changed()) this.#remember(record.subject, record);
    refuse();
    this.#inFlight.push(head.time);
    this.#durable = Promise.all([this.#durable, durable]).then(
      () => {
        this.#inFlight.shift();
        this.#offer(head);
        for (const { item, accepted: a, gseq } of accepted) item.pending.resolve({ id: a.id, subject: a.subject, seq: a.event.seq, gseq, time });
      },
      (e: unknown) => {
        // Written but not known to be on disk: nothing after it may be acknowledged either.
        this.#broken ??= new DkmsError('LEDGER_STORE_DAMAGED', `the ledger store could not be synced to disk (${asError(e).message}): restart the node`);
        for (const { item } of accepted) item.pending.reject(this.#broken);
      },
    );
    return 'done';
  }

  #headFor(derived: PreparedDerived, time: string): SignedTreeHead {
    return signHead({ size: derived.size, root: toBase64url(derived.root), map: toBase64url(derived.mapRoot), time }, this.#signer);
  }

  /** Waits until everything submitted so far is committed (durable and answered) or refused. */
  async drain(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
    await this.#durable;
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
    const controller = await this.controllerOf(subject as Did);
    if (controller === undefined) return own;
    const policy = await this.store.subjectLog(controller, untilGseq);
    return [...own, ...policy].sort((a, b) => a.gseq - b.gseq);
  }

  /** The policy that controls a DID, fixed by its inception event (so any record of it names it). */
  async controllerOf(did: Did): Promise<PolicyAddress | undefined> {
    const known = this.#controllers.get(did);
    if (known !== undefined) return known;
    const record = await this.store.subject(did);
    if (record?.kind !== 'did') return undefined;
    if (this.#controllers.size >= CONTROLLER_CACHE_LIMIT) this.#controllers.clear();
    this.#controllers.set(did, record.controller);
    return record.controller;
  }

  /** A subject's events with seq above `afterSeq` (all of them for -1), up to `untilGseq` (exclusive). */
  subjectLog(subject: Subject, untilGseq: number, afterSeq = -1): Promise<LogRecord[]> {
    return this.store.subjectLog(subject, untilGseq, afterSeq);
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

  /** Ragged-edge hashes of the last tree size proofs were made for (mostly the served head's). */
  #proofMemo: { size: number; memo: RangeMemo } = { size: -1, memo: new Map() };

  #memoFor(size: number): RangeMemo {
    if (this.#proofMemo.size !== size) this.#proofMemo = { size, memo: new Map() };
    return this.#proofMemo.memo;
  }

  inclusionProof(gseq: number, size = this.size): string[] {
    return this.#derived.reading(() => inclusionProof(gseq, size, this.#derived.treeRead, this.#memoFor(size))).map(toBase64url);
  }

  consistencyProof(from: number, to = this.size): string[] {
    return consistencyProof(from, to, this.#derived.treeRead, this.#memoFor(to)).map(toBase64url);
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
   * compares the stored state. Returns the problems found (none for a sound ledger); `onProgress`
   * hears how many events are checked after each chunk.
   */
  async verify(options: { onProgress?: (verified: number, total: number) => void } = {}): Promise<{ events: number; problems: string[] }> {
    await this.drain();
    const problems: string[] = [];
    const check = new CompactTree();
    const map = new MemoryMapNodes();
    const size = this.size;
    const replay = new Replay();
    // Every stored head's roots are recomputed at its size.
    const heads = new Map((await this.store.heads()).map((h) => [h.size, h]));
    const checkHead = (at: number) => {
      const stored = heads.get(at);
      if (stored === undefined) return;
      if (stored.root !== toBase64url(check.root())) problems.push(`the stored head of ${at} events has a Merkle root the log does not give`);
      if (stored.map !== undefined && stored.map !== toBase64url(mapRoot(map)))
        problems.push(`the stored head of ${at} events has a map root the log does not give`);
    };
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
      records.forEach((record, i) => {
        const leaf = recordLeaf(record);
        check.commit(check.pending([leaf]), from + i + 1);
        map.apply(
          updateMap(map, [{ key: mapKey(subjectOf(record.event)), entry: { seq: record.event.seq, gseq: record.gseq, leaf: toBase64url(leaf) } }]).writes,
        );
        checkHead(from + i + 1);
      });
      options.onProgress?.(from + records.length, size);
    }
    const head = this.#head;
    if (!verifyHeadSignature(head)) problems.push('the latest tree head signature does not verify');
    if (head.size !== size || head.root !== toBase64url(check.root()))
      problems.push(`the Merkle root of the ${size} events does not match the signed tree head`);
    if (head.map !== toBase64url(size === 0 ? MAP_EMPTY : mapRoot(map)))
      problems.push(`the map root of the ${size} events does not match the signed tree head`);
    const { differences } = await this.reindex(false);
    for (const subject of differences) problems.push(`${subject}: stored state differs from the state the log implies`);
    return { events: size, problems };
  }

  /**
   * Stops taking submissions, waits for those taken to be committed and answered, and closes the
   * store. A store that stopped answering (a write or sync that never ends) is waited for
   * `graceMs` at most: then every submission still unanswered is refused, LEDGER_STORE_UNAVAILABLE
   * (whether it was appended is unknown; a resubmitted event already in the log is answered
   * EVENT_REPLAY), and the store is closed under the call that never ended, so that closing never
   * waits forever. Rejects only if closing the pool or the store failed; the store is closed
   * (or its close attempted) whatever happened before.
   */
  async close(graceMs = DEFAULT_CLOSE_GRACE_MS): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.wake();
    if (!(await settlesWithin(Promise.all([this.drain(), this.#lock]), graceMs))) {
      const error = new DkmsError(
        'LEDGER_STORE_UNAVAILABLE',
        `the ledger node closed while its store had not answered for ${graceMs} ms: whether the event was appended is unknown; submit it again once the node is back (an event already in the log is answered EVENT_REPLAY)`,
      );
      this.#queue = [];
      for (const pending of [...this.#outstanding]) pending.reject(error);
    }
    try {
      await this.#pool?.close();
    } finally {
      await this.store.close();
    }
  }
}
