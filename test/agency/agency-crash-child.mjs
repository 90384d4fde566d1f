/**
 * Child process of the agency crash trials (agency-crash.test.ts). It starts the agency
 * (startAgency, on the compiled code in dist/) on a data directory whose owner already has a
 * cloud agent, then drives concurrent message load at its inbound endpoint over loopback HTTP
 * until the parent SIGKILLs it: several senders, each posting one forward message at a time,
 * so several deliveries are always in flight at once. It reports on stdout, one line each:
 *
 *   ready                      the agency is listening (and warmed up); the load starts now
 *   sub <id> <target>          about to post the message <id> for <target> (a, b, or ab: both)
 *   ack <id> <copies>          the agency answered 202 for <id>, storing <copies> copies
 *
 * Every message is a note whose body carries its <id>, authcrypted by a throwaway sender to the
 * edge agents it is for (the inner envelope) and wrapped in a forward anoncrypted to the cloud
 * agent, whose `next` names one edge agent (did:key of its Ed25519 key) or all of them (the
 * cloud agent's own did). Lines are written with writeSync, so a line is in the pipe before the
 * next step starts. Any answer but 202 ends the child with exit code 1 (the parent fails on it).
 * Usage:
 *
 *   node agency-crash-child.mjs '<json config>'
 *
 * config: { home, ledgerUrl, trustedLedgerKeys, trial, senders,
 *           cloud: { kx, routingKey, did },
 *           agents: [{ kid, kx, didKey }, { kid, kx, didKey }] }   agent a, agent b
 */
import { decodePublicKey, x25519Generate } from '../../dist/src/crypto/index.js';
import { authcrypt, didKeyUrl, memoryAgreementKey, messageBytes, newMessage, wrapForward } from '../../dist/src/didcomm/index.js';
import { startAgency } from '../../dist/src/server/agency-service.js';
import { dieWithParent, fail, say } from '../helpers/child-io.mjs';

const NOTE = 'https://example.org/test/1.0/crash-note';
/** Who each sender's n-th message goes to, in turn. */
const TARGETS = ['ab', 'a', 'b', 'ab'];

dieWithParent();

const config = JSON.parse(process.argv[2] ?? '{}');

const mediator = [{ kid: config.cloud.routingKey, publicKey: decodePublicKey(config.cloud.kx, 'x25519').publicKey }];
const recipients = config.agents.map((agent) => ({ kid: agent.kid, publicKey: decodePublicKey(agent.kx, 'x25519').publicKey }));

/** The forward message carrying note `id` for `target`. */
function envelopeFor(id, target) {
  const pair = x25519Generate();
  const from = memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
  const to = target === 'ab' ? recipients : [recipients[target === 'a' ? 0 : 1]];
  // Bodies of different sizes, so deliveries are not all alike.
  const padding = 'x'.repeat((id.length * 37) % 900);
  const inner = authcrypt(messageBytes(newMessage(NOTE, { id, padding })), from, to);
  const next = target === 'ab' ? config.cloud.did : config.agents[target === 'a' ? 0 : 1].didKey;
  return wrapForward(inner, next, mediator);
}

const running = await startAgency(config.home, {
  ledgerUrl: config.ledgerUrl,
  trustedLedgerKeys: config.trustedLedgerKeys,
  port: 0,
  // The load comes from this one address, far faster than an agency lets a client post.
  rateLimitPerSecond: 1_000_000,
  limits: { maxMessages: 1_000_000, maxBytes: 1024 * 1024 * 1024 },
});
const inbound = `${running.url}/v1/inbound`;

// Warm up before "ready" (the HTTP client and server, the envelope code on both sides), so that
// the kill delays the parent draws are spent under load rather than in start-up: a forward the
// agency opens and then refuses (NOT_FOUND: no such next hop), so that nothing is stored.
const warmUp = await fetch(inbound, {
  method: 'POST',
  headers: { 'content-type': 'application/didcomm-encrypted+json' },
  body: JSON.stringify(wrapForward(envelopeFor('warm-up', 'ab'), 'did:example:nowhere', mediator)),
});
const refusal = await warmUp.text();
if (warmUp.status !== 404) fail(`the warm-up forward was answered ${warmUp.status}: ${refusal}`);

async function sender(index) {
  for (let n = 0; ; n++) {
    const id = `t${config.trial}-s${index}-m${n}`;
    const target = TARGETS[n % TARGETS.length];
    const body = JSON.stringify(envelopeFor(id, target));
    say(`sub ${id} ${target}`);
    const response = await fetch(inbound, { method: 'POST', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body });
    const answer = await response.text();
    if (response.status !== 202) fail(`${id}: the agency answered ${response.status}: ${answer}`);
    const { accepted } = JSON.parse(answer);
    say(`ack ${id} ${accepted}`);
    if (accepted !== target.length) fail(`${id}: ${accepted} copies stored for target ${target}`);
  }
}

try {
  say('ready');
  await Promise.all(Array.from({ length: config.senders }, (_, index) => sender(index)));
} catch (e) {
  process.stderr.write(`agency-crash-child: ${e?.code ?? ''} ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
