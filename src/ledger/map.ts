/**
 * The subject map: a sparse Merkle tree over 256-bit keys that sends each ledger subject
 * (`policy:…`, `did:dkms:…`) to its latest state. Every signed tree head commits to its root,
 * and clients check membership and non-membership proofs against it. This comment is the
 * specification that independent verifiers are written from.
 *
 * Keys and bits
 *   key(subject) = SHA-256(UTF-8 bytes of subject), 32 bytes. A subject holding a lone
 *   surrogate has no UTF-8 form and is refused. Bit i of a key (0 ≤ i < 256) is
 *   (key[i >> 3] >> (7 - (i & 7))) & 1, most significant bit first. Bit d chooses the branch
 *   below a node at depth d: 0 left, 1 right.
 *
 * Entries (the values)
 *   { seq, gseq, leaf }: seq and gseq integers in 0 … 2^53 - 1; leaf the unpadded base64url of
 *   a 32-byte hash, i.e. 43 characters of [A-Za-z0-9_-], the last one of AEIMQUYcgkosw048 (its
 *   two unused bits zero). encode(entry) is the RFC 8785 canonical JSON of exactly those three
 *   fields, in UTF-8; for such values that is {"gseq":G,"leaf":"L","seq":S}, G and S decimal.
 *
 * Hashes (H = SHA-256, ‖ = concatenation; prefixes 0x00 and 0x01 belong to the log tree)
 *   EMPTY              32 zero bytes: an empty subtree, and the root of the empty map
 *   leaf(key, entry)   H(0x02 ‖ key ‖ encode(entry))
 *   node(left, right)  H(0x03 ‖ left ‖ right)
 *   hash(S, d), S a set of (key, entry) pairs with distinct keys sharing their first d bits:
 *     EMPTY                                   if S is empty
 *     leaf(key, entry)                        if S = { (key, entry) }
 *     node(hash(S0, d + 1), hash(S1, d + 1))  otherwise, where Sb = the pairs whose bit d is b
 *   root = hash(all pairs, 0). A leaf sits at the shallowest depth where it is alone; above it,
 *   inner nodes with one EMPTY child remain wherever two keys still share bits. The root is a
 *   function of the set of pairs, not of the order they were set in.
 *
 * Proofs for a key k: the JSON object { siblings, entry?, other? }, with no other field
 *   siblings  d ≤ 256 items listed from the root down: siblings[i] is the base64url hash of the
 *             sibling (at depth i + 1) of the node on k's path at depth i + 1, or null for EMPTY
 *   entry     membership: the leaf of k is at depth d and holds this entry
 *   neither   non-membership: the position at depth d on k's path is empty
 *   other     non-membership: { key, entry }, the leaf of another key is at depth d; other.key
 *             is base64url of 32 bytes, differs from k and shares its first d bits with k
 *   Verification: t = leaf(k, entry) | EMPTY | leaf(other.key, other.entry); for i = d - 1 down
 *   to 0, t = bit(k, i) = 0 ? node(t, s_i) : node(s_i, t), where s_i is siblings[i] and null is
 *   EMPTY; accept iff t = root. Anything malformed (a wrong type, bad base64url, a wrong length,
 *   an unknown field, d > 256, both entry and other, other.key = k or not sharing k's first d
 *   bits) fails. null is how proofs write EMPTY; a sibling spelled as the base64url of 32 zero
 *   bytes hashes the same and is accepted too.
 *
 * Storage (ours only; verifiers need none of it)
 *   A node is stored under path(d, key) = u16be(d) ‖ the first d bits of the key, zero-padded to
 *   whole bytes. No node there means EMPTY. Inner node: 0x00 ‖ hash. Leaf: 0x01 ‖ hash ‖ key ‖
 *   encode(entry). Keys are never removed, so a stored position only ever goes from empty to
 *   leaf, from leaf to leaf (a new entry) or from leaf to inner (a key with the same prefix
 *   arrived and both leaves moved down). Updates and proofs read O(depth) nodes, and with random
 *   keys the depth is about log2(n) + 1.
 */
