/**
 * What every agency store must do, run against each backend (agency-store.test.ts: SQLite;
 * pg-agency-store.test.ts: PostgreSQL): cloud agents, routes (one key may be routed by several
 * owners' cloud agents), the durable mailboxes kept per (cloud agent, recipient) and their
 * limits, and guest mail.
 */
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ROUTES, type AgencyStore, type CloudAgentRecord, type Delivery, type MailboxLimits, type StoredMessage } from '../../src/agency/agency-store.js';
import { ed25519Generate, encodePublicKey, fromUtf8, randomBytes, toBase58btc, utf8, x25519Generate } from '../../src/crypto/index.js';
import type { DkmsError } from '../../src/errors.js';
import { expectCodeAsync } from './errors.js';

/** A backend under test: `fresh` opens an empty store of it. */
export interface StoreBackend {
  readonly name: string;
  fresh(): Promise<AgencyStore>;
}

export const LIMITS: MailboxLimits = { maxMessages: 3, maxBytes: 1000, maxGuestMessages: 2, maxSourceMessages: 1000, maxSourceBytes: 1_000_000 };
const NOW = '2030-01-01T12:00:00.000Z';

export const agentKey = () => encodePublicKey('ed25519', ed25519Generate().publicKey);
export const kxKey = () => encodePublicKey('x25519', x25519Generate().publicKey);

export function cloudRecord(): CloudAgentRecord {
  return { id: toBase58btc(randomBytes(16)), policy: `policy:${toBase58btc(randomBytes(32))}`, key: agentKey(), kx: kxKey(), created: NOW };
}

/** A store with one cloud agent routing to two edge agents. */
export async function withCloud(store: AgencyStore): Promise<{ store: AgencyStore; cloud: CloudAgentRecord; a: string; b: string }> {
  const cloud = cloudRecord();
  await store.addCloudAgent(cloud);
  const a = agentKey();
  const b = agentKey();
  await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b, kx: kxKey() }]);
  return { store, cloud, a, b };
}

export const envelope = (text: string) => utf8(JSON.stringify({ text }));
export const texts = (messages: readonly StoredMessage[]) => messages.map((m) => (JSON.parse(fromUtf8(m.envelope)) as { text: string }).text);

/** Delivers `text` to `recipients` on behalf of the cloud agent `cloudId`. */
export function deliver(
  store: AgencyStore,
  cloudId: string,
  recipients: readonly string[],
  text: string,
  options: { received?: string; limits?: MailboxLimits; source?: string } = {},
): Promise<string[]> {
  return store
    .deliver(
      { cloudId, recipients, envelope: envelope(text), received: options.received ?? NOW, source: options.source ?? '127.0.0.1' },
      options.limits ?? LIMITS,
    )
    .then((d) => d.ids);
}

