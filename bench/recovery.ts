/**
 * Recovery benchmark (docs/recovery.md). Raw limits, measured in the same run:
 *
 * - social recovery: an owner with N trustees (3, 10, 50), each another owner with a cloud agent
 *   at the same agency, connected and accepted as trustee; recovery set up with a majority
 *   threshold M = floor(N/2) + 1 (setup is timed and reported apart). The figure is a recovery on
 *   a new device: createRecoveryRequest, then each of the first M trustees in turn adds and
 *   approves the request, the device collects the releases (after every 16 approvals: the agency
 *   keeps at most 32 messages for a key it does not route yet) and rebuilds R, and
 *   restoreFromSecret runs to its end (backup fetched and merged, policy.recover accepted, every
 *   connection rotated, a new backup stored). The owner recovers RUNS times in a row with the
 *   same trustees (each time from the device the previous run restored), after one untimed run.
 *   Every agent's HTTP client is wrapped to count the requests the recovery really makes, by
 *   kind. The limit is those requests alone: each kind's count times the same-run median of a
 *   bare request of that kind over the same loopback, timed after every recovery (a signed
 *   did.update submit; a policy GET without client-side verification; a forward envelope of the
 *   recovery's mean size posted to a routed agent; a signed pickup of an empty mailbox for every
 *   other agency call). ratio = measured / limit: what the recovery takes beyond its requests is
 *   client-side work (wallet writes, key generation, envelope crypto, chain verification,
 *   Shamir, backup encryption and merge, connection rotation).
 * - backups: a wallet of 1,000 items of 1 KiB plus 40 keys. encryptBackup, decryption
 *   (backupSecret + the wallet export decode) and mergeBackup into a fresh empty wallet, against
 *   one AES-256-GCM seal / open (src/crypto) of a buffer as large as the backup.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { memorySigner as cryptoMemorySigner, type Signer } from '../src/crypto/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AgencyClient, postEnvelope } from '../src/agency/agency-client.js';
import { CONNECTION_RESPONSE, acceptConnection, inviteConnection } from '../src/agent/connections.js';
import { authcrypt, didKeyUrl, memoryAgreementKey, messageBytes, newMessage, wrapForward, type AgreementKey, type Jwe } from '../src/didcomm/index.js';
import { EdgeAgent, recipientRef, type ReceiveEntry } from '../src/agent/edge-agent.js';
import { ALL_HANDLERS } from '../src/recovery/protocols.js';
import { initFirstAgent, registerCloudAgent } from '../src/agent/provision.js';
import { decodePublicKey, ed25519Generate, equalBytes, open, randomBytes, seal, wipe, x25519Generate } from '../src/crypto/index.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../src/ledger/build.js';
import { LedgerClient } from '../src/ledger/client.js';
import type { Did, LedgerEvent, PolicyAddress } from '../src/ledger/events.js';
import { recoveryKeyDigest } from '../src/policy/authority.js';
import { ALL_FLAGS } from '../src/policy/flags.js';
import { backupSecret, encryptBackup, mergeBackup } from '../src/recovery/backup.js';
import {
  addRecoveryRequest,
  approveRecoveryRequest,
  collectReleases,
  createRecoveryRequest,
  rebuiltSecrets,
  releaseProgress,
} from '../src/recovery/requests.js';
import { restoreFromSecret } from '../src/recovery/restore.js';
import { RecoveryKeys, newRecoverySecret } from '../src/recovery/secret.js';
import { commitRecovery, prepareRecovery } from '../src/recovery/setup.js';
import { trustees as trusteeList } from '../src/recovery/state.js';
import { answerOffer, inviteTrustee, trusteeOffers } from '../src/recovery/trustees.js';
import { startAgency, type RunningAgency } from '../src/server/agency-service.js';
import { startLedger, type RunningLedger } from '../src/server/ledger-service.js';
import { decodeExport } from '../src/wallet/export.js';
import { Wallet, rawSecret } from '../src/wallet/index.js';
import { median, millis, progressLine, report, round } from './report.js';
import { closeAll } from './runner.js';

const TRUSTEES = [3, 10, 50] as const;
/**
 * Recoveries timed at each scale, after one untimed (the owner recovers again and again with the
 * same trustees: a trustee takes at most REQUESTS_PER_HOUR = 5 requests an hour).
 */
