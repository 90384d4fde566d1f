/**
 * Signed tree heads: a ledger node's signed statement that its log had `size` events with
 * Merkle root `root` at `time`. Clients check the signature against the node keys they trust
 * and the consistency of every new head with the last one they saw.
 */
import { z } from 'zod';
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, toBase64url } from '../crypto/index.js';

export interface TreeHead {
  readonly size: number;
  /** Merkle root, base64url. */
  readonly root: string;
  readonly time: string;
}

export interface SignedTreeHead extends TreeHead {
  /** The signing node's Ed25519 key, multibase. */
  readonly key: string;
  readonly sig: string;
}

export const SignedTreeHeadSchema = z.strictObject({
  size: z.number().int().min(0),
  root: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  time: z.string().max(40),
  key: z.string().max(64),
  sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
});

/** What the node signs: the head under a fixed type, so the signature means nothing else. */
export function headSigningBytes(head: TreeHead): Uint8Array {
  return canonicalBytes({ type: 'dkms.tree-head.v1', size: head.size, root: head.root, time: head.time });
}

export function signHead(head: TreeHead, key: string, sign: (message: Uint8Array) => Uint8Array): SignedTreeHead {
  return { size: head.size, root: head.root, time: head.time, key, sig: toBase64url(sign(headSigningBytes(head))) };
}

export function verifyHeadSignature(head: SignedTreeHead): boolean {
  try {
    return ed25519Verify(decodePublicKey(head.key, 'ed25519').publicKey, headSigningBytes(head), fromBase64url(head.sig));
  } catch {
    return false;
  }
}

export const rootBytes = (head: TreeHead): Uint8Array => fromBase64url(head.root, 'root');
