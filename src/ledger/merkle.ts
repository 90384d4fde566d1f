/**
 * The Merkle tree over the ledger log, hashed exactly as RFC 9162 section 2.1 (and RFC 6962)
 * define it, so any Certificate Transparency verifier can check our proofs.
 *
 * Storage model: the caller persists the hashes of *perfect* subtrees only. Node (level L,
 * index i) is the root of leaves [i·2^L, (i+1)·2^L); level 0 holds the leaf hashes. Such a
 * node never changes once complete, so it is written once (by `appendLeaf`) and read many
 * times. Every tree head and proof is assembled from O(log n) of those nodes plus O(log n)
 * hashing along the ragged right edge, never by recomputing the tree.
 *
 * Sizes and indices are plain numbers: every safe integer (below 2^53) works, which is why
 * the bit arithmetic below uses division and remainders rather than 32-bit operators.
 */
import { abytes, concatBytes, equalBytes, sha256 } from '../crypto/index.js';
import { badInput } from '../errors.js';

/** Returns the stored hash of node (level, index); throws if the node is absent. */
export type NodeReader = (level: number, index: number) => Uint8Array;

/** A perfect-subtree hash that has just become complete and should be stored. */
export interface MerkleNode {
  level: number;
  index: number;
  hash: Uint8Array;
}

const HASH_LENGTH = 32;
const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);
/** The root of the empty tree, SHA-256 of nothing (computed when asked: in the browser a hash is a WebCrypto answer, not ready at load). */
const emptyRoot = (): Uint8Array => sha256(new Uint8Array(0));

/** RFC 9162 leaf hash: SHA-256(0x00 ‖ data). The prefix keeps leaves and nodes apart. */
export function leafHash(data: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_PREFIX, abytes(data, undefined, 'leaf data')));
}

