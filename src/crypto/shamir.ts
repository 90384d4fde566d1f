/**
 * Shamir secret sharing over GF(2^8) by the audited `shamir-secret-sharing` library, with shares
 * at fixed x-coordinates 1…n, so that a share's x is its holder's position (a trustee's, a
 * custodian's). A share is the secret's bytes followed by its x-coordinate, as the library makes
 * them. The library refuses a threshold of 1 (the polynomial of degree 0, whose every share is
 * the secret itself); it is written out here.
 */
import { combine, split } from 'shamir-secret-sharing';
import { DkmsError } from '../errors.js';
import { concatBytes, wipe } from './bytes.js';

/** The most shares one secret can have: GF(2^8) has 255 non-zero x-coordinates. */
export const MAX_SHARES = 255;

/**
 * Shares of `secret` at x = 1…n, any `threshold` of which rebuild it. The library draws
 * x-coordinates at random, so it is asked for all 255 shares (the polynomial at every non-zero x)
 * and those at 1…n are kept; the rest are wiped.
 */
export async function sharesAtPositions(secret: Uint8Array, n: number, threshold: number): Promise<Uint8Array[]> {
  if (threshold === 1) return Array.from({ length: n }, (_, i) => concatBytes(secret, Uint8Array.of(i + 1)));
  // The library wants a plain Uint8Array (not a Buffer); the copy is ours to wipe.
  const copy = Uint8Array.from(secret);
  const all = await split(copy, MAX_SHARES, threshold).finally(() => wipe(copy));
  try {
    const byX = new Map(all.map((s) => [s[s.length - 1], s]));
    return Array.from({ length: n }, (_, i) => {
      const share = byX.get(i + 1);
      if (share === undefined) throw new DkmsError('INTERNAL', `the secret-sharing library returned no share at x = ${i + 1}`);
      return share.slice();
    });
  } finally {
    wipe(...all);
  }
}

/** The secret from `threshold` shares with distinct x-coordinates (the first `threshold` given); degree 0 as above. */
export async function secretFromShares(shares: readonly Uint8Array[], threshold: number): Promise<Uint8Array> {
  const chosen = shares.slice(0, threshold);
  const [first] = chosen;
  if (first === undefined) throw new DkmsError('INTERNAL', 'no shares to rebuild a secret from');
  if (threshold === 1) return first.slice(0, first.length - 1);
  return combine(chosen);
}
