/**
 * k of n signed tree heads: several nodes serve one log; a client told their keys accepts a
 * head only when k of them signed it, and flags a node that signs another log.
 */
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { didCreate, policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient, type Divergence } from '../../src/ledger/client.js';
import type { Did } from '../../src/ledger/events.js';
import { LedgerNode } from '../../src/ledger/node.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import type { LogStore } from '../../src/ledger/store.js';
import { buildLedgerServer } from '../../src/server/ledger-api.js';
import { ALL_FLAGS } from '../../src/policy/flags.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, nodeSigner, testKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

async function serve(store: LogStore): Promise<{ node: LedgerNode; url: string; close: () => Promise<void> }> {
  const node = await LedgerNode.open(store, nodeSigner());
  const app = buildLedgerServer(node);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const close = () => app.close();
  onTestFinished(close);
  return { node, url, close };
}

/** Three nodes over one log, and a fourth over a log of its own (a node gone astray). */
async function cluster() {
  const store = SqliteLogStore.open(join(tempDir(), 'ledger.db'));
  onTestFinished(() => store.close());
  const nodes = [await serve(store), await serve(store), await serve(store)];
  const astray = await serve(SqliteLogStore.open(join(tempDir(), 'other.db')));
  const admin = testKey();
  const created = await nodes[0]?.node.submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([testKey()])), [admin]));
  const did = (await nodes[1]?.node.submit(signEvent(didCreate(created?.subject as never, []), [admin])))?.subject as Did;
  // The stray node holds two other events: at size 2 it signs a different root.
  for (let i = 0; i < 2; i++) {
    const other = testKey();
    await astray.node.submit(signEvent(policyCreate([other.agent(ALL_FLAGS)], commitment([testKey()])), [other]));
  }
  return { nodes, astray, did };
}

describe('k of n signed tree heads', () => {
  it('accepts a head two of three nodes signed, and reads through it', async () => {
    const { nodes, did } = await cluster();
    const [a, b, c] = nodes.map((n) => n);
    const client = new LedgerClient({ url: a?.url ?? '', witnesses: [b?.url ?? '', c?.url ?? ''], threshold: 2, trustedKeys: nodes.map((n) => n.node.key) });
    const head = await client.head();
    expect(head.size).toBe(2);
    const resolved = await client.resolveDid(did);
    expect(resolved.record.subject).toBe(did);
    expect(client.divergent).toEqual([]);
  });

  it('needs as many signatures as it was told: all three, and then one down is too many', async () => {
    const { nodes } = await cluster();
    const keys = nodes.map((n) => n.node.key);
    const urls = nodes.map((n) => n.url);
    const all = new LedgerClient({ url: urls[0] ?? '', witnesses: urls.slice(1), threshold: 3, trustedKeys: keys });
    expect((await all.head()).size).toBe(2);
    await nodes[2]?.close();
    const again = new LedgerClient({ url: urls[0] ?? '', witnesses: urls.slice(1), threshold: 3, trustedKeys: keys });
    await expectCodeAsync(again.head(), 'LEDGER_BAD_HEAD');
    const two = new LedgerClient({ url: urls[0] ?? '', witnesses: urls.slice(1), threshold: 2, trustedKeys: keys });
    expect((await two.head()).size).toBe(2);
  });

  it('flags a trusted node that signs another log for the same size, and still needs the quorum', async () => {
    const { nodes, astray } = await cluster();
    const seen: Divergence[] = [];
    const keys = [...nodes.map((n) => n.node.key), astray.node.key];
    const client = new LedgerClient({
      url: nodes[0]?.url ?? '',
      witnesses: [astray.url, nodes[1]?.url ?? ''],
      threshold: 2,
      trustedKeys: keys,
      onDivergence: (d) => seen.push(d),
    });
    const head = await client.head();
    expect(seen).toEqual([{ url: astray.url, key: astray.node.key, size: 2, root: expect.any(String), expected: head.root }]);
    expect(seen[0]?.root).not.toBe(head.root);
    expect(client.divergent).toEqual(seen);
    // With only the stray node as witness, two signatures cannot be had.
    const alone = new LedgerClient({ url: nodes[0]?.url ?? '', witnesses: [astray.url], threshold: 2, trustedKeys: keys });
    await expectCodeAsync(alone.head(), 'LEDGER_BAD_HEAD');
  });

  it('refuses to require more signatures than it has keys or witnesses for', () => {
    expect(() => new LedgerClient({ url: 'http://127.0.0.1:1', witnesses: ['http://127.0.0.1:2'], threshold: 2, trustedKeys: [testKey().publicKey] })).toThrow(
      expect.objectContaining({ code: 'BAD_INPUT' }),
    );
    const keys = [testKey().publicKey, testKey().publicKey, testKey().publicKey];
    expect(() => new LedgerClient({ url: 'http://127.0.0.1:1', witnesses: ['http://127.0.0.1:2'], threshold: 3, trustedKeys: keys })).toThrow(expect.objectContaining({ code: 'BAD_INPUT' }));
  });
});
