/**
 * Item encryption under a profile's keys. Category, name and tags are encrypted
 * deterministically (nonce = HMAC of the plaintext under a separate key) so that equal values
 * give equal ciphertexts and can be looked up; the value and the authoritative copy of the
 * tags are sealed under a fresh per-item key, wrapped by the profile's wrap key. Both are bound
 * to the item's profile, category and name, so a value moved to another row never opens.
 */
import { z } from 'zod';
import {
  AeadError,
  canonicalBytes,
  fromBase64url,
  fromUtf8,
  hmacSha256,
  open,
  randomBytes,
  seal,
  sealWithNonce,
  toBase64url,
  utf8,
  wipe,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { framed, type ProfileKeys } from './keyring.js';
import type { StoredItem, StoredTag } from './store.js';

export type Tags = Readonly<Record<string, string>>;

export interface WalletItem {
  readonly category: string;
  readonly name: string;
  readonly value: Uint8Array;
  readonly tags: Tags;
}

export const LIMITS = {
  categoryChars: 128,
  nameChars: 512,
  tagNameChars: 128,
  tagValueChars: 1024,
  tags: 32,
  valueBytes: 16 * 1024 * 1024,
} as const;

export const RESERVED_PREFIX = 'dkms:';

function checkText(value: unknown, what: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0) throw badInput(`${what} must be a non-empty string`);
  if (value.length > max) throw badInput(`${what} is longer than ${max} characters`);
  if (/[\uD800-\uDFFF]/u.test(value)) throw badInput(`${what} is not valid Unicode`);
  return value;
}

export function checkCategory(category: unknown): string {
  return checkText(category, 'category', LIMITS.categoryChars);
}

export function checkName(name: unknown): string {
  return checkText(name, 'name', LIMITS.nameChars);
}

export function checkTags(tags: unknown): Tags {
  if (tags === undefined) return {};
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) throw badInput('tags must be an object of strings');
  const entries = Object.entries(tags);
  if (entries.length > LIMITS.tags) throw badInput(`an item has at most ${LIMITS.tags} tags`);
  for (const [k, v] of entries) {
    checkText(k, 'tag name', LIMITS.tagNameChars);
    if (typeof v !== 'string') throw badInput(`tag '${k}' must have a string value`);
    if (v.length > LIMITS.tagValueChars) throw badInput(`tag '${k}' is longer than ${LIMITS.tagValueChars} characters`);
  }
  return Object.fromEntries(entries) as Tags;
}

export function checkValue(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw badInput('item value must be bytes');
  if (value.length > LIMITS.valueBytes) throw badInput(`item value is larger than ${LIMITS.valueBytes} bytes`);
  return value;
}

const tampered = (what: string) => new DkmsError('WALLET_TAMPERED', `wallet item ${what} is damaged or was altered`);

function sealField(keys: ProfileKeys, label: string, text: string): Uint8Array {
  const plaintext = utf8(text);
  const nonce = hmacSha256(keys.searchMac, framed(utf8(label), plaintext)).subarray(0, 12);
  return sealWithNonce(keys.searchEnc, nonce, plaintext, utf8(label));
}

function openField(keys: ProfileKeys, label: string, sealed: Uint8Array): string {
  try {
    return fromUtf8(open(keys.searchEnc, sealed, utf8(label)));
  } catch {
    throw tampered(label);
  }
}

export const sealCategory = (keys: ProfileKeys, category: string) => sealField(keys, 'category', category);
export const sealName = (keys: ProfileKeys, name: string) => sealField(keys, 'name', name);

export function sealTags(keys: ProfileKeys, tags: Tags): StoredTag[] {
  return Object.entries(tags).map(([name, value]) => ({
    name: sealField(keys, 'tag-name', name),
    value: sealField(keys, 'tag-value', `${name}\u0000${value}`),
  }));
}

const itemAad = (profile: string, category: Uint8Array, name: Uint8Array) =>
  framed(utf8('dkms/wallet/v1/item'), utf8(profile), category, name);

const Payload = z.strictObject({ value: z.string(), tags: z.record(z.string(), z.string()) });

export function sealItem(keys: ProfileKeys, profile: string, item: WalletItem): { stored: StoredItem; tags: StoredTag[] } {
  const category = sealCategory(keys, item.category);
  const name = sealName(keys, item.name);
  const aad = itemAad(profile, category, name);
  const itemKey = randomBytes(32);
  try {
    const payload = canonicalBytes({ value: toBase64url(item.value), tags: item.tags });
    const stored = { category, name, itemKey: seal(keys.wrap, itemKey, aad), value: seal(itemKey, payload, aad) };
    return { stored, tags: sealTags(keys, item.tags) };
  } finally {
    wipe(itemKey);
  }
}

/** Decrypts a stored item; anything that does not authenticate is WALLET_TAMPERED, never a wrong value. */
export function openItem(keys: ProfileKeys, profile: string, stored: StoredItem): WalletItem {
  const category = openField(keys, 'category', stored.category);
  const name = openField(keys, 'name', stored.name);
  const aad = itemAad(profile, stored.category, stored.name);
  let itemKey: Uint8Array | undefined;
  try {
    itemKey = open(keys.wrap, stored.itemKey, aad);
    const payload = Payload.parse(JSON.parse(fromUtf8(open(itemKey, stored.value, aad))));
    return { category, name, value: fromBase64url(payload.value), tags: payload.tags };
  } catch (e) {
    if (e instanceof AeadError || e instanceof z.ZodError || e instanceof SyntaxError || e instanceof DkmsError) {
      throw tampered(`'${name}'`);
    }
    throw e;
  } finally {
    wipe(itemKey);
  }
}
