/** Wallet items: their limits, and their encryption under a profile's keys. */
import {
  AeadError,
  canonicalBytes,
  concatBytes,
  equalBytes,
  framed,
  fromUtf8,
  hmacSha256,
  nonceOf,
  open,
  randomBytes,
  readU32be,
  seal,
  sealWithNonce,
  u32be,
  utf8,
  wipe,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { wipeProfileKeys, type ProfileKeys } from './keyring.js';
import { TAG_BYTES, type StoredItem } from './store.js';

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

const PAYLOAD_VERSION = 1;
const FIELD_CACHE_LIMIT = 1024;
const SIV_BYTES = 12;

const ITEM_LABEL = utf8('dkms/wallet/v1/item');

type FieldLabel = 'category' | 'name';
const LABELS: Record<FieldLabel, Uint8Array> = { category: utf8('dkms/wallet/v1/category'), name: utf8('dkms/wallet/v1/name') };

/** Encodes the sealed payload: `version ‖ u32 tags length ‖ tags (canonical JSON) ‖ value`. */
function encodePayload(item: WalletItem): Uint8Array {
  const tags = canonicalBytes(item.tags);
  return concatBytes(Uint8Array.of(PAYLOAD_VERSION), u32be(tags.length), tags, item.value);
}

function decodePayload(payload: Uint8Array): { value: Uint8Array; tags: Tags } {
  if (payload.length < 5 || payload[0] !== PAYLOAD_VERSION) throw new AeadError('bad payload');
  const tagsEnd = 5 + readU32be(payload, 1);
  if (tagsEnd > payload.length) throw new AeadError('bad payload');
  const tags: unknown = JSON.parse(fromUtf8(payload.subarray(5, tagsEnd)));
  return { value: payload.slice(tagsEnd), tags: checkTags(tags) };
}

/**
 * Seals and opens one profile's items. Searchable fields: category and name are encrypted
 * deterministically (nonce = HMAC of the plaintext under a separate key, the SIV construction),
 * so equal values give equal ciphertexts and can be looked up and still be decrypted for
 * listings; tags are indexed by a keyed HMAC of (name, value), a blind index, and their
 * authoritative copy is sealed with the value. Values are sealed under a fresh per-item key
 * wrapped by the profile's wrap key; both are bound to the profile, category and name, so a
 * value moved to another row never opens.
 */
export class ItemCodec {
  readonly #keys: ProfileKeys;
  readonly #profileBytes: Uint8Array;
  /** Deterministic ciphertexts of recently used categories and names. */
  readonly #fields = new Map<string, Uint8Array>();

  constructor(keys: ProfileKeys, profile: string) {
    this.#keys = keys;
    this.#profileBytes = utf8(profile);
  }

  /**
   * The synthetic IV of a searchable field: HMAC of the labelled plaintext. It is both the
   * nonce of the field's deterministic encryption and the field's lookup key.
   */
  #fieldKey(label: FieldLabel, text: string): Uint8Array {
    const cacheKey = `${label}\u0000${text}`;
    const cached = this.#fields.get(cacheKey);
    if (cached !== undefined) return cached;
    const iv = hmacSha256(this.#keys.searchMac, framed(LABELS[label], utf8(text))).slice(0, SIV_BYTES);
    if (this.#fields.size >= FIELD_CACHE_LIMIT) this.#fields.clear();
    this.#fields.set(cacheKey, iv);
    return iv;
  }

  #sealField(label: FieldLabel, text: string, iv: Uint8Array): Uint8Array {
    return sealWithNonce(this.#keys.searchEnc, iv, utf8(text), LABELS[label]);
  }

  #openField(label: FieldLabel, sealed: Uint8Array, iv: Uint8Array): string {
    try {
      if (!equalBytes(nonceOf(sealed), iv)) throw new AeadError('field does not match its lookup key');
      return fromUtf8(open(this.#keys.searchEnc, sealed, LABELS[label]));
    } catch {
      throw tampered(label);
    }
  }

  categoryKey(category: string): Uint8Array {
    return this.#fieldKey('category', category);
  }

  nameKey(name: string): Uint8Array {
    return this.#fieldKey('name', name);
  }

  /** One blind-index entry per tag. */
  tagIndex(tags: Tags): Uint8Array[] {
    return Object.entries(tags).map(([name, value]) => hmacSha256(this.#keys.searchMac, framed(utf8('tag'), utf8(name), utf8(value))).slice(0, TAG_BYTES));
  }

  /**
   * Binds an item's key and value to its profile and encrypted category and name, whose
   * nonces are the lookup keys.
   */
  #aad(category: Uint8Array, name: Uint8Array): Uint8Array {
    return framed(ITEM_LABEL, this.#profileBytes, category, name);
  }

  seal(item: WalletItem): StoredItem {
    const categoryKey = this.categoryKey(item.category);
    const nameKey = this.nameKey(item.name);
    const category = this.#sealField('category', item.category, categoryKey);
    const name = this.#sealField('name', item.name, nameKey);
    const aad = this.#aad(category, name);
    const itemKey = randomBytes(32);
    const payload = encodePayload(item);
    try {
      return { categoryKey, nameKey, category, name, itemKey: seal(this.#keys.wrap, itemKey, aad), value: seal(itemKey, payload, aad) };
    } finally {
      wipe(itemKey, payload);
    }
  }

  /**
   * Decrypts a stored item; anything that does not authenticate is WALLET_TAMPERED, never a
   * wrong value. Each encrypted field's nonce must equal its lookup key, and the value's
   * associated data binds both fields, so a row moved under another key does not open.
   * `known` skips decrypting the fields the caller looked the item up by.
   */
  open(stored: StoredItem, known: { category?: string; name?: string } = {}): WalletItem {
    const category = this.#field('category', stored.category, stored.categoryKey, known.category);
    const name = this.#field('name', stored.name, stored.nameKey, known.name);
    let itemKey: Uint8Array | undefined;
    let payload: Uint8Array | undefined;
    try {
      const aad = this.#aad(stored.category, stored.name);
      itemKey = open(this.#keys.wrap, stored.itemKey, aad);
      payload = open(itemKey, stored.value, aad);
      return { category, name, ...decodePayload(payload) };
    } catch (e) {
      if (e instanceof AeadError || e instanceof SyntaxError || e instanceof DkmsError) throw tampered(`'${name}'`);
      throw e;
    } finally {
      wipe(itemKey, payload);
    }
  }

  #field(label: FieldLabel, sealed: Uint8Array, key: Uint8Array, known: string | undefined): string {
    if (known === undefined) return this.#openField(label, sealed, key);
    let matches = false;
    try {
      matches = equalBytes(nonceOf(sealed), key);
    } catch {
      // Too short to hold a nonce: damaged.
    }
    if (!matches) throw tampered(label);
    return known;
  }

  wipe(): void {
    wipeProfileKeys(this.#keys);
    this.#fields.clear();
  }
}