/** RFC 9162 interior node hash: SHA-256(0x01 ‖ left ‖ right). Throws BAD_INPUT unless both are 32 bytes. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  abytes(left, HASH_LENGTH, 'left child hash');
  abytes(right, HASH_LENGTH, 'right child hash');
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

// ---------------------------------------------------------------------------------------------
// Arithmetic on sizes (safe integers, not 32-bit).
// ---------------------------------------------------------------------------------------------

function isCount(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= 0;
}

function assertCount(n: number, what: string): void {
  if (!isCount(n)) throw badInput(`${what} must be a non-negative integer, got ${String(n)}`);
}

const isOdd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** The largest power of two strictly below n (n ≥ 2): where RFC 9162 splits a list of n leaves. */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** log2(n) when n is a power of two, otherwise -1. */
function exactLog2(n: number): number {
  let level = 0;
  for (let p = 1; p <= n; p *= 2, level++) if (p === n) return level;
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Appending.
// ---------------------------------------------------------------------------------------------

/**
 * Appends the leaf hash `leaf` as leaf number `size` and returns every node that becomes
 * complete: the leaf (level 0), then each parent whose subtree is now perfect. The caller
 * stores them all. Reads one stored node per level climbed (the trailing one bits of `size`).
 * Throws BAD_INPUT for a bad size or a leaf hash that is not 32 bytes.
 *
 * @example
 *   for (const n of appendLeaf(size, leafHash(entry), read)) store(n.level, n.index, n.hash);
 */
export function appendLeaf(size: number, leaf: Uint8Array, read: NodeReader): MerkleNode[] {
  assertCount(size, 'tree size');
  abytes(leaf, HASH_LENGTH, 'leaf hash');
  let level = 0;
  let index = size;
  let hash: Uint8Array = leaf.slice();
  const nodes: MerkleNode[] = [{ level, index, hash }];
  // A right child (odd index) completes its parent; climb while that keeps happening.
  while (isOdd(index)) {
    hash = nodeHash(read(level, index - 1), hash);
    level += 1;
    index = half(index);
    nodes.push({ level, index, hash });
  }
  return nodes;
}

/**
 * `appendLeaf` for a batch: leaves become numbers size, size+1, …. Nodes completed earlier in
 * the batch are read from the batch itself, so the caller may store them all afterwards.
 */
export function appendLeaves(size: number, leaves: readonly Uint8Array[], read: NodeReader): MerkleNode[] {
  assertCount(size, 'tree size');
  if (!Array.isArray(leaves)) throw badInput('leaves must be an array of leaf hashes');
  assertCount(size + leaves.length, 'tree size after the batch');
  const fresh = new Map<string, Uint8Array>();
  const readThrough: NodeReader = (level, index) => fresh.get(`${level}:${index}`) ?? read(level, index);
  const nodes: MerkleNode[] = [];
  leaves.forEach((leaf, i) => {
    for (const node of appendLeaf(size + i, leaf, readThrough)) {
      fresh.set(`${node.level}:${node.index}`, node.hash);
      nodes.push(node);
    }
  });
  return nodes;
}

// ---------------------------------------------------------------------------------------------
// Tree heads and proofs (RFC 9162 sections 2.1.1, 2.1.3.1 and 2.1.4.1).
// ---------------------------------------------------------------------------------------------

/**
 * MTH of the n leaves from `start`, where `start` is a multiple of splitPoint(n): the left
 * part is then always one stored node and only the right edge recurses, so this costs at most
 * one read and one hash per level.
 */
function rangeHash(start: number, n: number, read: NodeReader, memo?: RangeMemo): Uint8Array {
  if (n === 0) return emptyRoot();
  const level = exactLog2(n);
  if (level >= 0 && start % n === 0) return read(level, start / n);
  const key = `${start}+${n}`;
  const known = memo?.get(key);
  if (known !== undefined) return known;
  const k = splitPoint(n);
  const hash = nodeHash(rangeHash(start, k, read, memo), rangeHash(start + k, n - k, read, memo));
  memo?.set(key, hash);
  return hash;
}

/**
 * Hashes of ragged (not perfect) subtrees already computed, keyed by their range. Proofs under
 * one tree size share the nodes of its right edge; a memo kept per size hashes them only once.
 */
export type RangeMemo = Map<string, Uint8Array>;

/**
 * MTH(D[start:end]) as RFC 9162 section 2.1.1 defines it, from stored perfect subtrees.
 * Throws BAD_INPUT when start > end, or when the range is not aligned the way the RFC
 * recursion aligns it (start a multiple of the largest power of two below end - start):
 * an unaligned range has no stored nodes to reuse and would cost O(n) reads.
 */
export function subtreeHash(start: number, end: number, read: NodeReader): Uint8Array {
  assertCount(start, 'subtree start');
  assertCount(end, 'subtree end');
  if (start > end) throw badInput(`subtree start ${start} is after its end ${end}`);
  const n = end - start;
  if (n >= 2 && start % splitPoint(n) !== 0) {
    throw badInput(`subtree [${start}, ${end}) is not aligned: start must be a multiple of ${splitPoint(n)}`);
  }
  return rangeHash(start, n, read);
}

/** The root (MTH) of the first `size` leaves; SHA-256 of the empty string for size 0. */
export function rootAt(size: number, read: NodeReader, memo?: RangeMemo): Uint8Array {
  assertCount(size, 'tree size');
  return rangeHash(0, size, read, memo);
}

/**
 * PATH(index, D[size]) of RFC 9162 section 2.1.3.1: the sibling hashes from the leaf up to
 * the root. Throws BAD_INPUT unless 0 ≤ index < size.
 */
export function inclusionProof(index: number, size: number, read: NodeReader, memo?: RangeMemo): Uint8Array[] {
  assertCount(index, 'leaf index');
  assertCount(size, 'tree size');
  if (index >= size) throw badInput(`leaf index ${index} is not in a tree of size ${size}`);
  // Walk down from the root; the RFC recursion appends each sibling after the sub-path, so
  // the list collected top-down is reversed at the end.
  const siblings: Uint8Array[] = [];
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      siblings.push(rangeHash(start + k, n - k, read, memo));
      n = k;
    } else {
      siblings.push(rangeHash(start, k, read, memo));
      start += k;
      m -= k;
      n -= k;
    }
  }
  return siblings.reverse();
}

/**
 * PROOF(oldSize, D[newSize]) of RFC 9162 section 2.1.4.1. Empty when oldSize is 0 or equals
 * newSize (there is nothing to prove). Throws BAD_INPUT unless 0 ≤ oldSize ≤ newSize.
 */
export function consistencyProof(oldSize: number, newSize: number, read: NodeReader, memo?: RangeMemo): Uint8Array[] {
  assertCount(oldSize, 'old tree size');
  assertCount(newSize, 'new tree size');
  if (oldSize > newSize) throw badInput(`old tree size ${oldSize} is larger than new tree size ${newSize}`);
  if (oldSize === 0 || oldSize === newSize) return [];
  const nodes: Uint8Array[] = [];
  let start = 0;
  let n = newSize;
  let m = oldSize;
  // SUBPROOF's flag b: still true while the subtree in hand is the whole old tree, whose
  // root the verifier already has and which is therefore left out.
  let wholeOldTree = true;
  while (m !== n) {
    const k = splitPoint(n);
    if (m <= k) {
      nodes.push(rangeHash(start + k, n - k, read, memo));
      n = k;
    } else {
      nodes.push(rangeHash(start, k, read, memo));
      start += k;
      m -= k;
      n -= k;
      wholeOldTree = false;
    }
  }
  if (!wholeOldTree) nodes.push(rangeHash(start, n, read, memo));
  return nodes.reverse();
}

