/**
 * A witness follows a real ledger node on loopback and cosigns its heads; clients that require
 * the node and the witness cannot be shown a log the witness did not check. Lying proxies stand
 * between the node and the witness (or the client) and show rolled-back, forked and
 * equivocating heads signed with the node's own key (docs/witness.md).
 */
import { cpSync, readFileSync, statSync } from 'node:fs';
import type { Signer } from '../../src/crypto/index.js';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import type { PolicyAddress } from '../../src/ledger/events.js';
import { bareHead, type ServedHead, type SignedTreeHead } from '../../src/ledger/head.js';
import type { NodeOptions } from '../../src/ledger/node.js';
import { Witness, type Evidence } from '../../src/ledger/witness.js';
import { LedgerNode } from '../../src/ledger/node.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import type { AppendBatch, LogStore } from '../../src/ledger/store.js';
import { ALL_FLAGS } from '../../src/policy/flags.js';
import { openWitnessIdentity, startWitness, witnessDir, type RunningWitness, type WitnessServiceOptions } from '../../src/server/witness-service.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, nodeSigner, openNode, testKey } from '../helpers/ledger.js';
import { ForgedLog, clone, flipFirst, renumber, startLedger, startProxy, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const NODE: NodeOptions = { headIntervalMs: 100 };

/** A witness's data directory and key, made before the node that must accept the key. */
async function witnessHome(home = tempDir()): Promise<{ home: string; key: string }> {
  const identity = await openWitnessIdentity(witnessDir(home));
  identity.close();
  return { home, key: identity.multikey };
}

/** A witness following the node at `url`, polling every 50 ms, closed when the test finishes. */
async function follow(home: string, url: string, nodeKey: string, options: Partial<WitnessServiceOptions> = {}): Promise<RunningWitness> {
  const running = await startWitness(home, { ledger: url, nodeKey, port: 0, intervalMs: 50, ...options });
  onTestFinished(() => running.close());
  return running;
}

async function submitPolicies(ledger: RunningLedger, count: number): Promise<PolicyAddress[]> {
  const created: PolicyAddress[] = [];
  for (let i = 0; i < count; i++) {
    const admin = testKey();
    const receipt = await ledger.node.submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]));
    created.push(receipt.subject as PolicyAddress);
  }
  return created;
}

/** Until the witness has cosigned a tree of `size` events and the node serves that cosignature. */
async function cosigned(ledger: RunningLedger, witness: RunningWitness, size: number): Promise<ServedHead> {
  return waitFor(`a cosigned head of ${size} events`, () => {
    const head = ledger.node.servedHead();
    return head.size === size && (head.cosignatures ?? []).some((c) => c.key === witness.witness.key) ? head : undefined;
  });
}

function requiringWitness(url: string, nodeKey: string, witnessKey: string, witnessWaitMs = 3_000): LedgerClient {
  return new LedgerClient({ url, trustedKeys: [nodeKey], witnessKeys: [witnessKey], quorum: 2, witnessWaitMs });
}

/**
 * A node that held one event, whose data directory was copied then (`backup`), and that went on
 * to three events; it is served behind a proxy so that the node can be swapped for its restored
 * copy under the same URL.
 */
async function nodeWithBackup(witnessKey: string) {
  const signer = nodeSigner();
  const dir = tempDir();
  const options = { signer, node: { ...NODE, witnessKeys: [witnessKey] } };
  const first = await startLedger(dir, options);
  await submitPolicies(first, 1);
  await first.close();
  const backup = tempDir();
  cpSync(dir, backup, { recursive: true });
  const ledger = await startLedger(dir, options);
  const proxy = await startProxy(ledger.url);
  return { signer, ledger, proxy, restore: async () => startLedger(backup, options) };
}

