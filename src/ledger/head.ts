/**
 * Signed tree heads and witness cosignatures.
 *
 * A head is a ledger node's signed statement that, at `time`, its log had `size` events with
 * RFC 9162 Merkle root `root`, and that the map from each subject to its latest event (map.ts)
 * had root `map`. A node signs only its current size, with the time it signs, and signs again
 * every few seconds even when nothing changes, so a client can refuse a head that is too old.
 *
 * A witness is a separate party that follows a node: it checks each new head against the last
 * one it cosigned (same root for the same size, or a valid consistency proof to a larger size)
 * and only then adds its own signature, a cosignature, with its own time. A client that needs k
 * trusted signers counts the node's signature and the cosignatures of witnesses it trusts.
 */
import { z } from 'zod';
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, toBase64url, type Signer } from '../crypto/index.js';

export interface TreeHead {
  readonly size: number;
  /** RFC 9162 Merkle root of the log, base64url. */
  readonly root: string;
  /** Root of the subject map (map.ts), base64url. */
  readonly map: string;
  /** When the node signed this head (ISO 8601, UTC, milliseconds). */
  readonly time: string;
}

export interface SignedTreeHead extends TreeHead {
  /** The signing node's Ed25519 key, multibase. */
  readonly key: string;
  readonly sig: string;
}

/** A witness's signature on a node's head (its size, roots and node key), at the witness's own time. */
export interface Cosignature {
  /** The witness's Ed25519 key, multibase. */
  readonly key: string;
  /** When the witness checked and signed (ISO 8601). */
  readonly time: string;
  readonly sig: string;
}

/** A head as nodes serve it: with the cosignatures they hold for its size and roots. */
export interface ServedHead extends SignedTreeHead {
  readonly cosignatures?: readonly Cosignature[];
}

const b64hash = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
const b64sig = z.string().regex(/^[A-Za-z0-9_-]{86}$/);
const isoTime = z.string().max(40);

export const CosignatureSchema = z.strictObject({ key: z.string().max(64), time: isoTime, sig: b64sig });

export const SignedTreeHeadSchema = z.strictObject({
  size: z.number().int().min(0),
  root: b64hash,
  map: b64hash,
  time: isoTime,
  key: z.string().max(64),
  sig: b64sig,
});

/** At most this many cosignatures are served (and parsed) with a head. */
export const MAX_COSIGNATURES = 32;

export const ServedHeadSchema = SignedTreeHeadSchema.extend({ cosignatures: z.array(CosignatureSchema).max(MAX_COSIGNATURES).optional() });

/** What the node signs: the head under a fixed type, so the signature means nothing else. */
export function headSigningBytes(head: TreeHead): Uint8Array {
  return canonicalBytes({ type: 'dkms.tree-head.v2', size: head.size, root: head.root, map: head.map, time: head.time });
}

/** The node's signature on `head`. */
export function signHead(head: TreeHead, signer: Signer): SignedTreeHead {
  const bare: TreeHead = { size: head.size, root: head.root, map: head.map, time: head.time };
  return { ...bare, key: signer.multikey, sig: toBase64url(signer.sign(headSigningBytes(bare))) };
}

function verifyEd25519(key: string, message: Uint8Array, sig: string): boolean {
  let publicKey: Uint8Array;
  let signature: Uint8Array;
  try {
    publicKey = decodePublicKey(key, 'ed25519').publicKey;
    signature = fromBase64url(sig);
  } catch {
    return false;
  }
  return ed25519Verify(publicKey, message, signature);
}

export function verifyHeadSignature(head: SignedTreeHead): boolean {
  return verifyEd25519(head.key, headSigningBytes(head), head.sig);
}

/**
 * What a witness signs: the node's key, size and both roots (not the node's time, so one
 * cosignature stays valid while the node re-signs the same tree), and the witness's time.
 */
export function cosignatureSigningBytes(head: SignedTreeHead, time: string): Uint8Array {
  return canonicalBytes({ type: 'dkms.cosignature.v1', node: head.key, size: head.size, root: head.root, map: head.map, time });
}

/** A witness's cosignature on `head`, at the witness's `time`. */
export function cosignHead(head: SignedTreeHead, time: string, signer: Signer): Cosignature {
  return { key: signer.multikey, time, sig: toBase64url(signer.sign(cosignatureSigningBytes(head, time))) };
}

export function verifyCosignature(head: SignedTreeHead, cosignature: Cosignature): boolean {
  return verifyEd25519(cosignature.key, cosignatureSigningBytes(head, cosignature.time), cosignature.sig);
}

/** The head without its cosignatures: what the node signed. */
export function bareHead(head: ServedHead): SignedTreeHead {
  return { size: head.size, root: head.root, map: head.map, time: head.time, key: head.key, sig: head.sig };
}

/** Two heads describe the same tree: same size and both roots. */
export function sameTree(a: TreeHead, b: TreeHead): boolean {
  return a.size === b.size && a.root === b.root && a.map === b.map;
}

export const rootBytes = (head: TreeHead): Uint8Array => fromBase64url(head.root, 'root');
export const mapRootBytes = (head: TreeHead): Uint8Array => fromBase64url(head.map, 'map root');
