/**
 * Abuse of an agency, on loopback, from several 127.x source addresses, bounded in time: while
 * strangers flood it with validly signed requests, the owner's agents keep working. The rule
 * under test: an attacker's traffic never costs a legitimate agent a request, and what the
 * agency remembers of it stays bounded.
 */
import { describe, expect, it } from 'vitest';
import { inbox, sendText } from '../../src/agent/connections.js';
import { anoncrypt, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { RequestVerifier } from '../../src/agency/request-auth.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import { randomBytes } from '../../src/crypto/index.js';
import { FLAGS } from '../../src/policy/flags.js';
import { flood, signedAhead } from '../../bench/flood.js';
import { edgeAgent } from '../helpers/edge.js';
import { connect, settle, world } from '../helpers/world.js';

const FLOOD_MS = 4000;

/**
 * A pause between two rounds of the owners' requests, so that they stay within their keys' budgets.
 * Pacing a client under its rate limit, not a wait for a condition: nothing is expected to have happened after it.
 */
const pace = () => new Promise((resolve) => setTimeout(resolve, 100));

describe('an agency under abuse', () => {
  it("keeps serving the owner's agents while strangers flood it with validly signed requests, and keeps nothing of theirs", async () => {
    const verifier = new RequestVerifier();
    // The agency's default limits: 200 requests a second per address, 50 per admitted key.
    const w = await world({ agency: { verifier, rateLimitPerSecond: 200, agentRequestsPerSecond: 50 } });
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const bob = await w.makeOwner('bob');
    await connect(laptop, bob);
    await settle(laptop, phone, bob);
    const { id } = laptop.cloud();
    const legitKeys = 3;

    // One throwaway key, and a fresh one every 64 requests; times up to 50 s ahead. Pickups, syncs
    // of Alice's cloud agent and registrations of her policy: what an agent does.
    let stranger = edgeAgent();
    const attack = flood(
      w.agencyUrl,
      (i) => {
        if (i % 64 === 0) stranger = edgeAgent();
        const ahead = (i % 5) * 10_000;
        switch (i % 4) {
          case 0:
          case 1:
            return {
              method: 'GET',
              path: '/v1/mailbox?limit=1&wait=0',
              headers: signedAhead(stranger.signer, 'GET', '/v1/mailbox?limit=1&wait=0', undefined, ahead),
            };
          case 2: {
            const path = `/v1/cloud-agents/${id}/sync`;
            return {
              method: 'POST',
              path,
              headers: { ...signedAhead(stranger.signer, 'POST', path, {}, ahead), 'content-type': 'application/json' },
              body: '{}',
            };
          }
          default: {
            const body = { policy: laptop.profile.policy };
            return {
              method: 'POST',
              path: '/v1/cloud-agents',
              headers: { ...signedAhead(stranger.signer, 'POST', '/v1/cloud-agents', body, ahead), 'content-type': 'application/json' },
              body: JSON.stringify(body),
            };
          }
        }
        // 64 in flight: a refused sync or registration is held up to 2 s (while the agency waits for
        // its ledger follower to tell a just-granted agent from a stranger), pickups are not.
      },
      64,
    );

    // Meanwhile the owner's agents sync, pick up, and receive what a real peer sends them.
    const started = Date.now();
    let rounds = 0;
    try {
      while (Date.now() - started < FLOOD_MS || rounds < 3) {
        rounds++;
        // Within their own budget (50 requests a second per key): a round is about four of each key's.
        await pace();
        await laptop.agency().sync(id);
        await phone.agency().sync(id);
        await sendText(bob, 'alice', `round ${rounds}`);
        expect(await laptop.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'handled' })]);
        expect(await phone.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'handled' })]);
        expect(inbox(laptop).at(-1)?.content).toBe(`round ${rounds}`);
        expect(inbox(phone).at(-1)?.content).toBe(`round ${rounds}`);
      }
    } finally {
      await attack.stop();
    }

    // The flood was real (pickups refused at once, syncs and registrations after up to 2 s), and
    // got nothing but refusals.
    expect(attack.sent()).toBeGreaterThan(250);
    expect([...attack.statuses.keys()].every((status) => [401, 404, 429].includes(status))).toBe(true);
    expect(attack.statuses.get(404) ?? 0).toBeGreaterThan(100);
    expect(attack.statuses.get(401) ?? 0).toBeGreaterThan(50);
    // Nothing of the strangers' is remembered: only the owners' keys have replay windows.
    expect(verifier.size.keys).toBeLessThanOrEqual(legitKeys);
    // And afterwards everything still works, the phone's mailbox included.
    await sendText(bob, 'alice', 'after the flood');
    expect((await phone.receive(ALL_HANDLERS)).map((e) => e.outcome)).toEqual(['handled']);
    expect(inbox(phone).at(-1)?.content).toBe('after the flood');
  });

  it("keeps taking a peer's messages for the owner while strangers flood its mailboxes with junk, each held to its share", async () => {
    // Mailboxes of 6 MiB and a sender's share of 1 MiB (the defaults: 64 and 8), so that the flood
    // meets its share within seconds: the four attacking addresses together hold at most 4 MiB.
    const w = await world({
      agency: { rateLimitPerSecond: 200, agentRequestsPerSecond: 50, limits: { maxBytes: 6 * 1024 * 1024, maxSourceBytes: 1024 * 1024 } },
    });
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const bob = await w.makeOwner('bob');
    await connect(laptop, bob);
    await settle(laptop, phone, bob);
    const cloud = laptop.cloud();
    const routing = [recipientFromKid(cloud.routingKey)];
    const agentsOf = [recipientFromKid(`did:key:${laptop.profile.kx}#${laptop.profile.kx}`)];

    // Junk of about 100 KB a message, every one different (identical ones would be stored once),
    // for every agent of the owner: what only the cloud agent's public key lets anyone send.
    const attack = flood(w.agencyUrl, () => {
      const junk = wrapForward(anoncrypt(randomBytes(75_000), agentsOf), cloud.did, routing);
      return { method: 'POST', path: '/v1/inbound', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: JSON.stringify(junk) };
    });

    const started = Date.now();
    let rounds = 0;
    let junk = 0;
    /** Receives until bob's message of this round is handled; counts the junk refused on the way. */
    const until = async (agent: typeof laptop, text: string): Promise<void> => {
      for (let i = 0; i < 200; i++) {
        const entries = await agent.receive(ALL_HANDLERS);
        junk += entries.filter((e) => e.outcome === 'refused').length;
        if (inbox(agent).some((m) => m.content === text)) return;
      }
      throw new Error(`${text} never arrived`);
    };
    try {
      while (Date.now() - started < FLOOD_MS || rounds < 3) {
        rounds++;
        await pace();
        await sendText(bob, 'alice', `flooded round ${rounds}`);
        await until(laptop, `flooded round ${rounds}`);
        await until(phone, `flooded round ${rounds}`);
        await laptop.agency().sync(cloud.id);
      }
    } finally {
      await attack.stop();
    }
    // The flood reached the mailboxes, and then its senders' shares were full (507), while the
    // peer's mail kept getting in.
    expect(junk).toBeGreaterThan(50);
    expect(attack.statuses.get(202) ?? 0).toBeGreaterThan(50);
    expect(attack.statuses.get(507) ?? 0).toBeGreaterThan(0);
    expect([...attack.statuses.keys()].every((status) => [202, 429, 507].includes(status))).toBe(true);
  });
});
