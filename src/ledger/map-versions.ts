/**
 * Earlier versions of the subject map, for as long as a node still serves them. The store holds
 * only the current map; a node that publishes a head only once witnesses cosigned it keeps
 * appending meanwhile, so reads under the published head need the map as it was. Each batch
 * records the nodes it overwrites (their old values), tagged with the version it made (the log's
 * size after it); the map as of version V shows, for each node, the old value recorded by the
 * first later version that changed it, else the current one. What no served version needs any
 * more is dropped.
 */
import { bufferOf } from '../crypto/index.js';
import type { MapNodeSource, MapWrite, StoredMapNode } from './map.js';

interface Change {
  readonly version: number;
  readonly old: StoredMapNode | undefined;
}

/** The old values a batch's writes replace, read before they are applied. */
export interface MapUndo {
  readonly version: number;
  readonly entries: readonly { readonly key: string; readonly old: StoredMapNode | undefined }[];
}

const pathKey = (path: Uint8Array): string => bufferOf(path).toString('latin1');

export class MapVersions {
  readonly #changes = new Map<string, Change[]>();
  readonly #order: { version: number; keys: string[] }[] = [];

  /** What `writes` (making `version`) will overwrite, read from the current map before they are applied. */
  static undo(version: number, writes: readonly MapWrite[], current: MapNodeSource): MapUndo {
    return { version, entries: writes.map((w) => ({ key: pathKey(w.path), old: current.get(w.path) })) };
  }

  /** Keeps a batch's old values once the batch is part of the current map. */
  install(undo: MapUndo): void {
    const keys: string[] = [];
    for (const { key, old } of undo.entries) {
      const list = this.#changes.get(key);
      if (list === undefined) this.#changes.set(key, [{ version: undo.version, old }]);
      else list.push({ version: undo.version, old });
      keys.push(key);
    }
    if (keys.length > 0) this.#order.push({ version: undo.version, keys });
  }

  /** The map as of `version`, read through the current one. */
  at(version: number, current: MapNodeSource): MapNodeSource {
    if (this.#order.length === 0 || (this.#order.at(-1)?.version ?? 0) <= version) return current;
    return {
      get: (path) => {
        const list = this.#changes.get(pathKey(path));
        const change = list?.find((c) => c.version > version);
        return change === undefined ? current.get(path) : change.old;
      },
    };
  }

  /** Forgets the changes no version from `version` on needs. */
  prune(version: number): void {
    while (this.#order.length > 0 && (this.#order[0]?.version ?? Infinity) <= version) {
      const first = this.#order.shift();
      for (const key of first?.keys ?? []) {
        const list = this.#changes.get(key);
        if (list === undefined) continue;
        while (list.length > 0 && (list[0]?.version ?? Infinity) <= version) list.shift();
        if (list.length === 0) this.#changes.delete(key);
      }
    }
  }

  /** How many old values are kept. */
  get size(): number {
    let n = 0;
    for (const list of this.#changes.values()) n += list.length;
    return n;
  }
}
