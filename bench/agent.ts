/**
 * Agent benchmark. Raw limits, measured in the same run:
 * - envelopes: per message, the X25519 work the envelope inherently needs, done directly with
 *   node:crypto (anoncrypt: one ephemeral key generation and one agreement to pack, one
 *   agreement to unpack; authcrypt: one key generation and two agreements on each side; the
 *   receiver imports the ephemeral public key from its 32 bytes, static keys are imported once)
 *   plus one AES-256-GCM seal and open of the same plaintext. The figure is authcrypt/anoncrypt
 *   to one recipient of a ~300-byte message, serialized to JSON text, then decrypt, with
 *   in-memory keys (memoryAgreementKey).
 * - relay: bare SQLite single-row transactions per second (WAL, synchronous=FULL, exclusive
 *   lock: the wallet bench's raw store) of rows the size of a stored envelope, on the same disk.
 *   The figure is forward messages acknowledged 202 (durably stored) per second by ONE agency
 *   over loopback HTTP, posted 32 at a time by senders in the same process (in-memory keys,
 *   envelopes built before the clock starts; their HTTP client shares the agency's CPU).
 *   Topology: 10 owners × 10 edge agents = 100 agents. Each owner's first agent created its
 *   policy and registered the owner's cloud agent; the nine others were granted directly on the
 *   ledger (PROVE, with their key-agreement keys), then the cloud agent synced. Each message is
 *   authcrypted to one agent and forwarded with next = that agent's did:key. Then every agent
 *   picks up and acks its mail through EdgeAgent.receive (decrypt, replay check, seen-record).
 * - pairing and revocation: one ledger submit round trip (did.update over loopback HTTP).
 *   Pairing is createInvitation → answerInvitation → inviter receive → completePairing →
 *   awaitWelcome; revocation is revokeAgent with a revoke threshold of 1, which returns once the
 *   ledger accepted the revocation and the cloud agent synced (both checked afterwards).
 */
import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { memorySigner as cryptoMemorySigner, type Signer } from '../src/crypto/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgencyClient, postEnvelope } from '../src/agency/agency-client.js';
import {
  anoncrypt,
  authcrypt,
  decrypt,
  didKeyUrl,
  memoryAgreementKey,
  messageBytes,
  newMessage,
  wrapForward,
  type AgreementKey,
  type Jwe,
  type PublicKeyRef,
} from '../src/didcomm/index.js';
import { EdgeAgent, recipientRef, type Handlers } from '../src/agent/edge-agent.js';
import { answerInvitation, awaitWelcome, completePairing, createInvitation, parseInvitation, waitingHandlers } from '../src/agent/pairing.js';
import { ALL_HANDLERS } from '../src/recovery/protocols.js';
import { agentSigner, initFirstAgent, provisionKeys, registerCloudAgent } from '../src/agent/provision.js';
import { revokeAgent } from '../src/agent/revocation.js';
import { decodePublicKey, ed25519Generate, randomBytes, x25519Generate } from '../src/crypto/index.js';
import { isDkmsError } from '../src/errors.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../src/ledger/build.js';
import { LedgerClient } from '../src/ledger/client.js';
import type { Did, PolicyAddress } from '../src/ledger/events.js';
import { recoveryKeyDigest } from '../src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../src/policy/flags.js';
import { SqliteAgencyStore } from '../src/agency/sqlite-agency-store.js';
import { startAgency, type RunningAgency } from '../src/server/agency-service.js';
import { startLedger, type RunningLedger } from '../src/server/ledger-service.js';
import { Wallet, rawSecret } from '../src/wallet/index.js';
import { flood, signedAhead, type Flood } from './flood.js';
import { sendFromChild } from './senders-child.js';
import { startAgencyChild, type AgencyChild } from './agency-child.js';
import { startPgCluster } from './pg-cluster.js';
import { rawPostgres } from './raw-pg.js';
import { rawSqliteCommitsPerSecond, rawSqliteReadsPerSecond } from './raw-sqlite.js';
import { median, opsPerSecond, report, round } from './report.js';
import { closeAll } from './runner.js';

/**
 * DKMS_BENCH_SCALE=small runs every section with a tenth of the work: the figures are rougher,
 * but the run is short enough for a test that checks it completes (test/cli/bench-load.test.ts).
 */
