/**
 * The shared agency store: PostgreSQL (the `pg` client), for several agency processes on one
 * database behind any load balancer. Everything that must hold across them lives here:
 * mailboxes and their quotas, backups, routes, and the nonces of admitted requests.
 *
 * Concurrency. Each mutation of one recipient's mail (deliver, ack, purge, a route removed)
 * runs in one transaction holding that recipient's advisory lock, so quotas are checked and
 * counted exactly, an identical envelope is stored once, and no copy is stored for an agent
 * whose route another process removed a moment before. A transaction takes its locks in one
 * global order (a cloud agent's, then recipients' by lock number), so two never deadlock.
 * A batch of deliveries is one statement (`dkms_deliver_all`): one round trip and one commit,
 * which chooses the recipients, takes their locks and stores the copies; the commit sends a
 * notification per recipient, which ends long polls waiting at every other agency process.
 *
 * Failures. A lost connection, a restarting server or an answer that does not come in time is
 * AGENCY_STORE_UNAVAILABLE (503): the request did nothing unless it was committed, and a
 * sender's retry of a committed envelope is the same message (stored once by its digest).
 */
import pg from 'pg';
import { sha256, toHex, utf8 } from '../crypto/index.js';
import { settlesWithin } from '../bounded.js';
import { DkmsError } from '../errors.js';
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
  type NonceStore,
  type Route,
  type RouteChange,
  type StoredMessage,
} from './agency-store.js';

/** The schema's version, kept in `dkms_meta`; a newer one than this code knows is refused. */
const SCHEMA_VERSION = 1;
/** The advisory lock under which one process at a time creates or migrates the schema. */
const SCHEMA_LOCK = '7155254853129123845';
const MAIL_CHANNEL = 'dkms_mail';

