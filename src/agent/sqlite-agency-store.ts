/** The embedded agency store: one SQLite file (WAL, synchronous=FULL), one process at a time. */
import type Database from 'better-sqlite3';
import { DkmsError } from '../errors.js';
import { openSqliteFile, sqliteError } from '../sqlite.js';
import type { AgencyStore, CloudAgentRecord, Delivery, MailboxLimits, Route, StoredMessage } from './agency-store.js';

const SCHEMA = `
CREATE TABLE cloud_agents (id TEXT PRIMARY KEY, policy TEXT NOT NULL UNIQUE, key TEXT NOT NULL UNIQUE, kx TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE routes (agent_key TEXT PRIMARY KEY, cloud_id TEXT NOT NULL REFERENCES cloud_agents(id), kx TEXT);
CREATE INDEX routes_cloud ON routes (cloud_id);
CREATE TABLE mailboxes (recipient TEXT PRIMARY KEY, messages INTEGER NOT NULL, bytes INTEGER NOT NULL, guest INTEGER NOT NULL, since TEXT NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, received TEXT NOT NULL, envelope BLOB NOT NULL);
CREATE INDEX messages_recipient ON messages (recipient, id);
`;

const FILE = {
  /** 'DKMA': a dkms agency file. */
  applicationId: 0x444b4d41,
  version: 1,
  schema: SCHEMA,
  what: 'agency store',
  busy: 'AGENCY_BUSY',
  damaged: 'AGENCY_STORE_DAMAGED',
  busyHint: 'stop the running agency first',
} as const;

interface MailboxRow {
  messages: number;
  bytes: number;
  guest: number;
}