import { abytes, canonicalJson, concatBytes, equalBytes, fromBase64url, fromUtf8, isCryptoPending, sha256, toBase64url, utf8 } from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';

const KEY_LENGTH = 32;
const HASH_LENGTH = 32;
const KEY_BITS = 256;
const LEAF_PREFIX = Uint8Array.of(0x02);
const NODE_PREFIX = 0x03;
const INNER_TAG = 0x00;
const LEAF_TAG = 0x01;
/** tag ‖ hash ‖ key: the fixed part of a stored leaf. */
const LEAF_HEADER = 1 + HASH_LENGTH + KEY_LENGTH;
const EMPTY = new Uint8Array(HASH_LENGTH);

/** The hash of an empty subtree and the root of the empty map: 32 zero bytes. Do not modify it. */
export const MAP_EMPTY: Uint8Array = new Uint8Array(HASH_LENGTH);

/** The latest state of a subject: its own event count `seq`, the log index `gseq` and the log leaf hash `leaf`. */
export interface MapEntry {
  readonly seq: number;
  readonly gseq: number;
  /** Base64url (no padding) of a 32-byte hash. */
  readonly leaf: string;
}

/** A membership (`entry`) or non-membership (`other` or neither) proof; see the header for its meaning. */
export interface MapProof {
  readonly siblings: readonly (string | null)[];
  readonly entry?: MapEntry;
  readonly other?: { readonly key: string; readonly entry: MapEntry };
}

export type StoredMapNode =
  | { readonly kind: 'inner'; readonly hash: Uint8Array }
  | { readonly kind: 'leaf'; readonly hash: Uint8Array; readonly key: Uint8Array; readonly entry: MapEntry };

/** Synchronous read access to the stored nodes of the current map version (undefined = no node = EMPTY there). */
export interface MapNodeSource {
  /** `path` is the caller's only during the call (proofs reuse one): keep none of it. */
  get(path: Uint8Array): StoredMapNode | undefined;
}

/** A node to store at `path`, replacing what is there. */
export interface MapWrite {
  readonly path: Uint8Array;
  readonly node: StoredMapNode;
}

// ---------------------------------------------------------------------------------------------
// Checks that turn bad input into BAD_INPUT, or into a reason for a failed verification.
// ---------------------------------------------------------------------------------------------

/** Canonical unpadded base64url of 32 bytes: 43 characters, the last carrying 4 bits and 2 zero bits. */
const HASH_TEXT = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
const ENTRY_FIELDS: readonly string[] = ['seq', 'gseq', 'leaf'];
const OTHER_FIELDS: readonly string[] = ['key', 'entry'];
const PROOF_FIELDS: readonly string[] = ['siblings', 'entry', 'other'];

