/**
 * What an agency keeps: the cloud agents it hosts, which edge agents each one routes to, and a
 * durable mailbox per edge agent. An interface, so the agency's logic never names its backend;
 * sqlite-agency-store.ts is the embedded one (one process), pg-agency-store.ts the shared one
 * (several agency processes on one PostgreSQL database).
 */

export interface CloudAgentRecord {
  readonly id: string;
  /** The owner's policy address on the ledger. */
  readonly policy: string;
  /** The cloud agent's Ed25519 key, multibase. */
  readonly key: string;
  /** The cloud agent's X25519 key-agreement key, multibase: senders encrypt forwards to it. */
  readonly kx: string;
  readonly created: string;
  /** The cloud agent's private keys sealed under the agency key, where the store keeps them (cloud-keys.ts). */
  readonly sealed?: Uint8Array;
}

/** An edge agent a cloud agent delivers to, by its Ed25519 key (which signs its pickups). */
export interface Route {
  readonly agentKey: string;
  readonly kx?: string;
}

export interface StoredMessage {
  readonly id: string;
  readonly received: string;
  /** The envelope as the sender encrypted it (JSON bytes); the agency cannot read it. */
  readonly envelope: Uint8Array;
}

export interface MailboxLimits {
  /** Messages waiting for one routed agent. */
  readonly maxMessages: number;
  readonly maxBytes: number;
  /** Messages waiting for a key that is not (yet) routed, e.g. an agent being paired. */
  readonly maxGuestMessages: number;
  /**
   * What one sender (a client address) may have waiting in one mailbox: a share of it, so that
   * a stranger flooding a mailbox with junk fills only that share, and mail from others still
   * gets in.
   */
  readonly maxSourceMessages: number;
  readonly maxSourceBytes: number;
}

/** How long an acknowledged envelope is remembered (by digest), so that a sender's retry is not delivered twice. */
export const DELIVERED_MEMORY_MS = 15 * 60_000;

/** An agency's mailbox limits unless configured (`dkms agency serve --mailbox-messages …`). */
export const DEFAULT_LIMITS: MailboxLimits = {
  maxMessages: 10_000,
  maxBytes: 64 * 1024 * 1024,
  maxGuestMessages: 32,
  // An eighth of a mailbox per sender address: eight addresses to fill one.
  maxSourceMessages: 1_250,
  maxSourceBytes: 8 * 1024 * 1024,
};

export interface Delivery {
  /** The cloud agent delivering: mail is kept, counted and removed per cloud agent. */
  readonly cloudId: string;
  /**
   * Who gets a copy: the keys given, or (ROUTES) every key the cloud agent routes to when the
   * copies are stored, chosen in the same transaction (NOT_FOUND if it routes to none).
   */
  readonly recipients: readonly string[] | typeof ROUTES;
  /**
   * With keys given: a key the cloud agent does not route to gets a copy only if the cloud agent
   * allowed guest mail for it at or after this time (ISO) and never removed it; otherwise the
   * delivery is refused (NOT_FOUND). Without it, every key given that was not removed does.
   */
  readonly guestsSince?: string;
  readonly envelope: Uint8Array;
  readonly received: string;
  /** Who posted it: the client address, counted against maxSourceMessages and maxSourceBytes. */
  readonly source: string;
}

/** Delivery.recipients: every key the cloud agent routes to. */
export const ROUTES = 'routes';

/** What a delivery stored: one id per recipient that has a copy (new, or an identical one kept), and those recipients, in the same order. */
export interface Delivered {
  readonly ids: string[];
  readonly recipients: string[];
}

/** One stored backup version: an owner's wallet export, encrypted to the backup key (opaque here). */
export interface BackupRecord {
  /** Names the owner's backups; derived from the recovery secret, so only its holders know it. */
  readonly locator: string;
  readonly cloudId: string;
  readonly version: number;
  readonly agent: string;
  readonly created: string;
  readonly size: number;
}

export interface NewBackup {
  readonly cloudId: string;
  readonly locator: string;
  /** The agent that stored it. */
  readonly agent: string;
  readonly data: Uint8Array;
  readonly created: string;
}

/** How much of one owner's backups an agency keeps. Past the last two, it refuses rather than evicts. */
export interface BackupLimits {
  readonly versionsPerAgent: number;
  readonly locators: number;
  readonly bytes: number;
}

/** Nonces of admitted requests, shared by the agencies on one store: a request replayed at another of them is refused there too. */
export interface NonceStore {
  /** Records `nonce` of `key`, signed at `at` (ms since the epoch); false if that key used it before. */
  take(key: string, nonce: string, at: number): Promise<boolean>;
}

/** How a route change came about (AgencyStore.setRoutes). */
export interface RouteChange {
  /** The seq of the policy state the routes follow. */
  readonly seq?: number;
  /** Keys the policy named once and no more, routed here or not: remembered as removed, their mail and allowances deleted. */
  readonly removed?: readonly string[];
}