const SCHEMA = `
CREATE TABLE dkms_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE cloud_agents (id TEXT PRIMARY KEY, policy TEXT NOT NULL UNIQUE, key TEXT NOT NULL UNIQUE, kx TEXT NOT NULL UNIQUE, created TEXT NOT NULL, sealed BYTEA, routes_seq BIGINT NOT NULL DEFAULT -1);
CREATE TABLE routes (cloud_id TEXT NOT NULL REFERENCES cloud_agents(id), agent_key TEXT NOT NULL, kx TEXT, PRIMARY KEY (cloud_id, agent_key));
CREATE INDEX routes_agent ON routes (agent_key);
CREATE TABLE removed (cloud_id TEXT NOT NULL, agent_key TEXT NOT NULL, PRIMARY KEY (cloud_id, agent_key));
CREATE TABLE mailboxes (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, messages INTEGER NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (cloud_id, recipient));
CREATE TABLE senders (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, source TEXT NOT NULL, messages INTEGER NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (cloud_id, recipient, source));
CREATE TABLE messages (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, received TEXT NOT NULL, envelope BYTEA NOT NULL, size INTEGER NOT NULL, source TEXT NOT NULL, digest BYTEA NOT NULL);
CREATE INDEX messages_recipient ON messages (recipient, id);
CREATE INDEX messages_received ON messages (received);
CREATE UNIQUE INDEX messages_once ON messages (cloud_id, recipient, digest);
CREATE TABLE backups (locator TEXT NOT NULL, version INTEGER NOT NULL, seq BIGINT GENERATED ALWAYS AS IDENTITY, cloud_id TEXT NOT NULL, agent TEXT NOT NULL, created TEXT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (locator, version));
CREATE INDEX backups_cloud ON backups (cloud_id, locator);
CREATE TABLE guests (cloud_id TEXT NOT NULL, agent_key TEXT NOT NULL, allowed TEXT NOT NULL, PRIMARY KEY (cloud_id, agent_key));
CREATE INDEX guests_key ON guests (agent_key);
CREATE TABLE sponsors (cloud_id TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (cloud_id, key));
CREATE TABLE delivered (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, digest BYTEA NOT NULL, id BIGINT NOT NULL, until TIMESTAMPTZ NOT NULL, PRIMARY KEY (cloud_id, recipient, digest));
CREATE INDEX delivered_until ON delivered (until);
CREATE TABLE nonces (key TEXT NOT NULL, nonce TEXT NOT NULL, at BIGINT NOT NULL, PRIMARY KEY (key, nonce));
CREATE INDEX nonces_at ON nonces (at);

-- The advisory lock of a recipient's mail: 64 bits of the SHA-256 of its name, as a signed bigint.
CREATE FUNCTION dkms_recipient_lock(p_key TEXT) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
  SELECT ('x' || encode(substring(sha256(convert_to('recipient ' || p_key, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint
$$;

-- Takes the locks of recipients' mail, in the order of their lock numbers (every transaction does: none deadlock).
CREATE FUNCTION dkms_lock_recipients(p_keys TEXT[]) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
  FOR k IN SELECT DISTINCT dkms_recipient_lock(r) AS id FROM unnest(p_keys) AS r ORDER BY id LOOP PERFORM pg_advisory_xact_lock(k); END LOOP;
END $$;

-- Takes advisory locks in the order given (the caller sorts them).
CREATE FUNCTION dkms_lock(keys BIGINT[]) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE k BIGINT;
BEGIN
  FOREACH k IN ARRAY keys LOOP PERFORM pg_advisory_xact_lock(k); END LOOP;
END $$;

-- One message of a recipient gone: its mailbox's and its sender's counts follow.
CREATE FUNCTION dkms_uncount(p_cloud TEXT, p_recipient TEXT, p_source TEXT, p_size BIGINT) RETURNS VOID LANGUAGE plpgsql AS $$
BEGIN
  UPDATE mailboxes SET messages = messages - 1, bytes = bytes - p_size WHERE cloud_id = p_cloud AND recipient = p_recipient;
  DELETE FROM mailboxes WHERE cloud_id = p_cloud AND recipient = p_recipient AND messages <= 0;
  UPDATE senders SET messages = messages - 1, bytes = bytes - p_size WHERE cloud_id = p_cloud AND recipient = p_recipient AND source = p_source;
  DELETE FROM senders WHERE cloud_id = p_cloud AND recipient = p_recipient AND source = p_source AND messages <= 0;
END $$;

-- Deletes messages of one recipient (only those no cloud agent routes, for guests_only); returns
-- how many. Acknowledged ones (not guests_only) are remembered by digest for a while: a sender's
-- retry of one is not stored again.
CREATE FUNCTION dkms_remove(p_recipient TEXT, p_ids BIGINT[], guests_only BOOLEAN) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE m RECORD; n INTEGER := 0;
BEGIN
  FOR m IN DELETE FROM messages WHERE recipient = p_recipient AND id = ANY(p_ids)
      AND (NOT guests_only OR NOT EXISTS (SELECT 1 FROM routes r WHERE r.cloud_id = messages.cloud_id AND r.agent_key = p_recipient))
      RETURNING id, cloud_id, source, size, digest LOOP
    PERFORM dkms_uncount(m.cloud_id, p_recipient, m.source, m.size);
    IF NOT guests_only THEN
      INSERT INTO delivered (cloud_id, recipient, digest, id, until) VALUES (m.cloud_id, p_recipient, m.digest, m.id, now() + interval '${DELIVERED_MEMORY_MS / 1000} seconds')
        ON CONFLICT (cloud_id, recipient, digest) DO UPDATE SET id = excluded.id, until = excluded.until;
    END IF;
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

-- One delivery, with its recipients' locks held: the id of each recipient's copy (NULL for a
-- recipient the cloud agent stopped routing to), or why it was refused (nothing stored).
CREATE FUNCTION dkms_deliver(p_cloud TEXT, p_recipients TEXT[], p_envelope BYTEA, p_received TEXT, p_source TEXT, p_digest BYTEA,
    max_messages INTEGER, max_bytes BIGINT, max_guest INTEGER, max_source_messages INTEGER, max_source_bytes BIGINT,
    OUT ids BIGINT[], OUT refused TEXT) LANGUAGE plpgsql AS $$
DECLARE r TEXT; same BIGINT; n BIGINT; b BIGINT; guest BOOLEAN; p_size BIGINT := octet_length(p_envelope);
BEGIN
  ids := '{}';
  FOREACH r IN ARRAY p_recipients LOOP
    IF EXISTS (SELECT 1 FROM removed WHERE cloud_id = p_cloud AND agent_key = r) THEN CONTINUE; END IF;
    IF EXISTS (SELECT 1 FROM messages WHERE cloud_id = p_cloud AND recipient = r AND digest = p_digest)
      OR EXISTS (SELECT 1 FROM delivered WHERE cloud_id = p_cloud AND recipient = r AND digest = p_digest AND until > now()) THEN CONTINUE; END IF;
    guest := NOT EXISTS (SELECT 1 FROM routes WHERE cloud_id = p_cloud AND agent_key = r);
    SELECT coalesce(max(messages), 0), coalesce(max(bytes), 0) INTO n, b FROM mailboxes WHERE cloud_id = p_cloud AND recipient = r;
    IF n + 1 > (CASE WHEN guest THEN max_guest ELSE max_messages END) OR b + p_size > max_bytes THEN
      refused := format('the mailbox of %s is full; it must pick up its messages first', r);
      RETURN;
    END IF;
    SELECT coalesce(max(messages), 0), coalesce(max(bytes), 0) INTO n, b FROM senders WHERE cloud_id = p_cloud AND recipient = r AND source = p_source;
    IF n + 1 > max_source_messages OR b + p_size > max_source_bytes THEN
      refused := format('this sender already has %s messages (%s bytes) waiting for %s, its share of the mailbox; retry once they are picked up', n, b, r);
      RETURN;
    END IF;
  END LOOP;
  FOREACH r IN ARRAY p_recipients LOOP
    IF EXISTS (SELECT 1 FROM removed WHERE cloud_id = p_cloud AND agent_key = r) THEN
      ids := ids || NULL::BIGINT;
      CONTINUE;
    END IF;
    -- Still waiting, or acknowledged a moment ago (a sender's retry): that copy's id, nothing stored.
    SELECT id INTO same FROM messages WHERE cloud_id = p_cloud AND recipient = r AND digest = p_digest;
    IF same IS NULL THEN
      SELECT id INTO same FROM delivered WHERE cloud_id = p_cloud AND recipient = r AND digest = p_digest AND until > now();
    END IF;
    IF same IS NOT NULL THEN
      ids := ids || same;
      CONTINUE;
    END IF;
    INSERT INTO mailboxes (cloud_id, recipient, messages, bytes) VALUES (p_cloud, r, 1, p_size)
      ON CONFLICT (cloud_id, recipient) DO UPDATE SET messages = mailboxes.messages + 1, bytes = mailboxes.bytes + p_size;
    INSERT INTO senders (cloud_id, recipient, source, messages, bytes) VALUES (p_cloud, r, p_source, 1, p_size)
      ON CONFLICT (cloud_id, recipient, source) DO UPDATE SET messages = senders.messages + 1, bytes = senders.bytes + p_size;
    INSERT INTO messages (cloud_id, recipient, received, envelope, size, source, digest) VALUES (p_cloud, r, p_received, p_envelope, p_size, p_source, p_digest)
      RETURNING id INTO same;
    ids := ids || same;
    PERFORM pg_notify('${MAIL_CHANNEL}', r);
  END LOOP;
END $$;

-- Several deliveries in one statement (one round trip, one transaction), one after the other in
-- array order (each sees the ones before it: its quota counts them, an identical envelope is
-- stored once). A target is '*' (every key the cloud agent routes to, read here) or keys
-- comma-joined (multibase keys have no commas); with a guests_since, a key not routed must be a
-- guest allowed since then and never removed. Every recipient's lock is taken (in lock order)
-- before any delivery: a route removed after it was read here is found removed under its lock.
-- One row per delivery, in order: its ids (NULL for a recipient removed) and recipients, why its
-- quota refused it, or why it has no recipient (missing).
CREATE FUNCTION dkms_deliver_all(p_clouds TEXT[], p_targets TEXT[], p_guests_since TEXT[], p_envelopes BYTEA[], p_received TEXT[], p_sources TEXT[], p_digests BYTEA[],
    max_messages INTEGER, max_bytes BIGINT, max_guest INTEGER, max_source_messages INTEGER, max_source_bytes BIGINT)
    RETURNS TABLE (ids BIGINT[], recipients TEXT, refused TEXT, missing TEXT) LANGUAGE plpgsql AS $$
DECLARE i INTEGER; n INTEGER := coalesce(cardinality(p_clouds), 0); chosen TEXT[]; why TEXT[]; keys TEXT[]; r TEXT;
BEGIN
  chosen := array_fill(NULL::TEXT, ARRAY[n]);
  why := array_fill(NULL::TEXT, ARRAY[n]);
  FOR i IN 1 .. n LOOP
    IF p_targets[i] = '*' THEN
      keys := ARRAY(SELECT t.agent_key FROM routes t WHERE t.cloud_id = p_clouds[i] ORDER BY t.agent_key COLLATE "C");
      IF cardinality(keys) = 0 THEN
        why[i] := 'this cloud agent has no edge agent to deliver to';
        CONTINUE;
      END IF;
    ELSE
      keys := string_to_array(p_targets[i], ',');
      IF p_guests_since[i] IS NOT NULL THEN
        FOREACH r IN ARRAY keys LOOP
          IF NOT EXISTS (SELECT 1 FROM routes t WHERE t.cloud_id = p_clouds[i] AND t.agent_key = r)
            AND NOT (EXISTS (SELECT 1 FROM guests g WHERE g.cloud_id = p_clouds[i] AND g.agent_key = r AND g.allowed >= p_guests_since[i])
              AND NOT EXISTS (SELECT 1 FROM removed x WHERE x.cloud_id = p_clouds[i] AND x.agent_key = r)) THEN
            why[i] := format('this cloud agent does not route to ''%s''', r);
            EXIT;
          END IF;
        END LOOP;
        IF why[i] IS NOT NULL THEN CONTINUE; END IF;
      END IF;
    END IF;
    chosen[i] := array_to_string(keys, ',');
  END LOOP;
  PERFORM dkms_lock_recipients(ARRAY(SELECT k FROM unnest(chosen) AS c, unnest(string_to_array(c, ',')) AS k));
  FOR i IN 1 .. n LOOP
    IF chosen[i] IS NULL THEN
      RETURN QUERY SELECT NULL::BIGINT[], NULL::TEXT, NULL::TEXT, why[i];
    ELSE
      RETURN QUERY SELECT d.ids, chosen[i], d.refused, NULL::TEXT FROM dkms_deliver(p_clouds[i], string_to_array(chosen[i], ','), p_envelopes[i], p_received[i], p_sources[i], p_digests[i],
        max_messages, max_bytes, max_guest, max_source_messages, max_source_bytes) AS d;
    END IF;
  END LOOP;
END $$;
`;