const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
const isBytes = (value: unknown, length: number): value is Uint8Array => value instanceof Uint8Array && value.length === length;
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** A plain object (as JSON.parse makes) whose own fields are all among `fields`, and all of them when `all`. */
function isPlain(value: unknown, fields: readonly string[], all: boolean): value is Record<string, unknown> {
  if (!isRecord(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  const own = Object.keys(value);
  return own.every((f) => fields.includes(f)) && (!all || own.length === fields.length);
}

/**
 * A fresh entry holding only seq, gseq and leaf, or why `value` is not one. `exact` also
 * refuses other fields: what arrives from outside must have one spelling.
 */
function readEntry(value: unknown, exact: boolean): MapEntry | string {
  if (!isRecord(value)) return 'is not an object';
  const { seq, gseq, leaf } = value;
  if (!isCount(seq)) return 'has a seq that is not a non-negative safe integer';
  if (!isCount(gseq)) return 'has a gseq that is not a non-negative safe integer';
  if (typeof leaf !== 'string' || !HASH_TEXT.test(leaf)) return 'has a leaf that is not the base64url of 32 bytes';
  if (exact && !isPlain(value, ENTRY_FIELDS, true)) return 'is not a plain object of exactly seq, gseq and leaf';
  return { seq, gseq, leaf };
}

function entryOrThrow(value: unknown): MapEntry {
  const entry = readEntry(value, false);
  if (typeof entry === 'string') throw badInput(`a map entry ${entry}`);
  return entry;
}

/** The 32 bytes that `text` is the canonical base64url of, or undefined. */
function decodeHash(text: unknown): Uint8Array | undefined {
  return typeof text === 'string' && HASH_TEXT.test(text) ? fromBase64url(text) : undefined;
}

function assertKey(key: Uint8Array): void {
  abytes(key, KEY_LENGTH, 'map key');
}

function assertDepth(depth: number, max: number): void {
  if (!Number.isSafeInteger(depth) || depth < 0 || depth > max) throw badInput(`map depth must be an integer in 0..${max}, got ${String(depth)}`);
}

/** A copy as a plain Uint8Array: `slice` on a Buffer (as stores return) would give a view. */
const copyBytes = (bytes: Uint8Array, start = 0, end = bytes.length): Uint8Array => new Uint8Array(bytes.subarray(start, end));

const damaged = (message: string): DkmsError => new DkmsError('LEDGER_STORE_DAMAGED', `the map store is damaged: ${message}`);

// ---------------------------------------------------------------------------------------------
// Keys, bits and hashes.
// ---------------------------------------------------------------------------------------------

/** key(subject) = SHA-256(UTF-8(subject)). Throws BAD_INPUT for a non-string or a lone surrogate. */
export function mapKey(subject: string): Uint8Array {
  if (typeof subject !== 'string') throw badInput('a map subject must be a string');
  if (LONE_SURROGATE.test(subject)) throw badInput('a map subject must be valid Unicode');
  return sha256(utf8(subject));
}

function bit(key: Uint8Array, index: number): 0 | 1 {
  return (((key[index >> 3] ?? 0) >> (7 - (index & 7))) & 1) as 0 | 1;
}

/** Bit `index` of a key, most significant first. Throws BAD_INPUT unless key is 32 bytes and 0 ≤ index < 256. */
export function keyBit(key: Uint8Array, index: number): 0 | 1 {
  assertKey(key);
  assertDepth(index, KEY_BITS - 1);
  return bit(key, index);
}

/** The index of the first bit where two keys differ; 256 if they are equal. */
function firstDifferentBit(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < KEY_LENGTH; i++) {
    const x = (a[i] ?? 0) ^ (b[i] ?? 0);
    if (x !== 0) return i * 8 + Math.clz32(x) - 24;
  }
  return KEY_BITS;
}

/**
 * The canonical JSON of an entry (RFC 8785), written out directly: for non-negative safe
 * integers and a base64url leaf, it is exactly what the canonicalizer makes, several times
 * faster. Anything else goes through the canonicalizer.
 */
export function entryText(entry: MapEntry): string {
  const { gseq, leaf, seq } = entry;
  if (isCount(gseq) && isCount(seq) && typeof leaf === 'string' && HASH_TEXT.test(leaf)) return `{"gseq":${gseq},"leaf":"${leaf}","seq":${seq}}`;
  return canonicalJson({ gseq, leaf, seq });
}

function entryBytes(entry: MapEntry): Uint8Array {
  return utf8(entryText(entry));
}

const leafHashOf = (key: Uint8Array, entry: MapEntry): Uint8Array => sha256(concatBytes(LEAF_PREFIX, key, entryBytes(entry)));
/** node(left, right) into one reused input: it runs d times per proof, and sha256 keeps no reference to it. */
const nodeInput = new Uint8Array(1 + 2 * HASH_LENGTH);
nodeInput[0] = NODE_PREFIX;

function nodeHashOf(left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_LENGTH);
  return sha256(nodeInput);
}

/**
 * leaf(key, entry) = SHA-256(0x02 ‖ key ‖ canonical JSON of {gseq, leaf, seq}); other fields of
 * `entry` are ignored. Throws BAD_INPUT unless key is 32 bytes and entry is a valid MapEntry.
 */
export function mapLeafHash(key: Uint8Array, entry: MapEntry): Uint8Array {
  assertKey(key);
  return leafHashOf(key, entryOrThrow(entry));
}

