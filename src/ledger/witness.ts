/**
 * A witness: a party apart from the ledger node that follows the node's signed tree heads and
 * cosigns a head (head.ts) only when it extends the last one it cosigned, so that a node alone
 * cannot show a client a rolled-back or forked log that the witness would also sign.
 *
 * For each head the witness compares it with the last head it cosigned (its state):
 * - same size: the roots must be the same, else the node signed two trees of one size
 *   (`equivocation`);
 * - different sizes, the smaller signed after the larger: the node went back (`rollback`);
 * - smaller, signed before: an old head, which `check` refuses as a replay and `examine` checks
 *   with a consistency proof to the larger;
 * - larger: a Merkle consistency proof from the last cosigned size must verify, else the node
 *   rewrote or forked its log (`fork`).
 * A conflict is kept as evidence (the two heads, both signed by the node) and, from then on, the
 * witness cosigns nothing more for that node: its key signed two histories, and no later head
 * can undo that. Only an operator clearing the state file lifts it (docs/witness.md).
 *
 * The state lives in `<dir>/state.json` (0600), written atomically before any cosignature leaves
 * the witness: after a crash, it never forgets a head it cosigned.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Signer } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { readJsonFile } from './client-state.js';
import { SignedTreeHeadSchema, cosignHead, rootBytes, sameTree, verifyHeadSignature, type Cosignature, type SignedTreeHead } from './head.js';
import { verifyConsistency } from './merkle.js';

export type EvidenceKind = 'equivocation' | 'rollback' | 'fork';

/** Two heads signed by the node that an honest node never signs both of. */
export interface Evidence {
  readonly kind: EvidenceKind;
  /** The head that conflicts with the one cosigned. */
  readonly seen: SignedTreeHead;
  /** The head the witness had cosigned. */
  readonly cosigned: SignedTreeHead;
  /** When the witness found it, by its own clock (ISO 8601). */
  readonly at: string;
}

/** What `state.json` holds. */
export interface WitnessState {
  readonly version: 1;
  /** The witness's own key, multibase (so its key can be read while it runs). */
  readonly key: string;
  /** The node key the witness follows. */
  readonly node: string;
  /** The first head of the largest tree the witness cosigned. */
  readonly last: SignedTreeHead | null;
  readonly evidence: readonly Evidence[];
}

export interface WitnessOptions {
  /** The node key this witness follows, pinned by configuration. */
  readonly node: string;
  /** Heads older than this, or dated this far ahead, are not cosigned (default 60 s). */
  readonly maxHeadAgeMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  readonly now?: () => number;
  /** Called once for each new piece of evidence, after it is stored. */
  readonly onEvidence?: (evidence: Evidence) => void;
}

/** A Merkle consistency proof (RFC 9162) that the tree of `from` events is a prefix of the one of `to`. */
export interface ConsistencyProof {
  readonly from: number;
  readonly to: number;
  readonly hashes: readonly Uint8Array[];
}

/** What a reported head tells: consistent with the cosigned log, or nothing to compare it with yet. */
export type Examined = 'consistent' | 'unknown';

export const WITNESS_STATE_FILE = 'state.json';
export const DEFAULT_WITNESS_MAX_AGE_MS = 60_000;
/** Evidence kept at most: one entry already proves the node misbehaved. */
const MAX_EVIDENCE = 100;

const EvidenceSchema = z.strictObject({
  kind: z.enum(['equivocation', 'rollback', 'fork']),
  seen: SignedTreeHeadSchema,
  cosigned: SignedTreeHeadSchema,
  at: z.string().max(40),
});

const StateSchema = z.strictObject({
  version: z.literal(1),
  key: z.string().max(64),
  node: z.string().max(64),
  last: SignedTreeHeadSchema.nullable(),
  evidence: z.array(EvidenceSchema).max(MAX_EVIDENCE),
});

const refused = (message: string) => new DkmsError('WITNESS_REFUSED', message);

/** The state a witness left in `dir`, if any; BAD_INPUT when the file is not valid. */
export function readWitnessState(dir: string): WitnessState | undefined {
  return readJsonFile<WitnessState | undefined>(join(dir, WITNESS_STATE_FILE), StateSchema, undefined);
}

