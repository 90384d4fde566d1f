/**
 * An edge agent whose private keys the test holds in memory: it signs requests and events, and
 * opens its mail, without a wallet.
 */
import type { AgreementKey } from '../../src/didcomm/index.js';
import { didKeyUrl, memoryAgreementKey } from '../../src/didcomm/index.js';
import { decodePublicKey, ed25519Generate, encodePublicKey, memorySigner, x25519Generate, type MultibaseKey, type Signer } from '../../src/crypto/index.js';
import type { Agent } from '../../src/policy/types.js';

/** Signs as a {@link Signer} itself (ledger events, requests). */
export interface Edge extends Signer {
  /** Ed25519, multibase (the same as `multikey`). */
  readonly key: string;
  readonly kx: string;
  readonly signer: Signer;
  readonly agreement: AgreementKey;
  /** `did:key:<Ed25519 multibase>`: the forward `next` that names only this agent. */
  readonly didKey: string;
  agent(flags: number): Agent;
}

export function edgeAgent(): Edge {
  const signing = ed25519Generate();
  const agreeing = x25519Generate();
  const key = encodePublicKey('ed25519', signing.publicKey);
  const kx = encodePublicKey('x25519', agreeing.publicKey);
  const signer = memorySigner(signing.privateKey, signing.publicKey);
  return {
    ...signer,
    key,
    kx,
    signer,
    agreement: memoryAgreementKey(didKeyUrl('x25519', agreeing.publicKey), agreeing.privateKey, agreeing.publicKey),
    didKey: `did:key:${key}`,
    agent: (flags) => ({ key, kx, flags }),
  };
}

/** An impostor: signs with `signer`'s key while naming `key` (another agent's multikey) as its own. */
export function claiming(key: string, signer: Signer): Signer {
  return { publicKey: decodePublicKey(key, 'ed25519').publicKey, multikey: key as MultibaseKey, sign: (message) => signer.sign(message) };
}
