import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';

import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, PolicyAddress } from '../../src/ledger/events.js';
import { mapRootBytes } from '../../src/ledger/head.js';
import { mapKey, verifyMapProof } from '../../src/ledger/map.js';
import { MAP_FLUSH_EVENTS } from '../../src/ledger/sqlite-store.js';
import { FLAGS, ALL_FLAGS } from '../../src/policy/flags.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, nodeSigner, openNode, testKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

describe('ledger lifecycle (in process)', () => {
  it('creates a policy and a DID, grants, revokes, and survives a restart with the same root', async () => {
    const dir = tempDir();
    const signer = nodeSigner();
    const node = await openNode(dir, signer);
    const laptop = testKey();
    const phone = testKey();
    const recovery = testKey();

    const create = signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([recovery])), [laptop]);
    const created = await node.submit(create);
    const policy = created.subject as PolicyAddress;
    expect(policy).toMatch(/^policy:/);
    expect(created.gseq).toBe(0);

    const didReceipt = await node.submit(
      signEvent(didCreate(policy, [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'http://127.0.0.1:8421/' }]), [laptop]),
    );
    const did = didReceipt.subject as Did;
    expect(did).toMatch(/^did:dkms:/);

    let record = await node.subject(policy);
    if (record?.kind !== 'policy') throw new Error('policy missing');
    const grant = signEvent(nextEvent('policy.grant', policy, record, { agent: phone.agent(FLAGS.PROVE) }), [laptop]);
    await node.submit(grant);
    await expectCodeAsync(node.submit(grant), 'EVENT_REPLAY');

    record = await node.subject(policy);
    if (record?.kind !== 'policy') throw new Error('policy missing');
    expect(record.policy.agents.map((a) => a.key).sort()).toEqual([laptop.multikey, phone.multikey].sort());
    const sizeBefore = node.size;
    const rootBefore = node.head().root;
    // The phone holds only PROVE: it cannot revoke the laptop.
    await expectCodeAsync(node.submit(signEvent(nextEvent('policy.revoke', policy, record, { key: laptop.multikey }), [phone])), 'EVENT_UNAUTHORIZED');
    expect(node.size).toBe(sizeBefore);
    expect(node.head().root).toBe(rootBefore);
    await node.submit(signEvent(nextEvent('policy.revoke', policy, record, { key: phone.multikey }), [laptop]));

    const head = node.head();
    expect(head.size).toBe(4);
    await node.close();

    const reopened = await openNode(dir, signer);
    expect(reopened.head().root).toBe(head.root);
    expect(reopened.size).toBe(4);
    const audit = await reopened.verify();
    expect(audit).toEqual({ events: 4, problems: [] });
    const reindexed = await reopened.reindex(true);
    expect(reindexed.differences).toEqual([]);
    const history = await reopened.history(did);
    expect(history.map((r) => r.event.type)).toEqual(['policy.create', 'did.create', 'policy.grant', 'policy.revoke']);
    const past = await reopened.stateAt(policy, 3);
    expect(past?.kind === 'policy' && past.policy.agents.length).toBe(2);
    expect(reopened.inclusionProof(1).length).toBeGreaterThan(0);
    await reopened.close();
  });
});