/** node(left, right) = SHA-256(0x03 ‖ left ‖ right). Throws BAD_INPUT unless both are 32 bytes. */
export function mapNodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  abytes(left, HASH_LENGTH, 'left child hash');
  abytes(right, HASH_LENGTH, 'right child hash');
  return nodeHashOf(left, right);
}

// ---------------------------------------------------------------------------------------------
// Paths: where a node is stored.
// ---------------------------------------------------------------------------------------------

function pathAt(key: Uint8Array, depth: number): Uint8Array {
  return fillPath(new Uint8Array(2 + ((depth + 7) >> 3)), key, depth);
}

/** Writes the path at `depth` on `key`'s way into `path`, which has exactly its length. */
function fillPath(path: Uint8Array, key: Uint8Array, depth: number): Uint8Array {
  const prefixBytes = (depth + 7) >> 3;
  path[0] = depth >> 8;
  path[1] = depth & 0xff;
  for (let i = 0; i < prefixBytes; i++) path[2 + i] = key[i] ?? 0;
  const spare = depth & 7;
  if (spare !== 0) path[1 + prefixBytes] = (path[1 + prefixBytes] ?? 0) & (0xff00 >> spare);
  return path;
}

/** The path of the child on side `side` of the node at `parent` (depth `depth`). */
function childPath(parent: Uint8Array, depth: number, side: 0 | 1): Uint8Array {
  const child = new Uint8Array(2 + ((depth + 8) >> 3));
  child.set(parent.subarray(2), 2);
  child[0] = (depth + 1) >> 8;
  child[1] = (depth + 1) & 0xff;
  const at = 2 + (depth >> 3);
  if (side === 1) child[at] = (child[at] ?? 0) | (0x80 >> (depth & 7));
  return child;
}

/** The path of the sibling of the node at depth + 1 on key's path, written into `path` (of its length). */
function siblingPath(key: Uint8Array, depth: number, path: Uint8Array): Uint8Array {
  fillPath(path, key, depth + 1);
  const at = 2 + (depth >> 3);
  path[at] = (path[at] ?? 0) ^ (0x80 >> (depth & 7));
  return path;
}

/**
 * Paths of every length over one small memory, for mapProof: a proof reads two nodes per level,
 * and a new array for each was most of what a warm read allocated. Sound because every source
 * reads the path only during get() and keeps none of it (each turns it into a key of its own).
 */
function scratchPaths(): Uint8Array[] {
  const memory = new Uint8Array(2 + KEY_BITS / 8);
  return Array.from({ length: memory.length + 1 }, (_, length) => memory.subarray(0, length));
}

const PROOF_PATHS = scratchPaths();
const PROOF_SIBLINGS = scratchPaths();

/** A path as a latin1 string: a key for a JavaScript Map. */
function pathId(path: Uint8Array): string {
  let id = '';
  for (let i = 0; i < path.length; i++) id += String.fromCharCode(path[i] ?? 0);
  return id;
}

/**
 * Where a node sits: depth d (0..256) and the first d bits of `key`, as u16be(d) followed by
 * ceil(d / 8) prefix bytes whose unused low bits are zero. The storage key of the node.
 * Throws BAD_INPUT unless key is 32 bytes and depth is an integer in 0..256.
 *
 * @example
 *   mapPath(key, 0); // 00 00: the root
 *   mapPath(key, 3); // 00 03 ‖ (key[0] & 0xe0)
 */
export function mapPath(key: Uint8Array, depth: number): Uint8Array {
  assertKey(key);
  assertDepth(depth, KEY_BITS);
  return pathAt(key, depth);
}

// ---------------------------------------------------------------------------------------------
// Stored nodes.
// ---------------------------------------------------------------------------------------------

/**
 * The storage form of a node: inner = 0x00 ‖ hash; leaf = 0x01 ‖ hash ‖ key ‖ UTF-8 canonical
 * JSON of the entry. Throws BAD_INPUT for a malformed node.
 */