const RUNS = 3;
const WARMUP_RUNS = 1;
/** The new device collects releases after this many approvals (the agency keeps 32 for an unrouted key). */
const COLLECT_EVERY = 16;
/** Bare requests timed per kind for the limit after each recovery, after a few untimed. */
const CALIBRATION = 12;
const WARMUP = 2;
const OWNER = 'alice';
const UNLIMITED = 1_000_000;

const BACKUP_ITEMS = 1000;
const BACKUP_ITEM_BYTES = 1024;
const BACKUP_KEY_PAIRS = 20;
const BACKUP_ROUNDS = 5;
const BACKUP_OPS = 8;
const RAW_OPS = 40;

function since(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

function fail(message: string): never {
  throw new Error(`recovery bench: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// Counting the HTTP requests agents make

type Kind = 'ledgerSubmit' | 'ledgerRead' | 'agencyForward' | 'agencyCall';
const KINDS: readonly Kind[] = ['ledgerSubmit', 'ledgerRead', 'agencyForward', 'agencyCall'];
type Counts = Record<Kind, number>;
const noCounts = (): Counts => ({ ledgerSubmit: 0, ledgerRead: 0, agencyForward: 0, agencyCall: 0 });

/** A fetch for every client of the bench's agents: counts requests of the phase being timed, by kind and route. */
class RequestCounter {
  readonly #ledgerOrigin: string;
  phase: string | undefined;
  readonly counts = new Map<string, Counts>();
  readonly routes = new Map<string, number>();
  forwardBytes = 0;
  forwards = 0;

  constructor(ledgerUrl: string) {
    this.#ledgerOrigin = new URL(ledgerUrl).origin;
  }

  readonly fetch: typeof fetch = (input, init) => {
    if (this.phase !== undefined) this.#note(this.phase, input, init);
    return fetch(input, init);
  };

  #note(phase: string, input: Parameters<typeof fetch>[0], init: RequestInit | undefined): void {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const method = (init?.method ?? 'GET').toUpperCase();
    const route = url.pathname.replace(/^(\/v1\/(?:policies|dids|cloud-agents|backups))\/[^/]+/, '$1/:id');
    let kind: Kind;
    if (url.origin === this.#ledgerOrigin) kind = method === 'POST' && route.startsWith('/v1/events') ? 'ledgerSubmit' : 'ledgerRead';
    else if (method === 'POST' && route === '/v1/inbound') {
      kind = 'agencyForward';
      this.forwards += 1;
      this.forwardBytes += typeof init?.body === 'string' ? init.body.length : 0;
    } else kind = 'agencyCall';
    const counts = this.counts.get(phase) ?? noCounts();
    counts[kind] += 1;
    this.counts.set(phase, counts);
    const key = `${method} ${route}`;
    this.routes.set(key, (this.routes.get(key) ?? 0) + 1);
  }

  take(phase: string): Counts {
    const counts = this.counts.get(phase) ?? noCounts();
    this.counts.delete(phase);
    return counts;
  }
}

// ---------------------------------------------------------------------------------------------
// A world: one ledger, one agency, owners with cloud agents (as bench/agent.ts builds it)

interface Env {
  readonly dir: string;
  readonly ledger: RunningLedger;
  readonly agency: RunningAgency;
  readonly wallets: Wallet[];
  readonly requests: RequestCounter;
}

async function startEnv(dir: string): Promise<Env> {
  const ledger = await startLedger(join(dir, 'ledger-home'), { port: 0, verifyThreads: 0, rateLimitPerSecond: UNLIMITED });
  try {
    const agency = await startAgency(join(dir, 'agency-home'), {
      ledgerUrl: ledger.url,
      port: 0,
      trustedLedgerKeys: [ledger.node.key],
      rateLimitPerSecond: UNLIMITED,
      agentRequestsPerSecond: UNLIMITED,
    });
    return { dir, ledger, agency, wallets: [], requests: new RequestCounter(ledger.url) };
  } catch (e) {
    await ledger.close();
    throw e;
  }
}

async function newAgent(env: Env, name: string): Promise<EdgeAgent> {
  const wallet = await Wallet.create(join(env.dir, 'agents', `${name}.db`), rawSecret(randomBytes(32)));
  env.wallets.push(wallet);
  const ledger = new LedgerClient({ url: env.ledger.url, trustedKeys: [env.ledger.node.key], fetch: env.requests.fetch });
  return new EdgeAgent(wallet, ledger, { fetch: env.requests.fetch });
}

/** A new owner: first agent, policy on the ledger, cloud agent at the agency. */
async function makeOwner(env: Env, label: string): Promise<EdgeAgent> {
  const agent = await newAgent(env, label);
  await initFirstAgent(agent, { label, ledgerUrl: env.ledger.url });
  await registerCloudAgent(agent, env.agency.url, 0);
  return agent;
}

/** Receives until the mailbox is empty; a refused message is a failure of the bench's world. */
async function drain(agent: EdgeAgent): Promise<ReceiveEntry[]> {
  const all: ReceiveEntry[] = [];
  for (let round = 0; round < 100; round++) {
    const batch = await agent.receive(ALL_HANDLERS);
    if (batch.length === 0) return all;
    for (const e of batch) if (e.outcome !== 'handled') fail(`${agent.profile.label} ${e.outcome} ${e.type}: ${e.code ?? ''} ${e.detail}`);
    all.push(...batch);
  }
  return fail(`the mailbox of ${agent.profile.label} never emptied`);
}

/** Drains every agent until none has mail left. */
async function settle(agents: readonly EdgeAgent[]): Promise<void> {
  for (let round = 0; round < 20; round++) {
    let any = false;
    for (const agent of agents) if ((await drain(agent)).length > 0) any = true;
    if (!any) return;
  }
  fail('the agents never settled');
}

async function connect(owner: EdgeAgent, other: EdgeAgent): Promise<void> {
  const { text } = inviteConnection(owner, other.profile.label);
  await acceptConnection(other, text, owner.profile.label);
  const entries = await drain(owner);
  if (entries.length !== 1 || entries[0]?.type !== CONNECTION_RESPONSE) fail(`connecting ${other.profile.label}: ${JSON.stringify(entries)}`);
}

// ---------------------------------------------------------------------------------------------
// 1. Social recovery

interface Social {
  owner: EdgeAgent;
  readonly trustees: EdgeAgent[];
  readonly secret: Uint8Array;
}

/** The owner with `n` accepted trustees and recovery set up with `threshold` of them; times each step. */
async function setUp(env: Env, n: number, threshold: number): Promise<Social> {
  const start = process.hrtime.bigint();
  const owner = await makeOwner(env, OWNER);
  const people: EdgeAgent[] = [];
  const progress = progressLine();
  for (let i = 1; i <= n; i++) {
    people.push(await makeOwner(env, `trustee${i}`));
    progress(`recovery.social: made ${i} of ${n} trustees…`);
  }
  const ownersMs = since(start);

  const connectStart = process.hrtime.bigint();
  for (const [i, t] of people.entries()) {
    await connect(owner, t);
    await inviteTrustee(owner, t.profile.label);
    progress(`recovery.social: connected ${i + 1} of ${n} trustees…`);
  }
  await settle([owner, ...people]);
  for (const t of people) {
    const offer = trusteeOffers(t)[0] ?? fail(`${t.profile.label} got no trustee offer`);
    await answerOffer(t, offer.id, true);
  }
  await settle([owner, ...people]);
  const statuses = trusteeList(owner).map((t) => t.status);
  if (statuses.length !== n || statuses.some((s) => s !== 'accepted')) fail(`trustees: ${statuses.join(', ')}`);
  const connectMs = since(connectStart);

  const shareStart = process.hrtime.bigint();
  const { secret } = await prepareRecovery(owner, {
    offline: false,
    social: { trustees: people.map((t) => t.profile.label), threshold, insist: false },
    delay: 0,
  });
  await settle([owner, ...people]);
  const committed = await commitRecovery(owner);
  if (committed.state !== 'committed') fail(`commit is ${committed.state}`);
  await settle([owner, ...people]);
  const shareMs = since(shareStart);

  report({
    bench: 'recovery.social.setup',
    trustees: n,
    threshold,
    transport: 'http loopback',
    ownersMs: round(ownersMs, 0),
    connectAndAcceptMs: round(connectMs, 0),
    shareAndCommitMs: round(shareMs, 0),
    totalMs: round(since(start), 0),
    note: `${n + 1} owners (policy on the ledger, cloud agent); ${n} connections, offers and acceptances; prepareRecovery (split, ${n} shares sent and acknowledged) and commitRecovery (policy.recover, commits, backup)`,
  });
  return { owner, trustees: people, secret };
}

const PHASES = ['requestsAndReleases', 'rebuild', 'restore'] as const;
type Phase = (typeof PHASES)[number];

interface Run {
  readonly ms: Record<Phase | 'total', number>;
  readonly counts: Record<Phase, Counts>;
  /** Inside requestsAndReleases: making the request, each trustee's add + approve, the collects. */
  readonly createMs: number;
  readonly approveMs: number[];
  readonly collectMs: number;
  readonly items: number;
}

/** One recovery on a new device through the first `threshold` trustees, timed by phase. */
async function recoverOnce(env: Env, social: Social, threshold: number, run: number): Promise<Run> {
  const device = await newAgent(env, `${OWNER}-device-${social.trustees.length}-${run}`);
  const helpers = social.trustees.slice(0, threshold);
  const requests = env.requests;
  let collected = 0;
  let collectMs = 0;
  const collect = async () => {
    const start = process.hrtime.bigint();
    const entries = await collectReleases(device);
    collectMs += since(start);
    for (const e of entries) {
      if (e.outcome !== 'handled') fail(`a release was ${e.outcome}: ${e.code ?? ''} ${e.detail}`);
      collected += 1;
    }
  };
  const approveMs: number[] = [];

  requests.phase = 'requestsAndReleases';
  const start = process.hrtime.bigint();
  const { text, challenge, request } = createRecoveryRequest(device, { agency: env.agency.url, label: `${OWNER} (new device)` });
  const createMs = since(start);
  for (const [i, t] of helpers.entries()) {
    const approveStart = process.hrtime.bigint();
    addRecoveryRequest(t, text);
    await approveRecoveryRequest(t, request.id, OWNER, challenge);
    approveMs.push(since(approveStart));
    if ((i + 1) % COLLECT_EVERY === 0 && i + 1 < helpers.length) await collect();
  }
  await collect();
  const released = process.hrtime.bigint();

  requests.phase = 'rebuild';
  const secrets = (await rebuiltSecrets(device)).map((r) => r.secret);
  const rebuilt = process.hrtime.bigint();

  requests.phase = 'restore';
  const secret = secrets[0] ?? fail(`no secret rebuilt from ${collected} release(s): ${JSON.stringify(releaseProgress(device))}`);
  if (secrets.length !== 1 || !equalBytes(secret, social.secret)) fail('the rebuilt secret is not the one set up');
  const outcome = await restoreFromSecret(device, secret, { agency: env.agency.url, fetch: requests.fetch });
  const end = process.hrtime.bigint();
  requests.phase = undefined;

  if (collected !== threshold) fail(`${collected} releases collected, ${threshold} expected`);
  if (outcome.state !== 'recovered') fail(`restore is ${outcome.state}`);
  if (outcome.rotated.length !== social.trustees.length || outcome.unrotated.length > 0) {
    fail(`${outcome.rotated.length} connections rotated, ${outcome.unrotated.length} not, of ${social.trustees.length}`);
  }
  const agents = (await device.policy()).policy.agents.map((a) => a.key).sort();
  if (agents.join() !== [device.profile.key, device.cloud().key].sort().join()) fail(`the policy after recovery lists ${agents.join(', ')}`);
  wipe(secret);
  // Outside the timing: the trustees take the rotations, so the next run starts from a settled world.
  social.owner = device;
  await settle([device, ...social.trustees]);

  const ms = (a: bigint, b: bigint) => Number(b - a) / 1e6;
  return {
    ms: { requestsAndReleases: ms(start, released), rebuild: ms(released, rebuilt), restore: ms(rebuilt, end), total: ms(start, end) },
    counts: { requestsAndReleases: requests.take('requestsAndReleases'), rebuild: requests.take('rebuild'), restore: requests.take('restore') },
    createMs,
    approveMs,
    collectMs,
    items: outcome.items,
  };
}

// ---- the limit: bare requests of each kind, same run, same servers -----------------------------

function memorySigner(): Signer {
  const pair = ed25519Generate();
  return cryptoMemorySigner(pair.privateKey, pair.publicKey);
}

/** Milliseconds of `fn` after WARMUP untimed calls; `prepare` runs before each, off the clock. */
async function timed(fn: (i: number) => Promise<unknown>, prepare: (i: number) => Promise<void> = () => Promise.resolve()): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + CALIBRATION; i++) {
    await prepare(i);
    const ms = await millis(() => fn(i));
    if (i >= WARMUP) times.push(ms);
  }
  return times;
}

/** A forward envelope to `target` whose inner message is `bytes` long. */
function forwardOf(sender: AgreementKey, target: EdgeAgent, bytes: number): Jwe {
  const base = newMessage('urn:dkms:bench/1.0/ping', { text: '' });
  const plaintext = messageBytes({ ...base, body: { text: 'x'.repeat(Math.max(0, bytes - messageBytes(base).length)) } });
  const cloud = target.cloud();
  const routing = { kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey };
  return wrapForward(authcrypt(plaintext, sender, [recipientRef(target.profile.kx)]), `did:key:${target.profile.key}`, [routing]);
}

/** Bare requests of each kind, timed after every recovery (the disk and the process vary over a run): samples pooled. */
class Calibration {
  readonly samples: Record<Kind, number[]> = { ledgerSubmit: [], ledgerRead: [], agencyForward: [], agencyCall: [] };
  readonly sqliteTx: number[] = [];
  forwardEnvelopeBytes = 0;
  rows = 0;

  private constructor(
    private readonly env: Env,
    private readonly client: LedgerClient,
    private readonly key: Signer,
    private readonly did: Did,
    private readonly probe: EdgeAgent,
    private readonly sender: AgreementKey,
    private readonly mailbox: AgencyClient,
    private readonly db: Database.Database,
  ) {}

  static async create(env: Env): Promise<Calibration> {
    const client = new LedgerClient({ url: env.ledger.url, trustedKeys: [env.ledger.node.key] });
    const key = memorySigner();
    const recovery = { digests: [recoveryKeyDigest(memorySigner().multikey)], threshold: 1 };
    const policy = (await client.submit(signEvent(policyCreate([{ key: key.multikey, flags: ALL_FLAGS }], recovery), [key]))).subject as PolicyAddress;
    const did = (await client.submit(signEvent(didCreate(policy), [key]))).subject as Did;
    const probe = await makeOwner(env, 'probe');
    const pair = x25519Generate();
    const sender = memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
    const signer = memorySigner();
    const mailbox = new AgencyClient(env.agency.url, signer);
    // A bare durable SQLite transaction with the wallet's pragmas, on the same disk: context, not in the limit.
    const db = new Database(join(env.dir, 'raw.db'));
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE t (name TEXT PRIMARY KEY, value BLOB NOT NULL)');
    return new Calibration(env, client, key, did, probe, sender, mailbox, db);
  }

  /** One round of every kind; `policy` is the owner's, `forwardBytes` the recovery's mean forward body. */
  async round(policy: string, forwardBytes: number): Promise<void> {
    const { env, client, key, did } = this;
    // A signed did.update, submitted and durable (as bench/agent.ts measures it).
    const events: LedgerEvent[] = [];
    this.samples.ledgerSubmit.push(
      ...(await timed(
        (i) => client.submit(events[i] ?? fail('no event')),
        async (i) => {
          const record = (await env.ledger.node.subject(did)) ?? fail('the calibration DID vanished');
          events[i] = signEvent(
            nextEvent('did.update', did, record, {
              services: [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: `http://127.0.0.1:8421/${record.seq}` }],
            }),
            [key],
          );
        },
      )),
    );
    // The owner's policy, as the recovery reads it, without the client's chain verification.
    this.samples.ledgerRead.push(...(await timed(async () => (await fetch(`${env.ledger.url}/v1/policies/${policy}`)).json())));
    // A forward of the recovery's mean envelope size, to a routed agent: accepted 202, stored durably.
    const sizeOf = (bytes: number) => JSON.stringify(forwardOf(this.sender, this.probe, bytes)).length;
    const [a, b] = [sizeOf(200), sizeOf(2000)];
    const inner = Math.max(100, Math.round(200 + ((forwardBytes - a) * 1800) / (b - a)));
    const envelopes = Array.from({ length: WARMUP + CALIBRATION }, () => forwardOf(this.sender, this.probe, inner));
    this.forwardEnvelopeBytes = JSON.stringify(envelopes[0]).length;
    const endpoint = this.probe.cloud().endpoint;
    this.samples.agencyForward.push(...(await timed((i) => postEnvelope(endpoint, envelopes[i] ?? fail('no envelope')))));
    // Every other agency call: a signed pickup of an empty mailbox.
    this.samples.agencyCall.push(...(await timed(() => this.mailbox.pickup(100))));
    const insert = this.db.prepare('INSERT INTO t (name, value) VALUES (?, ?)');
    const value = randomBytes(512);
    this.sqliteTx.push(...(await timed(async () => insert.run(`row-${this.rows++}`, value))));
  }

  medians(): Record<Kind, number> {
    return {
      ledgerSubmit: median(this.samples.ledgerSubmit),
      ledgerRead: median(this.samples.ledgerRead),
      agencyForward: median(this.samples.agencyForward),
      agencyCall: median(this.samples.agencyCall),
    };
  }

  close(): void {
    this.db.close();
  }
}