export class SqliteAgencyStore implements AgencyStore {
  readonly #db: Database.Database;
  readonly #path: string;
  readonly #stmts;

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#path = path;
    this.#stmts = {
      addCloud: db.prepare('INSERT INTO cloud_agents (id, policy, key, kx, created) VALUES (@id, @policy, @key, @kx, @created)'),
      cloudById: db.prepare<[string], CloudAgentRecord>('SELECT id, policy, key, kx, created FROM cloud_agents WHERE id = ?'),
      cloudByKx: db.prepare<[string], CloudAgentRecord>('SELECT id, policy, key, kx, created FROM cloud_agents WHERE kx = ?'),
      cloudByPolicy: db.prepare<[string], CloudAgentRecord>('SELECT id, policy, key, kx, created FROM cloud_agents WHERE policy = ?'),
      routes: db.prepare<[string], { agent_key: string; kx: string | null }>('SELECT agent_key, kx FROM routes WHERE cloud_id = ? ORDER BY agent_key'),
      routeOf: db.prepare<[string], { cloud_id: string }>('SELECT cloud_id FROM routes WHERE agent_key = ?'),
      deleteRoute: db.prepare('DELETE FROM routes WHERE agent_key = ?'),
      putRoute: db.prepare('INSERT OR REPLACE INTO routes (agent_key, cloud_id, kx) VALUES (?, ?, ?)'),
      mailbox: db.prepare<[string], MailboxRow>('SELECT messages, bytes, guest FROM mailboxes WHERE recipient = ?'),
      bumpMailbox: db.prepare(
        `INSERT INTO mailboxes (recipient, messages, bytes, guest, since) VALUES (?, 1, ?, ?, ?)
         ON CONFLICT (recipient) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes`,
      ),
      shrinkMailbox: db.prepare('UPDATE mailboxes SET messages = messages - ?, bytes = bytes - ? WHERE recipient = ?'),
      dropEmptyMailbox: db.prepare('DELETE FROM mailboxes WHERE recipient = ? AND messages <= 0'),
      routedMailbox: db.prepare('UPDATE mailboxes SET guest = 0 WHERE recipient = ?'),
      deleteMailbox: db.prepare('DELETE FROM mailboxes WHERE recipient = ?'),
      insertMessage: db.prepare('INSERT INTO messages (recipient, received, envelope) VALUES (?, ?, ?)'),
      pickup: db.prepare<[string, number], { id: number; received: string; envelope: Buffer }>(
        'SELECT id, received, envelope FROM messages WHERE recipient = ? ORDER BY id LIMIT ?',
      ),
      messageSize: db.prepare<[number, string], { size: number }>('SELECT length(envelope) AS size FROM messages WHERE id = ? AND recipient = ?'),
      deleteMessage: db.prepare('DELETE FROM messages WHERE id = ? AND recipient = ?'),
      deleteMessagesOf: db.prepare('DELETE FROM messages WHERE recipient = ?'),
      guestsBefore: db.prepare<[string], { recipient: string }>('SELECT recipient FROM mailboxes WHERE guest = 1 AND since < ?'),
    };
  }

  static open(path: string): SqliteAgencyStore {
    return new SqliteAgencyStore(openSqliteFile(path, FILE), path);
  }

  #run<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(sqliteError(e, this.#path, FILE));
    }
  }

  addCloudAgent(record: CloudAgentRecord): Promise<void> {
    return this.#run(() => void this.#stmts.addCloud.run(record));
  }

  cloudAgent(id: string): Promise<CloudAgentRecord | undefined> {
    return this.#run(() => this.#stmts.cloudById.get(id));
  }

  cloudAgentByKx(kx: string): Promise<CloudAgentRecord | undefined> {
    return this.#run(() => this.#stmts.cloudByKx.get(kx));
  }

  cloudAgentOfPolicy(policy: string): Promise<CloudAgentRecord | undefined> {
    return this.#run(() => this.#stmts.cloudByPolicy.get(policy));
  }

  #routes(cloudId: string): Route[] {
    return this.#stmts.routes.all(cloudId).map((r) => (r.kx === null ? { agentKey: r.agent_key } : { agentKey: r.agent_key, kx: r.kx }));
  }

  routes(cloudId: string): Promise<Route[]> {
    return this.#run(() => this.#routes(cloudId));
  }

  routeOf(agentKey: string): Promise<string | undefined> {
    return this.#run(() => this.#stmts.routeOf.get(agentKey)?.cloud_id);
  }

  setRoutes(cloudId: string, routes: readonly Route[]): Promise<{ added: string[]; removed: string[] }> {
    return this.#run(() =>
      this.#db.transaction(() => {
        const current = new Set(this.#routes(cloudId).map((r) => r.agentKey));
        const next = new Set(routes.map((r) => r.agentKey));
        const removed = [...current].filter((k) => !next.has(k));
        for (const key of removed) {
          this.#stmts.deleteRoute.run(key);
          this.#stmts.deleteMessagesOf.run(key);
          this.#stmts.deleteMailbox.run(key);
        }
        for (const route of routes) {
          const owner = this.#stmts.routeOf.get(route.agentKey)?.cloud_id;
          if (owner !== undefined && owner !== cloudId) throw new DkmsError('BAD_INPUT', `agent ${route.agentKey} is already routed by another cloud agent`);
          this.#stmts.putRoute.run(route.agentKey, cloudId, route.kx ?? null);
          this.#stmts.routedMailbox.run(route.agentKey);
        }
        return { added: [...next].filter((k) => !current.has(k)), removed };
      })(),
    );
  }

  deliver(delivery: Delivery, limits: MailboxLimits): Promise<string[]> {
    return this.#run(() =>
      this.#db.transaction(() => {
        const size = delivery.envelope.length;
        for (const recipient of delivery.recipients) {
          const guest = this.#stmts.routeOf.get(recipient) === undefined;
          const box = this.#stmts.mailbox.get(recipient) ?? { messages: 0, bytes: 0, guest: guest ? 1 : 0 };
          const maxMessages = guest ? limits.maxGuestMessages : limits.maxMessages;
          if (box.messages + 1 > maxMessages || box.bytes + size > limits.maxBytes) {
            throw new DkmsError('MAILBOX_FULL', `the mailbox of ${recipient} is full; it must pick up its messages first`);
          }
        }
        return delivery.recipients.map((recipient) => {
          const guest = this.#stmts.routeOf.get(recipient) === undefined ? 1 : 0;
          this.#stmts.bumpMailbox.run(recipient, size, guest, delivery.received);
          return String(this.#stmts.insertMessage.run(recipient, delivery.received, delivery.envelope).lastInsertRowid);
        });
      })(),
    );
  }

  pickup(agentKey: string, limit: number): Promise<StoredMessage[]> {
    return this.#run(() =>
      this.#stmts.pickup.all(agentKey, limit).map((row) => ({ id: String(row.id), received: row.received, envelope: new Uint8Array(row.envelope) })),
    );
  }

  ack(agentKey: string, ids: readonly string[]): Promise<number> {
    return this.#run(() =>
      this.#db.transaction(() => {
        let count = 0;
        let bytes = 0;
        for (const id of ids) {
          const n = Number(id);
          if (!Number.isSafeInteger(n)) continue;
          const size = this.#stmts.messageSize.get(n, agentKey)?.size;
          if (size === undefined) continue;
          this.#stmts.deleteMessage.run(n, agentKey);
          count += 1;
          bytes += size;
        }
        if (count > 0) {
          this.#stmts.shrinkMailbox.run(count, bytes, agentKey);
          this.#stmts.dropEmptyMailbox.run(agentKey);
        }
        return count;
      })(),
    );
  }

  purgeGuests(before: string): Promise<number> {
    return this.#run(() =>
      this.#db.transaction(() => {
        let count = 0;
        for (const { recipient } of this.#stmts.guestsBefore.all(before)) {
          count += Number(this.#stmts.deleteMessagesOf.run(recipient).changes);
          this.#stmts.deleteMailbox.run(recipient);
        }
        return count;
      })(),
    );
  }

  close(): Promise<void> {
    return this.#run(() => {
      if (this.#db.open) this.#db.close();
    });
  }
}
