/**
 * Ledger benchmark. Raw limits, measured in the same run:
 * - Ed25519 verifications per second on one core through node:crypto, of the same events'
 *   signatures: importing each key from its 32 bytes (what a ledger must do for keys it has not
 *   seen) and, as an upper bound, with every key already imported.
 * Figures: commits/s of single-signature events through the embedded node (validation,
 * ordering, Merkle tree, signed head, one SQLite transaction per batch); p50/p99 of one
 * did.update round trip over HTTP; resolves per second with full client verification,
 * in-process and over loopback HTTP; and resolve latency, memory and file size as the log grows.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodePublicKey, ed25519Generate, ed25519Sign, encodePublicKey, fromBase64url } from '../src/crypto/index.js';
import { didCreate, nextEvent, policyCreate, signEvent, type EventSigner } from '../src/ledger/build.js';
import { LedgerClient } from '../src/ledger/client.js';
import { signingBytes, type Did, type LedgerEvent, type PolicyAddress } from '../src/ledger/events.js';
import { LedgerNode } from '../src/ledger/node.js';
import { SqliteLogStore } from '../src/ledger/sqlite-store.js';
import { recoveryKeyDigest } from '../src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../src/policy/flags.js';
import { injectFetch } from '../src/server/inject-fetch.js';
import { buildLedgerServer } from '../src/server/ledger-api.js';
import { median, report, round } from './report.js';

const COMMIT_EVENTS = 4000;
const ROUND_TRIPS = 300;
const RESOLVES = 300;

function signer(): EventSigner {
  const pair = ed25519Generate();
  return { publicKey: encodePublicKey('ed25519', pair.publicKey), sign: (m) => ed25519Sign(pair.privateKey, m) };
}

const RECOVERY = signer();
const recovery = { digests: [recoveryKeyDigest(RECOVERY.publicKey)], threshold: 1 };

/** `count` policy.create events, each by a new key and signed once. */
function inceptions(count: number): LedgerEvent[] {
  return Array.from({ length: count }, () => {
    const agent = signer();
    return signEvent(policyCreate([{ key: agent.publicKey, flags: ALL_FLAGS }], recovery), [agent]);
  });
}

async function openNode(dir: string, name: string, verifyThreads = 0): Promise<LedgerNode> {
  const key = signer();
  return LedgerNode.open(SqliteLogStore.open(join(dir, `${name}.db`)), { key: key.publicKey, sign: key.sign }, { verifyThreads });
}

async function submitAll(node: LedgerNode, events: readonly LedgerEvent[], window = 1000): Promise<void> {
  for (let i = 0; i < events.length; i += window) await Promise.all(events.slice(i, i + window).map((e) => node.submit(e)));
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function rawVerifyRates(events: readonly LedgerEvent[]): { importing: number; imported: number } {
  const items = events.map((e) => {
    const sig = e.sigs[0];
    if (sig === undefined) throw new Error('unsigned event');
    return { x: Buffer.from(decodePublicKey(sig.kid).publicKey).toString('base64url'), message: signingBytes(e), signature: fromBase64url(sig.sig) };
  });
  let start = process.hrtime.bigint();
  for (const item of items) {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: item.x }, format: 'jwk' });
    if (!verify(null, item.message, key, item.signature)) throw new Error('raw verify failed');
  }
  const importing = items.length / seconds(start);
  const keys: KeyObject[] = items.map((item) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: item.x }, format: 'jwk' }));
  start = process.hrtime.bigint();
  items.forEach((item, i) => {
    if (!verify(null, item.message, keys[i] as KeyObject, item.signature)) throw new Error('raw verify failed');
  });
  return { importing, imported: items.length / seconds(start) };
}

async function commitRate(dir: string, name: string, events: readonly LedgerEvent[], verifyThreads: number): Promise<number> {
  const node = await openNode(dir, name, verifyThreads);
  const start = process.hrtime.bigint();
  await submitAll(node, events);
  const rate = events.length / seconds(start);
  await node.close();
  return rate;
}

async function commits(dir: string): Promise<void> {
  // Fresh keys for each run, so that no run finds them imported by an earlier one.
  const single = await commitRate(dir, 'commits-1', inceptions(COMMIT_EVENTS), 0);
  const threads = availableParallelism();
  const pooled = await commitRate(dir, 'commits-n', inceptions(COMMIT_EVENTS), threads);
  const raw = rawVerifyRates(inceptions(COMMIT_EVENTS));
  const common = { events: COMMIT_EVENTS, signaturesPerEvent: 1, rawVerifyPerSec: round(raw.importing, 0), rawVerifyPreimportedPerSec: round(raw.imported, 0) };
  report({ bench: 'ledger.commit', ...common, threads: 1, commitsPerSec: round(single, 0), ratio: round(single / raw.importing), ratioToPreimported: round(single / raw.imported), expected: '>= 0.8' });
  report({ bench: 'ledger.commit', ...common, threads, verifyWorkers: threads, commitsPerSec: round(pooled, 0), ratio: round(pooled / raw.importing), ratioToPreimported: round(pooled / raw.imported), expected: '>= 1.5 (one-core verify rate)' });
}

