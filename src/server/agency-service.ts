/**
 * Running an agency: its store and the cloud agents' wallet in `<home>/agency`, a verifying
 * ledger client to read owners' policies, and the HTTP API. Used by `dkms agency serve` and
 * `dkms up`.
 */
import { join } from 'node:path';
import { Agency } from '../agent/agency.js';
import type { MailboxLimits } from '../agent/agency-store.js';
import { SqliteAgencyStore } from '../agent/sqlite-agency-store.js';
import { DkmsError } from '../errors.js';
import { persistentLedgerClient } from '../ledger/client-state.js';
import type { PolicyAddress } from '../ledger/events.js';
import { openUnattendedWallet } from '../wallet/index.js';
import { buildAgencyServer, type AgencyServerOptions } from './agency-api.js';

export const DEFAULT_AGENCY_PORT = 8421;
const PURGE_INTERVAL_MS = 10 * 60_000;

export interface AgencyServiceOptions extends AgencyServerOptions {
  readonly host?: string;
  readonly port?: number;
  /** The ledger node the agency reads owners' policies from. */
  readonly ledgerUrl: string;
  /** Ledger node keys to trust (default: trust on first use, remembered in the agency's directory). */
  readonly trustedLedgerKeys?: readonly string[];
  /** The base URL agents are told to use, if not the one listened on (behind a proxy). */
  readonly publicUrl?: string;
  readonly limits?: Partial<MailboxLimits>;
}

export interface RunningAgency {
  readonly url: string;
  readonly agency: Agency;
  close(): Promise<void>;
}

export function agencyDir(home: string): string {
  return join(home, 'agency');
}

export async function startAgency(home: string, options: AgencyServiceOptions): Promise<RunningAgency> {
  const dir = agencyDir(home);
  const store = SqliteAgencyStore.open(join(dir, 'agency.db'));
  let wallet;
  try {
    wallet = await openUnattendedWallet(dir, 'agency-wallet', 'AGENCY_STORE_DAMAGED');
  } catch (e) {
    await store.close();
    throw e;
  }
  const ledger = persistentLedgerClient(join(dir, 'ledger-client.json'), options.ledgerUrl, {
    ...(options.trustedLedgerKeys === undefined ? {} : { trustedKeys: options.trustedLedgerKeys }),
  });
  const policies = {
    agents: async (policy: string) => (await ledger.resolvePolicy(policy as PolicyAddress)).record.policy.agents,
    recovery: async (policy: string) => (await ledger.resolvePolicy(policy as PolicyAddress)).record.policy,
  };
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_AGENCY_PORT;
  // Told its public URL once listening (port 0 picks a free one).
  const agency = new Agency({ store, wallet, policies, baseUrl: options.publicUrl ?? `http://${host}:${port}`, ...(options.limits === undefined ? {} : { limits: options.limits }) });
  const app = buildAgencyServer(agency, options);
  let url: string;
  try {
    url = await app.listen({ host, port });
  } catch (e) {
    await store.close();
    wallet.close();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new DkmsError('ADDRESS_IN_USE', `${host}:${port} is already in use (is another agency running? choose another --port)`);
    throw e;
  }
  agency.baseUrl = (options.publicUrl ?? url).replace(/\/+$/, '');
  const running = agency;
  const purge = setInterval(() => void running.purgeGuests().catch(() => undefined), PURGE_INTERVAL_MS);
  purge.unref();
  return {
    url,
    agency: running,
    async close() {
      clearInterval(purge);
      running.wakeAll();
      await app.close();
      await store.close();
      wallet.close();
    },
  };
}
