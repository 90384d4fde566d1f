/**
 * The ledger Merkle tree against RFC 9162 (same hashing as RFC 6962): the Certificate
 * Transparency reference vectors, a naive recursive implementation of the RFC definitions
 * (property tests over random trees), and a count of stored-node reads.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fromHex, toHex, u32be } from '../../src/crypto/index.js';
import {
  MemoryMerkle,
  appendLeaf,
  appendLeaves,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootAt,
  subtreeHash,
  verifyConsistency,
  verifyInclusion,
  type MerkleNode,
  type NodeReader,
} from '../../src/ledger/merkle.js';
import { expectCode } from '../helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// A naive implementation of the RFC 9162 definitions, on node:crypto directly, as the oracle.
// ---------------------------------------------------------------------------------------------

function sha(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

const refLeaf = (data: Uint8Array): Uint8Array => sha(Uint8Array.of(0), data);
const refNode = (left: Uint8Array, right: Uint8Array): Uint8Array => sha(Uint8Array.of(1), left, right);
const EMPTY = sha();

/** k of RFC 9162 section 2.1.1: the largest power of two smaller than n. */
function refSplit(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D_n) over leaf hashes (section 2.1.1). */
function refMth(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return EMPTY;
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  const k = refSplit(leaves.length);
  return refNode(refMth(leaves.slice(0, k)), refMth(leaves.slice(k)));
}

/** PATH(m, D_n) (section 2.1.3.1). */
function refPath(m: number, leaves: readonly Uint8Array[]): Uint8Array[] {
  if (leaves.length <= 1) return [];
  const k = refSplit(leaves.length);
  return m < k ? [...refPath(m, leaves.slice(0, k)), refMth(leaves.slice(k))] : [...refPath(m - k, leaves.slice(k)), refMth(leaves.slice(0, k))];
}

/** SUBPROOF(m, D_n, b) (section 2.1.4.1). */
function refSubproof(m: number, leaves: readonly Uint8Array[], b: boolean): Uint8Array[] {
  const n = leaves.length;
  if (m === n) return b ? [] : [refMth(leaves)];
  const k = refSplit(n);
  return m <= k
    ? [...refSubproof(m, leaves.slice(0, k), b), refMth(leaves.slice(k))]
    : [...refSubproof(m - k, leaves.slice(k), false), refMth(leaves.slice(0, k))];
}

const refProof = (m: number, leaves: readonly Uint8Array[]): Uint8Array[] => (m === 0 || m === leaves.length ? [] : refSubproof(m, leaves, true));

/**
 * The shape of PATH(m, D_n), leaf to root: R where the sibling is on the right, L on the left.
 * A proof says nothing about the size beyond this shape, so a proof verifies for another
 * (index, size) exactly when the shapes are equal.
 */
function pathShape(m: number, n: number): string {
  if (n <= 1) return '';
  const k = refSplit(n);
  return m < k ? `${pathShape(m, k)}R` : `${pathShape(m - k, n - k)}L`;
}

/**
 * The shape of PROOF(m, D_n): P when the seed is the old root (left out of the proof),
 * S when it is the first proof element; then R / L for a sibling to the right (new tree only)
 * or to the left (both trees).
 */
function proofShape(m: number, n: number, b = true): string {
  if (m === n) return b ? 'P' : 'S';
  const k = refSplit(n);
  return m <= k ? `${proofShape(m, k, b)}R` : `${proofShape(m - k, n - k, false)}L`;
}

// ---------------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------------

const hexes = (list: readonly Uint8Array[]): string[] => list.map(toHex);

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const i = (bit >> 3) % out.length;
  out[i] = (out[i] ?? 0) ^ (1 << (bit & 7));
  return out;
}

function treeOf(leaves: readonly Uint8Array[]): MemoryMerkle {
  const tree = new MemoryMerkle();
  for (const leaf of leaves) tree.append(leaf);
  return tree;
}

