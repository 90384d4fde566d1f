/**
 * Signed HTTP requests from agents to an agency. The agent signs, with its Ed25519 key, the
 * canonical JSON of {method, path, time, nonce, digest of the canonical body}; the agency checks
 * the signature, a clock window, and that the nonce is fresh, so a captured request cannot be
 * replayed or moved to another path or body. Which keys may do what is the agency's business.
 */
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, randomBytes, sha256, toBase64url, type Signer } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import type { NonceStore } from './agency-store.js';

export const AUTH_HEADERS = { key: 'x-dkms-key', time: 'x-dkms-time', nonce: 'x-dkms-nonce', signature: 'x-dkms-signature' } as const;
/** How far a request's time may be behind the agency's clock (a request delayed on its way). */
export const CLOCK_WINDOW_MS = 5 * 60_000;
/** How far ahead of it (a device clock slightly fast): short, so that a request cannot be kept for later use. */
export const FUTURE_SKEW_MS = 60_000;
/** Nonces remembered per admitted key: far above what one agent makes in the clock window at its request budget's pace. */
export const NONCES_PER_KEY = 4096;
/** Admissions between two sweeps of expired nonces. */
const SWEEP_EVERY = 1024;

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
export function signRequest(signer: Signer, method: string, path: string, body?: unknown): Record<string, string> {
  const time = new Date().toISOString();
  const nonce = toBase64url(randomBytes(16));
  const signature = signer.sign(signingBytes({ method, path, time, nonce, body }));
  return { [AUTH_HEADERS.key]: signer.multikey, [AUTH_HEADERS.time]: time, [AUTH_HEADERS.nonce]: nonce, [AUTH_HEADERS.signature]: toBase64url(signature) };
}

const unauthorized = (message: string) => new DkmsError('REQUEST_UNAUTHORIZED', message);

/** A request whose signature and time checked out; what it may do is decided before `admit`. */
export interface SignedRequest {
  /** The signer's Ed25519 key, multibase. */
  readonly key: string;
  readonly nonce: string;
  /** The request's own time (ms since the epoch). */
  readonly at: number;
}

/** One key's replay window: the nonces it used in the clock window, and the time at or before which nothing more is taken. */
interface KeyWindow {
  readonly nonces: Map<string, number>;
  floor: number;
}

export interface VerifierLimits {
  /** How far a request's time may be behind the agency's clock (default CLOCK_WINDOW_MS). */
  readonly pastMs?: number;
  /** How far ahead of it (default FUTURE_SKEW_MS). */
  readonly futureMs?: number;
  /** Nonces remembered per key (default NONCES_PER_KEY). */
  readonly noncesPerKey?: number;
  /** Where the agencies sharing one store record nonces, so that a request is taken once by all of them. */
  readonly shared?: NonceStore;
}

/**
 * Checks signed requests in two steps, so that a stranger's traffic costs nobody else a request:
 * `check` verifies the signature and the time and keeps nothing; the caller then decides whether
 * the key may make this request at all, and only then `admit` takes its nonce, in a window of
 * that key's own. A key's window holds at most `noncesPerKey` nonces: when it is full, the
 * oldest leaves and nothing signed at or before its time is taken again (a replay of it is
 * refused all the same). Memory is bounded by the keys admitted: the agency's own agents, the
 * guests their owners allowed (at most 64 per cloud agent at a time) and the owners' sponsors,
 * never an attacker's throwaway keys.
 */
export class RequestVerifier {
  readonly #windows = new Map<string, KeyWindow>();
  readonly #now: () => number;
  readonly #pastMs: number;
  readonly #futureMs: number;
  readonly #noncesPerKey: number;
  readonly #shared: NonceStore | undefined;
  #admitted = 0;

  constructor(now: () => number = Date.now, limits: VerifierLimits = {}) {
    this.#now = now;
    this.#pastMs = limits.pastMs ?? CLOCK_WINDOW_MS;
    this.#futureMs = limits.futureMs ?? FUTURE_SKEW_MS;
    this.#noncesPerKey = Math.max(1, limits.noncesPerKey ?? NONCES_PER_KEY);
    this.#shared = limits.shared;
  }

  /** The request's signer, nonce and time once its signature and time check out (REQUEST_UNAUTHORIZED, REQUEST_TIME_SKEW otherwise). Keeps nothing. */
  check(headers: Record<string, string | string[] | undefined>, method: string, path: string, body: unknown): SignedRequest {
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
    if (Number.isNaN(at)) throw unauthorized('the request time is not a date');
    const now = this.#now();
    if (at < now - this.#pastMs || at > now + this.#futureMs) {
      const off = Math.round((at - now) / 1000);
      throw new DkmsError(
        'REQUEST_TIME_SKEW',
        `the request time is ${Math.abs(off)} s ${off < 0 ? 'behind' : 'ahead of'} the agency's clock (accepted: ${this.#pastMs / 1000} s behind to ${this.#futureMs / 1000} s ahead): check the device clock`,
      );
    }
    if (sig.length !== 64 || !ed25519Verify(publicKey, signingBytes({ method, path, time, nonce, body }), sig)) {
      throw unauthorized('the request signature does not verify');
    }
    return { key, nonce, at };
  }

  /**
   * Takes a checked request's nonce, once its key was found allowed to make it: REQUEST_REPLAYED
   * if the key used the nonce before, or signed the request at or before the oldest time its
   * window still covers; with a shared nonce store, also if another agency on it took the nonce.
   */
  async admit(request: SignedRequest): Promise<void> {
    this.#admitHere(request);
    if (this.#shared !== undefined && !(await this.#shared.take(request.key, request.nonce, request.at))) {
      throw new DkmsError('REQUEST_REPLAYED', 'the request was already made once, at another agency (its nonce was used): sign a new one');
    }
  }

  #admitHere(request: SignedRequest): void {
    const now = this.#now();
    if (++this.#admitted % SWEEP_EVERY === 0) this.#sweep(now);
    let window = this.#windows.get(request.key);
    if (window === undefined) this.#windows.set(request.key, (window = { nonces: new Map(), floor: -Infinity }));
    if (window.nonces.has(request.nonce)) throw new DkmsError('REQUEST_REPLAYED', 'the request was already made once (its nonce was used): sign a new one');
    if (request.at <= window.floor) throw new DkmsError('REQUEST_REPLAYED', 'the request is older than the requests this agent made since: sign a new one');
    if (window.nonces.size >= this.#noncesPerKey) {
      for (const [nonce, at] of window.nonces) {
        window.nonces.delete(nonce);
        window.floor = Math.max(window.floor, at);
        if (window.nonces.size < this.#noncesPerKey) break;
      }
    }
    window.nonces.set(request.nonce, request.at);
  }

  /** Forgets nonces that have left the clock window, and keys with none left. */
  #sweep(now: number): void {
    for (const [key, window] of this.#windows) {
      for (const [nonce, at] of window.nonces) if (at < now - this.#pastMs) window.nonces.delete(nonce);
      if (window.nonces.size === 0 && window.floor < now - this.#pastMs) this.#windows.delete(key);
    }
  }

  /** How many keys and nonces are remembered (for tests and metrics). */
  get size(): { keys: number; nonces: number } {
    let nonces = 0;
    for (const window of this.#windows.values()) nonces += window.nonces.size;
    return { keys: this.#windows.size, nonces };
  }
}
