/**
 * An agency: it hosts owners' cloud agents. A cloud agent has its own keys (cloud-keys.ts),
 * receives forward messages encrypted to its key-agreement key, and keeps what they
 * carry in a durable mailbox per edge agent of its owner until that agent picks it up and
 * acknowledges it. Which edge agents it serves is read from the owner's policy on the ledger,
 * never taken on the word of a request, so a revoked agent loses its mailbox with its grant.
 * Every verified read of a policy (a request's, or the ledger follower's: policy-follower.ts)
 * brings its cloud agent's routes up to that state, so every request goes by the latest one.
 */
import { decodePublicKey, encodePublicKey, randomBytes, toBase58btc, utf8, type MultibaseKey } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { FLAGS, hasFlag } from '../policy/flags.js';
import { recoveryKeyDigest } from '../policy/authority.js';
import type { ResolvedPolicy } from '../ledger/client.js';
import type { PolicyRecord } from '../ledger/state.js';
import type { Agent } from '../policy/types.js';
import {
  DEFAULT_LIMITS,
  ROUTES,
  type AgencyStore,
  type BackupLimits,
  type BackupRecord,
  type CloudAgentRecord,
  type Delivered,
  type Delivery,
  type MailboxLimits,
  type Route,
  type StoredMessage,
} from './agency-store.js';
import { MAX_BACKUP_BYTES, MAX_SPONSORS } from './api-schemas.js';
import type { CloudKeys } from './cloud-keys.js';
import { decrypt, didKeyAgreementKey, didKeyPublicKey, didKeyUrl, parseJwe, parseMessage, readForward } from '../didcomm/index.js';

/**
 * Called once a request's signer is found allowed to make it, before anything is changed: it
 * takes the request's nonce and counts it against the signer's budget (agency-api.ts), and
 * throws to refuse it. What a stranger's request costs is then only the checks that refused it.
 */
export type Admit = () => Promise<void>;

/** A policy read from the ledger and verified: its current state, and every state it had, oldest first. */
export type VerifiedPolicy = Pick<ResolvedPolicy, 'record' | 'policyHistory'>;

/** Reads an owner's policy from the ledger, verified. */
export interface PolicyReader {
  read(policy: string): Promise<VerifiedPolicy>;
}

export interface AgencyOptions {
  readonly store: AgencyStore;
  /** Holds the cloud agents' private keys. */
  readonly keys: CloudKeys;
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

export { MAX_BACKUP_BYTES, MAX_SPONSORS };
/** What it keeps of one owner's backups: versions per agent and locator, locators, bytes in all. */
export const BACKUP_LIMITS: BackupLimits = { versionsPerAgent: 10, locators: 8, bytes: 512 * 1024 * 1024 };

export { DEFAULT_LIMITS };
/** Guest keys one cloud agent may allow at a time (each for GUEST_TTL_MS). */
export const MAX_GUESTS = 64;
/** The most deliveries, and bytes of envelopes, one group commit writes. */
const MAX_BATCH = 256;
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** Cloud agent records kept in memory at most (then all are forgotten and read again). */
const CLOUD_RECORDS = 100_000;
/** Mail for keys that never got routed (e.g. a pairing that was not confirmed) is kept this long. */
export const GUEST_TTL_MS = 24 * 3600_000;

/** How long one read of a policy answers every request of keys the agency does not route. */
const STRANGER_READ_REUSE_MS = 500;
/** New reads of the ledger a second for such requests, all policies together. */
const STRANGER_READS_PER_SECOND = 50;
/** Policies whose shared read is remembered at most (then all are forgotten). */
const STRANGER_READ_ENTRIES = 10_000;
/** How long a stranger's request refused by an older read waits for the ledger follower's next state. */
const STRANGER_WAIT_MS = 2000;
const STRANGER_WAIT_STEP_MS = 100;

interface QueuedDelivery {
  readonly delivery: Delivery;
  resolve(delivered: Delivered): void;
  reject(e: unknown): void;
}

/** A read of a policy shared by requests of keys the agency does not route (Agency.#readFor). */
interface StrangerRead {
  /** When the read began: the state it gives is at least this recent. */
  readonly started: number;
  /** When it ended (while pending, when it began). */
  at: number;
  pending: boolean;
  readonly read: Promise<VerifiedPolicy>;
}

/** Whether a state of a policy names `key`: as an agent, or as a recovery key it commits to or revealed. */
function knows(verified: VerifiedPolicy, key: string): boolean {
  const { agents, recovery, revealed } = verified.record.policy;
  if (agents.some((a) => a.key === key)) return true;
  const digest = recoveryKeyDigest(key);
  return recovery.digests.includes(digest) || revealed.includes(digest);
}

/** Mail held because the ledger proved the owner's policy changed and the change did not verify. */
interface Hold {
  /** The keys the cloud agent routed to when the hold began. */
  readonly keys: ReadonlySet<string>;
  readonly error: DkmsError;
}

export class Agency {
  readonly #store: AgencyStore;
  readonly #keys: CloudKeys;
  readonly #policies: PolicyReader;
  readonly #limits: MailboxLimits;
  /** Where agents reach this agency; set once the server knows its address. */
  baseUrl: string;
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #queue: QueuedDelivery[] = [];
  #flushing = false;
  #closed = false;
  /** Route changes and deliveries, one at a time: no copy is stored by routes older than the last ones set. */
  #lock: Promise<unknown> = Promise.resolve();
  /** The seq of the policy state each cloud agent's routes were last set from, by cloud agent id. */
  readonly #applied = new Map<string, number>();
  readonly #held = new Map<string, Hold>();
  /** Reads of policies made for keys the agency does not route, shared (#readFor). */
  readonly #strangerReads = new Map<string, StrangerRead>();
  #strangerWindow = 0;
  #strangerCount = 0;
  readonly #records = new Map<string, CloudAgentRecord>();
  readonly #byKx = new Map<string, CloudAgentRecord>();