const SMALL = process.env['DKMS_BENCH_SCALE'] === 'small';
const MESSAGE_BYTES = 300;
const ENVELOPE_OPS = SMALL ? 100 : 1000;
const ENVELOPE_ROUNDS = SMALL ? 2 : 5;
const OWNERS = SMALL ? 3 : 10;
const AGENTS_PER_OWNER = SMALL ? 3 : 10;
const RELAY_MESSAGES = SMALL ? 300 : 3000;
const IN_FLIGHT = 32;
const SENDERS = 16;
const PAIRINGS = SMALL ? 2 : 10;
const SUBMITS = SMALL ? 5 : 20;
const BENCH_TYPE = 'urn:dkms:bench/1.0/ping';
const UNLIMITED = 1_000_000;

const didOf = (kid: string) => kid.split('#')[0] ?? kid;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** A plaintext message of exactly `bytes` bytes once serialized. */
function plaintextOf(bytes: number, extra: Record<string, unknown> = {}): Uint8Array {
  const base = newMessage(BENCH_TYPE, { text: '' }, extra);
  const pad = Math.max(0, bytes - messageBytes(base).length);
  return messageBytes({ ...base, body: { text: 'x'.repeat(pad) } });
}

function memoryKey(): AgreementKey {
  const pair = x25519Generate();
  return memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
}

// ---------------------------------------------------------------------------------------------
// 1. Envelopes

interface RawParty {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

function gcmSealOpen(key: Buffer, plaintext: Uint8Array): void {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const tag = cipher.getAuthTag();
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(tag);
  const opened = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  if (opened.length !== plaintext.length) throw new Error('raw AES-GCM round trip failed');
}

/** Packs and unpacks once with node:crypto alone: the X25519 work the envelope needs, and AES-256-GCM. */
function rawEnvelope(plaintext: Uint8Array, recipient: RawParty, sender?: RawParty): void {
  // Generated straight into DER: exporting a fresh KeyObject can hang Node 20 (see src/crypto).
  const ephemeral = generateKeyPairSync('x25519', { publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
  const ephemeralPrivate = createPrivateKey({ key: ephemeral.privateKey, format: 'der', type: 'pkcs8' });
  const ze = diffieHellman({ privateKey: ephemeralPrivate, publicKey: recipient.publicKey });
  if (sender !== undefined) diffieHellman({ privateKey: sender.privateKey, publicKey: recipient.publicKey });
  // The receiver gets the ephemeral key as bytes in the header (the last 32 bytes of the SPKI).
  const x = Buffer.from(ephemeral.publicKey.subarray(ephemeral.publicKey.length - 32)).toString('base64url');
  const received = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
  const ze2 = diffieHellman({ privateKey: recipient.privateKey, publicKey: received });
  if (sender !== undefined) diffieHellman({ privateKey: recipient.privateKey, publicKey: sender.publicKey });
  if (!ze.equals(ze2)) throw new Error('raw X25519 agreement mismatch');
  gcmSealOpen(ze, plaintext);
}

function envelopes(): void {
  const plaintext = plaintextOf(MESSAGE_BYTES);
  const sender = memoryKey();
  const recipient = memoryKey();
  const to: PublicKeyRef[] = [{ kid: recipient.kid, publicKey: recipient.publicKey }];
  const rawRecipient = generateKeyPairSync('x25519');
  const rawSender = generateKeyPairSync('x25519');

  const unpack = (jwe: Jwe) => {
    const opened = decrypt(JSON.stringify(jwe), [recipient]);
    if (opened.plaintext.length !== plaintext.length) throw new Error('envelope round trip failed');
  };
  const runs = { auth: [] as number[], rawAuth: [] as number[], anon: [] as number[], rawAnon: [] as number[] };
  for (let r = 0; r < ENVELOPE_ROUNDS; r++) {
    runs.auth.push(opsPerSecond(ENVELOPE_OPS, () => unpack(authcrypt(plaintext, sender, to))));
    runs.rawAuth.push(opsPerSecond(ENVELOPE_OPS, () => rawEnvelope(plaintext, rawRecipient, rawSender)));
    runs.anon.push(opsPerSecond(ENVELOPE_OPS, () => unpack(anoncrypt(plaintext, to))));
    runs.rawAnon.push(opsPerSecond(ENVELOPE_OPS, () => rawEnvelope(plaintext, rawRecipient)));
  }
  const common = { ops: ENVELOPE_OPS, rounds: ENVELOPE_ROUNDS, messageBytes: plaintext.length, recipients: 1 };
  for (const [mode, fig, raw, rawWork] of [
    ['authcrypt', median(runs.auth), median(runs.rawAuth), '1 keygen + 2 X25519 each side + AES-256-GCM seal/open'],
    ['anoncrypt', median(runs.anon), median(runs.rawAnon), '1 keygen + 1 X25519 each side + AES-256-GCM seal/open'],
  ] as const) {
    report({ bench: 'agent.envelope', mode, ...common, packUnpackPerSec: round(fig, 0), rawPerSec: round(raw, 0), rawWork, ratio: round(fig / raw) });
  }
}

// ---------------------------------------------------------------------------------------------
// Shared setup: a ledger, an agency, owners and their agents

interface Env {
  readonly dir: string;
  readonly ledger: RunningLedger;
  readonly agency: RunningAgency;
  readonly wallets: Wallet[];
}

function ledgerClient(env: Env): LedgerClient {
  return new LedgerClient({ url: env.ledger.url, trustedKeys: [env.ledger.node.key] });
}

async function newAgent(env: Env, name: string): Promise<EdgeAgent> {
  const wallet = await Wallet.create(join(env.dir, 'agents', `${name}.db`), rawSecret(randomBytes(32)));
  env.wallets.push(wallet);
  return new EdgeAgent(wallet, ledgerClient(env));
}

/** An owner's first agent, with its policy and its cloud agent at the agency. */
async function newOwner(env: Env, name: string): Promise<EdgeAgent> {
  const first = await newAgent(env, `${name}-0`);
  await initFirstAgent(first, { label: `${name}-0`, ledgerUrl: env.ledger.url });
  await registerCloudAgent(first, env.agency.url, 0);
  return first;
}

interface Member {
  readonly agent: EdgeAgent;
  /** Ed25519, multibase. */
  readonly key: string;
  readonly kx: string;
  readonly mailbox: AgencyClient;
  readonly cloud: { readonly endpoint: string; readonly routing: PublicKeyRef };
}

/** An owner with `count` agents: the first, and the others granted PROVE directly on the ledger. */
async function ownerWithAgents(env: Env, name: string, count: number): Promise<Member[]> {
  const first = await newOwner(env, name);
  const cloud = first.cloud();
  const routing = { kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey };
  const members: Member[] = [];
  const add = (agent: EdgeAgent, keys: { key: string; kx: string }) =>
    members.push({ agent, ...keys, mailbox: new AgencyClient(env.agency.url, agent.signingKey()), cloud: { endpoint: cloud.endpoint, routing } });
  add(first, { key: first.profile.key, kx: first.profile.kx });
  for (let i = 1; i < count; i++) {
    const agent = await newAgent(env, `${name}-${i}`);
    const keys = provisionKeys(agent.wallet);
    const record = await first.policy();
    await first.ledger.submit(
      signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: keys.key, kx: keys.kx, flags: FLAGS.PROVE } }), [agentSigner(first.wallet)]),
    );
    add(agent, keys);
  }
  await first.agency(cloud).sync(cloud.id);
  return members;
}

