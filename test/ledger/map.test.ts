/**
 * The subject map (src/ledger/map.ts) against a naive recursive model of its definition, on
 * node:crypto directly: roots, stored nodes and proofs over random maps whose keys share long
 * prefixes, insertion-order independence, tampered and misapplied proofs, known-answer vectors,
 * the storage encoding, and the verifier on junk.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, fromBase64url } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import {
  MAP_EMPTY,
  MemoryMapNodes,
  decodeMapNode,
  decodeMapNodeHex,
  encodeMapNode,
  entryText,
  keyBit,
  mapKey,
  mapLeafHash,
  mapNodeHash,
  mapPath,
  mapProof,
  mapRoot,
  updateMap,
  verifyMapProof,
  type MapEntry,
  type MapProof,
  type StoredMapNode,
} from '../../src/ledger/map.js';
import { expectCode } from '../helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// The model: the header's definitions, written out naively on node:crypto.
// ---------------------------------------------------------------------------------------------

type Pair = readonly [Uint8Array, MapEntry];
/** Key (hex) → latest entry. */
type Model = Map<string, MapEntry>;

function sha(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'hex'));
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const refBit = (key: Uint8Array, i: number): number => ((key[Math.floor(i / 8)] ?? 0) >> (7 - (i % 8))) & 1;
/** RFC 8785 of {gseq, leaf, seq} for integers and a base64url string: keys sorted, numbers in decimal. */
const refEntryJson = (e: MapEntry): string => `{"gseq":${e.gseq},"leaf":"${e.leaf}","seq":${e.seq}}`;
const refLeaf = (key: Uint8Array, e: MapEntry): Uint8Array => sha(Uint8Array.of(2), key, Buffer.from(refEntryJson(e), 'utf8'));
const refNode = (left: Uint8Array, right: Uint8Array): Uint8Array => sha(Uint8Array.of(3), left, right);
const ZERO = new Uint8Array(32);

function sortedPairs(model: Model): Pair[] {
  return [...model].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, e]) => [unhex(k), e] as const);
}

/** hash(S, d) over pairs sorted by key: those with bit d = 0 come first. */
function refHash(sorted: readonly Pair[], depth: number): Uint8Array {
  const [first] = sorted;
  if (first === undefined) return ZERO;
  if (sorted.length === 1) return refLeaf(first[0], first[1]);
  const cut = sorted.findIndex(([k]) => refBit(k, depth) === 1);
  const at = cut === -1 ? sorted.length : cut;
  return refNode(refHash(sorted.slice(0, at), depth + 1), refHash(sorted.slice(at), depth + 1));
}

const refRoot = (model: Model): Uint8Array => refHash(sortedPairs(model), 0);

/** How many nodes the map of these pairs stores: one per non-empty subtree. */
function refCount(sorted: readonly Pair[], depth: number): number {
  if (sorted.length <= 1) return sorted.length;
  return (
    1 +
    [0, 1].reduce(
      (n, b) =>
        n +
        refCount(
          sorted.filter(([k]) => refBit(k, depth) === b),
          depth + 1,
        ),
      0,
    )
  );
}

/**
 * The proof the definition gives: walk down key's path while at least two stored keys share
 * its prefix; each step's sibling is the hash of the keys that leave the path there.
 */
function refProof(model: Model, key: Uint8Array): MapProof {
  let shared = sortedPairs(model);
  const siblings: (string | null)[] = [];
  for (let depth = 0; shared.length > 1; depth++) {
    const side = shared.filter(([k]) => refBit(k, depth) !== refBit(key, depth));
    siblings.push(side.length === 0 ? null : b64(refHash(side, depth + 1)));
    shared = shared.filter(([k]) => refBit(k, depth) === refBit(key, depth));
  }
  const [only] = shared;
  if (only === undefined) return { siblings };
  const [k, entry] = only;
  return hex(k) === hex(key) ? { siblings, entry } : { siblings, other: { key: b64(k), entry } };
}

// ---------------------------------------------------------------------------------------------
// Generators: keys from SHA-256 of strings, and keys one to three bit flips away from two fixed
// bases, so that maps split deep (down to depth 256) and not only near the root.
// ---------------------------------------------------------------------------------------------

const BASES = [sha(Buffer.from('base 0')), sha(Buffer.from('base 1'))];

function flipped(key: Uint8Array, bits: readonly number[]): Uint8Array {
  const out = key.slice();
  for (const i of bits) out[i >> 3] = (out[i >> 3] ?? 0) ^ (0x80 >> (i & 7));
  return out;
}

const keyArb = fc.oneof(
  fc.string({ maxLength: 8 }).map((s) => sha(Buffer.from(`subject:${s}`))),
  fc.constantFrom(...BASES),
  fc
    .tuple(
      fc.constantFrom(...BASES),
      fc.uniqueArray(fc.oneof(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 12 })), { minLength: 1, maxLength: 3 }),
    )
    .map(([base, bits]) => flipped(base, bits)),
);
const countArb = fc.oneof(fc.nat(1000), fc.maxSafeNat());
const hashTextArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(b64);
const entryArb: fc.Arbitrary<MapEntry> = fc.record({ seq: countArb, gseq: countArb, leaf: hashTextArb });

