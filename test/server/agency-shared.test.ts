/**
 * Two agencies on one PostgreSQL database, with the owners' agents' requests going to one or the
 * other in turn (as behind a load balancer): everything works as with one agency, and what must
 * hold across them does: a request taken by one is refused as a replay by the other, mail posted
 * through one is picked up through the other (a long poll waiting at one ends when mail arrives
 * through the other), and a sender's share of a mailbox counts what it sent through both.
 */
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { Agency } from '../../src/agency/agency.js';
import { AgencyClient, type PickedUp } from '../../src/agency/agency-client.js';
import { inbox, sendText } from '../../src/agent/connections.js';
import { anoncrypt, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { signRequest } from '../../src/agency/request-auth.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import { randomBytes } from '../../src/crypto/index.js';
import { FLAGS } from '../../src/policy/flags.js';
import { pgClusterForSuite } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { connect, settle, world } from '../helpers/world.js';

const cluster = pgClusterForSuite();

/** A world whose agency is two agencies on one new database, sharing an agency key. */
async function sharedWorld(limits?: { maxSourceMessages: number }) {
  const store = await cluster().createDatabase();
  const agencyKeyFile = join(tempDir('dkms-agency-key-'), 'agency.key');
  const w = await world({ agency: { store, agencyKeyFile, ...(limits === undefined ? {} : { limits }) }, second: {} });
  if (w.secondUrl === undefined) throw new Error('no second agency');
  return { ...w, secondUrl: w.secondUrl };
}

describe('two agencies on one PostgreSQL database', () => {
  it('serve owners through either: pairing, connections and messages, each message received once', async () => {
    const w = await sharedWorld();
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const bob = await w.makeOwner('bob');
    await connect(laptop, bob);
    await settle(laptop, phone, bob);
    for (let i = 0; i < 6; i++) await sendText(bob, 'alice', `hello ${i}`);
    await settle(laptop, phone, bob);
    const expected = Array.from({ length: 6 }, (_, i) => `hello ${i}`);
    expect(inbox(laptop).map((m) => m.content)).toEqual(expected);
    expect(inbox(phone).map((m) => m.content)).toEqual(expected);
    // Nothing left at either agency.
    for (const url of [w.agencyUrl, w.secondUrl]) expect(await new AgencyClient(url, laptop.signingKey()).pickup(10)).toEqual([]);
  });

  it('refuses at one agency a signed request the other took (REQUEST_REPLAYED)', async () => {
    const w = await sharedWorld();
    const laptop = await w.makeOwner('alice');
    const path = '/v1/mailbox?limit=10&wait=0';
    const headers = signRequest(laptop.signingKey(), 'GET', path);
    expect((await fetch(`${w.agencyUrl}${path}`, { headers })).status).toBe(200);
    const replayed = await fetch(`${w.secondUrl}${path}`, { headers });
    expect(replayed.status).toBe(409);
    expect(((await replayed.json()) as { code: string }).code).toBe('REQUEST_REPLAYED');
  });

  it('ends a long poll waiting at one agency with mail that arrives through the other', async () => {
    const w = await sharedWorld();
    const laptop = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    await connect(laptop, bob);
    await settle(laptop, bob);
    // The agencies of this process, as their pickups are called: no pickup but this test's long poll waits at either.
    const pickups = vi.spyOn(Agency.prototype, 'pickup');
    onTestFinished(() => pickups.mockRestore());
    // Waits at the second agency (up to 30 s) while bob's message is posted to the first.
    const poll: { picked?: PickedUp[]; failed?: unknown } = {};
    void new AgencyClient(w.secondUrl, laptop.signingKey()).pickup(10, 30).then(
      (picked) => (poll.picked = picked),
      (e: unknown) => (poll.failed = e),
    );
    await waitFor('the long poll waiting at the second agency', () => {
      if ('failed' in poll) throw poll.failed;
      return (pickups.mock.contexts as Agency[]).some((agency) => agency.waiting > 0);
    });
    const cloud = laptop.cloud();
    const message = wrapForward(anoncrypt(randomBytes(100), [recipientFromKid(`did:key:${laptop.profile.kx}#${laptop.profile.kx}`)]), cloud.did, [
      recipientFromKid(cloud.routingKey),
    ]);
    const posted = await fetch(`${w.agencyUrl}/v1/inbound`, {
      method: 'POST',
      headers: { 'content-type': 'application/didcomm-encrypted+json' },
      body: JSON.stringify(message),
    });
    expect(posted.status).toBe(202);
    // Ended by the mail, not by its 30 s running out (which would also find the message then).
    const ended = await waitFor(
      'the long poll at the second agency to end with the mail',
      () => {
        if ('failed' in poll) throw poll.failed;
        return poll.picked;
      },
      { timeoutMs: 15_000 },
    );
    expect(ended).toHaveLength(1);
    // And the owner's agent handles what comes through the usual way.
    await sendText(bob, 'alice', 'through either');
    expect((await laptop.receive(ALL_HANDLERS)).map((e) => e.outcome)).toContain('handled');
    expect(inbox(laptop).at(-1)?.content).toBe('through either');
  });

  it('holds a sender to one share of a mailbox across both agencies', async () => {
    const w = await sharedWorld({ maxSourceMessages: 6 });
    const laptop = await w.makeOwner('alice');
    const cloud = laptop.cloud();
    const agents = [recipientFromKid(`did:key:${laptop.profile.kx}#${laptop.profile.kx}`)];
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const junk = wrapForward(anoncrypt(randomBytes(200), agents), cloud.did, [recipientFromKid(cloud.routingKey)]);
      const url = i % 2 === 0 ? w.agencyUrl : w.secondUrl;
      statuses.push(
        (await fetch(`${url}/v1/inbound`, { method: 'POST', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: JSON.stringify(junk) }))
          .status,
      );
    }
    expect(statuses).toEqual([...Array<number>(6).fill(202), ...Array<number>(4).fill(507)]);
    expect(await new AgencyClient(w.secondUrl, laptop.signingKey()).pickup(100)).toHaveLength(6);
  });
});
