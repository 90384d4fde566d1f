/**
 * An edge agent whose private keys the test holds in memory: it signs requests and events, and
 * opens its mail, without a wallet.
 */
import type { AgreementKey } from '../../src/didcomm/index.js';
import { didKeyUrl, memoryAgreementKey } from '../../src/didcomm/index.js';
import type { RequestSigner } from '../../src/agency/request-auth.js';
import { ed25519Generate, ed25519Sign, encodePublicKey, x25519Generate } from '../../src/crypto/index.js';
import type { Agent } from '../../src/policy/types.js';

export interface Edge {
  /** Ed25519, multibase (also `publicKey`, as an EventSigner). */
  readonly key: string;
  readonly publicKey: string;
  readonly kx: string;
  readonly signer: RequestSigner;
  readonly agreement: AgreementKey;
  /** `did:key:<Ed25519 multibase>`: the forward `next` that names only this agent. */
  readonly didKey: string;
  sign(message: Uint8Array): Uint8Array;
  agent(flags: number): Agent;
}

export function edgeAgent(): Edge {
  const signing = ed25519Generate();
  const agreeing = x25519Generate();
  const key = encodePublicKey('ed25519', signing.publicKey);
  const kx = encodePublicKey('x25519', agreeing.publicKey);
  const sign = (message: Uint8Array) => ed25519Sign(signing.privateKey, message);
  return {
    key,
    publicKey: key,
    kx,
    sign,
    signer: { key, sign },
    agreement: memoryAgreementKey(didKeyUrl('x25519', agreeing.publicKey), agreeing.privateKey, agreeing.publicKey),
    didKey: `did:key:${key}`,
    agent: (flags) => ({ key, kx, flags }),
  };
}