/** One line saying what a piece of evidence shows. */
export function describeEvidence(evidence: Evidence): string {
  const { seen, cosigned } = evidence;
  switch (evidence.kind) {
    case 'equivocation':
      return `node ${seen.key} signed two different trees of ${seen.size} events (at ${cosigned.time} and ${seen.time})`;
    case 'rollback': {
      const [small, large] = bySize(seen, cosigned);
      return `node ${seen.key} signed a tree of ${small.size} events at ${small.time}, after one of ${large.size} events at ${large.time}`;
    }
    case 'fork':
      return `node ${seen.key} signed a tree of ${seen.size} events that is not consistent with its tree of ${cosigned.size} events`;
  }
}

/** Two heads of different sizes, the smaller first. */
function bySize(a: SignedTreeHead, b: SignedTreeHead): [SignedTreeHead, SignedTreeHead] {
  return a.size < b.size ? [a, b] : [b, a];
}

/** The node signed the smaller tree after the larger one: an honest log never shrinks. */
function wentBack(small: SignedTreeHead, large: SignedTreeHead): boolean {
  return Date.parse(small.time) > Date.parse(large.time);
}

/** How a head stands against the last cosigned one, conflicts aside. */
type Standing = 'first' | 'same' | 'extends' | 'prefix' | 'replay' | 'unproven';

export class Witness {
  readonly key: string;
  /** The node key this witness follows. */
  readonly node: string;
  readonly maxHeadAgeMs: number;
  readonly #signer: Signer;
  readonly #path: string;
  readonly #now: () => number;
  readonly #onEvidence: ((evidence: Evidence) => void) | undefined;
  #last: SignedTreeHead | undefined;
  #evidence: Evidence[];

  private constructor(path: string, signer: Signer, options: WitnessOptions, state: WitnessState | undefined) {
    this.#path = path;
    this.#signer = signer;
    this.key = signer.multikey;
    this.node = options.node;
    this.maxHeadAgeMs = options.maxHeadAgeMs ?? DEFAULT_WITNESS_MAX_AGE_MS;
    this.#now = options.now ?? Date.now;
    this.#onEvidence = options.onEvidence;
    this.#last = state?.last ?? undefined;
    this.#evidence = [...(state?.evidence ?? [])];
  }

  /**
   * Opens the witness whose state is in `dir` (created on first use, 0700), following `node`.
   * BAD_INPUT when the state there belongs to a witness of another node: following another node
   * starts from a fresh state, which only an operator may decide.
   */
  static open(dir: string, signer: Signer, options: WitnessOptions): Witness {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const state = readWitnessState(dir);
    const path = join(dir, WITNESS_STATE_FILE);
    if (state !== undefined && state.node !== options.node) {
      throw new DkmsError('BAD_INPUT', `${path} is the state of a witness of node ${state.node}, not ${options.node}: move it away to follow another node`);
    }
    const witness = new Witness(path, signer, options, state);
    witness.#save();
    return witness;
  }

  /** The first head of the largest tree this witness cosigned. */
  get last(): SignedTreeHead | undefined {
    return this.#last;
  }

  get evidence(): readonly Evidence[] {
    return this.#evidence;
  }

  /** Whether the node was caught: the witness then cosigns nothing more of it. */
  get caught(): boolean {
    return this.#evidence.length > 0;
  }

