/**
 * Signed HTTP requests from agents to an agency. The agent signs, with its Ed25519 key, the
 * canonical JSON of {method, path, time, nonce, digest of the canonical body}; the agency checks
 * the signature, a clock window, and that the nonce is fresh, so a captured request cannot be
 * replayed or moved to another path or body. Which keys may do what is the agency's business.
 */
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, randomBytes, sha256, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

export const AUTH_HEADERS = { key: 'x-dkms-key', time: 'x-dkms-time', nonce: 'x-dkms-nonce', signature: 'x-dkms-signature' } as const;
/** How far a request's time may be from the agency's clock. */
export const CLOCK_WINDOW_MS = 5 * 60_000;
const MAX_NONCES = 200_000;

export interface RequestSigner {
  /** The agent's Ed25519 key, multibase. */
  readonly key: string;
  sign(message: Uint8Array): Uint8Array;
}

interface SignedParts {
  readonly method: string;
  readonly path: string;
  readonly time: string;
  readonly nonce: string;
  readonly body: unknown;
}

function signingBytes(parts: SignedParts): Uint8Array {
  const digest = parts.body === undefined ? '' : toBase64url(sha256(canonicalBytes(parts.body)));
  return canonicalBytes({ v: 1, method: parts.method.toUpperCase(), path: parts.path, time: parts.time, nonce: parts.nonce, body: digest });
}

/** The headers that authenticate one request. `path` includes the query string. */
export function signRequest(signer: RequestSigner, method: string, path: string, body?: unknown): Record<string, string> {
  const time = new Date().toISOString();
  const nonce = toBase64url(randomBytes(16));
  const signature = signer.sign(signingBytes({ method, path, time, nonce, body }));
  return { [AUTH_HEADERS.key]: signer.key, [AUTH_HEADERS.time]: time, [AUTH_HEADERS.nonce]: nonce, [AUTH_HEADERS.signature]: toBase64url(signature) };
}

const unauthorized = (message: string) => new DkmsError('REQUEST_UNAUTHORIZED', message);

/** Checks signed requests; remembers nonces for the clock window so none is accepted twice. */
export class RequestVerifier {
  readonly #seen = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** The verified signer's key (multibase), or REQUEST_UNAUTHORIZED. */
  verify(headers: Record<string, string | string[] | undefined>, method: string, path: string, body: unknown): string {
    const header = (name: string): string => {
      const value = headers[name];
      if (typeof value !== 'string' || value.length === 0 || value.length > 200) throw unauthorized(`the request is not signed (missing ${name})`);
      return value;
    };
    const key = header(AUTH_HEADERS.key);
    const time = header(AUTH_HEADERS.time);
    const nonce = header(AUTH_HEADERS.nonce);
    const signature = header(AUTH_HEADERS.signature);
    let publicKey: Uint8Array;
    let sig: Uint8Array;
    try {
      publicKey = decodePublicKey(key, 'ed25519').publicKey;
      sig = fromBase64url(signature, 'signature');
    } catch {
      throw unauthorized('the request signature or key is malformed');
    }
    const at = Date.parse(time);
    const now = this.#now();
    if (Number.isNaN(at) || Math.abs(now - at) > CLOCK_WINDOW_MS) throw unauthorized('the request time is outside the accepted window (check the clock)');
    if (sig.length !== 64 || !ed25519Verify(publicKey, signingBytes({ method, path, time, nonce, body }), sig)) {
      throw unauthorized('the request signature does not verify');
    }
    this.#remember(`${key} ${nonce}`, at, now);
    return key;
  }

  #remember(id: string, at: number, now: number): void {
    if (this.#seen.has(id)) throw unauthorized('the request was already made once (replayed nonce)');
    if (this.#seen.size >= MAX_NONCES) {
      for (const [seen, time] of this.#seen) if (now - time > CLOCK_WINDOW_MS) this.#seen.delete(seen);
      if (this.#seen.size >= MAX_NONCES) throw new DkmsError('RATE_LIMITED', 'too many signed requests in the clock window; retry shortly');
    }
    this.#seen.set(id, at);
  }
}