/** The node's records with the first one's time changed (a different leaf, so a different root), plus `extra` more. */
async function forgedFrom(ledger: RunningLedger, signer: Signer, extra = 0): Promise<ForgedLog> {
  const records = await ledger.node.range(0, ledger.node.size);
  const altered = records.map((r, i) => (i === 0 ? { ...r, time: '2001-01-01T00:00:00.000Z' } : r));
  const more = Array.from({ length: extra }, () => altered[0] ?? records[0]).filter((r) => r !== undefined);
  return new ForgedLog(renumber([...altered, ...more]), signer);
}

async function witnessState(running: RunningWitness): Promise<{ key: string; node: string; last: SignedTreeHead | null; evidence: Evidence[] }> {
  const response = await fetch(`${running.url}/v1/witness`);
  expect(response.status).toBe(200);
  return (await response.json()) as { key: string; node: string; last: SignedTreeHead | null; evidence: Evidence[] };
}

async function report(running: RunningWitness, head: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${running.url}/v1/heads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(head) });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('a witness cosigns the heads of the node it follows', () => {
  it('cosigns each head that extends the last, and a client requiring the node and the witness accepts them', async () => {
    const { home, key } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [key] } });
    const witness = await follow(home, ledger.url, ledger.node.key);
    await submitPolicies(ledger, 1);
    await cosigned(ledger, witness, 1);
    // From one event to three, the witness checks the node's consistency proof.
    const [policy] = await submitPolicies(ledger, 2);
    await cosigned(ledger, witness, 3);

    const client = requiringWitness(ledger.url, ledger.node.key, key);
    const head = await client.head();
    expect(head.size).toBe(3);
    expect(head.cosignatures?.map((c) => c.key)).toEqual([key]);
    expect((await client.resolvePolicy(policy as PolicyAddress)).record.subject).toBe(policy);
    expect(witness.witness.last?.size).toBe(3);
    expect(witness.witness.evidence).toEqual([]);
    expect(await witnessState(witness)).toMatchObject({ key, node: ledger.node.key, last: { size: 3, root: head.root, map: head.map }, evidence: [] });
  });

  it('renews its cosignature when it grows older than half the maximum age, with nothing new on the ledger', async () => {
    const { home, key } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [key] } });
    const witness = await follow(home, ledger.url, ledger.node.key, { maxHeadAgeMs: 1_000 });
    const first = (await cosigned(ledger, witness, 0)).cosignatures?.[0]?.time;
    await waitFor('a renewed cosignature', () => {
      const time = ledger.node.servedHead().cosignatures?.[0]?.time;
      return time !== undefined && time !== first ? time : undefined;
    });
  });

  it('under steady writes, a node serves only cosigned trees, and a client requiring the witness reads every one of its reads', async () => {
    const { home, key } = await witnessHome();
    // A long wait: every tree served here was cosigned, none published for want of the witness.
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [key], witnessWaitMs: 60_000 }, server: { rateLimitPerSecond: 100_000 } });
    await follow(home, ledger.url, ledger.node.key, { intervalMs: 20 });
    const [first] = await submitPolicies(ledger, 1);
    // Accepted is not yet served: the node serves the tree holding it once the witness cosigned.
    await waitFor('the first policy cosigned and served', () => (ledger.node.servedHead().size >= 1 ? true : undefined));
    const reader = requiringWitness(ledger.url, ledger.node.key, key);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 40 && writing; i++) {
        await Promise.all([submitPolicies(ledger, 1), submitPolicies(ledger, 1)]);
        // Pacing the writes over the reads (steady writes, what this test is about), not a wait for a condition.
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      writing = false;
    })();
    const sizes: number[] = [];
    while (writing) {
      const { head } = await reader.resolvePolicy(first as PolicyAddress);
      sizes.push(head.size);
      expect(ledger.node.size).toBeGreaterThanOrEqual(head.size);
    }
    await writer;
    // The reads saw the served tree grow while the writes went on, never go back.
    expect(sizes.length).toBeGreaterThan(1);
    expect(new Set(sizes).size).toBeGreaterThan(1);
    expect([...sizes].sort((x, y) => x - y)).toEqual(sizes);
    await waitFor('the last tree cosigned and served', () => (ledger.node.head().size === 81 ? true : undefined));
    expect((await reader.head()).size).toBe(81);
  });

  it('without a witness cosigning, a client requiring two signers refuses the head: LEDGER_UNWITNESSED', async () => {
    const { key } = await witnessHome();
    // A node that does not hold new trees back for its witnesses.
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [key], witnessWaitMs: 0 } });
    await submitPolicies(ledger, 1);
    await expectCodeAsync(requiringWitness(ledger.url, ledger.node.key, key, 200).head(), 'LEDGER_UNWITNESSED');
    // The node alone is enough for a client that requires only the node.
    expect((await new LedgerClient({ url: ledger.url, trustedKeys: [ledger.node.key] }).head()).size).toBe(1);
  });

  it('a node does not take a cosignature from a key it was not told to accept: WITNESS_REFUSED', async () => {
    const { home } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [testKey().multikey] } });
    const witness = await follow(home, ledger.url, ledger.node.key, { intervalMs: 60_000 });
    const outcome = await witness.poll();
    expect(outcome.status).toBe('failed');
    expect(outcome.status === 'failed' && outcome.error.code).toBe('WITNESS_REFUSED');
    expect(ledger.node.servedHead().cosignatures).toBeUndefined();
  });

  it('does not follow a head signed by another key than the one it was given', async () => {
    const { home } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: NODE });
    const witness = await follow(home, ledger.url, nodeSigner().multikey, { intervalMs: 60_000 });
    const outcome = await witness.poll();
    expect(outcome.status === 'failed' && outcome.error.code).toBe('WITNESS_REFUSED');
    expect(witness.witness.last).toBeUndefined();
  });
});

