/** The etcd log store against a real three-member cluster: what the node needs of a store. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { EtcdLogStore, parseEtcdUrl } from '../../src/ledger/etcd-store.js';
import type { Did, PolicyAddress } from '../../src/ledger/events.js';
import { LedgerNode } from '../../src/ledger/node.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, nodeSigner, testKey } from '../helpers/ledger.js';

let cluster: EtcdCluster;
beforeAll(async () => {
  cluster = await startEtcdCluster();
}, 60_000);
afterAll(async () => {
  await cluster.stop();
});

let prefixes = 0;
const store = (prefix = `test-${process.pid}-${++prefixes}/`) => new EtcdLogStore({ endpoints: cluster.endpoints, prefix });

describe('etcd log store', () => {
  it('parses etcd:// store URLs and refuses others', () => {
    expect(parseEtcdUrl('etcd://127.0.0.1:2379,10.0.0.2:2379')).toEqual(['http://127.0.0.1:2379', 'http://10.0.0.2:2379']);
    expect(() => parseEtcdUrl('http://127.0.0.1:2379')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => parseEtcdUrl('etcd://')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
    expect(() => parseEtcdUrl('etcd://host-without-port')).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });

  it('runs a policy and DID lifecycle and reopens with the same root', async () => {
    const prefix = `life-${process.pid}/`;
    const signer = nodeSigner();
    const node = await LedgerNode.open(store(prefix), signer);
    const laptop = testKey();
    const phone = testKey();
    const created = await node.submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]));
    const policy = created.subject as PolicyAddress;
    const did = (await node.submit(signEvent(didCreate(policy, []), [laptop]))).subject as Did;
    let record = await node.subject(policy);
    if (record?.kind !== 'policy') throw new Error('policy missing');
    const grant = signEvent(nextEvent('policy.grant', policy, record, { agent: phone.agent(FLAGS.PROVE) }), [laptop]);
    await node.submit(grant);
    await expectCodeAsync(node.submit(grant), 'EVENT_REPLAY');
    record = await node.subject(policy);
    if (record?.kind !== 'policy') throw new Error('policy missing');
    await node.submit(signEvent(nextEvent('policy.revoke', policy, record, { key: phone.multikey }), [laptop]));
    expect(node.size).toBe(4);
    const history = await node.history(did);
    expect(history.map((r) => r.event.type)).toEqual(['policy.create', 'did.create', 'policy.grant', 'policy.revoke']);
    const root = node.head().root;
    await node.close();

    const again = await LedgerNode.open(store(prefix), signer);
    expect(again.size).toBe(4);
    expect(again.head().root).toBe(root);
    expect((await again.verify()).problems).toEqual([]);
    await again.close();
  });
});
