/**
 * A ledger node in its own process for etcd-faults.test.ts: a LedgerNode (compiled, from dist/)
 * over its own EtcdLogStore client, on the prefix the parent's nodes share. It submits
 * continuously until the parent SIGKILLs it: several owners, each one policy chain (grant and
 * revoke agents in turn), all in flight at once, so the node's group commits hold many events.
 * It reports on stdout, one line each, written with writeSync (in the pipe before the next step):
 *
 *   ready                                the node is open; the load starts now
 *   sub <id> <subject> <seq>             about to submit event <id>
 *   ack <id> <gseq>                      that event was acknowledged at <gseq>
 *   rej <id> <code>                      that event was refused with <code>
 *
 * Each subject has at most one event in flight. Usage: node etcd-node-child.mjs '<json config>'
 * config: { endpoints: string[], prefix: string, owners: number }
 */
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { ed25519Generate, memorySigner } from '../../dist/src/crypto/index.js';
import { nextEvent, policyCreate, signEvent } from '../../dist/src/ledger/build.js';
import { EtcdLogStore } from '../../dist/src/ledger/etcd-store.js';
import { eventId, subjectOf } from '../../dist/src/ledger/events.js';
import { LedgerNode } from '../../dist/src/ledger/node.js';
import { recoveryKeyDigest } from '../../dist/src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../../dist/src/policy/flags.js';
import { dieWithParent, say } from '../helpers/child-io.mjs';

dieWithParent();

function key() {
  const pair = ed25519Generate();
  const signer = memorySigner(pair.privateKey, pair.publicKey);
  return { ...signer, agent: (flags) => ({ key: signer.multikey, flags }) };
}

const config = JSON.parse(process.argv[2] ?? '{}');
const signer = key();

/** Opens a node on the shared log while the parent's nodes keep appending to it. */
async function open() {
  return LedgerNode.open(new EtcdLogStore({ endpoints: config.endpoints, prefix: config.prefix }), signer);
}

/** Submits one event; its receipt, or undefined when it was refused (reported either way). */
async function submit(node, event) {
  const id = eventId(event);
  say(`sub ${id} ${subjectOf(event)} ${event.seq}`);
  try {
    const receipt = await node.submit(event);
    say(`ack ${receipt.id} ${receipt.gseq}`);
    if (receipt.id !== id) throw new Error(`the receipt ${JSON.stringify(receipt)} is not for event ${id}`);
    return receipt;
  } catch (e) {
    if (typeof e?.code !== 'string' || e.code === 'INTERNAL') throw e;
    say(`rej ${id} ${e.code}`);
    return undefined;
  } finally {
    // Let the other owners have a turn: their events share the next batch.
    await yieldTurn();
  }
}

async function owner(node) {
  const admin = key();
  const agents = [key(), key()];
  const create = signEvent(policyCreate([admin.agent(ALL_FLAGS)], { digests: [recoveryKeyDigest(key().multikey)], threshold: 1 }), [admin]);
  const policy = subjectOf(create);
  while ((await node.subject(policy)) === undefined) await submit(node, create);
  for (let n = 0; ; n++) {
    const record = await node.subject(policy);
    const agent = agents[n % agents.length];
    const event = record.policy.agents.some((a) => a.key === agent.multikey)
      ? signEvent(nextEvent('policy.revoke', policy, record, { key: agent.multikey }), [admin])
      : signEvent(nextEvent('policy.grant', policy, record, { agent: agent.agent(FLAGS.PROVE) }), [admin]);
    await submit(node, event);
  }
}

try {
  const node = await open();
  say('ready');
  await Promise.all(Array.from({ length: config.owners }, () => owner(node)));
} catch (e) {
  process.stderr.write(`etcd-node-child: ${e?.code ?? ''} ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
