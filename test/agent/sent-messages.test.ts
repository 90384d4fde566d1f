/**
 * An agent keeps the text messages it sent (`sentMessages`) apart from those it received
 * (`inbox`): a peer sees the ids of the messages sent to it and may give its own any id, and a
 * message reusing one must not overwrite the sender's record of what it sent.
 */
import { describe, expect, it } from 'vitest';
import { BASIC_MESSAGE, findConnection, inbox, sendText, sendToConnection, sentMessages } from '../../src/agent/connections.js';
import { newMessage } from '../../src/didcomm/index.js';
import { ALL_HANDLERS } from '../../src/recovery/protocols.js';
import { connect, settle, world } from '../helpers/world.js';

describe('text messages sent and received', () => {
  it('are kept apart: a peer reusing the id of a sent message cannot overwrite it', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    const bob = await w.makeOwner('bob');
    await connect(alice, bob);
    await settle(alice, bob);

    const sent = await sendText(alice, 'bob', 'the original');
    expect(sentMessages(alice)).toEqual([expect.objectContaining({ id: sent.id, content: 'the original', label: 'bob', direction: 'out' })]);
    expect(inbox(alice)).toEqual([]);
    expect(await bob.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'handled' })]);
    expect(inbox(bob)).toEqual([expect.objectContaining({ id: sent.id, content: 'the original', direction: 'in' })]);

    // Bob answers with a message that carries the id of Alice's.
    await sendToConnection(bob, findConnection(bob, 'alice'), { ...newMessage(BASIC_MESSAGE, { content: 'forged' }), id: sent.id });
    expect(await alice.receive(ALL_HANDLERS)).toEqual([expect.objectContaining({ outcome: 'handled' })]);
    expect(sentMessages(alice)).toEqual([expect.objectContaining({ id: sent.id, content: 'the original', direction: 'out' })]);
    expect(inbox(alice)).toEqual([expect.objectContaining({ id: sent.id, content: 'forged', label: 'bob', direction: 'in' })]);
  });
});
