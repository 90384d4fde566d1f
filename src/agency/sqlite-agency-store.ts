/** The embedded agency store: one SQLite file (WAL, synchronous=FULL), one process at a time. */
import type Database from 'better-sqlite3';
import { sha256 } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { openStore, storeRunner } from '../sqlite.js';
import {
  DELIVERED_MEMORY_MS,
  ROUTES,
  type AgencyStore,
  type BackupLimits,
  type BackupRecord,
  type CloudAgentRecord,
  type Delivered,
  type Delivery,
  type MailboxLimits,
  type NewBackup,
  type Route,
  type RouteChange,
  type StoredMessage,
} from './agency-store.js';

/** Which keys have a mailbox here: looked up by key alone for every pickup. */
const ROUTES_BY_AGENT = `
CREATE INDEX routes_agent ON routes (agent_key);
`;

/**
 * Who posted each message (the client address) and its digest: a sender's share of a mailbox is
 * counted per (cloud agent, recipient, sender) in \`senders\`, and an envelope identical to one
 * still waiting for the same recipient is stored once.
 */
const MAIL_SOURCES = `
ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN digest BLOB;
CREATE UNIQUE INDEX messages_once ON messages (cloud_id, recipient, digest);
CREATE TABLE senders (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, source TEXT NOT NULL, messages INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (cloud_id, recipient, source));
`;

/**
 * Guest mail only where the owner allows it: \`guests\` are the keys a cloud agent takes guest
 * mail for, each since when; \`sponsors\` the keys besides the owner's agents that may allow one.
 * \`delivered\` remembers acknowledged envelopes for a while (a sender's retry is not stored
 * again), and \`routes_seq\` the policy state the routes follow.
 */
const GUESTS = `
CREATE TABLE guests (cloud_id TEXT NOT NULL, agent_key TEXT NOT NULL, allowed TEXT NOT NULL, PRIMARY KEY (cloud_id, agent_key));
CREATE INDEX guests_key ON guests (agent_key);
CREATE TABLE sponsors (cloud_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (cloud_id, key));
CREATE TABLE delivered (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, digest BLOB NOT NULL, id INTEGER NOT NULL, until TEXT NOT NULL, PRIMARY KEY (cloud_id, recipient, digest));
CREATE INDEX delivered_until ON delivered (until);
ALTER TABLE cloud_agents ADD COLUMN routes_seq INTEGER NOT NULL DEFAULT -1;
`;

const BACKUPS = `
CREATE TABLE backups (locator TEXT NOT NULL, version INTEGER NOT NULL, cloud_id TEXT NOT NULL, agent TEXT NOT NULL, created TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (locator, version));
CREATE INDEX backups_cloud ON backups (cloud_id, locator);
`;

// Mail is kept per (cloud agent, recipient): one key may be an agent of several owners.
const SCHEMA = `
CREATE TABLE cloud_agents (id TEXT PRIMARY KEY, policy TEXT NOT NULL UNIQUE, key TEXT NOT NULL UNIQUE, kx TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE routes (cloud_id TEXT NOT NULL REFERENCES cloud_agents(id), agent_key TEXT NOT NULL, kx TEXT, PRIMARY KEY (cloud_id, agent_key));
CREATE TABLE removed (cloud_id TEXT NOT NULL, agent_key TEXT NOT NULL, PRIMARY KEY (cloud_id, agent_key));
CREATE TABLE mailboxes (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, messages INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (cloud_id, recipient));
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, received TEXT NOT NULL, envelope BLOB NOT NULL);
CREATE INDEX messages_recipient ON messages (recipient, id);
CREATE INDEX messages_box ON messages (cloud_id, recipient, received);
${BACKUPS}${ROUTES_BY_AGENT}${MAIL_SOURCES}${GUESTS}`;