const limitOf = (counts: Counts, perKind: Record<Kind, number>) => KINDS.reduce((sum, k) => sum + counts[k] * perKind[k], 0);
const sumCounts = (all: readonly Counts[]): Counts => {
  const total = noCounts();
  for (const c of all) for (const k of KINDS) total[k] += c[k];
  return total;
};

async function socialRecovery(dir: string, n: number): Promise<void> {
  const threshold = Math.floor(n / 2) + 1;
  const env = await startEnv(join(dir, `social-${n}`));
  let calibration: Calibration | undefined;
  try {
    const social = await setUp(env, n, threshold);
    calibration = await Calibration.create(env);
    const warmups: number[] = [];
    for (let r = 0; r < WARMUP_RUNS; r++) warmups.push((await recoverOnce(env, social, threshold, -1 - r)).ms.total);
    env.requests.routes.clear();
    env.requests.forwards = 0;
    env.requests.forwardBytes = 0;
    const done: Run[] = [];
    for (let r = 0; r < RUNS; r++) {
      done.push(await recoverOnce(env, social, threshold, r));
      await calibration.round(social.owner.profile.policy, env.requests.forwardBytes / Math.max(1, env.requests.forwards));
    }
    const perKind = calibration.medians();
    const routes = Object.fromEntries([...env.requests.routes].sort((x, y) => y[1] - x[1]).map(([k, v]) => [k, round(v / RUNS, 1)]));

    const totals = done.map((d) => d.ms.total);
    const limits = done.map((d) => limitOf(sumCounts(PHASES.map((p) => d.counts[p])), perKind));
    const phases = Object.fromEntries(
      PHASES.map((p) => {
        const ms = median(done.map((d) => d.ms[p]));
        const limit = median(done.map((d) => limitOf(d.counts[p], perKind)));
        return [p, { ms: round(ms, 1), limitMs: round(limit, 1), ratio: limit > 0 ? round(ms / limit, 1) : null, requests: done[0]?.counts[p] }];
      }),
    );
    report({
      bench: 'recovery.social',
      trustees: n,
      threshold,
      transport: 'http loopback',
      runs: RUNS,
      untimedWarmupMs: warmups.map((t) => round(t, 1)),
      collectEvery: COLLECT_EVERY,
      totalMs: round(median(totals), 1),
      totalMsRuns: totals.map((t) => round(t, 1)),
      limitMs: round(median(limits), 1),
      ratio: round(median(totals) / median(limits), 1),
      phases,
      inRequestsAndReleases: {
        createRequestMs: round(median(done.map((d) => d.createMs)), 1),
        perTrusteeAddAndApproveMedianMs: round(median(done.flatMap((d) => d.approveMs)), 1),
        collectReleasesMs: round(median(done.map((d) => d.collectMs)), 1),
      },
      backupItemsMerged: done[0]?.items,
      limit: {
        bareRequestMedianMs: Object.fromEntries(KINDS.map((k) => [k, round(perKind[k], 3)])),
        samplesPerKind: calibration.samples.ledgerSubmit.length,
        requestsPerRecovery: sumCounts(PHASES.map((p) => done[0]?.counts[p] ?? noCounts())),
        routesPerRecovery: routes,
        forwardEnvelopeBytes: calibration.forwardEnvelopeBytes,
        meanRecoveryForwardBytes: round(env.requests.forwardBytes / Math.max(1, env.requests.forwards), 0),
        durableSqliteTxMedianMs: round(median(calibration.sqliteTx), 3),
      },
      note:
        "limit = the HTTP requests this recovery made (counted at every agent's fetch), each costed at the same-run median of a bare request of its kind over the same loopback, timed after each recovery: " +
        'ledgerSubmit = signed did.update POST /v1/events; ledgerRead = GET /v1/policies/<owner> without client chain verification; ' +
        "agencyForward = POST /v1/inbound of a forward of the recovery's mean size to a routed agent; agencyCall = signed GET /v1/mailbox of an empty mailbox (costs every other agency call). " +
        'ratio = measured / limit (1 = nothing but those requests); the rest is client-side work: wallet writes (durableSqliteTxMedianMs each, for scale), key generation, envelope crypto, chain verification, Shamir, backup encrypt and merge, connection rotation. ' +
        'Trustees approve one after another, as people would; setup is reported apart (recovery.social.setup).',
    });
  } finally {
    await closeAll(
      () => calibration?.close(),
      () => env.agency.close(),
      () => env.ledger.close(),
      ...env.wallets.map((w) => () => w.close()),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Backup throughput

async function perSecond(count: number, fn: (i: number) => Promise<unknown> | unknown): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await fn(i);
  return count / (since(start) / 1000);
}

async function backups(dir: string): Promise<void> {
  const wallet = await Wallet.create(join(dir, 'backup-source.db'), rawSecret(randomBytes(32)));
  try {
    wallet.transaction(() => {
      for (let i = 0; i < BACKUP_ITEMS; i++) wallet.put('bench', `item-${i}`, randomBytes(BACKUP_ITEM_BYTES), { kind: 'bench', n: String(i % 10) });
    });
    for (let i = 0; i < BACKUP_KEY_PAIRS; i++) {
      wallet.createKey(`bench-ed25519-${i}`, 'ed25519');
      wallet.createKey(`bench-x25519-${i}`, 'x25519');
    }
    const keys = new RecoveryKeys(newRecoverySecret());
    const maker = ed25519Generate();
    const about = {
      policy: 'bench-policy',
      signer: cryptoMemorySigner(maker.privateKey, maker.publicKey),
    };
    const backup = await encryptBackup(wallet, keys.backupKey, about);
    const bytes = backup.length;
    const decryptOnce = async () => {
      const { exported, secret } = backupSecret(backup, keys);
      try {
        return await decodeExport(exported, secret);
      } finally {
        if (secret.kind === 'raw') wipe(secret.key);
      }
    };
    const decoded = [...(await decryptOnce()).values()].reduce((n, items) => n + items.length, 0);
    if (decoded < BACKUP_ITEMS + 2 * BACKUP_KEY_PAIRS) fail(`the backup decodes to ${decoded} items`);

    const aeadKey = randomBytes(32);
    const plain = randomBytes(bytes);
    const sealed = seal(aeadKey, plain);
    let merged = 0;
    let fresh = 0;
    const runs = { encrypt: [] as number[], decrypt: [] as number[], merge: [] as number[], seal: [] as number[], open: [] as number[] };
    for (let r = 0; r < BACKUP_ROUNDS; r++) {
      runs.seal.push(await perSecond(RAW_OPS, () => seal(aeadKey, plain)));
      runs.encrypt.push(await perSecond(BACKUP_OPS, () => encryptBackup(wallet, keys.backupKey, about)));
      runs.open.push(await perSecond(RAW_OPS, () => open(aeadKey, sealed)));
      runs.decrypt.push(await perSecond(BACKUP_OPS, decryptOnce));
      // Merges into fresh empty wallets, made before the clock starts.
      const targets: Wallet[] = [];
      for (let i = 0; i < BACKUP_OPS; i++) targets.push(await Wallet.create(join(dir, `backup-target-${fresh++}.db`), rawSecret(randomBytes(32))));
      try {
        runs.merge.push(
          await perSecond(BACKUP_OPS, async (i) => {
            merged = (await mergeBackup(targets[i] as Wallet, backup, keys, () => true)).items;
          }),
        );
      } finally {
        for (const t of targets) t.close();
      }
    }
    keys.wipe();
    if (merged !== decoded) fail(`a merge added ${merged} items of ${decoded}`);

    const mb = bytes / 1e6;
    const common = {
      items: BACKUP_ITEMS,
      itemBytes: BACKUP_ITEM_BYTES,
      keys: 2 * BACKUP_KEY_PAIRS,
      walletItems: decoded,
      backupBytes: bytes,
      rounds: BACKUP_ROUNDS,
      opsPerRound: BACKUP_OPS,
    };
    const line = (name: string, what: string, perSec: number, raw: number, rawWork: string) =>
      report({
        bench: `recovery.backup.${name}`,
        ...common,
        what,
        mbPerSec: round(perSec * mb, 1),
        backupsPerSec: round(perSec, 1),
        rawMbPerSec: round(raw * mb, 1),
        rawWork,
        ratio: round(perSec / raw, 3),
      });
    const rawSeal = median(runs.seal);
    const rawOpen = median(runs.open);
    line(
      'encrypt',
      'encryptBackup: every item opened from the wallet, export encoded and sealed, X25519 to the backup key',
      median(runs.encrypt),
      rawSeal,
      `AES-256-GCM seal (src/crypto seal) of ${bytes} bytes`,
    );
    line(
      'decrypt',
      'backupSecret (X25519, HKDF) + wallet export decode (SHA-256 check, AES-256-GCM open, records parsed)',
      median(runs.decrypt),
      rawOpen,
      `AES-256-GCM open (src/crypto open) of ${bytes} bytes`,
    );
    line(
      'merge',
      'mergeBackup into a fresh empty wallet: decrypt as above, then every item sealed and inserted in one SQLite transaction',
      median(runs.merge),
      rawOpen,
      `AES-256-GCM open (src/crypto open) of ${bytes} bytes`,
    );
  } finally {
    wallet.close();
  }
}

export async function recoveryBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-recovery-'));
  try {
    await backups(dir);
    for (const n of TRUSTEES) await socialRecovery(dir, n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
