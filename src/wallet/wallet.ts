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
  publicKeyForms,
  randomBytes,
  toHex,
  wipe,
  x25519AgreeKey,
  type KdfTier,
  type KeyAgreementKey,
  type KeyType,
  type Signer,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { decodeExport, encodeExport } from './export.js';
import { ItemCodec, RESERVED_PREFIX, checkCategory, checkName, checkTags, checkValue, type Tags, type WalletItem } from './items.js';
import { KEY_CATEGORY, checkKeyName, checkKeyType, keyInfo, newKeyRecord, privateKeyObjectOf, type KeyInfo } from './keys.js';
import { STORE_KEY_LABEL, buildKeyring, newProfileRoot, parseKeyring, profileKeys, unwrapProfileRoot, wrapProfileRoot, type KeyringHeader } from './keyring.js';
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

export interface WalletInfo {
  readonly path: string;
  readonly format: number;
  readonly kdf: { readonly alg: string; readonly tier?: string; readonly memoryKiB?: number; readonly passes?: number; readonly lanes?: number };
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
  if (kdf.alg === 'raw') return { alg: 'raw' };
  return { alg: kdf.alg, tier: kdf.tier, memoryKiB: kdf.memoryKiB, passes: kdf.passes, lanes: kdf.lanes };
}

function infoOf(path: string, header: KeyringHeader, profiles: Iterable<string>, items: number): WalletInfo {
  return {
    path,
    format: header.format,
    kdf: describeKdf(header),
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
  readonly #items: ItemCodec;
  readonly #keyObjects = new Map<string, KeyObject>();
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
    const header: KeyringHeader = { format: 1, kdf: newKdfParams(secret, tier), keyVersion: 0, createdAt: new Date().toISOString() };
    const storeKey = await deriveKey(secret, header.kdf, STORE_KEY_LABEL);
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

  /** Opens an existing wallet. A wrong secret is WALLET_BAD_PASSPHRASE and changes nothing. */
  static async open(path: string, secret: WalletSecret, options: OpenOptions = {}): Promise<Wallet> {
    const store = Wallet.#openStore(path, options.busyTimeoutMs);
    let keyring: { stored: StoredKeyring; header: KeyringHeader };
    let storeKey: Uint8Array;
    try {
      keyring = Wallet.#readKeyring(store, path);
      storeKey = await deriveKey(secret, keyring.header.kdf, STORE_KEY_LABEL);
    } catch (e) {
      store.close();
      throw e;
    }
    return Wallet.#attach(store, path, options.profile ?? DEFAULT_PROFILE, storeKey, keyring);
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
      this.#put({ category: KEY_CATEGORY, name, value, tags: { type } });
    } catch (e) {
      if (e instanceof DkmsError && e.code === 'ITEM_EXISTS') throw new DkmsError('KEY_EXISTS', `a key named '${name}' already exists`);
      throw e;
    } finally {
      wipe(value);
    }
    return { name, ...info };
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

  deleteKey(name: string): void {
    this.#delete(KEY_CATEGORY, checkKeyName(name), 'KEY_NOT_FOUND');
    this.#keyObjects.delete(`${this.profile}\0${name}`);
  }

  /**
   * The named private key imported into OpenSSL, once per open wallet: a key used again is
   * neither decrypted nor imported again. OpenSSL clears the key's memory when the object is
   * freed, after close() drops it.
   */
  #keyObject(name: string, type: KeyType): KeyObject {
    const id = `${this.profile}\0${name}`;
    let key = this.#keyObjects.get(id);
    if (key === undefined) {
      key = this.#useKey(name, (value) => privateKeyObjectOf(name, value, type));
      this.#keyObjects.set(id, key);
    }
    return key;
  }

  /** Ed25519 signature by the named key. */
  sign(name: string, message: Uint8Array): Uint8Array {
    return ed25519SignKey(this.#keyObject(name, 'ed25519'), message);
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
   * Replaces the secret that opens the wallet. Only the profile KEKs are re-wrapped, in one
   * transaction: the time does not depend on the number of items, and after a crash at any
   * point exactly one of the old or new secret opens the wallet.
   */
  async rekey(secret: WalletSecret, options: CreateOptions = {}): Promise<void> {
    const store = this.#open;
    assertStrongSecret(secret);
    const header: KeyringHeader = {
      ...this.#header,
      kdf: newKdfParams(secret, options.kdfTier ?? DEFAULT_KDF_TIER),
      keyVersion: this.#header.keyVersion + 1,
      rekeyedAt: new Date().toISOString(),
    };
    const newKey = await deriveKey(secret, header.kdf, STORE_KEY_LABEL);
    try {
      const wrapped = new Map<string, Uint8Array>();
      for (const [profile, kek] of store.readKeyring().profiles) {
        const root = unwrapProfileRoot(this.#storeKey, profile, kek);
        wrapped.set(profile, wrapProfileRoot(newKey, profile, root, header.keyVersion));
        wipe(root);
      }
      store.writeKeyring(buildKeyring(header, wrapped));
    } catch (e) {
      wipe(newKey);
      throw e;
    }
    wipe(this.#storeKey);
    this.#storeKey = newKey;
    this.#header = header;
  }

  /** Adds a profile: its own KEK, wrapped by the store key. */
  createProfile(profile: string): void {
    const store = this.#open;
    const stored = store.readKeyring();
    if (stored.profiles.has(checkProfile(profile))) throw new DkmsError('ITEM_EXISTS', `profile '${profile}' already exists`);
    const root = newProfileRoot();
    const profiles = new Map(stored.profiles).set(profile, wrapProfileRoot(this.#storeKey, profile, root, this.#header.keyVersion));
    wipe(root);
    store.writeKeyring(buildKeyring(this.#header, profiles));
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
      return store.transaction(() => {
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
    wipe(this.#storeKey);
    this.#items.wipe();
  }
}
