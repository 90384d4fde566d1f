/**
 * Quick start: everything in one process, as an integrator would write it.
 *
 * 1. Start a ledger node and an agency on loopback, each with its data in a directory.
 * 2. Alice: a wallet, an edge agent, her policy and a public DID on the ledger, and a cloud
 *    agent (her mailbox) at the agency.
 * 3. Anyone: resolve Alice's DID, verified against the ledger's proofs, and check a signature
 *    by her agent against it.
 * 4. Bob: his own wallet, agent and policy; he connects to Alice and sends her a DIDComm
 *    message, which the agency relays to her mailbox and her agent decrypts.
 *
 * Run it after building the package: `tsc` it against the package's types, then `node` it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EdgeAgent, LedgerClient, Wallet, passphraseSecret, resolveDid, startAgency, startLedger, type RunningLedger } from 'dkms';
import { acceptConnection, agentHandlers, inbox, initFirstAgent, inviteConnection, registerCloudAgent, sendText } from 'dkms/agent';
import { isDid, verifyAgentSignature } from 'dkms/ledger';

const home = mkdtempSync(join(tmpdir(), 'dkms-quickstart-'));
const opened: Wallet[] = [];

/** An edge agent over a new wallet, reading the ledger through a client that trusts only this node's key. */
async function newAgent(ledger: RunningLedger, name: string): Promise<EdgeAgent> {
  // 'interactive' keeps Argon2id quick for a demo; keep the default tier for real wallets.
  const wallet = await Wallet.create(join(home, name, 'wallet.db'), passphraseSecret(`${name}'s long passphrase`), { kdfTier: 'interactive' });
  opened.push(wallet);
  const client = new LedgerClient({ url: ledger.url, trustedKeys: [ledger.node.key] });
  return new EdgeAgent(wallet, client);
}

// 1. A ledger node and an agency that reads owners' policies from it (port 0: any free port).
const ledger = await startLedger(join(home, 'ledger-node'), { port: 0 });
const agency = await startAgency(join(home, 'agency'), { port: 0, ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.node.key] });
try {
  // 2. Alice's first agent creates her policy (this agent holds every flag) and a DID it controls.
  const alice = await newAgent(ledger, 'alice');
  const profile = await initFirstAgent(alice, {
    label: 'alice',
    ledgerUrl: ledger.url,
    did: { services: [{ id: '#didcomm', type: 'DIDCommMessaging', serviceEndpoint: agency.url }] },
  });
  await registerCloudAgent(alice, agency.url, 0);
  console.log(`policy: ${profile.policy}`);
  if (profile.did === undefined || !isDid(profile.did)) throw new Error('the set-up made no DID');
  const did = profile.did;
  console.log(`did: ${did}`);

  // 3. Resolve the DID through a client of our own: every answer checked against the node's key.
  const reader = new LedgerClient({ url: ledger.url, trustedKeys: [ledger.node.key] });
  const resolved = await resolveDid(reader, did);
  console.log(
    `resolved: ${resolved.didDocument.id} with ${resolved.didDocument.verificationMethod.length} verification methods, version ${resolved.didDocumentMetadata.versionId}`,
  );
  console.log(`service: ${resolved.didDocument.service.map((s) => `${s.type} ${s.serviceEndpoint}`).join(', ')}`);

  const statement = new TextEncoder().encode('Alice agrees.');
  const signer = alice.signingKey(); // the agent's Ed25519 key, used inside its wallet
  const signature = signer.sign(statement);
  const check = verifyAgentSignature(resolved.policyHistory, { key: signer.multikey, message: statement, signature, time: new Date().toISOString() });
  console.log(`signature by alice's agent: ${check.valid ? 'valid' : `invalid (${check.reason})`}`);

  // 4. Bob connects to Alice and sends her a message through her cloud agent.
  const bob = await newAgent(ledger, 'bob');
  await initFirstAgent(bob, { label: 'bob', ledgerUrl: ledger.url });
  await registerCloudAgent(bob, agency.url, 0);

  const invitation = inviteConnection(alice, 'bob');
  await acceptConnection(bob, invitation.text, 'alice');
  await alice.receive(agentHandlers, { waitSeconds: 5 }); // Bob's answer completes the connection.
  await sendText(bob, 'alice', 'Hello Alice, this is Bob.');
  const received = await alice.receive(agentHandlers, { waitSeconds: 5 });
  for (const entry of received) console.log(`alice received: ${entry.type} (${entry.outcome})`);
  for (const message of inbox(alice)) console.log(`message from ${message.label}: ${message.content}`);
} finally {
  for (const wallet of opened) wallet.close();
  await agency.close();
  await ledger.close();
  rmSync(home, { recursive: true, force: true });
}
