/**
 * etcd backend benchmark, on its own three-member etcd cluster on 127.0.0.1 (heartbeat 50 ms,
 * election timeout 500 ms, data directories in a temporary directory, every member stopped by
 * its PID). Raw limits, measured in the same run:
 * - throughput: plain etcd puts per second from 16 concurrent writers (each awaits its put
 *   before the next), values the size of an event's canonical JSON, through an etcd3 client
 *   configured exactly as EtcdLogStore configures its own (500 ms deadline per call, 4 attempts,
 *   a per-member breaker half-open after 500 ms, 1 s gRPC keepalive). The figure is events
 *   committed per second by 2 LedgerNodes, each with its own EtcdLogStore client over one
 *   prefix, from 16 concurrent writers, each submitting whole owners in order (policy.create,
 *   then 4 policy.grant), writer w's i-th submit going to node (w + i) % 2; events are built
 *   and signed before the clock starts. With p50/p99 submit latency, and the store calls behind it.
 * - leader loss: the same 16 plain-put writers through an etcd3 client with its DEFAULT
 *   configuration (`new Etcd3({ hosts })`), waited on for at most 20 s, and through the client
 *   configured as EtcdLogStore's. The figure: while 16 writers submit through the 2 nodes, the
 *   etcd leader (found with the maintenance status API) is SIGKILLed; the stall is the time from
 *   the kill to the first acknowledgement of a submit issued after it. Also the longest gap
 *   between two acknowledgements around the kill and the longest single submit. The member is
 *   restarted and the cluster is healthy again before the next of 3 rounds.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { memorySigner, type Signer } from '../src/crypto/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { canonicalJson, ed25519Generate } from '../src/crypto/index.js';
import { isDkmsError } from '../src/errors.js';
import { nextEvent, policyCreate, signEvent } from '../src/ledger/build.js';
import { EtcdLogStore, ETCD_MAX_BATCH, etcdClientOptions } from '../src/ledger/etcd-store.js';
import { eventId, subjectOf, type LedgerEvent, type PolicyAddress } from '../src/ledger/events.js';
import { LedgerNode } from '../src/ledger/node.js';
import type { AppendBatch, LogStore } from '../src/ledger/store.js';
import { recoveryKeyDigest } from '../src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../src/policy/flags.js';
import { etcdInstalled, startEtcdCluster, type EtcdCluster } from './etcd-cluster.js';
import { report, round } from './report.js';

const WRITERS = 16;
const EVENTS = 3000;
/** policy.create and 4 grants per owner in the throughput run. */
const CHAIN = 5;
/** In the leader-loss runs writers build owners as they go, up to this seq, then start another. */
const STALL_CHAIN_SEQ = 8;
const NODES = 2;
const VERIFY_THREADS = 0;
const KILL_ROUNDS = 3;
const WARMUP_MS = 1000;
/** How long writers keep going after the first acknowledgement that follows the kill. */
const AFTER_MS = 1000;
const CAP_MS = 20_000;
const PREFIX = 'dkms-bench/ledger/';
const INSTALL = 'etcd is not installed: run `apt-get install -y etcd-server etcd-client` (as root), then `npm run bench -- etcd` again\n';

// ---------------------------------------------------------------------------------------------
// Helpers

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function signer(): Signer {
  const pair = ed25519Generate();
  return memorySigner(pair.privateKey, pair.publicKey);
}

function nodeSigner(): Signer {
  const key = signer();
  return key;
}

const recovery = { digests: [recoveryKeyDigest(signer().multikey)], threshold: 1 };