/** A witness in this process following the node key `node`, checking only the heads it is given. */
async function inProcessWitness(node: string): Promise<Witness> {
  const dir = witnessDir(tempDir());
  const identity = await openWitnessIdentity(dir);
  onTestFinished(() => identity.close());
  return Witness.open(dir, identity, { node });
}

describe('an honest node never looks like a rollback', () => {
  // A witness takes a smaller tree signed after a larger one for a rollback; a node signing its
  // served head again, to keep it fresh while a larger tree waits, must not date it later.
  it('signing the served head again while a larger tree waits for its witness: never dated after it', async () => {
    const signer = nodeSigner();
    const checker = await inProcessWitness(signer.multikey);
    let now = Date.now();
    const node = await openNode(tempDir(), signer, { headIntervalMs: 100, witnessKeys: [checker.key], witnessWaitMs: 60_000, now: () => now });
    onTestFinished(() => node.close());
    const cosign = (head: SignedTreeHead) => node.addCosignature({ ...checker.check(head), size: head.size, root: head.root, map: head.map });
    cosign(bareHead(node.latestHead()));
    const admin = testKey();
    await node.submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]));
    const waiting = bareHead(node.latestHead());
    expect([waiting.size, node.servedHead().size]).toEqual([1, 0]);
    now += 1_000;
    const served = bareHead(await node.refresh());
    expect(served.size).toBe(0);
    expect(Date.parse(served.time)).toBeLessThanOrEqual(Date.parse(waiting.time));
    // The witness cosigns the larger tree; the smaller one a client was served meanwhile is no rollback.
    cosign(waiting);
    expect(node.servedHead().size).toBe(1);
    expect(checker.examine(served)).toBe('consistent');
    expect(checker.evidence).toEqual([]);
  });

  it('signing the served head again while a larger batch is written but not yet on disk: never dated after it', async () => {
    const dir = tempDir();
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const sqlite = SqliteLogStore.open(join(dir, 'ledger.db'));
    // The store writes at once but reports the batch durable only when the test says so.
    const store: LogStore = new Proxy(sqlite, {
      get(target, name) {
        const value = Reflect.get(target, name) as unknown;
        if (name === 'appendWritten') {
          return async (batch: AppendBatch) => {
            const { durable } = await target.appendWritten(batch);
            return { durable: held.then(() => durable) };
          };
        }
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    let now = Date.now();
    const node = await LedgerNode.open(store, nodeSigner(), { headIntervalMs: 100, now: () => now });
    onTestFinished(() => node.close());
    const admin = testKey();
    const receipt = node.submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]));
    await waitFor('the batch written', () => (node.size === 1 ? true : undefined));
    now += 1_000;
    const served = await node.refresh();
    expect(served.size).toBe(0);
    release();
    await receipt;
    const larger = node.servedHead();
    expect(larger.size).toBe(1);
    expect(Date.parse(served.time)).toBeLessThanOrEqual(Date.parse(larger.time));
    // A witness shown the smaller head first cosigns the larger one after it.
    const checker = await inProcessWitness(node.key);
    checker.check(bareHead(served));
    expect(() => checker.check(bareHead(larger))).not.toThrow();
    expect(checker.evidence).toEqual([]);
  });
});

