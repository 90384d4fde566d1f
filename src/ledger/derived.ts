/**
 * What proofs are made from: the log's Merkle tree and the subject map (map.ts). A store that
 * keeps them itself (the embedded SQLite store) writes them with every append, so a node opens
 * in constant time and reads them through small caches; otherwise (etcd) the node holds them in
 * memory and rebuilds them from the log when it opens.
 *
 * The map's update rule, a pure function of the log: after event number g (leaf hash h) of
 * subject s with seq q, map[s] = {seq: q, gseq: g, leaf: h}.
 */
import { bufferOf, toBase64url } from '../crypto/index.js';
import { MemoryMapNodes, mapKey, mapRoot, updateMap, type MapNodeSource, type MapWrite, type StoredMapNode } from './map.js';
import { appendLeaves, rootAt, type MerkleNode, type NodeReader, type RangeMemo } from './merkle.js';
import type { DerivedStore } from './store.js';
import { CompactTree } from './tree.js';

/** What the derived data needs of one event. */
export interface DerivedRecord {
  readonly gseq: number;
  readonly subject: string;
  readonly seq: number;
  /** RFC 9162 leaf hash of the log record. */
  readonly leaf: Uint8Array;
}

/** The derived data of a batch, computed before it is written. */
export interface PreparedDerived {
  readonly size: number;
  readonly tree: readonly MerkleNode[];
  readonly map: readonly MapWrite[];
  readonly root: Uint8Array;
  readonly mapRoot: Uint8Array;
  /** The map nodes the update read, as they were before it: what its writes replace. */
  readonly before: MapNodeSource;
}

export interface Derived {
  /** Events covered. */
  readonly size: number;
  /** Perfect subtree nodes of the tree of `size` leaves (and of every smaller size). */
  readonly treeRead: NodeReader;
  /** The current map's nodes. */
  readonly mapNodes: MapNodeSource;
  /** The memo of ragged subtree hashes for the current size. */
  readonly memo: RangeMemo;
  root(): Uint8Array;
  mapRoot(): Uint8Array;
  /** Runs `read` (reads through treeRead and mapNodes) as one read of the store, when it has one. */
  reading<T>(read: () => T): T;
  /** The tree nodes and map writes that appending `records` (numbered from `size` on) makes, and the new roots. */
  prepare(records: readonly DerivedRecord[]): PreparedDerived;
  /** Makes a prepared batch current, once the store has made it durable. */
  commit(prepared: PreparedDerived): void;
  /** True when what the store holds is what this view shows (no append half taken in, none by another node). */
  settled(): boolean;
}

const pathKey = (path: Uint8Array): string => bufferOf(path).toString('latin1');

function prepareWith(size: number, read: NodeReader, mapNodes: MapNodeSource, records: readonly DerivedRecord[]): PreparedDerived {
  records.forEach((r, i) => {
    if (r.gseq !== size + i) throw new RangeError(`derived data for event ${r.gseq} given at position ${size + i}`);
  });
  const tree = appendLeaves(
    size,
    records.map((r) => r.leaf),
    read,
  );
  const fresh = new Map(tree.map((n) => [`${n.level}/${n.index}`, n.hash]));
  const readThrough: NodeReader = (level, index) => fresh.get(`${level}/${index}`) ?? read(level, index);
  const next = size + records.length;
  // The update reads every node it rewrites: kept, they are the old values at no extra cost.
  const seen = new Map<string, StoredMapNode | undefined>();
  const recording: MapNodeSource = {
    get: (path) => {
      const key = pathKey(path);
      if (seen.has(key)) return seen.get(key);
      const node = mapNodes.get(path);
      seen.set(key, node);
      return node;
    },
  };
  const { root: newMapRoot, writes } = updateMap(
    recording,
    records.map((r) => ({ key: mapKey(r.subject), entry: { seq: r.seq, gseq: r.gseq, leaf: toBase64url(r.leaf) } })),
  );
  return { size: next, tree, map: writes, root: rootAt(next, readThrough), mapRoot: newMapRoot, before: recording };
}

/** Derived data in memory, rebuilt from the log at start-up. */
export class MemoryDerived implements Derived {
  readonly #tree = new CompactTree();
  readonly #map = new MemoryMapNodes();
  #memo: RangeMemo = new Map();

  get size(): number {
    return this.#tree.size;
  }

  get treeRead(): NodeReader {
    return this.#tree.read;
  }

  get mapNodes(): MapNodeSource {
    return this.#map;
  }

  get memo(): RangeMemo {
    return this.#memo;
  }