export function encodeMapNode(node: StoredMapNode): Uint8Array {
  if (!isRecord(node)) throw badInput('a map node must be an object');
  abytes(node.hash, HASH_LENGTH, 'map node hash');
  if (node.kind === 'inner') return concatBytes(Uint8Array.of(INNER_TAG), node.hash);
  if (node.kind === 'leaf') {
    abytes(node.key, KEY_LENGTH, 'map leaf key');
    return concatBytes(Uint8Array.of(LEAF_TAG), node.hash, node.key, entryBytes(entryOrThrow(node.entry)));
  }
  throw badInput(`unknown map node kind ${String((node as { kind: unknown }).kind)}`);
}

/**
 * Parses `encodeMapNode`'s output, copying out of `bytes`. Throws RangeError for an unknown tag
 * or a wrong length, BAD_INPUT for an entry that is not canonical JSON of a valid MapEntry. It
 * does not recompute a leaf's hash: the store is trusted to hold what it was given.
 */
export function decodeMapNode(bytes: Uint8Array): StoredMapNode {
  abytes(bytes, undefined, 'map node');
  const tag = bytes[0];
  if (tag === INNER_TAG) {
    if (bytes.length !== 1 + HASH_LENGTH) throw new RangeError(`a stored inner map node is ${1 + HASH_LENGTH} bytes, got ${bytes.length}`);
    return { kind: 'inner', hash: copyBytes(bytes, 1) };
  }
  if (tag !== LEAF_TAG) throw new RangeError(bytes.length === 0 ? 'a stored map node is empty' : `unknown map node tag ${String(tag)}`);
  if (bytes.length <= LEAF_HEADER) throw new RangeError(`a stored map leaf is longer than ${LEAF_HEADER} bytes, got ${bytes.length}`);
  const text = fromUtf8(bytes.subarray(LEAF_HEADER));
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badInput('a stored map entry is not JSON');
  }
  const entry = readEntry(value, true);
  if (typeof entry === 'string') throw badInput(`a stored map entry ${entry}`);
  if (entryText(entry) !== text) throw badInput('a stored map entry is not canonical JSON');
  return { kind: 'leaf', hash: copyBytes(bytes, 1, 1 + HASH_LENGTH), key: copyBytes(bytes, 1 + HASH_LENGTH, LEAF_HEADER), entry };
}

const nibble = (code: number): number =>
  code >= 48 && code <= 57 ? code - 48 : code >= 65 && code <= 70 ? code - 55 : code >= 97 && code <= 102 ? code - 87 : -1;

/** The 32 bytes written as hex in `hex` from `from` on, in a new array; BAD_INPUT if not hex. */
function hashFromHex(hex: string, from: number): Uint8Array {
  const hash = new Uint8Array(HASH_LENGTH);
  for (let i = 0; i < HASH_LENGTH; i++) {
    const high = nibble(hex.charCodeAt(from + 2 * i));
    const low = nibble(hex.charCodeAt(from + 2 * i + 1));
    if (high < 0 || low < 0) throw badInput('a stored map node is not hex');
    hash[i] = (high << 4) | low;
  }
  return hash;
}

/**
 * decodeMapNode of a node's bytes written as hex (as the embedded store reads them). Inner
 * nodes, most of a proof's reads, are decoded straight into their hash: no Buffer in between.
 */
export function decodeMapNodeHex(hex: string): StoredMapNode {
  if (hex.length === 2 * (1 + HASH_LENGTH) && hex.startsWith('00')) return { kind: 'inner', hash: hashFromHex(hex, 2) };
  if (!/^[0-9A-Fa-f]*$/.test(hex) || hex.length % 2 !== 0) throw badInput('a stored map node is not hex');
  return decodeMapNode(Buffer.from(hex, 'hex'));
}

// ---------------------------------------------------------------------------------------------
// Updating.
// ---------------------------------------------------------------------------------------------

/** A written position; `node` is PENDING until the batch hashes it. */
interface Slot {
  readonly path: Uint8Array;
  node: StoredMapNode;
}

/** An inner node whose hash the batch computes at its end. */
const PENDING: StoredMapNode = { kind: 'inner', hash: EMPTY };

