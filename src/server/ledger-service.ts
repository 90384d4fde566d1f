/**
 * Running a ledger node: its store and identity in a data directory, its HTTP API on an
 * address. Used by `dkms ledger serve` and `dkms up`.
 */
import { DEFAULT_LEDGER_PORT } from './ports.js';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DkmsError } from '../errors.js';
import { LedgerNode, type NodeOptions } from '../ledger/node.js';
import { openNodeIdentity } from '../ledger/node-key.js';
import { SqliteLogStore } from '../ledger/sqlite-store.js';
import type { LogStore } from '../ledger/store.js';
import { buildLedgerServer, type LedgerServerOptions } from './ledger-api.js';
import { CLOSE_GRACE_MS, closeWithin, remaining } from './close.js';
import type { ConsoleApiOptions } from './console-api.js';
import type { WebAssets } from './web-assets.js';
import type { WebOptions } from './web-routes.js';

/** The dashboard a ledger service serves: its build, and the owner console when it offers one. */
export interface ServedDashboard {
  readonly assets: WebAssets;
  /** The owner console's API (`dkms up` on loopback, with the console built); without it the console is off. */
  readonly console?: ConsoleApiOptions;
}

export interface LedgerServiceOptions extends Omit<LedgerServerOptions, 'web'> {
  /** The web dashboard, served under /ui/ with a config.json naming this node's key and witnesses. */
  readonly web?: ServedDashboard;
  /** Where the log lives: the embedded SQLite file in the data directory (default), or `etcd://host:port,…`. */
  readonly store?: string;
  readonly host?: string;
  readonly port?: number;
  /** Worker threads checking signatures (default: one per core but one, and none on two cores or fewer). */
  readonly verifyThreads?: number;
  /** How often the node signs its head again when idle (default 5 s). */
  readonly headIntervalMs?: number;
  /** Witness keys whose cosignatures the node accepts. */
  readonly witnessKeys?: readonly string[];
  /** How long closing lets requests and the batch in flight finish before giving up on them (default CLOSE_GRACE_MS, 5 s). */
  readonly closeGraceMs?: number;
}

export interface RunningLedger {
  readonly url: string;
  readonly node: LedgerNode;
  /**
   * Stops accepting requests, finishes the batch in flight, and closes the store: within the
   * close grace (`closeGraceMs`) or so whatever state it is in (requests and a batch still waiting on the store
   * then are given up on, see LedgerNode.close). Rejects only if closing the store failed, and
   * then too has released everything else.
   */
  close(): Promise<void>;
}

export function ledgerDir(home: string): string {
  return join(home, 'ledger');
}

/**
 * The log store a URL names: undefined for the embedded SQLite file, `etcd://…` for a cluster.
 * The etcd client (gRPC: about 0.4 s of CPU to load) is loaded only when a cluster is named, so
 * every other command starts without it.
 */
export async function openLogStore(home: string, url?: string): Promise<LogStore> {
  if (url === undefined || url === 'sqlite') return SqliteLogStore.open(join(ledgerDir(home), 'ledger.db'));
  const { EtcdLogStore, parseEtcdUrl } = await import('../ledger/etcd-store.js');
  return new EtcdLogStore({ endpoints: parseEtcdUrl(url) });
}

export async function openLedgerNode(
  home: string,
  verifyThreads = 0,
  storeUrl?: string,
  nodeOptions: NodeOptions = {},
): Promise<{ node: LedgerNode; closeIdentity: () => void }> {
  const dir = ledgerDir(home);
  const store = await openLogStore(home, storeUrl);
  let identity;
  try {
    identity = await openNodeIdentity(dir);
  } catch (e) {
    await store.close();
    throw e;
  }
  try {
    return { node: await LedgerNode.open(store, identity, { ...nodeOptions, verifyThreads }), closeIdentity: () => identity.close() };
  } catch (e) {
    identity.close();
    await store.close();
    throw e;
  }
}

/** What the dashboard serves, its config.json saying what this node is: its key, and the witnesses its heads wait for. */
function webOptions(web: ServedDashboard, nodeKey: string, witnessKeys: readonly string[]): WebOptions {
  return {
    assets: web.assets,
    config: { nodeKey, witnessKeys: [...witnessKeys], quorum: 1 + witnessKeys.length, console: web.console !== undefined },
    ...(web.console === undefined ? {} : { console: web.console }),
  };
}

/**
 * Handing signatures to workers pays only with cores to spare: on two cores the pool was measured
 * slower than checking them on the node's own thread.
 */
function defaultVerifyThreads(): number {
  const cores = availableParallelism();
  return cores > 2 ? cores - 1 : 0;
}

export async function startLedger(home: string, options: LedgerServiceOptions = {}): Promise<RunningLedger> {
  const { node, closeIdentity } = await openLedgerNode(home, options.verifyThreads ?? defaultVerifyThreads(), options.store, {
    ...(options.headIntervalMs === undefined ? {} : { headIntervalMs: options.headIntervalMs }),
    ...(options.witnessKeys === undefined ? {} : { witnessKeys: options.witnessKeys }),
  });
  const { web, ...serverOptions } = options;
  const app = buildLedgerServer(node, { ...serverOptions, ...(web === undefined ? {} : { web: webOptions(web, node.key, options.witnessKeys ?? []) }) });
  let url: string;
  try {
    url = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? DEFAULT_LEDGER_PORT });
  } catch (e) {
    await node.close();
    closeIdentity();
    if ((e as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new DkmsError(
        'ADDRESS_IN_USE',
        `${options.host ?? '127.0.0.1'}:${options.port ?? DEFAULT_LEDGER_PORT} is already in use (is another node running?)`,
      );
    }
    throw e;
  }
  let closing: Promise<void> | undefined;
  const close = async () => {
    // One deadline for the whole close: the requests in flight and the batches they wait for
    // are the same work, so the node gets only what the server left of the grace.
    const graceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
    const deadline = Date.now() + graceMs;
    try {
      // Witnesses' long polls end now, and so do any that begin while the server closes.
      await closeWithin(app, graceMs, () => node.wake());
    } finally {
      try {
        await node.close(remaining(deadline));
      } finally {
        closeIdentity();
      }
    }
  };
  return {
    url,
    node,
    close: () => (closing ??= close()),
  };
}

export { DEFAULT_LEDGER_PORT };
