/**
 * Keys held in the wallet: Ed25519 signing and X25519 agreement. A key is an item in the
 * reserved category `dkms:key` whose value holds the private key; only this module reads it,
 * and only to sign or agree. Callers get `KeyInfo` (public data) and handles, never the secret.
 */
import type { KeyObject } from 'node:crypto';
import {
  ed25519Generate,
  ed25519PrivateKeyObject,
  encodePublicKey,
  framed,
  fromUtf8,
  unframe,
  utf8,
  wipe,
  x25519Generate,
  x25519PrivateKeyObject,
  KEY_TYPES,
  type KeyType,
  type MultibaseKey,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';

export { KEY_TYPES } from '../crypto/index.js';

export const KEY_CATEGORY = 'dkms:key';
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

/** Where a key's private half lives: sealed in the wallet, in a PKCS#11 token, or in the wallet sealed again under custodians. */
export type KeyLocation =
  | { readonly kind: 'wallet' }
  | { readonly kind: 'token'; readonly module: string; readonly token: string; readonly label: string }
  | { readonly kind: 'custody'; readonly set: string };

export interface KeyInfo {
  readonly name: string;
  readonly type: KeyType;
  readonly publicKey: MultibaseKey;
  readonly createdAt: string;
  readonly location: KeyLocation;
}

/**
 * A key's stored value, binary so that no copy of the private key ends up in an immutable
 * JavaScript string. Version 1, a key in the wallet: framed(1, type, private key, public key,
 * createdAt). Version 2, a key in a token: framed(2, type, public key, createdAt, module, token
 * label, key label). Version 3, a key under custodians: framed(3, type, public key, createdAt,
 * custody set id, the private key sealed under a key from the custody secret).
 */
type KeyRecord =
  | { readonly version: 1; readonly type: KeyType; readonly privateKey: Uint8Array; readonly publicKey: Uint8Array; readonly createdAt: string }
  | {
      readonly version: 2;
      readonly type: KeyType;
      readonly publicKey: Uint8Array;
      readonly createdAt: string;
      readonly module: string;
      readonly token: string;
      readonly label: string;
    }
  | {
      readonly version: 3;
      readonly type: KeyType;
      readonly publicKey: Uint8Array;
      readonly createdAt: string;
      readonly set: string;
      readonly sealed: Uint8Array;
    };

const RECORD_VERSION = 1;
const TOKEN_RECORD_VERSION = 2;
const CUSTODY_RECORD_VERSION = 3;
const TYPE_CODES: Record<KeyType, number> = { ed25519: 1, x25519: 2 };

export function checkKeyName(name: unknown): string {
  if (typeof name !== 'string' || !KEY_NAME.test(name)) {
    throw badInput('key name must be 1-128 characters of letters, digits and . _ : @ -, starting with a letter or digit');
  }
  return name;
}

export function checkKeyType(type: unknown): KeyType {
  if (typeof type !== 'string' || !KEY_TYPES.includes(type as KeyType)) {
    throw badInput(`key type must be one of ${KEY_TYPES.join(', ')}`);
  }
  return type as KeyType;
}

/** A new key record, serialized for storage; the caller wipes it once stored. */
export function newKeyRecord(type: KeyType, now: Date): { value: Uint8Array; info: Omit<KeyInfo, 'name'> } {
  const pair = type === 'ed25519' ? ed25519Generate() : x25519Generate();
  const createdAt = now.toISOString();
  const value = framed(Uint8Array.of(RECORD_VERSION), Uint8Array.of(TYPE_CODES[type]), pair.privateKey, pair.publicKey, utf8(createdAt));
  wipe(pair.privateKey);
  return { value, info: { type, publicKey: encodePublicKey(type, pair.publicKey), createdAt, location: { kind: 'wallet' } } };
}

/** A token key's record. */
export function tokenKeyRecord(type: KeyType, publicKey: Uint8Array, now: Date, where: { module: string; token: string; label: string }): Uint8Array {
  return framed(
    Uint8Array.of(TOKEN_RECORD_VERSION),
    Uint8Array.of(TYPE_CODES[type]),
    publicKey,
    utf8(now.toISOString()),
    utf8(where.module),
    utf8(where.token),
    utf8(where.label),
  );
}

/** A custodial key's record: `sealed` is its private key sealed under the custody secret (see custodyKeyRecord in wallet.ts). */
export function custodyKeyRecord(type: KeyType, publicKey: Uint8Array, createdAt: string, set: string, sealed: Uint8Array): Uint8Array {
  return framed(Uint8Array.of(CUSTODY_RECORD_VERSION), Uint8Array.of(TYPE_CODES[type]), publicKey, utf8(createdAt), utf8(set), sealed);
}

/** Reads a stored key value; a private key it returns is a view into `value`. */
export function parseRecord(name: string, value: Uint8Array): KeyRecord {
  const damaged = () => new DkmsError('WALLET_TAMPERED', `key '${name}' has a damaged record`);
  let parts: Uint8Array[];
  try {
    parts = unframe(value);
  } catch {
    throw damaged();
  }
  const [version, typeCode] = parts;
  const type = KEY_TYPES.find((t) => typeCode?.length === 1 && TYPE_CODES[t] === typeCode[0]);
  if (version?.length !== 1 || type === undefined) throw damaged();
  try {
    if (version[0] === RECORD_VERSION) {
      const [, , privateKey, publicKey, createdAt] = parts;
      if (parts.length !== 5 || privateKey?.length !== 32 || publicKey?.length !== 32 || createdAt === undefined) throw damaged();
      return { version: 1, type, privateKey, publicKey, createdAt: fromUtf8(createdAt) };
    }
    const [, , publicKey, createdAt, ...rest] = parts;
    if (publicKey?.length !== 32 || createdAt === undefined) throw damaged();
    if (version[0] === TOKEN_RECORD_VERSION && rest.length === 3) {
      const [module, token, label] = rest.map((part) => fromUtf8(part));
      return { version: 2, type, publicKey, createdAt: fromUtf8(createdAt), module: module ?? '', token: token ?? '', label: label ?? '' };
    }
    if (version[0] === CUSTODY_RECORD_VERSION && rest.length === 2) {
      const [set, sealed] = rest;
      return { version: 3, type, publicKey, createdAt: fromUtf8(createdAt), set: fromUtf8(set ?? new Uint8Array(0)), sealed: sealed ?? new Uint8Array(0) };
    }
  } catch {
    throw damaged();
  }
  throw damaged();
}

function locationOf(record: KeyRecord): KeyLocation {
  if (record.version === 2) return { kind: 'token', module: record.module, token: record.token, label: record.label };
  if (record.version === 3) return { kind: 'custody', set: record.set };
  return { kind: 'wallet' };
}

export function keyInfo(name: string, value: Uint8Array): KeyInfo {
  const record = parseRecord(name, value);
  return { name, type: record.type, publicKey: encodePublicKey(record.type, record.publicKey), createdAt: record.createdAt, location: locationOf(record) };
}

/** The private key (a 32-byte seed or scalar) as an OpenSSL key object. */
export function keyObjectOf(type: KeyType, privateKey: Uint8Array): KeyObject {
  return type === 'ed25519' ? ed25519PrivateKeyObject(privateKey) : x25519PrivateKeyObject(privateKey);
}
