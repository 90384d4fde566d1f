/**
 * What the page trusts, and where that comes from. Never from the server it verifies: the node
 * keys (and witness keys and quorum) come from the address's fragment, which the browser never
 * sends (`dkms up` prints `…/ui/#trust=<node key>`), and are then kept in this origin's
 * localStorage. Without a pin the page trusts the first key it sees, says so, and keeps it.
 * The last verified head is kept too: a ledger that goes back or forks between two visits fails
 * the next page's consistency check.
 */
import { decodePublicKey } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { SignedTreeHeadSchema, type SignedTreeHead } from '../../src/ledger/head.js';

export interface Pins {
  /** Node keys whose heads are accepted; empty: the first one seen is trusted. */
  readonly nodeKeys: readonly string[];
  readonly witnessKeys: readonly string[];
  readonly quorum: number;
  /** The node key was trusted on first use, not given. */
  readonly firstUse: boolean;
}

const PINS = 'dkms.explorer.pins';
const HEAD = 'dkms.explorer.head';
const NONE: Pins = { nodeKeys: [], witnessKeys: [], quorum: 1, firstUse: false };

function keysOf(text: string | null, what: string): string[] {
  if (text === null || text === '') return [];
  const keys = text.split(',').filter((k) => k !== '');
  for (const key of keys) {
    try {
      decodePublicKey(key, 'ed25519');
    } catch {
      throw new DkmsError('BAD_INPUT', `the ${what} key in the address (${key.slice(0, 16)}…) is not an Ed25519 multikey`);
    }
  }
  return keys;
}

function stored(): Pins {
  try {
    const value = JSON.parse(localStorage.getItem(PINS) ?? 'null') as Partial<Pins> | null;
    if (value === null || !Array.isArray(value.nodeKeys) || !Array.isArray(value.witnessKeys) || !Number.isInteger(value.quorum)) return NONE;
    return { nodeKeys: value.nodeKeys, witnessKeys: value.witnessKeys, quorum: value.quorum as number, firstUse: value.firstUse === true };
  } catch {
    return NONE;
  }
}

function save(pins: Pins): void {
  const before = stored();
  // Another node: the head kept for the old one says nothing about it.
  if (before.nodeKeys.join() !== pins.nodeKeys.join()) localStorage.removeItem(HEAD);
  localStorage.setItem(PINS, JSON.stringify(pins));
}

/**
 * The pins: from the fragment (`#trust=K1,K2&witness=W1,W2&quorum=N`) when it has them, which
 * replace what was kept and are taken out of the address bar; otherwise what was kept.
 * Throws BAD_INPUT for a fragment whose keys or quorum are malformed.
 */
export function readPins(): Pins {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  if (!fragment.has('trust')) return stored();
  const nodeKeys = keysOf(fragment.get('trust'), 'trusted node');
  const witnessKeys = keysOf(fragment.get('witness'), 'witness');
  const quorum = fragment.has('quorum') ? Number(fragment.get('quorum')) : 1;
  if (!Number.isInteger(quorum) || quorum < 1 || quorum > 1 + witnessKeys.length) {
    throw new DkmsError('BAD_INPUT', `the quorum in the address must be a whole number from 1 to ${1 + witnessKeys.length}`);
  }
  const pins: Pins = { nodeKeys, witnessKeys, quorum, firstUse: false };
  save(pins);
  history.replaceState(null, '', `${location.pathname}${location.search}`);
  return pins;
}

/** Records a node key trusted on first use. */
export function pinFirstUse(key: string): void {
  save({ ...stored(), nodeKeys: [key], firstUse: true });
}

/** Forgets every pin and the kept head. */
export function forgetPins(): void {
  localStorage.removeItem(PINS);
  localStorage.removeItem(HEAD);
}

export function lastHead(): SignedTreeHead | undefined {
  try {
    const parsed = SignedTreeHeadSchema.safeParse(JSON.parse(localStorage.getItem(HEAD) ?? 'null'));
    return parsed.success ? (parsed.data as SignedTreeHead) : undefined;
  } catch {
    return undefined;
  }
}

export function keepHead(head: SignedTreeHead): void {
  localStorage.setItem(HEAD, JSON.stringify(head));
}
