/**
 * The embedded agency store: the cases every store passes (helpers/agency-store-cases.ts), and
 * the file itself (reopen, one opener at a time, foreign files).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { SqliteAgencyStore } from '../../src/agency/sqlite-agency-store.js';
import { randomBytes } from '../../src/crypto/index.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import { agencyStoreCases, agentKey, deliver, texts, withCloud } from '../helpers/agency-store-cases.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

/** A store in `path` (default: a fresh file), closed when the test finishes. */
function openStore(path = join(tempDir('dkms-agency-store-'), 'agency.db')): SqliteAgencyStore {
  const store = SqliteAgencyStore.open(path);
  onTestFinished(() => store.close());
  return store;
}

agencyStoreCases({ name: 'SQLite', fresh: async () => SqliteAgencyStore.open(join(tempDir('dkms-agency-store-'), 'agency.db')) });

describe('agency store (SQLite): the file', () => {
  it('keeps cloud agents, routes, mail and counters across close and reopen', async () => {
    const path = join(tempDir('dkms-agency-store-'), 'agency.db');
    const { store, cloud, a, b } = await withCloud(openStore(path));
    for (let i = 0; i < 3; i++) await deliver(store, cloud.id, [a], `a${i}`);
    await deliver(store, cloud.id, [b], 'b0');
    const routes = await store.routes(cloud.id);
    // A key routed and then removed again.
    const gone = agentKey();
    await store.setRoutes(cloud.id, [...routes, { agentKey: gone }]);
    expect(await store.setRoutes(cloud.id, routes)).toEqual({ added: [], removed: [gone] });
    await store.close();
    const again = openStore(path);
    expect(await again.cloudAgent(cloud.id)).toEqual(cloud);
    expect(await again.cloudAgentByKx(cloud.kx)).toEqual(cloud);
    expect(await again.routes(cloud.id)).toEqual(routes);
    expect(await again.isRouted(cloud.id, a)).toBe(true);
    expect(await again.wasRemoved(cloud.id, gone)).toBe(true);
    expect(await again.wasRemoved(cloud.id, a)).toBe(false);
    expect(texts(await again.pickup(a, 10))).toEqual(['a0', 'a1', 'a2']);
    expect(texts(await again.pickup(b, 10))).toEqual(['b0']);
    await expectCodeAsync(deliver(again, cloud.id, [a], 'a3'), 'MAILBOX_FULL');
    // Ids keep growing after a reopen: nothing picked up later sorts before older mail.
    const [older] = await again.pickup(b, 1);
    const [newer] = await deliver(again, cloud.id, [b], 'b1');
    expect(Number(newer)).toBeGreaterThan(Number(older?.id));
    expect(texts(await again.pickup(b, 10))).toEqual(['b0', 'b1']);
  });

  it('refuses a second opener while the file is open (AGENCY_BUSY), and lets it in after close', async () => {
    const path = join(tempDir('dkms-agency-store-'), 'agency.db');
    const { store, cloud } = await withCloud(openStore(path));
    expectCode(() => SqliteAgencyStore.open(path), 'AGENCY_BUSY');
    // The first opener is unaffected.
    expect(await store.cloudAgent(cloud.id)).toEqual(cloud);
    await store.close();
    const again = openStore(path);
    expect(await again.cloudAgent(cloud.id)).toEqual(cloud);
  });

  it('refuses a ledger store as AGENCY_STORE_DAMAGED', async () => {
    const path = join(tempDir('dkms-agency-foreign-'), 'ledger.db');
    const ledger = SqliteLogStore.open(path);
    await ledger.close();
    expectCode(() => SqliteAgencyStore.open(path), 'AGENCY_STORE_DAMAGED');
    // And it left the ledger store as it was.
    const reopened = SqliteLogStore.open(path);
    await reopened.close();
  });

  it('refuses a file of random bytes as AGENCY_STORE_DAMAGED', () => {
    const path = join(tempDir('dkms-agency-foreign-'), 'agency.db');
    writeFileSync(path, randomBytes(8192));
    expectCode(() => SqliteAgencyStore.open(path), 'AGENCY_STORE_DAMAGED');
  });
});
