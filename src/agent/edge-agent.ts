/**
 * An edge agent: the owner's software on one device. It holds its keys in its wallet, reads
 * the owner's policy from the ledger (verified), talks to its cloud agent at an agency, and
 * exchanges DIDComm messages with the owner's other agents and with connections. Messages are
 * dispatched by type to protocol handlers (pairing, connections, approvals, …); each handler
 * says which senders it accepts.
 */
import { z } from 'zod';
import { decodePublicKey, encodePublicKey } from '../crypto/index.js';
import { DkmsError, isDkmsError, type ErrorCode } from '../errors.js';
import type { LedgerClient } from '../ledger/client.js';
import type { PolicyAddress } from '../ledger/events.js';
import type { PolicyRecord } from '../ledger/state.js';
import { AgencyClient, postEnvelope, type PickedUp } from '../agency/agency-client.js';
import { RecentIds, Turns } from './turns.js';
import {
  AGENT_KX_KEY,
  AGENT_SIGN_KEY,
  AgentStore,
  CATEGORIES,
  type AgentView,
  type AgentWallet,
  type Cloud,
  type KnownAgent,
  type Profile,
} from './agent-store.js';
export type { AgentWallet } from './agent-store.js';
import {
  authcrypt,
  authcryptPerDid,
  decrypt,
  didKeyAgreementKey,
  didKeySigner,
  didKeyUrl,
  messageBytes,
  parseMessage,
  wrapForward,
  type AgreementKey,
  type Message,
  type PublicKeyRef,
  type SigningKey,
} from '../didcomm/index.js';

/** How often a device that has no mailbox at the agency yet asks again. */
const GUEST_POLL_MS = 1000;

/** Who sent a message, as far as decryption proved it. */
/** Whether `envelope` is encrypted only to keys in `keys` (another agent's copy, for this owner's side of a connection). */
function encryptedOnlyTo(envelope: unknown, keys: ReadonlySet<string>): boolean {
  const kids = (envelope as { recipients?: { header?: { kid?: unknown } }[] }).recipients?.map((r) => r.header?.kid);
  if (kids === undefined || kids.length === 0) return false;
  return kids.every((kid) => typeof kid === 'string' && keys.has(kid.split('#')[1] ?? ''));
}

/** What #ownSideKx reads of a connection record: the key-agreement keys its own side's log ever listed. */
const OwnSideSchema = z.looseObject({ myLog: z.array(z.looseObject({ keys: z.array(z.looseObject({ kx: z.string() })) })) });

export interface Sender {
  /** The authcrypt sender's key id (did:key URL of an X25519 key). */
  readonly kid: string;
  /** That key, multibase. */
  readonly kx: string;
  /** The owner's agent it belongs to, when it is one. */
  readonly agent?: KnownAgent;
}

export interface Handled {
  readonly summary: string;
  /** Anything the command that is receiving wants to show or act on. */
  readonly data?: Record<string, unknown>;
}

export interface Handler {
  /** `agent`: only the owner's own agents may send it; `any`: the handler authenticates the sender itself. */
  readonly from: 'agent' | 'any';
  handle(agent: EdgeAgent, message: Message, sender: Sender): Promise<Handled>;
}

export type Handlers = Readonly<Record<string, Handler>>;

export interface ReceiveEntry {
  readonly type: string;
  readonly outcome: 'handled' | 'refused' | 'ignored';
  readonly code?: ErrorCode;
  readonly detail: string;
  readonly data?: Record<string, unknown>;
}

export interface EdgeAgentOptions {
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
  /** Ends the agent's agency requests in flight once aborted (a cancelled command). */
  readonly signal?: AbortSignal;
}

/** Seconds a message may be old before it is refused as stale (and its id forgotten). */
export const MAX_MESSAGE_AGE_SECONDS = 30 * 24 * 3600;
/** How far in the future a message's creation time may be (clocks differ). */
const CLOCK_SKEW_SECONDS = 24 * 3600;
const dayOf = (seconds: number) => Math.floor(seconds / 86_400);

const didOf = (kid: string) => kid.split('#')[0] ?? kid;

/** Handling picked-up mail takes turns per wallet, and an item another agent object handled is not handled again. */
const handling = new Turns();
const handled = new RecentIds(10_000);

export class EdgeAgent {
  /** @internal Its keys and records: the library's protocols reach them; programs use the agent's operations. */
  readonly wallet: AgentWallet;
  /** @internal */
  readonly store: AgentStore;
  /** @internal */
  readonly ledger: LedgerClient;
  readonly options: EdgeAgentOptions;
  #forgotten = false;

