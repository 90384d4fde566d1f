/**
 * The encrypted wallet (docs/wallet.md): items and keys under the store key → profile KEK
 * → per-item key hierarchy, in one SQLite file held exclusively while open.
 */
import { existsSync, linkSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KeyObject } from 'node:crypto';
import {
  DEFAULT_KDF_TIER,
  decodePublicKey,
  ed25519SignKey,
  equalBytes,
  publicKeyForms,
  randomBytes,
  toHex,
  utf8,
  wipe,
  x25519AgreeKey,
  type KdfTier,
  type KeyAgreementKey,
  type KeyType,
  type Signer,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import type { Pkcs11Token } from '../hsm/pkcs11.js';
import { openUnderCustody, sealUnderCustody } from './custody-keys.js';
import { decodeExport, encodeExport } from './export.js';
import { ItemCodec, RESERVED_PREFIX, checkCategory, checkName, checkTags, checkValue, type Tags, type WalletItem } from './items.js';
import {
  KEY_CATEGORY,
  checkKeyName,
  checkKeyType,
  custodyKeyRecord,
  keyInfo,
  keyObjectOf,
  newKeyRecord,
  parseRecord,
  tokenKeyRecord,
  type KeyInfo,
} from './keys.js';
import {
  STORE_KEY_LABEL,
  buildKeyring,
  newProfileRoot,
  parseKeyring,
  profileKeys,
  unwrapProfileRoot,
  wrapProfileRoot,
  type CustodyFactor,
  type KeyringHeader,
} from './keyring.js';
import {
  checkGeneration,
  combineParts,
  generationMac,
  isUnlock,
  openToken,
  openTokenPart,
  prepareProtection,
  type CustodyBinding,
  type Parts,
  type PreparedProtection,
  type ProtectionChange,
  type Unlock,
} from './protection.js';

export type { CustodyBinding, ProtectionChange, TokenBinding } from './protection.js';
import { assertStrongSecret, deriveKey, newKdfParams, type WalletSecret } from './secret.js';
import { SqliteWalletStore, type StoredKeyring, type WalletStore } from './store.js';

export const DEFAULT_PROFILE = 'default';
/** Internal: not exported from the package index; tests use it to observe wiping. */
export const HELD_KEYS = Symbol('dkms.wallet.heldKeys');
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface OpenOptions {
  /** Profile whose items this handle reads and writes. */
  readonly profile?: string;
  /** How long to wait for another process to release the wallet before WALLET_BUSY. */
  readonly busyTimeoutMs?: number;
}

export interface CreateOptions {
  readonly kdfTier?: KdfTier;
}

/** What opens a wallet, as `wallet info` shows it. */
export interface WalletProtection {
  /** Whether the passphrase (or raw key) is one of its factors. */
  readonly passphrase: boolean;
  /** The token it is bound to. */
  readonly token?: { readonly module: string; readonly token: string; readonly key: string };
  /** Its custodians' set, and whether they unseal the wallet or approve each use of its master keys. */
  readonly custody?: { readonly set: string; readonly epoch: number; readonly mode: 'unseal' | 'approval' };
  /** Format 2: the wallet's id and generation (what rollback detection compares). */
  readonly id?: string;
  readonly generation?: number;
  /** The tokens keys of the wallet live in (their PINs are needed to sign with them). */
  readonly keyTokens: readonly string[];
}

/** What {@link Wallet.checkSecret} finds: the secret opens the wallet, does not, or cannot tell it alone. */
export type SecretCheck = 'opens' | 'wrong' | 'unavailable';

export interface WalletInfo {
  readonly path: string;
  readonly format: number;
  readonly kdf?: { readonly alg: string; readonly tier?: string; readonly memoryKiB?: number; readonly passes?: number; readonly lanes?: number };
  readonly protection: WalletProtection;
  readonly keyVersion: number;
  readonly createdAt: string;
  readonly rekeyedAt?: string;
  readonly profiles: readonly string[];
  readonly items: number;
}

export interface FindQuery {
  readonly category: string;
  /** Every tag given must match exactly. */
  readonly tags?: Tags;
}

function checkProfile(profile: string): string {
  if (!PROFILE_NAME.test(profile)) throw badInput('profile name must be 1-64 letters, digits, . _ -, starting with a letter or digit');
  return profile;
}

function publicCategory(category: unknown): string {
  const checked = checkCategory(category);
  if (checked.startsWith(RESERVED_PREFIX)) throw badInput(`categories starting with '${RESERVED_PREFIX}' are reserved for dkms`);
  return checked;
}

function describeKdf(header: KeyringHeader): WalletInfo['kdf'] {
  const { kdf } = header;
  if (kdf === undefined) return undefined;
  if (kdf.alg === 'raw') return { alg: 'raw' };
  return { alg: kdf.alg, tier: kdf.tier, memoryKiB: kdf.memoryKiB, passes: kdf.passes, lanes: kdf.lanes };
}

function protectionOf(header: KeyringHeader): WalletProtection {
  const { token, custody } = header;
  return {
    passphrase: header.kdf !== undefined,
    ...(token === undefined ? {} : { token: { module: token.module, token: token.token, key: token.key } }),
    ...(custody === undefined ? {} : { custody: { set: custody.set, epoch: custody.epoch, mode: custody.mode } }),
    ...(header.id === undefined ? {} : { id: header.id, generation: header.generation ?? 0 }),
    keyTokens: header.keyTokens ?? [],
  };
}

function infoOf(path: string, header: KeyringHeader, profiles: Iterable<string>, items: number): WalletInfo {
  const kdf = describeKdf(header);
  return {
    path,
    format: header.format,
    ...(kdf === undefined ? {} : { kdf }),
    protection: protectionOf(header),
    keyVersion: header.keyVersion,
    createdAt: header.createdAt,
    ...(header.rekeyedAt === undefined ? {} : { rekeyedAt: header.rekeyedAt }),
    profiles: [...profiles].sort(),
    items,
  };
}

/** Removes a file and the WAL files SQLite may have left beside it. */
function removeDatabase(path: string): void {
  for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
}

export class Wallet {
  readonly path: string;
  readonly profile: string;
  #store: WalletStore | undefined;
  #storeKey: Uint8Array;
  #header: KeyringHeader;
  /** Format 2: the parts its factors gave, so that a change to one factor keeps the others. */
  #parts: Parts = {};
  /** Tokens this wallet holds open: the one it is bound to and those its keys live in, by label. */
  readonly #tokens = new Map<string, Pkcs11Token>();
  readonly #items: ItemCodec;
  readonly #keyObjects = new Map<string, KeyObject>();
  readonly #signers = new Map<string, (message: Uint8Array) => Uint8Array>();
  /** The profile's key buffers, kept only so tests can see close() wipe them. */
  readonly #profileKeys: readonly Uint8Array[];

  private constructor(path: string, profile: string, store: WalletStore, storeKey: Uint8Array, header: KeyringHeader, root: Uint8Array) {
    this.path = path;
    this.profile = profile;
    this.#store = store;
    this.#storeKey = storeKey;
    this.#header = header;
    const keys = profileKeys(root);
    this.#items = new ItemCodec(keys, profile);
    this.#profileKeys = [keys.wrap, keys.searchEnc, keys.searchMac];
  }

  /**
   * Creates a wallet at `path`. The file appears complete or not at all: it is built under a
   * temporary name and linked into place, which fails with WALLET_EXISTS if `path` exists.
   */
  static async create(path: string, secret: WalletSecret, options: CreateOptions = {}): Promise<Wallet> {
    return Wallet.#createWith(path, secret, options.kdfTier ?? DEFAULT_KDF_TIER, new Map([[DEFAULT_PROFILE, []]]));
  }

  static async #createWith(path: string, secret: WalletSecret, tier: KdfTier, profiles: ReadonlyMap<string, readonly WalletItem[]>): Promise<Wallet> {
    assertStrongSecret(secret);
    if (existsSync(path)) throw new DkmsError('WALLET_EXISTS', `a wallet already exists at ${path}`);
    const kdf = newKdfParams(secret, tier);
    const header: KeyringHeader = { format: 1, kdf, keyVersion: 0, createdAt: new Date().toISOString() };
    const storeKey = await deriveKey(secret, kdf, STORE_KEY_LABEL);
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const temp = `${path}.creating-${toHex(randomBytes(6))}`;
    try {
      const store = SqliteWalletStore.create(temp);
      try {
        const wrapped = new Map<string, Uint8Array>();
        store.transaction(() => {
          for (const [profile, items] of profiles) {
            const root = newProfileRoot();
            wrapped.set(checkProfile(profile), wrapProfileRoot(storeKey, profile, root, header.keyVersion));
            const codec = new ItemCodec(profileKeys(root), profile);
            wipe(root);
            try {
              for (const item of items) {
                if (!store.insertItem(profile, codec.seal(item), codec.tagIndex(item.tags))) {
                  throw new DkmsError('WALLET_TAMPERED', `duplicate item '${item.name}' in import`);
                }
              }
            } finally {
              codec.wipe();
            }
          }
          store.writeKeyring(buildKeyring(header, wrapped));
        });
      } finally {
        store.close();
      }
      try {
        linkSync(temp, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new DkmsError('WALLET_EXISTS', `a wallet already exists at ${path}`);
        throw new DkmsError('IO_ERROR', `cannot create wallet at ${path}: ${(e as Error).message}`);
      }
    } catch (e) {
      wipe(storeKey);
      throw e;
    } finally {
      removeDatabase(temp);
    }
    return Wallet.#attach(Wallet.#openStore(path), path, DEFAULT_PROFILE, storeKey);
  }

  /**
   * Opens an existing wallet with each of its factors (a passphrase alone for most). A wrong
   * secret is WALLET_BAD_PASSPHRASE, a missing or wrong token an HSM_* code, a wallet under
   * custodians without their secret CUSTODY_REQUIRED, an older copy than its token has seen
   * WALLET_ROLLED_BACK; each changes nothing.
   */
  static async open(path: string, unlock: WalletSecret | Unlock, options: OpenOptions = {}): Promise<Wallet> {
    const given: Unlock = isUnlock(unlock) ? unlock : { secret: unlock };
    const store = Wallet.#openStore(path, options.busyTimeoutMs);
    let keyring: { stored: StoredKeyring; header: KeyringHeader };
    let storeKey: Uint8Array;
    const parts: Parts = {};
    let token: Pkcs11Token | undefined;
    try {
      keyring = Wallet.#readKeyring(store, path);
      const { header } = keyring;
      if (header.format === 1) {
        storeKey = await deriveKey(Wallet.#needSecret(given, path), header.kdf as NonNullable<KeyringHeader['kdf']>, STORE_KEY_LABEL);
      } else {
        if (header.custody?.mode === 'unseal') {
          if (given.custody === undefined) {
            throw new DkmsError('CUSTODY_REQUIRED', `wallet ${path} is sealed under custodians: unseal it with their approvals ('dkms custodian unseal')`);
          }
          parts.custody = given.custody.slice();
        }
        if (header.token !== undefined) {
          if (given.token === undefined) throw new DkmsError('HSM_UNAVAILABLE', `wallet ${path} is bound to token '${header.token.token}': give its PIN`);
          token = 'pin' in given.token ? await openToken(header.token, given.token) : given.token;
          parts.token = openTokenPart(header, token);
        }
        if (header.kdf !== undefined) parts.passphrase = await deriveKey(Wallet.#needSecret(given, path), header.kdf, STORE_KEY_LABEL);
        storeKey = combineParts(header, parts);
      }
    } catch (e) {
      store.close();
      wipe(parts.passphrase, parts.token, parts.custody);
      // A token given open is the wallet's from here on, opened or not.
      if (given.token !== undefined && !('pin' in given.token)) given.token.close();
      else token?.close();
      throw e;
    }
    let wallet: Wallet;
    try {
      wallet = Wallet.#attach(store, path, options.profile ?? DEFAULT_PROFILE, storeKey, keyring);
    } catch (e) {
      wipe(parts.passphrase, parts.token, parts.custody);
      token?.close();
      throw e;
    }
    wallet.#parts = parts;
    if (token !== undefined) wallet.#tokens.set(token.label, token);
    try {
      wallet.#checkFormat2(token);
    } catch (e) {
      wallet.close();
      throw e;
    }
    return wallet;
  }

  static #needSecret(given: Unlock, path: string): WalletSecret {
    if (given.secret === undefined) throw badInput(`wallet ${path} needs its passphrase`);
    return given.secret;
  }

  /** Format 2: the generation is authentic (its HMAC) and not older than the token has seen. */
  #checkFormat2(token: Pkcs11Token | undefined): void {
    const header = this.#header;
    if (header.format !== 2) return;
    if (!equalBytes(utf8(generationMac(this.#storeKey, header)), utf8(header.generationMac ?? ''))) {
      throw new DkmsError('WALLET_TAMPERED', `wallet ${this.path}: its generation was altered`);
    }
    if (token !== undefined) checkGeneration(header, token, this.path);
  }

  static #openStore(path: string, busyTimeoutMs = 250): SqliteWalletStore {
    if (!existsSync(path)) throw new DkmsError('WALLET_NOT_FOUND', `no wallet at ${path} (create one with 'dkms wallet create')`);
    return SqliteWalletStore.open(path, busyTimeoutMs);
  }

  /** Unwraps the profile's KEK and hands over the open store; on failure closes it and wipes the key. */
  static #readKeyring(store: WalletStore, path: string): { stored: StoredKeyring; header: KeyringHeader } {
    const stored = store.readKeyring();
    return { stored, header: parseKeyring(stored, path) };
  }

  static #attach(store: WalletStore, path: string, profile: string, storeKey: Uint8Array, keyring?: { stored: StoredKeyring; header: KeyringHeader }): Wallet {
    try {
      const { stored, header } = keyring ?? Wallet.#readKeyring(store, path);
      const wrapped = stored.profiles.get(checkProfile(profile));
      if (wrapped === undefined) throw badInput(`wallet has no profile '${profile}'`);
      const root = unwrapProfileRoot(storeKey, profile, wrapped);
      try {
        return new Wallet(path, profile, store, storeKey, header, root);
      } finally {
        wipe(root);
      }
    } catch (e) {
      store.close();
      wipe(storeKey);
      throw e;
    }
  }

  /** What can be told about a wallet without its secret. */
  static inspect(path: string, options: OpenOptions = {}): WalletInfo {
    const store = Wallet.#openStore(path, options.busyTimeoutMs);
    try {
      const stored = store.readKeyring();
      return infoOf(path, parseKeyring(stored, path), stored.profiles.keys(), store.countItems());
    } finally {
      store.close();
    }
  }

  /**
   * What opens a wallet, read without its secret: its protection and its custody factor (the
   * custodians' set, as canonical JSON: what requests are made from).
   */
  static protectionOf(path: string, options: OpenOptions = {}): { protection: WalletProtection; custody: CustodyFactor | undefined } {
    const store = Wallet.#openStore(path, options.busyTimeoutMs);
    try {
      const header = parseKeyring(store.readKeyring(), path);
      return { protection: protectionOf(header), custody: header.custody };
    } finally {
      store.close();
    }
  }

  get #open(): WalletStore {
    if (this.#store === undefined) throw new DkmsError('WALLET_CLOSED', 'the wallet is closed');
    return this.#store;
  }

  /** How many writes this open wallet has made (a count to compare, not a history). */
  changes(): number {
    return this.#open.changes();
  }

  info(): WalletInfo {
    const store = this.#open;
    return infoOf(this.path, this.#header, store.readKeyring().profiles.keys(), store.countItems());
  }

  /**
   * Whether `secret` is the one that opens this open wallet, told without reading the file again
   * and without keeping anything: its key is derived with the wallet's stored parameters (one
   * Argon2id for a passphrase), compared in constant time with the one held, and wiped.
   * `'unavailable'` when the secret alone does not open the wallet: it is bound to a token or
   * sealed under custodians (unseal mode), or opens with the other kind of secret (a raw key,
   * not a passphrase). Custodians who approve each use of master keys (approval mode) leave the
   * opening to the secret: it is checked.
   *
   * @throws DkmsError WALLET_CLOSED once closed.
   * @example
   * ```ts
   * if ((await wallet.checkSecret(passphraseSecret(typed))) !== 'opens') refuse();
   * ```
   */
  async checkSecret(secret: WalletSecret): Promise<SecretCheck> {
    if (this.closed) throw new DkmsError('WALLET_CLOSED', 'the wallet is closed');
    const header = this.#header;
    const kdf = header.kdf;
    if (kdf === undefined || header.token !== undefined || header.custody?.mode === 'unseal') return 'unavailable';
    if ((kdf.alg === 'raw') !== (secret.kind === 'raw')) return 'unavailable';
    // Format 1: the store key is the secret's key; format 2 (opened by the secret alone): its passphrase part.
    const held = header.format === 1 ? this.#storeKey : this.#parts.passphrase;
    if (held === undefined) return 'unavailable';
    const derived = await deriveKey(secret, kdf, STORE_KEY_LABEL);
    try {
      // The wallet may have closed, or been rekeyed, while the key was derived: compare with what it holds now.
      if (this.closed || this.#header !== header) return this.checkSecret(secret);
      return equalBytes(derived, held) ? 'opens' : 'wrong';
    } finally {
      wipe(derived);
    }
  }

  // Items

  put(category: string, name: string, value: Uint8Array, tags?: Tags): void {
    this.#put({ category: publicCategory(category), name: checkName(name), value: checkValue(value), tags: checkTags(tags) });
  }

  #put(item: WalletItem): void {
    if (!this.#open.insertItem(this.profile, this.#items.seal(item), this.#items.tagIndex(item.tags))) {
      throw new DkmsError('ITEM_EXISTS', `item '${item.name}' already exists in category '${item.category}'`);
    }
  }

  get(category: string, name: string): WalletItem {
    return this.#get(publicCategory(category), checkName(name));
  }

  #get(category: string, name: string): WalletItem {
    const stored = this.#open.getItem(this.profile, this.#items.categoryKey(category), this.#items.nameKey(name));
    if (stored === undefined) throw new DkmsError('ITEM_NOT_FOUND', `no item '${name}' in category '${category}'`);
    return this.#items.open(stored, { category, name });
  }

  find(query: FindQuery): WalletItem[] {
    return this.#find(publicCategory(query.category), checkTags(query.tags));
  }

  #find(category: string, tags: Tags): WalletItem[] {
    const found = this.#open.findItems(this.profile, this.#items.categoryKey(category), this.#items.tagIndex(tags));
    // The tag index only narrows the search; the authenticated copy of the tags decides.
    return found.map((stored) => this.#items.open(stored, { category })).filter((item) => Object.entries(tags).every(([k, v]) => item.tags[k] === v));
  }

  /** Replaces an item's value and/or tags; the item gets a fresh item key. */
  update(category: string, name: string, change: { value?: Uint8Array; tags?: Tags }): WalletItem {
    const current = this.get(category, name);
    const next: WalletItem = {
      ...current,
      value: change.value === undefined ? current.value : checkValue(change.value),
      tags: change.tags === undefined ? current.tags : checkTags(change.tags),
    };
    if (!this.#open.replaceItem(this.profile, this.#items.seal(next), this.#items.tagIndex(next.tags)))
      throw new DkmsError('ITEM_NOT_FOUND', `no item '${name}' in category '${category}'`);
    return next;
  }

  delete(category: string, name: string): void {
    this.#delete(publicCategory(category), checkName(name), 'ITEM_NOT_FOUND');
  }

  #delete(category: string, name: string, missing: 'ITEM_NOT_FOUND' | 'KEY_NOT_FOUND'): void {
    if (!this.#open.deleteItem(this.profile, this.#items.categoryKey(category), this.#items.nameKey(name))) {
      throw new DkmsError(missing, missing === 'KEY_NOT_FOUND' ? `no key '${name}'` : `no item '${name}' in category '${category}'`);
    }
  }

  /** Runs `fn` as one transaction: its writes land together or not at all. */
  transaction<T>(fn: () => T): T {
    return this.#open.transaction(fn);
  }

  // Keys

  /** Creates a key inside the wallet and returns its public half. */
  createKey(name: string, type: KeyType): KeyInfo {
    checkKeyName(name);
    const { value, info } = newKeyRecord(checkKeyType(type), new Date());
    try {
      this.#putKey(name, value, type);
    } finally {
      wipe(value);
    }
    return { name, ...info };
  }

  /** Stores a key record under `name` and raises the generation, in one transaction (`edit` changes the header with it). */
  #putKey(name: string, value: Uint8Array, type: KeyType, edit?: (header: KeyringHeader) => KeyringHeader): void {
    try {
      this.#changing(() => this.#put({ category: KEY_CATEGORY, name, value, tags: { type } }), edit);
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'ITEM_EXISTS') throw new DkmsError('KEY_EXISTS', `a key named '${name}' already exists`);
      throw e;
    }
  }

  /**
   * Creates an Ed25519 key inside `token` (sensitive, never extractable) labelled `label`, and
   * records it in the wallet as `name`: it signs like any wallet key, inside the token, while
   * the token is open with the wallet. The wallet holds the token open until it closes (also
   * when this fails).
   */
  createTokenKey(name: string, given: Pkcs11Token, where: { module: string; label?: string }): KeyInfo {
    const token = this.#holdToken(given);
    checkKeyName(name);
    const label = where.label ?? name;
    if (this.#open.getItem(this.profile, this.#items.categoryKey(KEY_CATEGORY), this.#items.nameKey(name)) !== undefined) {
      throw new DkmsError('KEY_EXISTS', `a key named '${name}' already exists`);
    }
    const signer = token.createEd25519(label);
    const value = tokenKeyRecord('ed25519', signer.publicKey, new Date(), { module: where.module, token: token.label, label });
    const known = this.#header.keyTokens ?? [];
    this.#putKey(name, value, 'ed25519', (header) => (known.includes(token.label) ? header : { ...header, keyTokens: [...known, token.label].sort() }));
    return this.getKey(name);
  }

  /** Keeps `token` open with the wallet (closed with it); another open of a token it holds is closed at once. The one it holds. */
  #holdToken(token: Pkcs11Token): Pkcs11Token {
    const held = this.#tokens.get(token.label);
    if (held === undefined) {
      this.#tokens.set(token.label, token);
      return token;
    }
    if (held !== token) token.close();
    return held;
  }

  /** The tokens this wallet's keys live in and that it does not hold open yet: open them and give them to {@link useToken}. */
  tokensNeeded(): { module: string; token: string }[] {
    const needed = new Map<string, { module: string; token: string }>();
    for (const key of this.listKeys()) {
      if (key.location.kind === 'token' && !this.#tokens.has(key.location.token))
        needed.set(key.location.token, { module: key.location.module, token: key.location.token });
    }
    return [...needed.values()];
  }

  /** Gives the wallet an open token its keys live in; the wallet closes it when it closes. */
  useToken(token: Pkcs11Token): void {
    this.#holdToken(token);
  }

  #keyValue(name: string): Uint8Array {
    try {
      return this.#get(KEY_CATEGORY, checkKeyName(name)).value;
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'ITEM_NOT_FOUND') throw new DkmsError('KEY_NOT_FOUND', `no key '${name}'`);
      throw e;
    }
  }

  #useKey<T>(name: string, use: (value: Uint8Array) => T): T {
    const value = this.#keyValue(name);
    try {
      return use(value);
    } finally {
      wipe(value);
    }
  }

  getKey(name: string): KeyInfo {
    return this.#useKey(name, (value) => keyInfo(name, value));
  }

  listKeys(type?: KeyType): KeyInfo[] {
    const items = this.#find(KEY_CATEGORY, type === undefined ? {} : { type: checkKeyType(type) });
    return items.map((item) => {
      try {
        return keyInfo(item.name, item.value);
      } finally {
        wipe(item.value);
      }
    });
  }

  /** Deletes a key's record (a token key stays in its token: remove it there with the token's tools). */
  deleteKey(name: string): void {
    checkKeyName(name);
    this.#changing(() => this.#delete(KEY_CATEGORY, name, 'KEY_NOT_FOUND'));
    this.#keyObjects.delete(`${this.profile}\0${name}`);
    this.#signers.delete(`${this.profile}\0${name}`);
  }

  /**
   * How the named key signs, found once per open wallet: a wallet key imported into OpenSSL
   * (which clears its memory when the object is freed, after close() drops it), a token key
   * through its token. A key under custodians signs only through {@link signWithCustody}.
   */
  #signFunction(name: string): (message: Uint8Array) => Uint8Array {
    const id = `${this.profile}\0${name}`;
    let sign = this.#signers.get(id);
    if (sign !== undefined) return sign;
    sign = this.#useKey(name, (value): ((message: Uint8Array) => Uint8Array) => {
      const record = parseRecord(name, value);
      if (record.type !== 'ed25519') throw new DkmsError('KEY_WRONG_TYPE', `key '${name}' is ${record.type}, not ed25519`);
      if (record.version === 1) {
        const key = keyObjectOf('ed25519', record.privateKey);
        return (message) => ed25519SignKey(key, message);
      }
      if (record.version === 3) {
        throw new DkmsError('CUSTODY_REQUIRED', `key '${name}' is under custodians: it signs only with their approvals ('dkms custodian request')`);
      }
      const token = this.#tokens.get(record.token);
      if (token === undefined) throw new DkmsError('HSM_UNAVAILABLE', `key '${name}' is in token '${record.token}', which is not open: give its PIN`);
      const signer = token.signer(record.label);
      if (!equalBytes(signer.publicKey, record.publicKey)) {
        throw new DkmsError('HSM_KEY_NOT_FOUND', `token '${record.token}' holds another key labelled '${record.label}' than the wallet's key '${name}'`);
      }
      return (message) => signer.sign(message);
    });
    this.#signers.set(id, sign);
    return sign;
  }

  #keyObject(name: string, type: KeyType): KeyObject {
    const id = `${this.profile}\0${name}`;
    let key = this.#keyObjects.get(id);
    if (key === undefined) {
      key = this.#useKey(name, (value) => {
        const record = parseRecord(name, value);
        if (record.type !== type) throw new DkmsError('KEY_WRONG_TYPE', `key '${name}' is ${record.type}, not ${type}`);
        if (record.version !== 1) throw new DkmsError('KEY_WRONG_TYPE', `key '${name}' is not a key the wallet holds itself`);
        return keyObjectOf(type, record.privateKey);
      });
      this.#keyObjects.set(id, key);
    }
    return key;
  }

  /** Ed25519 signature by the named key. */
  sign(name: string, message: Uint8Array): Uint8Array {
    return this.#signFunction(name)(message);
  }

  /** X25519 shared secret between the named key and a peer's public key. */
  agree(name: string, peerPublicKey: Uint8Array): Uint8Array {
    return x25519AgreeKey(this.#keyObject(name, 'x25519'), peerPublicKey);
  }

  /** The named Ed25519 key as a {@link Signer}: it signs through this wallet (WALLET_CLOSED once closed). */
  signer(name: string): Signer {
    const { publicKey } = decodePublicKey(this.#keyInfo(name, 'ed25519').publicKey, 'ed25519');
    return { ...publicKeyForms('ed25519', publicKey), sign: (m) => this.sign(name, m) };
  }

  /** The named X25519 key as a {@link KeyAgreementKey}: it agrees through this wallet (WALLET_CLOSED once closed). */
  agreementKey(name: string): KeyAgreementKey {
    const { publicKey } = decodePublicKey(this.#keyInfo(name, 'x25519').publicKey, 'x25519');
    return { ...publicKeyForms('x25519', publicKey), agree: (p) => this.agree(name, p) };
  }

  #keyInfo(name: string, type: KeyType): KeyInfo {
    const info = this.getKey(name);
    if (info.type !== type) throw new DkmsError('KEY_WRONG_TYPE', `key '${name}' is ${info.type}, not ${type}`);
    return info;
  }

  // Hierarchy

  /**
   * Runs a change to keys or protection as one transaction with a raised generation (format 2),
   * then tells the bound token the new generation. A crash between the two leaves the token
   * behind the wallet, which the next open puts right; never ahead of it.
   */
  #changing<T>(change: () => T, edit: (header: KeyringHeader) => KeyringHeader = (h) => h): T {
    const store = this.#open;
    if (this.#header.format !== 2) {
      const edited = edit(this.#header);
      if (edited === this.#header) return store.transaction(change);
      const result = store.transaction(() => {
        const value = change();
        store.writeKeyring(buildKeyring(edited, store.readKeyring().profiles));
        return value;
      });
      this.#header = edited;
      return result;
    }
    const header: KeyringHeader = { ...edit(this.#header), generation: (this.#header.generation ?? 0) + 1 };
    const next: KeyringHeader = { ...header, generationMac: generationMac(this.#storeKey, header) };
    const result = store.transaction(() => {
      const value = change();
      store.writeKeyring(buildKeyring(next, store.readKeyring().profiles));
      return value;
    });
    this.#header = next;
    this.#tellToken();
    return result;
  }

  /**
   * Tells the bound token the generation just committed. The change stands even if the token
   * cannot be told (it is in the file): the next open moves the counter up, as after a crash.
   */
  #tellToken(): void {
    const bound = this.#header.token;
    if (bound === undefined) return;
    const token = this.#tokens.get(bound.token);
    try {
      if (token !== undefined) checkGeneration(this.#header, token, this.path);
    } catch (e) {
      if (!(e instanceof DkmsError && e.code.startsWith('HSM_'))) throw e;
    }
  }

  /**
   * Replaces the secret that opens the wallet. Only the profile KEKs are re-wrapped, in one
   * transaction: the time does not depend on the number of items, and after a crash at any
   * point exactly one of the old or new secret opens the wallet. A wallet with other factors
   * keeps them.
   */
  async rekey(secret: WalletSecret, options: CreateOptions = {}): Promise<void> {
    if (this.#header.format === 2) {
      await this.protect({ secret, ...(options.kdfTier === undefined ? {} : { kdfTier: options.kdfTier }) });
      return;
    }
    assertStrongSecret(secret);
    const header: KeyringHeader = {
      ...this.#header,
      kdf: newKdfParams(secret, options.kdfTier ?? DEFAULT_KDF_TIER),
      keyVersion: this.#header.keyVersion + 1,
      rekeyedAt: new Date().toISOString(),
    };
    const newKey = await deriveKey(secret, header.kdf as NonNullable<KeyringHeader['kdf']>, STORE_KEY_LABEL);
    this.#rewrap(header, newKey);
  }

  /** Re-wraps every profile KEK under `newKey` with `header`, in one transaction with `alongside`; then holds the new key. */
  #rewrap(header: KeyringHeader, newKey: Uint8Array, alongside?: () => void): void {
    const store = this.#open;
    try {
      const wrapped = new Map<string, Uint8Array>();
      for (const [profile, kek] of store.readKeyring().profiles) {
        const root = unwrapProfileRoot(this.#storeKey, profile, kek);
        wrapped.set(profile, wrapProfileRoot(newKey, profile, root, header.keyVersion));
        wipe(root);
      }
      store.transaction(() => {
        alongside?.();
        store.writeKeyring(buildKeyring(header, wrapped));
      });
    } catch (e) {
      wipe(newKey);
      throw e;
    }
    wipe(this.#storeKey);
    this.#storeKey = newKey;
    this.#header = header;
    this.#keyObjects.clear();
    this.#signers.clear();
  }

  /**
   * Changes what opens the wallet: adds, replaces or removes its passphrase, its token and its
   * custodians (see protection.ts). The wallet becomes format 2 (a generation, an id), its
   * store key changes and every profile KEK is re-wrapped in one transaction; the token learns
   * the new generation. At least one factor that opens it must remain.
   */
  async protect(change: ProtectionChange): Promise<void> {
    this.#applyProtection(await this.#prepareProtection(change));
  }

  /** The new header, parts and store key a protection change gives (the slow part: Argon2id), without writing. */
  #prepareProtection(change: ProtectionChange): Promise<PreparedProtection> {
    if (this.closed) throw new DkmsError('WALLET_CLOSED', 'the wallet is closed');
    const token = change.token === undefined || change.token === null ? undefined : this.#holdToken(change.token.token);
    return prepareProtection({ header: this.#header, parts: this.#parts, storeKey: this.#storeKey }, change, token);
  }

  /** Writes a prepared protection change, with `alongside` in the same transaction. */
  #applyProtection(prepared: PreparedProtection, alongside?: () => void): void {
    const { header, parts, key } = prepared;
    try {
      this.#rewrap(header, key, alongside);
    } catch (e) {
      for (const name of ['passphrase', 'token', 'custody'] as const) if (this.#parts[name] !== parts[name]) wipe(parts[name]);
      throw e;
    }
    for (const name of ['passphrase', 'token', 'custody'] as const) {
      if (this.#parts[name] !== parts[name]) wipe(this.#parts[name]);
    }
    this.#parts = parts;
    this.#tellToken();
  }

  /** The custody factor of this wallet, if it is under custodians. */
  custody(): CustodyFactor | undefined {
    return this.#header.custody;
  }

  /** Replaces key `name`'s record with `value` (its type Ed25519: only those go to tokens or custodians). */
  #replaceKey(name: string, value: Uint8Array): void {
    const tags = { type: 'ed25519' };
    this.#open.replaceItem(this.profile, this.#items.seal({ category: KEY_CATEGORY, name, value, tags }), this.#items.tagIndex(tags));
  }

  /**
   * Puts the wallet's key `name` (an Ed25519 key held in the wallet) under the custodians whose
   * set is the wallet's custody factor: its private half is sealed again under a key from their
   * secret, and from then on it signs only through {@link signWithCustody}.
   */
  sealKeyUnderCustody(name: string, secret: Uint8Array): KeyInfo {
    const custody = this.#header.custody;
    if (custody === undefined) throw badInput('the wallet has no custodians: set them up first');
    this.#changing(() =>
      this.#useKey(name, (value) => {
        const record = parseRecord(name, value);
        if (record.version !== 1 || record.type !== 'ed25519') throw badInput(`key '${name}' is not an Ed25519 key held in the wallet`);
        const sealed = sealUnderCustody(secret, custody.set, name, record.privateKey);
        this.#replaceKey(name, custodyKeyRecord('ed25519', record.publicKey, record.createdAt, custody.set, sealed));
      }),
    );
    this.#keyObjects.delete(`${this.profile}\0${name}`);
    this.#signers.delete(`${this.profile}\0${name}`);
    return this.getKey(name);
  }

  /** Runs `use` with the private key of custodial key `name`, opened with the custody secret; wiped after. */
  #withCustodyKey<T>(name: string, secret: Uint8Array, use: (privateKey: Uint8Array, record: { publicKey: Uint8Array; createdAt: string }) => T): T {
    return this.#useKey(name, (value) => {
      const record = parseRecord(name, value);
      if (record.version !== 3) throw badInput(`key '${name}' is not under custodians`);
      const privateKey = openUnderCustody(secret, record.set, name, record.sealed);
      try {
        return use(privateKey, record);
      } finally {
        wipe(privateKey);
      }
    });
  }

  /** Signs `message` with custodial key `name`, the custody secret rebuilt from approvals of exactly this use. */
  signWithCustody(name: string, message: Uint8Array, secret: Uint8Array): Uint8Array {
    return this.#withCustodyKey(name, secret, (privateKey) => ed25519SignKey(keyObjectOf('ed25519', privateKey), message));
  }

  /**
   * Moves the wallet to a new custody set (custodians added or removed, another threshold): the
   * custodial keys are sealed again under the new secret, and in unseal mode the store key
   * changes with it, so the old set's shares open nothing. `oldSecret` is the current set's,
   * rebuilt from approvals of this change.
   */
  async rotateCustody(oldSecret: Uint8Array, next: CustodyBinding): Promise<void> {
    const custody = this.#header.custody;
    if (custody === undefined) throw badInput('the wallet has no custodians: set them up first');
    const resealed = this.listKeys()
      .filter((k) => k.location.kind === 'custody')
      .map((k) =>
        this.#withCustodyKey(k.name, oldSecret, (privateKey, record) => {
          const sealed = sealUnderCustody(next.secret, next.factor.set, k.name, privateKey);
          return { name: k.name, value: custodyKeyRecord('ed25519', record.publicKey, record.createdAt, next.factor.set, sealed) };
        }),
      );
    // The keys' new records and the new protection land together: a crash leaves the old set in force.
    this.#applyProtection(await this.#prepareProtection({ custody: next }), () => {
      for (const { name, value } of resealed) this.#replaceKey(name, value);
    });
    this.#signers.clear();
  }

  /** Adds a profile: its own KEK, wrapped by the store key. */
  createProfile(profile: string): void {
    const store = this.#open;
    const stored = store.readKeyring();
    if (stored.profiles.has(checkProfile(profile))) throw new DkmsError('ITEM_EXISTS', `profile '${profile}' already exists`);
    const root = newProfileRoot();
    const profiles = new Map(stored.profiles).set(profile, wrapProfileRoot(this.#storeKey, profile, root, this.#header.keyVersion));
    wipe(root);
    this.#changing(() => store.writeKeyring(buildKeyring(this.#header, profiles)));
  }

  /** Runs `use` with the item codec of `profile`, whose KEK is `kek`; the codec's keys are wiped after. */
  #withCodec<T>(profile: string, kek: Uint8Array, use: (codec: ItemCodec) => T): T {
    const root = unwrapProfileRoot(this.#storeKey, profile, kek);
    const codec = new ItemCodec(profileKeys(root), profile);
    wipe(root);
    try {
      return use(codec);
    } finally {
      codec.wipe();
    }
  }

  /** The whole wallet, every profile, as one encrypted file (see export.ts). */
  async export(secret: WalletSecret, options: CreateOptions = {}): Promise<Uint8Array> {
    const store = this.#open;
    assertStrongSecret(secret);
    const profiles = new Map<string, WalletItem[]>();
    for (const [profile, kek] of store.readKeyring().profiles) {
      this.#withCodec(profile, kek, (codec) =>
        profiles.set(
          profile,
          store.allItems(profile).map((stored) => codec.open(stored)),
        ),
      );
    }
    try {
      return await encodeExport(profiles, secret, options.kdfTier);
    } finally {
      for (const items of profiles.values()) for (const item of items) wipe(item.value);
    }
  }

  /**
   * Adds the items of an export to this wallet, in one transaction: those `accept` lets through,
   * and that this wallet does not hold already (same profile, category and name). Profiles the
   * wallet lacks are created. Returns how many items were added. Used by a restore, which keeps
   * the new device's own keys and takes the rest from a backup.
   */
  async merge(exported: Uint8Array, exportSecret: WalletSecret, accept: (profile: string, item: WalletItem) => boolean): Promise<number> {
    const profiles = await decodeExport(exported, exportSecret);
    try {
      const store = this.#open;
      return this.#changing(() => {
        for (const profile of profiles.keys()) {
          if (!store.readKeyring().profiles.has(checkProfile(profile))) this.createProfile(profile);
        }
        const keks = store.readKeyring().profiles;
        let added = 0;
        for (const [profile, items] of profiles) {
          this.#withCodec(profile, keks.get(profile) as Uint8Array, (codec) => {
            for (const item of items) {
              if (accept(profile, item) && store.insertItem(profile, codec.seal(item), codec.tagIndex(item.tags))) added += 1;
            }
          });
        }
        return added;
      });
    } finally {
      for (const items of profiles.values()) for (const item of items) wipe(item.value);
    }
  }

  /** Creates a new wallet at `path` holding everything in an export. */
  static async import(
    path: string,
    exported: Uint8Array,
    exportSecret: WalletSecret,
    walletSecret: WalletSecret,
    options: CreateOptions = {},
  ): Promise<Wallet> {
    if (existsSync(path)) throw new DkmsError('WALLET_EXISTS', `a wallet already exists at ${path}`);
    assertStrongSecret(walletSecret);
    const profiles = await decodeExport(exported, exportSecret);
    try {
      return await Wallet.#createWith(path, walletSecret, options.kdfTier ?? DEFAULT_KDF_TIER, profiles);
    } finally {
      for (const items of profiles.values()) for (const item of items) wipe(item.value);
    }
  }

  /** The key buffers this handle holds, so tests can check that close() wipes them. */
  [HELD_KEYS](): readonly Uint8Array[] {
    return [this.#storeKey, ...this.#profileKeys];
  }

  get closed(): boolean {
    return this.#store === undefined;
  }

  /** Closes the file and wipes every key held in memory. Safe to call twice. */
  close(): void {
    if (this.#store === undefined) return;
    this.#store.close();
    this.#store = undefined;
    this.#keyObjects.clear();
    this.#signers.clear();
    wipe(this.#storeKey, this.#parts.passphrase, this.#parts.token, this.#parts.custody);
    this.#items.wipe();
    for (const token of this.#tokens.values()) token.close();
    this.#tokens.clear();
  }
}