const FILE = {
  /** 'DKMA': a dkms agency file. */
  applicationId: 0x444b4d41,
  version: 6,
  schema: SCHEMA,
  migrations: { 2: BACKUPS, 3: ROUTES_BY_AGENT, 4: MAIL_SOURCES, 5: GUESTS },
  what: 'agency store',
  busy: 'AGENCY_BUSY',
  damaged: 'AGENCY_STORE_DAMAGED',
  busyHint: 'stop the running agency first',
} as const;

type BackupRow = { locator: string; cloud_id: string; version: number; agent: string; created: string; size: number };
const backupRecord = (row: BackupRow): BackupRecord => ({
  locator: row.locator,
  cloudId: row.cloud_id,
  version: row.version,
  agent: row.agent,
  created: row.created,
  size: row.size,
});

type Row = { id: number; cloud_id: string; received: string; envelope: Buffer };

export class SqliteAgencyStore implements AgencyStore {
  readonly #db: Database.Database;
  readonly #stmts;

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.#run = storeRunner(path, FILE);
    const cloud = 'SELECT id, policy, key, kx, created FROM cloud_agents';
    this.#stmts = {
      addCloud: db.prepare('INSERT INTO cloud_agents (id, policy, key, kx, created) VALUES (@id, @policy, @key, @kx, @created)'),
      cloudById: db.prepare<[string], CloudAgentRecord>(`${cloud} WHERE id = ?`),
      cloudByKx: db.prepare<[string], CloudAgentRecord>(`${cloud} WHERE kx = ?`),
      cloudByPolicy: db.prepare<[string], CloudAgentRecord>(`${cloud} WHERE policy = ?`),
      policies: db.prepare<[], { policy: string }>('SELECT policy FROM cloud_agents ORDER BY policy'),
      routes: db.prepare<[string], { agent_key: string; kx: string | null }>('SELECT agent_key, kx FROM routes WHERE cloud_id = ? ORDER BY agent_key'),
      isRouted: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM routes WHERE cloud_id = ? AND agent_key = ?'),
      routedAnywhere: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM routes WHERE agent_key = ? LIMIT 1'),
      hasMail: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM messages WHERE recipient = ? LIMIT 1'),
      isGuestAnywhere: db.prepare<[string], { n: number }>('SELECT 1 AS n FROM guests WHERE agent_key = ? LIMIT 1'),
      guestAllowed: db.prepare<[string, string, string], { n: number }>('SELECT 1 AS n FROM guests WHERE cloud_id = ? AND agent_key = ? AND allowed >= ?'),
      guestCount: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM guests WHERE cloud_id = ?'),
      isGuest: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM guests WHERE cloud_id = ? AND agent_key = ?'),
      putGuest: db.prepare(
        'INSERT INTO guests (cloud_id, agent_key, allowed) VALUES (?, ?, ?) ON CONFLICT (cloud_id, agent_key) DO UPDATE SET allowed = excluded.allowed',
      ),
      purgeAllowances: db.prepare('DELETE FROM guests WHERE allowed < ?'),
      deleteSponsors: db.prepare('DELETE FROM sponsors WHERE cloud_id = ?'),
      putSponsor: db.prepare('INSERT OR IGNORE INTO sponsors (cloud_id, key) VALUES (?, ?)'),
      dropGuest: db.prepare('DELETE FROM guests WHERE cloud_id = ? AND agent_key = ?'),
      remember: db.prepare(
        `INSERT INTO delivered (cloud_id, recipient, digest, id, until) SELECT cloud_id, recipient, digest, id, ? FROM messages WHERE id = ? AND digest IS NOT NULL
         ON CONFLICT (cloud_id, recipient, digest) DO UPDATE SET id = excluded.id, until = excluded.until`,
      ),
      wasDelivered: db.prepare<[string, string, Uint8Array, string], { id: number }>(
        'SELECT id FROM delivered WHERE cloud_id = ? AND recipient = ? AND digest = ? AND until > ?',
      ),
      forgetDelivered: db.prepare('DELETE FROM delivered WHERE until <= ?'),
      routesSeq: db.prepare<[string], { seq: number }>('SELECT routes_seq AS seq FROM cloud_agents WHERE id = ?'),
      setRoutesSeq: db.prepare('UPDATE cloud_agents SET routes_seq = ? WHERE id = ?'),
      isSponsor: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM sponsors WHERE cloud_id = ? AND key = ?'),
      wasRemoved: db.prepare<[string, string], { n: number }>('SELECT 1 AS n FROM removed WHERE cloud_id = ? AND agent_key = ?'),
      deleteRoute: db.prepare('DELETE FROM routes WHERE cloud_id = ? AND agent_key = ?'),
      putRoute: db.prepare('INSERT OR REPLACE INTO routes (cloud_id, agent_key, kx) VALUES (?, ?, ?)'),
      markRemoved: db.prepare('INSERT OR IGNORE INTO removed (cloud_id, agent_key) VALUES (?, ?)'),
      unmarkRemoved: db.prepare('DELETE FROM removed WHERE cloud_id = ? AND agent_key = ?'),
      mailbox: db.prepare<[string, string], { messages: number; bytes: number }>('SELECT messages, bytes FROM mailboxes WHERE cloud_id = ? AND recipient = ?'),
      bumpMailbox: db.prepare(
        `INSERT INTO mailboxes (cloud_id, recipient, messages, bytes) VALUES (?, ?, 1, ?)
         ON CONFLICT (cloud_id, recipient) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes`,
      ),
      shrinkMailbox: db.prepare('UPDATE mailboxes SET messages = messages - ?, bytes = bytes - ? WHERE cloud_id = ? AND recipient = ?'),
      dropEmptyMailbox: db.prepare('DELETE FROM mailboxes WHERE cloud_id = ? AND recipient = ? AND messages <= 0'),
      deleteMailbox: db.prepare('DELETE FROM mailboxes WHERE cloud_id = ? AND recipient = ?'),
      insertMessage: db.prepare('INSERT INTO messages (cloud_id, recipient, received, envelope, source, digest) VALUES (?, ?, ?, ?, ?, ?)'),
      sameMessage: db.prepare<[string, string, Uint8Array], { id: number }>('SELECT id FROM messages WHERE cloud_id = ? AND recipient = ? AND digest = ?'),
      sender: db.prepare<[string, string, string], { messages: number; bytes: number }>(
        'SELECT messages, bytes FROM senders WHERE cloud_id = ? AND recipient = ? AND source = ?',
      ),
      bumpSender: db.prepare(
        `INSERT INTO senders (cloud_id, recipient, source, messages, bytes) VALUES (?, ?, ?, 1, ?)
         ON CONFLICT (cloud_id, recipient, source) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes`,
      ),
      shrinkSender: db.prepare('UPDATE senders SET messages = messages - 1, bytes = bytes - ? WHERE cloud_id = ? AND recipient = ? AND source = ?'),
      dropEmptySender: db.prepare('DELETE FROM senders WHERE cloud_id = ? AND recipient = ? AND source = ? AND messages <= 0'),
      deleteSenders: db.prepare('DELETE FROM senders WHERE cloud_id = ? AND recipient = ?'),
      pickup: db.prepare<[string, number], Row>('SELECT id, cloud_id, received, envelope FROM messages WHERE recipient = ? ORDER BY id LIMIT ?'),
      message: db.prepare<[number, string], { cloud_id: string; size: number; source: string }>(
        'SELECT cloud_id, length(envelope) AS size, source FROM messages WHERE id = ? AND recipient = ?',
      ),
      deleteMessage: db.prepare('DELETE FROM messages WHERE id = ?'),
      deleteBox: db.prepare('DELETE FROM messages WHERE cloud_id = ? AND recipient = ?'),
      guestMail: db.prepare<[string], { id: number; cloud_id: string; recipient: string; size: number; source: string }>(
        `SELECT m.id, m.cloud_id, m.recipient, length(m.envelope) AS size, m.source FROM messages m
         WHERE m.received < ? AND NOT EXISTS (SELECT 1 FROM routes r WHERE r.cloud_id = m.cloud_id AND r.agent_key = m.recipient)`,
      ),
      ...backupStatements(db),
    };
  }

  static open(path: string): SqliteAgencyStore {
    return openStore(path, FILE, (db) => new SqliteAgencyStore(db, path));
  }

  readonly #run: <T>(fn: () => T) => Promise<T>;

  addCloudAgent(record: CloudAgentRecord): Promise<void> {
    const { id, policy, key, kx, created } = record;
    return this.#run(() => void this.#stmts.addCloud.run({ id, policy, key, kx, created }));
  }

  servedPolicies(): Promise<string[]> {
    return this.#run(() => this.#stmts.policies.all().map((r) => r.policy));
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

  isRouted(cloudId: string, agentKey: string): Promise<boolean> {
    return this.#run(() => this.#stmts.isRouted.get(cloudId, agentKey) !== undefined);
  }

  hasMailbox(agentKey: string): Promise<boolean> {
    return this.#run(
      () =>
        this.#stmts.routedAnywhere.get(agentKey) !== undefined ||
        this.#stmts.hasMail.get(agentKey) !== undefined ||
        this.#stmts.isGuestAnywhere.get(agentKey) !== undefined,
    );
  }

  allowGuest(cloudId: string, agentKey: string, allowed: string, maxGuests: number): Promise<'allowed' | 'routed' | 'removed'> {
    return this.#run(() =>
      this.#db.transaction(() => {
        if (this.#stmts.isRouted.get(cloudId, agentKey) !== undefined) return 'routed' as const;
        if (this.#stmts.wasRemoved.get(cloudId, agentKey) !== undefined) return 'removed' as const;
        if (this.#stmts.isGuest.get(cloudId, agentKey) === undefined && (this.#stmts.guestCount.get(cloudId)?.n ?? 0) >= maxGuests) {
          throw new DkmsError('MAILBOX_FULL', `this cloud agent already allows ${maxGuests} guest keys; they expire a day after they were allowed`);
        }
        this.#stmts.putGuest.run(cloudId, agentKey, allowed);
        return 'allowed' as const;
      })(),
    );
  }

  guestAllowed(cloudId: string, agentKey: string, since: string): Promise<boolean> {
    return this.#run(() => this.#stmts.guestAllowed.get(cloudId, agentKey, since) !== undefined);
  }

  setSponsors(cloudId: string, keys: readonly string[]): Promise<void> {
    return this.#run(() =>
      this.#db.transaction(() => {
        this.#stmts.deleteSponsors.run(cloudId);
        for (const key of keys) this.#stmts.putSponsor.run(cloudId, key);
      })(),
    );
  }

  isSponsor(cloudId: string, key: string): Promise<boolean> {
    return this.#run(() => this.#stmts.isSponsor.get(cloudId, key) !== undefined);
  }

  wasRemoved(cloudId: string, agentKey: string): Promise<boolean> {
    return this.#run(() => this.#stmts.wasRemoved.get(cloudId, agentKey) !== undefined);
  }

  setRoutes(cloudId: string, routes: readonly Route[], options: RouteChange = {}): Promise<{ added: string[]; removed: string[] }> {
    return this.#run(() =>
      this.#db.transaction(() => {
        if (options.seq !== undefined) {
          if ((this.#stmts.routesSeq.get(cloudId)?.seq ?? -1) >= options.seq) return { added: [], removed: [] };
          this.#stmts.setRoutesSeq.run(options.seq, cloudId);
        }
        const current = new Set(this.#routes(cloudId).map((r) => r.agentKey));
        const next = new Set(routes.map((r) => r.agentKey));
        const removed = [...current].filter((k) => !next.has(k));
        // Keys named once and never routed here are remembered as removed all the same.
        for (const key of options.removed ?? []) {
          if (next.has(key) || current.has(key)) continue;
          this.#stmts.deleteBox.run(cloudId, key);
          this.#stmts.deleteMailbox.run(cloudId, key);
          this.#stmts.deleteSenders.run(cloudId, key);
          this.#stmts.markRemoved.run(cloudId, key);
          this.#stmts.dropGuest.run(cloudId, key);
        }
        for (const key of removed) {
          this.#stmts.deleteRoute.run(cloudId, key);
          this.#stmts.deleteBox.run(cloudId, key);
          this.#stmts.deleteMailbox.run(cloudId, key);
          this.#stmts.deleteSenders.run(cloudId, key);
          this.#stmts.markRemoved.run(cloudId, key);
          this.#stmts.dropGuest.run(cloudId, key);
        }
        // A routed key needs no guest allowance, and must not keep one for when it is removed.
        for (const route of routes) {
          this.#stmts.putRoute.run(cloudId, route.agentKey, route.kx ?? null);
          this.#stmts.unmarkRemoved.run(cloudId, route.agentKey);
          this.#stmts.dropGuest.run(cloudId, route.agentKey);
        }
        return { added: [...next].filter((k) => !current.has(k)), removed };
      })(),
    );
  }

  /** The keys a delivery goes to, by Delivery's rules; NOT_FOUND if it may go to none. */
  #chosen(delivery: Delivery): readonly string[] {
    const { cloudId } = delivery;
    if (delivery.recipients === ROUTES) {
      const keys = this.#stmts.routes.all(cloudId).map((r) => r.agent_key);
      if (keys.length === 0) throw new DkmsError('NOT_FOUND', 'this cloud agent has no edge agent to deliver to');
      return keys;
    }
    const since = delivery.guestsSince;
    if (since !== undefined) {
      for (const key of delivery.recipients) {
        if (this.#stmts.isRouted.get(cloudId, key) !== undefined) continue;
        if (this.#stmts.guestAllowed.get(cloudId, key, since) !== undefined && this.#stmts.wasRemoved.get(cloudId, key) === undefined) continue;
        throw new DkmsError('NOT_FOUND', `this cloud agent does not route to '${key}'`);
      }
    }
    return delivery.recipients;
  }

  #deliverOne(delivery: Delivery, limits: MailboxLimits): Delivered {
    const { cloudId, source } = delivery;
    const size = delivery.envelope.length;
    const digest = sha256(delivery.envelope);
    // A copy still waiting for a recipient is that recipient's copy: nothing new to count or store.
    // A recipient the cloud agent stopped routing to gets no copy, whatever routes chose it.
    const recipients = this.#chosen(delivery).filter((r) => this.#stmts.wasRemoved.get(cloudId, r) === undefined);
    // Still waiting, or acknowledged a moment ago (a sender's retry): that copy's id, nothing stored.
    const now = new Date().toISOString();
    const waiting = new Map(
      recipients.map((r) => [r, this.#stmts.sameMessage.get(cloudId, r, digest)?.id ?? this.#stmts.wasDelivered.get(cloudId, r, digest, now)?.id]),
    );
    const fresh = recipients.filter((r) => waiting.get(r) === undefined);
    for (const recipient of fresh) {
      const guest = this.#stmts.isRouted.get(cloudId, recipient) === undefined;
      const box = this.#stmts.mailbox.get(cloudId, recipient) ?? { messages: 0, bytes: 0 };
      if (box.messages + 1 > (guest ? limits.maxGuestMessages : limits.maxMessages) || box.bytes + size > limits.maxBytes) {
        throw new DkmsError('MAILBOX_FULL', `the mailbox of ${recipient} is full; it must pick up its messages first`);
      }
      const share = this.#stmts.sender.get(cloudId, recipient, source) ?? { messages: 0, bytes: 0 };
      if (share.messages + 1 > limits.maxSourceMessages || share.bytes + size > limits.maxSourceBytes) {
        throw new DkmsError(
          'MAILBOX_FULL',
          `this sender already has ${share.messages} messages (${share.bytes} bytes) waiting for ${recipient}, its share of the mailbox; retry once they are picked up`,
        );
      }
    }
    const ids = recipients.map((recipient) => {
      const same = waiting.get(recipient);
      if (same !== undefined) return String(same);
      this.#stmts.bumpMailbox.run(cloudId, recipient, size);
      this.#stmts.bumpSender.run(cloudId, recipient, source, size);
      return String(this.#stmts.insertMessage.run(cloudId, recipient, delivery.received, delivery.envelope, source, digest).lastInsertRowid);
    });
    return { ids, recipients };
  }

  deliver(delivery: Delivery, limits: MailboxLimits): Promise<Delivered> {
    return this.#run(() => this.#db.transaction(() => this.#deliverOne(delivery, limits))());
  }

  deliverMany(deliveries: readonly Delivery[], limits: MailboxLimits): Promise<(Delivered | Error)[]> {
    return this.#run(() =>
      this.#db.transaction(() =>
        deliveries.map((delivery) => {
          // Recipients and quotas are checked before anything of a delivery is written, so a refused one leaves no trace.
          try {
            return this.#deliverOne(delivery, limits);
          } catch (e) {
            if (e instanceof DkmsError && (e.code === 'MAILBOX_FULL' || e.code === 'NOT_FOUND')) return e;
            throw e;
          }
        }),
      )(),
    );
  }

  pickup(agentKey: string, limit: number): Promise<StoredMessage[]> {
    return this.#run(() =>
      this.#stmts.pickup.all(agentKey, limit).map((row) => ({ id: String(row.id), received: row.received, envelope: new Uint8Array(row.envelope) })),
    );
  }

  /** Deletes one message; `until` (acknowledged ones): its digest is remembered till then, so that a retry of it is not stored again. */
  #remove(id: number, cloudId: string, recipient: string, size: number, source: string, until?: string): void {
    if (until !== undefined) this.#stmts.remember.run(until, id);
    this.#stmts.deleteMessage.run(id);
    this.#stmts.shrinkMailbox.run(1, size, cloudId, recipient);
    this.#stmts.dropEmptyMailbox.run(cloudId, recipient);
    this.#stmts.shrinkSender.run(size, cloudId, recipient, source);
    this.#stmts.dropEmptySender.run(cloudId, recipient, source);
  }

  ack(agentKey: string, ids: readonly string[]): Promise<number> {
    return this.#run(() =>
      this.#db.transaction(() => {
        const until = new Date(Date.now() + DELIVERED_MEMORY_MS).toISOString();
        let count = 0;
        for (const id of new Set(ids)) {
          const n = Number(id);
          if (!Number.isSafeInteger(n)) continue;
          const found = this.#stmts.message.get(n, agentKey);
          if (found === undefined) continue;
          this.#remove(n, found.cloud_id, agentKey, found.size, found.source, until);
          count += 1;
        }
        return count;
      })(),
    );
  }

  putBackup(backup: NewBackup, limits: BackupLimits): Promise<BackupRecord> {
    const { cloudId, locator, agent, data, created } = backup;
    return this.#run(() =>
      this.#db.transaction(() => {
        const owners = this.#stmts.backupOwners.all(locator);
        if (owners.some((o) => o.cloud_id !== cloudId)) throw new DkmsError('BACKUP_UNAUTHORIZED', 'these backups belong to another owner');
        const version = (this.#stmts.latestBackup.get(locator)?.version ?? 0) + 1;
        this.#stmts.insertBackup.run(locator, version, cloudId, agent, created, data);
        this.#stmts.pruneBackups.run(locator, agent, locator, agent, limits.versionsPerAgent);
        // Counted after pruning; a refusal throws, and the transaction leaves nothing behind.
        const usage = this.#stmts.backupUsage.get(cloudId) ?? { locators: 0, bytes: 0 };
        if (usage.locators > limits.locators)
          throw new DkmsError('BACKUP_QUOTA', `this owner already keeps backups under ${limits.locators} recovery secrets at this agency`);
        if (usage.bytes > limits.bytes) throw new DkmsError('BACKUP_QUOTA', `this owner's backups would exceed ${limits.bytes} bytes at this agency`);
        return { locator, cloudId, version, agent, created, size: data.length };
      })(),
    );
  }

  backups(locator: string): Promise<BackupRecord[]> {
    return this.#run(() => this.#stmts.listBackups.all(locator).map(backupRecord));
  }

  backupData(locator: string, version?: number): Promise<{ record: BackupRecord; data: Uint8Array } | undefined> {
    return this.#run(() => {
      const row = version === undefined ? this.#stmts.newestBackupData.get(locator) : this.#stmts.backupDataAt.get(locator, version);
      return row === undefined ? undefined : { record: backupRecord(row), data: new Uint8Array(row.data) };
    });
  }

  newestLocator(cloudId: string): Promise<string | undefined> {
    return this.#run(() => this.#stmts.newestLocator.get(cloudId)?.locator);
  }

  deleteBackups(cloudId: string, locator: string): Promise<number> {
    return this.#run(() => this.#stmts.deleteBackups.run(locator, cloudId).changes);
  }

  purgeGuests(before: string): Promise<number> {
    return this.#run(() =>
      this.#db.transaction(() => {
        const old = this.#stmts.guestMail.all(before);
        for (const m of old) this.#remove(m.id, m.cloud_id, m.recipient, m.size, m.source);
        this.#stmts.purgeAllowances.run(before);
        this.#stmts.forgetDelivered.run(new Date().toISOString());
        return old.length;
      })(),
    );
  }

  close(): Promise<void> {
    return this.#run(() => {
      if (this.#db.open) this.#db.close();
    });
  }
}