/** Leaf hashes of a random tree of `size` leaves, distinct per `seed`. */
function randomLeaves(size: number, seed: Uint8Array): Uint8Array[] {
  return Array.from({ length: size }, (_, i) => refLeaf(Uint8Array.from([...seed, ...u32be(i)])));
}

/** Every way to damage a proof by one element: a bit flipped, one dropped, one inserted. */
function damagedProofs(proof: readonly Uint8Array[], bit: number, extra: Uint8Array): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  proof.forEach((element, i) => {
    out.push(proof.map((p, j) => (j === i ? flipBit(element, bit) : p)));
    out.push(proof.filter((_, j) => j !== i));
    out.push([...proof.slice(0, i), element, ...proof.slice(i)]);
    out.push(proof.map((p, j) => (j === i ? p.subarray(0, 31) : p)));
  });
  for (let i = 0; i <= proof.length; i++) out.push([...proof.slice(0, i), extra, ...proof.slice(i)]);
  return out;
}

function countingReader(read: NodeReader): { read: NodeReader; count: () => number } {
  let reads = 0;
  return {
    read: (level, index) => {
      reads += 1;
      return read(level, index);
    },
    count: () => reads,
  };
}

// ---------------------------------------------------------------------------------------------
// Known-answer tests: the Certificate Transparency reference tree of eight leaves.
//
// Every vector below appears, with the same values, in at least two of:
//  [CT]   google/certificate-transparency, cpp/merkletree/merkle_tree_test.cc
//         (kInputs, kSHA256EmptyTreeHash, kSHA256Roots, kSHA256Paths, kSHA256Proofs);
//  [TD]   transparency-dev/merkle, testonly/constants.go (LeafInputs, NodeHashes, RootHashes)
//         and proof/verify_test.go (inclusionProofs, consistencyProofs);
//  [CTGO] google/certificate-transparency-go, merkletree/merkle_verifier_test.go
//         (getInputs, getRoots, getInclusionTestVector, getConsistencyProofs);
//  [CR]   chromium/chromium, net/cert/ct_log_verifier_unittest.cc
//         (kLeafHashes, kRootHashes, kAuditProofs, kConsistencyProofs).
// [CT], [TD] and [CTGO] number leaves from 1 in their path vectors; [CR] and this file from 0.
// ---------------------------------------------------------------------------------------------

// [CT] kInputs, [TD] LeafInputs, [CTGO] getInputs.
const KAT_INPUTS = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];

// Roots of the trees of 0..8 leaves: [CT] kSHA256EmptyTreeHash + kSHA256Roots, [TD] RootHashes,
// [CTGO] getRoots, [CR] kRootHashes.
const KAT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];

// Every perfect-subtree hash, by level then index: [TD] NodeHashes. Level 0 is also [CR]
// kLeafHashes; every node above it also appears in [CT] as a root, path or proof element
// (fac542… root 2, d37ee4… root 4, 5dc9da… root 8, 5f083f…/6b47aa… path of leaf 0,
// ca854e… path of leaf 5, 0ebc5d… proof 6→8).
const KAT_NODES = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  ['d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];

// Inclusion paths, leaf index from 0: [CT] kSHA256Paths, [TD] inclusionProofs,
// [CTGO] getInclusionTestVector, [CR] kAuditProofs.
const KAT_INCLUSION = [
  { index: 0, size: 1, path: [] },
  {
    index: 0,
    size: 8,
    path: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    index: 5,
    size: 8,
    path: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  { index: 2, size: 3, path: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    path: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    ],
  },
];

// Consistency proofs: [CT] kSHA256Proofs, [TD] consistencyProofs, [CTGO] getConsistencyProofs,
// [CR] kConsistencyProofs. ([TD] also has 6→7, found in no second source, so it is left out.)
const KAT_CONSISTENCY = [
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ],
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ],
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'],
  },
];

