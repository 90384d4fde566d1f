/**
 * The shared agency store on PostgreSQL: the cases every store passes
 * (helpers/agency-store-cases.ts), then what only a shared store must do: hold across several
 * processes' connections to one database (quotas, one copy of an envelope, nonces, no copy
 * for an agent whose route another process removed), keep the agency key consistent, and say
 * AGENCY_STORE_UNAVAILABLE while the server is down, then work again.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { PgAgencyStore } from '../../src/agency/pg-agency-store.js';
import { agencyStoreCases, agentKey, cloudRecord, deliver, LIMITS, texts, withCloud } from '../helpers/agency-store-cases.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { pgClusterForSuite } from '../helpers/postgres.js';

const cluster = pgClusterForSuite();
const KEY_ID = 'test-agency-key-id';

async function open(url: string, keyId = KEY_ID): Promise<PgAgencyStore> {
  const store = await PgAgencyStore.open(url, { agencyKeyId: keyId });
  onTestFinished(() => store.close());
  return store;
}

agencyStoreCases({ name: 'PostgreSQL', fresh: async () => PgAgencyStore.open(await cluster().createDatabase(), { agencyKeyId: KEY_ID }) });

describe('agency store (PostgreSQL): shared by several processes', () => {
  it('keeps cloud agents with their sealed keys, routes and mail for every connection, across close and reopen', async () => {
    const url = await cluster().createDatabase();
    const first = await open(url);
    const cloud = { ...cloudRecord(), sealed: Uint8Array.of(1, 2, 3) };
    await first.addCloudAgent(cloud);
    const a = agentKey();
    await first.setRoutes(cloud.id, [{ agentKey: a }]);
    await deliver(first, cloud.id, [a], 'hello');
    const second = await open(url);
    expect(await second.cloudAgent(cloud.id)).toEqual(cloud);
    expect(await second.servedPolicies()).toEqual([cloud.policy]);
    expect(texts(await second.pickup(a, 10))).toEqual(['hello']);
    await first.close();
    await second.close();
    const again = await open(url);
    expect(await again.cloudAgentByKx(cloud.kx)).toEqual(cloud);
    expect(texts(await again.pickup(a, 10))).toEqual(['hello']);
  });

  it('holds a mailbox quota across processes delivering at once, and stores an envelope sent through both once', async () => {
    const url = await cluster().createDatabase();
    const stores = [await open(url), await open(url), await open(url)];
    const { cloud, a } = await withCloud(stores[0] as PgAgencyStore);
    const limits = { ...LIMITS, maxMessages: 25 };
    // 60 different envelopes from three processes at once: exactly 25 fit.
    const results = await Promise.allSettled(Array.from({ length: 60 }, (_, i) => deliver(stores[i % 3] as PgAgencyStore, cloud.id, [a], `m${i}`, { limits })));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(25);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('MAILBOX_FULL');
    expect(await stores[1]?.pickup(a, 100)).toHaveLength(25);
    // One envelope sent through all three at once is one message.
    const b = agentKey();
    await stores[0]?.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }]);
    const same = await Promise.all(stores.map((s) => deliver(s, cloud.id, [b], 'same')));
    expect(new Set(same.flat()).size).toBe(1);
    expect(texts((await stores[2]?.pickup(b, 10)) ?? [])).toEqual(['same']);
  });

  it('stores no copy for an agent whose route another process removed, even if older routes chose it', async () => {
    const url = await cluster().createDatabase();
    const [one, two] = [await open(url), await open(url)];
    const { cloud, a, b } = await withCloud(one);
    // Process two removes b; process one, still going by routes that had b, delivers to both.
    await two.setRoutes(cloud.id, [{ agentKey: a }]);
    const ids = await deliver(one, cloud.id, [a, b], 'after the revocation');
    expect(ids).toHaveLength(1);
    expect(await one.hasMailbox(b)).toBe(false);
    expect(texts(await one.pickup(a, 10))).toEqual(['after the revocation']);
  });

  it('takes a nonce once across processes, and once when asked many times at once', async () => {
    const url = await cluster().createDatabase();
    const [one, two] = [await open(url), await open(url)];
    const at = Date.now();
    expect(await one.nonces.take('zKey', 'n1', at)).toBe(true);
    expect(await two.nonces.take('zKey', 'n1', at)).toBe(false);
    expect(await two.nonces.take('zOther', 'n1', at)).toBe(true);
    const racing = await Promise.all([
      ...Array.from({ length: 20 }, () => one.nonces.take('zKey', 'n2', at)),
      ...Array.from({ length: 20 }, () => two.nonces.take('zKey', 'n2', at)),
    ]);
    expect(racing.filter(Boolean)).toHaveLength(1);
  });

  it('refuses an agency key other than the one the database was made with (AGENCY_KEY_MISMATCH)', async () => {
    const url = await cluster().createDatabase();
    await open(url, 'key-one');
    await expectCodeAsync(PgAgencyStore.open(url, { agencyKeyId: 'key-two' }), 'AGENCY_KEY_MISMATCH');
  });

  it('says AGENCY_STORE_UNAVAILABLE while the server is down, and works again once it is back', async () => {
    const url = await cluster().createDatabase();
    const store = await open(url);
    const { cloud, a } = await withCloud(store);
    await deliver(store, cloud.id, [a], 'before');
    await cluster().halt('immediate');
    try {
      await expectCodeAsync(deliver(store, cloud.id, [a], 'while down'), 'AGENCY_STORE_UNAVAILABLE');
      await expectCodeAsync(store.pickup(a, 10), 'AGENCY_STORE_UNAVAILABLE');
    } finally {
      await cluster().resume();
    }
    await deliver(store, cloud.id, [a], 'after');
    expect(texts(await store.pickup(a, 10))).toEqual(['before', 'after']);
  });

  it('fails to open an unreachable database with AGENCY_STORE_UNAVAILABLE, naming no password', async () => {
    const error = await expectCodeAsync(
      PgAgencyStore.open(`postgres://postgres:s3cret-pw@127.0.0.1:1/none`, { agencyKeyId: KEY_ID }),
      'AGENCY_STORE_UNAVAILABLE',
    );
    expect(error.message).not.toContain('s3cret-pw');
  });
});