  root(): Uint8Array {
    return rootAt(this.size, this.#tree.read, this.#memo);
  }

  mapRoot(): Uint8Array {
    return mapRoot(this.#map);
  }

  reading<T>(read: () => T): T {
    return read();
  }

  prepare(records: readonly DerivedRecord[]): PreparedDerived {
    return prepareWith(this.size, this.#tree.read, this.#map, records);
  }

  commit(prepared: PreparedDerived): void {
    this.#tree.commit(prepared.tree, prepared.size);
    this.#map.apply(prepared.map);
    this.#memo = new Map();
  }

  settled(): boolean {
    return true;
  }
}

/** Tree levels at or above this one are cached in memory (about n/32 nodes in all). */
const CACHED_TREE_LEVEL = 6;
/** Map nodes at or above this depth are all cached in memory (at most 2^17 of them). */
const TOP_MAP_DEPTH = 16;
/** Deeper nodes down to this depth (at most 24: see cachedPathKey) are cached as last read... */
const CACHED_MAP_DEPTH = 24;
/**
 * ...this many of them, the oldest read leaving first: the paths of the subjects being read
 * (a few thousand). Appends only replace the ones cached: at a high rate of appends, the paths
 * they write would otherwise push out those being read.
 */
const DEEP_MAP_CACHE_LIMIT = 2 ** 16;

const pathDepth = (path: Uint8Array): number => ((path[0] ?? 0) << 8) | (path[1] ?? 0);
/** A cached path (depth at most 24, so at most three prefix bytes) as a number: no string to make per lookup. */
const cachedPathKey = (path: Uint8Array): number => pathDepth(path) * 16_777_216 + ((path[2] ?? 0) << 16) + ((path[3] ?? 0) << 8) + (path[4] ?? 0);

/** How much of the map StoredDerived keeps in memory (the defaults suit a node; tests make them small). */
export interface MapCacheLimits {
  /** Map nodes at or above this depth are all cached (at most 2^(depth+1)); default 16. */
  readonly topDepth?: number;
  /** How many deeper nodes (down to depth 24) are cached, the oldest read leaving first; default 2^16. */
  readonly deep?: number;
}

/** Derived data the store keeps; reads go through caches of the tree's upper levels, the map's top and the map's paths read last. */
export class StoredDerived implements Derived {
  readonly #store: DerivedStore;
  readonly #treeCache = new Map<number, Uint8Array>();
  readonly #mapCache = new Map<number, StoredMapNode | undefined>();
  readonly #deepCache = new Map<number, StoredMapNode | undefined>();
  /**
   * The deep cache's keys in the order they came, a ring: the slot at #deepNext is the oldest.
   * (Evicting through the Map's own order, keys().next(), walks past every entry deleted
   * before it: tens of thousands once the cache is full.)
   */
  readonly #deepOrder: number[];
  #deepNext = 0;
  readonly #topDepth: number;
  #size: number;
  #memo: RangeMemo = new Map();

  constructor(store: DerivedStore, limits: MapCacheLimits = {}) {
    this.#store = store;
    this.#topDepth = Math.min(limits.topDepth ?? TOP_MAP_DEPTH, CACHED_MAP_DEPTH);
    this.#deepOrder = new Array<number>(Math.max(1, limits.deep ?? DEEP_MAP_CACHE_LIMIT)).fill(-1);
    this.#size = store.derivedSize();
  }

  get size(): number {
    return this.#size;
  }

  get memo(): RangeMemo {
    return this.#memo;
  }

  readonly treeRead: NodeReader = (level, index) => {
    const cacheable = level >= CACHED_TREE_LEVEL;
    const id = level * 2 ** 44 + index;
    const cached = cacheable ? this.#treeCache.get(id) : undefined;
    if (cached !== undefined) return cached;
    const hash = this.#store.treeNode(level, index);
    if (hash === undefined) throw new RangeError(`no Merkle node ${level}/${index}`);
    const bytes = new Uint8Array(hash);
    if (cacheable) this.#treeCache.set(id, bytes);
    return bytes;
  };

  readonly mapNodes: MapNodeSource = {
    get: (path) => {
      const depth = pathDepth(path);
      if (depth > CACHED_MAP_DEPTH) return this.#store.mapNode(path);
      const key = cachedPathKey(path);
      const cache = depth <= this.#topDepth ? this.#mapCache : this.#deepCache;
      if (cache.has(key)) return cache.get(key);
      const node = this.#store.mapNode(path);
      this.#cacheMapNode(depth, key, node);
      return node;
    },
  };

  #cacheMapNode(depth: number, key: number, node: StoredMapNode | undefined): void {
    if (depth <= this.#topDepth) {
      this.#mapCache.set(key, node);
      return;
    }
    if (!this.#deepCache.has(key)) {
      const oldest = this.#deepOrder[this.#deepNext] ?? -1;
      if (oldest >= 0) this.#deepCache.delete(oldest);
      this.#deepOrder[this.#deepNext] = key;
      this.#deepNext = (this.#deepNext + 1) % this.#deepOrder.length;
    }
    this.#deepCache.set(key, node);
  }

  root(): Uint8Array {
    return rootAt(this.#size, this.treeRead, this.#memo);
  }

  mapRoot(): Uint8Array {
    return mapRoot(this.mapNodes);
  }

  reading<T>(read: () => T): T {
    return this.#store.reading(read);
  }

  prepare(records: readonly DerivedRecord[]): PreparedDerived {
    return this.#store.reading(() => prepareWith(this.#size, this.treeRead, this.mapNodes, records));
  }

  /** Writes derived data the store does not have yet (catching up after an upgrade), then takes it in. */
  write(prepared: PreparedDerived): void {
    this.#store.writeDerived(prepared.tree, prepared.map, prepared.size);
    this.commit(prepared);
  }

  commit(prepared: PreparedDerived): void {
    for (const node of prepared.tree) if (node.level >= CACHED_TREE_LEVEL) this.#treeCache.set(node.level * 2 ** 44 + node.index, node.hash);
    for (const write of prepared.map) {
      const depth = pathDepth(write.path);
      if (depth > CACHED_MAP_DEPTH) continue;
      const key = cachedPathKey(write.path);
      if (depth <= this.#topDepth) this.#mapCache.set(key, write.node);
      else if (this.#deepCache.has(key)) this.#deepCache.set(key, write.node);
    }
    this.#size = prepared.size;
    this.#memo = new Map();
  }

  settled(): boolean {
    return this.#store.derivedSize() === this.#size;
  }

  /** Takes in what another node sharing the store appended: its derived data is in the store already. */
  adopt(): void {
    this.#size = this.#store.derivedSize();
    this.#treeCache.clear();
    this.#mapCache.clear();
    this.#deepCache.clear();
    this.#deepOrder.fill(-1);
    this.#deepNext = 0;
    this.#memo = new Map();
  }
}
