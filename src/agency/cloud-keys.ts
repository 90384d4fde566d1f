/**
 * Where an agency keeps its cloud agents' private keys. On embedded storage they live in the
 * agency's own wallet (one process). Agencies that share a database (PostgreSQL) must all
 * open every cloud agent's envelopes, so there the keys are sealed (AES-256-GCM) under the
 * agency key that every instance holds, and kept in the cloud agent's record: the database
 * alone opens nothing.
 */
import type { KeyObject } from 'node:crypto';
import {
  AeadError,
  concatBytes,
  ed25519Generate,
  encodePublicKey,
  open,
  seal,
  sha256,
  toBase64url,
  utf8,
  wipe,
  x25519AgreeKey,
  x25519Generate,
  x25519PrivateKeyObject,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import type { Wallet } from '../wallet/index.js';
import type { CloudAgentRecord } from './agency-store.js';

export interface NewCloudKeys {
  /** The signing key, multibase. */
  readonly key: string;
  /** The key-agreement key, multibase. */
  readonly kx: string;
  /** What the cloud agent's record keeps of the private keys (sealed), when they are kept there. */
  readonly sealed?: Uint8Array;
}

export interface CloudKeys {
  /** Makes the keys of a new cloud agent. */
  create(id: string): NewCloudKeys;
  /** Forgets the keys `create` made for `id` when its record was never stored (a registration that lost a race). */
  discard(id: string): void;
  /** X25519 agreement between `record`'s key-agreement key and `peer`. */
  agree(record: CloudAgentRecord, peer: Uint8Array): Uint8Array;
  close(): void;
}

const signKeyName = (id: string) => `cloud-${id}-sign`;
const kxKeyName = (id: string) => `cloud-${id}-kx`;

/** Keys in the agency's own wallet, named after the cloud agent. */
export class WalletCloudKeys implements CloudKeys {
  readonly #wallet: Wallet;

  constructor(wallet: Wallet) {
    this.#wallet = wallet;
  }

  create(id: string): NewCloudKeys {
    const sign = this.#wallet.createKey(signKeyName(id), 'ed25519');
    const kx = this.#wallet.createKey(kxKeyName(id), 'x25519');
    return { key: sign.publicKey, kx: kx.publicKey };
  }

  discard(id: string): void {
    this.#wallet.deleteKey(signKeyName(id));
    this.#wallet.deleteKey(kxKeyName(id));
  }

  agree(record: CloudAgentRecord, peer: Uint8Array): Uint8Array {
    return this.#wallet.agree(kxKeyName(record.id), peer);
  }

  close(): void {
    this.#wallet.close();
  }
}

/** Sealed keys: version byte, then the Ed25519 seed and the X25519 scalar (32 bytes each). */
const SEALED_FORMAT = 1;
/** Key-agreement keys kept imported, by cloud agent id (then all are dropped and imported again on use). */
const KEY_OBJECTS = 10_000;

/** The associated data of a cloud agent's sealed keys: they open for that cloud agent only. */
const sealedFor = (id: string) => utf8(`dkms cloud agent keys v1\0${id}`);

/** What names an agency key without revealing it: stored beside the sealed keys, so that an instance given another key says so. */
export function agencyKeyId(agencyKey: Uint8Array): string {
  return toBase64url(sha256(concatBytes(utf8('dkms agency key id v1\0'), agencyKey))).slice(0, 22);
}

/** Keys sealed under `agencyKey` into each cloud agent's record; opened once per process and kept as key objects. */
export class SealedCloudKeys implements CloudKeys {
  readonly #agencyKey: Uint8Array;
  readonly #objects = new Map<string, KeyObject>();

  constructor(agencyKey: Uint8Array) {
    if (agencyKey.length !== 32) throw new DkmsError('BAD_INPUT', 'the agency key must be 32 bytes');
    this.#agencyKey = Uint8Array.from(agencyKey);
  }

  create(id: string): NewCloudKeys {
    const sign = ed25519Generate();
    const kx = x25519Generate();
    const plain = concatBytes(Uint8Array.of(SEALED_FORMAT), sign.privateKey, kx.privateKey);
    try {
      const sealed = seal(this.#agencyKey, plain, sealedFor(id));
      return { key: encodePublicKey('ed25519', sign.publicKey), kx: encodePublicKey('x25519', kx.publicKey), sealed };
    } finally {
      wipe(plain);
      wipe(sign.privateKey);
      wipe(kx.privateKey);
    }
  }

  discard(): void {
    // Nothing kept outside the record that was not stored.
  }

  agree(record: CloudAgentRecord, peer: Uint8Array): Uint8Array {
    let key = this.#objects.get(record.id);
    if (key === undefined) {
      key = this.#open(record);
      if (this.#objects.size >= KEY_OBJECTS) this.#objects.clear();
      this.#objects.set(record.id, key);
    }
    return x25519AgreeKey(key, peer);
  }

  #open(record: CloudAgentRecord): KeyObject {
    if (record.sealed === undefined) throw new DkmsError('AGENCY_STORE_DAMAGED', `cloud agent ${record.id} has no keys in the shared store`);
    let plain: Uint8Array;
    try {
      plain = open(this.#agencyKey, record.sealed, sealedFor(record.id));
    } catch (e) {
      if (e instanceof AeadError)
        throw new DkmsError(
          'AGENCY_KEY_MISMATCH',
          `the keys of cloud agent ${record.id} do not open with this agency's key: every agency on one database needs the same agency key`,
        );
      throw e;
    }
    try {
      if (plain.length !== 65 || plain[0] !== SEALED_FORMAT)
        throw new DkmsError('AGENCY_STORE_DAMAGED', `the keys of cloud agent ${record.id} are in an unknown format`);
      return x25519PrivateKeyObject(plain.subarray(33, 65));
    } finally {
      wipe(plain);
    }
  }

  close(): void {
    this.#objects.clear();
    wipe(this.#agencyKey);
  }
}
