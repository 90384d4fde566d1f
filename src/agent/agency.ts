/**
 * An agency: it hosts owners' cloud agents. A cloud agent has its own keys (in the agency's
 * wallet), receives forward messages encrypted to its key-agreement key, and keeps what they
 * carry in a durable mailbox per edge agent of its owner until that agent picks it up and
 * acknowledges it. Which edge agents it serves is read from the owner's policy on the ledger,
 * never taken on the word of a request, so a revoked agent loses its mailbox with its grant.
 */
import { decodePublicKey, encodePublicKey, randomBytes, toBase58btc, utf8 } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { FLAGS, hasFlag } from '../policy/flags.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import type { Agent, PolicyRules } from '../policy/types.js';
import type { Wallet } from '../wallet/index.js';
import type { AgencyStore, BackupLimits, BackupRecord, CloudAgentRecord, Delivery, MailboxLimits, Route, StoredMessage } from './agency-store.js';
import { decrypt, didKeyPublicKey, didKeyUrl, parseJwe, parseMessage, readForward } from './didcomm/index.js';

/** Reads a policy's current agents from the ledger, verified. */
export interface PolicyReader {
  agents(policy: string): Promise<readonly Agent[]>;
  /** The policy's recovery commitment, and the recovery keys already revealed. */
  recovery(policy: string): Promise<Pick<PolicyRules, 'recovery' | 'revealed'>>;
}

export interface AgencyOptions {
  readonly store: AgencyStore;
  /** Holds the cloud agents' private keys. */
  readonly wallet: Wallet;
  readonly policies: PolicyReader;
  /** The agency's public base URL, e.g. http://127.0.0.1:8421. */
  readonly baseUrl: string;
  readonly limits?: Partial<MailboxLimits>;
}

/** What an owner's agents need to know about their cloud agent. */
export interface CloudAgentInfo {
  readonly id: string;
  readonly policy: string;
  readonly key: string;
  readonly kx: string;
  /** Where senders post envelopes. */
  readonly endpoint: string;
  /** The key id senders encrypt forwards to (did:key URL of `kx`). */
  readonly routingKey: string;
  /** The `next` that means "every edge agent of this owner". */
  readonly did: string;
}

/** The largest backup an agency stores. */
export const MAX_BACKUP_BYTES = 16 * 1024 * 1024;
/** What it keeps of one owner's backups: versions per agent and locator, locators, bytes in all. */
export const BACKUP_LIMITS: BackupLimits = { versionsPerAgent: 10, locators: 8, bytes: 512 * 1024 * 1024 };

export const DEFAULT_LIMITS: MailboxLimits = { maxMessages: 10_000, maxBytes: 64 * 1024 * 1024, maxGuestMessages: 32 };
/** Mail for keys that never got routed (e.g. a pairing that was not confirmed) is kept this long. */
export const GUEST_TTL_MS = 24 * 3600_000;

const signKeyName = (id: string) => `cloud-${id}-sign`;
const kxKeyName = (id: string) => `cloud-${id}-kx`;

export class Agency {
  readonly #store: AgencyStore;
  readonly #wallet: Wallet;
  readonly #policies: PolicyReader;
  readonly #limits: MailboxLimits;
  /** Where agents reach this agency; set once the server knows its address. */
  baseUrl: string;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #queue: { delivery: Delivery; resolve: (ids: string[]) => void; reject: (e: unknown) => void }[] = [];

  constructor(options: AgencyOptions) {
    this.#store = options.store;
    this.#wallet = options.wallet;
    this.#policies = options.policies;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
  }

  info(record: CloudAgentRecord): CloudAgentInfo {
    const kx = decodePublicKey(record.kx, 'x25519').publicKey;
    return {
      id: record.id,
      policy: record.policy,
      key: record.key,
      kx: record.kx,
      endpoint: `${this.baseUrl}/v1/inbound`,
      routingKey: didKeyUrl('x25519', kx),
      did: `did:key:${record.kx}`,
    };
  }

  async cloudAgent(id: string): Promise<CloudAgentRecord> {
    const record = await this.#store.cloudAgent(id);
    if (record === undefined) throw new DkmsError('CLOUD_AGENT_NOT_FOUND', `no cloud agent '${id.slice(0, 64)}' at this agency`);
    return record;
  }

