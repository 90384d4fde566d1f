/**
 * Key-encrypting keys for DIDComm's two key agreement modes, both wrapping the content key with
 * A256KW:
 * - ECDH-ES (RFC 7518 section 4.6): Z = X25519(ephemeral, recipient); anonymous sender.
 * - ECDH-1PU (draft-madden-jose-ecdh-1pu-04 section 2.3): Z = Ze ‖ Zs where Zs = X25519(sender's
 *   static key, recipient), which authenticates the sender; in key-wrapping mode the content
 *   tag is appended to SuppPubInfo, binding the wrapped key to this very ciphertext.
 * jose implements ECDH-ES but not ECDH-1PU, and needs private keys it can hold; ours stay in the
 * wallet and are only asked to agree, so both derivations are composed here.
 */
import { concatBytes, concatKdf, u32be, wipe } from '../crypto/index.js';

export const ANON_ALG = 'ECDH-ES+A256KW';
export const AUTH_ALG = 'ECDH-1PU+A256KW';
export type KeyAgreementAlg = typeof ANON_ALG | typeof AUTH_ALG;

export interface KekInput {
  readonly alg: KeyAgreementAlg;
  /** Ze: the agreement with the ephemeral key. */
  readonly ze: Uint8Array;
  /** Zs: the agreement with the sender's static key (ECDH-1PU only). */
  readonly zs?: Uint8Array;
  readonly apu?: Uint8Array;
  readonly apv?: Uint8Array;
  /** The content encryption tag (ECDH-1PU only). */
  readonly tag?: Uint8Array;
}

/** The 256-bit key-encrypting key; wipes the shared secrets it was given. */
export function deriveKek(input: KekInput): Uint8Array {
  const z = input.alg === AUTH_ALG && input.zs !== undefined ? concatBytes(input.ze, input.zs) : input.ze;
  try {
    return concatKdf(z, 256, {
      algorithm: input.alg,
      ...(input.apu === undefined ? {} : { apu: input.apu }),
      ...(input.apv === undefined ? {} : { apv: input.apv }),
      ...(input.alg === AUTH_ALG && input.tag !== undefined ? { suppPubExtra: concatBytes(u32be(input.tag.length), input.tag) } : {}),
    });
  } finally {
    wipe(z, input.ze, input.zs);
  }
}
