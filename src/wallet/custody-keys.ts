/**
 * Keys under custodians (approval mode, docs/custodians.md): a key's private half sealed again,
 * inside its wallet record, under a key derived from the custody secret, which only m
 * custodians' approvals rebuild. The wallet's passphrase alone opens the record, not the key.
 */
import { AeadError, hkdf, open, seal, utf8, wipe } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

const label = (name: string): string => `dkms/wallet/v2/custody-key:${name}`;

/** The key that seals key `name` under custody secret `secret` of set `set`: bound to both, so a record moved to another name or set opens nothing. */
function sealingKey(secret: Uint8Array, set: string, name: string): Uint8Array {
  return hkdf(secret, utf8(set), label(name));
}

/** Seals the private key of key `name` under the custody secret of set `set`. */
export function sealUnderCustody(secret: Uint8Array, set: string, name: string, privateKey: Uint8Array): Uint8Array {
  const key = sealingKey(secret, set, name);
  try {
    return seal(key, privateKey, utf8(label(name)));
  } finally {
    wipe(key);
  }
}

/** Opens what {@link sealUnderCustody} sealed; SHARE_BAD_SIGNATURE when `secret` is not that set's. The caller wipes the result. */
export function openUnderCustody(secret: Uint8Array, set: string, name: string, sealed: Uint8Array): Uint8Array {
  const key = sealingKey(secret, set, name);
  try {
    return open(key, sealed, utf8(label(name)));
  } catch (e) {
    if (e instanceof AeadError) throw new DkmsError('SHARE_BAD_SIGNATURE', `the custody secret does not open key '${name}'`);
    throw e;
  } finally {
    wipe(key);
  }
}