describe('what a client requiring the witness cannot be shown', () => {
  it('a rollback: the node restored from an older copy of its store, signing with its own key', async () => {
    const { home, key } = await witnessHome();
    const { signer, ledger, proxy, restore } = await nodeWithBackup(key);
    const found: Evidence[] = [];
    const witness = await follow(home, proxy.url, signer.multikey, { onEvidence: (e) => found.push(e) });
    await submitPolicies(ledger, 2);
    await cosigned(ledger, witness, 3);
    expect((await requiringWitness(proxy.url, signer.multikey, key).head()).size).toBe(3);

    await ledger.close();
    const restored = await restore();
    proxy.target = restored.url;
    const evidence = await waitFor('rollback evidence', () => found[0]);
    expect(evidence).toMatchObject({ kind: 'rollback', seen: { size: 1, key: signer.multikey }, cosigned: { size: 3, key: signer.multikey } });
    // A fresh client, with no memory of the larger log, would take the node's word alone…
    expect((await new LedgerClient({ url: proxy.url, trustedKeys: [signer.multikey] }).head()).size).toBe(1);
    // …but not with the witness required.
    await expectCodeAsync(requiringWitness(proxy.url, signer.multikey, key, 300).head(), 'LEDGER_UNWITNESSED');
  });

  it('a fork signed with the node key, with or without the cosignatures of the real log', async () => {
    const { home, key } = await witnessHome();
    const signer = nodeSigner();
    const ledger = await startLedger(tempDir(), { signer, node: { ...NODE, witnessKeys: [key] } });
    const witness = await follow(home, ledger.url, signer.multikey);
    await submitPolicies(ledger, 3);
    await cosigned(ledger, witness, 3);
    const forged = await forgedFrom(ledger, signer, 1);

    const proxy = await startProxy(ledger.url, forged.lie);
    await expectCodeAsync(requiringWitness(proxy.url, signer.multikey, key, 300).head(), 'LEDGER_UNWITNESSED');
    // The witness's real cosignature, carried over to the forged head, does not verify for it.
    proxy.lie = (exchange) =>
      exchange.path.startsWith('/v1/head')
        ? { status: 200, body: { ...forged.head(), cosignatures: ledger.node.servedHead().cosignatures } }
        : forged.lie(exchange);
    await expectCodeAsync(requiringWitness(proxy.url, signer.multikey, key, 60_000).head(), 'LEDGER_UNWITNESSED');
    expect(witness.witness.evidence).toEqual([]);
  });

  it('a cosignature altered on the way: LEDGER_UNWITNESSED at once', async () => {
    const { home, key } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: { ...NODE, witnessKeys: [key] } });
    const witness = await follow(home, ledger.url, ledger.node.key);
    await submitPolicies(ledger, 1);
    await cosigned(ledger, witness, 1);
    const proxy = await startProxy(ledger.url, ({ path, body }) => {
      if (!path.startsWith('/v1/head')) return undefined;
      const head = clone(body) as { cosignatures?: { sig: string }[] };
      for (const c of head.cosignatures ?? []) c.sig = flipFirst(c.sig);
      return { status: 200, body: head };
    });
    const error = await expectCodeAsync(requiringWitness(proxy.url, ledger.node.key, key, 60_000).head(), 'LEDGER_UNWITNESSED');
    expect(error.message).toContain('does not verify');
  });
});