/** An owner with a policy and a DID on `node`, and `updates` did.update events after it. */
async function owner(node: LedgerNode, updates = 0): Promise<{ key: EventSigner; policy: PolicyAddress; did: Did }> {
  const key = signer();
  const policy = (await node.submit(signEvent(policyCreate([{ key: key.publicKey, flags: ALL_FLAGS }], recovery), [key]))).subject as PolicyAddress;
  const did = (await node.submit(signEvent(didCreate(policy), [key]))).subject as Did;
  const phone = signer();
  let record = await node.subject(policy);
  if (record !== undefined) await node.submit(signEvent(nextEvent('policy.grant', policy, record, { agent: { key: phone.publicKey, flags: FLAGS.PROVE } }), [key]));
  for (let i = 0; i < updates; i++) {
    record = await node.subject(did);
    if (record === undefined) break;
    await node.submit(signEvent(nextEvent('did.update', did, record, { services: [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: `http://127.0.0.1:8421/${i}` }] }), [key]));
  }
  return { key, policy, did };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function httpFigures(dir: string): Promise<void> {
  const node = await openNode(dir, 'http');
  const app = buildLedgerServer(node, { rateLimitPerSecond: 1_000_000 });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const alice = await owner(node, 8);
    const client = new LedgerClient({ url });
    const latencies: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const record = await node.subject(alice.did);
      if (record === undefined) throw new Error('DID vanished');
      const event = signEvent(nextEvent('did.update', alice.did, record, { services: [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: `http://127.0.0.1:8421/rt${i}` }] }), [alice.key]);
      const start = process.hrtime.bigint();
      await client.submit(event);
      latencies.push(seconds(start) * 1000);
    }
    latencies.sort((a, b) => a - b);
    report({ bench: 'ledger.did-update-round-trip', transport: 'http loopback', requests: ROUND_TRIPS, p50Ms: round(percentile(latencies, 50), 3), p99Ms: round(percentile(latencies, 99), 3) });

    const bob = await owner(node, 8);
    for (const [transport, resolver] of [
      ['in-process', new LedgerClient({ url: 'http://in-process', fetch: injectFetch(app) })],
      ['http loopback', new LedgerClient({ url })],
    ] as const) {
      const start = process.hrtime.bigint();
      let events = 0;
      for (let i = 0; i < RESOLVES; i++) events = (await resolver.resolveDid(bob.did)).history.length;
      report({ bench: 'ledger.resolve-verified', transport, resolves: RESOLVES, eventsPerResolve: events, logSize: node.size, resolvesPerSec: round(RESOLVES / seconds(start), 0) });
    }
  } finally {
    await app.close();
    await node.close();
  }
}

async function scaling(dir: string): Promise<void> {
  const max = Number(process.env['DKMS_BENCH_LEDGER_MAX'] ?? 100_000);
  const budgetSeconds = 600;
  const started = process.hrtime.bigint();
  const node = await openNode(dir, 'scale');
  const app = buildLedgerServer(node, { rateLimitPerSecond: 1_000_000 });
  const client = new LedgerClient({ url: 'http://in-process', fetch: injectFetch(app) });
  const probe = await owner(node, 4);
  let reached = 0;
  try {
    for (const target of [10_000, 100_000, 1_000_000].filter((t) => t <= max)) {
      while (node.size < target) {
        if (seconds(started) > budgetSeconds) break;
        await submitAll(node, inceptions(Math.min(5_000, target - node.size)));
      }
      if (node.size < target) break;
      reached = node.size;
      const latencies: number[] = [];
      for (let i = 0; i < 50; i++) {
        const start = process.hrtime.bigint();
        await client.resolveDid(probe.did);
        latencies.push(seconds(start) * 1000);
      }
      report({
        bench: 'ledger.scaling',
        events: node.size,
        resolveMedianMs: round(median(latencies), 3),
        rssMiB: round(process.memoryUsage().rss / 2 ** 20, 1),
        fileMiB: round(['', '-wal'].reduce((n, s) => n + (statSync(join(dir, `scale.db${s}`), { throwIfNoEntry: false })?.size ?? 0), 0) / 2 ** 20, 1),
      });
    }
    report({ bench: 'ledger.scaling.reach', maxRequested: max, lastMeasuredAt: reached, eventsWhenStopped: node.size, seconds: round(seconds(started), 1), budgetSeconds });
  } finally {
    await app.close();
    await node.close();
  }
}

export async function ledgerBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-ledger-'));
  try {
    await commits(dir);
    await httpFigures(dir);
    await scaling(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
