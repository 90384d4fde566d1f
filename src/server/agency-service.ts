/**
 * Running an agency: its store (embedded SQLite in `<home>/agency`, or a PostgreSQL database
 * several agencies share), the cloud agents' keys, a verifying ledger client to read owners'
 * policies, a follower of those policies on the ledger, and the HTTP API. Used by
 * `dkms agency serve` and `dkms up`.
 */
import { DEFAULT_AGENCY_PORT } from './ports.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Agency, type PolicyReader } from '../agency/agency.js';
import type { AgencyStore, MailboxLimits } from '../agency/agency-store.js';
import { agencyKeyId, SealedCloudKeys, WalletCloudKeys, type CloudKeys } from '../agency/cloud-keys.js';
import { DEFAULT_FOLLOW_INTERVAL_MS, PolicyFollower } from '../agency/policy-follower.js';
import { SqliteAgencyStore } from '../agency/sqlite-agency-store.js';
import { DkmsError } from '../errors.js';
import { persistentLedgerClient } from '../ledger/client-state.js';
import type { PolicyAddress } from '../ledger/events.js';
import { openUnattendedWallet } from '../wallet/unattended.js';
import { openRawKey } from '../wallet/unattended.js';
import { RequestVerifier } from '../agency/request-auth.js';
import { buildAgencyServer, type AgencyServerOptions } from './agency-api.js';
import { CLOSE_GRACE_MS, closeWithin, settlesWithin } from './close.js';

const PURGE_INTERVAL_MS = 10 * 60_000;

export interface AgencyServiceOptions extends AgencyServerOptions {
  readonly host?: string;
  readonly port?: number;
  /** The ledger node the agency reads owners' policies from. */
  readonly ledgerUrl: string;
  /** Ledger node keys to trust (default: trust on first use, remembered in the agency's directory). */
  readonly trustedLedgerKeys?: readonly string[];
  /** The clock the agency judges the ledger's heads by (default Date.now; tests move it). */
  readonly ledgerClock?: () => number;
  /** The base URL agents are told to use, if not the one listened on (behind a proxy). */
  readonly publicUrl?: string;
  readonly limits?: Partial<MailboxLimits>;
  /** How often the agency asks the ledger whether the policies it serves changed (default 1000 ms). */
  readonly followIntervalMs?: number;
  /** Hears every failure to follow the ledger (default: standard error, each kind of failure once in a row). */
  readonly onFollowError?: (error: DkmsError, policy?: string) => void;
  /**
   * A PostgreSQL URL (postgres://…) to keep everything in a database that several agencies
   * share (default: embedded SQLite in the data directory, one agency).
   */
  readonly store?: string;
  /**
   * With a PostgreSQL store: the file holding the agency key that seals the cloud agents' keys
   * (32 bytes; default `<home>/agency/agency.key`, made on first use). Every agency on one
   * database needs the same one.
   */
  readonly agencyKeyFile?: string;
  /** How long closing lets requests and the round of following in flight finish before giving up on them (default CLOSE_GRACE_MS, 5 s). */
  readonly closeGraceMs?: number;
}

export interface RunningAgency {
  readonly url: string;
  readonly agency: Agency;
  /**
   * Stops following the ledger and serving, and closes the store and the cloud agents' keys:
   * within the close grace (`closeGraceMs`) or so whatever state it is in (requests still waiting on the store then
   * have their connections cut). Rejects only if closing the store failed, and then too has
   * released everything else.
   */
  close(): Promise<void>;
}

export function agencyDir(home: string): string {
  return join(home, 'agency');
}

/** Whether `store` names a PostgreSQL database. */
export const isPostgresUrl = (store: string): boolean => /^postgres(ql)?:\/\//.test(store);

