/**
 * The ledger's Merkle tree in memory: the hashes of every perfect subtree, level by level in
 * contiguous buffers (about 64 bytes per event), rebuilt from the stored leaf hashes at start-up.
 * Proofs and roots read O(log n) of these nodes (merkle.ts).
 */
import { appendLeaves, rootAt, type MerkleNode, type NodeReader } from './merkle.js';

const HASH = 32;

export class CompactTree {
  readonly #levels: Uint8Array[] = [];
  readonly #counts: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  readonly read: NodeReader = (level, index) => {
    const buffer = this.#levels[level];
    if (buffer === undefined || index >= (this.#counts[level] ?? 0)) throw new RangeError(`no Merkle node ${level}/${index}`);
    return buffer.subarray(index * HASH, (index + 1) * HASH);
  };

  /** Nodes that appending `leaves` would complete, without changing the tree. */
  pending(leaves: readonly Uint8Array[]): MerkleNode[] {
    return appendLeaves(this.#size, [...leaves], this.read);
  }

  /** A reader that also sees `nodes`, to compute the root of a tree not yet committed. */
  readerWith(nodes: readonly MerkleNode[]): NodeReader {
    const extra = new Map(nodes.map((n) => [`${n.level}/${n.index}`, n.hash]));
    return (level, index) => extra.get(`${level}/${index}`) ?? this.read(level, index);
  }

  rootWith(size: number, nodes: readonly MerkleNode[]): Uint8Array {
    return rootAt(size, this.readerWith(nodes));
  }

  /** Stores the nodes of an appended batch; they must be the ones `pending` returned. */
  commit(nodes: readonly MerkleNode[], size: number): void {
    for (const node of [...nodes].sort((a, b) => a.level - b.level || a.index - b.index)) {
      const count = this.#counts[node.level] ?? 0;
      if (node.index !== count) throw new RangeError(`Merkle node ${node.level}/${node.index} is out of order`);
      let buffer = this.#levels[node.level] ?? new Uint8Array(HASH * 1024);
      if ((count + 1) * HASH > buffer.length) {
        const grown = new Uint8Array(buffer.length * 2);
        grown.set(buffer);
        buffer = grown;
      }
      buffer.set(node.hash, count * HASH);
      this.#levels[node.level] = buffer;
      this.#counts[node.level] = count + 1;
    }
    this.#size = size;
  }

  root(): Uint8Array {
    return rootAt(this.#size, this.read);
  }
}