describe('a witness catches the node it follows', () => {
  it('equivocation: keeps both heads as evidence, lists them, and refuses that node from then on', async () => {
    const { home, key } = await witnessHome();
    const signer = nodeSigner();
    const ledger = await startLedger(tempDir(), { signer, node: { ...NODE, witnessKeys: [key] } });
    const proxy = await startProxy(ledger.url);
    const found: Evidence[] = [];
    const witness = await follow(home, proxy.url, signer.multikey, { onEvidence: (e) => found.push(e) });
    await submitPolicies(ledger, 2);
    const real = await cosigned(ledger, witness, 2);

    const forged = await forgedFrom(ledger, signer);
    proxy.lie = forged.lie;
    await waitFor('equivocation evidence', () => found[0]);
    const state = await witnessState(witness);
    expect(state.evidence).toHaveLength(1);
    expect(state.evidence[0]).toMatchObject({
      kind: 'equivocation',
      seen: { size: 2, root: forged.head().root, key: signer.multikey },
      cosigned: { size: 2, root: real.root, key: signer.multikey },
    });
    // Both heads are signed by the node: anyone can check the evidence.
    expect(state.last).toMatchObject({ size: 2, root: real.root });

    // The node behaves again and grows; the witness cosigns none of it.
    proxy.lie = () => undefined;
    await submitPolicies(ledger, 1);
    const outcome = await witness.poll();
    expect(outcome.status === 'failed' && outcome.error.code).toBe('WITNESS_REFUSED');
    expect(outcome.status === 'failed' && outcome.error.message).toContain('caught');
    expect(ledger.node.latestHead().cosignatures).toBeUndefined();
    // Held back for its witnesses in vain, the new tree is served without them, and refused.
    await waitFor('the new tree served', () => (ledger.node.head().size === 3 ? true : undefined));
    await expectCodeAsync(requiringWitness(ledger.url, signer.multikey, key, 300).head(), 'LEDGER_UNWITNESSED');
    expect(found).toHaveLength(1);
  });

  it('a larger log that does not extend the one cosigned is a fork', async () => {
    const { home, key } = await witnessHome();
    const signer = nodeSigner();
    const ledger = await startLedger(tempDir(), { signer, node: { ...NODE, witnessKeys: [key] } });
    const proxy = await startProxy(ledger.url);
    const witness = await follow(home, proxy.url, signer.multikey);
    await submitPolicies(ledger, 3);
    await cosigned(ledger, witness, 3);
    proxy.lie = (await forgedFrom(ledger, signer, 2)).lie;
    const evidence = await waitFor('fork evidence', () => witness.witness.evidence[0]);
    expect(evidence).toMatchObject({ kind: 'fork', seen: { size: 5 }, cosigned: { size: 3 } });
  });

  it('checks heads reported by anyone: a conflicting one becomes evidence, none is cosigned', async () => {
    const { home, key } = await witnessHome();
    const signer = nodeSigner();
    const ledger = await startLedger(tempDir(), { signer, node: { ...NODE, witnessKeys: [key] } });
    const witness = await follow(home, ledger.url, signer.multikey);
    await submitPolicies(ledger, 1);
    const older = ledger.node.head();
    await submitPolicies(ledger, 1);
    await cosigned(ledger, witness, 2);

    expect(await report(witness, ledger.node.servedHead())).toMatchObject({ status: 200, body: { result: 'consistent', last: { size: 2 } } });
    // An older head: the node proves it a prefix of the log cosigned.
    expect(await report(witness, older)).toMatchObject({ status: 200, body: { result: 'consistent' } });
    const stranger = new ForgedLog(await ledger.node.range(0, 1), nodeSigner()).head();
    expect(await report(witness, stranger)).toMatchObject({ status: 409, body: { code: 'WITNESS_REFUSED' } });
    expect(await report(witness, { ...older, sig: flipFirst(older.sig) })).toMatchObject({ status: 409, body: { code: 'WITNESS_REFUSED' } });
    expect(await report(witness, { size: 1 })).toMatchObject({ status: 400, body: { code: 'BAD_INPUT' } });
    expect(await report(witness, { junk: 'x'.repeat(10_000) })).toMatchObject({ status: 400, body: { code: 'BAD_INPUT' } });
    // A larger tree the node will not prove: nothing can be said yet, and nobody is accused.
    const ahead = (await forgedFrom(ledger, signer, 3)).head();
    expect(await report(witness, ahead)).toMatchObject({ status: 502, body: { code: 'LEDGER_BAD_RESPONSE' } });
    expect(witness.witness.evidence).toEqual([]);

    // Another tree of the same size, signed with the node key and shown to someone: evidence.
    const forged = (await forgedFrom(ledger, signer)).head();
    expect(await report(witness, forged)).toMatchObject({ status: 409, body: { code: 'WITNESS_REFUSED' } });
    // A larger tree signed before the smaller one cosigned: the log went back, whatever the proofs.
    const records = await ledger.node.range(0, 2);
    const earlier = new ForgedLog([...records, ...records.map((r, i) => ({ ...r, gseq: 2 + i }))], signer, '2001-01-01T00:00:00.000Z').head();
    expect(await report(witness, earlier)).toMatchObject({ status: 409, body: { code: 'WITNESS_REFUSED' } });
    expect((await witnessState(witness)).evidence).toMatchObject([
      { kind: 'equivocation', seen: { root: forged.root }, cosigned: { size: 2 } },
      { kind: 'rollback', seen: { size: 4, time: '2001-01-01T00:00:00.000Z' }, cosigned: { size: 2 } },
    ]);
    // Reporting a head never makes the witness cosign it: its last head is still the node's.
    expect(witness.witness.last?.root).toBe(ledger.node.head().root);
  });

  it('remembers what it cosigned across a restart: a rollback after it is still caught', async () => {
    const { home, key } = await witnessHome();
    const { signer, ledger, proxy, restore } = await nodeWithBackup(key);
    const first = await follow(home, proxy.url, signer.multikey);
    await submitPolicies(ledger, 2);
    await cosigned(ledger, first, 3);
    await first.close();

    const path = join(witnessDir(home), 'state.json');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ version: 1, key, node: signer.multikey, last: { size: 3 }, evidence: [] });

    await ledger.close();
    proxy.target = (await restore()).url;
    const second = await follow(home, proxy.url, signer.multikey);
    expect(second.witness.last?.size).toBe(3);
    const evidence = await waitFor('rollback evidence after the restart', () => second.witness.evidence[0]);
    expect(evidence).toMatchObject({ kind: 'rollback', seen: { size: 1 }, cosigned: { size: 3 } });
    await expectCodeAsync(requiringWitness(proxy.url, signer.multikey, key, 300).head(), 'LEDGER_UNWITNESSED');
  });

  it('will not take over the state of a witness of another node', async () => {
    const { home } = await witnessHome();
    const ledger = await startLedger(tempDir(), { node: NODE });
    await (await follow(home, ledger.url, ledger.node.key, { intervalMs: 60_000 })).close();
    await expectCodeAsync(startWitness(home, { ledger: ledger.url, nodeKey: nodeSigner().multikey, port: 0 }), 'BAD_INPUT');
  });
});