  /** An agent over `wallet` (its keys and records), reading and writing the owner's policy through `ledger`. */
  constructor(wallet: AgentWallet, ledger: LedgerClient, options: EdgeAgentOptions = {}) {
    this.wallet = wallet;
    this.store = new AgentStore(wallet);
    this.ledger = ledger;
    this.options = options;
  }

  get profile(): Profile {
    return this.store.profile();
  }

  /** Whether this agent has been set up (`agent init`, pairing or a restore finished writing its profile). */
  hasProfile(): boolean {
    return this.store.hasProfile();
  }

  /** This agent's Ed25519 key (or another it holds), named by its did:key URL: it signs ledger events, DIDComm messages and agency requests. */
  signingKey(name = AGENT_SIGN_KEY): SigningKey {
    return didKeySigner(this.wallet.signer(name));
  }

  /** This agent's X25519 key (or another it holds), named by its did:key URL. */
  agreementKey(name = AGENT_KX_KEY): AgreementKey {
    return didKeyAgreementKey(this.wallet.agreementKey(name));
  }

  cloud(): Cloud {
    const { cloud } = this.profile;
    if (cloud === undefined) throw new DkmsError('NO_CLOUD_AGENT', 'this agent has no cloud agent: register one with `dkms agent register --agency <url>`');
    return cloud;
  }

  agency(cloud: Cloud = this.cloud()): AgencyClient {
    return new AgencyClient(cloud.agency, this.signingKey(), this.#clientOptions());
  }

  #clientOptions() {
    return {
      ...(this.options.fetch === undefined ? {} : { fetch: this.options.fetch }),
      ...(this.options.timeoutMs === undefined ? {} : { timeoutMs: this.options.timeoutMs }),
      ...(this.options.signal === undefined ? {} : { signal: this.options.signal }),
    };
  }

  async policy(): Promise<PolicyRecord> {
    return (await this.ledger.resolvePolicy(this.profile.policy as PolicyAddress)).record;
  }

  /** Re-reads the owner's agents from the ledger (verified, or `record` just read) and keeps the view, labels preserved. */
  async refreshAgents(record?: PolicyRecord): Promise<AgentView> {
    record ??= await this.policy();
    const labels = new Map((this.store.agentView()?.agents ?? []).map((a) => [a.key, a.label]));
    const view: AgentView = {
      policy: record.subject,
      asOf: new Date().toISOString(),
      agents: record.policy.agents.map((a) => {
        const label = labels.get(a.key);
        return { key: a.key, ...(a.kx === undefined ? {} : { kx: a.kx }), flags: a.flags, ...(label === undefined ? {} : { label }) };
      }),
    };
    this.store.saveAgentView(view);
    return view;
  }

  labelAgent(key: string, label: string): void {
    const view = this.store.agentView();
    if (view === undefined) return;
    this.store.saveAgentView({ ...view, agents: view.agents.map((a) => (a.key === key ? { ...a, label } : a)) });
  }

  /** Posts `inner` through a cloud agent: wrapped in a forward to its routing key, for `next`. */
  async #forward(inner: ReturnType<typeof authcrypt>, cloud: { endpoint: string; routingKey: string }, next: string): Promise<void> {
    const routing = decodeRoutingKey(cloud.routingKey);
    await postEnvelope(cloud.endpoint, wrapForward(inner, next, [routing]), this.#clientOptions());
  }

  /**
   * Sends `message` to other agents of the owner (each by its own mailbox), authcrypted from
   * this agent's key-agreement key. Agents without a key-agreement key cannot receive.
   */
  async sendToAgents(message: Message, targets: readonly KnownAgent[]): Promise<number> {
    const cloud = this.cloud();
    const from = this.agreementKey();
    let sent = 0;
    for (const target of targets) {
      if (target.kx === undefined || target.key === this.profile.key) continue;
      const to = recipientRef(target.kx);
      const inner = authcrypt(messageBytes({ ...message, from: didOf(from.kid), to: [didOf(to.kid)] }), from, [to]);
      await this.#forward(inner, cloud, `did:key:${target.key}`);
      sent += 1;
    }
    return sent;
  }

  /** Sends to every other agent of the owner that holds `flag` (or all when 0). */
  async notifyAgents(message: Message, filter: (a: KnownAgent) => boolean = () => true): Promise<number> {
    const view = this.store.agentView() ?? (await this.refreshAgents());
    return this.sendToAgents(
      message,
      view.agents.filter((a) => a.key !== this.profile.key && a.key !== this.profile.cloud?.key && filter(a)),
    );
  }