/** Runs `work(i)` for i < count with `concurrency` in flight. */
async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await work(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

// ---------------------------------------------------------------------------------------------
// 2. Relay and pickup

interface Setup {
  readonly members: Member[];
  readonly setupSeconds: number;
}

interface Envelopes {
  readonly items: { readonly endpoint: string; readonly envelope: Jwe }[];
  readonly storedBytes: number;
}

/** Owners and their agents at the env's agency. */
async function relaySetup(env: Env): Promise<Setup> {
  const setupStart = process.hrtime.bigint();
  const owners = await Promise.all(Array.from({ length: OWNERS }, (_, o) => ownerWithAgents(env, `owner${o}`, AGENTS_PER_OWNER)));
  return { members: owners.flat(), setupSeconds: seconds(setupStart) };
}

/**
 * `count` new messages for the setup's agents, built before any clock starts. New each time:
 * the agency takes an envelope it delivered a moment ago for a sender's retry, and stores nothing.
 */
function envelopesFor(setup: Setup, count: number): Envelopes {
  const senders = Array.from({ length: SENDERS }, memoryKey);
  let innerBytes = 0;
  const items = Array.from({ length: count }, (_, i) => {
    const member = setup.members[i % setup.members.length] as Member;
    const from = senders[i % SENDERS] as AgreementKey;
    const to = recipientRef(member.kx);
    const inner = authcrypt(plaintextOf(MESSAGE_BYTES, { from: didOf(from.kid), to: [didOf(to.kid)] }), from, [to]);
    innerBytes += JSON.stringify(inner).length;
    return { endpoint: member.cloud.endpoint, envelope: wrapForward(inner, `did:key:${member.key}`, [member.cloud.routing]) };
  });
  return { items, storedBytes: Math.round(innerBytes / count) };
}

/**
 * With DKMS_BENCH_PROFILE=<dir>, a CPU profile of this process (the agency, in process, and the
 * senders) over one measured stretch, written to <dir>/<name>.cpuprofile (open it in Chrome's
 * DevTools): where a figure's time goes.
 */
async function startProfile(): Promise<{ stop(name: string): Promise<void> } | undefined> {
  const dir = process.env['DKMS_BENCH_PROFILE'];
  if (dir === undefined || dir === '') return undefined;
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return {
    async stop(name) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** The raw limits of a store, measured in the same run: durable single-row inserts, and reads by key, per second. */
interface RawLimits {
  readonly what: string;
  readonly insertsPerSec: number;
  readonly readsPerSec: number;
}

/**
 * Relays the setup's messages through the agencies at `urls` (each message to the next one in
 * turn, as a load balancer would), then has every agent pick up and acknowledge its mail through
 * them (AgencyClient: the agency's side of a pickup, no edge-agent handling). Reports both
 * beside `raw`.
 */
async function relayAndPickup(setup: Setup, store: string, urls: readonly string[], raw: RawLimits): Promise<void> {
  const envelopes = envelopesFor(setup, RELAY_MESSAGES);
  const home = urls[0] as string;
  const via = (url: string, i: number) => (urls.length === 1 ? url : `${urls[i % urls.length] as string}${url.slice(home.length)}`);
  // The senders are the load, not what is measured: a process of their own (a light keep-alive
  // HTTP client), the bodies serialized before the clock starts.
  const requests = envelopes.items.map((item, i) => ({ url: via(item.endpoint, i), body: JSON.stringify(item.envelope) }));
  const profile = await startProfile();
  const cpu = process.cpuUsage();
  const sent = await sendFromChild(join(tmpdir(), `dkms-bench-relay-${process.pid}.json`), requests, IN_FLIGHT);
  const used = process.cpuUsage(cpu);
  await profile?.stop(`relay-${store}-${urls.length}`);
  const { accepted, seconds: relaySeconds } = sent;
  const failures = new Map(Object.entries(sent.failed));

  let picked = 0;
  const pickupStart = process.hrtime.bigint();
  await pool(setup.members.length, IN_FLIGHT, async (m) => {
    const member = setup.members[m] as Member;
    const mailbox = new AgencyClient(via(home, m), member.agent.signingKey());
    for (;;) {
      const messages = await mailbox.pickup(100);
      if (messages.length > 0) await mailbox.ack(messages.map((x) => x.id));
      picked += messages.length;
      if (messages.length < 100) break;
    }
  });
  const pickupSeconds = seconds(pickupStart);
  const topology = `${OWNERS} owners x ${AGENTS_PER_OWNER} agents, ${urls.length} agency process${urls.length === 1 ? '' : 'es'} on ${store}`;
  const rate = accepted / relaySeconds;
  report({
    bench: 'agent.relay',
    store,
    processes: urls.length,
    topology,
    transport: 'http loopback',
    messages: envelopes.items.length,
    inFlight: IN_FLIGHT,
    storedEnvelopeBytes: envelopes.storedBytes,
    accepted202: accepted,
    failed: Object.fromEntries(failures),
    acceptedPerSec: round(rate, 0),
    // CPU of this process (the agency, and the ledger it follows) per message accepted, all its threads (GC included).
    ...(urls.length === 1 ? { agencyCpuMicrosPerMessage: round((used.user + used.system) / accepted, 0) } : {}),
    rawInsertsPerSec: round(raw.insertsPerSec, 0),
    raw: raw.what,
    ratio: round(rate / raw.insertsPerSec),
  });
  const pickupRate = picked / pickupSeconds;
  report({
    bench: 'agent.pickup',
    store,
    processes: urls.length,
    agents: setup.members.length,
    pickedUpAndAcked: picked,
    messagesPerSec: round(pickupRate, 0),
    rawInsertsPerSec: round(raw.insertsPerSec, 0),
    rawReadsPerSec: round(raw.readsPerSec, 0),
    raw: `${raw.what}; each message picked up is also deleted durably (its ack), so the ratio is against the inserts`,
    ratio: round(pickupRate / raw.insertsPerSec),
  });
}

/**
 * The relay of the same kind of messages through the same agency while its store keeps nothing
 * (SqliteAgencyStore.deliverMany answers at once, storing no copy): what the agency's own work
 * per message (HTTP, unwrapping the forward, validation) allows on this machine, whatever the
 * store. Beside the same raw limit as the relay, it shows how much of the gap the store is.
 */
async function relayCeiling(setup: Setup, raw: RawLimits): Promise<void> {
  const requests = envelopesFor(setup, RELAY_MESSAGES).items.map((item) => ({ url: item.endpoint, body: JSON.stringify(item.envelope) }));
  const proto = SqliteAgencyStore.prototype;
  const deliverMany = Object.getOwnPropertyDescriptor(proto, 'deliverMany');
  proto.deliverMany = (deliveries) => Promise.resolve(deliveries.map(() => ({ ids: [], recipients: [] })));
  let sent;
  try {
    sent = await sendFromChild(join(tmpdir(), `dkms-bench-ceiling-${process.pid}.json`), requests, IN_FLIGHT);
  } finally {
    if (deliverMany !== undefined) Object.defineProperty(proto, 'deliverMany', deliverMany);
  }
  const rate = sent.accepted / sent.seconds;
  report({
    bench: 'agent.relay.ceiling',
    store: 'none: deliveries answered without storing anything',
    messages: requests.length,
    inFlight: IN_FLIGHT,
    accepted202: sent.accepted,
    failed: sent.failed,
    acceptedPerSec: round(rate, 0),
    rawInsertsPerSec: round(raw.insertsPerSec, 0),
    raw: raw.what,
    ratio: round(rate / raw.insertsPerSec),
    note: "the agency's own work per message, with the senders on the same two cores: the most any store could let the relay reach here",
  });
}

/**
 * What an edge agent's receive adds to a pickup: every agent picks up and handles its mail
 * through EdgeAgent.receive (decrypt, replay check, seen-record in its wallet, ack).
 */
async function receive(setup: Setup): Promise<void> {
  for (const item of envelopesFor(setup, Math.min(1000, RELAY_MESSAGES)).items) await postEnvelope(item.endpoint, item.envelope);
  const handlers: Handlers = { [BENCH_TYPE]: { from: 'any', handle: () => Promise.resolve({ summary: 'ping' }) } };
  const outcomes = new Map<string, number>();
  let handled = 0;
  const start = process.hrtime.bigint();
  await pool(setup.members.length, IN_FLIGHT, async (m) => {
    const member = setup.members[m] as Member;
    for (;;) {
      const entries = await member.agent.receive(handlers, { limit: 100, agency: member.mailbox });
      for (const e of entries) {
        if (e.outcome === 'handled') handled += 1;
        else outcomes.set(`${e.outcome}:${e.code ?? ''}`, (outcomes.get(`${e.outcome}:${e.code ?? ''}`) ?? 0) + 1);
      }
      if (entries.length < 100) break;
    }
  });
  const rate = handled / seconds(start);
  report({
    bench: 'agent.receive',
    store: 'SQLite',
    agents: setup.members.length,
    handled,
    notHandled: Object.fromEntries(outcomes),
    messagesPerSec: round(rate, 0),
    note: "pickup plus the edge agent's own work per message (decrypt, seen-record commit in its wallet)",
  });
}

/** Relay and pickup on the embedded store (one process), beside raw SQLite. */
async function relaySqlite(env: Env): Promise<void> {
  const setup = await relaySetup(env);
  const { storedBytes } = envelopesFor(setup, 100);
  const insertsPerSec = rawSqliteCommitsPerSecond(join(env.dir, 'raw.db'), RELAY_MESSAGES, storedBytes);
  const readsPerSec = rawSqliteReadsPerSecond(join(env.dir, 'raw-reads.db'), RELAY_MESSAGES, storedBytes);
  const raw = { what: 'single-row SQLite commits (WAL, synchronous=FULL) and reads by key, one connection', insertsPerSec, readsPerSec };
  await relayAndPickup(setup, 'SQLite', [env.agency.url], raw);
  await receive(setup);
  await relayCeiling(setup, raw);
}

/** Relay and pickup on PostgreSQL, with one agency process and then two on the same database, beside raw PostgreSQL. */
async function relayPostgres(dir: string, ledger: RunningLedger, wallets: Wallet[]): Promise<void> {
  const cluster = await startPgCluster();
  const children: AgencyChild[] = [];
  let agency: RunningAgency | undefined;
  try {
    const store = await cluster.createDatabase();
    const agencyKeyFile = join(dir, 'agency.key');
    const options = { ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.node.key], store, agencyKeyFile };
    agency = await startAgency(join(dir, 'pg-agency-1'), { ...options, port: 0, rateLimitPerSecond: UNLIMITED, agentRequestsPerSecond: UNLIMITED });
    // Its owners' wallets apart from the SQLite run's.
    const env: Env = { dir: join(dir, 'pg'), ledger, agency, wallets };
    const setup = await relaySetup(env);
    const raw = await rawPostgres(await cluster.createDatabase(), RELAY_MESSAGES, envelopesFor(setup, 100).storedBytes, IN_FLIGHT);
    const limits = { what: `single-row PostgreSQL INSERT commits and SELECTs by key, ${IN_FLIGHT} connections`, ...raw };
    await relayAndPickup(setup, 'PostgreSQL', [agency.url], limits);
    // The same database, the same owners: a second agency process beside the first.
    children.push(await startAgencyChild({ ...options, home: join(dir, 'pg-agency-2') }));
    await relayAndPickup(setup, 'PostgreSQL', [agency.url, ...children.map((c) => c.url)], limits);
  } finally {
    await closeAll(
      ...children.map((c) => () => c.close()),
      () => agency?.close(),
      () => cluster.stop(),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Pairing and revocation

function memorySigner(): Signer {
  const pair = ed25519Generate();
  return cryptoMemorySigner(pair.privateKey, pair.publicKey);
}

/** Median and p90 of did.update submits over loopback HTTP. */
async function submitRoundTrip(env: Env): Promise<{ median: number; p90: number }> {
  const key = memorySigner();
  const client = ledgerClient(env);
  const recovery = { digests: [recoveryKeyDigest(memorySigner().multikey)], threshold: 1 };
  const policy = (await client.submit(signEvent(policyCreate([{ key: key.multikey, flags: ALL_FLAGS }], recovery), [key]))).subject as PolicyAddress;
  const did = (await client.submit(signEvent(didCreate(policy), [key]))).subject as Did;
  const times: number[] = [];
  for (let i = 0; i < SUBMITS; i++) {
    const record = await env.ledger.node.subject(did);
    if (record === undefined) throw new Error('DID vanished');
    const event = signEvent(
      nextEvent('did.update', did, record, { services: [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: `http://127.0.0.1:8421/${i}` }] }),
      [key],
    );
    const start = process.hrtime.bigint();
    await client.submit(event);
    times.push(seconds(start) * 1000);
  }
  return { median: median(times), p90: percentile(times, 90) };
}

async function pairOne(env: Env, inviter: EdgeAgent, n: number): Promise<{ ms: number; key: string }> {
  const device = await newAgent(env, `device-${n}`);
  const keys = provisionKeys(device.wallet);
  const label = `device-${n}`;
  const start = process.hrtime.bigint();
  const created = createInvitation(inviter, { flags: FLAGS.PROVE, label });
  const invitation = parseInvitation(created.text);
  await answerInvitation(device, invitation, created.passcode, label, keys);
  const handlers = { ...ALL_HANDLERS, ...waitingHandlers(invitation.id) };
  const deadline = Date.now() + 30_000;
  let request: { invitation: string } | undefined;
  while (request === undefined) {
    if (Date.now() > deadline) throw new Error(`pairing ${n}: the inviter never received the answer`);
    const entries = await inviter.receive(handlers, { waitSeconds: 5 });
    for (const e of entries) if (e.outcome !== 'handled') process.stderr.write(`pairing ${n}: inviter ${e.outcome} ${e.type}: ${e.code ?? ''} ${e.detail}\n`);
    request = entries.map((e) => e.data?.['pairing'] as { invitation: string } | undefined).find((p) => p?.invitation === invitation.id);
  }
  await completePairing(inviter, invitation.id, true);
  await awaitWelcome(device, invitation, label, Date.now() + 30_000);
  return { ms: seconds(start) * 1000, key: keys.key };
}

async function pairingAndRevocation(env: Env): Promise<void> {
  const inviter = await newOwner(env, 'inviter');
  const paired: string[] = [];
  const pairings: number[] = [];
  for (let n = 0; n < PAIRINGS; n++) {
    const { ms, key } = await pairOne(env, inviter, n);
    pairings.push(ms);
    paired.push(key);
  }
  const revocations: number[] = [];
  let verified = 0;
  for (const key of paired) {
    const start = process.hrtime.bigint();
    const outcome = await revokeAgent(inviter, key);
    revocations.push(seconds(start) * 1000);
    if (outcome.state !== 'revoked') throw new Error(`revocation of ${key} is ${outcome.state}`);
    // Checked outside the timing: the ledger no longer lists it, and its cloud agent no longer routes to it.
    const listed = (await inviter.policy()).policy.agents.some((a) => a.key === key);
    const cloud = inviter.cloud();
    const probe = wrapForward(authcrypt(plaintextOf(100), inviter.agreementKey(), [recipientRef(inviter.profile.kx)]), `did:key:${key}`, [
      { kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey },
    ]);
    const routed = await postEnvelope(cloud.endpoint, probe).then(
      () => true,
      (e: unknown) => !(isDkmsError(e) && e.code === 'NOT_FOUND'),
    );
    if (!listed && !routed) verified += 1;
  }
  const submit = await submitRoundTrip(env);
  const ref = {
    ledgerSubmitMedianMs: round(submit.median, 2),
    ledgerSubmitP90Ms: round(submit.p90, 2),
    ledgerSubmit: `did.update over http loopback, ${SUBMITS} submits`,
  };
  report({
    bench: 'agent.pairing',
    pairings: PAIRINGS,
    medianMs: round(median(pairings), 1),
    p90Ms: round(percentile(pairings, 90), 1),
    ...ref,
    ratio: round(median(pairings) / submit.median),
  });
  report({
    bench: 'agent.revocation',
    revocations: revocations.length,
    revokeThreshold: 1,
    verifiedGoneFromLedgerAndCloud: verified,
    medianMs: round(median(revocations), 1),
    p90Ms: round(percentile(revocations, 90), 1),
    ...ref,
    ratio: round(median(revocations) / submit.median),
  });
}

// ---------------------------------------------------------------------------------------------
// 4. Under abuse

const ABUSE_PHASE_MS = SMALL ? 1500 : 5000;
const ABUSE_JUNK_BYTES = 75_000;
const ABUSE_ROUND_MS = 100;
/** Requests the attacker keeps in flight: refused syncs and registrations are held up to 2 s. */
const ABUSE_IN_FLIGHT = 64;

interface LegitFigures {
  readonly requests: number;
  readonly failed: Record<string, number>;
  readonly successRate: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * What the owner's agents do meanwhile, for ABUSE_PHASE_MS: a peer posts a message to the
 * first agent; the first agent picks up until it has it, and acknowledges; both agents sync.
 * Every request is timed; any failure is counted by its code.
 */
async function legitimateTraffic(members: readonly Member[], peer: AgreementKey): Promise<LegitFigures> {
  const [first, second] = members as [Member, Member];
  const times: number[] = [];
  const failed = new Map<string, number>();
  const timed = async <T>(fn: () => Promise<T>): Promise<T | undefined> => {
    const start = process.hrtime.bigint();
    try {
      const result = await fn();
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
      return result;
    } catch (e) {
      const code = isDkmsError(e) ? e.code : String(e);
      failed.set(code, (failed.get(code) ?? 0) + 1);
      return undefined;
    }
  };
  const cloudId = first.agent.cloud().id;
  const end = Date.now() + ABUSE_PHASE_MS;
  for (let round = 0; Date.now() < end; round++) {
    // A round every ABUSE_ROUND_MS at most: the agents stay within their keys' budgets (50 requests a second).
    const pace = new Promise((resolve) => setTimeout(resolve, ABUSE_ROUND_MS));
    const to = recipientRef(first.kx);
    const inner = authcrypt(plaintextOf(MESSAGE_BYTES, { from: didOf(peer.kid), to: [didOf(to.kid)], round }), peer, [to]);
    await timed(() => postEnvelope(first.cloud.endpoint, wrapForward(inner, `did:key:${first.key}`, [first.cloud.routing])));
    // Junk may come first: what is not ours is acknowledged unread, as an agent would refuse it.
    for (let tries = 0; tries < 50; tries++) {
      const picked = await timed(() => first.mailbox.pickup(100));
      if (picked === undefined || picked.length === 0) break;
      await timed(() => first.mailbox.ack(picked.map((m) => m.id)));
      if (picked.some((m) => JSON.stringify(m.envelope).length < 4 * MESSAGE_BYTES + 4096)) break;
    }
    await timed(() => first.mailbox.sync(cloudId));
    await timed(() => second.mailbox.sync(cloudId));
    await pace;
  }
  const requests = times.length + [...failed.values()].reduce((a, b) => a + b, 0);
  return {
    requests,
    failed: Object.fromEntries(failed),
    successRate: round(times.length / requests, 4),
    p50Ms: round(percentile(times, 50)),
    p99Ms: round(percentile(times, 99)),
  };
}

/**
 * An agency with its default limits (200 requests a second per address, 50 per admitted key,
 * mailboxes of 64 MiB with 8 MiB per sender) and one owner with two agents, first left alone,
 * then flooded from four other loopback addresses: with validly signed requests from throwaway
 * keys (pickups, syncs, registrations), then with junk envelopes for the first agent. The figure
 * is the owners' own requests' success rate (goal 100%) and p99, beside the p99 with no flood.
 */
async function abuse(dir: string): Promise<void> {
  const ledger = await startLedger(join(dir, 'abuse-ledger'), { port: 0, verifyThreads: 0 });
  let agency: RunningAgency;
  try {
    agency = await startAgency(join(dir, 'abuse-agency'), { ledgerUrl: ledger.url, port: 0, trustedLedgerKeys: [ledger.node.key] });
  } catch (e) {
    await ledger.close();
    throw e;
  }
  const wallets: Wallet[] = [];
  // Stopped whatever happens: a flood left running after a failure would keep the run alive.
  const floods: Flood[] = [];
  try {
    const env: Env = { dir: join(dir, 'abuse'), ledger, agency, wallets };
    const members = await ownerWithAgents(env, 'abused', 2);
    const first = members[0] as Member;
    const peer = memoryKey();
    const cloudId = first.agent.cloud().id;
    const policy = first.agent.profile.policy;

    const quiet = await legitimateTraffic(members, peer);
    report({ bench: 'agent.abuse', flood: 'none', legitimate: quiet });

    let stranger = memorySigner();
    const signed = flood(
      agency.url,
      (i) => {
        if (i % 64 === 0) stranger = memorySigner();
        const signer = stranger;
        const ahead = (i % 5) * 10_000;
        if (i % 4 < 2)
          return { method: 'GET', path: '/v1/mailbox?limit=1&wait=0', headers: signedAhead(signer, 'GET', '/v1/mailbox?limit=1&wait=0', undefined, ahead) };
        if (i % 4 === 2) {
          const path = `/v1/cloud-agents/${cloudId}/sync`;
          return { method: 'POST', path, headers: { ...signedAhead(signer, 'POST', path, {}, ahead), 'content-type': 'application/json' }, body: '{}' };
        }
        return {
          method: 'POST',
          path: '/v1/cloud-agents',
          headers: { ...signedAhead(signer, 'POST', '/v1/cloud-agents', { policy }, ahead), 'content-type': 'application/json' },
          body: JSON.stringify({ policy }),
        };
      },
      ABUSE_IN_FLIGHT,
    );
    floods.push(signed);
    const started = Date.now();
    const underSigned = await legitimateTraffic(members, peer);
    await signed.stop();
    report({
      bench: 'agent.abuse',
      flood: 'validly signed requests from throwaway keys',
      attackerRequestsPerSec: round(signed.sent() / ((Date.now() - started) / 1000), 0),
      attackerStatuses: Object.fromEntries(signed.statuses),
      legitimate: underSigned,
      p99VsQuiet: round(underSigned.p99Ms / quiet.p99Ms),
    });

    const junkTo = [recipientRef(first.kx)];
    const junk = flood(agency.url, () => {
      const envelope = wrapForward(anoncrypt(randomBytes(ABUSE_JUNK_BYTES), junkTo), `did:key:${first.key}`, [first.cloud.routing]);
      return { method: 'POST', path: '/v1/inbound', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: JSON.stringify(envelope) };
    });
    floods.push(junk);
    const junkStarted = Date.now();
    const underJunk = await legitimateTraffic(members, peer);
    await junk.stop();
    report({
      bench: 'agent.abuse',
      flood: `junk envelopes of ${ABUSE_JUNK_BYTES} bytes for one agent`,
      attackerRequestsPerSec: round(junk.sent() / ((Date.now() - junkStarted) / 1000), 0),
      attackerStatuses: Object.fromEntries(junk.statuses),
      legitimate: underJunk,
      p99VsQuiet: round(underJunk.p99Ms / quiet.p99Ms),
    });
  } finally {
    await closeAll(
      ...floods.map((f) => () => f.stop()),
      () => agency.close(),
      () => ledger.close(),
      ...wallets.map((w) => () => w.close()),
    );
  }
}

/** `npm run bench -- agent`: everything; `-- relay`: relay and pickup only. */
export const agentBench = (): Promise<void> => agentSections(true);
export const relayBench = (): Promise<void> => agentSections(false);

async function agentSections(all: boolean): Promise<void> {
  if (all) envelopes();
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-agent-'));
  const wallets: Wallet[] = [];
  let ledger: RunningLedger | undefined;
  let agency: RunningAgency | undefined;
  try {
    ledger = await startLedger(join(dir, 'ledger-home'), { port: 0, verifyThreads: 0, rateLimitPerSecond: UNLIMITED });
    agency = await startAgency(join(dir, 'agency-home'), {
      ledgerUrl: ledger.url,
      port: 0,
      trustedLedgerKeys: [ledger.node.key],
      rateLimitPerSecond: UNLIMITED,
      agentRequestsPerSecond: UNLIMITED,
    });
    const env: Env = { dir, ledger, agency, wallets };
    await relaySqlite(env);
    await relayPostgres(dir, ledger, wallets);
    if (!all) return;
    await pairingAndRevocation(env);
    await abuse(dir);
  } finally {
    await closeAll(
      () => agency?.close(),
      () => ledger?.close(),
      ...wallets.map((w) => () => w.close()),
      () => rmSync(dir, { recursive: true, force: true }),
    );
  }
}
