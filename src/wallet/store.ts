/**
 * The wallet's storage backend. Domain code sees only `WalletStore`; `SqliteWalletStore` is the
 * one implementation: a single SQLite file in WAL mode with synchronous=FULL, held under an
 * exclusive lock for as long as it is open, so a second process gets WALLET_BUSY.
 */
import { chmodSync } from 'node:fs';
import Database from 'better-sqlite3';
import { DkmsError } from '../errors.js';

export interface StoredKeyring {
  /** Canonical JSON of the keyring header (KDF parameters, key version, dates). */
  readonly header: string;
  /** Wrapped profile KEKs by profile name. */
  readonly profiles: ReadonlyMap<string, Uint8Array>;
  /** Integrity digest over the header and wrapped KEKs. */
  readonly digest: Uint8Array;
}

export interface StoredItem {
  readonly category: Uint8Array;
  readonly name: Uint8Array;
  readonly itemKey: Uint8Array;
  readonly value: Uint8Array;
}

export interface StoredTag {
  readonly name: Uint8Array;
  readonly value: Uint8Array;
}

export interface WalletStore {
  readKeyring(): StoredKeyring;
  /** Replaces the whole keyring in one atomic write. */
  writeKeyring(keyring: StoredKeyring): void;
  insertItem(profile: string, item: StoredItem, tags: readonly StoredTag[]): boolean;
  getItem(profile: string, category: Uint8Array, name: Uint8Array): StoredItem | undefined;
  findItems(profile: string, category: Uint8Array, tags: readonly StoredTag[]): StoredItem[];
  /** Every item of a profile, oldest first. */
  allItems(profile: string): StoredItem[];
  replaceItem(profile: string, item: StoredItem, tags: readonly StoredTag[]): boolean;
  deleteItem(profile: string, category: Uint8Array, name: Uint8Array): boolean;
  countItems(): number;
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
  category BLOB NOT NULL,
  name BLOB NOT NULL,
  item_key BLOB NOT NULL,
  value BLOB NOT NULL,
  UNIQUE (profile, category, name)
);
CREATE TABLE item_tags (
  item_id INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
  name BLOB NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (item_id, name)
);
CREATE INDEX item_tags_by_value ON item_tags (name, value);
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
  category: Buffer;
  name: Buffer;
  item_key: Buffer;
  value: Buffer;
}

const toItem = (row: ItemRow): StoredItem => ({
  category: new Uint8Array(row.category),
  name: new Uint8Array(row.name),
  itemKey: new Uint8Array(row.item_key),
  value: new Uint8Array(row.value),
});

export class SqliteWalletStore implements WalletStore {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #stmts;

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
        'INSERT INTO items (profile, category, name, item_key, value) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      insertTag: db.prepare('INSERT INTO item_tags (item_id, name, value) VALUES (?, ?, ?)'),
      deleteTags: db.prepare('DELETE FROM item_tags WHERE item_id = ?'),
      getItem: db.prepare<[string, Uint8Array, Uint8Array], ItemRow>(
        'SELECT id, category, name, item_key, value FROM items WHERE profile = ? AND category = ? AND name = ?',
      ),
      allItems: db.prepare<[string], ItemRow>(
        'SELECT id, category, name, item_key, value FROM items WHERE profile = ? ORDER BY id',
      ),
      updateItem: db.prepare('UPDATE items SET item_key = ?, value = ? WHERE id = ?'),
      deleteItem: db.prepare('DELETE FROM items WHERE profile = ? AND category = ? AND name = ?'),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM items'),
    };
  }

  /** Creates the schema in a new file. The caller creates the file under a temporary name. */
  static create(path: string): SqliteWalletStore {
    const db = SqliteWalletStore.#connect(path, false, 0);
    try {
      db.exec(SCHEMA);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      chmodSync(path, 0o600);
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
      db.pragma('foreign_keys = ON');
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

  insertItem(profile: string, item: StoredItem, tags: readonly StoredTag[]): boolean {
    return this.transaction(() => {
      const result = this.#stmts.insertItem.run(profile, item.category, item.name, item.itemKey, item.value);
      if (result.changes === 0) return false;
      for (const tag of tags) this.#stmts.insertTag.run(result.lastInsertRowid, tag.name, tag.value);
      return true;
    });
  }

  getItem(profile: string, category: Uint8Array, name: Uint8Array): StoredItem | undefined {
    return this.#run(() => {
      const row = this.#stmts.getItem.get(profile, category, name);
      return row === undefined ? undefined : toItem(row);
    });
  }

  findItems(profile: string, category: Uint8Array, tags: readonly StoredTag[]): StoredItem[] {
    const clauses = tags.map(() => 'EXISTS (SELECT 1 FROM item_tags t WHERE t.item_id = items.id AND t.name = ? AND t.value = ?)');
    const sql = ['SELECT id, category, name, item_key, value FROM items WHERE profile = ? AND category = ?', ...clauses].join(' AND ');
    const params = [profile, category, ...tags.flatMap((t) => [t.name, t.value])];
    return this.#run(() => (this.#db.prepare<unknown[], ItemRow>(`${sql} ORDER BY id`).all(...params)).map(toItem));
  }

  allItems(profile: string): StoredItem[] {
    return this.#run(() => this.#stmts.allItems.all(profile).map(toItem));
  }

  replaceItem(profile: string, item: StoredItem, tags: readonly StoredTag[]): boolean {
    return this.transaction(() => {
      const row = this.#stmts.getItem.get(profile, item.category, item.name);
      if (row === undefined) return false;
      this.#stmts.updateItem.run(item.itemKey, item.value, row.id);
      this.#stmts.deleteTags.run(row.id);
      for (const tag of tags) this.#stmts.insertTag.run(row.id, tag.name, tag.value);
      return true;
    });
  }

  deleteItem(profile: string, category: Uint8Array, name: Uint8Array): boolean {
    return this.#run(() => this.#stmts.deleteItem.run(profile, category, name).changes > 0);
  }

  countItems(): number {
    return this.#run(() => this.#stmts.count.get()?.n ?? 0);
  }

  transaction<T>(fn: () => T): T {
    return this.#run(() => this.#db.transaction(fn)());
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
