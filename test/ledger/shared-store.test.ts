/**
 * Several ledger nodes over one store (the shape of the etcd backend): they append
 * concurrently, never accept two events for the same subject and seq, and all reach the same
 * Merkle root, each signing heads with its own key.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { PolicyAddress, Subject } from '../../src/ledger/events.js';
import { verifyHeadSignature } from '../../src/ledger/head.js';
import { LedgerNode, type Receipt } from '../../src/ledger/node.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import type { PolicyRecord } from '../../src/ledger/state.js';
import type { AppendBatch, LogStore } from '../../src/ledger/store.js';
import { EtcdLogStore } from '../../src/ledger/etcd-store.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { FLAGS, ALL_FLAGS } from '../../src/policy/flags.js';
import { commitment, nodeSigner, testKey, type TestKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

/** Counts the appends `store` refused because another writer came first; `delayMs` mimics a network round trip. */
function counting(store: LogStore, onConflict: () => void, delayMs: number): LogStore {
  return new Proxy(store, {
    get(target, name) {
      const value = Reflect.get(target, name) as unknown;
      if ((name !== 'append' && name !== 'appendWritten') || typeof value !== 'function') {
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      }
      const write = (value as (batch: AppendBatch) => Promise<unknown>).bind(target);
      return async (batch: AppendBatch) => {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        return write(batch).catch((e: unknown) => {
          if ((e as { code?: string }).code === 'LEDGER_CONFLICT') onConflict();
          throw e;
        });
      };
    },
  });
}

interface Backend {
  readonly name: string;
  /** Stores for `count` nodes over one log (one shared object, or one client each). */
  stores(count: number): LogStore[];
}

let cluster: EtcdCluster | undefined;
beforeAll(async () => {
  cluster = await startEtcdCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

let logs = 0;
const BACKENDS: Backend[] = [
  {
    // One store object in one process: appends are delayed so that the nodes interleave.
    name: 'one SQLite store',
    stores(count) {
      const store = SqliteLogStore.open(join(tempDir(), 'ledger.db'));
      return Array.from({ length: count }, () => store);
    },
  },
  {
    name: 'etcd, one client per node',
    stores(count) {
      const prefix = `shared-${process.pid}-${++logs}/`;
      return Array.from({ length: count }, () => new EtcdLogStore({ endpoints: cluster?.endpoints ?? [], prefix }));
    },
  },
];

/** `count` nodes over one log, and how many appends were refused because another came first. */
async function nodes(backend: Backend, count: number): Promise<{ store: LogStore; nodes: LedgerNode[]; conflicts: () => number }> {
  let conflicts = 0;
  const stores = backend.stores(count);
  onTestFinished(async () => {
    for (const store of new Set(stores)) await store.close();
  });
  const delay = backend.name.includes('SQLite') ? 1 : 0;
  const opened: LedgerNode[] = [];
  for (const store of stores)
    opened.push(
      await LedgerNode.open(
        counting(store, () => conflicts++, delay),
        nodeSigner(),
      ),
    );
  return { store: stores[0] as LogStore, nodes: opened, conflicts: () => conflicts };
}

async function policyOf(node: LedgerNode, subject: Subject): Promise<PolicyRecord> {
  const record = await node.subject(subject);
  if (record?.kind !== 'policy') throw new Error('policy missing');
  return record;
}

describe.each(BACKENDS)('ledger nodes sharing one log: $name', (backend) => {
  it('accept exactly one of two competing events for the same subject and seq, whichever node gets each', async () => {
    const {
      nodes: [a, b],
    } = await nodes(backend, 2);
    if (a === undefined || b === undefined) throw new Error('two nodes expected');
    const owners: { admin: TestKey; policy: PolicyAddress }[] = [];
    for (let i = 0; i < 20; i++) {
      const admin = testKey();
      const receipt = await (i % 2 === 0 ? a : b).submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]));
      owners.push({ admin, policy: receipt.subject as PolicyAddress });
    }
    // For every owner, node a and node b each get a different grant at the same seq, at once.
    const races = await Promise.all(
      owners.map(async ({ admin, policy }) => {
        const record = await policyOf(a, policy);
        const one = signEvent(nextEvent('policy.grant', policy, record, { agent: testKey().agent(FLAGS.PROVE) }), [admin]);
        const two = signEvent(nextEvent('policy.grant', policy, record, { agent: testKey().agent(FLAGS.PROVE) }), [admin]);
        return Promise.allSettled([a.submit(one), b.submit(two)]);
      }),
    );
    for (const [i, race] of races.entries()) {
      const accepted = race.filter((r): r is PromiseFulfilledResult<Receipt> => r.status === 'fulfilled');
      const refused = race.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => (r.reason as { code: string }).code);
      expect(accepted, `owner ${i}`).toHaveLength(1);
      expect(refused, `owner ${i}`).toHaveLength(1);
      expect(['EVENT_FORK', 'EVENT_STALE_SEQ']).toContain(refused[0]);
      const record = await policyOf(b, owners[i]?.policy as PolicyAddress);
      expect(record.seq).toBe(1);
      expect(record.head).toBe(accepted[0]?.value.id);
    }
    // Both nodes converge on one log and one root, each head signed by its own node.
    const [headA, headB] = await Promise.all([a.refresh(), b.refresh()]);
    expect(headA.size).toBe(40);
    expect(headB.size).toBe(40);
    expect(headA.root).toBe(headB.root);
    expect(headA.key).not.toBe(headB.key);
    expect(verifyHeadSignature(headA) && verifyHeadSignature(headB)).toBe(true);
    const log = await a.range(0, 40);
    expect(log.map((r) => r.gseq)).toEqual([...Array(40).keys()]);
    // Ledger time never goes backwards along the log, whichever node wrote each batch.
    expect(log.map((r) => r.time)).toEqual([...log.map((r) => r.time)].sort());
  });

  it('keeps every event of a sustained concurrent load from three nodes exactly once, in one order', async () => {
    const { store, nodes: three, conflicts } = await nodes(backend, 3);
    const admins = Array.from({ length: 30 }, () => testKey());
    const receipts = await Promise.all(
      admins.map((admin, i) => (three[i % 3] as LedgerNode).submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]))),
    );
    // Each owner then makes 5 grants in sequence through rotating nodes, all owners at once.
    await Promise.all(
      receipts.map(async (receipt, i) => {
        const policy = receipt.subject as PolicyAddress;
        for (let k = 0; k < 5; k++) {
          const node = three[(i + k) % 3] as LedgerNode;
          const record = await policyOf(node, policy);
          await node.submit(signEvent(nextEvent('policy.grant', policy, record, { agent: testKey().agent(FLAGS.PROVE) }), [admins[i] as TestKey]));
        }
      }),
    );
    // The nodes really did race: some appends found the log already grown and were placed again.
    expect(conflicts()).toBeGreaterThan(0);
    const heads = await Promise.all(three.map((n) => n.refresh()));
    expect(new Set(heads.map((h) => h.root)).size).toBe(1);
    expect(heads.map((h) => h.size)).toEqual([180, 180, 180]);
    const log = await store.range(0, 180);
    expect(new Set(log.map((r) => `${String(r.event.type === 'policy.create' ? r.gseq : (r.event as { subject: string }).subject)}/${r.event.seq}`)).size).toBe(
      180,
    );
    // A fresh node over the same log rebuilds the same root from the leaves.
    const fresh = await LedgerNode.open(store, nodeSigner());
    expect(fresh.head().root).toBe(heads[0]?.root);
    expect((await fresh.verify()).problems).toEqual([]);
  });
});
