/**
 * Child process of the ledger crash trials (crash.test.ts). It opens a ledger node on a data
 * directory and drives concurrent write load at it until the parent SIGKILLs it: every owner
 * runs two chains at once, a policy chain (grant and revoke agents) and a DID chain (create,
 * then update services), so each group commit holds events of many subjects. It reports on
 * stdout, one line each:
 *
 *   ready                                          the node is open; the load starts now
 *   sub <chain> <id> <subject> <seq>               about to submit event <id> on <chain>
 *   ack <chain> <gseq> <id> <subject> <seq> <time> that event was acknowledged (submit resolved, or HTTP 201)
 *   rej <chain> <id> <code>                        a deliberately invalid event was refused with <code>
 *
 * Chains are named p<owner> (policy) and d<owner> (DID); each has at most one event in flight.
 * Lines are written with writeSync, so a line is in the pipe before the next step starts.
 * Plain JS on the compiled code (dist), so that it starts fast. Usage:
 *
 *   node crash-child.mjs '<json config>'
 *
 * config: { mode: 'direct' | 'http', home, seed, trial, owners: [{ policy?, did? }, ...] }
 *   direct: events go to LedgerNode.submit in process; http: to POST /v1/events of the
 *   running service (startLedger), from clients in this same process.
 *   owners[i].policy / .did: the owner's subjects from earlier trials, continued from the
 *   state the store holds now (which may include events of an earlier trial never acknowledged).
 */
import { createHash } from 'node:crypto';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { ed25519PublicKey, memorySigner } from '../../dist/src/crypto/index.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../dist/src/ledger/build.js';
import { eventId, subjectOf } from '../../dist/src/ledger/events.js';
import { recoveryKeyDigest } from '../../dist/src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../../dist/src/policy/flags.js';
import { openLedgerNode, startLedger } from '../../dist/src/server/ledger-service.js';
import { dieWithParent, fail, say } from '../helpers/child-io.mjs';

/** Agents each policy chain grants and revokes in turn. */
const AGENTS = 3;

/**
 * A fixed Ed25519 key: the private key is SHA-256 of the seed, the owner and the role, so the
 * parent derives the same public keys (crash.test.ts, fixedKey).
 */
function fixedKey(seed, owner, role) {
  const privateKey = new Uint8Array(createHash('sha256').update(`dkms-ledger-crash/${seed}/${owner}/${role}`).digest());
  const signer = memorySigner(privateKey, ed25519PublicKey(privateKey));
  return { ...signer, agent: (flags) => ({ key: signer.multikey, flags }) };
}

dieWithParent();

const config = JSON.parse(process.argv[2] ?? '{}');
if (config.mode !== 'direct' && config.mode !== 'http') {
  process.stderr.write(`crash-child: unknown mode ${String(config.mode)}\n`);
  process.exit(2);
}

let node;
/** Submits one event; resolves with the receipt once it is acknowledged, rejects with a coded error. */
let submitEvent;

if (config.mode === 'direct') {
  ({ node } = await openLedgerNode(config.home));
  submitEvent = (event) => node.submit(event);
} else {
  const running = await startLedger(config.home, { port: 0, rateLimitPerSecond: 100_000 });
  node = running.node;
  const url = `${running.url}/v1/events`;
  submitEvent = async (event) => {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) });
    const body = await response.json();
    if (response.status === 201) return body;
    const error = new Error(`HTTP ${response.status}: ${body.code}: ${body.detail}`);
    error.code = body.code;
    throw error;
  };
}

/** Submits an event that must be acknowledged, reporting it before and after; returns the receipt. */
async function submit(chain, event) {
  const id = eventId(event);
  const subject = subjectOf(event);
  say(`sub ${chain} ${id} ${subject} ${event.seq}`);
  const receipt = await submitEvent(event);
  say(`ack ${chain} ${receipt.gseq} ${receipt.id} ${receipt.subject} ${receipt.seq} ${receipt.time}`);
  if (receipt.id !== id || receipt.subject !== subject || receipt.seq !== event.seq) {
    fail(`${chain}: the receipt ${JSON.stringify(receipt)} is not for event ${id} (${subject} seq ${event.seq})`);
  }
  // Let the other chains (and stdin's end) have a turn; they all submit in the same turn, so
  // their events share a batch.
  await yieldTurn();
  return receipt;
}