  /** Sends `message` to a peer's keys through the peer's cloud agent, authcrypted from `from`. */
  async sendToPeer(message: Message, from: AgreementKey, peerKx: readonly string[], endpoint: { uri: string; routingKey: string; did: string }): Promise<void> {
    const to = peerKx.map(recipientRef);
    // One envelope per recipient DID: each peer key is a did:key DID of its own.
    for (const { envelope } of authcryptPerDid(messageBytes({ ...message, from: didOf(from.kid), to: to.map((r) => didOf(r.kid)) }), from, to)) {
      await this.#forward(envelope, { endpoint: endpoint.uri, routingKey: endpoint.routingKey }, endpoint.did);
    }
  }

  /** Sends to a key that is not (yet) an agent of the owner, e.g. a device being paired. */
  async sendToKey(message: Message, from: AgreementKey, to: { key: string; kx: string }, cloud: { endpoint: string; routingKey: string }): Promise<void> {
    const recipient = recipientRef(to.kx);
    const inner = authcrypt(messageBytes({ ...message, from: didOf(from.kid), to: [didOf(recipient.kid)] }), from, [recipient]);
    await this.#forward(inner, cloud, `did:key:${to.key}`);
  }

  /** Every X25519 key this agent holds: its own and its pairwise connection keys. */
  #agreementKeys(): AgreementKey[] {
    return this.wallet.listKeys('x25519').map((k) => this.agreementKey(k.name));
  }

  /**
   * Picks up waiting messages (waiting up to `waitSeconds` for the first), handles each, and
   * acknowledges every one it has dealt with, handled or refused. Refusals are reported with
   * their code; nothing a refused message says is acted on.
   */
  async receive(handlers: Handlers, options: { waitSeconds?: number; limit?: number; agency?: AgencyClient } = {}): Promise<ReceiveEntry[]> {
    const agency = options.agency ?? this.agency();
    const picked = await agency.pickup(options.limit ?? 100, options.waitSeconds ?? 0);
    return handling.run(this.wallet, () => this.#handlePicked(picked, handlers, agency));
  }

  async #handlePicked(picked: readonly PickedUp[], handlers: Handlers, agency: AgencyClient): Promise<ReceiveEntry[]> {
    if (picked.length > 0) this.#forgetOldIds();
    const report: ReceiveEntry[] = [];
    const done: string[] = [];
    // This owner's side of its connections, read once for the batch (again after a message was
    // handled: a handler may have changed the connections).
    let own: Set<string> | undefined;
    for (const item of picked) {
      if (handled.has(this.wallet, item.id)) continue;
      // Keys are listed per message: a handler may have just created one (joining a connection).
      const entry = await this.#handleOne(item.envelope, handlers, this.#agreementKeys());
      // A peer encrypts once per key of this owner's side of a connection, and every copy reaches
      // every agent of the owner: the copies for the other agents are theirs, not worth a report.
      if (entry.outcome === 'handled') own = undefined;
      if (entry.outcome !== 'ignored' || !encryptedOnlyTo(item.envelope, (own ??= this.#ownSideKx()))) report.push(entry);
      done.push(item.id);
      handled.add(this.wallet, item.id);
    }
    await agency.ack(done);
    return report;
  }

  /**
   * `receive` for a device that is nobody's agent yet (being paired or recovered): the agency
   * keeps a mailbox for its key only once mail for it arrived (or the owner routes it), and
   * answers MAILBOX_NOT_FOUND until then. That is "nothing yet": it asks again every second
   * until `waitSeconds` have passed, then returns nothing.
   */
  async receiveAsGuest(handlers: Handlers, options: { waitSeconds: number; agency: AgencyClient }): Promise<ReceiveEntry[]> {
    const deadline = Date.now() + options.waitSeconds * 1000;
    for (;;) {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      try {
        return await this.receive(handlers, { waitSeconds: left, agency: options.agency });
      } catch (e) {
        if (!isDkmsError(e, 'MAILBOX_NOT_FOUND')) throw e;
      }
      if (Date.now() >= deadline) return [];
      await new Promise((resolve) => setTimeout(resolve, Math.min(GUEST_POLL_MS, deadline - Date.now())));
    }
  }

  async #handleOne(envelope: unknown, handlers: Handlers, keys: readonly AgreementKey[]): Promise<ReceiveEntry> {
    let type = 'unknown';
    let seen: Message | undefined;
    try {
      const opened = decrypt(envelope, keys);
      if (opened.senderKid === undefined) throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'messages between agents must be authcrypted');
      const message = parseMessage(opened.plaintext);
      type = message.type;
      if (message.from !== undefined && message.from !== didOf(opened.senderKid))
        throw new DkmsError('MESSAGE_MALFORMED', 'the message `from` does not match the key that encrypted it');
      this.#checkFresh(message);
      const handler = handlers[message.type];
      if (handler === undefined) throw new DkmsError('MESSAGE_MALFORMED', `no handler for message type '${message.type.slice(0, 100)}'`);
      const kx = encodePublicKey('x25519', decodePublicKey(opened.senderKid.split('#')[1] ?? '', 'x25519').publicKey);
      let agent = this.#knownAgent(kx);
      if (agent === undefined && handler.from === 'agent') agent = (await this.refreshAgents()).agents.find((a) => a.kx === kx);
      if (agent === undefined && handler.from === 'agent') throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'the sender is not an agent of this owner');
      const sender: Sender = { kid: opened.senderKid, kx, ...(agent === undefined ? {} : { agent }) };
      seen = message;
      const handled = await handler.handle(this, message, sender);
      this.#remember(message);
      return { type, outcome: 'handled', detail: handled.summary, ...(handled.data === undefined ? {} : { data: handled.data }) };
    } catch (e) {
      if (!isDkmsError(e)) throw e;
      if (e.code === 'ENVELOPE_NOT_FOR_US') return { type, outcome: 'ignored', code: e.code, detail: 'not encrypted to this agent' };
      // Failures of our own infrastructure leave the message waiting, to be handled on a later run.
      if (['WALLET_TAMPERED', 'WALLET_CLOSED', 'IO_ERROR', 'LEDGER_UNREACHABLE', 'AGENCY_UNREACHABLE'].includes(e.code)) throw e;
      if (seen !== undefined) this.#remember(seen);
      return { type, outcome: 'refused', code: e.code, detail: e.message };
    }
  }

  /** The key-agreement keys this owner's side of its connections ever listed (every agent's). */
  #ownSideKx(): Set<string> {
    const own = new Set<string>();
    for (const { value } of this.store.list(CATEGORIES.connection, OwnSideSchema)) {
      for (const event of value.myLog) for (const { kx } of event.keys) own.add(kx);
    }
    return own;
  }

  #knownAgent(kx: string): KnownAgent | undefined {
    return this.store.agentView()?.agents.find((a) => a.kx === kx);
  }

  #checkFresh(message: Message): void {
    const now = Math.floor(Date.now() / 1000);
    if (message.expires_time !== undefined && message.expires_time < now) throw new DkmsError('MESSAGE_EXPIRED', 'the message has expired');
    if (message.created_time === undefined) throw new DkmsError('MESSAGE_MALFORMED', 'the message has no created_time');
    if (message.created_time < now - MAX_MESSAGE_AGE_SECONDS) throw new DkmsError('MESSAGE_EXPIRED', 'the message is too old to be accepted');
    if (message.created_time > now + CLOCK_SKEW_SECONDS) throw new DkmsError('MESSAGE_MALFORMED', 'the message claims to be created in the future');
    if (this.store.has(CATEGORIES.seen, message.id)) throw new DkmsError('MESSAGE_REPLAYED', `message ${message.id} was already received`);
  }

  /** Remembers a message id, filed by the day it was created so old ids can be forgotten. */
  #remember(message: Message): void {
    this.wallet.put(CATEGORIES.seen, message.id, new TextEncoder().encode(String(message.created_time ?? 0)), {
      day: String(dayOf(message.created_time ?? 0)),
    });
  }

  /**
   * Forgets the ids of messages too old to be accepted anyway (once per agent object): the days
   * from a year before the age limit up to it.
   */
  #forgetOldIds(): void {
    if (this.#forgotten) return;
    this.#forgotten = true;
    const limit = dayOf(Math.floor(Date.now() / 1000) - MAX_MESSAGE_AGE_SECONDS) - 1;
    for (let day = limit - 365; day <= limit; day++) {
      for (const item of this.wallet.find({ category: CATEGORIES.seen, tags: { day: String(day) } })) this.wallet.delete(CATEGORIES.seen, item.name);
    }
  }
}

/** An X25519 multibase key as a DIDComm recipient. */
export function recipientRef(kx: string): PublicKeyRef {
  const publicKey = decodePublicKey(kx, 'x25519').publicKey;
  return { kid: didKeyUrl('x25519', publicKey), publicKey };
}

function decodeRoutingKey(kid: string): PublicKeyRef {
  const multibase = kid.split('#')[1];
  if (!kid.startsWith('did:key:') || multibase === undefined) throw new DkmsError('BAD_INPUT', 'a routing key must be an X25519 did:key URL');
  return { kid, publicKey: decodePublicKey(multibase, 'x25519').publicKey };
}