const sameEntry = (a: MapEntry, b: MapEntry): boolean => a.seq === b.seq && a.gseq === b.gseq && a.leaf === b.leaf;

const newLeaf = (key: Uint8Array, entry: MapEntry): StoredMapNode => ({ kind: 'leaf', hash: leafHashOf(key, entry), key, entry });

/** The writes of one batch, read through on top of the source; inner hashes are left for the end. */
class Batch {
  readonly #source: MapNodeSource;
  readonly #slots = new Map<string, Slot>();
  /** The PENDING slots by depth, each once. */
  readonly #pending: Slot[][] = [];

  constructor(source: MapNodeSource) {
    this.#source = source;
  }

  #read(path: Uint8Array, id: string): StoredMapNode | undefined {
    const slot = this.#slots.get(id);
    return slot === undefined ? this.#source.get(path) : slot.node;
  }

  #hashAt(path: Uint8Array): Uint8Array {
    return this.#read(path, pathId(path))?.hash ?? EMPTY;
  }

  #put(path: Uint8Array, id: string, node: StoredMapNode): void {
    const slot = this.#slots.get(id);
    if (slot === undefined) this.#slots.set(id, { path, node });
    else slot.node = node;
  }

  #markPending(path: Uint8Array, id: string, depth: number): void {
    let slot = this.#slots.get(id);
    if (slot?.node === PENDING) return;
    if (slot === undefined) {
      slot = { path, node: PENDING };
      this.#slots.set(id, slot);
    } else {
      slot.node = PENDING;
    }
    (this.#pending[depth] ??= []).push(slot);
  }

  /** Sets key to entry: walks down to where key's path ends and changes the nodes there. */
  set(key: Uint8Array, entry: MapEntry): void {
    const above: [Uint8Array, string][] = [];
    for (let depth = 0; depth <= KEY_BITS; depth++) {
      const path = pathAt(key, depth);
      const id = pathId(path);
      const node = this.#read(path, id);
      if (node?.kind === 'inner') {
        above.push([path, id]);
        continue;
      }
      if (node === undefined) {
        this.#put(path, id, newLeaf(key, entry));
      } else {
        const split = firstDifferentBit(node.key, key);
        if (split === KEY_BITS && sameEntry(node.entry, entry)) return;
        if (split < depth) throw damaged(`a leaf at depth ${depth} is not on its key's path`);
        if (split === KEY_BITS) this.#put(path, id, newLeaf(key, entry));
        else this.#split(node, key, entry, depth, split);
      }
      above.forEach(([p, i], d) => this.#markPending(p, i, d));
      return;
    }
    throw damaged('a key path runs deeper than 256 bits');
  }

  /** The leaf `old` at `depth` and the new key share bits up to `split`: inner nodes down to there, then both leaves. */
  #split(old: Extract<StoredMapNode, { kind: 'leaf' }>, key: Uint8Array, entry: MapEntry, depth: number, split: number): void {
    for (let d = depth; d <= split; d++) {
      const path = pathAt(key, d);
      this.#markPending(path, pathId(path), d);
    }
    const oldPath = pathAt(old.key, split + 1);
    this.#put(oldPath, pathId(oldPath), old);
    const newPath = pathAt(key, split + 1);
    this.#put(newPath, pathId(newPath), newLeaf(key, entry));
  }

  /** Hashes the pending inner nodes, deepest first, so each one's children are final. */
  finish(): { root: Uint8Array; writes: MapWrite[] } {
    for (let depth = this.#pending.length - 1; depth >= 0; depth--) {
      for (const slot of this.#pending[depth] ?? []) {
        const left = this.#hashAt(childPath(slot.path, depth, 0));
        const right = this.#hashAt(childPath(slot.path, depth, 1));
        slot.node = { kind: 'inner', hash: nodeHashOf(left, right) };
      }
    }
    return { root: copyBytes(this.#hashAt(new Uint8Array(2))), writes: [...this.#slots.values()] };
  }
}

/**
 * The writes that setting each (key, entry) makes to the map read through `source`, and the
 * new root. Later updates of the same key win; setting a key to the entry it has writes nothing.
 * Does not change `source`. Keys are never removed, so a write never deletes: a leaf pushed down
 * by a new key with the same prefix moves, and its old position becomes an inner node. Each
 * written path appears once in `writes`. Inner hashes are computed once per batch, bottom-up
 * over the changed paths. Entries are stored as copies holding only seq, gseq and leaf.
 * Throws BAD_INPUT for a key that is not 32 bytes or an invalid entry, LEDGER_STORE_DAMAGED if
 * the source contradicts the map's structure.
 *
 * @example
 *   const nodes = new MemoryMapNodes();
 *   const { root, writes } = updateMap(nodes, [{ key: mapKey('policy:a'), entry }]);
 *   nodes.apply(writes); // mapRoot(nodes) is now root
 */
export function updateMap(
  source: MapNodeSource,
  updates: readonly { readonly key: Uint8Array; readonly entry: MapEntry }[],
): { root: Uint8Array; writes: MapWrite[] } {
  if (!Array.isArray(updates)) throw badInput('map updates must be an array');
  const batch = new Batch(source);
  for (const update of updates as readonly unknown[]) {
    if (!isRecord(update)) throw badInput('a map update must be { key, entry }');
    const key = copyBytes(abytes(update.key, KEY_LENGTH, 'map key'));
    batch.set(key, entryOrThrow(update.entry));
  }
  return batch.finish();
}

/** The root of the map read through `source`: the hash of the node at depth 0, or EMPTY. A copy. */
export function mapRoot(source: MapNodeSource): Uint8Array {
  return copyBytes(source.get(new Uint8Array(2))?.hash ?? EMPTY);
}

// ---------------------------------------------------------------------------------------------
// Proofs.
// ---------------------------------------------------------------------------------------------

/**
 * A membership or non-membership proof for `key`, read through `source`: two reads per level
 * (the node on the path and its sibling). Throws BAD_INPUT unless key is 32 bytes,
 * LEDGER_STORE_DAMAGED if the source contradicts the map's structure.
 *
 * @example
 *   const proof = mapProof(nodes, mapKey('policy:a'));
 *   verifyMapProof(mapRoot(nodes), mapKey('policy:a'), proof); // { ok: true, entry }
 */
export function mapProof(source: MapNodeSource, key: Uint8Array): MapProof {
  assertKey(key);
  const siblings: (string | null)[] = [];
  for (let depth = 0; depth <= KEY_BITS; depth++) {
    const node = source.get(fillPath(PROOF_PATHS[2 + ((depth + 7) >> 3)] as Uint8Array, key, depth));
    if (node === undefined) return { siblings };
    if (node.kind === 'leaf') {
      const split = firstDifferentBit(node.key, key);
      if (split === KEY_BITS) return { siblings, entry: node.entry };
      if (split < depth) throw damaged(`a leaf at depth ${depth} is not on its key's path`);
      return { siblings, other: { key: toBase64url(node.key), entry: node.entry } };
    }
    if (depth === KEY_BITS) break;
    const sibling = source.get(siblingPath(key, depth, PROOF_SIBLINGS[2 + ((depth + 8) >> 3)] as Uint8Array));
    siblings.push(sibling === undefined ? null : toBase64url(sibling.hash));
  }
  throw damaged('a key path runs deeper than 256 bits');
}

/** What `verifyMapProof` found: the proven entry (undefined when the key is proven absent), or why the proof fails. */
export type MapVerification = { readonly ok: true; readonly entry: MapEntry | undefined } | { readonly ok: false; readonly reason: string };

const fail = (reason: string): MapVerification => ({ ok: false, reason });

/** The hash a proof's path starts from, with the entry it proves; or why the proof is malformed. */
function startOf(key: Uint8Array, proof: Record<string, unknown>, depth: number): { start: Uint8Array; entry: MapEntry | undefined } | string {
  const { entry, other } = proof;
  if (entry !== undefined && other !== undefined) return 'the proof has both an entry and another key';
  if (entry !== undefined) {
    const parsed = readEntry(entry, true);
    return typeof parsed === 'string' ? `the entry ${parsed}` : { start: leafHashOf(key, parsed), entry: parsed };
  }
  if (other === undefined) return { start: EMPTY, entry: undefined };
  if (!isPlain(other, OTHER_FIELDS, true)) return 'the other leaf is not a plain object of exactly key and entry';
  const otherKey = decodeHash(other.key);
  if (otherKey === undefined) return 'the other key is not the base64url of 32 bytes';
  const split = firstDifferentBit(otherKey, key);
  if (split === KEY_BITS) return 'the other key is the key itself';
  if (split < depth) return `the other key does not share the first ${depth} bits of the key`;
  const otherEntry = readEntry(other.entry, true);
  return typeof otherEntry === 'string' ? `the other entry ${otherEntry}` : { start: leafHashOf(otherKey, otherEntry), entry: undefined };
}

function verify(root: unknown, key: unknown, proof: unknown): MapVerification {
  if (!isBytes(root, HASH_LENGTH)) return fail('the root is not 32 bytes');
  if (!isBytes(key, KEY_LENGTH)) return fail('the key is not 32 bytes');
  if (!isPlain(proof, PROOF_FIELDS, false)) return fail('the proof is not a plain object of siblings, entry and other');
  const { siblings } = proof;
  if (!Array.isArray(siblings) || siblings.length > KEY_BITS) return fail('the siblings are not an array of at most 256 items');
  const start = startOf(key, proof, siblings.length);
  if (typeof start === 'string') return fail(start);
  let hash = start.start;
  for (let i = siblings.length - 1; i >= 0; i--) {
    const item: unknown = siblings[i];
    const sibling = item === null ? EMPTY : decodeHash(item);
    if (sibling === undefined) return fail(`sibling ${i} is neither null nor the base64url of 32 bytes`);
    hash = bit(key, i) === 0 ? nodeHashOf(hash, sibling) : nodeHashOf(sibling, hash);
  }
  return equalBytes(hash, root) ? { ok: true, entry: start.entry } : fail('the proof does not lead to the root');
}

/**
 * Checks `proof` (as received, e.g. parsed JSON) for `key` against `root`: d + 1 hashes (d for
 * an empty position) plus parsing. `entry` is the proven entry, or undefined for a valid
 * non-membership proof. Never throws: anything malformed is `{ ok: false, reason }`.
 *
 * @example
 *   const result = verifyMapProof(root, mapKey('policy:a'), JSON.parse(body));
 *   if (result.ok && result.entry !== undefined) use(result.entry.leaf);
 */
export function verifyMapProof(root: Uint8Array, key: Uint8Array, proof: unknown): MapVerification {
  try {
    return verify(root, key, proof);
  } catch (e) {
    // A browser's request for a WebCrypto digest (crypto/platform.ts) goes to the caller's settle.
    if (isCryptoPending(e)) throw e;
    // Only hostile objects get here (throwing getters, proxies); plain JSON never does.
    return fail('the proof could not be read');
  }
}

// ---------------------------------------------------------------------------------------------
// In memory, for tests, tools and stores that rebuild the map when they open.
// ---------------------------------------------------------------------------------------------

/**
 * The map's nodes in a JavaScript Map keyed by the path's latin1 string. Nodes are stored and
 * returned as given, not copied: treat them as immutable.
 *
 * @example
 *   const nodes = new MemoryMapNodes();
 *   nodes.apply(updateMap(nodes, updates).writes);
 */
export class MemoryMapNodes implements MapNodeSource {
  readonly #nodes = new Map<string, StoredMapNode>();

  get(path: Uint8Array): StoredMapNode | undefined {
    return this.#nodes.get(pathId(path));
  }

  /** Stores the writes of `updateMap`, each replacing what is at its path. */
  apply(writes: readonly MapWrite[]): void {
    for (const write of writes) this.#nodes.set(pathId(write.path), write.node);
  }

  /** The number of stored nodes. */
  get size(): number {
    return this.#nodes.size;
  }
}