/** The agency's store and the keys of its cloud agents: SQLite and the agency's wallet, or PostgreSQL and keys sealed under the agency key. */
async function openStore(dir: string, options: AgencyServiceOptions): Promise<{ store: AgencyStore; keys: CloudKeys }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (options.store !== undefined) {
    if (!isPostgresUrl(options.store)) throw new DkmsError('BAD_INPUT', 'the agency store must be a postgres:// URL (or left out for embedded storage)');
    const agencyKey = openRawKey(options.agencyKeyFile ?? join(dir, 'agency.key'), 'AGENCY_STORE_DAMAGED');
    // pg is loaded only by agencies that use it.
    const { PgAgencyStore } = await import('../agency/pg-agency-store.js');
    const store = await PgAgencyStore.open(options.store, { agencyKeyId: agencyKeyId(agencyKey) });
    return { store, keys: new SealedCloudKeys(agencyKey) };
  }
  const store = SqliteAgencyStore.open(join(dir, 'agency.db'));
  try {
    return { store, keys: new WalletCloudKeys(await openUnattendedWallet(dir, 'agency-wallet', 'AGENCY_STORE_DAMAGED')) };
  } catch (e) {
    await store.close();
    throw e;
  }
}

export async function startAgency(home: string, options: AgencyServiceOptions): Promise<RunningAgency> {
  const dir = agencyDir(home);
  const { store, keys } = await openStore(dir, options);
  // Closing aborts the ledger requests in flight, so that it never waits for a slow ledger.
  const closing = new AbortController();
  const ledger = persistentLedgerClient(join(dir, 'ledger-client.json'), options.ledgerUrl, {
    ...(options.trustedLedgerKeys === undefined ? {} : { trustedKeys: options.trustedLedgerKeys }),
    ...(options.ledgerClock === undefined ? {} : { now: options.ledgerClock }),
    fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.any([closing.signal, ...(init?.signal ? [init.signal] : [])]) }),
  });
  const policies: PolicyReader = { read: (policy) => ledger.resolvePolicy(policy as PolicyAddress) };
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_AGENCY_PORT;
  // Told its public URL once listening (port 0 picks a free one).
  const agency = new Agency({
    store,
    keys,
    policies,
    baseUrl: options.publicUrl ?? `http://${host}:${port}`,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
  });
  // On a shared store, the nonces of admitted requests are kept there too: a request replayed at another agency is refused.
  const verifier = options.verifier ?? new RequestVerifier(Date.now, store.nonces === undefined ? {} : { shared: store.nonces });
  const app = buildAgencyServer(agency, { ...options, verifier });
  let url: string;
  let follower: PolicyFollower;
  try {
    follower = new PolicyFollower({
      ledger,
      policies: async () => (await agency.servedPolicies()) as PolicyAddress[],
      onChange: (_policy, resolved) => agency.follow(resolved),
      onUnverified: (policy, error) => agency.hold(policy, error),
      onError: options.onFollowError ?? followErrorsToStderr(),
      intervalMs: options.followIntervalMs ?? DEFAULT_FOLLOW_INTERVAL_MS,
    });
    url = await app.listen({ host, port });
  } catch (e) {
    await store.close();
    keys.close();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE')
      throw new DkmsError('ADDRESS_IN_USE', `${host}:${port} is already in use (is another agency running?)`);
    throw e;
  }
  agency.baseUrl = (options.publicUrl ?? url).replace(/\/+$/, '');
  const running = agency;
  const purge = setInterval(() => void running.purgeGuests().catch(() => undefined), PURGE_INTERVAL_MS);
  purge.unref();
  follower.start();
  let closed: Promise<void> | undefined;
  const close = async () => {
    closing.abort();
    clearInterval(purge);
    running.close();
    try {
      // Both within the grace: the round of following in progress (its ledger requests are
      // aborted, but it may wait on the store), and the requests in flight. Long polls end now,
      // and so do any that begin waiting while the server closes.
      const graceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
      await Promise.all([settlesWithin(follower.close(), graceMs), closeWithin(app, graceMs, () => running.wakeAll())]);
    } finally {
      try {
        await store.close();
      } finally {
        keys.close();
      }
    }
  };
  return {
    url,
    agency: running,
    close: () => (closed ??= close()),
  };
}

/** Reports follow failures on standard error: a failure like the one before it (same code and policy) is not repeated. */
function followErrorsToStderr(): (error: DkmsError, policy?: string) => void {
  let last = '';
  return (error, policy) => {
    const kind = `${error.code} ${policy ?? ''}`;
    if (kind === last) return;
    last = kind;
    process.stderr.write(`dkms agency: cannot follow the ledger${policy === undefined ? '' : ` for ${policy}`}: ${error.code}: ${error.message}\n`);
  };
}

export { DEFAULT_AGENCY_PORT };