const scenarioArb = fc.record({
  pool: fc.uniqueArray(keyArb, { minLength: 1, maxLength: 60, selector: hex }),
  ops: fc.array(fc.tuple(fc.nat(), entryArb), { maxLength: 90 }),
  cuts: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 8 }),
  strangers: fc.array(keyArb, { maxLength: 6 }),
});

type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

interface Built {
  nodes: MemoryMapNodes;
  model: Model;
  root: Uint8Array;
}

/**
 * Applies the scenario's updates in its batches, checking after each one: the model's root, one
 * stored node per non-empty subtree, each path written once, the source left alone.
 */
function build({ pool, ops, cuts }: Scenario): Built {
  const nodes = new MemoryMapNodes();
  const model: Model = new Map();
  const updates = ops.map(([i, entry]) => ({ key: pool[i % pool.length] as Uint8Array, entry }));
  let root = mapRoot(nodes);
  for (let at = 0, c = 0; at < updates.length; c++) {
    const batch = updates.slice(at, at + (cuts[c % cuts.length] ?? 1));
    at += batch.length;
    const sizeBefore = nodes.size;
    const result = updateMap(nodes, batch);
    expect(nodes.size).toBe(sizeBefore);
    expect(hex(mapRoot(nodes))).toBe(hex(root));
    expect(new Set(result.writes.map((w) => hex(w.path))).size).toBe(result.writes.length);
    nodes.apply(result.writes);
    for (const { key, entry } of batch) model.set(hex(key), entry);
    root = result.root;
    expect(hex(root)).toBe(hex(refRoot(model)));
    expect(hex(mapRoot(nodes))).toBe(hex(root));
    expect(nodes.size).toBe(refCount(sortedPairs(model), 0));
  }
  return { nodes, model, root };
}

/** Keys the map does not hold: unused pool keys, strangers, and neighbours of held keys. */
function absentKeys({ pool, strangers }: Scenario, model: Model): Uint8Array[] {
  const near = [...model.keys()].slice(0, 8).flatMap((k) => [flipped(unhex(k), [255]), flipped(unhex(k), [(unhex(k)[0] ?? 0) % 256])]);
  return [...pool, ...strangers, ...near].filter((k) => !model.has(hex(k)));
}

const kindOf = (proof: MapProof): 'entry' | 'empty' | 'other' => (proof.entry !== undefined ? 'entry' : proof.other !== undefined ? 'other' : 'empty');

// ---------------------------------------------------------------------------------------------