function backupStatements(db: Database.Database) {
  const columns = 'locator, cloud_id, version, agent, created, length(data) AS size';
  return {
    backupOwners: db.prepare<[string], { cloud_id: string }>('SELECT DISTINCT cloud_id FROM backups WHERE locator = ?'),
    backupUsage: db.prepare<[string], { locators: number; bytes: number }>(
      'SELECT count(DISTINCT locator) AS locators, coalesce(sum(length(data)), 0) AS bytes FROM backups WHERE cloud_id = ?',
    ),
    latestBackup: db.prepare<[string], { version: number }>('SELECT max(version) AS version FROM backups WHERE locator = ? HAVING count(*) > 0'),
    insertBackup: db.prepare('INSERT INTO backups (locator, version, cloud_id, agent, created, data) VALUES (?, ?, ?, ?, ?, ?)'),
    pruneBackups: db.prepare(
      'DELETE FROM backups WHERE locator = ? AND agent = ? AND version NOT IN (SELECT version FROM backups WHERE locator = ? AND agent = ? ORDER BY version DESC LIMIT ?)',
    ),
    listBackups: db.prepare<[string], BackupRow>(`SELECT ${columns} FROM backups WHERE locator = ? ORDER BY version`),
    newestBackupData: db.prepare<[string], BackupRow & { data: Buffer }>(
      `SELECT ${columns}, data FROM backups WHERE locator = ? ORDER BY version DESC LIMIT 1`,
    ),
    backupDataAt: db.prepare<[string, number], BackupRow & { data: Buffer }>(`SELECT ${columns}, data FROM backups WHERE locator = ? AND version = ?`),
    deleteBackups: db.prepare('DELETE FROM backups WHERE locator = ? AND cloud_id = ?'),
    newestLocator: db.prepare<[string], { locator: string }>('SELECT locator FROM backups WHERE cloud_id = ? ORDER BY created DESC, rowid DESC LIMIT 1'),
  };
}
