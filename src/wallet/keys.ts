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

export interface KeyInfo {
  readonly name: string;
  readonly type: KeyType;
  readonly publicKey: MultibaseKey;
  readonly createdAt: string;
}

/**
 * A key's stored value, binary so that no copy of the private key ends up in an immutable
 * JavaScript string: framed(version, type, private key, public key, createdAt).
 */
interface KeyRecord {
  readonly type: KeyType;
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly createdAt: string;
}

const RECORD_VERSION = 1;
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
  return { value, info: { type, publicKey: encodePublicKey(type, pair.publicKey), createdAt } };
}

/** Reads a stored key value; the private key it returns is a view into `value`. */
function parseRecord(name: string, value: Uint8Array): KeyRecord {
  const damaged = () => new DkmsError('WALLET_TAMPERED', `key '${name}' has a damaged record`);
  let parts: Uint8Array[];
  try {
    parts = unframe(value);
  } catch {
    throw damaged();
  }
  const [version, typeCode, privateKey, publicKey, createdAt] = parts;
  const type = KEY_TYPES.find((t) => typeCode?.length === 1 && TYPE_CODES[t] === typeCode[0]);
  if (parts.length !== 5 || version?.length !== 1 || version[0] !== RECORD_VERSION || type === undefined) throw damaged();
  if (privateKey?.length !== 32 || publicKey?.length !== 32 || createdAt === undefined) throw damaged();
  try {
    return { type, privateKey, publicKey, createdAt: fromUtf8(createdAt) };
  } catch {
    throw damaged();
  }
}

export function keyInfo(name: string, value: Uint8Array): KeyInfo {
  const record = parseRecord(name, value);
  return { name, type: record.type, publicKey: encodePublicKey(record.type, record.publicKey), createdAt: record.createdAt };
}

/** The caller wipes `value` (and with it the private key) after use. */
function withPrivateKey<T>(name: string, value: Uint8Array, type: KeyType, use: (privateKey: Uint8Array) => T): T {
  const record = parseRecord(name, value);
  if (record.type !== type) throw new DkmsError('KEY_WRONG_TYPE', `key '${name}' is ${record.type}, not ${type}`);
  return use(record.privateKey);
}

/** The private key as an OpenSSL key object, for a key of `type`; KEY_WRONG_TYPE otherwise. */
export function privateKeyObjectOf(name: string, value: Uint8Array, type: KeyType): KeyObject {
  return withPrivateKey(name, value, type, (sk) => (type === 'ed25519' ? ed25519PrivateKeyObject(sk) : x25519PrivateKeyObject(sk)));
}
