/**
 * The browser build's one difference from Node's: src/ modules that touch the platform are
 * swapped for their browser versions, by the file an import resolves to. Everything else the
 * dashboard runs (the ledger client, proofs, validation, policy rules) is src/ itself, the same
 * code the CLI verifies with.
 */
import { join, sep } from 'node:path';

/** Node module (under src/) → its browser version. */
const SWAPS = [
  ['crypto/index.ts', 'crypto/web/index.ts'],
  ['crypto/platform.ts', 'crypto/web/platform.ts'],
  ['http.ts', 'http-web.ts'],
];

/** @param {string} root the repository's root @returns {import('vite').Plugin} */
export function platformSwap(root) {
  const src = join(root, 'src');
  const swaps = new Map(SWAPS.map(([from, to]) => [join(src, from), join(src, to)]));
  const webOnes = new Set(swaps.values());
  return {
    name: 'dkms-platform-swap',
    enforce: 'pre',
    async resolveId(source, importer, options) {
      // A browser version may build on the module it replaces (web/index re-exports shared parts).
      if (importer !== undefined && webOnes.has(importer)) return null;
      const resolved = await this.resolve(source, importer, { ...options, skipSelf: true });
      if (resolved === null || resolved.external) return resolved;
      const swapped = swaps.get(resolved.id.split('?')[0].split(sep).join(sep));
      return swapped === undefined ? resolved : { ...resolved, id: swapped };
    },
  };
}