  /**
   * Provisions a cloud agent for `policy`, asked by `signer`, which must be an ADMIN agent of it.
   * Asking again returns the same cloud agent: one per owner per agency.
   */
  async register(signer: string, policy: string): Promise<CloudAgentInfo> {
    const agents = await this.#policies.agents(policy);
    const asker = agents.find((a) => a.key === signer);
    if (asker === undefined || !hasFlag(asker.flags, FLAGS.ADMIN)) {
      throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an ADMIN agent of the policy may register its cloud agent');
    }
    let record = await this.#store.cloudAgentOfPolicy(policy);
    if (record === undefined) {
      const id = toBase58btc(randomBytes(16));
      const sign = this.#wallet.createKey(signKeyName(id), 'ed25519');
      const kx = this.#wallet.createKey(kxKeyName(id), 'x25519');
      const created = { id, policy, key: sign.publicKey, kx: kx.publicKey, created: new Date().toISOString() };
      try {
        await this.#store.addCloudAgent(created);
        record = created;
      } catch (e) {
        // A concurrent first registration of the same policy won: use its cloud agent.
        this.#wallet.deleteKey(signKeyName(id));
        this.#wallet.deleteKey(kxKeyName(id));
        record = await this.#store.cloudAgentOfPolicy(policy);
        if (record === undefined) throw e;
      }
    }
    await this.#store.setRoutes(record.id, routesFrom(agents, record));
    return this.info(record);
  }