export interface AgencyStore {
  /** Set by stores that several agency processes share; the embedded store leaves nonces to the process. */
  readonly nonces?: NonceStore;
  /**
   * Hears the recipients of mail stored by any process on the same store, to end their long
   * polls here; `undefined` when some may have been missed (a lost connection): end them all.
   */
  onMail?(listener: (agentKey: string | undefined) => void): void;
  addCloudAgent(record: CloudAgentRecord): Promise<void>;
  /** The policies of every cloud agent in the store. */
  servedPolicies(): Promise<string[]>;
  cloudAgent(id: string): Promise<CloudAgentRecord | undefined>;
  cloudAgentByKx(kx: string): Promise<CloudAgentRecord | undefined>;
  cloudAgentOfPolicy(policy: string): Promise<CloudAgentRecord | undefined>;
  /**
   * Replaces a cloud agent's routes. Mail it holds for removed agents is deleted with them, and
   * they are remembered as removed: it takes no more mail for them, not even as guests. Guest
   * allowances of the keys routed and removed go (a routed key needs none). With `seq`, nothing
   * changes if the routes already follow that state of the policy or a later one (processes
   * sharing the store apply what they read in any order).
   */
  setRoutes(cloudId: string, routes: readonly Route[], options?: RouteChange): Promise<{ added: string[]; removed: string[] }>;
  routes(cloudId: string): Promise<Route[]>;
  /** Whether `cloudId` routes to `agentKey` (a key may be routed by several owners' cloud agents). */
  isRouted(cloudId: string, agentKey: string): Promise<boolean>;
  /** Whether any cloud agent routes to `agentKey`, keeps mail for it, or allows it as a guest: whether it has a mailbox here. */
  hasMailbox(agentKey: string): Promise<boolean>;
  /** Whether `cloudId` once routed to `agentKey` and stopped. */
  wasRemoved(cloudId: string, agentKey: string): Promise<boolean>;
  /**
   * Lets `cloudId` take guest mail for `agentKey` (a key it does not route: a device being paired
   * or recovered), from `allowed` (ISO time) on, until purgeGuests drops the allowance. Asked
   * again, the time moves on. MAILBOX_FULL past `maxGuests` allowances of that cloud agent.
   * Nothing is stored for a key the cloud agent routes ('routed') or stopped routing ('removed'),
   * decided in the same transaction as the allowance.
   */
  allowGuest(cloudId: string, agentKey: string, allowed: string, maxGuests: number): Promise<'allowed' | 'routed' | 'removed'>;
  /** Whether `cloudId` allowed guest mail for `agentKey` at or after `since` (ISO time). */
  guestAllowed(cloudId: string, agentKey: string, since: string): Promise<boolean>;
  /** Replaces the keys (Ed25519, multibase) that may allow guests at `cloudId` besides the owner's agents: e.g. its trustees' connection keys. */
  setSponsors(cloudId: string, keys: readonly string[]): Promise<void>;
  isSponsor(cloudId: string, key: string): Promise<boolean>;
  /**
   * Stores one copy of the envelope per recipient in one durable transaction, or none: MAILBOX_FULL
   * if any recipient is over its limits, or its sender over its share of one. An envelope
   * identical to one still waiting for a recipient is not stored again: its id is that one's.
   * A recipient the cloud agent stopped routing to (`wasRemoved`) gets no copy, even when
   * routes read a moment before chose it. An envelope identical to one acknowledged in the last
   * DELIVERED_MEMORY_MS (a sender's retry after its answer was lost) is not stored again either:
   * its id is that one's. Returns the ids of the copies, and their recipients, once they are
   * durable; NOT_FOUND if the delivery has no recipient it may have (see Delivery).
   */
  deliver(delivery: Delivery, limits: MailboxLimits): Promise<Delivered>;
  /**
   * Several deliveries in one durable transaction (group commit). Each is stored whole or not
   * at all: its result is what it stored, or the error (MAILBOX_FULL, NOT_FOUND) that refused it alone.
   */
  deliverMany(deliveries: readonly Delivery[], limits: MailboxLimits): Promise<(Delivered | Error)[]>;
  /** The oldest waiting messages for `agentKey`, at most `limit`. */
  pickup(agentKey: string, limit: number): Promise<StoredMessage[]>;
  /** Deletes the given messages of `agentKey`; returns how many existed. */
  ack(agentKey: string, ids: readonly string[]): Promise<number>;
  /**
   * Stores the next version under `backup.locator`, then keeps only the newest
   * `limits.versionsPerAgent` of that agent there. BACKUP_UNAUTHORIZED if the locator belongs to
   * another cloud agent; BACKUP_QUOTA (nothing stored) past the cloud agent's locators or bytes.
   */
  putBackup(backup: NewBackup, limits: BackupLimits): Promise<BackupRecord>;
  /** The versions under `locator`, oldest first. */
  backups(locator: string): Promise<BackupRecord[]>;
  /** One version's bytes (the newest when `version` is undefined). */
  backupData(locator: string, version?: number): Promise<{ record: BackupRecord; data: Uint8Array } | undefined>;
  /** The locator of `cloudId`'s most recently stored backup. */
  newestLocator(cloudId: string): Promise<string | undefined>;
  /** Deletes every version under `locator` of `cloudId`; returns how many went. */
  deleteBackups(cloudId: string, locator: string): Promise<number>;
  /** Deletes guest mail (for keys a cloud agent does not route) received before `before` (ISO time), and guest allowances made before it; returns how many messages went. */
  purgeGuests(before: string): Promise<number>;
  close(): Promise<void>;
}