  state(): WitnessState {
    return { version: 1, key: this.key, node: this.node, last: this.#last ?? null, evidence: this.#evidence };
  }

  /**
   * Checks a head the node serves now and cosigns it, at the witness's own time, remembering it
   * first. `proof` proves the last cosigned tree a prefix of the head's, when the head is larger
   * (see `proofNeeded`); a proof between other sizes counts as none.
   * @throws DkmsError WITNESS_REFUSED: signed by another key or badly; older than the maximum age;
   *   an old head replayed; no proof for a larger tree; or in conflict with the last cosigned head
   *   (kept as evidence); or the node was caught before.
   */
  check(head: SignedTreeHead, proof?: ConsistencyProof): Cosignature {
    this.#verifySigned(head);
    const standing = this.#compare(head, proof);
    if (this.caught) throw this.#caughtError();
    if (standing === 'replay' || standing === 'prefix')
      throw refused(`the head of ${head.size} events is older than the head of ${this.#last?.size ?? 0} events already cosigned: a replay`);
    if (standing === 'unproven') throw refused(`a consistency proof from ${this.#last?.size ?? 0} to ${head.size} events is needed`);
    this.#checkFresh(head);
    if (standing === 'first' || standing === 'extends') {
      this.#last = head;
      this.#save();
    }
    return cosignHead(head, new Date(this.#now()).toISOString(), this.#signer);
  }

  /**
   * Checks a head someone was shown, of any age, against the last cosigned one, without cosigning
   * it or moving on: a conflict becomes evidence as for a polled head. `proof` proves the smaller
   * of the two trees a prefix of the larger, when their sizes differ (see `proofNeeded`); without
   * it the answer is 'unknown', as it is before the witness cosigned anything.
   * @throws DkmsError WITNESS_REFUSED: signed by another key or badly, or in conflict (evidence).
   */
  examine(head: SignedTreeHead, proof?: ConsistencyProof): Examined {
    this.#verifySigned(head);
    const standing = this.#compare(head, proof);
    return standing === 'first' || standing === 'unproven' || standing === 'replay' ? 'unknown' : 'consistent';
  }

  /**
   * The sizes between which `check` (or, for a `reported` head, `examine`) needs a consistency
   * proof for `head`, or undefined when it needs none.
   * @throws DkmsError WITNESS_REFUSED when the head is not validly signed by the node followed.
   */
  proofNeeded(head: SignedTreeHead, reported = false): { from: number; to: number } | undefined {
    this.#verifySigned(head);
    const last = this.#last;
    if (last === undefined || last.size === head.size || Math.min(last.size, head.size) === 0) return undefined;
    const [small, large] = bySize(head, last);
    // A rollback needs no proof; an old head replayed is refused by `check` as it stands.
    if (wentBack(small, large) || (small === head && !reported)) return undefined;
    return { from: small.size, to: large.size };
  }

  #verifySigned(head: SignedTreeHead): void {
    if (head.key !== this.node) throw refused(`the head is signed by ${head.key}, not by the node this witness follows (${this.node})`);
    if (!verifyHeadSignature(head)) throw refused(`the head of ${head.size} events does not carry a valid signature of node ${head.key}`);
  }

  /** Compares a validly signed head with the last cosigned one; a conflict is stored and thrown. */
  #compare(head: SignedTreeHead, proof: ConsistencyProof | undefined): Standing {
    const last = this.#last;
    if (last === undefined) return 'first';
    if (head.size === last.size) {
      if (sameTree(head, last)) return 'same';
      throw this.#conflict('equivocation', head, last);
    }
    const [small, large] = bySize(head, last);
    if (wentBack(small, large)) throw this.#conflict('rollback', head, last);
    // The last head may have moved on since the proof was asked for: only a proof between these two sizes counts.
    const matches = proof !== undefined && proof.from === small.size && proof.to === large.size;
    const hashes = small.size === 0 ? [] : matches ? proof.hashes : undefined;
    if (hashes === undefined) return head.size < last.size ? 'replay' : 'unproven';
    if (!verifyConsistency(small.size, large.size, hashes, rootBytes(small), rootBytes(large))) throw this.#conflict('fork', head, last);
    return head.size < last.size ? 'prefix' : 'extends';
  }

  #conflict(kind: EvidenceKind, seen: SignedTreeHead, cosigned: SignedTreeHead): DkmsError {
    const known = this.#evidence.some((e) => e.kind === kind && sameTree(e.seen, seen) && sameTree(e.cosigned, cosigned));
    const evidence: Evidence = { kind, seen, cosigned, at: new Date(this.#now()).toISOString() };
    if (!known && this.#evidence.length < MAX_EVIDENCE) {
      this.#evidence.push(evidence);
      this.#save();
      this.#onEvidence?.(evidence);
    }
    return refused(`${kind}: ${describeEvidence(evidence)}; kept as evidence in ${this.#path}`);
  }

  #caughtError(): DkmsError {
    const first = this.#evidence[0];
    const what = first === undefined ? '' : ` (${first.kind}: ${describeEvidence(first)})`;
    return refused(`node ${this.node} was caught misbehaving${what}: this witness cosigns none of its heads until an operator clears ${this.#path}`);
  }

  #checkFresh(head: SignedTreeHead): void {
    const at = Date.parse(head.time);
    if (Number.isNaN(at)) throw refused(`the head of ${head.size} events has no valid time`);
    const age = this.#now() - at;
    if (age > this.maxHeadAgeMs)
      throw refused(
        `the head of ${head.size} events is ${Math.round(age / 1000)} s old (at most ${Math.round(this.maxHeadAgeMs / 1000)} s): stale or replayed`,
      );
    if (-age > this.maxHeadAgeMs) throw refused(`the head of ${head.size} events is dated ${Math.round(-age / 1000)} s in the future: check the clocks`);
  }

  #save(): void {
    writeFileAtomic(this.#path, new TextEncoder().encode(`${JSON.stringify(this.state(), null, 2)}\n`));
  }
}
