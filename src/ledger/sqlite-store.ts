/**
 * The embedded log store: one SQLite file in WAL mode with synchronous=FULL. A batch is one
 * transaction, so an event is acknowledged only once it is durable (group commit). The file is
 * held under an exclusive lock while open: one ledger process per data directory.
 */
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { bufferOf, canonicalJson, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { openStore, storeRunner } from '../sqlite.js';
import type { LedgerEvent, Subject } from './events.js';
import { decodeMapNodeHex, encodeMapNode, mapKey, updateMap, type MapWrite, type StoredMapNode } from './map.js';
import type { MerkleNode } from './merkle.js';
import type { AppendBatch, DerivedStore, LogStore, StoredHead } from './store.js';
import type { LogRecord, SubjectRecord } from './state.js';

const SCHEMA_VERSION = 3;
/** 'DKML': a dkms ledger file. */
const APPLICATION_ID = 0x444b4d4c;

/**
 * Derived data, rebuilt from the log if lost: Merkle nodes above the leaves, the subject map's
 * nodes, and how many events they cover. Keys are laid out so that what one append writes lies
 * together, and a commit touches few pages:
 * - a Merkle node's id is its last leaf·64 + its level: every node an append completes ends at
 *   that append's leaf;
 * - the map's top (nodes at depth MAP_TOP_TABLE_DEPTH or less, at most 2^17 of them) is in
 *   `map_top` under its path, depth first: every write of the map rows rewrites a good share
 *   of each level, and a level's nodes lie together;
 * - a deeper map node is in `map` under its path's bits before its depth (mapRowKey): a
 *   subject's deep nodes sit beside their ancestors.
 */
const DERIVED_SCHEMA = `
CREATE TABLE tree (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE map (path BLOB PRIMARY KEY, node BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE map_top (path BLOB PRIMARY KEY, node BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE derived (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
`;

/** Map nodes at this depth or above are rows of map_top. */
const MAP_TOP_TABLE_DEPTH = 16;
/** The length of a path at MAP_TOP_TABLE_DEPTH: two depth bytes and the prefix bytes. */
const TOP_PATH_BYTES = 2 + MAP_TOP_TABLE_DEPTH / 8;

/**
 * Format 2 kept the top of the map in `map` too, under mapRowKey (prefix bytes, then depth:
 * at most 4 bytes up there, 5 or more below): moved to map_top under the path itself.
 */
const MOVE_MAP_TOP = `
CREATE TABLE IF NOT EXISTS map_top (path BLOB PRIMARY KEY, node BLOB NOT NULL) WITHOUT ROWID;
INSERT INTO map_top (path, node)
  SELECT unhex(substr(hex(path), -4) || substr(hex(path), 1, 2 * length(path) - 4)), node FROM map WHERE length(path) <= ${TOP_PATH_BYTES};
DELETE FROM map WHERE length(path) <= ${TOP_PATH_BYTES};
`;

/**
 * Map rows are written in bulk, not with every batch: the top of the map changes with every
 * event, so writing it once per this many events instead of once per batch saves most of the
 * map's page writes. Until then the rows live in memory (#pendingMap), and the `derived` row
 * 'map' says how many events the stored rows cover; a node that crashed in between recomputes
 * the rest from the log when it opens (at most this many events, well under a second).
 */
export const MAP_FLUSH_EVENTS = 2048;
/** ...or once this many rows wait, whichever comes first. */
const MAP_FLUSH_ROWS = 40_000;

/** Whether a map path, or its row key (of the same length), belongs in map_top: at most TOP_PATH_BYTES there, longer below. */
const inMapTop = (key: Uint8Array): boolean => key.length <= TOP_PATH_BYTES;

/** Tree row id: the node's last leaf, then its level. */
const treeId = (level: number, index: number): number => ((index + 1) * 2 ** level - 1) * 64 + level;

/**
 * A map node's row key: at the top, its path; below, the path's prefix bytes, then its two
 * depth bytes (mapPath puts the depth first). Written into `key` when given (of the path's length).
 */
function mapRowKey(path: Uint8Array, key = new Uint8Array(path.length)): Uint8Array {
  if (inMapTop(path)) {
    key.set(path, 0);
    return key;
  }
  key.set(path.subarray(2), 0);
  key[path.length - 2] = path[0] ?? 0;
  key[path.length - 1] = path[1] ?? 0;
  return key;
}

interface DerivedDone {
  readonly size: number;
  readonly rows: readonly { key: Uint8Array; node: StoredMapNode }[];
  readonly flushed: boolean;
}

const latin1 = (bytes: Uint8Array): string => bufferOf(bytes).toString('latin1');

const SCHEMA = `
CREATE TABLE log (
  gseq INTEGER PRIMARY KEY,
  time TEXT NOT NULL,
  id TEXT NOT NULL UNIQUE,
  subject TEXT NOT NULL,
  seq INTEGER NOT NULL,
  event TEXT NOT NULL,
  leaf BLOB NOT NULL,
  -- A second event for the same subject and seq is a fork: the store refuses it too.
  UNIQUE (subject, seq)
);
CREATE TABLE subjects (subject TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE heads (size INTEGER PRIMARY KEY, head TEXT NOT NULL);
${DERIVED_SCHEMA}`;

const FILE = {
  applicationId: APPLICATION_ID,
  version: SCHEMA_VERSION,
  schema: SCHEMA,
  what: 'ledger store',
  busy: 'LEDGER_BUSY',
  damaged: 'LEDGER_STORE_DAMAGED',
  busyHint: 'stop the running node first',
  // Format 1 had no derived data: the node computes it from the log when it first opens the file.
  migrations: { 1: DERIVED_SCHEMA, 2: MOVE_MAP_TOP },
} as const;

interface LogRow {
  gseq: number;
  time: string;
  event: string;
}

const toRecord = (row: LogRow): LogRecord => ({ gseq: row.gseq, time: row.time, event: JSON.parse(row.event) as LedgerEvent });

const parseHead = (text: string): StoredHead => {
  const head = JSON.parse(text) as { size: number; root: string; map?: string };
  return { size: head.size, root: head.root, ...(typeof head.map === 'string' ? { map: head.map } : {}) };
};

export class SqliteLogStore implements LogStore {
  readonly #db: Database.Database;
  readonly #stmts;
  readonly derived: DerivedStore;

  readonly #path: string;
  #walFd: number | undefined;
  /**
   * How many events the stored derived data covers. Kept in memory: the file is locked by this
   * process and only this object writes it, so reads need not ask SQLite.
   */
  #derivedSize: number;
  /** Map rows not yet stored, by row key (latin1): what the stored rows lack. */
  readonly #pendingMap = new Map<string, { key: Uint8Array; node: StoredMapNode }>();
  readonly #readTransaction: <T>(read: () => T) => T;
  /** Where #readKey writes row keys, a view per length: a path is at most two depth bytes and a 32-byte key. */
  readonly #keyViews = ((memory) => Array.from({ length: memory.length + 1 }, (_, n) => memory.subarray(0, n)))(Buffer.allocUnsafeSlow(2 + 32));
  /** How many events the stored map rows cover (the rest is in #pendingMap). */
  #mapSize: number;

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#path = path;
    // Commits do not wait for the disk here: appends sync the write-ahead log themselves, off
    // the event loop, and acknowledge nothing before that (see appendWritten). SQLite still
    // syncs the log before each checkpoint and the database after it (WAL with NORMAL).
    db.pragma('synchronous = NORMAL');
    this.#run = storeRunner(path, FILE);
    this.#readTransaction = db.transaction((read) => read()) as <T>(read: () => T) => T;
    this.#stmts = {
      size: db.prepare<[], { n: number }>('SELECT coalesce(max(gseq) + 1, 0) AS n FROM log'),
      leaves: db.prepare<[number, number], { leaf: Buffer }>('SELECT leaf FROM log WHERE gseq >= ? AND gseq < ? ORDER BY gseq'),
      range: db.prepare<[number, number], LogRow>('SELECT gseq, time, event FROM log WHERE gseq >= ? AND gseq < ? ORDER BY gseq'),
      subjectLog: db.prepare<[string, number, number], LogRow>('SELECT gseq, time, event FROM log WHERE subject = ? AND gseq < ? AND seq > ? ORDER BY seq'),
      eventAt: db.prepare<[string, number], { event: string }>('SELECT event FROM log WHERE subject = ? AND seq = ?'),
      subject: db.prepare<[string], { record: string }>('SELECT record FROM subjects WHERE subject = ?'),
      subjects: db.prepare<[], { record: string }>('SELECT record FROM subjects ORDER BY subject'),
      head: db.prepare<[], { head: string }>('SELECT head FROM heads ORDER BY size DESC LIMIT 1'),
      heads: db.prepare<[], { head: string }>('SELECT head FROM heads ORDER BY size'),
      // Hashes read one at a time (proofs) come back as hex text, not Buffers (see #mapNode).
      leaf: db.prepare<[number], string>('SELECT hex(leaf) FROM log WHERE gseq = ?').pluck(),
      treeNode: db.prepare<[number], string>('SELECT hex(hash) FROM tree WHERE id = ?').pluck(),
      putTreeNode: db.prepare('INSERT OR REPLACE INTO tree (id, hash) VALUES (?, ?)'),
      // As hex text: a BLOB would come back as a Buffer with memory of its own (see #mapNode).
      mapNode: db.prepare<[Uint8Array], string>('SELECT hex(node) FROM map WHERE path = ?').pluck(),
      putMapNode: db.prepare('INSERT OR REPLACE INTO map (path, node) VALUES (?, ?)'),
      mapTopNode: db.prepare<[Uint8Array], string>('SELECT hex(node) FROM map_top WHERE path = ?').pluck(),
      putMapTopNode: db.prepare('INSERT OR REPLACE INTO map_top (path, node) VALUES (?, ?)'),
      derivedSize: db.prepare<[], { value: number }>("SELECT value FROM derived WHERE name = 'size'"),
      putDerivedSize: db.prepare("INSERT OR REPLACE INTO derived (name, value) VALUES ('size', ?)"),
      mapSize: db.prepare<[], { value: number }>("SELECT value FROM derived WHERE name = 'map'"),
      putMapSize: db.prepare("INSERT OR REPLACE INTO derived (name, value) VALUES ('map', ?)"),
      derivedRecords: db.prepare<[number, number], { gseq: number; subject: string; seq: number; leaf: Buffer }>(
        'SELECT gseq, subject, seq, leaf FROM log WHERE gseq >= ? AND gseq < ? ORDER BY gseq',
      ),
      insertEvent: db.prepare('INSERT INTO log (gseq, time, id, subject, seq, event, leaf) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      putSubject: db.prepare('INSERT OR REPLACE INTO subjects (subject, record) VALUES (?, ?)'),
      clearSubjects: db.prepare('DELETE FROM subjects'),
      putHead: db.prepare('INSERT OR REPLACE INTO heads (size, head) VALUES (?, ?)'),
    };
    const stmts = this.#stmts;
    this.#derivedSize = stmts.derivedSize.get()?.value ?? 0;
    // Files written before map rows were deferred have them current with the rest; from now on
    // the row says how far they go.
    const mapSize = stmts.mapSize.get()?.value;
    if (mapSize === undefined) stmts.putMapSize.run(this.#derivedSize);
    this.#mapSize = mapSize ?? this.#derivedSize;
    this.derived = {
      derivedSize: () => this.#derivedSize,
      treeNode: (level, index) => {
        const hash = level === 0 ? stmts.leaf.get(index) : stmts.treeNode.get(treeId(level, index));
        return hash === undefined ? undefined : Buffer.from(hash, 'hex');
      },
      mapNode: (path) => this.#mapNode(this.#readKey(path)),
      // Each statement outside a transaction starts a read of its own: about half its cost.
      reading: (read) => (db.inTransaction ? read() : this.#readTransaction(read)),
      writeDerived: (tree, map, size) => {
        const done = db.transaction(() => this.#putDerived(tree, map, size))();
        this.#derived(done);
        this.#syncNow();
      },
    };
    this.#recomputeMap();
  }

  /**
   * Reads one map row. Proofs read many rows per request, so this allocates no memory outside
   * V8's heap: the key is bound from one reused buffer, the node comes back as text. (A Buffer
   * per row, bound or returned, is a malloc each; V8 frees them in bulk after a collection,
   * and glibc then stalls the thread for milliseconds consolidating them.)
   */
  #mapNode(key: Uint8Array): StoredMapNode | undefined {
    if (this.#pendingMap.size > 0) {
      const pending = this.#pendingMap.get(latin1(key));
      if (pending !== undefined) return pending.node;
    }
    const node = (inMapTop(key) ? this.#stmts.mapTopNode : this.#stmts.mapNode).get(key);
    return node === undefined ? undefined : decodeMapNodeHex(node);
  }

  /** The row key of `path` (as mapRowKey), in the reused buffer: valid until the next call. */
  #readKey(path: Uint8Array): Uint8Array {
    const key = this.#keyViews[path.length];
    if (key === undefined) throw new RangeError(`a map path of ${path.length} bytes`);
    return mapRowKey(path, key);
  }

  /**
   * After a crash, the stored map rows may be behind the log by the events since they were last
   * written: recomputes those rows from the log (the map is a function of it), into memory.
   */
  #recomputeMap(): void {
    if (this.#mapSize > this.#derivedSize)
      throw new DkmsError(
        'LEDGER_STORE_DAMAGED',
        `ledger store ${this.#path}: the stored map covers ${this.#mapSize} events, more than the ${this.#derivedSize} of the rest`,
      );
    if (this.#mapSize === this.#derivedSize) return;
    const records = this.#stmts.derivedRecords.all(this.#mapSize, this.#derivedSize);
    const source = { get: (path: Uint8Array) => this.#mapNode(this.#readKey(path)) };
    const { writes } = updateMap(
      source,
      records.map((r) => ({ key: mapKey(r.subject), entry: { seq: r.seq, gseq: r.gseq, leaf: toBase64url(r.leaf) } })),
    );
    for (const write of writes) {
      const key = mapRowKey(write.path);
      this.#pendingMap.set(latin1(key), { key, node: write.node });
    }
  }

  /** The write-ahead log's descriptor, opened once it exists, for syncing it. */
  #wal(): number | undefined {
    if (this.#walFd === undefined) {
      try {
        this.#walFd = openSync(`${this.#path}-wal`, 'r');
      } catch {
        return undefined;
      }
    }
    return this.#walFd;
  }

  /** Syncs the write-ahead log on the thread pool: everything committed so far is then durable. */
  #sync(): Promise<void> {
    const fd = this.#wal();
    if (fd === undefined) return Promise.resolve(this.#checkpointSync());
    return new Promise((resolve, reject) => {
      fsync(fd, (error) =>
        error === null ? resolve() : reject(new DkmsError('IO_ERROR', `ledger store ${this.#path}: cannot sync the write-ahead log: ${error.message}`)),
      );
    });
  }

  #syncNow(): void {
    const fd = this.#wal();
    if (fd === undefined) this.#checkpointSync();
    else fsyncSync(fd);
  }

  /** Without a write-ahead log file to sync, a full checkpoint makes everything durable. */
  #checkpointSync(): void {
    this.#db.pragma('wal_checkpoint(FULL)');
  }

  /**
   * Writes a batch's derived data inside the caller's transaction: tree rows at once, map rows
   * in bulk (MAP_FLUSH_EVENTS). Returns what to take in once the transaction has committed.
   */
  #putDerived(tree: readonly MerkleNode[], map: readonly MapWrite[], size: number): DerivedDone {
    for (const node of tree) if (node.level > 0) this.#stmts.putTreeNode.run(treeId(node.level, node.index), node.hash);
    this.#stmts.putDerivedSize.run(size);
    const rows = map.map((write) => ({ key: mapRowKey(write.path), node: write.node }));
    const flush = size - this.#mapSize >= MAP_FLUSH_EVENTS || this.#pendingMap.size + rows.length >= MAP_FLUSH_ROWS;
    if (flush) this.#storeMapRows(rows, size);
    return { size, rows, flushed: flush };
  }

  /** Stores the rows waiting in memory and `more` (inside the caller's transaction): they then cover `size` events. */
  #storeMapRows(more: readonly { key: Uint8Array; node: StoredMapNode }[], size: number): void {
    for (const row of [...this.#pendingMap.values(), ...more]) {
      (inMapTop(row.key) ? this.#stmts.putMapTopNode : this.#stmts.putMapNode).run(row.key, encodeMapNode(row.node));
    }
    this.#stmts.putMapSize.run(size);
  }

  /** Takes in a committed #putDerived. */
  #derived(done: DerivedDone): void {
    this.#derivedSize = done.size;
    if (done.flushed) {
      this.#pendingMap.clear();
      this.#mapSize = done.size;
    } else {
      for (const row of done.rows) this.#pendingMap.set(latin1(row.key), row);
    }
  }

  /** Stores every map row still in memory (on close: the next open need not recompute them). */
  #flushMap(): void {
    if (this.#mapSize === this.#derivedSize) return;
    this.#db.transaction(() => this.#storeMapRows([], this.#derivedSize))();
    this.#pendingMap.clear();
    this.#mapSize = this.#derivedSize;
  }

  static open(path: string): SqliteLogStore {
    return openStore(path, FILE, (db) => new SqliteLogStore(db, path));
  }

  readonly #run: <T>(fn: () => T) => Promise<T>;

  size(): Promise<number> {
    return this.#run(() => this.#stmts.size.get()?.n ?? 0);
  }

  leaves(from: number, to: number): Promise<Uint8Array[]> {
    return this.#run(() => this.#stmts.leaves.all(from, to).map((r) => r.leaf));
  }

  range(from: number, to: number): Promise<LogRecord[]> {
    return this.#run(() => this.#stmts.range.all(from, to).map(toRecord));
  }

  subjectLog(subject: Subject, untilGseq = Number.MAX_SAFE_INTEGER, afterSeq = -1): Promise<LogRecord[]> {
    return this.#run(() => this.#stmts.subjectLog.all(subject, untilGseq, afterSeq).map(toRecord));
  }

  subject(subject: Subject): Promise<SubjectRecord | undefined> {
    return this.#run(() => {
      const row = this.#stmts.subject.get(subject);
      return row === undefined ? undefined : (JSON.parse(row.record) as SubjectRecord);
    });
  }

  eventAt(subject: Subject, seq: number): Promise<LedgerEvent | undefined> {
    return this.#run(() => {
      const row = this.#stmts.eventAt.get(subject, seq);
      return row === undefined ? undefined : (JSON.parse(row.event) as LedgerEvent);
    });
  }

  subjects(): Promise<SubjectRecord[]> {
    return this.#run(() => this.#stmts.subjects.all().map((r) => JSON.parse(r.record) as SubjectRecord));
  }

  latestHead(): Promise<StoredHead | undefined> {
    return this.#run(() => {
      const row = this.#stmts.head.get();
      return row === undefined ? undefined : parseHead(row.head);
    });
  }

  heads(): Promise<StoredHead[]> {
    return this.#run(() => this.#stmts.heads.all().map((row) => parseHead(row.head)));
  }

  async append(batch: AppendBatch): Promise<void> {
    await (
      await this.appendWritten(batch)
    ).durable;
  }

  async appendWritten(batch: AppendBatch): Promise<{ readonly durable: Promise<void> }> {
    await this.#write(batch);
    const durable = this.#sync();
    // Awaited by the node; a failure must not surface as an unhandled rejection meanwhile.
    durable.catch(() => undefined);
    return { durable };
  }

  #write(batch: AppendBatch): Promise<void> {
    return this.#run(() => {
      const done = this.#db.transaction((): DerivedDone | undefined => {
        const size = this.#stmts.size.get()?.n ?? 0;
        if (batch.events[0]?.record.gseq !== size) throw new DkmsError('LEDGER_CONFLICT', `the log grew to ${size} events before this batch was written`);
        for (const { record, id, subject, canonical, leaf } of batch.events) {
          this.#stmts.insertEvent.run(record.gseq, record.time, id, subject, record.event.seq, canonical, leaf);
        }
        for (const s of batch.subjects) this.#stmts.putSubject.run(s.subject, canonicalJson(s));
        this.#stmts.putHead.run(batch.head.size, canonicalJson(batch.head));
        // Derived data is written with the batch when it was current before it; otherwise the
        // node is still catching up and writes it separately, in order.
        if (this.#derivedSize !== size) return undefined;
        return this.#putDerived(batch.tree, batch.map, size + batch.events.length);
      })();
      // Only once the transaction committed: a refused batch leaves the derived data as it was.
      if (done !== undefined) this.#derived(done);
    });
  }

  replaceSubjects(records: readonly SubjectRecord[]): Promise<void> {
    return this.#run(() => {
      this.#db.transaction(() => {
        this.#stmts.clearSubjects.run();
        for (const s of records) this.#stmts.putSubject.run(s.subject, canonicalJson(s));
      })();
      this.#syncNow();
    });
  }

  async close(): Promise<void> {
    try {
      if (this.#db.open) this.#flushMap();
    } catch {
      // Nothing is lost: the next open recomputes the rows from the log.
    }
    if (this.#walFd !== undefined) {
      closeSync(this.#walFd);
      this.#walFd = undefined;
    }
    if (this.#db.open) this.#db.close();
  }
}
