/**
 * The recovery secret R (docs/architecture.md "Key hierarchy", docs/recovery.md): 32 random bytes from which HKDF-SHA-256,
 * with distinct labels, derives everything recovery needs:
 *
 * - the backup X25519 key pair, to which every backup is encrypted;
 * - the backup locator, under which the agency files the owner's backups (it names the backups
 *   without revealing R or the keys);
 * - a sequence of Ed25519 recovery signing keys (index 0, 1, 2…), the next one's digest
 *   committed in the owner's policy. Each recovery reveals one and commits the next.
 *
 * R itself is never written in clear to disk; callers wipe it (and the RecoveryKeys) after use.
 */
import type { KeyObject } from 'node:crypto';
import {
  abytes,
  ed25519PrivateKeyObject,
  ed25519PublicKey,
  memorySigner,
  encodePublicKey,
  hkdf,
  randomBytes,
  toBase58btc,
  wipe,
  x25519AgreeKey,
  x25519PrivateKeyObject,
  x25519PublicKey,
  type MultibaseKey,
  type Signer,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import type { RecoveryCommitment } from '../policy/types.js';

export const RECOVERY_SECRET_BYTES = 32;
/** How many recovery signing keys a restore looks through for the committed one. */
export const MAX_RECOVERY_INDEX = 64;

const SALT = new TextEncoder().encode('dkms/recovery/v1');
const label = (what: string) => `dkms/recovery/v1/${what}`;

export function newRecoverySecret(): Uint8Array {
  return randomBytes(RECOVERY_SECRET_BYTES);
}

/** A recovery signing key: derived from the recovery secret at `index`. */
export interface RecoverySigner extends Signer {
  readonly index: number;
  /** Its digest, as a policy's recovery commitment holds it. */
  readonly digest: string;
}

/**
 * The keys R yields. Private halves live only inside OpenSSL key objects; the raw seeds are
 * wiped as soon as the objects exist. Keep it no longer than one recovery operation.
 */
export class RecoveryKeys {
  readonly #secret: Uint8Array;
  readonly #backup: KeyObject;
  readonly #signers = new Map<number, RecoverySigner>();
  /** The backup X25519 public key (raw 32 bytes). */
  readonly backupPublicKey: Uint8Array;
  /** Names the owner's backups at the agency: base58btc of 16 derived bytes. */
  readonly locator: string;

  constructor(secret: Uint8Array) {
    this.#secret = abytes(secret, RECOVERY_SECRET_BYTES, 'recovery secret').slice();
    const seed = hkdf(this.#secret, SALT, label('backup-key'));
    try {
      this.#backup = x25519PrivateKeyObject(seed);
      this.backupPublicKey = x25519PublicKey(seed);
    } finally {
      wipe(seed);
    }
    this.locator = toBase58btc(hkdf(this.#secret, SALT, label('backup-locator'), 16));
  }

  /** The backup key as multibase (`z6LS…`). */
  get backupKey(): MultibaseKey {
    return encodePublicKey('x25519', this.backupPublicKey);
  }

  /** X25519 agreement between the backup private key and `peer` (a backup's ephemeral key). */
  agree(peer: Uint8Array): Uint8Array {
    return x25519AgreeKey(this.#backup, peer);
  }

  /** The recovery signing key at `index`. */
  signer(index: number): RecoverySigner {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_RECOVERY_INDEX)
      throw new DkmsError('BAD_INPUT', `recovery key index must be 0 to ${MAX_RECOVERY_INDEX - 1}`);
    let found = this.#signers.get(index);
    if (found === undefined) {
      const seed = hkdf(this.#secret, SALT, label(`signing-key/${index}`));
      let signer: Signer;
      try {
        signer = memorySigner(ed25519PrivateKeyObject(seed), ed25519PublicKey(seed));
      } finally {
        wipe(seed);
      }
      found = { ...signer, index, digest: recoveryKeyDigest(signer.multikey) };
      this.#signers.set(index, found);
    }
    return found;
  }

  /** The committed signing key: the first index whose digest the commitment holds. */
  committedSigner(commitment: RecoveryCommitment): RecoverySigner {
    const found = this.signerFor(commitment.digests, 'first');
    if (found === undefined)
      throw new DkmsError(
        'RECOVERY_KEY_NOT_COMMITTED',
        "no recovery key of this recovery secret is committed in the policy: the secret is old or is not this owner's",
      );
    return found;
  }

  /** The first (or latest) of this secret's signing keys whose digest is among `digests` (a policy's revealed ones, say). */
  signerFor(digests: readonly string[], which: 'first' | 'latest' = 'latest'): RecoverySigner | undefined {
    let found: RecoverySigner | undefined;
    for (let i = 0; i < MAX_RECOVERY_INDEX; i++) {
      const signer = this.signer(i);
      if (!digests.includes(signer.digest)) continue;
      if (which === 'first') return signer;
      found = signer;
    }
    return found;
  }

  /** Wipes R. The key objects are dropped with this object; OpenSSL clears them when freed. */
  wipe(): void {
    wipe(this.#secret);
    this.#signers.clear();
  }
}

/** Runs `use` with the keys of `secret`, then wipes both (the caller's copy of R included). */
export async function withRecoveryKeys<T>(secret: Uint8Array, use: (keys: RecoveryKeys) => Promise<T> | T): Promise<T> {
  const keys = new RecoveryKeys(secret);
  try {
    return await use(keys);
  } finally {
    keys.wipe();
    wipe(secret);
  }
}