function codeOf(e: unknown): string {
  if (isDkmsError(e)) return e.code;
  return e instanceof Error ? e.constructor.name : String(e);
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** An etcd3 client configured as EtcdLogStore configures its own. */
function storeLikeClient(endpoints: readonly string[]): Etcd3 {
  return new Etcd3(etcdClientOptions(endpoints));
}

/** Store calls by method, appends' events and conflicts: what a node asked of etcd. */
interface StoreStats {
  calls: Map<string, number>;
  appendedEvents: number;
  conflicts: number;
}

/** `store` with its calls counted (methods bound to the store itself: it has private fields). */
function counted(store: LogStore, stats: StoreStats): LogStore {
  return new Proxy(store, {
    get(target, name) {
      const value = Reflect.get(target, name) as unknown;
      if (typeof value !== 'function') return value;
      const method = String(name);
      if (method === 'append') {
        return async (batch: AppendBatch) => {
          count(stats.calls, method);
          try {
            await target.append(batch);
            stats.appendedEvents += batch.events.length;
          } catch (e) {
            if (isDkmsError(e) && e.code === 'LEDGER_CONFLICT') stats.conflicts += 1;
            throw e;
          }
        };
      }
      return (...args: unknown[]) => {
        count(stats.calls, method);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/** An owner's policy.create and `length - 1` grants, chained and signed ahead of time. */
function ownerChain(length: number): LedgerEvent[] {
  const admin = signer();
  const create = signEvent(policyCreate([{ key: admin.multikey, flags: ALL_FLAGS }], recovery), [admin]);
  const policy = subjectOf(create) as PolicyAddress;
  const events = [create];
  let latest = { seq: 0, head: eventId(create) as string };
  for (let seq = 1; seq < length; seq++) {
    const grant = signEvent(nextEvent('policy.grant', policy, latest, { agent: { key: signer().multikey, flags: FLAGS.PROVE } }), [admin]);
    events.push(grant);
    latest = { seq, head: eventId(grant) };
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

async function rawPutRate(client: Etcd3, valueBytes: number, puts: number, prefix: string): Promise<number> {
  const kv = client.namespace(prefix);
  const value = 'x'.repeat(valueBytes);
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      for (let i = next++; i < puts; i = next++) await kv.put(`k/${i}`).value(value).exec();
    }),
  );
  return puts / ((performance.now() - start) / 1000);
}

async function throughput(cluster: EtcdCluster, nodes: readonly LedgerNode[], stats: StoreStats): Promise<void> {
  const chains = Array.from({ length: Math.ceil(EVENTS / CHAIN) }, () => ownerChain(CHAIN));
  const valueBytes = Math.round(chains.flat().reduce((n, e) => n + Buffer.byteLength(canonicalJson(e)), 0) / (chains.length * CHAIN));

  const raw = storeLikeClient(cluster.endpoints);
  let rawRate: number;
  try {
    await rawPutRate(raw, valueBytes, 200, 'dkms-bench/warmup/');
    rawRate = await rawPutRate(raw, valueBytes, EVENTS, 'dkms-bench/raw/');
  } finally {
    raw.close();
  }

  const latencies: number[] = [];
  const failures = new Map<string, number>();
  let nextChain = 0;
  stats.calls.clear();
  stats.appendedEvents = 0;
  stats.conflicts = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      let i = 0;
      for (let c = nextChain++; c < chains.length; c = nextChain++) {
        for (const event of chains[c] ?? []) {
          const node = nodes[(w + i++) % NODES] as LedgerNode;
          const submitted = performance.now();
          try {
            await node.submit(event);
            latencies.push(performance.now() - submitted);
          } catch (e) {
            count(failures, codeOf(e));
            break; // the rest of this owner's chain cannot follow
          }
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const committed = latencies.length;
  const rate = committed / seconds;
  latencies.sort((a, b) => a - b);
  const appends = stats.calls.get('append') ?? 0;
  const perEvent = Object.fromEntries([...stats.calls].map(([method, n]) => [method, round(n / Math.max(1, committed), 3)]));
  report({
    bench: 'etcd.commit',
    cluster: '3 members, 127.0.0.1',
    nodes: NODES,
    writers: WRITERS,
    events: chains.length * CHAIN,
    committed,
    failed: Object.fromEntries(failures),
    eventBytes: valueBytes,
    verifyThreads: VERIFY_THREADS,
    eventsPerSec: round(rate, 0),
    rawPutsPerSec: round(rawRate, 0),
    rawPuts: `${EVENTS} single puts of ${valueBytes} B, ${WRITERS} writers, EtcdLogStore's client options`,
    ratio: round(rate / rawRate),
    expected: '>= 1.0',
    p50SubmitMs: round(percentile(latencies, 50), 1),
    p99SubmitMs: round(percentile(latencies, 99), 1),
  });
  report({
    bench: 'etcd.commit.store-calls',
    appends,
    eventsPerAppend: round(stats.appendedEvents / Math.max(1, appends - stats.conflicts), 1),
    maxBatch: ETCD_MAX_BATCH,
    conflicts: stats.conflicts,
    callsPerCommittedEvent: perEvent,
  });
}

// ---------------------------------------------------------------------------------------------
// 2. Leader loss

interface Stall {
  /** Kill → first acknowledgement of a submit issued after the kill; undefined if none within the cap. */
  readonly stallMs: number | undefined;
  /** Kill → the last of the submits in flight at the kill settled; undefined if not within the cap. */
  readonly inFlightSettledMs: number | undefined;
  /** Longest gap between two acknowledgements, from the last one before the kill to the end. */
  readonly maxGapMs: number;
  /** Longest single submit that ended after the kill (unfinished ones counted to the end). */
  readonly longestSubmitMs: number;
  readonly acks: number;
  readonly errors: Record<string, number>;
  readonly abandoned: number;
}

/**
 * Runs one writer per `ops` entry, each calling its op in a loop; after WARMUP_MS SIGKILLs the
 * leader and watches until a submit issued after the kill is acknowledged and every submit in
 * flight at the kill has settled (at most CAP_MS), then AFTER_MS more. `release` runs when the
 * writers are told to stop (a client may close to free stuck calls).
 */
async function stallRound(cluster: EtcdCluster, ops: readonly (() => Promise<void>)[], release: () => void): Promise<Stall> {
  const acks: number[] = [];
  const inFlight = new Map<number, number>();
  const errors = new Map<string, number>();
  let atKill = new Set<number>();
  let ids = 0;
  let killAt = Number.POSITIVE_INFINITY;
  let longest = 0;
  let stop = false;
  let firstAfter: number | undefined;
  let lastSettled: number | undefined;

  const writers = ops.map(async (op) => {
    while (!stop) {
      const id = ids++;
      const started = performance.now();
      inFlight.set(id, started);
      try {
        await op();
        const now = performance.now();
        acks.push(now);
        if (started > killAt && firstAfter === undefined) firstAfter = now;
      } catch (e) {
        count(errors, codeOf(e));
        await sleep(10);
      } finally {
        const now = performance.now();
        inFlight.delete(id);
        if (now > killAt) longest = Math.max(longest, now - started);
        if (atKill.delete(id) && atKill.size === 0) lastSettled = now;
      }
    }
  });

  await sleep(WARMUP_MS);
  const leader = await cluster.leader();
  if (leader < 0) throw new Error('no etcd leader found');
  killAt = performance.now();
  atKill = new Set(inFlight.keys());
  const killed = cluster.kill(leader);
  const settled = () => firstAfter !== undefined && atKill.size === 0;
  while (!settled() && performance.now() - killAt < CAP_MS) await sleep(5);
  if (settled()) await sleep(AFTER_MS);
  const end = performance.now();
  stop = true;
  for (const started of inFlight.values()) longest = Math.max(longest, end - started);
  release();
  // Writers stuck in a call the client never ends are abandoned after 15 s.
  await Promise.race([Promise.all(writers), sleep(15_000)]);
  const abandoned = inFlight.size;
  await killed;

  const lastBefore = acks.filter((t) => t <= killAt).at(-1) ?? killAt;
  const window = [lastBefore, ...acks.filter((t) => t > killAt && t <= end), end];
  let maxGap = 0;
  for (let i = 1; i < window.length; i++) maxGap = Math.max(maxGap, (window[i] as number) - (window[i - 1] as number));
  await cluster.restart(leader);
  return {
    stallMs: firstAfter === undefined || firstAfter > end ? undefined : firstAfter - killAt,
    inFlightSettledMs: atKill.size > 0 && lastSettled === undefined ? undefined : (lastSettled ?? killAt) - killAt,
    maxGapMs: maxGap,
    longestSubmitMs: longest,
    acks: acks.filter((t) => t > killAt && t <= end).length,
    errors: Object.fromEntries(errors),
    abandoned,
  };
}

/** A writer through the nodes: owners built as it goes, a new one after any refusal. */
function nodeWriter(nodes: readonly LedgerNode[], w: number): () => Promise<void> {
  let i = 0;
  let owner: { admin: Signer; policy: PolicyAddress; latest: { seq: number; head: string } } | undefined;
  return async () => {
    const node = nodes[(w + i++) % NODES] as LedgerNode;
    try {
      if (owner === undefined || owner.latest.seq >= STALL_CHAIN_SEQ) {
        const admin = signer();
        const receipt = await node.submit(signEvent(policyCreate([{ key: admin.multikey, flags: ALL_FLAGS }], recovery), [admin]));
        owner = { admin, policy: receipt.subject as PolicyAddress, latest: { seq: receipt.seq, head: receipt.id } };
      } else {
        const { admin, policy, latest } = owner;
        const receipt = await node.submit(
          signEvent(nextEvent('policy.grant', policy, latest, { agent: { key: signer().multikey, flags: FLAGS.PROVE } }), [admin]),
        );
        owner.latest = { seq: receipt.seq, head: receipt.id };
      }
    } catch (e) {
      owner = undefined;
      throw e;
    }
  };
}

function putWriter(client: Etcd3, prefix: string, w: number, value: string): () => Promise<void> {
  const kv = client.namespace(prefix);
  let i = 0;
  return async () => {
    await kv.put(`w${w}/${i++}`).value(value).exec();
  };
}

const capped = (ms: number | undefined) => (ms === undefined ? `> ${CAP_MS} (capped)` : round(ms, 0));

function stallFigure(path: string, n: number, s: Stall): Record<string, unknown> {
  return {
    bench: 'etcd.leader-kill',
    path,
    round: n,
    stallMs: capped(s.stallMs),
    inFlightSettledMs: capped(s.inFlightSettledMs),
    maxGapMs: round(s.maxGapMs, 0),
    longestSubmitMs: round(s.longestSubmitMs, 0),
    acksInWindow: s.acks,
    errors: s.errors,
    ...(s.abandoned > 0 ? { abandonedCalls: s.abandoned } : {}),
  };
}

/** The worst of the rounds; a capped round counts as CAP_MS. */
function worst(rounds: readonly Stall[]): { stall: number; inFlight: number; gap: number; longest: number; capped: boolean } {
  return {
    stall: Math.max(...rounds.map((s) => s.stallMs ?? CAP_MS)),
    inFlight: Math.max(...rounds.map((s) => s.inFlightSettledMs ?? CAP_MS)),
    gap: Math.max(...rounds.map((s) => s.maxGapMs)),
    longest: Math.max(...rounds.map((s) => s.longestSubmitMs)),
    capped: rounds.some((s) => s.stallMs === undefined || s.inFlightSettledMs === undefined),
  };
}

async function leaderLoss(cluster: EtcdCluster, nodes: readonly LedgerNode[]): Promise<void> {
  const value = 'x'.repeat(600);
  const runs: { path: string; rounds: Stall[]; make: () => { ops: (() => Promise<void>)[]; release: () => void } }[] = [
    {
      path: `${NODES} LedgerNodes over EtcdLogStore`,
      rounds: [],
      make: () => ({ ops: Array.from({ length: WRITERS }, (_, w) => nodeWriter(nodes, w)), release: () => undefined }),
    },
    {
      path: "plain puts, etcd3 client with EtcdLogStore's options",
      rounds: [],
      make: () => {
        const client = storeLikeClient(cluster.endpoints);
        return { ops: Array.from({ length: WRITERS }, (_, w) => putWriter(client, 'dkms-bench/stall-tuned/', w, value)), release: () => client.close() };
      },
    },
    {
      path: 'plain puts, etcd3 client default options',
      rounds: [],
      make: () => {
        const client = new Etcd3({ hosts: [...cluster.endpoints] });
        return { ops: Array.from({ length: WRITERS }, (_, w) => putWriter(client, 'dkms-bench/stall-default/', w, value)), release: () => client.close() };
      },
    },
  ];
  for (const run of runs) {
    for (let r = 1; r <= KILL_ROUNDS; r++) {
      const { ops, release } = run.make();
      const stall = await stallRound(cluster, ops, release);
      run.rounds.push(stall);
      report(stallFigure(run.path, r, stall));
    }
  }
  const [nodeRun, tuned, dflt] = runs.map((run) => worst(run.rounds)) as [ReturnType<typeof worst>, ReturnType<typeof worst>, ReturnType<typeof worst>];
  const figures = (w: ReturnType<typeof worst>) => ({
    stallMs: round(w.stall, 0),
    inFlightSettledMs: round(w.inFlight, 0),
    maxGapMs: round(w.gap, 0),
    longestSubmitMs: round(w.longest, 0),
    ...(w.capped ? { capped: `some round hit the ${CAP_MS} ms cap` } : {}),
  });
  report({
    bench: 'etcd.leader-kill.max',
    rounds: KILL_ROUNDS,
    writers: WRITERS,
    nodes: figures(nodeRun),
    rawDefaultClient: figures(dflt),
    rawStoreOptionsClient: figures(tuned),
    stallRatioToDefaultClient: round(nodeRun.stall / dflt.stall),
    inFlightRatioToDefaultClient: round(nodeRun.inFlight / dflt.inFlight),
    stallRatioToStoreOptionsClient: round(nodeRun.stall / tuned.stall),
  });
}

// ---------------------------------------------------------------------------------------------

export async function etcdBench(): Promise<void> {
  if (!etcdInstalled()) {
    process.stderr.write(INSTALL);
    process.exit(1);
  }
  const root = mkdtempSync(join(tmpdir(), 'dkms-bench-etcd-'));
  let cluster: EtcdCluster | undefined;
  const cleanUp = () => {
    cluster?.killAll();
    rmSync(root, { recursive: true, force: true });
  };
  const onSignal = () => {
    cleanUp();
    process.exit(130);
  };
  process.once('exit', cleanUp);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const nodes: LedgerNode[] = [];
  try {
    cluster = await startEtcdCluster(root);
    const stats: StoreStats = { calls: new Map(), appendedEvents: 0, conflicts: 0 };
    for (let n = 0; n < NODES; n++) {
      const store = counted(new EtcdLogStore({ endpoints: cluster.endpoints, prefix: PREFIX }), stats);
      nodes.push(await LedgerNode.open(store, nodeSigner(), { verifyThreads: VERIFY_THREADS }));
    }
    await throughput(cluster, nodes, stats);
    await leaderLoss(cluster, nodes);
  } finally {
    for (const node of nodes) await node.close().catch(() => undefined);
    await cluster?.stop();
    cleanUp();
    process.off('exit', cleanUp);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