// ---------------------------------------------------------------------------------------------
// Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2). Inputs come from other parties, so
// anything malformed is a failed verification, never an exception.
// ---------------------------------------------------------------------------------------------

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_LENGTH;
}

function isHashList(value: unknown): value is Uint8Array[] {
  return Array.isArray(value) && value.every(isHash);
}

/** One level of an inclusion proof, from the leaf up: the proof's hash, on which side of the path it sits, and the hash of the two. */
export interface InclusionStep {
  readonly sibling: Uint8Array;
  readonly side: 'left' | 'right';
  readonly hash: Uint8Array;
}

/**
 * True when `proof` shows that the leaf hash `leaf` is leaf number `index` of the tree of
 * `size` leaves whose root is `root`. Never throws: malformed input returns false.
 *
 * A proof fixes the shape of the path, not the size itself: e.g. leaf 0's proof for size 3
 * also verifies for size 4 against the same root. Sizes must come with their signed root.
 * `onStep`, when given, sees each level as it is computed (to draw the path).
 */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
  onStep?: (step: InclusionStep) => void,
): boolean {
  if (!isHash(leaf) || !isHash(root) || !isHashList(proof)) return false;
  if (!isCount(index) || !isCount(size) || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      onStep?.({ sibling: p, side: 'left', hash: r });
      // Skip the levels where this node is the last one and has no right sibling.
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
      onStep?.({ sibling: p, side: 'right', hash: r });
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalBytes(r, root);
}

/**
 * True when `proof` shows that the tree of `oldSize` leaves with root `oldRoot` is a prefix
 * of the tree of `newSize` leaves with root `newRoot`. Equal sizes need an empty proof and
 * equal roots; size 0 needs an empty proof and the empty-tree root as `oldRoot`. Never
 * throws: malformed input returns false.
 */
export function verifyConsistency(oldSize: number, newSize: number, proof: readonly Uint8Array[], oldRoot: Uint8Array, newRoot: Uint8Array): boolean {
  if (!isHash(oldRoot) || !isHash(newRoot) || !isHashList(proof)) return false;
  if (!isCount(oldSize) || !isCount(newSize) || oldSize > newSize) return false;
  if (oldSize === newSize) {
    return proof.length === 0 && equalBytes(oldRoot, newRoot) && (oldSize > 0 || equalBytes(oldRoot, emptyRoot()));
  }
  if (oldSize === 0) return proof.length === 0 && equalBytes(oldRoot, emptyRoot());
  if (proof.length === 0) return false;
  // A power-of-two old tree is a node of the new one; PROOF omits it because the verifier has it.
  const [seed, ...rest] = exactLog2(oldSize) >= 0 ? [oldRoot, ...proof] : proof;
  if (seed === undefined) return false;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = seed;
  let sr = seed;
  for (const c of rest) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && equalBytes(fr, oldRoot) && equalBytes(sr, newRoot);
}

// ---------------------------------------------------------------------------------------------
// In-memory tree, for tests and tools.
// ---------------------------------------------------------------------------------------------

/**
 * A Merkle tree held in memory, built only from the functions above, so it exercises the
 * same code a persistent store does.
 *
 * @example
 *   const tree = new MemoryMerkle();
 *   const index = tree.append(leafHash(entry));
 *   const proof = inclusionProof(index, tree.size, tree.read);
 *   verifyInclusion(leafHash(entry), index, tree.size, proof, tree.root()); // true
 */
export class MemoryMerkle {
  readonly #levels: Uint8Array[][] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Reads a stored node; the copy it returns may be changed freely. Throws BAD_INPUT if absent. */
  readonly read: NodeReader = (level, index) => {
    const hash = this.#levels[level]?.[index];
    if (hash === undefined) throw badInput(`the tree has no node at level ${level}, index ${index}`);
    return hash.slice();
  };

  /** Appends a leaf hash (see `leafHash`) and returns its leaf index. */
  append(leaf: Uint8Array): number {
    for (const node of appendLeaf(this.#size, leaf, this.read)) {
      (this.#levels[node.level] ??= [])[node.index] = node.hash;
    }
    this.#size += 1;
    return this.#size - 1;
  }

  root(): Uint8Array {
    return rootAt(this.#size, this.read);
  }
}
