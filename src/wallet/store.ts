/**
 * The wallet's storage backend. Domain code sees only `WalletStore`; `SqliteWalletStore` is the
 * one implementation: a single SQLite file in WAL mode with synchronous=FULL, held under an
 * exclusive lock for as long as it is open, so a second process gets WALLET_BUSY.
 */
import { existsSync } from 'node:fs';
import { privateSqliteFile } from '../files.js';
import Database from 'better-sqlite3';
import { concatBytes } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

/** Size of one tag index entry (a truncated HMAC, see items.ts). */
export const TAG_BYTES = 16;

export interface StoredKeyring {
  /** Canonical JSON of the keyring header (KDF parameters, key version, dates). */
  readonly header: string;
  /** Wrapped profile KEKs by profile name. */
  readonly profiles: ReadonlyMap<string, Uint8Array>;
  /** Integrity digest over the header and wrapped KEKs. */
  readonly digest: Uint8Array;
}

export interface StoredItem {
  /** Lookup keys: deterministic, derived from the plaintext category and name. */
  readonly categoryKey: Uint8Array;
  readonly nameKey: Uint8Array;
  /** The category and name, encrypted. */
  readonly category: Uint8Array;
  readonly name: Uint8Array;
  /** The wrapped per-item key and the sealed value. */
  readonly itemKey: Uint8Array;
  readonly value: Uint8Array;
}

export interface WalletStore {
  readKeyring(): StoredKeyring;
  /** Replaces the whole keyring in one atomic write. */
  writeKeyring(keyring: StoredKeyring): void;
  /** Stores an item with its tag index entries; false if the category and name are taken. */
  insertItem(profile: string, item: StoredItem, tags: readonly Uint8Array[]): boolean;
  getItem(profile: string, categoryKey: Uint8Array, nameKey: Uint8Array): StoredItem | undefined;
  /** Items of a category having every given tag index entry, oldest first. */
  findItems(profile: string, categoryKey: Uint8Array, tags: readonly Uint8Array[]): StoredItem[];
  /** Every item of a profile, oldest first. */
  allItems(profile: string): StoredItem[];
  replaceItem(profile: string, item: StoredItem, tags: readonly Uint8Array[]): boolean;
  deleteItem(profile: string, categoryKey: Uint8Array, nameKey: Uint8Array): boolean;
  countItems(): number;
  /** Rows this handle has written since it was opened: tells whether a command changed the wallet. */
  changes(): number;
  /** Runs `fn` in one transaction: all its writes land together or not at all. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

const SCHEMA_VERSION = 1;
/** 'DKMS' as the SQLite application id, so a dkms wallet is recognisable as one. */
const APPLICATION_ID = 0x444b4d53;

const SCHEMA = `
CREATE TABLE keyring (id INTEGER PRIMARY KEY CHECK (id = 1), header TEXT NOT NULL, digest BLOB NOT NULL);
CREATE TABLE profiles (name TEXT PRIMARY KEY, kek BLOB NOT NULL);
CREATE TABLE items (
  id INTEGER PRIMARY KEY,
  profile TEXT NOT NULL,
  category_key BLOB NOT NULL,
  name_key BLOB NOT NULL,
  category BLOB NOT NULL,
  name BLOB NOT NULL,
  item_key BLOB NOT NULL,
  value BLOB NOT NULL,
  -- The item's tag index entries, concatenated, so they can be removed with it.
  tag_index BLOB NOT NULL,
  UNIQUE (profile, category_key, name_key)
);
CREATE TABLE item_tags (tag BLOB NOT NULL, item_id INTEGER NOT NULL, PRIMARY KEY (tag, item_id)) WITHOUT ROWID;
`;

/** Maps a SQLite failure to the wallet's codes; never leaks file contents. */
export function sqliteError(e: unknown, path: string): DkmsError {
  if (e instanceof DkmsError) return e;
  const code = (e as { code?: string }).code ?? '';
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return new DkmsError('WALLET_BUSY', `wallet ${path} is open in another process`);
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return new DkmsError('WALLET_TAMPERED', `wallet ${path} is damaged: the file is not an intact SQLite database`);
  }
  if (code.startsWith('SQLITE_CANTOPEN')) {
    return new DkmsError('WALLET_NOT_FOUND', `wallet ${path} cannot be opened`);
  }
  const message = e instanceof Error ? e.message : String(e);
  return new DkmsError('IO_ERROR', `wallet ${path}: ${message}`, { cause: e });
}