/** Deliveries given as parallel arrays (dkms_deliver_all), stored in array order. */
const DELIVER_ALL =
  'SELECT ids, recipients, refused, missing FROM dkms_deliver_all($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::bytea[], $8, $9, $10, $11, $12)';

/**
 * Failures worth a retry: a connection or server that went away (08, 57P), resources (53), a
 * statement cancelled by its timeout (57014), a deadlock or serialization failure (40P01,
 * 40001), a lock not available (55P03).
 */
const UNAVAILABLE_SQLSTATES = /^(08|53|57P|57014$|40P01$|40001$|55P03$)/;
const NODE_NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/** The last cause reported to the operator, so that a database that stays down is reported once, not per request. */
let lastReported = '';

/**
 * A pg failure as the agency reports it: AGENCY_STORE_UNAVAILABLE for one worth a retry,
 * otherwise itself. Clients are told only that; the cause (which may name the database's
 * address) goes to the operator on standard error.
 */
export function storeError(e: unknown): unknown {
  if (e instanceof DkmsError) return e;
  const code = (e as { code?: unknown }).code;
  const message = e instanceof Error ? e.message : String(e);
  const lost = typeof code === 'string' ? UNAVAILABLE_SQLSTATES.test(code) || NODE_NETWORK_ERRORS.has(code) : /connection|timeout|terminat/i.test(message);
  if (!lost) return e;
  const cause = `${typeof code === 'string' ? `${code} ` : ''}${message.split('\n')[0] ?? ''}`;
  if (cause !== lastReported) {
    lastReported = cause;
    process.stderr.write(`dkms agency: the database is unavailable: ${cause}\n`);
  }
  return new DkmsError('AGENCY_STORE_UNAVAILABLE', "the agency's database is unavailable: retry in a few seconds");
}