describe('signature checks on worker threads', () => {
  it('accepts and refuses exactly as the node thread does, in batches large enough to use the workers', async () => {
    const node = await openNode(tempDir(), nodeSigner(), { verifyThreads: 2 });
    const recovery = testKey();
    const events = Array.from({ length: 40 }, () => {
      const agent = testKey();
      return signEvent(policyCreate([agent.agent(ALL_FLAGS)], commitment([recovery])), [agent]);
    });
    // Every fourth event carries another key's signature.
    const forged = events.map((event, i) => {
      if (i % 4 !== 3) return event;
      const other = signEvent(policyCreate([testKey().agent(ALL_FLAGS)], commitment([recovery])), [testKey()]);
      return { ...event, sigs: [{ kid: event.sigs[0]?.kid ?? '', sig: other.sigs[0]?.sig ?? '' }] };
    });
    const results = await node.submitMany(forged);
    expect(results.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(forged.map((_, i) => (i % 4 === 3 ? 'EVENT_BAD_SIGNATURE' : 'ok')));
    expect(node.size).toBe(30);
    expect((await node.verify()).problems).toEqual([]);
    await node.close();
  });
});

describe('the embedded store keeps the Merkle and map nodes', () => {
  async function filled(): Promise<{ dir: string; signer: ReturnType<typeof nodeSigner>; head: { size: number; root: string; map: string } }> {
    const dir = tempDir();
    const signer = nodeSigner();
    const node = await openNode(dir, signer);
    for (let i = 0; i < 5; i++) {
      const key = testKey();
      await node.submit(signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]));
    }
    const { size, root, map } = node.head();
    await node.close();
    return { dir, signer, head: { size, root, map } };
  }

  it('a file of the format before them gets them computed when first opened, and audits clean', async () => {
    const { dir, signer, head } = await filled();
    const db = new Database(join(dir, 'ledger.db'));
    db.exec('DROP TABLE tree; DROP TABLE map; DROP TABLE map_top; DROP TABLE derived;');
    db.prepare("UPDATE heads SET head = json_remove(head, '$.map')").run();
    db.pragma('user_version = 1');
    db.close();
    const node = await openNode(dir, signer);
    expect(node.head()).toMatchObject(head);
    expect(await node.verify()).toEqual({ events: 5, problems: [] });
    await node.close();
  });

  it('a file of format 2 (the top of the map among its deeper rows) has it moved when first opened, and proves from it', async () => {
    const dir = tempDir();
    const signer = nodeSigner();
    const node = await openNode(dir, signer);
    const recovery = commitment([testKey()]);
    const results = await node.submitMany(
      Array.from({ length: 300 }, () => {
        const key = testKey();
        return signEvent(policyCreate([key.agent(ALL_FLAGS)], recovery), [key]);
      }),
    );
    const policies = results.flatMap((r) => (r.ok ? [r.receipt.subject as PolicyAddress] : []));
    expect(policies).toHaveLength(300);
    const { size, root, map } = node.head();
    await node.close();

    // Format 2's layout, written here without the migration's SQL: every node in `map`, under
    // its path's prefix bytes followed by its two depth bytes.
    const db = new Database(join(dir, 'ledger.db'));
    const top = db.prepare<[], { path: Buffer; node: Buffer }>('SELECT path, node FROM map_top').all();
    const deep = db.prepare('SELECT count(*) FROM map').pluck().get() as number;
    expect(top.length).toBeGreaterThan(100);
    const insert = db.prepare('INSERT INTO map (path, node) VALUES (?, ?)');
    for (const row of top) insert.run(Buffer.concat([row.path.subarray(2), row.path.subarray(0, 2)]), row.node);
    db.exec('DROP TABLE map_top');
    db.pragma('user_version = 2');
    db.close();

    const reopened = await openNode(dir, signer);
    expect(reopened.head()).toMatchObject({ size, root, map });
    const snapshot = await reopened.snapshot();
    for (const policy of policies) {
      const proof = verifyMapProof(mapRootBytes(snapshot.head), mapKey(policy), snapshot.mapProof(policy));
      expect(proof.ok && proof.entry?.seq).toBe(0);
    }
    expect(await reopened.verify()).toEqual({ events: 300, problems: [] });
    await reopened.close();
    const file = new Database(join(dir, 'ledger.db'), { readonly: true });
    expect(file.prepare('SELECT count(*) FROM map_top').pluck().get()).toBe(top.length);
    expect(file.prepare('SELECT count(*) FROM map').pluck().get()).toBe(deep);
    file.close();
  });

  it('a damaged map node stops the node from opening; a stored head with another map root is found by the audit', async () => {
    const { dir, signer } = await filled();
    const db = new Database(join(dir, 'ledger.db'));
    const root = db.prepare<[], { path: Buffer; node: Buffer }>('SELECT path, node FROM map_top ORDER BY length(path) LIMIT 1').get();
    if (root === undefined) throw new Error('no map root node');
    const damaged = Buffer.from(root.node);
    damaged[5] = (damaged[5] ?? 0) ^ 1;
    db.prepare('UPDATE map_top SET node = ? WHERE path = ?').run(damaged, root.path);
    db.close();
    await expectCodeAsync(openNode(dir, signer), 'LEDGER_STORE_DAMAGED');

    const again = await filled();
    const file = new Database(join(again.dir, 'ledger.db'));
    file.prepare("UPDATE heads SET head = json_set(head, '$.map', ?) WHERE size = 3").run('A'.repeat(43));
    file.close();
    const node = await openNode(again.dir, again.signer);
    expect((await node.verify()).problems).toEqual(['the stored head of 3 events has a map root the log does not give']);
    await node.close();
  });

  it('a node that crashed between two writes of the map rows opens with the map the log gives, and proves from it', async () => {
    const dir = tempDir();
    const signer = nodeSigner();
    const node = await openNode(dir, signer);
    // Past one bulk write of the map rows and some way into the next: both states get imaged.
    const images: string[] = [];
    const policies: PolicyAddress[] = [];
    for (const count of [300, MAP_FLUSH_EVENTS]) {
      const events = Array.from({ length: count }, () => {
        const key = testKey();
        return signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]);
      });
      const results = await node.submitMany(events);
      for (const r of results) if (r.ok) policies.push(r.receipt.subject as PolicyAddress);
      await node.drain();
      // The file as a crash would leave it: the database and its write-ahead log, synced.
      const image = tempDir();
      for (const name of ['ledger.db', 'ledger.db-wal']) copyFileSync(join(dir, name), join(image, name));
      images.push(image);
    }
    expect(policies).toHaveLength(300 + MAP_FLUSH_EVENTS);
    const final = node.head();
    await node.close();
    for (const [i, image] of images.entries()) {
      const file = new Database(join(image, 'ledger.db'), { readonly: true });
      const rows = Object.fromEntries(
        file
          .prepare<[], { name: string; value: number }>('SELECT name, value FROM derived')
          .all()
          .map((r) => [r.name, r.value]),
      );
      file.close();
      // The stored map rows lag the log: what the node must recompute when it opens.
      expect(rows['map'] ?? 0).toBeLessThan(rows['size'] ?? 0);
      const reopened = await openNode(image, signer);
      const size = i === 0 ? 300 : 300 + MAP_FLUSH_EVENTS;
      expect(reopened.size).toBe(size);
      const snapshot = await reopened.snapshot();
      for (const policy of [policies[0], policies[size - 1]]) {
        if (policy === undefined) throw new Error('no policy');
        const proof = verifyMapProof(mapRootBytes(snapshot.head), mapKey(policy), snapshot.mapProof(policy));
        expect(proof.ok && proof.entry?.seq).toBe(0);
      }
      expect(await reopened.verify()).toEqual({ events: size, problems: [] });
      await reopened.close();
    }
    // Closed cleanly, the file holds every map row.
    const file = new Database(join(dir, 'ledger.db'), { readonly: true });
    const rows = Object.fromEntries(
      file
        .prepare<[], { name: string; value: number }>('SELECT name, value FROM derived')
        .all()
        .map((r) => [r.name, r.value]),
    );
    file.close();
    expect(rows).toEqual({ size: final.size, map: final.size });
  });
});

describe('closing a node', () => {
  it('gives up on a store that stopped answering after its grace: every submission is answered, the store closed', async () => {
    const node = await openNode(tempDir(), nodeSigner());
    const recovery = testKey();
    const event = () => {
      const agent = testKey();
      return signEvent(policyCreate([agent.agent(ALL_FLAGS)], commitment([recovery])), [agent]);
    };
    await node.submit(event());
    // From now on the store never answers an append: its batch, and those queued behind it, wait.
    const store = node.store as { appendWritten?: unknown; close: () => Promise<void> };
    store.appendWritten = () => new Promise(() => undefined);
    let storeClosed = false;
    const close = store.close.bind(store);
    store.close = async () => {
      storeClosed = true;
      await close();
    };
    const waiting = Array.from({ length: 5 }, () => node.submit(event()));
    const outcomes = Promise.allSettled(waiting);
    await node.close(200);
    for (const outcome of await outcomes) {
      expect(outcome.status).toBe('rejected');
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'LEDGER_STORE_UNAVAILABLE' });
    }
    expect(storeClosed).toBe(true);
    // A closed node takes nothing more.
    await expectCodeAsync(node.submit(event()), 'LEDGER_STORE_UNAVAILABLE');
  });
});