const katLeaves = KAT_INPUTS.map((h) => leafHash(fromHex(h)));
const katRoot = (size: number): Uint8Array => fromHex(KAT_ROOTS[size] as string);
const SOME_HASH = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456');

describe('known answers: the Certificate Transparency reference tree', () => {
  it('hashes leaves with the 0x00 prefix and nodes with 0x01', () => {
    expect(hexes(katLeaves)).toEqual(KAT_NODES[0]);
    expect(hexes(KAT_INPUTS.map((h) => refLeaf(fromHex(h))))).toEqual(KAT_NODES[0]);
    expect(toHex(nodeHash(katLeaves[0] as Uint8Array, katLeaves[1] as Uint8Array))).toBe(KAT_NODES[1]?.[0]);
  });

  it('has the published root for every size 0..8, and the empty tree hashes the empty string', () => {
    const tree = new MemoryMerkle();
    expect(toHex(tree.root())).toBe(KAT_ROOTS[0]);
    katLeaves.forEach((leaf, i) => {
      tree.append(leaf);
      expect(toHex(tree.root()), `size ${i + 1}`).toBe(KAT_ROOTS[i + 1]);
    });
    for (let size = 0; size <= 8; size++) expect(toHex(rootAt(size, tree.read))).toBe(KAT_ROOTS[size]);
  });

  it('appendLeaf returns exactly the published perfect subtrees as they complete', () => {
    const stored = new Map<string, Uint8Array>();
    const read: NodeReader = (level, index) => {
      const hash = stored.get(`${level}:${index}`);
      if (!hash) throw new Error(`absent ${level}:${index}`);
      return hash;
    };
    const completed: MerkleNode[][] = katLeaves.map((leaf, size) => {
      const nodes = appendLeaf(size, leaf, read);
      for (const n of nodes) stored.set(`${n.level}:${n.index}`, n.hash);
      return nodes;
    });
    expect(completed.map((nodes) => nodes.map((n) => `${n.level}:${n.index}`))).toEqual([
      ['0:0'],
      ['0:1', '1:0'],
      ['0:2'],
      ['0:3', '1:1', '2:0'],
      ['0:4'],
      ['0:5', '1:2'],
      ['0:6'],
      ['0:7', '1:3', '2:1', '3:0'],
    ]);
    KAT_NODES.forEach((level, l) => level.forEach((hash, i) => expect(toHex(read(l, i))).toBe(hash)));
  });

  it('appendLeaves gives the same nodes in one batch', () => {
    const first = treeOf(katLeaves.slice(0, 3));
    const nodes = appendLeaves(3, katLeaves.slice(3), first.read);
    expect(nodes.map((n) => [n.level, n.index, toHex(n.hash)])).toEqual(
      [3, 4, 5, 6, 7].flatMap((size) => appendLeaf(size, katLeaves[size] as Uint8Array, treeOf(katLeaves).read).map((n) => [n.level, n.index, toHex(n.hash)])),
    );
  });

  const tree = treeOf(katLeaves);

  it.each(KAT_INCLUSION)('inclusion path of leaf $index in the tree of $size', ({ index, size, path }) => {
    const proof = inclusionProof(index, size, tree.read);
    expect(hexes(proof)).toEqual(path);
    const leaf = katLeaves[index] as Uint8Array;
    const root = katRoot(size);
    expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);

    // The rejections [TD] proof/verify_test.go corruptInclusionProof and [CT] VerifierCheck expect.
    const wrong: [string, boolean][] = [
      ['index - 1', verifyInclusion(leaf, index - 1, size, proof, root)],
      ['index + 1', verifyInclusion(leaf, index + 1, size, proof, root)],
      ['index ^ 2', verifyInclusion(leaf, index ^ 2, size, proof, root)],
      ['size * 2', verifyInclusion(leaf, index, size * 2, proof, root)],
      ['size / 2', verifyInclusion(leaf, index, Math.floor(size / 2), proof, root)],
      ['wrong leaf', verifyInclusion(leafHash(new TextEncoder().encode('WrongLeaf')), index, size, proof, root)],
      ['empty root', verifyInclusion(leaf, index, size, proof, katRoot(0))],
      ['random root', verifyInclusion(leaf, index, size, proof, SOME_HASH)],
      ['trailing empty', verifyInclusion(leaf, index, size, [...proof, new Uint8Array(0)], root)],
      ['trailing root', verifyInclusion(leaf, index, size, [...proof, root], root)],
      ['preceding empty', verifyInclusion(leaf, index, size, [new Uint8Array(0), ...proof], root)],
      ['preceding root', verifyInclusion(leaf, index, size, [root, ...proof], root)],
      ...damagedProofs(proof, 3, SOME_HASH).map((p, i): [string, boolean] => [`damaged ${i}`, verifyInclusion(leaf, index, size, p, root)]),
    ];
    expect(wrong.filter(([, ok]) => ok).map(([what]) => what)).toEqual([]);
  });

  it('rejects the invalid inclusion probes of the reference suites', () => {
    for (const [index, size] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [2, 1],
    ] as const) {
      expect(verifyInclusion(SOME_HASH, index, size, [], new Uint8Array(0))).toBe(false);
      expect(verifyInclusion(new Uint8Array(0), index, size, [], katRoot(0))).toBe(false);
      expect(verifyInclusion(SOME_HASH, index, size, [], katRoot(0))).toBe(false);
    }
    // A one-leaf tree's root is its leaf hash and its proof is empty ([TD] TestVerifyInclusionSingleEntry).
    const only = leafHash(new TextEncoder().encode('data'));
    expect(verifyInclusion(only, 0, 1, [], only)).toBe(true);
    expect(verifyInclusion(only, 0, 1, [], new Uint8Array(0))).toBe(false);
    expect(verifyInclusion(new Uint8Array(0), 0, 1, [], only)).toBe(false);
  });

  it.each(KAT_CONSISTENCY)('consistency proof from $oldSize to $newSize', ({ oldSize, newSize, proof: expected }) => {
    const proof = consistencyProof(oldSize, newSize, tree.read);
    expect(hexes(proof)).toEqual(expected);
    const oldRoot = katRoot(oldSize);
    const newRoot = katRoot(newSize);
    expect(verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot)).toBe(true);
    if (proof.length === 0) return;

    // The rejections [TD] corruptConsistencyProof and [CT] VerifierConsistencyCheck expect.
    const wrongRoot = new TextEncoder().encode('WrongRoot');
    const wrong: [string, boolean][] = [
      ['oldSize - 1', verifyConsistency(oldSize - 1, newSize, proof, oldRoot, newRoot)],
      ['oldSize + 1', verifyConsistency(oldSize + 1, newSize, proof, oldRoot, newRoot)],
      ['oldSize ^ 2', verifyConsistency(oldSize ^ 2, newSize, proof, oldRoot, newRoot)],
      ['newSize * 2', verifyConsistency(oldSize, newSize * 2, proof, oldRoot, newRoot)],
      ['newSize / 2', verifyConsistency(oldSize, Math.floor(newSize / 2), proof, oldRoot, newRoot)],
      ['wrong old root', verifyConsistency(oldSize, newSize, proof, wrongRoot, newRoot)],
      ['wrong new root', verifyConsistency(oldSize, newSize, proof, oldRoot, wrongRoot)],
      ['swapped roots', verifyConsistency(oldSize, newSize, proof, newRoot, oldRoot)],
      ['empty proof', verifyConsistency(oldSize, newSize, [], oldRoot, newRoot)],
      ['trailing empty', verifyConsistency(oldSize, newSize, [...proof, new Uint8Array(0)], oldRoot, newRoot)],
      ['trailing old root', verifyConsistency(oldSize, newSize, [...proof, oldRoot], oldRoot, newRoot)],
      ['trailing new root', verifyConsistency(oldSize, newSize, [...proof, newRoot], oldRoot, newRoot)],
      ['preceding empty', verifyConsistency(oldSize, newSize, [new Uint8Array(0), ...proof], oldRoot, newRoot)],
      ['preceding old root', verifyConsistency(oldSize, newSize, [oldRoot, ...proof], oldRoot, newRoot)],
      ['preceding new root', verifyConsistency(oldSize, newSize, [newRoot, ...proof], oldRoot, newRoot)],
      ...damagedProofs(proof, 4, SOME_HASH).map((p, i): [string, boolean] => [`damaged ${i}`, verifyConsistency(oldSize, newSize, p, oldRoot, newRoot)]),
    ];
    expect(wrong.filter(([, ok]) => ok).map(([what]) => what)).toEqual([]);
  });

  it('treats equal sizes and the empty tree as the reference suites do, with the empty root pinned', () => {
    const [r1, r2] = [katRoot(1), katRoot(2)];
    // Sizes that are always consistent.
    expect(verifyConsistency(1, 1, [], r1, r1)).toBe(true);
    expect(verifyConsistency(0, 0, [], EMPTY, EMPTY)).toBe(true);
    expect(verifyConsistency(0, 1, [], EMPTY, r1)).toBe(true);
    // Time travel, an empty proof for different sizes, mismatched roots, needless proofs.
    expect(verifyConsistency(1, 0, [], r1, EMPTY)).toBe(false);
    expect(verifyConsistency(2, 1, [], r2, r1)).toBe(false);
    expect(verifyConsistency(1, 2, [], r1, r2)).toBe(false);
    expect(verifyConsistency(1, 1, [], r1, r2)).toBe(false);
    expect(verifyConsistency(0, 0, [], EMPTY, r1)).toBe(false);
    expect(verifyConsistency(0, 0, [EMPTY], EMPTY, EMPTY)).toBe(false);
    expect(verifyConsistency(0, 1, [EMPTY], EMPTY, r1)).toBe(false);
    expect(verifyConsistency(1, 1, [EMPTY], r1, r1)).toBe(false);
    // Stricter than the reference verifiers: the tree of size 0 has one root, SHA-256("").
    expect(verifyConsistency(0, 1, [], r2, r1)).toBe(false);
    expect(verifyConsistency(0, 0, [], r1, r1)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Property tests against the naive implementation.
// ---------------------------------------------------------------------------------------------

const RUNS = 200;
const treeArb = fc.record({ size: fc.integer({ min: 1, max: 300 }), seed: fc.uint8Array({ minLength: 8, maxLength: 8 }) });

describe('random trees against the RFC definitions', () => {
  it('rootAt and subtreeHash equal the recursive MTH for every prefix and aligned range', () => {
    fc.assert(
      fc.property(treeArb, fc.nat(), fc.nat(), fc.nat(), ({ size, seed }, a, b, c) => {
        const leaves = randomLeaves(size, seed);
        const tree = treeOf(leaves);
        expect(tree.size).toBe(size);
        expect(toHex(tree.root())).toBe(toHex(refMth(leaves)));
        const prefix = a % (size + 1);
        expect(toHex(rootAt(prefix, tree.read))).toBe(toHex(refMth(leaves.slice(0, prefix))));
        // An aligned range: a length, then a start that is a multiple of its split point.
        const length = 1 + (b % size);
        const step = length >= 2 ? refSplit(length) : 1;
        const slots = Math.floor((size - length) / step) + 1;
        const start = (c % slots) * step;
        expect(toHex(subtreeHash(start, start + length, tree.read))).toBe(toHex(refMth(leaves.slice(start, start + length))));
      }),
      { numRuns: RUNS },
    );
  });

  it('appendLeaves in random batches stores the same nodes as one leaf at a time', () => {
    fc.assert(
      fc.property(treeArb, fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), ({ size, seed }, cuts) => {
        const leaves = randomLeaves(size, seed);
        const stored = new Map<string, Uint8Array>();
        const read: NodeReader = (level, index) => {
          const hash = stored.get(`${level}:${index}`);
          if (!hash) throw new Error(`absent ${level}:${index}`);
          return hash;
        };
        let done = 0;
        for (let i = 0; done < size; i++) {
          const batch = leaves.slice(done, done + (cuts[i % cuts.length] as number));
          for (const n of appendLeaves(done, batch, read)) stored.set(`${n.level}:${n.index}`, n.hash);
          done += batch.length;
        }
        const oneByOne = treeOf(leaves);
        expect(toHex(rootAt(size, read))).toBe(toHex(oneByOne.root()));
        for (const [key, hash] of stored) {
          const [level, index] = key.split(':').map(Number) as [number, number];
          expect(toHex(hash)).toBe(toHex(oneByOne.read(level, index)));
        }
      }),
      { numRuns: RUNS / 2 },
    );
  });

  it('every inclusion proof is PATH, verifies, and fails when anything is changed', () => {
    fc.assert(
      fc.property(treeArb, fc.nat(), fc.nat(), fc.nat(), fc.nat(), ({ size, seed }, a, b, c, bit) => {
        const leaves = randomLeaves(size, seed);
        const tree = treeOf(leaves);
        const index = a % size;
        const n = 1 + (b % size);
        const i = index % n;
        const leaf = leaves[i] as Uint8Array;
        const root = rootAt(n, tree.read);
        const proof = inclusionProof(i, n, tree.read);
        expect(hexes(proof)).toEqual(hexes(refPath(i, leaves.slice(0, n))));
        expect(verifyInclusion(leaf, i, n, proof, root)).toBe(true);

        expect(verifyInclusion(flipBit(leaf, bit), i, n, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, i, n, proof, flipBit(root, bit))).toBe(false);
        if (n > 1) expect(verifyInclusion(leaf, (i + 1 + (c % (n - 1))) % n, n, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, i, n * 2, proof, root)).toBe(false);
        for (const damaged of damagedProofs(proof, bit, SOME_HASH)) expect(verifyInclusion(leaf, i, n, damaged, root)).toBe(false);

        // Another (index, size) accepts this proof exactly when its path has the same shape:
        // never for another index of the same tree, sometimes for another size.
        const otherSize = 1 + (c % 600);
        const otherIndex = (i + (bit % 3)) % otherSize;
        if (otherSize !== n || otherIndex !== i) {
          expect(verifyInclusion(leaf, otherIndex, otherSize, proof, root)).toBe(pathShape(otherIndex, otherSize) === pathShape(i, n));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('every consistency proof is PROOF, verifies, and fails when tampered or the roots are changed', () => {
    fc.assert(
      fc.property(treeArb, fc.nat(), fc.nat(), fc.nat(), fc.nat(), ({ size, seed }, a, b, c, bit) => {
        const leaves = randomLeaves(size, seed);
        const tree = treeOf(leaves);
        const n = 1 + (a % size);
        const m = b % (n + 1);
        const oldRoot = rootAt(m, tree.read);
        const newRoot = rootAt(n, tree.read);
        const proof = consistencyProof(m, n, tree.read);
        expect(hexes(proof)).toEqual(hexes(refProof(m, leaves.slice(0, n))));
        expect(verifyConsistency(m, n, proof, oldRoot, newRoot)).toBe(true);

        expect(verifyConsistency(m, n, proof, flipBit(oldRoot, bit), newRoot)).toBe(false);
        // The empty tree is a prefix of every tree: nothing ties the new root to a size-0 proof.
        expect(verifyConsistency(m, n, proof, oldRoot, flipBit(newRoot, bit))).toBe(m === 0);
        if (m < n) expect(verifyConsistency(m, n, proof, newRoot, oldRoot)).toBe(false);
        for (const damaged of damagedProofs(proof, bit, SOME_HASH)) {
          expect(verifyConsistency(m, n, damaged, oldRoot, newRoot)).toBe(false);
        }

        // Other sizes accept the proof exactly when PROOF has the same shape for them.
        if (proof.length > 0) {
          const otherNew = 2 + (c % 600);
          const otherOld = 1 + ((m + (bit % 5)) % (otherNew - 1));
          if (otherOld !== m || otherNew !== n) {
            const same = proofShape(otherOld, otherNew) === proofShape(m, n);
            expect(verifyConsistency(otherOld, otherNew, proof, oldRoot, newRoot)).toBe(same);
          }
          expect(verifyConsistency(n, n, proof, oldRoot, newRoot)).toBe(false);
          expect(verifyConsistency(0, n, proof, oldRoot, newRoot)).toBe(false);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('the shapes are not vacuous: some other sizes do share a proof', () => {
    // Leaf 0 of 3 and of 4 both have path shape RR; PROOF(2, 3) and PROOF(2, 4) are both PR.
    const tree = treeOf(katLeaves);
    expect(verifyInclusion(katLeaves[0] as Uint8Array, 0, 4, inclusionProof(0, 3, tree.read), katRoot(3))).toBe(true);
    expect(verifyConsistency(2, 4, consistencyProof(2, 3, tree.read), katRoot(2), katRoot(3))).toBe(true);
  });

  it('the verifiers return false, never throw, on arbitrary input', () => {
    const anyProof = fc.oneof(fc.anything(), fc.array(fc.uint8Array({ minLength: 30, maxLength: 33 }), { maxLength: 70 }));
    const anyHash = fc.oneof(fc.anything(), fc.uint8Array({ minLength: 31, maxLength: 33 }));
    const anySize = fc.oneof(fc.anything(), fc.integer(), fc.double(), fc.constant(2 ** 53), fc.constant(Number.MAX_SAFE_INTEGER));
    fc.assert(
      fc.property(anyHash, anySize, anySize, anyProof, anyHash, (h1, s1, s2, proof, h2) => {
        const [a, b, c, d, e] = [h1, s1, s2, proof, h2] as [never, never, never, never, never];
        expect(typeof verifyInclusion(a, b, c, d, e)).toBe('boolean');
        expect(typeof verifyConsistency(b, c, d, a, e)).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Cost: stored-node reads are O(log n), counted rather than timed.
// ---------------------------------------------------------------------------------------------

describe('stored-node reads', () => {
  const size = 100_003; // not a power of two, so the ragged right edge is exercised
  const big = new MemoryMerkle();
  for (let i = 0; i < size; i++) big.append(leafHash(u32be(i)));
  const bound = 4 * Math.log2(size) + 8;

  it(`stay below 4·log2(n) + 8 = ${Math.floor(bound)} for heads, proofs and appends in a tree of ${size}`, () => {
    const counts: Record<string, number> = {};
    const measure = (what: string, fn: (read: NodeReader) => unknown): void => {
      const counter = countingReader(big.read);
      fn(counter.read);
      counts[what] = counter.count();
    };
    measure('root', (read) => rootAt(size, read));
    measure('append', (read) => appendLeaf(size, leafHash(u32be(size)), read));
    measure('append at 2^17 - 1', (read) => appendLeaf(2 ** 17 - 1, SOME_HASH, (l, i) => (l < 17 ? SOME_HASH : read(l, i))));
    for (const index of [0, 1, 65_535, 65_536, 99_999, size - 2, size - 1, 12_345]) {
      measure(`inclusion ${index}`, (read) => inclusionProof(index, size, read));
    }
    for (const oldSize of [1, 2, 3, 65_535, 65_536, 65_537, 99_999, size - 1, 54_321]) {
      measure(`consistency ${oldSize}`, (read) => consistencyProof(oldSize, size, read));
    }
    const over = Object.entries(counts).filter(([, n]) => n >= bound);
    expect(over).toEqual([]);
    // And they are real proofs: spot-check one of each against the root.
    const root = big.root();
    expect(verifyInclusion(leafHash(u32be(99_999)), 99_999, size, inclusionProof(99_999, size, big.read), root)).toBe(true);
    expect(verifyConsistency(54_321, size, consistencyProof(54_321, size, big.read), rootAt(54_321, big.read), root)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad arguments.
// ---------------------------------------------------------------------------------------------

describe('bad arguments are BAD_INPUT', () => {
  const tree = treeOf(katLeaves);
  const read = tree.read;

  it('rejects indices outside the tree and sizes that are not counts', () => {
    for (const bad of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) {
      expectCode(() => rootAt(bad, read), 'BAD_INPUT');
      expectCode(() => inclusionProof(bad, 8, read), 'BAD_INPUT');
      expectCode(() => inclusionProof(0, bad, read), 'BAD_INPUT');
      expectCode(() => consistencyProof(bad, 8, read), 'BAD_INPUT');
      expectCode(() => consistencyProof(0, bad, read), 'BAD_INPUT');
      expectCode(() => appendLeaf(bad, SOME_HASH, read), 'BAD_INPUT');
      expectCode(() => subtreeHash(bad, 4, read), 'BAD_INPUT');
    }
    expectCode(() => inclusionProof(8, 8, read), 'BAD_INPUT');
    expectCode(() => inclusionProof(0, 0, read), 'BAD_INPUT');
    expectCode(() => consistencyProof(5, 4, read), 'BAD_INPUT');
  });

  it('rejects leaf hashes that are not 32 bytes, and child hashes likewise', () => {
    expectCode(() => appendLeaf(8, new Uint8Array(31), read), 'BAD_INPUT');
    expectCode(() => appendLeaves(8, [SOME_HASH, new Uint8Array(33)], read), 'BAD_INPUT');
    expectCode(() => new MemoryMerkle().append('leaf' as never), 'BAD_INPUT');
    expectCode(() => nodeHash(SOME_HASH, new Uint8Array(0)), 'BAD_INPUT');
    expectCode(() => leafHash('data' as never), 'BAD_INPUT');
  });

  it('rejects unaligned or reversed subtree ranges, which would cost O(n) reads', () => {
    expectCode(() => subtreeHash(1, 4, read), 'BAD_INPUT');
    expectCode(() => subtreeHash(2, 7, read), 'BAD_INPUT');
    expectCode(() => subtreeHash(5, 4, read), 'BAD_INPUT');
    expect(toHex(subtreeHash(4, 8, read))).toBe(KAT_NODES[2]?.[1]);
    expect(toHex(subtreeHash(2, 4, read))).toBe(KAT_NODES[1]?.[1]);
    expect(toHex(subtreeHash(6, 6, read))).toBe(KAT_ROOTS[0]);
  });

  it('reports nodes the tree does not have', () => {
    expectCode(() => rootAt(9, read), 'BAD_INPUT');
    expectCode(() => read(0, 8), 'BAD_INPUT');
    expectCode(() => inclusionProof(0, 9, read), 'BAD_INPUT');
  });

  it('hands out copies, so a caller cannot corrupt the stored tree', () => {
    const given = katLeaves.map((leaf) => leaf.slice());
    const copy = treeOf(given);
    given.forEach((leaf) => leaf.fill(0));
    const proof = inclusionProof(0, 8, copy.read);
    proof.forEach((p) => p.fill(0));
    copy.read(3, 0).fill(0);
    for (let size = 0; size <= 8; size++) expect(toHex(rootAt(size, copy.read))).toBe(KAT_ROOTS[size]);
  });
});