describe('the map against its definition', () => {
  it('gives the model root after every batch, then proves every held key with its latest entry and every other key absent, exactly as the definition says', () => {
    const kinds = { entry: 0, empty: 0, other: 0 };
    fc.assert(
      fc.property(scenarioArb, (scenario) => {
        const { nodes, model, root } = build(scenario);
        for (const key of [...[...model.keys()].map(unhex), ...absentKeys(scenario, model)]) {
          const proof = mapProof(nodes, key);
          expect(proof).toEqual(refProof(model, key));
          kinds[kindOf(proof)] += 1;
          const expected = { ok: true, entry: model.get(hex(key)) };
          expect(verifyMapProof(root, key, proof)).toEqual(expected);
          expect(verifyMapProof(root, key, JSON.parse(JSON.stringify(proof)))).toEqual(expected);
        }
      }),
      { numRuns: 100 },
    );
    expect(kinds.entry).toBeGreaterThan(0);
    expect(kinds.empty).toBeGreaterThan(0);
    expect(kinds.other).toBeGreaterThan(0);
  });

  it('has a root that does not depend on the order or batching of the updates', () => {
    const pairsArb = fc.uniqueArray(fc.tuple(keyArb, entryArb), { maxLength: 40, selector: ([k]) => hex(k) });
    fc.assert(
      fc.property(
        pairsArb.chain((pairs) => fc.tuple(fc.constant(pairs), fc.shuffledSubarray(pairs, { minLength: pairs.length, maxLength: pairs.length }))),
        entryArb,
        ([pairs, shuffled], stale) => {
          const oneBatch = updateMap(
            new MemoryMapNodes(),
            pairs.map(([key, entry]) => ({ key, entry })),
          ).root;
          const oneByOne = new MemoryMapNodes();
          for (const [key, entry] of shuffled) oneByOne.apply(updateMap(oneByOne, [{ key, entry }]).writes);
          // Every key first set to a stale entry in the same batch: the later update wins.
          const overwritten = updateMap(
            new MemoryMapNodes(),
            shuffled.flatMap(([key, entry]) => [
              { key, entry: stale },
              { key, entry },
            ]),
          ).root;
          expect(hex(mapRoot(oneByOne))).toBe(hex(oneBatch));
          expect(hex(overwritten)).toBe(hex(oneBatch));
          expect(hex(oneBatch)).toBe(hex(refRoot(new Map(pairs.map(([k, e]) => [hex(k), e])))));
        },
      ),
      { numRuns: 100 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Tampering: each variant of a valid proof must fail.
// ---------------------------------------------------------------------------------------------

const flipText = (text: string, bit: number): string => b64(flipped(fromBase64url(text), [bit % 256]));
const withEntry = (e: MapEntry, change: Partial<MapEntry>): MapEntry => ({ ...e, ...change });

/** Variants of (root, proof), each one change away from the valid pair; `bit` picks bits to flip. */
function tamperings(root: Uint8Array, proof: MapProof, bit: number): [string, Uint8Array, unknown][] {
  const { siblings, entry, other } = proof;
  const out: [string, Uint8Array, unknown][] = [['root', flipped(root, [bit % 256]), proof]];
  const d = siblings.length;
  const indices = [...new Set([0, d - 1, bit % Math.max(d, 1), (bit * 7) % Math.max(d, 1)])].filter((i) => i >= 0 && i < d);
  for (const i of indices) {
    const s = siblings[i];
    const changed = typeof s === 'string' ? flipText(s, bit + i) : b64(sha(Uint8Array.of(i)));
    out.push([`sibling ${i}`, root, { ...proof, siblings: siblings.map((x, j) => (j === i ? changed : x)) }]);
  }
  if (d > 0) {
    out.push(['first sibling removed', root, { ...proof, siblings: siblings.slice(1) }]);
    out.push(['last sibling removed', root, { ...proof, siblings: siblings.slice(0, -1) }]);
  }
  out.push(['null appended', root, { ...proof, siblings: [...siblings, null] }]);
  out.push(['null prepended', root, { ...proof, siblings: [null, ...siblings] }]);
  out.push(['hash appended', root, { ...proof, siblings: [...siblings, b64(root)] }]);
  const entryVariants = (e: MapEntry): MapEntry[] => [
    withEntry(e, { seq: e.seq + 1 }),
    withEntry(e, { gseq: e.gseq === 0 ? 1 : e.gseq - 1 }),
    withEntry(e, { seq: e.gseq, gseq: e.seq + (e.seq === e.gseq ? 1 : 0) }),
    withEntry(e, { leaf: flipText(e.leaf, bit) }),
  ];
  if (entry !== undefined) {
    for (const e of entryVariants(entry)) out.push(['entry', root, { ...proof, entry: e }]);
    out.push(['entry removed', root, { siblings }]);
  }
  if (other !== undefined) {
    out.push(['other key', root, { siblings, other: { ...other, key: flipText(other.key, bit) } }]);
    out.push(['other key, deep bit', root, { siblings, other: { ...other, key: flipText(other.key, 255) } }]);
    for (const e of entryVariants(other.entry)) out.push(['other entry', root, { siblings, other: { ...other, entry: e } }]);
    out.push(['other removed', root, { siblings }]);
    out.push(['other as entry', root, { siblings, entry: other.entry }]);
  }
  if (entry === undefined && other === undefined) {
    out.push(['entry added', root, { siblings, entry: { seq: 0, gseq: 0, leaf: b64(ZERO) } }]);
  }
  return out;
}

describe('tampered and misapplied proofs', () => {
  const smallScenario = scenarioArb.map((s) => ({ ...s, pool: s.pool.slice(0, 24), ops: s.ops.slice(0, 30) }));

  it('fail after any single change to the root, a sibling, an entry or the other leaf', () => {
    fc.assert(
      fc.property(smallScenario, fc.nat(), (scenario, bit) => {
        const { nodes, model, root } = build(scenario);
        const keys = [...[...model.keys()].slice(0, 4).map(unhex), ...absentKeys(scenario, model).slice(0, 4)];
        for (const key of keys) {
          for (const [what, r, proof] of tamperings(root, mapProof(nodes, key), bit)) {
            const result = verifyMapProof(r, key, proof);
            expect(result.ok, what).toBe(false);
          }
        }
      }),
      { numRuns: 60 },
    );
  });

  it('a membership proof is for its own key only; an absent key never verifies with an entry', () => {
    fc.assert(
      fc.property(smallScenario, (scenario) => {
        const { nodes, model, root } = build(scenario);
        const held = [...model.keys()].slice(0, 6).map(unhex);
        const absent = absentKeys(scenario, model).slice(0, 6);
        for (const k of held) {
          const proof = mapProof(nodes, k);
          for (const other of [...held, ...absent]) {
            if (hex(other) !== hex(k)) expect(verifyMapProof(root, other, proof).ok).toBe(false);
          }
        }
        for (const a of absent) {
          const proof = mapProof(nodes, a);
          for (const [, e] of [...model].slice(0, 3)) expect(verifyMapProof(root, a, { ...proof, other: undefined, entry: e }).ok).toBe(false);
          for (const k of held) {
            const result = verifyMapProof(root, a, mapProof(nodes, k));
            expect(result.ok && result.entry !== undefined).toBe(false);
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Known answers.
// ---------------------------------------------------------------------------------------------

const FIXED: [string, MapEntry][] = [
  ['policy:a', { seq: 0, gseq: 0, leaf: b64(new Uint8Array(32).fill(0x11)) }],
  ['did:dkms:b', { seq: 2, gseq: 5, leaf: b64(new Uint8Array(32).fill(0x22)) }],
  ['policy:c', { seq: 1, gseq: Number.MAX_SAFE_INTEGER, leaf: b64(new Uint8Array(32).fill(0x33)) }],
];
const FIXED_ROOT = '8bd08332da485f56cd6592d13d84f1646c72a672ee4e0cbb9a2ab1029144203e';

function fixedMap(): MemoryMapNodes {
  const nodes = new MemoryMapNodes();
  nodes.apply(
    updateMap(
      nodes,
      FIXED.map(([s, entry]) => ({ key: mapKey(s), entry })),
    ).writes,
  );
  return nodes;
}

describe('known answers', () => {
  it('the empty map has the root EMPTY (32 zero bytes) and proves every key absent', () => {
    const nodes = new MemoryMapNodes();
    expect(hex(MAP_EMPTY)).toBe('00'.repeat(32));
    expect(hex(mapRoot(nodes))).toBe('00'.repeat(32));
    expect(updateMap(nodes, [])).toEqual({ root: new Uint8Array(32), writes: [] });
    const key = mapKey('policy:a');
    expect(mapProof(nodes, key)).toEqual({ siblings: [] });
    expect(verifyMapProof(MAP_EMPTY, key, { siblings: [] })).toEqual({ ok: true, entry: undefined });
    // Roots are copies: changing one changes neither the map nor EMPTY.
    mapRoot(nodes).fill(1);
    updateMap(nodes, []).root.fill(1);
    expect(hex(MAP_EMPTY)).toBe('00'.repeat(32));
    expect(hex(mapRoot(nodes))).toBe('00'.repeat(32));
  });

  it('three subjects: keys, leaf encodings, tree shape and root, computed again on node:crypto', () => {
    const [a, b, c] = FIXED.map(([s, e]) => ({ key: sha(Buffer.from(s, 'utf8')), entry: e }));
    if (a === undefined || b === undefined || c === undefined) throw new Error('three subjects');
    expect(hex(a.key)).toBe('0dc81844a6ce1e84fe691ebd57099ba8d8d6bbe5cba9960201cbceec5056a0a7');
    expect(hex(mapKey('policy:a'))).toBe(hex(a.key));
    // First bits: policy:a 000…, did:dkms:b 01…, policy:c 001…; so the root is
    // node(node(node(leaf a, leaf c), leaf b), EMPTY).
    expect([a, b, c].map(({ key }) => (key[0] ?? 0) >> 5)).toEqual([0b000, 0b011, 0b001]);
    const leafInput = (key: Uint8Array, json: string): Uint8Array => sha(Uint8Array.of(0x02), key, Buffer.from(json, 'utf8'));
    const la = leafInput(a.key, '{"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}');
    const lb = leafInput(b.key, '{"gseq":5,"leaf":"IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI","seq":2}');
    const lc = leafInput(c.key, '{"gseq":9007199254740991,"leaf":"MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM","seq":1}');
    const node = (l: Uint8Array, r: Uint8Array): Uint8Array => sha(Uint8Array.of(0x03), l, r);
    const ac = node(la, lc);
    const acb = node(ac, lb);
    expect(hex(node(acb, ZERO))).toBe(FIXED_ROOT);
    expect(hex(mapLeafHash(a.key, a.entry))).toBe(hex(la));
    expect(hex(mapNodeHash(la, lc))).toBe(hex(ac));

    const nodes = fixedMap();
    expect(hex(mapRoot(nodes))).toBe(FIXED_ROOT);
    expect(nodes.size).toBe(6);
    // Proofs list siblings from the root down.
    expect(mapProof(nodes, c.key)).toEqual({ siblings: [null, b64(lb), b64(la)], entry: c.entry });
    expect(mapProof(nodes, b.key)).toEqual({ siblings: [null, b64(ac)], entry: b.entry });
    // 1000…: the root's right child is empty.
    const right = flipped(new Uint8Array(32), [0]);
    expect(mapProof(nodes, right)).toEqual({ siblings: [b64(acb)] });
    // 0100…: reaches did:dkms:b's leaf at depth 2.
    const nearB = flipped(new Uint8Array(32), [1]);
    expect(mapProof(nodes, nearB)).toEqual({ siblings: [null, b64(ac)], other: { key: b64(b.key), entry: b.entry } });
    for (const key of [a.key, b.key, c.key, right, nearB]) {
      const proof = mapProof(nodes, key);
      expect(verifyMapProof(unhex(FIXED_ROOT), key, proof)).toEqual({ ok: true, entry: proof.entry });
    }
  });

  it('keys that differ only in their last bit put their leaves at depth 256', () => {
    const [base] = BASES;
    if (base === undefined) throw new Error('a base key');
    const twin = flipped(base, [255]);
    const entry: MapEntry = { seq: 1, gseq: 2, leaf: b64(sha()) };
    const nodes = new MemoryMapNodes();
    nodes.apply(updateMap(nodes, [{ key: base, entry }]).writes);
    nodes.apply(updateMap(nodes, [{ key: twin, entry }]).writes);
    expect(nodes.size).toBe(258);
    expect(nodes.get(mapPath(twin, 256))?.kind).toBe('leaf');
    const root = mapRoot(nodes);
    const proof = mapProof(nodes, twin);
    expect(proof.siblings).toHaveLength(256);
    expect(proof.siblings.slice(0, 255).every((s) => s === null)).toBe(true);
    expect(proof.siblings[255]).toBe(b64(mapLeafHash(base, entry)));
    expect(verifyMapProof(root, twin, proof)).toEqual({ ok: true, entry });
    expect(verifyMapProof(root, twin, { ...proof, siblings: [null, ...proof.siblings] })).toMatchObject({ ok: false });
    // A key that leaves their shared path at bit 254 ends at an empty position at depth 255.
    const cousin = flipped(base, [254]);
    const absent = mapProof(nodes, cousin);
    expect(absent.siblings).toHaveLength(255);
    expect(verifyMapProof(root, cousin, absent)).toEqual({ ok: true, entry: undefined });
    expect(hex(root)).toBe(
      hex(
        refRoot(
          new Map([
            [hex(base), entry],
            [hex(twin), entry],
          ]),
        ),
      ),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Keys, bits, paths and input checks.
// ---------------------------------------------------------------------------------------------

describe('keys, bits and paths', () => {
  it('mapKey is SHA-256 of the UTF-8 subject and refuses lone surrogates', () => {
    expect(hex(mapKey('did:dkms:é'))).toBe(hex(sha(Buffer.from('did:dkms:é', 'utf8'))));
    expectCode(() => mapKey('policy:\uD800'), 'BAD_INPUT');
    expectCode(() => mapKey(7 as unknown as string), 'BAD_INPUT');
  });

  it('keyBit reads bits most significant first', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 0, max: 255 }), (key, i) => {
        expect(keyBit(key, i)).toBe(refBit(key, i));
      }),
    );
    const key = new Uint8Array(32);
    key[0] = 0b1000_0000;
    key[31] = 0b0000_0001;
    expect([keyBit(key, 0), keyBit(key, 1), keyBit(key, 254), keyBit(key, 255)]).toEqual([1, 0, 0, 1]);
    for (const bad of [-1, 256, 1.5]) expectCode(() => keyBit(key, bad), 'BAD_INPUT');
    expectCode(() => keyBit(new Uint8Array(31), 0), 'BAD_INPUT');
  });

  it('mapPath is u16be depth then the prefix bits, zero-padded', () => {
    const key = new Uint8Array(32).fill(0xff);
    expect(hex(mapPath(key, 0))).toBe('0000');
    expect(hex(mapPath(key, 3))).toBe('0003e0');
    expect(hex(mapPath(key, 8))).toBe('0008ff');
    expect(hex(mapPath(key, 9))).toBe('0009ff80');
    expect(hex(mapPath(key, 256))).toBe(`0100${'ff'.repeat(32)}`);
    for (const bad of [-1, 257, 0.5]) expectCode(() => mapPath(key, bad), 'BAD_INPUT');
  });

  const decodedLength = (text: string): number => {
    try {
      return fromBase64url(text).length;
    } catch {
      return -1;
    }
  };

  it('a leaf text is accepted exactly when it is the canonical base64url of 32 bytes', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const textArb = fc.oneof(
      fc.string({ unit: fc.constantFrom(...alphabet), minLength: 42, maxLength: 44 }),
      hashTextArb.map((t) => `${t}=`),
      hashTextArb.map((t) => t.replace(/.$/, '+')),
    );
    fc.assert(
      fc.property(textArb, (leaf) => {
        const entry = { seq: 0, gseq: 0, leaf };
        if (decodedLength(leaf) === 32) expect(mapLeafHash(ZERO, entry)).toHaveLength(32);
        else expectCode(() => mapLeafHash(ZERO, entry), 'BAD_INPUT');
      }),
    );
  });

  it('writes an entry exactly as the RFC 8785 canonicalizer does, whatever its values', () => {
    const count = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constant(0));
    const odd = fc.oneof(fc.integer({ min: -5, max: -1 }), fc.double(), fc.constant(2 ** 60), fc.constant(Number.POSITIVE_INFINITY), fc.constant(Number.NaN));
    const leaf = fc.oneof(hashTextArb, fc.string(), fc.constant('a"b\\c'));
    fc.assert(
      fc.property(fc.oneof(count, odd), fc.oneof(count, odd), leaf, (seq, gseq, text) => {
        // The same text, or the same refusal (a non-finite number is not JSON).
        const outcome = (write: () => string): string => {
          try {
            return write();
          } catch (e) {
            return `refused ${(e as DkmsError).code}`;
          }
        };
        expect(outcome(() => entryText({ seq, gseq, leaf: text }))).toBe(outcome(() => canonicalJson({ seq, gseq, leaf: text })));
      }),
    );
  });

  it('refuses bad entries, keys and hashes with BAD_INPUT; ignores fields beyond seq, gseq and leaf', () => {
    const leaf = b64(ZERO);
    const bad: unknown[] = [
      null,
      { seq: -1, gseq: 0, leaf },
      { seq: 1.5, gseq: 0, leaf },
      { seq: 0, gseq: 2 ** 53, leaf },
      { seq: '1', gseq: 0, leaf },
      { seq: 0, gseq: 0, leaf: `${leaf}A` },
      { seq: 0, gseq: 0, leaf: leaf.replace(/A$/, 'B') },
      { seq: 0, gseq: 0 },
    ];
    for (const entry of bad) {
      expectCode(() => mapLeafHash(ZERO, entry as MapEntry), 'BAD_INPUT');
      expectCode(() => updateMap(new MemoryMapNodes(), [{ key: ZERO, entry: entry as MapEntry }]), 'BAD_INPUT');
    }
    expectCode(() => updateMap(new MemoryMapNodes(), [{ key: new Uint8Array(31), entry: { seq: 0, gseq: 0, leaf } }]), 'BAD_INPUT');
    expectCode(() => updateMap(new MemoryMapNodes(), {} as never), 'BAD_INPUT');
    expectCode(() => mapNodeHash(ZERO, new Uint8Array(33)), 'BAD_INPUT');
    expectCode(() => mapProof(new MemoryMapNodes(), new Uint8Array(16)), 'BAD_INPUT');
    const extra = { seq: 0, gseq: 0, leaf, note: 'x' } as MapEntry;
    expect(hex(mapLeafHash(ZERO, extra))).toBe(hex(refLeaf(ZERO, { seq: 0, gseq: 0, leaf })));
  });
});

describe('updateMap', () => {
  const entry = (n: number): MapEntry => ({ seq: n, gseq: n, leaf: b64(sha(Uint8Array.of(n))) });

  it('writes nothing when a key is set to the entry it has, and stores copies of keys and entries', () => {
    const nodes = fixedMap();
    expect(
      updateMap(
        nodes,
        FIXED.map(([s, e]) => ({ key: mapKey(s), entry: { ...e } })),
      ),
    ).toEqual({ root: unhex(FIXED_ROOT), writes: [] });
    for (const change of [{ seq: 7 }, { gseq: 7 }, { leaf: b64(ZERO) }]) {
      const [s, e] = FIXED[2] ?? [];
      if (s === undefined || e === undefined) throw new Error('a fixed subject');
      const result = updateMap(nodes, [{ key: mapKey(s), entry: { ...e, ...change } }]);
      // policy:c starts 0010 1…: its leaf at depth 3 and the three inner nodes above it.
      expect(result.writes.map((w) => hex(w.path)).sort()).toEqual(['0000', '000100', '000200', '000320']);
      result.root.fill(1);
      expect(hex(mapRoot(nodes))).toBe(FIXED_ROOT);
    }
    const key = mapKey('policy:z');
    const given = { ...entry(1), note: 'dropped' };
    nodes.apply(updateMap(nodes, [{ key, entry: given }]).writes);
    const root = mapRoot(nodes);
    key.fill(0);
    given.seq = 99;
    const proof = mapProof(nodes, mapKey('policy:z'));
    expect(proof.entry).toEqual(entry(1));
    expect(verifyMapProof(root, mapKey('policy:z'), proof)).toEqual({ ok: true, entry: entry(1) });
  });

  it('moves a leaf down when a key with its prefix arrives, in the same batch and across batches', () => {
    const [base] = BASES;
    if (base === undefined) throw new Error('a base key');
    const keys = [base, flipped(base, [40]), flipped(base, [40, 41]), flipped(base, [3])];
    const together = updateMap(
      new MemoryMapNodes(),
      keys.map((key, i) => ({ key, entry: entry(i) })),
    );
    const apart = new MemoryMapNodes();
    keys.forEach((key, i) => apart.apply(updateMap(apart, [{ key, entry: entry(i) }]).writes));
    expect(hex(together.root)).toBe(hex(mapRoot(apart)));
    expect(hex(together.root)).toBe(hex(refRoot(new Map(keys.map((k, i) => [hex(k), entry(i)])))));
    // base leaves the other two at bit 40, and they part at bit 41.
    const [, deep] = keys;
    if (deep === undefined) throw new Error('four keys');
    expect([40, 41, 42].map((d) => apart.get(mapPath(deep, d))?.kind)).toEqual(['inner', 'inner', 'leaf']);
    expect([40, 41, 42].map((d) => apart.get(mapPath(base, d))?.kind)).toEqual(['inner', 'leaf', undefined]);
    expect(apart.get(mapPath(base, 4))?.kind).toBe('inner');
    expect(apart.get(mapPath(keys[3] ?? base, 4))?.kind).toBe('leaf');
  });

  it('reports a store that contradicts the map as LEDGER_STORE_DAMAGED', () => {
    const key = new Uint8Array(32);
    const stranger = flipped(key, [0]);
    const leaf: StoredMapNode = { kind: 'leaf', hash: sha(), key: stranger, entry: entry(1) };
    const misplaced = new MemoryMapNodes();
    misplaced.apply([
      { path: mapPath(key, 0), node: { kind: 'inner', hash: sha() } },
      { path: mapPath(key, 1), node: leaf },
    ]);
    expectCode(() => mapProof(misplaced, key), 'LEDGER_STORE_DAMAGED');
    expectCode(() => updateMap(misplaced, [{ key, entry: entry(2) }]), 'LEDGER_STORE_DAMAGED');
    const bottomless = { get: (): StoredMapNode => ({ kind: 'inner', hash: sha() }) };
    expectCode(() => mapProof(bottomless, key), 'LEDGER_STORE_DAMAGED');
    expectCode(() => updateMap(bottomless, [{ key, entry: entry(2) }]), 'LEDGER_STORE_DAMAGED');
  });
});

// ---------------------------------------------------------------------------------------------
// Storage encoding.
// ---------------------------------------------------------------------------------------------

function expectGarbage(bytes: Uint8Array): void {
  let thrown: unknown;
  try {
    decodeMapNode(bytes);
  } catch (e) {
    thrown = e;
  }
  expect(thrown instanceof RangeError || (thrown instanceof DkmsError && thrown.code === 'BAD_INPUT'), hex(bytes)).toBe(true);
}

describe('stored node encoding', () => {
  const hash = sha(Buffer.from('h'));
  const key = mapKey('policy:a');
  const [, fixedEntry] = FIXED[0] ?? [];
  if (fixedEntry === undefined) throw new Error('a fixed entry');
  const json = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));
  const leafBytes = (text: string): Uint8Array => new Uint8Array([0x01, ...hash, ...key, ...json(text)]);

  it('encodes inner = 00 ‖ hash and leaf = 01 ‖ hash ‖ key ‖ canonical JSON, and decodes them back', () => {
    expect(hex(encodeMapNode({ kind: 'inner', hash }))).toBe(`00${hex(hash)}`);
    const leaf: StoredMapNode = { kind: 'leaf', hash, key, entry: fixedEntry };
    const bytes = encodeMapNode(leaf);
    expect(hex(bytes)).toBe(hex(leafBytes('{"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}')));
    const buffer = Buffer.from(bytes);
    const decoded = decodeMapNode(buffer);
    buffer.fill(0);
    expect(decoded).toEqual(leaf);
    const nodeArb: fc.Arbitrary<StoredMapNode> = fc.oneof(
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((h) => ({ kind: 'inner' as const, hash: h })),
      fc.record({
        kind: fc.constant('leaf' as const),
        hash: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
        entry: entryArb,
      }),
    );
    fc.assert(
      fc.property(nodeArb, (node) => {
        expect(decodeMapNode(encodeMapNode(node))).toEqual(node);
      }),
    );
  });

  it('decodeMapNode rejects garbage with RangeError or BAD_INPUT', () => {
    const cases = [
      new Uint8Array(0),
      Uint8Array.of(0x02, ...hash),
      Uint8Array.of(0x00, ...hash.subarray(1)),
      Uint8Array.of(0x00, ...hash, 0),
      Uint8Array.of(0x01, ...hash, ...key),
      Uint8Array.of(0x01, ...hash, ...key, 0xff),
      leafBytes('not json'),
      leafBytes('[]'),
      leafBytes('{"gseq": 0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}'),
      leafBytes('{"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","gseq":0,"seq":0}'),
      leafBytes('{"gseq":0,"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}'),
      leafBytes('{"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","note":1,"seq":0}'),
      leafBytes('{"gseq":-1,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}'),
      leafBytes('{"gseq":1.5,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":0}'),
      leafBytes('{"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERF","seq":0}'),
      leafBytes('{"gseq":0,"leaf":"ERERERERERERERERERERERERERERERERERERERERERE","seq":"0"}'),
    ];
    for (const bytes of cases) expectGarbage(bytes);
    expectCode(() => decodeMapNode('00' as unknown as Uint8Array), 'BAD_INPUT');
    const valid = encodeMapNode({ kind: 'leaf', hash, key, entry: fixedEntry });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => valid.map((v, j) => (j === i ? v ^ x : v))),
        ),
        (bytes) => {
          let node: StoredMapNode | undefined;
          try {
            node = decodeMapNode(bytes);
          } catch {
            expectGarbage(bytes);
          }
          // Whatever decodes has one encoding.
          if (node !== undefined) expect(hex(encodeMapNode(node))).toBe(hex(bytes));
        },
      ),
    );
  });

  it('decodeMapNodeHex (the embedded store reads nodes as hex) decodes exactly what decodeMapNode does, in either case', () => {
    const outcome = (decode: () => StoredMapNode): unknown => {
      try {
        return decode();
      } catch (e) {
        return e instanceof DkmsError ? e.code : e instanceof RangeError ? 'RangeError' : e;
      }
    };
    const valid = encodeMapNode({ kind: 'leaf', hash, key, entry: fixedEntry });
    const inner = encodeMapNode({ kind: 'inner', hash });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constant(inner),
          fc.constant(valid),
          fc.uint8Array({ maxLength: 120 }),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => valid.map((v, j) => (j === i ? v ^ x : v))),
        ),
        fc.boolean(),
        (bytes, upper) => {
          const text = upper ? hex(bytes).toUpperCase() : hex(bytes);
          expect(outcome(() => decodeMapNodeHex(text))).toEqual(outcome(() => decodeMapNode(bytes)));
        },
      ),
    );
    expect(decodeMapNodeHex(hex(inner).toUpperCase())).toEqual({ kind: 'inner', hash });
    for (const bad of [`00${'g'.repeat(64)}`, `00${hex(hash).slice(0, 63)}x`, `${hex(valid)}0`, `${hex(valid).slice(0, -2)}zz`])
      expectCode(() => decodeMapNodeHex(bad), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// The verifier on malformed input.
// ---------------------------------------------------------------------------------------------

describe('verifyMapProof on malformed input', () => {
  const nodes = fixedMap();
  const root = mapRoot(nodes);
  const [a, b] = FIXED.map(([s]) => mapKey(s));
  if (a === undefined || b === undefined) throw new Error('fixed keys');
  const member = mapProof(nodes, a);
  const near = flipped(b, [200]);
  const otherProof = mapProof(nodes, near);

  it('never throws, and fails, on anything', () => {
    const junk = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
      withUnicodeString: true,
    });
    const nearlyProofs = fc.record(
      {
        siblings: fc.array(fc.oneof(fc.constant(null), hashTextArb, fc.string(), junk), { maxLength: 4 }),
        entry: fc.oneof(entryArb, junk),
        other: fc.oneof(fc.record({ key: fc.oneof(hashTextArb, junk), entry: fc.oneof(entryArb, junk) }), junk),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(fc.oneof(junk, nearlyProofs), junk, (proof, other) => {
        expect(verifyMapProof(root, a, proof).ok).toBe(false);
        expect(verifyMapProof(other as Uint8Array, other as Uint8Array, proof).ok).toBe(false);
        expect(verifyMapProof(other as Uint8Array, a, member).ok).toBe(false);
      }),
      { numRuns: 300 },
    );
    const hostile = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('no');
        },
      },
    );
    expect(verifyMapProof(root, a, hostile).ok).toBe(false);
    expect(
      verifyMapProof(root, a, {
        get siblings(): never {
          throw new Error('no');
        },
      }).ok,
    ).toBe(false);
  });

  it('names what is wrong', () => {
    const reason = (proof: unknown, key = a): string => {
      const result = verifyMapProof(root, key, proof);
      return result.ok ? 'ok' : result.reason;
    };
    expect(otherProof.other).toBeDefined();
    expect(reason(otherProof, near)).toBe('ok');
    expect(reason({ ...member, extra: 1 })).toMatch(/plain object/);
    expect(reason({ ...member, entry: { ...member.entry, note: 1 } })).toMatch(/exactly seq, gseq and leaf/);
    expect(reason({ ...member, other: otherProof.other })).toMatch(/both/);
    expect(reason({ siblings: Array.from({ length: 257 }, () => null) })).toMatch(/at most 256/);
    expect(reason({ ...otherProof, other: { ...otherProof.other, key: b64(near) } }, near)).toMatch(/itself/);
    expect(reason({ ...otherProof, other: { ...otherProof.other, key: b64(flipped(near, [0])) } }, near)).toMatch(/share/);
    expect(reason({ ...otherProof, other: { ...otherProof.other, more: 1 } }, near)).toMatch(/exactly key and entry/);
    expect(reason({ ...member, siblings: member.siblings.map((s) => (s === null ? s : `${s}=`)) })).toMatch(/sibling/);
    expect(reason({ ...member, siblings: [...member.siblings.slice(0, -1), undefined] })).toMatch(/sibling/);
    expect(reason({ ...member, siblings: [b64(ZERO), ...member.siblings.slice(1)] })).toBe('ok');
    expect(reason(member, b)).toMatch(/root/);
  });
});