  /**
   * Cloud agents found in the store, by id and by key-agreement key: a record never changes once
   * stored, so every inbound message need not read it again.
   */
  #remember(record: CloudAgentRecord | undefined): CloudAgentRecord | undefined {
    if (record === undefined) return undefined;
    if (this.#records.size >= CLOUD_RECORDS) {
      this.#records.clear();
      this.#byKx.clear();
    }
    this.#records.set(record.id, record);
    this.#byKx.set(record.kx, record);
    return record;
  }

  async #cloudByKx(kx: string): Promise<CloudAgentRecord | undefined> {
    return this.#byKx.get(kx) ?? this.#remember(await this.#store.cloudAgentByKx(kx));
  }

  constructor(options: AgencyOptions) {
    this.#store = options.store;
    this.#keys = options.keys;
    // Mail stored through another agency on the same store ends the long polls waiting here.
    this.#store.onMail?.((agentKey) => (agentKey === undefined ? this.wakeAll() : this.#wake(agentKey)));
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
    const record = this.#records.get(id) ?? this.#remember(await this.#store.cloudAgent(id));
    if (record === undefined) throw new DkmsError('CLOUD_AGENT_NOT_FOUND', `no cloud agent '${id.slice(0, 64)}' at this agency`);
    return record;
  }

  /**
   * Provisions a cloud agent for `policy`, asked by `signer`, which must be an ADMIN agent of it.
   * Asking again returns the same cloud agent: one per owner per agency.
   */
  async register(signer: string, policy: string, admit: Admit): Promise<CloudAgentInfo> {
    const served = await this.#store.cloudAgentOfPolicy(policy);
    const verified = await this.#readFor(policy, signer, served);
    const asker = verified.record.policy.agents.find((a) => a.key === signer);
    if (asker === undefined || !hasFlag(asker.flags, FLAGS.ADMIN)) {
      throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an ADMIN agent of the policy may register its cloud agent');
    }
    await admit();
    let record = served;
    if (record === undefined) {
      const id = toBase58btc(randomBytes(16));
      const keys = this.#keys.create(id);
      const created: CloudAgentRecord = {
        id,
        policy,
        key: keys.key,
        kx: keys.kx,
        created: new Date().toISOString(),
        ...(keys.sealed === undefined ? {} : { sealed: keys.sealed }),
      };
      try {
        await this.#store.addCloudAgent(created);
        record = created;
      } catch (e) {
        // A concurrent first registration of the same policy won (here or at another agency on the same store): use its cloud agent.
        this.#keys.discard(id);
        record = await this.#store.cloudAgentOfPolicy(policy);
        if (record === undefined) throw e;
      }
    }
    await this.#apply(record, verified);
    return this.info(record);
  }

  /**
   * Re-reads the owner's policy and routes to exactly its current agents. The routes follow
   * what was read whoever asked: a revoked agent's own sync ends its routes, then is refused.
   */
  async sync(signer: string, id: string, admit: Admit): Promise<{ routes: Route[]; added: string[]; removed: string[] }> {
    const record = await this.cloudAgent(id);
    const verified = await this.#readFor(record.policy, signer, record);
    // The routes follow the ledger whoever asked: nothing the request itself decides.
    const change = await this.#apply(record, verified);
    if (!verified.record.policy.agents.some((a) => a.key === signer))
      throw new DkmsError('REQUEST_UNAUTHORIZED', "only an agent of the owner's policy may update its cloud agent");
    await admit();
    return { routes: await this.#store.routes(record.id), ...change };
  }

  /**
   * `policy` read from the ledger to decide a request of `signer`. For a key the cloud agent
   * routes to, a fresh read. Any other key is a stranger until the read says otherwise (an
   * agent granted a moment ago, a recovery key, or an attacker's throwaway key), and a
   * stranger's requests must not spend the agency's reads of the ledger, which its owners'
   * agents need: they share one read of each policy at a time, reused for
   * STRANGER_READ_REUSE_MS, and start at most STRANGER_READS_PER_SECOND new ones (RATE_LIMITED
   * beyond). A shared read older than the request that does not know the key (an agent granted
   * since it was read) waits up to STRANGER_WAIT_MS for the ledger follower's next state of the
   * policy, which costs no read: a granted agent is then told apart from a stranger.
   */
  async #readFor(policy: string, signer: string, record: CloudAgentRecord | undefined): Promise<VerifiedPolicy> {
    if (record !== undefined && (await this.#store.isRouted(record.id, signer))) return this.#policies.read(policy);
    const asked = Date.now();
    const { verified, started } = await this.#sharedRead(policy, record);
    if (record === undefined || started >= asked || knows(verified, signer)) return verified;
    for (const deadline = asked + STRANGER_WAIT_MS; Date.now() < deadline;) {
      await new Promise((resolve) => setTimeout(resolve, STRANGER_WAIT_STEP_MS));
      const entry = this.#strangerReads.get(policy);
      if (entry !== undefined && !entry.pending && entry.started >= asked) return entry.read;
    }
    return verified;
  }

  /** The shared read of `policy` for strangers (#readFor): reused while fresh and not older than the routes, else a new one. */
  async #sharedRead(policy: string, record: CloudAgentRecord | undefined): Promise<{ verified: VerifiedPolicy; started: number }> {
    const shared = this.#strangerReads.get(policy);
    if (shared !== undefined && (shared.pending || Date.now() - shared.at < STRANGER_READ_REUSE_MS)) {
      const verified = await shared.read.catch(() => undefined);
      // Never older than a state the routes already follow (a revocation applied since it was read).
      if (verified !== undefined && verified.record.seq >= (record === undefined ? -1 : (this.#applied.get(record.id) ?? -1)))
        return { verified, started: shared.started };
    }
    const now = Date.now();
    if (now - this.#strangerWindow >= 1000) {
      this.#strangerWindow = now;
      this.#strangerCount = 0;
    }
    if (++this.#strangerCount > STRANGER_READS_PER_SECOND)
      throw new DkmsError('RATE_LIMITED', 'the agency is answering many requests from keys it does not route: retry in a few seconds');
    const entry = { started: now, at: now, pending: true, read: this.#policies.read(policy) };
    this.#shareRead(policy, entry);
    entry.read.then(
      () => {
        entry.pending = false;
        entry.at = Date.now();
      },
      () => {
        if (this.#strangerReads.get(policy) === entry) this.#strangerReads.delete(policy);
      },
    );
    return { verified: await entry.read, started: now };
  }

  #shareRead(policy: string, entry: StrangerRead): void {
    if (this.#strangerReads.size >= STRANGER_READ_ENTRIES) this.#strangerReads.clear();
    this.#strangerReads.set(policy, entry);
  }

  // ---- following the ledger (policy-follower.ts) -------------------------------------------

  /**
   * The policies of the cloud agents hosted here: what the agency follows on the ledger. Asked
   * of the store every time, so that a cloud agent registered through another agency on the
   * same store is followed here too.
   */
  servedPolicies(): Promise<string[]> {
    return this.#store.servedPolicies();
  }

  /** Brings a cloud agent's routes up to a state of its policy the ledger follower verified, and ends any hold on its mail. */
  async follow(verified: VerifiedPolicy): Promise<void> {
    const record = await this.#store.cloudAgentOfPolicy(verified.record.subject);
    if (record === undefined) return;
    // The newest state, for the requests of keys not routed yet (#readFor): no read of their own.
    const now = Date.now();
    this.#shareRead(verified.record.subject, { started: now, at: now, pending: false, read: Promise.resolve(verified) });
    await this.#apply(record, verified);
    this.#held.delete(record.id);
  }

  /**
   * Holds the mail of `policy`'s agents: the ledger proved the policy changed, and the change
   * did not verify (`error`), so the routes here may still name an agent it revoked. Until the
   * follower verifies a state (`follow`), pickups by the keys routed now are refused with
   * `error`'s code; mail still arrives and waits.
   */
  async hold(policy: string, error: DkmsError): Promise<void> {
    const record = await this.#store.cloudAgentOfPolicy(policy);
    if (record === undefined) return;
    await this.#exclusive(async () => {
      this.#held.set(record.id, { keys: new Set((await this.#store.routes(record.id)).map((r) => r.agentKey)), error });
    });
  }

  #refuseHeld(agentKey: string): void {
    for (const { keys, error } of this.#held.values()) {
      if (keys.has(agentKey))
        throw new DkmsError(
          error.code,
          `the agency cannot verify the current policy of this agent's owner, and holds the mail until it can (${error.message})`,
        );
    }
  }

  /**
   * Routes a cloud agent to exactly the agents of `verified`, unless its routes already follow
   * that state or a newer one (reads end out of order). Keys the policy named before and names
   * no more are remembered as removed even when they were never routed here (granted and
   * revoked between two reads, or before the cloud agent existed), so they get no guest mail.
   */
  #apply(record: CloudAgentRecord, verified: VerifiedPolicy): Promise<{ added: string[]; removed: string[] }> {
    return this.#exclusive(async () => {
      const { seq } = verified.record;
      if ((this.#applied.get(record.id) ?? -1) >= seq) return { added: [], removed: [] };
      // The store checks the seq again: another agency on a shared store may have applied a later state.
      const change = await this.#store.setRoutes(record.id, routesFrom(verified.record.policy.agents, record), { seq, removed: formerKeys(verified, record) });
      this.#applied.set(record.id, seq);
      // Their long polls end now, with nothing.
      for (const key of change.removed) this.#wake(key);
      return change;
    });
  }

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** The owner's policy as the ledger holds it now, verified, read for `signer` (#readFor); the cloud agent's routes follow it. */
  async #current(record: CloudAgentRecord, signer: string): Promise<PolicyRecord> {
    const verified = await this.#readFor(record.policy, signer, record);
    await this.#apply(record, verified);
    return verified.record;
  }

  // ---- mail -------------------------------------------------------------------------------

  /**
   * Accepts a forward message for one of our cloud agents and stores its payload for the edge
   * agent(s) it names. Resolves only once the copies are durable.
   */
  async inbound(body: unknown, source: string): Promise<{ ids: string[] }> {
    const jwe = parseJwe(body);
    const record = await this.#recipientCloudAgent(jwe.recipients.map((r) => r.header?.['kid']));
    const publicKey = decodePublicKey(record.kx, 'x25519').publicKey;
    // The public key is the record's: only the agreement itself goes to the keys.
    const opened = decrypt(jwe, [didKeyAgreementKey({ publicKey, multikey: record.kx as MultibaseKey, agree: (peer) => this.#keys.agree(record, peer) })]);
    const message = parseMessage(opened.plaintext);
    const { next, payload } = readForward(message);
    if (message.expires_time !== undefined && message.expires_time * 1000 < Date.now())
      throw new DkmsError('MESSAGE_EXPIRED', 'the forward message has expired');
    const { ids, recipients } = await this.#deliver({
      cloudId: record.id,
      ...this.#target(record, next),
      envelope: utf8(JSON.stringify(payload)),
      received: new Date().toISOString(),
      source,
    });
    for (const recipient of recipients) this.#wake(recipient);
    return { ids };
  }

  /**
   * Whom a forward's `next` names at `record`: the cloud agent itself or its owner's policy (every
   * agent it routes to), or an agent's did:key (that agent, or a guest the owner allowed). The
   * store chooses the keys when it stores the copies, after any route change before them.
   */
  #target(record: CloudAgentRecord, next: string): Pick<Delivery, 'recipients' | 'guestsSince'> {
    if (next === `did:key:${record.kx}` || next === record.policy) return { recipients: ROUTES };
    const key = next.startsWith('did:key:z6Mk') ? next.slice('did:key:'.length) : undefined;
    if (key === undefined) throw new DkmsError('NOT_FOUND', `this cloud agent does not route to '${next.slice(0, 100)}'`);
    try {
      decodePublicKey(key, 'ed25519');
    } catch {
      throw new DkmsError('MESSAGE_MALFORMED', 'forward next is not a valid did:key');
    }
    // Routed agents get their mail; a key not (yet) routed gets a small guest mailbox if the
    // owner allowed it (a device being paired or recovered: allowGuest), unless this cloud agent
    // stopped routing to it (a revoked agent).
    return { recipients: [key], guestsSince: new Date(Date.now() - GUEST_TTL_MS).toISOString() };
  }

  /**
   * Group commit: deliveries that arrive while one is being prepared are committed together in
   * one transaction; each caller still hears only once its own copies are durable. Recipients
   * are chosen in the same turn as the commit, after any route change before it, so no copy is
   * stored for an agent whose route was removed first.
   */
  #deliver(delivery: Delivery): Promise<Delivered> {
    if (this.#closed) return Promise.reject(new DkmsError('AGENCY_STORE_UNAVAILABLE', 'the agency is shutting down: send it again in a moment'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ delivery, resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  /**
   * One batch at a time: what arrives while a batch is being stored waits, and goes in the next
   * one together. (A batch per event-loop turn, each waiting for the one before, would stay a
   * message or two long on a store whose commits take a few round trips.)
   */
  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) await this.#flush();
    } finally {
      this.#flushing = false;
    }
  }

  #flush(): Promise<void> {
    // At most MAX_BATCH deliveries and MAX_BATCH_BYTES a transaction: a flood of large envelopes must not make one too big to send or store.
    let bytes = 0;
    let take = 0;
    while (take < this.#queue.length && take < MAX_BATCH && (take === 0 || bytes + (this.#queue[take]?.delivery.envelope.length ?? 0) <= MAX_BATCH_BYTES)) {
      bytes += this.#queue[take]?.delivery.envelope.length ?? 0;
      take += 1;
    }
    const batch = this.#queue.splice(0, take);
    return this.#exclusive(async () => {
      try {
        const results = await this.#store.deliverMany(
          batch.map((q) => q.delivery),
          this.#limits,
        );
        results.forEach((result, i) => {
          const queued = batch[i];
          if (queued === undefined) return;
          if (result instanceof Error) queued.reject(result);
          else queued.resolve(result);
        });
      } catch (e) {
        for (const queued of batch) queued.reject(e);
      }
    });
  }

  async #recipientCloudAgent(kids: readonly unknown[]): Promise<CloudAgentRecord> {
    for (const kid of kids) {
      if (typeof kid !== 'string') continue;
      const publicKey = didKeyPublicKey(kid, 'x25519');
      if (publicKey === undefined) continue;
      const record = await this.#cloudByKx(encodePublicKey('x25519', publicKey));
      if (record !== undefined) return record;
    }
    throw new DkmsError('ENVELOPE_NOT_FOR_US', 'the message is not encrypted to any cloud agent of this agency');
  }

  // ---- guests -----------------------------------------------------------------------------

  /**
   * Lets the cloud agent whose key-agreement key is `cloudKx` take guest mail for `key` for a
   * day: asked by an agent of the owner (an inviter, for the device it pairs) or by a sponsor the
   * owner named (a trustee, for the owner's new device). Nobody else can open a mailbox here.
   */
  async allowGuest(signer: string, cloudKx: string, key: string, admit: Admit): Promise<{ key: string; allowed: string; expires: string }> {
    const record = await this.#cloudByKx(cloudKx);
    if (record === undefined) throw new DkmsError('CLOUD_AGENT_NOT_FOUND', 'no cloud agent with that key-agreement key at this agency');
    if (!(await this.#store.isSponsor(record.id, signer))) {
      const verified = await this.#readFor(record.policy, signer, record);
      await this.#apply(record, verified);
      if (!verified.record.policy.agents.some((a) => a.key === signer)) {
        throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an agent of the owner, or a sponsor it named, may allow a guest at its cloud agent');
      }
    }
    await admit();
    const now = Date.now();
    const allowed = new Date(now).toISOString();
    // A key the cloud agent routes gets its mail anyway (no allowance kept to outlive its route); one it stopped routing gets none.
    if ((await this.#store.allowGuest(record.id, key, allowed, MAX_GUESTS)) === 'removed') {
      throw new DkmsError('REQUEST_UNAUTHORIZED', 'that key was an agent of the owner and was revoked: it cannot be a guest');
    }
    return { key, allowed, expires: new Date(now + GUEST_TTL_MS).toISOString() };
  }

  /**
   * Names the keys besides the owner's agents that may allow guests (its trustees' connection
   * keys); asked by any agent of the owner, as any of them may set up recovery.
   */
  async setSponsors(signer: string, id: string, keys: readonly string[], admit: Admit): Promise<{ sponsors: number }> {
    const record = await this.cloudAgent(id);
    if (!(await this.#current(record, signer)).policy.agents.some((a) => a.key === signer))
      throw new DkmsError('REQUEST_UNAUTHORIZED', 'only an agent of the owner may name its sponsors');
    await admit();
    const unique = [...new Set(keys)];
    await this.#store.setSponsors(record.id, unique);
    return { sponsors: unique.length };
  }

  // ---- backups ----------------------------------------------------------------------------

  /**
   * Stores a new backup version for the owner of cloud agent `id`, sent by one of its ADMIN
   * agents. Versions are kept per agent, so one device (a stolen one, say) cannot push another's
   * backups out.
   */
  async putBackup(signer: string, id: string, locator: string, data: Uint8Array, admit: Admit): Promise<BackupRecord> {
    if (data.length > MAX_BACKUP_BYTES) throw new DkmsError('BAD_INPUT', `a backup may be at most ${MAX_BACKUP_BYTES} bytes`);
    const record = await this.cloudAgent(id);
    const agent = (await this.#current(record, signer)).policy.agents.find((a) => a.key === signer);
    if (agent === undefined || !hasFlag(agent.flags, FLAGS.ADMIN))
      throw new DkmsError('REQUEST_UNAUTHORIZED', "only an ADMIN agent of the owner's policy may store its backups");
    await admit();
    return this.#store.putBackup({ cloudId: record.id, locator, agent: signer, data, created: new Date().toISOString() }, BACKUP_LIMITS);
  }

  /**
   * Deletes every backup under `locator` once the owner moved to a new recovery secret: only on
   * a request signed by one of the policy's recovery keys (committed or already revealed), which
   * no device holds, so a stolen device cannot take the owner's backups away; and never the
   * locator that holds the newest backup.
   */
  async deleteBackups(signer: string, id: string, locator: string, admit: Admit): Promise<number> {
    const record = await this.cloudAgent(id);
    const { recovery, revealed } = (await this.#current(record, signer)).policy;
    const digest = recoveryKeyDigest(signer);
    if (!recovery.digests.includes(digest) && !revealed.includes(digest)) {
      throw new DkmsError('BACKUP_UNAUTHORIZED', "only a recovery key of the owner's policy may delete its backups");
    }
    await admit();
    // A spent key (an old paper, rotated-out trustees) must not reach the current backups.
    if ((await this.#store.newestLocator(record.id)) === locator) throw new DkmsError('BACKUP_UNAUTHORIZED', "the owner's newest backups cannot be deleted");
    return this.#store.deleteBackups(record.id, locator);
  }

  /**
   * Whose backups `locator` names and which versions exist: the first step of a restore, before
   * the new device knows which recovery key the policy commits to. Reveals only the policy
   * address (public anyway) to whoever knows the locator, which is derived from R.
   */
  async backupIndex(locator: string): Promise<{ policy: string; cloud: CloudAgentInfo; versions: BackupRecord[] }> {
    const { record, versions } = await this.#backupOwner(locator);
    return { policy: record.policy, cloud: this.info(record), versions };
  }

  async #backupOwner(locator: string): Promise<{ record: CloudAgentRecord; versions: BackupRecord[] }> {
    const versions = await this.#store.backups(locator);
    const first = versions[0];
    if (first === undefined) throw new DkmsError('BACKUP_NOT_FOUND', 'this agency holds no backup for that recovery secret');
    return { record: await this.cloudAgent(first.cloudId), versions };
  }

  /** A backup's bytes, for a request signed by a recovery key the owner's policy commits to. */
  async getBackup(signer: string, locator: string, version: number | undefined, admit: Admit): Promise<{ record: BackupRecord; data: Uint8Array }> {
    const { record } = await this.#backupOwner(locator);
    const { recovery } = (await this.#current(record, signer)).policy;
    if (!recovery.digests.includes(recoveryKeyDigest(signer))) {
      throw new DkmsError('BACKUP_UNAUTHORIZED', "backups are released only to a recovery key the owner's policy commits to");
    }
    await admit();
    const found = await this.#store.backupData(locator, version);
    if (found === undefined) throw new DkmsError('BACKUP_NOT_FOUND', `no backup version ${String(version)} for that recovery secret`);
    return found;
  }

  /**
   * Waiting messages for `agentKey`; with `waitMs`, waits that long for the first one to arrive.
   * A key no cloud agent routes to has only guest mail, if any: a revoked agent's went with its
   * route. A key with neither has no mailbox here (MAILBOX_NOT_FOUND), and is not admitted.
   */
  async pickup(agentKey: string, limit: number, waitMs: number, admit: Admit, signal?: AbortSignal): Promise<StoredMessage[]> {
    await this.#mailboxOf(agentKey);
    await admit();
    this.#refuseHeld(agentKey);
    const found = await this.#store.pickup(agentKey, limit);
    if (found.length > 0 || waitMs <= 0) return found;
    await this.#waitFor(agentKey, waitMs, signal);
    this.#refuseHeld(agentKey);
    return this.#store.pickup(agentKey, limit);
  }

  async ack(agentKey: string, ids: readonly string[], admit: Admit): Promise<number> {
    await this.#mailboxOf(agentKey);
    await admit();
    return this.#store.ack(agentKey, ids);
  }

  /** MAILBOX_NOT_FOUND unless some cloud agent here routes to `agentKey`, or keeps guest mail for it. */
  async #mailboxOf(agentKey: string): Promise<void> {
    if (!(await this.#store.hasMailbox(agentKey))) {
      throw new DkmsError(
        'MAILBOX_NOT_FOUND',
        'this agency keeps no mailbox for this key: it is not an agent of an owner served here, and no mail waits for it',
      );
    }
  }

  purgeGuests(now = Date.now()): Promise<number> {
    return this.#store.purgeGuests(new Date(now - GUEST_TTL_MS).toISOString());
  }

  #waitFor(agentKey: string, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#closed) return Promise.resolve();
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

  /**
   * Shutting down: long polls end now and any begun later ends at once, and new deliveries are
   * refused (AGENCY_STORE_UNAVAILABLE, 503: the sender tries again, elsewhere or later); the
   * deliveries already queued are still written.
   */
  close(): void {
    this.#closed = true;
    this.wakeAll();
  }

  /** How many long polls wait for mail now. */
  get waiting(): number {
    let n = 0;
    for (const waiters of this.#waiters.values()) n += waiters.size;
    return n;
  }

  /** Releases every long poll (before shutting down). */
  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.#wake(key);
  }
}

function routesFrom(agents: readonly Agent[], record: CloudAgentRecord): Route[] {
  return agents.filter((a) => a.key !== record.key).map((a) => (a.kx === undefined ? { agentKey: a.key } : { agentKey: a.key, kx: a.kx }));
}

/** The keys of agents the policy had in an earlier state and has no more (revoked, or rotated out). */
function formerKeys(verified: VerifiedPolicy, record: CloudAgentRecord): string[] {
  const current = new Set(verified.record.policy.agents.map((a) => a.key));
  const former = new Set<string>();
  for (const state of verified.policyHistory) {
    for (const { key } of state.policy.agents) if (!current.has(key) && key !== record.key) former.add(key);
  }
  return [...former];
}