/** The advisory lock number of a name: 64 bits of its SHA-256, as PostgreSQL's signed bigint (decimal). */
function lockOf(name: string): bigint {
  return BigInt.asIntN(64, BigInt(`0x${toHex(sha256(utf8(name)).subarray(0, 8))}`));
}

const cloudLock = (cloudId: string) => lockOf(`cloud\0${cloudId}`);
const locatorLock = (locator: string) => lockOf(`locator\0${locator}`);

type CloudRow = { id: string; policy: string; key: string; kx: string; created: string; sealed: Buffer | null };
const cloudRecord = (row: CloudRow): CloudAgentRecord => ({
  id: row.id,
  policy: row.policy,
  key: row.key,
  kx: row.kx,
  created: row.created,
  ...(row.sealed === null ? {} : { sealed: new Uint8Array(row.sealed) }),
});

type BackupRow = { locator: string; cloud_id: string; version: number; agent: string; created: string; size: number };
const backupRecord = (row: BackupRow): BackupRecord => ({
  locator: row.locator,
  cloudId: row.cloud_id,
  version: row.version,
  agent: row.agent,
  created: row.created,
  size: Number(row.size),
});
const BACKUP_COLUMNS = 'locator, cloud_id, version, agent, created, octet_length(data) AS size';

export interface PgAgencyStoreOptions {
  /** Names the agency key the cloud agents' keys are sealed under (cloud-keys.ts agencyKeyId): the first process records it, the others must match. */
  readonly agencyKeyId: string;
  /** Connections per process (default 10). */
  readonly poolSize?: number;
  /** How long a query may take before the store reports itself unavailable (default 15 s). */
  readonly queryTimeoutMs?: number;
}

/**
 * Nonces are forgotten this long after the time they were signed at: well past the clock window
 * (5 minutes behind, 1 ahead), with room for agencies whose clocks differ by minutes.
 */
const NONCE_KEEP_MS = 15 * 60_000;
const NONCE_SWEEP_MS = 30_000;
const LISTEN_RETRY_MS = 1000;
/** How long close() lets queries in flight finish and the server say goodbye. */
const CLOSE_MS = 5000;

interface PendingNonce {
  readonly key: string;
  readonly nonce: string;
  readonly at: number;
  resolve(taken: boolean): void;
  reject(e: unknown): void;
}

export class PgAgencyStore implements AgencyStore {
  readonly #pool: pg.Pool;
  readonly #url: string;
  readonly #listeners: ((agentKey: string | undefined) => void)[] = [];
  #listener: pg.Client | undefined;
  #listenRetry: NodeJS.Timeout | undefined;
  readonly #sweep: NodeJS.Timeout;
  #pendingNonces: PendingNonce[] = [];
  #nonceFlush: Promise<void> | undefined;
  #closed = false;
  readonly nonces: NonceStore;

  private constructor(url: string, pool: pg.Pool) {
    this.#url = url;
    this.#pool = pool;
    this.nonces = { take: (key, nonce, at) => this.#takeNonce(key, nonce, at) };
    this.#sweep = setInterval(() => {
      void this.#query('DELETE FROM nonces WHERE at < $1', [Date.now() - NONCE_KEEP_MS]).catch(() => undefined);
      // The listening connection answers, or is replaced: one dropped silently (a NAT) would miss every wake-up.
      const listener = this.#listener;
      listener?.query('SELECT 1').catch(() => this.#dropListener(listener));
    }, NONCE_SWEEP_MS);
    this.#sweep.unref();
  }