interface ItemRow {
  id: number;
  tag_index: Buffer;
  category_key: Buffer;
  name_key: Buffer;
  category: Buffer;
  name: Buffer;
  item_key: Buffer;
  value: Buffer;
}

const ITEM_COLUMNS = 'id, category_key, name_key, category, name, item_key, value, tag_index';

const toItem = (row: ItemRow): StoredItem => ({
  categoryKey: row.category_key,
  nameKey: row.name_key,
  category: row.category,
  name: row.name,
  itemKey: row.item_key,
  value: row.value,
});

export class SqliteWalletStore implements WalletStore {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #stmts;
  /** findItems queries by number of tags (see #findStatement). */
  readonly #finds = new Map<number, Database.Statement<unknown[], ItemRow>>();

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#path = path;
    this.#stmts = {
      keyring: db.prepare<[], { header: string; digest: Buffer }>('SELECT header, digest FROM keyring WHERE id = 1'),
      profiles: db.prepare<[], { name: string; kek: Buffer }>('SELECT name, kek FROM profiles ORDER BY name'),
      putKeyring: db.prepare('INSERT OR REPLACE INTO keyring (id, header, digest) VALUES (1, ?, ?)'),
      putProfile: db.prepare('INSERT OR REPLACE INTO profiles (name, kek) VALUES (?, ?)'),
      clearProfiles: db.prepare('DELETE FROM profiles'),
      insertItem: db.prepare(
        'INSERT INTO items (profile, category_key, name_key, category, name, item_key, value, tag_index) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      insertTag: db.prepare('INSERT OR IGNORE INTO item_tags (tag, item_id) VALUES (?, ?)'),
      deleteTag: db.prepare('DELETE FROM item_tags WHERE tag = ? AND item_id = ?'),
      getRow: db.prepare<[string, Uint8Array, Uint8Array], { id: number; tag_index: Buffer }>(
        'SELECT id, tag_index FROM items WHERE profile = ? AND category_key = ? AND name_key = ?',
      ),
      getItem: db.prepare<[string, Uint8Array, Uint8Array], Omit<ItemRow, 'id' | 'tag_index' | 'category_key' | 'name_key'>>(
        'SELECT category, name, item_key, value FROM items WHERE profile = ? AND category_key = ? AND name_key = ?',
      ),
      allItems: db.prepare<[string], ItemRow>(`SELECT ${ITEM_COLUMNS} FROM items WHERE profile = ? ORDER BY id`),
      updateItem: db.prepare('UPDATE items SET item_key = ?, value = ?, tag_index = ? WHERE id = ?'),
      deleteItem: db.prepare('DELETE FROM items WHERE id = ?'),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM items'),
      changes: db.prepare<[], { n: number }>('SELECT total_changes() AS n'),
    };
  }

  /** Creates the schema in a new file. The caller creates the file under a temporary name. */
  static create(path: string): SqliteWalletStore {
    const db = SqliteWalletStore.#connect(path, false, 0);
    try {
      db.exec(SCHEMA);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      return new SqliteWalletStore(db, path);
    } catch (e) {
      db.close();
      throw sqliteError(e, path);
    }
  }

  static open(path: string, busyTimeoutMs: number): SqliteWalletStore {
    const db = SqliteWalletStore.#connect(path, true, busyTimeoutMs);
    try {
      const appId = db.pragma('application_id', { simple: true });
      if (appId !== APPLICATION_ID) throw new DkmsError('WALLET_UNSUPPORTED', `${path} is not a dkms wallet`);
      const version = db.pragma('user_version', { simple: true });
      if (version !== SCHEMA_VERSION) {
        throw new DkmsError('WALLET_UNSUPPORTED', `wallet ${path} has format ${String(version)}; this dkms reads format ${SCHEMA_VERSION}`);
      }
      return new SqliteWalletStore(db, path);
    } catch (e) {
      db.close();
      throw sqliteError(e, path);
    }
  }

  static #connect(path: string, mustExist: boolean, busyTimeoutMs: number): Database.Database {
    let db: Database.Database;
    // A wallet that must exist is not created here; one that may not is created private.
    if (!mustExist || existsSync(path)) privateSqliteFile(path);
    try {
      db = new Database(path, { fileMustExist: mustExist, timeout: busyTimeoutMs });
    } catch (e) {
      throw sqliteError(e, path);
    }
    try {
      // Exclusive before WAL: no shared-memory index, and the lock is held until close.
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      return db;
    } catch (e) {
      db.close();
      throw sqliteError(e, path);
    }
  }

  #run<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw sqliteError(e, this.#path);
    }
  }

  readKeyring(): StoredKeyring {
    return this.#run(() => {
      const row = this.#stmts.keyring.get();
      if (row === undefined) throw new DkmsError('WALLET_TAMPERED', `wallet ${this.#path} has no keyring`);
      const profiles = new Map<string, Uint8Array>();
      for (const p of this.#stmts.profiles.all()) profiles.set(p.name, new Uint8Array(p.kek));
      return { header: row.header, profiles, digest: new Uint8Array(row.digest) };
    });
  }

  writeKeyring(keyring: StoredKeyring): void {
    this.transaction(() => {
      this.#stmts.putKeyring.run(keyring.header, keyring.digest);
      this.#stmts.clearProfiles.run();
      for (const [name, kek] of keyring.profiles) this.#stmts.putProfile.run(name, kek);
    });
  }

  insertItem(profile: string, item: StoredItem, tags: readonly Uint8Array[]): boolean {
    return this.transaction(() => {
      const result = this.#stmts.insertItem.run(
        profile,
        item.categoryKey,
        item.nameKey,
        item.category,
        item.name,
        item.itemKey,
        item.value,
        concatBytes(...tags),
      );
      if (result.changes === 0) return false;
      for (const tag of tags) this.#stmts.insertTag.run(tag, result.lastInsertRowid);
      return true;
    });
  }

  getItem(profile: string, categoryKey: Uint8Array, nameKey: Uint8Array): StoredItem | undefined {
    return this.#run(() => {
      const row = this.#stmts.getItem.get(profile, categoryKey, nameKey);
      return row === undefined ? undefined : { categoryKey, nameKey, category: row.category, name: row.name, itemKey: row.item_key, value: row.value };
    });
  }

  findItems(profile: string, categoryKey: Uint8Array, tags: readonly Uint8Array[]): StoredItem[] {
    return this.#run(() =>
      this.#findStatement(tags.length)
        .all(profile, categoryKey, ...tags)
        .map(toItem),
    );
  }

  /** The query for items with `tagCount` tags, prepared once per count (preparing costs more than most lookups). */
  #findStatement(tagCount: number): Database.Statement<unknown[], ItemRow> {
    let statement = this.#finds.get(tagCount);
    if (statement === undefined) {
      const clauses = Array.from({ length: tagCount }, () => 'EXISTS (SELECT 1 FROM item_tags t WHERE t.tag = ? AND t.item_id = items.id)');
      const sql = [`SELECT ${ITEM_COLUMNS} FROM items WHERE profile = ? AND category_key = ?`, ...clauses].join(' AND ');
      statement = this.#db.prepare<unknown[], ItemRow>(`${sql} ORDER BY id`);
      this.#finds.set(tagCount, statement);
    }
    return statement;
  }

  allItems(profile: string): StoredItem[] {
    return this.#run(() => this.#stmts.allItems.all(profile).map(toItem));
  }

  #deleteTags(row: { id: number; tag_index: Buffer }): void {
    for (let i = 0; i + TAG_BYTES <= row.tag_index.length; i += TAG_BYTES) {
      this.#stmts.deleteTag.run(row.tag_index.subarray(i, i + TAG_BYTES), row.id);
    }
  }

  replaceItem(profile: string, item: StoredItem, tags: readonly Uint8Array[]): boolean {
    return this.transaction(() => {
      const row = this.#stmts.getRow.get(profile, item.categoryKey, item.nameKey);
      if (row === undefined) return false;
      this.#deleteTags(row);
      this.#stmts.updateItem.run(item.itemKey, item.value, concatBytes(...tags), row.id);
      for (const tag of tags) this.#stmts.insertTag.run(tag, row.id);
      return true;
    });
  }

  deleteItem(profile: string, categoryKey: Uint8Array, nameKey: Uint8Array): boolean {
    return this.transaction(() => {
      const row = this.#stmts.getRow.get(profile, categoryKey, nameKey);
      if (row === undefined) return false;
      this.#deleteTags(row);
      this.#stmts.deleteItem.run(row.id);
      return true;
    });
  }

  countItems(): number {
    return this.#run(() => this.#stmts.count.get()?.n ?? 0);
  }

  changes(): number {
    return this.#run(() => this.#stmts.changes.get()?.n ?? 0);
  }

  transaction<T>(fn: () => T): T {
    return this.#run(() => this.#db.transaction(fn)());
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
