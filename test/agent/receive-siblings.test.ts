/**
 * A peer encrypts a message once per key of the owner's side of a connection (one envelope per
 * DID, as DIDComm requires), and the owner's cloud agent gives every copy to every agent of the
 * owner: each agent reports the message it can read, not its sibling agents' copies, while an
 * envelope for nobody here is still reported as ignored.
 */
import { describe, expect, it } from 'vitest';
import { inbox, sendText } from '../../src/agent/connections.js';
import { postEnvelope } from '../../src/agency/agency-client.js';
import { anoncrypt, didKeyUrl, messageBytes, newMessage, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { x25519Generate } from '../../src/crypto/index.js';
import { FLAGS } from '../../src/policy/flags.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import { connect, settle, world } from '../helpers/world.js';

describe("an owner's agents receiving a peer's message", () => {
  it('each report only their own copy; an envelope for nobody here is reported as ignored', async () => {
    const w = await world();
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const bob = await w.makeOwner('bob');
    await connect(laptop, bob);
    await settle(laptop, phone, bob);

    await sendText(bob, 'alice', 'hello');
    for (const agent of [laptop, phone]) {
      expect(await agent.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'handled' })]);
      expect(inbox(agent).at(-1)?.content).toBe('hello');
    }

    // Encrypted to a key that is no agent's: every agent of the owner gets it and says so.
    const stranger = x25519Generate();
    const cloud = laptop.profile.cloud;
    if (cloud === undefined) throw new Error('alice has no cloud agent');
    const inner = anoncrypt(messageBytes(newMessage('https://example.org/test/1.0/note', {})), [recipientFromKid(didKeyUrl('x25519', stranger.publicKey))]);
    await postEnvelope(cloud.endpoint, wrapForward(inner, laptop.profile.policy, [recipientFromKid(cloud.routingKey)]));
    for (const agent of [laptop, phone]) {
      expect(await agent.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'ignored', code: 'ENVELOPE_NOT_FOR_US' })]);
    }
  });
});