  /**
   * Connects to `url` (postgres://…), creates the schema on first use, and checks that the
   * cloud agents' keys there are sealed under the same agency key as this process's.
   */
  static async open(url: string, options: PgAgencyStoreOptions): Promise<PgAgencyStore> {
    const queryTimeoutMs = options.queryTimeoutMs ?? 15_000;
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 10_000,
      query_timeout: queryTimeoutMs,
      statement_timeout: queryTimeoutMs,
      // A host that vanishes mid-transaction must not hold its recipients' locks for hours.
      idle_in_transaction_session_timeout: queryTimeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      allowExitOnIdle: true,
    });
    // An idle connection that the server closes (a restart) must not end the process.
    pool.on('error', () => undefined);
    const store = new PgAgencyStore(url, pool);
    try {
      await store.#prepare(options.agencyKeyId);
      await store.#listen();
    } catch (e) {
      await store.close();
      throw storeError(e);
    }
    return store;
  }

  async #prepare(keyId: string): Promise<void> {
    await this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
      const exists = await c.query<{ t: string | null }>("SELECT to_regclass('dkms_meta')::text AS t");
      if (exists.rows[0]?.t === null || exists.rows[0]?.t === undefined) {
        await c.query(SCHEMA);
        await c.query("INSERT INTO dkms_meta (name, value) VALUES ('schema', $1), ('agency-key-id', $2)", [String(SCHEMA_VERSION), keyId]);
        return;
      }
      const meta = new Map((await c.query<{ name: string; value: string }>('SELECT name, value FROM dkms_meta')).rows.map((r) => [r.name, r.value]));
      const version = Number(meta.get('schema'));
      if (version !== SCHEMA_VERSION) {
        throw new DkmsError(
          'AGENCY_STORE_DAMAGED',
          `the agency database has schema version ${meta.get('schema') ?? '(none)'}; this dkms knows version ${SCHEMA_VERSION}`,
        );
      }
      if (meta.get('agency-key-id') !== keyId) {
        throw new DkmsError(
          'AGENCY_KEY_MISMATCH',
          'this agency database belongs to agencies with another agency key: give every agency on one database the same agency key file',
        );
      }
    });
  }

  /** A dedicated connection LISTENing for mail stored by any process; reconnects after a loss, and then wakes every long poll (a notification may have been missed). */
  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 5000, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    const lost = () => this.#dropListener(client);
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', (n) => {
      if (n.channel === MAIL_CHANNEL && n.payload !== undefined) for (const listener of this.#listeners) listener(n.payload);
    });
    await client.connect();
    try {
      await client.query(`LISTEN ${MAIL_CHANNEL}`);
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    if (this.#closed) {
      await client.end();
      return;
    }
    this.#listener = client;
  }

  /** The listening connection `client` failed: it goes, and another is made. */
  #dropListener(client: pg.Client): void {
    if (this.#listener !== client) return;
    this.#listener = undefined;
    void client.end().catch(() => undefined);
    this.#retryListen();
  }

  #retryListen(): void {
    if (this.#closed || this.#listenRetry !== undefined) return;
    this.#listenRetry = setTimeout(() => {
      this.#listenRetry = undefined;
      this.#listen().then(
        () => {
          for (const listener of this.#listeners) listener(undefined);
        },
        () => this.#retryListen(),
      );
    }, LISTEN_RETRY_MS);
    this.#listenRetry.unref();
  }

  onMail(listener: (agentKey: string | undefined) => void): void {
    this.#listeners.push(listener);
  }

  async #query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    if (this.#closed) throw new DkmsError('AGENCY_STORE_UNAVAILABLE', 'the agency store is closed');
    try {
      return await this.#pool.query<R>(text, values);
    } catch (e) {
      throw storeError(e);
    }
  }

  /** `fn` in one transaction on one connection; a connection that failed is discarded, not reused. */
  async #tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new DkmsError('AGENCY_STORE_UNAVAILABLE', 'the agency store is closed');
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw storeError(e);
    }
    let broken: Error | undefined;
    // A checked-out client has no listener of the pool's: a connection reset between two
    // queries would be an unhandled 'error' event, which ends the process.
    const lost = (e: Error) => (broken = e);
    client.on('error', lost);
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (e) {
      const mapped = storeError(e);
      if (mapped instanceof DkmsError && mapped.code === 'AGENCY_STORE_UNAVAILABLE') broken = mapped;
      else await client.query('ROLLBACK').catch((rollback: unknown) => (broken = rollback instanceof Error ? rollback : new Error(String(rollback))));
      throw mapped;
    } finally {
      client.off('error', lost);
      client.release(broken);
    }
  }

  async addCloudAgent(record: CloudAgentRecord): Promise<void> {
    await this.#query('INSERT INTO cloud_agents (id, policy, key, kx, created, sealed) VALUES ($1, $2, $3, $4, $5, $6)', [
      record.id,
      record.policy,
      record.key,
      record.kx,
      record.created,
      record.sealed === undefined ? null : Buffer.from(record.sealed),
    ]);
  }

  async #cloudBy(column: 'id' | 'kx' | 'policy', value: string): Promise<CloudAgentRecord | undefined> {
    const row = (await this.#query<CloudRow>(`SELECT id, policy, key, kx, created, sealed FROM cloud_agents WHERE ${column} = $1`, [value])).rows[0];
    return row === undefined ? undefined : cloudRecord(row);
  }

  cloudAgent(id: string): Promise<CloudAgentRecord | undefined> {
    return this.#cloudBy('id', id);
  }

  cloudAgentByKx(kx: string): Promise<CloudAgentRecord | undefined> {
    return this.#cloudBy('kx', kx);
  }

  cloudAgentOfPolicy(policy: string): Promise<CloudAgentRecord | undefined> {
    return this.#cloudBy('policy', policy);
  }

  async servedPolicies(): Promise<string[]> {
    return (await this.#query<{ policy: string }>('SELECT policy FROM cloud_agents ORDER BY policy')).rows.map((r) => r.policy);
  }

  async #routes(q: pg.PoolClient | pg.Pool, cloudId: string): Promise<Route[]> {
    const rows = (
      await q.query<{ agent_key: string; kx: string | null }>('SELECT agent_key, kx FROM routes WHERE cloud_id = $1 ORDER BY agent_key COLLATE "C"', [cloudId])
    ).rows;
    return rows.map((r) => (r.kx === null ? { agentKey: r.agent_key } : { agentKey: r.agent_key, kx: r.kx }));
  }

  async routes(cloudId: string): Promise<Route[]> {
    try {
      return await this.#routes(this.#pool, cloudId);
    } catch (e) {
      throw storeError(e);
    }
  }

  async isRouted(cloudId: string, agentKey: string): Promise<boolean> {
    return (await this.#query('SELECT 1 FROM routes WHERE cloud_id = $1 AND agent_key = $2', [cloudId, agentKey])).rowCount === 1;
  }

  async hasMailbox(agentKey: string): Promise<boolean> {
    const sql = `SELECT EXISTS (SELECT 1 FROM routes WHERE agent_key = $1) OR EXISTS (SELECT 1 FROM messages WHERE recipient = $1)
      OR EXISTS (SELECT 1 FROM guests WHERE agent_key = $1) AS found`;
    return (await this.#query<{ found: boolean }>(sql, [agentKey])).rows[0]?.found === true;
  }

  allowGuest(cloudId: string, agentKey: string, allowed: string, maxGuests: number): Promise<'allowed' | 'routed' | 'removed'> {
    return this.#tx(async (c) => {
      // Under the lock setRoutes takes: a route removed a moment ago is seen here.
      await c.query('SELECT pg_advisory_xact_lock($1)', [String(cloudLock(cloudId))]);
      if ((await c.query('SELECT 1 FROM routes WHERE cloud_id = $1 AND agent_key = $2', [cloudId, agentKey])).rowCount === 1) return 'routed' as const;
      if ((await c.query('SELECT 1 FROM removed WHERE cloud_id = $1 AND agent_key = $2', [cloudId, agentKey])).rowCount === 1) return 'removed' as const;
      const known = (await c.query('SELECT 1 FROM guests WHERE cloud_id = $1 AND agent_key = $2', [cloudId, agentKey])).rowCount === 1;
      const count = Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM guests WHERE cloud_id = $1', [cloudId])).rows[0]?.n ?? 0);
      if (!known && count >= maxGuests)
        throw new DkmsError('MAILBOX_FULL', `this cloud agent already allows ${maxGuests} guest keys; they expire a day after they were allowed`);
      await c.query(
        'INSERT INTO guests (cloud_id, agent_key, allowed) VALUES ($1, $2, $3) ON CONFLICT (cloud_id, agent_key) DO UPDATE SET allowed = excluded.allowed',
        [cloudId, agentKey, allowed],
      );
      return 'allowed' as const;
    });
  }

  async guestAllowed(cloudId: string, agentKey: string, since: string): Promise<boolean> {
    return (await this.#query('SELECT 1 FROM guests WHERE cloud_id = $1 AND agent_key = $2 AND allowed >= $3', [cloudId, agentKey, since])).rowCount === 1;
  }

  setSponsors(cloudId: string, keys: readonly string[]): Promise<void> {
    return this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [String(cloudLock(cloudId))]);
      await c.query('DELETE FROM sponsors WHERE cloud_id = $1', [cloudId]);
      await c.query('INSERT INTO sponsors (cloud_id, key) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [cloudId, [...keys]]);
    });
  }

  async isSponsor(cloudId: string, key: string): Promise<boolean> {
    return (await this.#query('SELECT 1 FROM sponsors WHERE cloud_id = $1 AND key = $2', [cloudId, key])).rowCount === 1;
  }

  async wasRemoved(cloudId: string, agentKey: string): Promise<boolean> {
    return (await this.#query('SELECT 1 FROM removed WHERE cloud_id = $1 AND agent_key = $2', [cloudId, agentKey])).rowCount === 1;
  }

  setRoutes(cloudId: string, routes: readonly Route[], options: RouteChange = {}): Promise<{ added: string[]; removed: string[] }> {
    return this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [String(cloudLock(cloudId))]);
      if (options.seq !== undefined) {
        // Another process may have applied a later state of the policy already: never go back.
        const applied = Number((await c.query<{ seq: string }>('SELECT routes_seq AS seq FROM cloud_agents WHERE id = $1', [cloudId])).rows[0]?.seq ?? -1);
        if (applied >= options.seq) return { added: [], removed: [] };
        await c.query('UPDATE cloud_agents SET routes_seq = $1 WHERE id = $2', [options.seq, cloudId]);
      }
      const current = new Set((await this.#routes(c, cloudId)).map((r) => r.agentKey));
      const next = new Set(routes.map((r) => r.agentKey));
      const removed = [...current].filter((k) => !next.has(k));
      const formerly = [...new Set(options.removed ?? [])].filter((k) => !next.has(k) && !current.has(k));
      // A removed agent's mail goes with its route, under its lock: no delivery stores a copy for it after.
      await c.query('SELECT dkms_lock_recipients($1::text[])', [[...removed, ...formerly]]);
      if (formerly.length > 0) {
        // Keys the policy named once and never routed here: remembered as removed all the same.
        await c.query('DELETE FROM messages WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, formerly]);
        await c.query('DELETE FROM mailboxes WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, formerly]);
        await c.query('DELETE FROM senders WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, formerly]);
        await c.query('INSERT INTO removed (cloud_id, agent_key) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [cloudId, formerly]);
        await c.query('DELETE FROM guests WHERE cloud_id = $1 AND agent_key = ANY($2)', [cloudId, formerly]);
      }
      if (removed.length > 0) {
        await c.query('DELETE FROM routes WHERE cloud_id = $1 AND agent_key = ANY($2)', [cloudId, removed]);
        await c.query('DELETE FROM messages WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, removed]);
        await c.query('DELETE FROM mailboxes WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, removed]);
        await c.query('DELETE FROM senders WHERE cloud_id = $1 AND recipient = ANY($2)', [cloudId, removed]);
        await c.query('INSERT INTO removed (cloud_id, agent_key) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING', [cloudId, removed]);
      }
      // A routed key needs no guest allowance, and a removed one must not keep one.
      await c.query('DELETE FROM guests WHERE cloud_id = $1 AND agent_key = ANY($2)', [cloudId, [...removed, ...next]]);
      if (routes.length > 0) {
        // One row per key (the last one given wins, as with SQLite).
        const unique = [...new Map(routes.map((r) => [r.agentKey, r])).values()];
        await c.query(
          `INSERT INTO routes (cloud_id, agent_key, kx) SELECT $1, k, x FROM unnest($2::text[], $3::text[]) AS t(k, x)
           ON CONFLICT (cloud_id, agent_key) DO UPDATE SET kx = excluded.kx`,
          [cloudId, unique.map((r) => r.agentKey), unique.map((r) => r.kx ?? null)],
        );
        await c.query('DELETE FROM removed WHERE cloud_id = $1 AND agent_key = ANY($2)', [cloudId, [...next]]);
      }
      return { added: [...next].filter((k) => !current.has(k)), removed };
    });
  }

  async deliver(delivery: Delivery, limits: MailboxLimits): Promise<Delivered> {
    const [result] = await this.deliverMany([delivery], limits);
    if (result instanceof Error) throw result;
    if (result === undefined) throw new DkmsError('INTERNAL', 'a delivery had no result');
    return result;
  }

  async deliverMany(deliveries: readonly Delivery[], limits: MailboxLimits): Promise<(Delivered | Error)[]> {
    if (deliveries.length === 0) return [];
    // Every delivery in one statement, so in one transaction, in order (each call sees the ones before it): one round trip.
    type Row = { ids: (string | null)[] | null; recipients: string | null; refused: string | null; missing: string | null };
    const rows = (
      await this.#query<Row>(DELIVER_ALL, [
        deliveries.map((d) => d.cloudId),
        deliveries.map((d) => (d.recipients === ROUTES ? '*' : d.recipients.join(','))),
        deliveries.map((d) => d.guestsSince ?? null),
        deliveries.map((d) => Buffer.from(d.envelope)),
        deliveries.map((d) => d.received),
        deliveries.map((d) => d.source),
        deliveries.map((d) => Buffer.from(sha256(d.envelope))),
        limits.maxMessages,
        limits.maxBytes,
        limits.maxGuestMessages,
        limits.maxSourceMessages,
        limits.maxSourceBytes,
      ])
    ).rows;
    if (rows.length !== deliveries.length) throw new DkmsError('INTERNAL', `dkms_deliver_all answered ${rows.length} of ${deliveries.length} deliveries`);
    return rows.map((row) => {
      if (row.missing !== null) return new DkmsError('NOT_FOUND', row.missing);
      if (row.refused !== null) return new DkmsError('MAILBOX_FULL', row.refused);
      // A recipient removed meanwhile has no copy (a NULL id).
      const keys = row.recipients === null || row.recipients === '' ? [] : row.recipients.split(',');
      const kept = keys.flatMap((key, i) => (row.ids?.[i] === null || row.ids?.[i] === undefined ? [] : [{ key, id: row.ids[i] }]));
      return { ids: kept.map((k) => k.id), recipients: kept.map((k) => k.key) };
    });
  }

  async pickup(agentKey: string, limit: number): Promise<StoredMessage[]> {
    const rows = (
      await this.#query<{ id: string; received: string; envelope: Buffer }>(
        'SELECT id, received, envelope FROM messages WHERE recipient = $1 ORDER BY id LIMIT $2',
        [agentKey, limit],
      )
    ).rows;
    return rows.map((r) => ({ id: r.id, received: r.received, envelope: new Uint8Array(r.envelope) }));
  }

  ack(agentKey: string, ids: readonly string[]): Promise<number> {
    const numbers = [...new Set(ids)].filter((id) => /^[0-9]{1,18}$/.test(id));
    if (numbers.length === 0) return Promise.resolve(0);
    return this.#tx(async (c) => {
      await c.query('SELECT dkms_lock_recipients($1::text[])', [[agentKey]]);
      return (await c.query<{ n: number }>('SELECT dkms_remove($1, $2::bigint[], false) AS n', [agentKey, numbers])).rows[0]?.n ?? 0;
    });
  }

  async purgeGuests(before: string): Promise<number> {
    const sql = `SELECT m.recipient, array_agg(m.id) AS ids FROM messages m
      WHERE m.received < $1 AND NOT EXISTS (SELECT 1 FROM routes r WHERE r.cloud_id = m.cloud_id AND r.agent_key = m.recipient) GROUP BY m.recipient`;
    const old = (await this.#query<{ recipient: string; ids: string[] }>(sql, [before])).rows;
    await this.#query('DELETE FROM guests WHERE allowed < $1', [before]);
    await this.#query('DELETE FROM delivered WHERE until <= now()');
    let purged = 0;
    // One recipient per transaction, under its lock; a key routed since keeps its mail (dkms_remove checks again).
    for (const { recipient, ids } of old) {
      purged += await this.#tx(async (c) => {
        await c.query('SELECT dkms_lock_recipients($1::text[])', [[recipient]]);
        return (await c.query<{ n: number }>('SELECT dkms_remove($1, $2::bigint[], true) AS n', [recipient, ids])).rows[0]?.n ?? 0;
      });
    }
    return purged;
  }

  // ---- nonces -----------------------------------------------------------------------------

  /** Nonces waiting when one insert is in flight go in the next one together (group commit). */
  #takeNonce(key: string, nonce: string, at: number): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#pendingNonces.push({ key, nonce, at, resolve, reject });
      this.#nonceFlush ??= this.#flushNonces();
    });
  }

  async #flushNonces(): Promise<void> {
    await Promise.resolve();
    while (this.#pendingNonces.length > 0) {
      const batch = this.#pendingNonces;
      this.#pendingNonces = [];
      // The same nonce twice in one batch: only the first can be taken.
      const first = new Map<string, PendingNonce>();
      const repeats: PendingNonce[] = [];
      for (const p of batch) {
        const id = `${p.key}\0${p.nonce}`;
        if (first.has(id)) repeats.push(p);
        else first.set(id, p);
      }
      for (const p of repeats) p.resolve(false);
      const unique = [...first.values()];
      try {
        const taken = await this.#query<{ key: string; nonce: string }>(
          'INSERT INTO nonces (key, nonce, at) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING RETURNING key, nonce',
          [unique.map((p) => p.key), unique.map((p) => p.nonce), unique.map((p) => p.at)],
        );
        const inserted = new Set(taken.rows.map((r) => `${r.key}\0${r.nonce}`));
        for (const p of unique) p.resolve(inserted.has(`${p.key}\0${p.nonce}`));
      } catch (e) {
        for (const p of unique) p.reject(e);
      }
    }
    this.#nonceFlush = undefined;
  }

  // ---- backups ----------------------------------------------------------------------------

  putBackup(backup: NewBackup, limits: BackupLimits): Promise<BackupRecord> {
    const { cloudId, locator, agent, data, created } = backup;
    return this.#tx(async (c) => {
      await c.query('SELECT dkms_lock($1::bigint[])', [[String(cloudLock(cloudId)), String(locatorLock(locator))]]);
      const owners = (await c.query<{ cloud_id: string }>('SELECT DISTINCT cloud_id FROM backups WHERE locator = $1', [locator])).rows;
      if (owners.some((o) => o.cloud_id !== cloudId)) throw new DkmsError('BACKUP_UNAUTHORIZED', 'these backups belong to another owner');
      const latest =
        (await c.query<{ version: number | null }>('SELECT max(version) AS version FROM backups WHERE locator = $1', [locator])).rows[0]?.version ?? 0;
      const version = latest + 1;
      await c.query('INSERT INTO backups (locator, version, cloud_id, agent, created, data) VALUES ($1, $2, $3, $4, $5, $6)', [
        locator,
        version,
        cloudId,
        agent,
        created,
        Buffer.from(data),
      ]);
      await c.query(
        'DELETE FROM backups WHERE locator = $1 AND agent = $2 AND version NOT IN (SELECT version FROM backups WHERE locator = $1 AND agent = $2 ORDER BY version DESC LIMIT $3)',
        [locator, agent, limits.versionsPerAgent],
      );
      // Counted after pruning; a refusal throws, and the transaction leaves nothing behind.
      const usage = (
        await c.query<{ locators: string; bytes: string }>(
          'SELECT count(DISTINCT locator) AS locators, coalesce(sum(octet_length(data)), 0) AS bytes FROM backups WHERE cloud_id = $1',
          [cloudId],
        )
      ).rows[0];
      if (Number(usage?.locators ?? 0) > limits.locators)
        throw new DkmsError('BACKUP_QUOTA', `this owner already keeps backups under ${limits.locators} recovery secrets at this agency`);
      if (Number(usage?.bytes ?? 0) > limits.bytes)
        throw new DkmsError('BACKUP_QUOTA', `this owner's backups would exceed ${limits.bytes} bytes at this agency`);
      return { locator, cloudId, version, agent, created, size: data.length };
    });
  }

  async backups(locator: string): Promise<BackupRecord[]> {
    return (await this.#query<BackupRow>(`SELECT ${BACKUP_COLUMNS} FROM backups WHERE locator = $1 ORDER BY version`, [locator])).rows.map(backupRecord);
  }

  async backupData(locator: string, version?: number): Promise<{ record: BackupRecord; data: Uint8Array } | undefined> {
    const columns = `${BACKUP_COLUMNS}, data`;
    const result =
      version === undefined
        ? await this.#query<BackupRow & { data: Buffer }>(`SELECT ${columns} FROM backups WHERE locator = $1 ORDER BY version DESC LIMIT 1`, [locator])
        : await this.#query<BackupRow & { data: Buffer }>(`SELECT ${columns} FROM backups WHERE locator = $1 AND version = $2`, [locator, version]);
    const row = result.rows[0];
    return row === undefined ? undefined : { record: backupRecord(row), data: new Uint8Array(row.data) };
  }

  async newestLocator(cloudId: string): Promise<string | undefined> {
    return (await this.#query<{ locator: string }>('SELECT locator FROM backups WHERE cloud_id = $1 ORDER BY created DESC, seq DESC LIMIT 1', [cloudId]))
      .rows[0]?.locator;
  }

  deleteBackups(cloudId: string, locator: string): Promise<number> {
    return this.#tx(async (c) => {
      await c.query('SELECT dkms_lock($1::bigint[])', [[String(cloudLock(cloudId)), String(locatorLock(locator))]]);
      return (await c.query('DELETE FROM backups WHERE locator = $1 AND cloud_id = $2', [locator, cloudId])).rowCount ?? 0;
    });
  }

  /**
   * Ends every connection, in bounded time: queries still running have CLOSE_MS to finish; then,
   * or if the server does not answer the goodbye (a connection gone silent), the sockets are
   * destroyed, so that nothing keeps the process alive.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweep);
    clearTimeout(this.#listenRetry);
    const listener = this.#listener;
    this.#listener = undefined;
    const ended = await settlesWithin(Promise.allSettled([listener?.end(), this.#nonceFlush, this.#pool.end()]), CLOSE_MS);
    if (!ended) {
      // pg gives no public handle on its sockets: reached through the clients it keeps.
      const sockets = [listener, ...((this.#pool as unknown as { _clients?: unknown[] })._clients ?? [])].map(
        (c) => (c as { connection?: { stream?: { destroy(): void } } } | undefined)?.connection?.stream,
      );
      for (const socket of sockets) socket?.destroy();
    }
  }
}
