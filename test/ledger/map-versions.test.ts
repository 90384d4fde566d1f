/**
 * Earlier versions of the subject map: after any sequence of batches, the map as of an earlier
 * version (read through the current map and the old values kept) proves exactly what a map built
 * from the first batches alone proves; pruning keeps every version from the pruning point on.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toBase64url } from '../../src/crypto/index.js';
import { MemoryMapNodes, mapKey, mapProof, mapRoot, updateMap, type MapEntry } from '../../src/ledger/map.js';
import { MapVersions } from '../../src/ledger/map-versions.js';

const subjects = Array.from({ length: 24 }, (_, i) => `policy:s${i}`);

const entry = (gseq: number): MapEntry => ({ seq: gseq % 7, gseq, leaf: toBase64url(new Uint8Array(32).fill(gseq % 251)) });

describe('map versions', () => {
  it('the map as of any kept version proves what a map of the first batches alone proves', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: subjects.length - 1 }), { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 12 }),
        fc.nat(),
        (batches, pruneAt) => {
          const current = new MemoryMapNodes();
          const versions = new MapVersions();
          const snapshots: MemoryMapNodes[] = [];
          let gseq = 0;
          const sizes: number[] = [0];
          snapshots.push(new MemoryMapNodes());
          for (const batch of batches) {
            const updates = batch.map((i) => ({ key: mapKey(subjects[i] ?? ''), entry: entry(gseq++) }));
            const { writes } = updateMap(current, updates);
            const undo = MapVersions.undo(gseq, writes, current);
            current.apply(writes);
            versions.install(undo);
            sizes.push(gseq);
            // The reference: a map rebuilt from scratch with every update so far.
            const rebuilt = new MemoryMapNodes();
            snapshots.push(rebuilt);
            let g = 0;
            for (const earlier of batches.slice(0, sizes.length - 1)) {
              rebuilt.apply(
                updateMap(
                  rebuilt,
                  earlier.map((i) => ({ key: mapKey(subjects[i] ?? ''), entry: entry(g++) })),
                ).writes,
              );
            }
          }
          const pruned = sizes[pruneAt % sizes.length] ?? 0;
          versions.prune(pruned);
          sizes.forEach((size, v) => {
            if (size < pruned) return;
            const reference = snapshots[v] as MemoryMapNodes;
            const asOf = versions.at(size, current);
            expect(mapRoot(asOf)).toEqual(mapRoot(reference));
            for (const subject of subjects) expect(mapProof(asOf, mapKey(subject))).toEqual(mapProof(reference, mapKey(subject)));
          });
          // Nothing is kept that no version from the pruning point on needs.
          if (pruned === gseq) expect(versions.size).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });
});
