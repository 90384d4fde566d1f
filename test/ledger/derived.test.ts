/**
 * StoredDerived reads the map through caches (all of its top, the deeper nodes read last): with
 * caches far smaller than the map, so that nodes keep leaving and coming back while batches
 * rewrite them, every proof and root must be what the same map held in memory gives.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryDerived, StoredDerived, type DerivedRecord } from '../../src/ledger/derived.js';
import { mapKey, mapProof, type MapWrite, type StoredMapNode } from '../../src/ledger/map.js';
import type { MerkleNode } from '../../src/ledger/merkle.js';
import type { DerivedStore } from '../../src/ledger/store.js';

/** A DerivedStore in memory that counts its map reads. */
class CountingStore implements DerivedStore {
  readonly #tree = new Map<string, Uint8Array>();
  readonly #map = new Map<string, StoredMapNode>();
  #size = 0;
  mapReads = 0;

  derivedSize(): number {
    return this.#size;
  }

  treeNode(level: number, index: number): Uint8Array | undefined {
    return this.#tree.get(`${level}/${index}`);
  }

  mapNode(path: Uint8Array): StoredMapNode | undefined {
    this.mapReads++;
    return this.#map.get(Buffer.from(path).toString('hex'));
  }

  reading<T>(read: () => T): T {
    return read();
  }

  writeDerived(tree: readonly MerkleNode[], map: readonly MapWrite[], size: number): void {
    for (const node of tree) this.#tree.set(`${node.level}/${node.index}`, node.hash);
    for (const write of map) this.#map.set(Buffer.from(write.path).toString('hex'), write.node);
    this.#size = size;
  }
}

describe('StoredDerived', () => {
  it('gives the proofs and roots of the map in memory while small caches keep dropping nodes that batches rewrite', () => {
    const store = new CountingStore();
    // Nodes below depth 2 are cached 64 at a time, against about 300 in the map: reads miss often.
    const stored = new StoredDerived(store, { topDepth: 2, deep: 64 });
    const memory = new MemoryDerived();
    const subjects = Array.from({ length: 150 }, (_, i) => `policy:subject-${i}`);
    const absent = Array.from({ length: 20 }, (_, i) => `policy:absent-${i}`);
    const seqs = new Map<string, number>();
    let gseq = 0;
    for (let batch = 0; batch < 30; batch++) {
      // Each subject at most once a batch, as the log writes them.
      const chosen = [...new Set(Array.from({ length: 20 }, () => subjects[Math.floor(Math.random() * subjects.length)] ?? ''))];
      const records: DerivedRecord[] = chosen.map((subject) => {
        const seq = (seqs.get(subject) ?? -1) + 1;
        seqs.set(subject, seq);
        return { gseq: gseq++, subject, seq, leaf: new Uint8Array(randomBytes(32)) };
      });
      stored.write(stored.prepare(records));
      memory.commit(memory.prepare(records));
      expect(stored.size).toBe(memory.size);
      expect(stored.mapRoot()).toEqual(memory.mapRoot());
      expect(stored.root()).toEqual(memory.root());
      for (const subject of [...subjects.slice(batch * 5, batch * 5 + 10), ...absent.slice(0, 3), ...chosen.slice(0, 5)]) {
        expect(mapProof(stored.mapNodes, mapKey(subject))).toEqual(mapProof(memory.mapNodes, mapKey(subject)));
      }
    }
    // The reads went to the store, not to a cache that kept everything.
    expect(store.mapReads).toBeGreaterThan(5000);
  });
});