/** The cases, against `backend`: each test gets a fresh store, closed when it finishes. */
export function agencyStoreCases(backend: StoreBackend): void {
  const openStore = async (): Promise<AgencyStore> => {
    const store = await backend.fresh();
    onTestFinished(() => store.close());
    return store;
  };

  describe(`agency store (${backend.name}): cloud agents and routes`, () => {
    it('finds a cloud agent by id, key-agreement key and policy', async () => {
      const store = await openStore();
      const cloud = cloudRecord();
      const other = cloudRecord();
      await store.addCloudAgent(cloud);
      await store.addCloudAgent(other);
      expect(await store.cloudAgent(cloud.id)).toEqual(cloud);
      expect(await store.cloudAgentByKx(cloud.kx)).toEqual(cloud);
      expect(await store.cloudAgentOfPolicy(cloud.policy)).toEqual(cloud);
      expect(await store.cloudAgentOfPolicy(other.policy)).toEqual(other);
      const stranger = cloudRecord();
      expect(await store.cloudAgent(stranger.id)).toBeUndefined();
      expect(await store.cloudAgentByKx(stranger.kx)).toBeUndefined();
      expect(await store.cloudAgentOfPolicy(stranger.policy)).toBeUndefined();
    });

    it('refuses a second cloud agent for the same policy', async () => {
      const store = await openStore();
      const cloud = cloudRecord();
      await store.addCloudAgent(cloud);
      await expect(store.addCloudAgent({ ...cloudRecord(), policy: cloud.policy })).rejects.toThrow();
      expect(await store.cloudAgentOfPolicy(cloud.policy)).toEqual(cloud);
    });

    it('replaces routes, reporting what was added and removed, and deletes the mail of removed agents', async () => {
      const store = await openStore();
      const cloud = cloudRecord();
      await store.addCloudAgent(cloud);
      const [a, b, c] = [agentKey(), agentKey(), agentKey()] as [string, string, string];
      const bKx = kxKey();
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b, kx: bKx }])).toEqual({ added: [a, b], removed: [] });
      expect(await store.routes(cloud.id)).toEqual([{ agentKey: a }, { agentKey: b, kx: bKx }].sort((x, y) => (x.agentKey < y.agentKey ? -1 : 1)));
      expect(await store.isRouted(cloud.id, a)).toBe(true);
      expect(await store.isRouted(cloud.id, c)).toBe(false);
      expect(await store.wasRemoved(cloud.id, a)).toBe(false);
      expect(await store.wasRemoved(cloud.id, c)).toBe(false);

      await deliver(store, cloud.id, [a, b], 'before');
      expect(await store.setRoutes(cloud.id, [{ agentKey: b, kx: bKx }, { agentKey: c }])).toEqual({ added: [c], removed: [a] });
      expect(await store.isRouted(cloud.id, a)).toBe(false);
      expect(await store.isRouted(cloud.id, c)).toBe(true);
      // The removed agent is remembered as removed; the others are not.
      expect(await store.wasRemoved(cloud.id, a)).toBe(true);
      expect(await store.wasRemoved(cloud.id, b)).toBe(false);
      expect(await store.wasRemoved(cloud.id, c)).toBe(false);
      expect(await store.pickup(a, 10)).toEqual([]);
      expect(texts(await store.pickup(b, 10))).toEqual(['before']);
      // The same routes again change nothing, and the removal is still remembered.
      expect(await store.setRoutes(cloud.id, [{ agentKey: b, kx: bKx }, { agentKey: c }])).toEqual({ added: [], removed: [] });
      expect(await store.wasRemoved(cloud.id, a)).toBe(true);

      // Routing the removed agent again clears its removal; its counters went with its mail, so
      // the whole routed limit is free again.
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b, kx: bKx }, { agentKey: c }])).toEqual({ added: [a], removed: [] });
      expect(await store.wasRemoved(cloud.id, a)).toBe(false);
      expect(await store.isRouted(cloud.id, a)).toBe(true);
      for (let i = 0; i < LIMITS.maxMessages; i++) await deliver(store, cloud.id, [a], `again ${i}`);
      await expectCodeAsync(deliver(store, cloud.id, [a], 'one too many'), 'MAILBOX_FULL');
      expect(texts(await store.pickup(a, 10))).toEqual(['again 0', 'again 1', 'again 2']);

      // Removing every route.
      expect(await store.setRoutes(cloud.id, [])).toEqual({ added: [], removed: [a, b, c].sort() });
      expect(await store.routes(cloud.id)).toEqual([]);
      for (const key of [a, b, c]) {
        expect(await store.pickup(key, 10)).toEqual([]);
        expect(await store.wasRemoved(cloud.id, key)).toBe(true);
        expect(await store.isRouted(cloud.id, key)).toBe(false);
      }
    });

    it("lets two cloud agents route the same key, keeping, counting and removing each one's mail apart", async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const rival = cloudRecord();
      await store.addCloudAgent(rival);
      const d = agentKey();
      // The rival routes `a` too: both routes stand.
      expect(await store.setRoutes(rival.id, [{ agentKey: d }, { agentKey: a }])).toEqual({ added: [d, a], removed: [] });
      expect(await store.routes(rival.id)).toEqual([{ agentKey: a }, { agentKey: d }].sort((x, y) => (x.agentKey < y.agentKey ? -1 : 1)));
      expect((await store.routes(cloud.id)).map((r) => r.agentKey)).toEqual([a, b].sort());
      for (const owner of [cloud.id, rival.id]) expect(await store.isRouted(owner, a)).toBe(true);
      expect(await store.isRouted(cloud.id, d)).toBe(false);
      expect(await store.isRouted(rival.id, b)).toBe(false);

      // Each cloud agent's mail for `a` is counted on its own: each may fill its own routed limit.
      for (let i = 0; i < LIMITS.maxMessages; i++) await deliver(store, cloud.id, [a], `cloud ${i}`);
      await expectCodeAsync(deliver(store, cloud.id, [a], 'cloud over'), 'MAILBOX_FULL');
      for (let i = 0; i < LIMITS.maxMessages; i++) await deliver(store, rival.id, [a], `rival ${i}`);
      await expectCodeAsync(deliver(store, rival.id, [a, d], 'rival over'), 'MAILBOX_FULL');
      expect(await store.pickup(d, 10)).toEqual([]);
      await deliver(store, rival.id, [d], 'for d');
      // The agent picks up both owners' mail, oldest first.
      expect(texts(await store.pickup(a, 10))).toEqual(['cloud 0', 'cloud 1', 'cloud 2', 'rival 0', 'rival 1', 'rival 2']);

      // Acknowledging one of the cloud agent's messages frees room with that cloud agent only.
      const [first] = await store.pickup(a, 1);
      expect(await store.ack(a, [first?.id as string])).toBe(1);
      await expectCodeAsync(deliver(store, rival.id, [a], 'rival still full'), 'MAILBOX_FULL');
      await deliver(store, cloud.id, [a], 'cloud 3');
      await expectCodeAsync(deliver(store, cloud.id, [a], 'cloud over again'), 'MAILBOX_FULL');

      // The rival stops routing `a`: only the rival's mail for it goes, and only the rival remembers it as removed.
      expect(await store.setRoutes(rival.id, [{ agentKey: d }])).toEqual({ added: [], removed: [a] });
      expect(texts(await store.pickup(a, 10))).toEqual(['cloud 1', 'cloud 2', 'cloud 3']);
      expect(texts(await store.pickup(d, 10))).toEqual(['for d']);
      expect(await store.wasRemoved(rival.id, a)).toBe(true);
      expect(await store.wasRemoved(cloud.id, a)).toBe(false);
      expect(await store.isRouted(rival.id, a)).toBe(false);
      expect(await store.isRouted(cloud.id, a)).toBe(true);
      // The cloud agent's counters were left alone: its mailbox for `a` is still full.
      await expectCodeAsync(deliver(store, cloud.id, [a], 'still full'), 'MAILBOX_FULL');
    });
  });

  describe(`agency store (${backend.name}): delivery and limits`, () => {
    it('stores one copy per recipient', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const ids = await deliver(store, cloud.id, [a, b], 'hello');
      expect(ids).toHaveLength(2);
      expect(new Set(ids).size).toBe(2);
      const [forA] = await store.pickup(a, 10);
      const [forB] = await store.pickup(b, 10);
      expect(forA).toEqual({ id: ids[0], received: NOW, envelope: envelope('hello') });
      expect(forB).toEqual({ id: ids[1], received: NOW, envelope: envelope('hello') });
    });

    it('refuses the whole delivery when one recipient is over maxMessages', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      for (let i = 0; i < 3; i++) await deliver(store, cloud.id, [a], `a${i}`);
      await expectCodeAsync(deliver(store, cloud.id, [b, a], 'both'), 'MAILBOX_FULL');
      expect(await store.pickup(b, 10)).toEqual([]);
      expect(texts(await store.pickup(a, 10))).toEqual(['a0', 'a1', 'a2']);
      // b alone is still welcome.
      await deliver(store, cloud.id, [b], 'b only');
      expect(texts(await store.pickup(b, 10))).toEqual(['b only']);
    });

    it('refuses a delivery that would put a recipient over maxBytes', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const big = 'x'.repeat(600);
      await deliver(store, cloud.id, [a], big);
      // Another envelope of the same size (the same one would be a's waiting copy, stored once).
      await expectCodeAsync(deliver(store, cloud.id, [b, a], 'z'.repeat(600)), 'MAILBOX_FULL');
      expect(await store.pickup(b, 10)).toEqual([]);
      expect(await store.pickup(a, 10)).toHaveLength(1);
      // An envelope bigger than maxBytes on its own never fits.
      await expectCodeAsync(deliver(store, cloud.id, [b], 'y'.repeat(1000)), 'MAILBOX_FULL');
      expect(await store.pickup(b, 10)).toEqual([]);
      // What still fits is accepted.
      await deliver(store, cloud.id, [a], 'small');
      expect(await store.pickup(a, 10)).toHaveLength(2);
    });

    it('holds guests (keys nobody routes) to maxGuestMessages', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const guest = agentKey();
      await deliver(store, cloud.id, [guest], 'g0');
      await deliver(store, cloud.id, [guest], 'g1');
      await expectCodeAsync(deliver(store, cloud.id, [a, guest], 'g2'), 'MAILBOX_FULL');
      expect(await store.pickup(a, 10)).toEqual([]);
      expect(texts(await store.pickup(guest, 10))).toEqual(['g0', 'g1']);
      // A routed agent gets the larger limit.
      for (let i = 0; i < 3; i++) await deliver(store, cloud.id, [a], `a${i}`);
      await expectCodeAsync(deliver(store, cloud.id, [a], 'a3'), 'MAILBOX_FULL');
    });

    it('counts guest mail per cloud agent; a key routed by one cloud agent is a guest of another', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const rival = cloudRecord();
      await store.addCloudAgent(rival);
      const guest = agentKey();
      for (const from of [cloud.id, rival.id]) {
        await deliver(store, from, [guest], `${from === cloud.id ? 'cloud' : 'rival'} g0`);
        await deliver(store, from, [guest], `${from === cloud.id ? 'cloud' : 'rival'} g1`);
        await expectCodeAsync(deliver(store, from, [guest], 'over'), 'MAILBOX_FULL');
      }
      expect(texts(await store.pickup(guest, 10))).toEqual(['cloud g0', 'cloud g1', 'rival g0', 'rival g1']);
      // `a` is routed by the cloud agent only: the rival holds it to the guest limit.
      await deliver(store, rival.id, [a], 'r0');
      await deliver(store, rival.id, [a], 'r1');
      await expectCodeAsync(deliver(store, rival.id, [a], 'r2'), 'MAILBOX_FULL');
      for (let i = 0; i < LIMITS.maxMessages; i++) await deliver(store, cloud.id, [a], `c${i}`);
      expect(texts(await store.pickup(a, 10))).toEqual(['r0', 'r1', 'c0', 'c1', 'c2']);
    });

    it('commits several deliveries in one transaction, refusing only the ones over a limit', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      await deliver(store, cloud.id, [a], 'a0');
      await deliver(store, cloud.id, [a], 'a1');
      const batch = ['a2', 'a3', 'b0', 'ab'].map((text) => ({
        cloudId: cloud.id,
        recipients: text === 'ab' ? [a, b] : text.startsWith('a') ? [a] : [b],
        envelope: envelope(text),
        received: NOW,
        source: '127.0.0.1',
      }));
      const results = await store.deliverMany(batch, LIMITS);
      // a holds 3 at most: a2 fits, a3 and the delivery to both (which includes a) are refused whole.
      expect(results.map((r) => (r instanceof Error ? (r as DkmsError).code : r.ids.length))).toEqual([1, 'MAILBOX_FULL', 1, 'MAILBOX_FULL']);
      expect(texts(await store.pickup(a, 10))).toEqual(['a0', 'a1', 'a2']);
      expect(texts(await store.pickup(b, 10))).toEqual(['b0']);
    });

    it('delivers to every key the cloud agent routes to when the copies are stored, and refuses a cloud agent with none (NOT_FOUND)', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const all = (text: string): Delivery => ({ cloudId: cloud.id, recipients: ROUTES, envelope: envelope(text), received: NOW, source: '127.0.0.1' });
      const first = await store.deliver(all('to all'), LIMITS);
      expect(first.recipients).toEqual([a, b].sort());
      expect(first.ids).toHaveLength(2);
      // b removed: the next copies are a's alone, chosen in the store, whatever the caller read before.
      const c = agentKey();
      await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: c }]);
      const empty = cloudRecord();
      await store.addCloudAgent(empty);
      const [second, none] = await store.deliverMany([all('after'), { ...all('nobody'), cloudId: empty.id }], LIMITS);
      expect(second).toEqual({ ids: expect.any(Array), recipients: [a, c].sort() });
      expect((none as DkmsError).code).toBe('NOT_FOUND');
      expect(texts(await store.pickup(a, 10))).toEqual(['to all', 'after']);
      expect(texts(await store.pickup(b, 10))).toEqual([]);
      expect(texts(await store.pickup(c, 10))).toEqual(['after']);
    });

    it('with guestsSince, delivers to a key not routed only if it was allowed as a guest since then and never removed, refusing the delivery whole otherwise', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const to = (keys: string[], text: string): Delivery => ({
        cloudId: cloud.id,
        recipients: keys,
        guestsSince: '2030-01-02T00:00:00.000Z',
        envelope: envelope(text),
        received: NOW,
        source: '127.0.0.1',
      });
      const stranger = agentKey();
      const stale = agentKey();
      const guest = agentKey();
      await store.allowGuest(cloud.id, stale, '2030-01-01T00:00:00.000Z', 8);
      await store.allowGuest(cloud.id, guest, '2030-01-03T00:00:00.000Z', 8);
      const results = await store.deliverMany(
        [to([a], 'routed'), to([stranger], 'stranger'), to([stale], 'stale'), to([guest], 'guest'), to([a, stranger], 'both')],
        LIMITS,
      );
      expect(results.map((r) => (r instanceof Error ? (r as DkmsError).code : r.recipients))).toEqual([[a], 'NOT_FOUND', 'NOT_FOUND', [guest], 'NOT_FOUND']);
      expect((results[1] as DkmsError).message).toContain(stranger);
      expect(texts(await store.pickup(a, 10))).toEqual(['routed']);
      expect(texts(await store.pickup(guest, 10))).toEqual(['guest']);
      expect(await store.pickup(stranger, 10)).toEqual([]);
      expect(await store.pickup(stale, 10)).toEqual([]);
      // A key the cloud agent stopped routing to is no guest, allowed or not.
      await store.setRoutes(cloud.id, [], { removed: [guest] });
      await expectCodeAsync(store.deliver(to([guest], 'after removal'), LIMITS), 'NOT_FOUND');
    });

    it('stores an envelope identical to one still waiting, or acknowledged a moment ago, once, giving its id', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const first = await deliver(store, cloud.id, [a], 'same');
      expect(await deliver(store, cloud.id, [a], 'same', { source: '127.0.0.9' })).toEqual(first);
      // For both recipients: a's copy is the one waiting, b's is new.
      const both = await deliver(store, cloud.id, [a, b], 'same');
      expect(both[0]).toBe(first[0]);
      expect(both[1]).not.toBe(first[0]);
      expect(texts(await store.pickup(a, 10))).toEqual(['same']);
      expect(texts(await store.pickup(b, 10))).toEqual(['same']);
      // Resending it fills no mailbox: a holds 3 at most, and it still takes two more.
      for (let i = 0; i < 10; i++) await deliver(store, cloud.id, [a], 'same');
      await deliver(store, cloud.id, [a], 'other 1');
      await deliver(store, cloud.id, [a], 'other 2');
      expect(texts(await store.pickup(a, 10))).toEqual(['same', 'other 1', 'other 2']);
      // Acknowledged, it is remembered for a while: a sender's retry (its 202 lost) is the same
      // message, not a second one; for b, whose copy still waits, too.
      expect(await store.ack(a, first)).toBe(1);
      expect(await deliver(store, cloud.id, [a, b], 'same')).toEqual([first[0], both[1]]);
      expect(texts(await store.pickup(a, 10))).toEqual(['other 1', 'other 2']);
      // Purges keep it remembered until its time is up.
      await store.purgeGuests('2000-01-01T00:00:00.000Z');
      expect(await deliver(store, cloud.id, [a], 'same')).toEqual(first);
    });

    it('holds each sender to its share of a mailbox, so that mail from others still gets in; the share frees as mail is picked up', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const limits = { ...LIMITS, maxMessages: 100, maxBytes: 100_000, maxSourceMessages: 3, maxSourceBytes: 100 };
      const flooder = '127.0.0.2';
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push(...(await deliver(store, cloud.id, [a], `junk ${i}`, { limits, source: flooder })));
      const full = await expectCodeAsync(deliver(store, cloud.id, [a], 'junk 3', { limits, source: flooder }), 'MAILBOX_FULL');
      expect(full.message).toMatch(/share/);
      // By bytes too: another sender at 100 bytes is over its share with one more.
      const big = 'x'.repeat(80);
      await deliver(store, cloud.id, [a], big, { limits, source: '127.0.0.3' });
      await expectCodeAsync(deliver(store, cloud.id, [a], `${big}!`, { limits, source: '127.0.0.3' }), 'MAILBOX_FULL');
      // Others still get in.
      await deliver(store, cloud.id, [a], 'from a friend', { limits, source: '127.0.0.1' });
      expect(texts(await store.pickup(a, 10))).toEqual(['junk 0', 'junk 1', 'junk 2', big, 'from a friend']);
      // Acknowledged, the flooder's share frees; so does a route's removal, with its mail.
      expect(await store.ack(a, ids.slice(0, 1))).toBe(1);
      await deliver(store, cloud.id, [a], 'junk 4', { limits, source: flooder });
      await store.setRoutes(cloud.id, []);
      await store.setRoutes(cloud.id, [{ agentKey: a }]);
      for (let i = 5; i < 8; i++) await deliver(store, cloud.id, [a], `junk ${i}`, { limits, source: flooder });
    });

    it('picks up the oldest messages first, at most `limit`', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const limits = { ...LIMITS, maxMessages: 100, maxBytes: 100_000 };
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push(...(await deliver(store, cloud.id, [a], `m${i}`, { limits })));
      const first = await store.pickup(a, 3);
      expect(first.map((m) => m.id)).toEqual(ids.slice(0, 3));
      expect(texts(first)).toEqual(['m0', 'm1', 'm2']);
      expect(texts(await store.pickup(a, 100))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
      // Picking up does not remove anything.
      expect(await store.pickup(a, 100)).toHaveLength(7);
      await store.ack(a, ids.slice(0, 2));
      expect(texts(await store.pickup(a, 2))).toEqual(['m2', 'm3']);
    });

    it("acknowledges only the caller's own messages and frees room for new ones", async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const [a0] = await deliver(store, cloud.id, [a], 'a0');
      const [a1, b1] = await deliver(store, cloud.id, [a, b], 'ab');
      await deliver(store, cloud.id, [a], 'a2');
      await expectCodeAsync(deliver(store, cloud.id, [a], 'a3'), 'MAILBOX_FULL');
      expect(await store.ack(b, [a0 as string, a1 as string])).toBe(0);
      expect(await store.pickup(a, 10)).toHaveLength(3);
      expect(await store.ack(a, [a0 as string, a1 as string, b1 as string, 'not-a-number', '999999999'])).toBe(2);
      expect(texts(await store.pickup(a, 10))).toEqual(['a2']);
      expect(texts(await store.pickup(b, 10))).toEqual(['ab']);
      // Acknowledging again counts nothing.
      expect(await store.ack(a, [a0 as string, a1 as string])).toBe(0);
      expect(await store.ack(a, [])).toBe(0);
      // The counters went down with the acknowledged messages.
      await deliver(store, cloud.id, [a], 'a3');
      await deliver(store, cloud.id, [a], 'a4');
      await expectCodeAsync(deliver(store, cloud.id, [a], 'a5'), 'MAILBOX_FULL');
      expect(texts(await store.pickup(a, 10))).toEqual(['a2', 'a3', 'a4']);
    });

    it('frees bytes on acknowledgement as well as messages', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const [first] = await deliver(store, cloud.id, [a], 'x'.repeat(600));
      await expectCodeAsync(deliver(store, cloud.id, [a], 'y'.repeat(600)), 'MAILBOX_FULL');
      expect(await store.ack(a, [first as string])).toBe(1);
      await deliver(store, cloud.id, [a], 'y'.repeat(600));
      expect(await store.pickup(a, 10)).toHaveLength(1);
    });

    it('keeps mailboxes consistent with a simple model under any mix of deliveries, acks and purges by two cloud agents', async () => {
      const DAYS = ['2030-01-01T00:00:00.000Z', '2030-01-02T00:00:00.000Z', '2030-01-03T00:00:00.000Z'];
      type Op =
        | { kind: 'deliver'; from: number; to: number[]; size: number; day: number }
        | { kind: 'ack'; who: number; picks: number[] }
        | { kind: 'purge'; day: number };
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({
          kind: fc.constant('deliver' as const),
          from: fc.integer({ min: 0, max: 1 }),
          to: fc.uniqueArray(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 3 }),
          size: fc.integer({ min: 0, max: 400 }),
          day: fc.integer({ min: 0, max: 2 }),
        }),
        fc.record({ kind: fc.constant('ack' as const), who: fc.integer({ min: 0, max: 2 }), picks: fc.array(fc.nat(), { maxLength: 4 }) }),
        fc.record({ kind: fc.constant('purge' as const), day: fc.integer({ min: 0, max: 2 }) }),
      );
      // Cloud agent 0 routes keys 0 and 1, cloud agent 1 routes key 1 only: key 1 has two owners,
      // key 0 is a guest of cloud agent 1, key 2 a guest of both.
      const routed = [new Set([0, 1]), new Set([1])];
      const isGuest = (cloud: number, key: number) => !(routed[cloud] as Set<number>).has(key);
      type Mail = { id: string; cloud: number; to: number; bytes: number; text: string; day: number };
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
          const store = await backend.fresh();
          try {
            const clouds = [cloudRecord(), cloudRecord()];
            const keys = [agentKey(), agentKey(), agentKey()];
            for (const [c, record] of clouds.entries()) {
              await store.addCloudAgent(record);
              await store.setRoutes(
                record.id,
                [...(routed[c] as Set<number>)].map((i) => ({ agentKey: keys[i] as string })),
              );
            }
            let model: Mail[] = [];
            let n = 0;
            for (const step of ops) {
              if (step.kind === 'deliver') {
                const text = `${n++}:${'z'.repeat(step.size)}`;
                const bytes = envelope(text).length;
                const fits = step.to.every((i) => {
                  const box = model.filter((m) => m.cloud === step.from && m.to === i);
                  const max = isGuest(step.from, i) ? LIMITS.maxGuestMessages : LIMITS.maxMessages;
                  return box.length + 1 <= max && box.reduce((sum, m) => sum + m.bytes, 0) + bytes <= LIMITS.maxBytes;
                });
                const recipients = step.to.map((i) => keys[i] as string);
                const cloudId = (clouds[step.from] as CloudAgentRecord).id;
                const received = DAYS[step.day] as string;
                if (fits) {
                  const ids = await deliver(store, cloudId, recipients, text, { received });
                  step.to.forEach((i, j) => model.push({ id: ids[j] as string, cloud: step.from, to: i, bytes, text, day: step.day }));
                } else {
                  await expectCodeAsync(deliver(store, cloudId, recipients, text, { received }), 'MAILBOX_FULL');
                }
              } else if (step.kind === 'ack') {
                const everyId = model.map((m) => m.id);
                const ids = [...new Set(step.picks.map((p) => everyId[p % Math.max(everyId.length, 1)] ?? '0'))];
                const acked = model.filter((m) => m.to === step.who && ids.includes(m.id));
                expect(await store.ack(keys[step.who] as string, ids)).toBe(acked.length);
                model = model.filter((m) => !acked.includes(m));
              } else {
                const purged = model.filter((m) => m.day < step.day && isGuest(m.cloud, m.to));
                expect(await store.purgeGuests(DAYS[step.day] as string)).toBe(purged.length);
                model = model.filter((m) => !purged.includes(m));
              }
            }
            for (let i = 0; i < 3; i++) {
              expect(texts(await store.pickup(keys[i] as string, 100))).toEqual(model.filter((m) => m.to === i).map((m) => m.text));
            }
          } finally {
            await store.close();
          }
        }),
        { numRuns: 40 },
      );
    });
  });

  describe(`agency store (${backend.name}): guest mail`, () => {
    it('purges guest mail received before the cutoff and keeps routed mail and newer guests', async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const oldGuest = agentKey();
      const newGuest = agentKey();
      const old = '2030-01-01T00:00:00.000Z';
      const recent = '2030-01-02T00:00:00.000Z';
      await deliver(store, cloud.id, [oldGuest], 'old guest 1', { received: old });
      await deliver(store, cloud.id, [oldGuest, a], 'old guest 2 and routed', { received: old });
      await deliver(store, cloud.id, [newGuest], 'new guest', { received: recent });
      expect(await store.purgeGuests('2030-01-01T12:00:00.000Z')).toBe(2);
      expect(await store.pickup(oldGuest, 10)).toEqual([]);
      expect(texts(await store.pickup(newGuest, 10))).toEqual(['new guest']);
      expect(texts(await store.pickup(a, 10))).toEqual(['old guest 2 and routed']);
      expect(await store.purgeGuests('2030-01-01T12:00:00.000Z')).toBe(0);
      // The purged guest's counters are gone too.
      await deliver(store, cloud.id, [oldGuest], 'again 1');
      await deliver(store, cloud.id, [oldGuest], 'again 2');
      expect(await store.pickup(oldGuest, 10)).toHaveLength(2);
    });

    it('purges only the guest mail received before the cutoff, not newer mail in the same mailbox', async () => {
      const { store, cloud } = await withCloud(await openStore());
      const guest = agentKey();
      await deliver(store, cloud.id, [guest], 'old', { received: '2030-01-01T00:00:00.000Z' });
      await deliver(store, cloud.id, [guest], 'new', { received: '2030-01-02T00:00:00.000Z' });
      expect(await store.purgeGuests('2030-01-01T12:00:00.000Z')).toBe(1);
      expect(texts(await store.pickup(guest, 10))).toEqual(['new']);
      // The purged message's place is free again: the guest limit counts only what is left.
      await deliver(store, cloud.id, [guest], 'newer');
      await expectCodeAsync(deliver(store, cloud.id, [guest], 'over'), 'MAILBOX_FULL');
      expect(texts(await store.pickup(guest, 10))).toEqual(['new', 'newer']);
    });

    it("purges a routed key's mail from a cloud agent that does not route it, and keeps its routed mail", async () => {
      const { store, cloud, a } = await withCloud(await openStore());
      const rival = cloudRecord();
      await store.addCloudAgent(rival);
      const old = '2030-01-01T00:00:00.000Z';
      await deliver(store, cloud.id, [a], 'routed', { received: old });
      await deliver(store, rival.id, [a], 'guest', { received: old });
      expect(await store.purgeGuests('2030-01-01T12:00:00.000Z')).toBe(1);
      expect(texts(await store.pickup(a, 10))).toEqual(['routed']);
    });

    it('a guest mailbox becomes a routed one when its key is routed', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const pairing = agentKey();
      const old = '2030-01-01T00:00:00.000Z';
      await deliver(store, cloud.id, [pairing], 'p0', { received: old });
      await deliver(store, cloud.id, [pairing], 'p1', { received: old });
      await expectCodeAsync(deliver(store, cloud.id, [pairing], 'p2'), 'MAILBOX_FULL');
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }, { agentKey: pairing }])).toEqual({ added: [pairing], removed: [] });
      // Now held to the routed limit, and no longer purged as a guest.
      await deliver(store, cloud.id, [pairing], 'p2');
      await expectCodeAsync(deliver(store, cloud.id, [pairing], 'p3'), 'MAILBOX_FULL');
      expect(await store.purgeGuests('2031-01-01T00:00:00.000Z')).toBe(0);
      expect(texts(await store.pickup(pairing, 10))).toEqual(['p0', 'p1', 'p2']);
    });

    it('allows guests per cloud agent from a time on, up to a limit, and a guest key then has a mailbox', async () => {
      const store = await openStore();
      const [one, two] = [cloudRecord(), cloudRecord()];
      await store.addCloudAgent(one);
      await store.addCloudAgent(two);
      const guest = agentKey();
      expect(await store.hasMailbox(guest)).toBe(false);
      expect(await store.guestAllowed(one.id, guest, '2030-01-01T00:00:00.000Z')).toBe(false);
      await store.allowGuest(one.id, guest, '2030-01-02T00:00:00.000Z', 2);
      expect(await store.hasMailbox(guest)).toBe(true);
      expect(await store.guestAllowed(one.id, guest, '2030-01-01T00:00:00.000Z')).toBe(true);
      // Allowed since the 2nd: not by an allowance that must be newer than that.
      expect(await store.guestAllowed(one.id, guest, '2030-01-03T00:00:00.000Z')).toBe(false);
      // Per cloud agent.
      expect(await store.guestAllowed(two.id, guest, '2030-01-01T00:00:00.000Z')).toBe(false);
      // Allowed again, the time moves on; a second key fits, a third is over the limit (nothing changed).
      await store.allowGuest(one.id, guest, '2030-01-04T00:00:00.000Z', 2);
      expect(await store.guestAllowed(one.id, guest, '2030-01-03T00:00:00.000Z')).toBe(true);
      const second = agentKey();
      await store.allowGuest(one.id, second, '2030-01-04T00:00:00.000Z', 2);
      const third = agentKey();
      await expectCodeAsync(store.allowGuest(one.id, third, '2030-01-04T00:00:00.000Z', 2), 'MAILBOX_FULL');
      expect(await store.hasMailbox(third)).toBe(false);
      await store.allowGuest(one.id, guest, '2030-01-05T00:00:00.000Z', 2);
      // Allowances made before the cutoff go with the purge.
      await store.purgeGuests('2030-01-05T00:00:00.000Z');
      expect(await store.hasMailbox(second)).toBe(false);
      expect(await store.guestAllowed(one.id, guest, '2030-01-01T00:00:00.000Z')).toBe(true);
      await store.allowGuest(one.id, third, '2030-01-05T00:00:00.000Z', 2);
      expect(await store.hasMailbox(third)).toBe(true);
    });

    it('drops a guest allowance when its key is routed, so that a key routed and then removed keeps no mailbox', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const device = agentKey();
      await store.allowGuest(cloud.id, device, '2030-01-02T00:00:00.000Z', 8);
      await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }, { agentKey: device }]);
      expect(await store.guestAllowed(cloud.id, device, '2030-01-01T00:00:00.000Z')).toBe(false);
      await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }]);
      expect(await store.hasMailbox(device)).toBe(false);
      // Allowed as a guest and then named by the policy and revoked before ever being routed: no allowance either.
      const other = agentKey();
      await store.allowGuest(cloud.id, other, '2030-01-02T00:00:00.000Z', 8);
      await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }, { agentKey: other }]);
      await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }]);
      expect(await store.hasMailbox(other)).toBe(false);
    });

    it('never takes routes back to an older state of the policy, and marks keys the policy dropped as removed even if never routed', async () => {
      const { store, cloud, a, b } = await withCloud(await openStore());
      const never = agentKey();
      // State 10 revokes b and names `never`, which was granted and revoked before it was routed.
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }], { seq: 10, removed: [b, never] })).toEqual({ added: [], removed: [b] });
      expect([await store.wasRemoved(cloud.id, b), await store.wasRemoved(cloud.id, never)]).toEqual([true, true]);
      // A read of state 9, applied late (by another agency on the store), changes nothing.
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }], { seq: 9 })).toEqual({ added: [], removed: [] });
      expect(await store.isRouted(cloud.id, b)).toBe(false);
      expect(await deliver(store, cloud.id, [a, b, never], 'after')).toHaveLength(1);
      // State 11 grants b again.
      expect(await store.setRoutes(cloud.id, [{ agentKey: a }, { agentKey: b }], { seq: 11 })).toEqual({ added: [b], removed: [] });
    });

    it("keeps each cloud agent's sponsors, replaced as a whole", async () => {
      const store = await openStore();
      const [one, two] = [cloudRecord(), cloudRecord()];
      await store.addCloudAgent(one);
      await store.addCloudAgent(two);
      const [s1, s2, s3] = [agentKey(), agentKey(), agentKey()];
      await store.setSponsors(one.id, [s1, s2]);
      expect([
        await store.isSponsor(one.id, s1),
        await store.isSponsor(one.id, s2),
        await store.isSponsor(one.id, s3),
        await store.isSponsor(two.id, s1),
      ]).toEqual([true, true, false, false]);
      await store.setSponsors(one.id, [s3]);
      expect([await store.isSponsor(one.id, s1), await store.isSponsor(one.id, s3)]).toEqual([false, true]);
      await store.setSponsors(one.id, []);
      expect(await store.isSponsor(one.id, s3)).toBe(false);
    });
  });
}