  /** Re-reads the owner's policy and routes to exactly its current agents. */
  async sync(signer: string, id: string): Promise<{ routes: Route[]; added: string[]; removed: string[] }> {
    const record = await this.cloudAgent(id);
    const agents = await this.#policies.agents(record.policy);
    if (!agents.some((a) => a.key === signer)) throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an agent of the owner\'s policy may update its cloud agent');
    const routes = routesFrom(agents, record);
    const change = await this.#store.setRoutes(record.id, routes);
    return { routes, ...change };
  }

  /**
   * Accepts a forward message for one of our cloud agents and stores its payload for the edge
   * agent(s) it names. Resolves only once the copies are durable.
   */
  async inbound(body: unknown): Promise<{ ids: string[] }> {
    const jwe = parseJwe(body);
    const record = await this.#recipientCloudAgent(jwe.recipients.map((r) => r.header?.['kid']));
    const kxName = kxKeyName(record.id);
    const publicKey = decodePublicKey(record.kx, 'x25519').publicKey;
    // The public key is the record's: only the agreement itself goes to the wallet.
    const opened = decrypt(jwe, [{ kid: didKeyUrl('x25519', publicKey), publicKey, agree: (peer) => this.#wallet.agree(kxName, peer) }]);
    const message = parseMessage(opened.plaintext);
    const { next, payload } = readForward(message);
    if (message.expires_time !== undefined && message.expires_time * 1000 < Date.now()) throw new DkmsError('MESSAGE_EXPIRED', 'the forward message has expired');
    const recipients = await this.#recipients(record, next);
    const ids = await this.#deliver({ cloudId: record.id, recipients, envelope: utf8(JSON.stringify(payload)), received: new Date().toISOString() });
    for (const recipient of recipients) this.#wake(recipient);
    return { ids };
  }

  /**
   * Group commit: deliveries that arrive while one is being prepared are committed together in
   * one transaction; each caller still hears only once its own copies are durable.
   */
  #deliver(delivery: Delivery): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ delivery, resolve, reject });
      if (this.#queue.length === 1) setImmediate(() => void this.#flush());
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0);
    try {
      const results = await this.#store.deliverMany(batch.map((b) => b.delivery), this.#limits);
      results.forEach((result, i) => (result instanceof Error ? batch[i]?.reject(result) : batch[i]?.resolve(result)));
    } catch (e) {
      for (const b of batch) b.reject(e);
    }
  }

  async #recipientCloudAgent(kids: readonly unknown[]): Promise<CloudAgentRecord> {
    for (const kid of kids) {
      if (typeof kid !== 'string') continue;
      const publicKey = didKeyPublicKey(kid, 'x25519');
      if (publicKey === undefined) continue;
      const record = await this.#store.cloudAgentByKx(encodePublicKey('x25519', publicKey));
      if (record !== undefined) return record;
    }
    throw new DkmsError('ENVELOPE_NOT_FOR_US', 'the message is not encrypted to any cloud agent of this agency');
  }

  async #recipients(record: CloudAgentRecord, next: string): Promise<string[]> {
    if (next === `did:key:${record.kx}` || next === record.policy) {
      const routes = await this.#store.routes(record.id);
      if (routes.length === 0) throw new DkmsError('NOT_FOUND', 'this cloud agent has no edge agent to deliver to');
      return routes.map((r) => r.agentKey);
    }
    const key = next.startsWith('did:key:z6Mk') ? next.slice('did:key:'.length) : undefined;
    if (key !== undefined) {
      try {
        decodePublicKey(key, 'ed25519');
      } catch {
        throw new DkmsError('MESSAGE_MALFORMED', 'forward next is not a valid did:key');
      }
      // Routed agents get their mail; a key not (yet) routed gets a small guest mailbox (a device
      // being paired), unless this cloud agent stopped routing to it (a revoked agent).
      if (await this.#store.isRouted(record.id, key)) return [key];
      if (!(await this.#store.wasRemoved(record.id, key))) return [key];
    }
    throw new DkmsError('NOT_FOUND', `this cloud agent does not route to '${next.slice(0, 100)}'`);
  }

  // ---- backups ----------------------------------------------------------------------------

  /**
   * Stores a new backup version for the owner of cloud agent `id`, sent by one of its ADMIN
   * agents. Versions are kept per agent, so one device (a stolen one, say) cannot push another's
   * backups out.
   */
  async putBackup(signer: string, id: string, locator: string, data: Uint8Array): Promise<BackupRecord> {
    const record = await this.cloudAgent(id);
    const agents = await this.#policies.agents(record.policy);
    const agent = agents.find((a) => a.key === signer);
    if (agent === undefined || !hasFlag(agent.flags, FLAGS.ADMIN)) throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an ADMIN agent of the owner\'s policy may store its backups');
    if (data.length > MAX_BACKUP_BYTES) throw new DkmsError('BAD_INPUT', `a backup may be at most ${MAX_BACKUP_BYTES} bytes`);
    return this.#store.putBackup({ cloudId: record.id, locator, agent: signer, data, created: new Date().toISOString() }, BACKUP_LIMITS);
  }

  /**
   * Deletes every backup under `locator` once the owner moved to a new recovery secret: only on
   * a request signed by one of the policy's recovery keys (committed or already revealed), which
   * no device holds, so a stolen device cannot take the owner's backups away; and never the
   * locator that holds the newest backup.
   */
  async deleteBackups(signer: string, id: string, locator: string): Promise<number> {
    const record = await this.cloudAgent(id);
    const { recovery, revealed } = await this.#policies.recovery(record.policy);
    const digest = recoveryKeyDigest(signer);
    if (!recovery.digests.includes(digest) && !revealed.includes(digest)) {
      throw new DkmsError('BACKUP_UNAUTHORIZED', 'only a recovery key of the owner\'s policy may delete its backups');
    }
    // A spent key (an old paper, rotated-out trustees) must not reach the current backups.
    if ((await this.#store.newestLocator(record.id)) === locator) throw new DkmsError('BACKUP_UNAUTHORIZED', 'the owner\'s newest backups cannot be deleted');
    return this.#store.deleteBackups(record.id, locator);
  }

  /**
   * Whose backups `locator` names and which versions exist: the first step of a restore, before
   * the new device knows which recovery key the policy commits to. Reveals only the policy
   * address (public anyway) to whoever knows the locator, which is derived from R.
   */
  async backupIndex(locator: string): Promise<{ policy: string; cloud: CloudAgentInfo; versions: BackupRecord[] }> {
    const versions = await this.#store.backups(locator);
    const first = versions[0];
    if (first === undefined) throw new DkmsError('BACKUP_NOT_FOUND', 'this agency holds no backup for that recovery secret');
    const record = await this.cloudAgent(first.cloudId);
    return { policy: record.policy, cloud: this.info(record), versions };
  }

  /** A backup's bytes, for a request signed by a recovery key the owner's policy commits to. */
  async getBackup(signer: string, locator: string, version?: number): Promise<{ record: BackupRecord; data: Uint8Array }> {
    const { policy } = await this.backupIndex(locator);
    const { recovery } = await this.#policies.recovery(policy);
    if (!recovery.digests.includes(recoveryKeyDigest(signer))) {
      throw new DkmsError('BACKUP_UNAUTHORIZED', 'backups are released only to a recovery key the owner\'s policy commits to');
    }
    const found = await this.#store.backupData(locator, version);
    if (found === undefined) throw new DkmsError('BACKUP_NOT_FOUND', `no backup version ${String(version)} for that recovery secret`);
    return found;
  }

  /** Waiting messages for `agentKey`; with `waitMs`, waits that long for the first one to arrive. */
  async pickup(agentKey: string, limit: number, waitMs = 0, signal?: AbortSignal): Promise<StoredMessage[]> {
    const found = await this.#store.pickup(agentKey, limit);
    if (found.length > 0 || waitMs <= 0) return found;
    await this.#waitFor(agentKey, waitMs, signal);
    return this.#store.pickup(agentKey, limit);
  }

  ack(agentKey: string, ids: readonly string[]): Promise<number> {
    return this.#store.ack(agentKey, ids);
  }

  purgeGuests(now = Date.now()): Promise<number> {
    return this.#store.purgeGuests(new Date(now - GUEST_TTL_MS).toISOString());
  }

  #waitFor(agentKey: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(agentKey) ?? new Set();
      this.#waiters.set(agentKey, waiters);
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        waiters.delete(done);
        if (waiters.size === 0) this.#waiters.delete(agentKey);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done);
      waiters.add(done);
    });
  }

  #wake(agentKey: string): void {
    for (const done of [...(this.#waiters.get(agentKey) ?? [])]) done();
  }

  /** Releases every long poll (before shutting down). */
  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.#wake(key);
  }
}

function routesFrom(agents: readonly Agent[], record: CloudAgentRecord): Route[] {
  return agents.filter((a) => a.key !== record.key).map((a) => (a.kx === undefined ? { agentKey: a.key } : { agentKey: a.key, kx: a.kx }));
}