/** Submits an event the node must refuse with `code`; it must never reach the log. */
async function submitInvalid(chain, event, code) {
  const id = eventId(event);
  try {
    await submitEvent(event);
  } catch (e) {
    if (e?.code !== code) throw e;
    say(`rej ${chain} ${id} ${code}`);
    await yieldTurn();
    return;
  }
  fail(`${chain}: event ${id} was accepted, but should have been refused with ${code}`);
}

async function current(subject, kind) {
  const record = await node.subject(subject);
  if (record?.kind !== kind) fail(`no ${kind} ${subject} in the store`);
  return record;
}

async function policyChain(index, admin, policy) {
  const chain = `p${index}`;
  const agents = Array.from({ length: AGENTS }, (_, k) => fixedKey(config.seed, index, `agent-${k}`));
  const record = await current(policy, 'policy');
  let latest = { seq: record.seq, head: record.head };
  const granted = new Set(record.policy.agents.map((a) => a.key));
  for (let n = 0; ; n++) {
    const agent = agents[n % AGENTS];
    const event = granted.has(agent.multikey)
      ? signEvent(nextEvent('policy.revoke', policy, latest, { key: agent.multikey }), [admin])
      : signEvent(nextEvent('policy.grant', policy, latest, { agent: agent.agent(FLAGS.PROVE) }), [admin]);
    const receipt = await submit(chain, event);
    latest = { seq: receipt.seq, head: receipt.id };
    if (event.type === 'policy.revoke') granted.delete(agent.multikey);
    else granted.add(agent.multikey);
    // A granted agent (PROVE only) may not revoke the admin: refused, and never logged.
    if (n % 11 === 5 && event.type === 'policy.grant') {
      await submitInvalid(chain, signEvent(nextEvent('policy.revoke', policy, latest, { key: admin.multikey }), [agent]), 'EVENT_UNAUTHORIZED');
    }
  }
}

const services = (n) => [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: `https://agency.example/${config.trial}/${n}` }];

async function didChain(index, admin, policy, did) {
  const chain = `d${index}`;
  let latest;
  if (did === undefined) {
    const receipt = await submit(chain, signEvent(didCreate(policy, services(0)), [admin]));
    did = receipt.subject;
    latest = { seq: receipt.seq, head: receipt.id };
  } else {
    const record = await current(did, 'did');
    latest = { seq: record.seq, head: record.head };
  }
  for (let n = 1; ; n++) {
    const before = latest;
    const receipt = await submit(chain, signEvent(nextEvent('did.update', did, latest, { services: services(n) }), [admin]));
    latest = { seq: receipt.seq, head: receipt.id };
    // Another event at the seq just taken would fork the chain: refused, and never logged.
    if (n % 7 === 3) {
      await submitInvalid(chain, signEvent(nextEvent('did.update', did, before, { services: services(-n) }), [admin]), 'EVENT_FORK');
    }
  }
}

async function owner(index, known) {
  const admin = fixedKey(config.seed, index, 'admin');
  const recovery = fixedKey(config.seed, index, 'recovery');
  let policy = known.policy;
  if (policy === undefined) {
    const create = signEvent(policyCreate([admin.agent(ALL_FLAGS)], { digests: [recoveryKeyDigest(recovery.multikey)], threshold: 1 }), [admin]);
    policy = (await submit(`p${index}`, create)).subject;
  }
  await Promise.all([policyChain(index, admin, policy), didChain(index, admin, policy, known.did)]);
}

try {
  say('ready');
  await Promise.all(config.owners.map((known, index) => owner(index, known)));
} catch (e) {
  process.stderr.write(`crash-child: ${e?.code ?? ''} ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
