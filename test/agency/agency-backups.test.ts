/**
 * Backups at the agency: the store's versions under a locator (numbering, pruning per agent,
 * quotas, owners, deletion, durability), the upgrade of a format-2 agency file that predates
 * them, and the HTTP routes: ADMIN agents store, anyone who knows the locator sees the index,
 * only the committed recovery key gets the bytes, only a recovery key (committed or revealed)
 * deletes them.
 */
import { join } from 'node:path';
import type { Signer } from '../../src/crypto/index.js';
import Database from 'better-sqlite3';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgencyClient, type CloudAgentDescription } from '../../src/agency/agency-client.js';
import { BACKUP_LIMITS, MAX_BACKUP_BYTES } from '../../src/agency/agency.js';
import type { BackupLimits, BackupRecord, CloudAgentRecord } from '../../src/agency/agency-store.js';
import { signRequest } from '../../src/agency/request-auth.js';
import { SqliteAgencyStore } from '../../src/agency/sqlite-agency-store.js';
import { ed25519Generate, encodePublicKey, fromBase64url, randomBytes, toBase58btc, toBase64url, x25519Generate } from '../../src/crypto/index.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import type { PolicyAddress } from '../../src/ledger/events.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { RecoveryKeys, newRecoverySecret } from '../../src/recovery/secret.js';
import { startAgency, type RunningAgency } from '../../src/server/agency-service.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { startLedger, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { call, type Answer } from '../helpers/http.js';
import { edgeAgent, type Edge } from '../helpers/edge.js';

const NOW = '2030-01-01T12:00:00.000Z';
const AGENCY_APPLICATION_ID = 0x444b4d41;

const agentKey = () => encodePublicKey('ed25519', ed25519Generate().publicKey);
const kxKey = () => encodePublicKey('x25519', x25519Generate().publicKey);
const newLocator = () => toBase58btc(randomBytes(16));
const bytesOf = (text: string) => new TextEncoder().encode(text);

function cloudRecord(): CloudAgentRecord {
  return { id: toBase58btc(randomBytes(16)), policy: `policy:${toBase58btc(randomBytes(32))}`, key: agentKey(), kx: kxKey(), created: NOW };
}

const dbPath = () => join(tempDir('dkms-agency-backups-'), 'agency.db');

/** A store over `path`, closed when the test finishes (closing twice is harmless). */
function openStore(path: string = dbPath()): SqliteAgencyStore {
  const store = SqliteAgencyStore.open(path);
  onTestFinished(() => store.close());
  return store;
}

async function withClouds(path?: string): Promise<{ store: SqliteAgencyStore; a: CloudAgentRecord; b: CloudAgentRecord }> {
  const store = openStore(path);
  const a = cloudRecord();
  const b = cloudRecord();
  await store.addCloudAgent(a);
  await store.addCloudAgent(b);
  return { store, a, b };
}

/** Limits loose enough that only the one a test sets matters. */
const LIMITS: BackupLimits = { versionsPerAgent: 20, locators: 100, bytes: 64 * 1024 * 1024 };
const [LAPTOP, DESKTOP, THIEF] = [agentKey(), agentKey(), agentKey()] as const;

/** Stores `data` for cloud agent `cloudId` under `locator`, as `agent` (the laptop unless told). */
function put(
  store: SqliteAgencyStore,
  cloudId: string,
  locator: string,
  data: Uint8Array,
  options: { agent?: string; created?: string; limits?: Partial<BackupLimits> } = {},
): Promise<BackupRecord> {
  return store.putBackup({ cloudId, locator, agent: options.agent ?? LAPTOP, data, created: options.created ?? NOW }, { ...LIMITS, ...options.limits });
}

const versionsOf = async (store: SqliteAgencyStore, locator: string) => (await store.backups(locator)).map((r) => r.version);

/** The file's format and application id, read after the store closed it. */
function fileFormat(path: string): { version: number; applicationId: number; tables: string[] } {
  const db = new Database(path, { readonly: true });
  try {
    return {
      version: Number(db.pragma('user_version', { simple: true })),
      applicationId: Number(db.pragma('application_id', { simple: true })),
      tables: db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .all()
        .map((r) => r.name),
    };
  } finally {
    db.close();
  }
}

describe('agency store: backups', () => {
  it('numbers the versions under a locator from 1, and describes each with the agent that stored it', async () => {
    const { store, a } = await withClouds();
    const locator = newLocator();
    const first = await put(store, a.id, locator, bytesOf('first'));
    expect(first).toEqual({ locator, cloudId: a.id, version: 1, agent: LAPTOP, created: NOW, size: 5 });
    expect((await put(store, a.id, locator, bytesOf('second!'), { agent: DESKTOP, created: '2030-01-01T12:00:01.000Z' })).version).toBe(2);
    expect((await put(store, a.id, locator, bytesOf('third'), { created: '2030-01-01T12:00:02.000Z' })).version).toBe(3);
    expect(await store.backups(locator)).toEqual([
      { locator, cloudId: a.id, version: 1, agent: LAPTOP, created: NOW, size: 5 },
      { locator, cloudId: a.id, version: 2, agent: DESKTOP, created: '2030-01-01T12:00:01.000Z', size: 7 },
      { locator, cloudId: a.id, version: 3, agent: LAPTOP, created: '2030-01-01T12:00:02.000Z', size: 5 },
    ]);
    // Another locator of the same cloud agent has its own numbering.
    expect((await put(store, a.id, newLocator(), bytesOf('other'))).version).toBe(1);
    expect(await store.backups(newLocator())).toEqual([]);
  });

  it('keeps only the newest `versionsPerAgent` versions of an agent, still counting on from the newest', async () => {
    const { store, a } = await withClouds();
    const locator = newLocator();
    const keep = (versionsPerAgent: number) => ({ limits: { versionsPerAgent } });
    for (let i = 1; i <= 5; i++) await put(store, a.id, locator, bytesOf(`v${i}`), keep(3));
    expect(await versionsOf(store, locator)).toEqual([3, 4, 5]);
    expect(await store.backupData(locator, 2)).toBeUndefined();
    expect((await put(store, a.id, locator, bytesOf('v6'), keep(3))).version).toBe(6);
    expect(await versionsOf(store, locator)).toEqual([4, 5, 6]);
    // versionsPerAgent = 1: only the newest.
    await put(store, a.id, locator, bytesOf('v7'), keep(1));
    expect(await versionsOf(store, locator)).toEqual([7]);
  });

  it("keeps versions per agent: one agent pushing many does not push out another agent's", async () => {
    const { store, a } = await withClouds();
    const locator = newLocator();
    const limits = { versionsPerAgent: 3 };
    await put(store, a.id, locator, bytesOf('laptop 1'), { limits });
    await put(store, a.id, locator, bytesOf('laptop 2'), { limits });
    // A stolen device pushes ten versions of junk.
    for (let i = 1; i <= 10; i++) await put(store, a.id, locator, bytesOf(`junk ${i}`), { agent: THIEF, limits });
    expect(await versionsOf(store, locator)).toEqual([1, 2, 10, 11, 12]);
    expect((await store.backups(locator)).map((r) => r.agent)).toEqual([LAPTOP, LAPTOP, THIEF, THIEF, THIEF]);
    expect((await store.backupData(locator, 2))?.data).toEqual(bytesOf('laptop 2'));
    // The laptop's own versions are pruned only by its own pushes.
    await put(store, a.id, locator, bytesOf('laptop 3'), { limits });
    await put(store, a.id, locator, bytesOf('laptop 4'), { limits });
    expect(await versionsOf(store, locator)).toEqual([2, 10, 11, 12, 13, 14]);
    expect((await store.backupData(locator, 14))?.data).toEqual(bytesOf('laptop 4'));
  });

  it("refuses a locator past the cloud agent's `locators` (BACKUP_QUOTA), storing nothing", async () => {
    const { store, a, b } = await withClouds();
    const limits = { locators: 2 };
    const [first, second, third] = [newLocator(), newLocator(), newLocator()] as const;
    await put(store, a.id, first, bytesOf('one'), { limits });
    await put(store, a.id, second, bytesOf('two'), { limits });
    await expectCodeAsync(put(store, a.id, third, bytesOf('three'), { limits }), 'BACKUP_QUOTA');
    expect(await store.backups(third)).toEqual([]);
    expect(await store.backupData(third)).toBeUndefined();
    // Locators it already has still take new versions, and another cloud agent has its own quota.
    expect((await put(store, a.id, first, bytesOf('one again'), { limits })).version).toBe(2);
    expect((await put(store, b.id, third, bytesOf('theirs'), { limits })).cloudId).toBe(b.id);
    // Once a locator is deleted, there is room for another.
    await store.deleteBackups(a.id, first);
    expect((await put(store, a.id, newLocator(), bytesOf('three'), { limits })).version).toBe(1);
  });

  it('refuses a version that would take the cloud agent past `bytes` in all (BACKUP_QUOTA), storing nothing', async () => {
    const { store, a, b } = await withClouds();
    const limits = { bytes: 10 };
    const [first, second] = [newLocator(), newLocator()] as const;
    await put(store, a.id, first, bytesOf('123456'), { limits });
    await expectCodeAsync(put(store, a.id, first, bytesOf('12345'), { limits }), 'BACKUP_QUOTA');
    // Counted over all its locators.
    await expectCodeAsync(put(store, a.id, second, bytesOf('12345'), { limits }), 'BACKUP_QUOTA');
    expect(await versionsOf(store, first)).toEqual([1]);
    expect((await store.backupData(first))?.data).toEqual(bytesOf('123456'));
    expect(await store.backups(second)).toEqual([]);
    // Up to the limit exactly is stored; another cloud agent's bytes are its own.
    expect((await put(store, a.id, second, bytesOf('1234'), { limits })).version).toBe(1);
    expect((await put(store, b.id, newLocator(), bytesOf('0123456789'), { limits })).size).toBe(10);
    await expectCodeAsync(put(store, a.id, second, bytesOf('1'), { limits }), 'BACKUP_QUOTA');
    expect(await versionsOf(store, second)).toEqual([1]);
  });

  it('refuses another cloud agent a locator that is taken (BACKUP_UNAUTHORIZED), writing nothing', async () => {
    const { store, a, b } = await withClouds();
    const locator = newLocator();
    await put(store, a.id, locator, bytesOf('a1'));
    await put(store, a.id, locator, bytesOf('a2'));
    const before = await store.backups(locator);
    await expectCodeAsync(put(store, b.id, locator, bytesOf('b1'), { limits: { versionsPerAgent: 1 } }), 'BACKUP_UNAUTHORIZED');
    expect(await store.backups(locator)).toEqual(before);
    expect((await store.backupData(locator))?.data).toEqual(bytesOf('a2'));
    // Its own locators are its own.
    expect((await put(store, b.id, newLocator(), bytesOf('b1'))).cloudId).toBe(b.id);
  });

  it("deletes only the given cloud agent's backups under a locator", async () => {
    const { store, a, b } = await withClouds();
    const mine = newLocator();
    const theirs = newLocator();
    for (let i = 0; i < 3; i++) await put(store, a.id, mine, bytesOf(`a${i}`), { agent: i === 1 ? DESKTOP : LAPTOP });
    await put(store, b.id, theirs, bytesOf('b'));

    expect(await store.deleteBackups(b.id, mine)).toBe(0);
    expect(await versionsOf(store, mine)).toEqual([1, 2, 3]);
    expect(await store.deleteBackups(a.id, theirs)).toBe(0);
    expect(await versionsOf(store, theirs)).toEqual([1]);

    expect(await store.deleteBackups(a.id, mine)).toBe(3);
    expect(await store.backups(mine)).toEqual([]);
    expect(await store.backupData(mine)).toBeUndefined();
    expect(await versionsOf(store, theirs)).toEqual([1]);
    expect(await store.deleteBackups(a.id, mine)).toBe(0);
  });

  it('keeps backups across close and reopen', async () => {
    const path = dbPath();
    const { store, a } = await withClouds(path);
    const locator = newLocator();
    const data = randomBytes(4096);
    await put(store, a.id, locator, bytesOf('old'));
    await put(store, a.id, locator, data, { agent: DESKTOP });
    await store.close();

    const again = openStore(path);
    expect(await versionsOf(again, locator)).toEqual([1, 2]);
    expect((await again.backups(locator)).map((r) => r.agent)).toEqual([LAPTOP, DESKTOP]);
    expect((await again.backupData(locator))?.data).toEqual(data);
    expect((await put(again, a.id, locator, bytesOf('next'))).version).toBe(3);
  });
});

/** A table's columns, in order, read after the store closed the file. */
function columnsOf(path: string, table: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${table}')`)
      .all()
      .map((r) => r.name);
  } finally {
    db.close();
  }
}

/** The agency schema of format 2, as it was before backups (commit fd0848f~1). */
const FORMAT_2_SCHEMA = `
CREATE TABLE cloud_agents (id TEXT PRIMARY KEY, policy TEXT NOT NULL UNIQUE, key TEXT NOT NULL UNIQUE, kx TEXT NOT NULL UNIQUE, created TEXT NOT NULL);
CREATE TABLE routes (cloud_id TEXT NOT NULL REFERENCES cloud_agents(id), agent_key TEXT NOT NULL, kx TEXT, PRIMARY KEY (cloud_id, agent_key));
CREATE TABLE removed (cloud_id TEXT NOT NULL, agent_key TEXT NOT NULL, PRIMARY KEY (cloud_id, agent_key));
CREATE TABLE mailboxes (cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, messages INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (cloud_id, recipient));
CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, cloud_id TEXT NOT NULL, recipient TEXT NOT NULL, received TEXT NOT NULL, envelope BLOB NOT NULL);
CREATE INDEX messages_recipient ON messages (recipient, id);
CREATE INDEX messages_box ON messages (cloud_id, recipient, received);
`;

/** Writes an agency file of `version` by hand: the format-2 schema, one cloud agent routing to one agent. */
function oldAgencyFile(path: string, version: number, cloud: CloudAgentRecord, agent: string): void {
  const db = new Database(path);
  try {
    db.exec(FORMAT_2_SCHEMA);
    db.prepare('INSERT INTO cloud_agents (id, policy, key, kx, created) VALUES (@id, @policy, @key, @kx, @created)').run(cloud);
    db.prepare('INSERT INTO routes (cloud_id, agent_key, kx) VALUES (?, ?, NULL)').run(cloud.id, agent);
    db.pragma(`application_id = ${AGENCY_APPLICATION_ID}`);
    db.pragma(`user_version = ${version}`);
  } finally {
    db.close();
  }
}

describe('agency store: the file format', () => {
  it('upgrades a format-2 file to the current format (6) in place, keeping its cloud agents, and backups then work', async () => {
    const path = dbPath();
    const cloud = cloudRecord();
    const agent = agentKey();
    oldAgencyFile(path, 2, cloud, agent);
    expect(fileFormat(path)).toMatchObject({ version: 2, applicationId: AGENCY_APPLICATION_ID });
    expect(fileFormat(path).tables).not.toContain('backups');

    const store = openStore(path);
    expect(await store.cloudAgent(cloud.id)).toEqual(cloud);
    expect(await store.routes(cloud.id)).toEqual([{ agentKey: agent }]);
    const locator = newLocator();
    expect(await put(store, cloud.id, locator, bytesOf('after the upgrade'), { agent })).toEqual({
      locator,
      cloudId: cloud.id,
      version: 1,
      agent,
      created: NOW,
      size: 17,
    });
    await store.close();

    expect(fileFormat(path)).toEqual({
      version: 6,
      applicationId: AGENCY_APPLICATION_ID,
      tables: ['backups', 'cloud_agents', 'delivered', 'guests', 'mailboxes', 'messages', 'removed', 'routes', 'senders', 'sponsors'],
    });
    expect(columnsOf(path, 'messages')).toEqual(['id', 'cloud_id', 'recipient', 'received', 'envelope', 'source', 'digest']);
    expect(columnsOf(path, 'backups')).toEqual(['locator', 'version', 'cloud_id', 'agent', 'created', 'data']);
    // Format 4 looks routes up by agent key alone (every pickup asks whether a key has a mailbox);
    // format 5 keeps who posted each message, and its digest; format 6 the guests and sponsors the
    // owner allowed, the envelopes acknowledged a moment ago, and the policy state the routes follow.
    const file = new Database(path, { readonly: true });
    expect(file.prepare("SELECT sql FROM sqlite_schema WHERE name = 'routes_agent'").pluck().get()).toMatch(/ON routes \(agent_key\)/);
    file.close();
    // Opening it again changes nothing further.
    const again = openStore(path);
    expect(await again.cloudAgent(cloud.id)).toEqual(cloud);
    expect((await again.backupData(locator))?.data).toEqual(bytesOf('after the upgrade'));
    expect((await again.backups(locator)).map((r) => r.agent)).toEqual([agent]);
    await again.close();
    expect(fileFormat(path).version).toBe(6);
  });

  it('refuses a file of a newer format, and one of a format it cannot upgrade, leaving it as it was', () => {
    for (const version of [7, 1]) {
      const path = dbPath();
      const cloud = cloudRecord();
      oldAgencyFile(path, version, cloud, agentKey());
      const before = fileFormat(path);
      const error = expectCode(() => SqliteAgencyStore.open(path), 'AGENCY_STORE_DAMAGED');
      expect(error.message).toMatch(/format 6/);
      expect(fileFormat(path)).toEqual(before);
    }
  });

  it('refuses a file of another application even at format 2', () => {
    const path = dbPath();
    const db = new Database(path);
    db.exec(FORMAT_2_SCHEMA);
    db.pragma(`application_id = ${0x444b4d53}`);
    db.pragma('user_version = 2');
    db.close();
    expectCode(() => SqliteAgencyStore.open(path), 'AGENCY_STORE_DAMAGED');
    expect(fileFormat(path).tables).not.toContain('backups');
  });
});

// ---------------------------------------------------------------------------------------------
// Over HTTP

interface Owner {
  readonly ledger: RunningLedger;
  readonly ledgerClient: LedgerClient;
  readonly policy: PolicyAddress;
  /** ADMIN. */
  readonly laptop: Edge;
  /** ADMIN too. */
  readonly desktop: Edge;
  /** PROVE only: an agent of the owner, but not one that may store its backups. */
  readonly phone: Edge;
  readonly agency: RunningAgency;
  readonly cloud: CloudAgentDescription;
  /** R's keys; the policy commits to signer(0). */
  readonly keys: RecoveryKeys;
}

async function runAgency(ledger: RunningLedger): Promise<RunningAgency> {
  const running = await startAgency(tempDir('dkms-agency-home-'), {
    ledgerUrl: ledger.url,
    port: 0,
    trustedLedgerKeys: [ledger.signer.multikey],
    rateLimitPerSecond: 100_000,
    agentRequestsPerSecond: 100_000,
  });
  onTestFinished(() => running.close());
  return running;
}

/** An owner's policy on a ledger, committing to R's first recovery key, and its cloud agent at an agency. */
async function owner(ledger?: RunningLedger, agency?: RunningAgency): Promise<Owner> {
  const theLedger = ledger ?? (await startLedger(tempDir('dkms-agency-ledger-')));
  const ledgerClient = new LedgerClient({ url: theLedger.url, trustedKeys: [theLedger.signer.multikey] });
  const laptop = edgeAgent();
  const desktop = edgeAgent();
  const phone = edgeAgent();
  const keys = new RecoveryKeys(newRecoverySecret());
  const agents = [laptop.agent(ALL_FLAGS), desktop.agent(ALL_FLAGS), phone.agent(FLAGS.PROVE)];
  const create = signEvent(policyCreate(agents, { digests: [keys.signer(0).digest], threshold: 1 }), [laptop, desktop, phone]);
  const policy = (await ledgerClient.submit(create)).subject as PolicyAddress;
  const running = agency ?? (await runAgency(theLedger));
  const cloud = await new AgencyClient(running.url, laptop).register(policy);
  return { ledger: theLedger, ledgerClient, policy, laptop, desktop, phone, agency: running, cloud, keys };
}

/** `path` with the auth headers given (or freshly signed by `signer`). */
function send(base: string, method: 'GET' | 'POST' | 'DELETE', path: string, auth: Record<string, string>, body?: unknown): Promise<Answer> {
  return call(`${base}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const signed = (base: string, signer: Signer, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) =>
  send(base, method, path, signRequest(signer, method, path, body), body);

function expectProblem(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, code: (answer.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ type: `urn:dkms:error:${code}`, title: code, status, code });
}

const backupsPath = (o: Owner) => `/v1/cloud-agents/${o.cloud.id}/backups`;
const dataPath = (locator: string, version?: number) => `/v1/backups/${locator}/data${version === undefined ? '' : `?version=${version}`}`;

/** Stores `data` as an agent of `o` (under R's locator unless told) and returns the answer's body. */
async function store(
  o: Owner,
  data: Uint8Array,
  signer: Signer = o.laptop,
  locator = o.keys.locator,
): Promise<{ version: number; created: string; size: number }> {
  const answer = await signed(o.agency.url, signer, 'POST', backupsPath(o), { locator, data: toBase64url(data) });
  expect(answer.status).toBe(201);
  return answer.body as { version: number; created: string; size: number };
}

/** The versions the agency lists under `locator` (none if it has none). */
async function listed(o: Owner, locator = o.keys.locator): Promise<number[]> {
  const index = await call(`${o.agency.url}/v1/backups/${locator}`);
  if (index.status === 404) return [];
  expect(index.status).toBe(200);
  return (index.body as { versions: { version: number }[] }).versions.map((v) => v.version);
}

/** A recovery key as a ledger event signer. */
const eventSigner = (s: Signer) => s;

describe('agency API: storing backups', () => {
  it('stores versions sent by any ADMIN agent of the owner (201 with the version)', async () => {
    const o = await owner();
    const first = await store(o, bytesOf('backup one'));
    expect(first).toEqual({ version: 1, created: first.created, size: 10 });
    expect(Number.isNaN(Date.parse(first.created))).toBe(false);
    expect((await store(o, bytesOf('backup two'), o.desktop)).version).toBe(2);
  });

  it('refuses an agent of the owner without ADMIN (401 REQUEST_UNAUTHORIZED), storing nothing', async () => {
    const o = await owner();
    const body = { locator: o.keys.locator, data: toBase64url(bytesOf('from the phone')) };
    expectProblem(await signed(o.agency.url, o.phone, 'POST', backupsPath(o), body), 401, 'REQUEST_UNAUTHORIZED');
    expect(await listed(o)).toEqual([]);
    await store(o, bytesOf('from the laptop'));
    expectProblem(await signed(o.agency.url, o.phone, 'POST', backupsPath(o), body), 401, 'REQUEST_UNAUTHORIZED');
    expect(await listed(o)).toEqual([1]);
    const newest = await new AgencyClient(o.agency.url, o.keys.signer(0)).getBackup(o.keys.locator);
    expect(newest.data).toEqual(bytesOf('from the laptop'));
  });

  it("keeps each agent's versions: another ADMIN agent pushing many does not push out the laptop's", async () => {
    const o = await owner();
    await store(o, bytesOf("the laptop's"));
    const pushes = BACKUP_LIMITS.versionsPerAgent + 3;
    for (let i = 0; i < pushes; i++) await store(o, bytesOf(`junk ${i}`), o.desktop);
    const versions = await listed(o);
    // The laptop's one version, and only the desktop's newest versionsPerAgent.
    expect(versions).toEqual([1, ...Array.from({ length: BACKUP_LIMITS.versionsPerAgent }, (_, i) => pushes + 1 - BACKUP_LIMITS.versionsPerAgent + i + 1)]);
    const kept = await new AgencyClient(o.agency.url, o.keys.signer(0)).getBackup(o.keys.locator, 1);
    expect(kept.data).toEqual(bytesOf("the laptop's"));
  });

  it("refuses a locator past the owner's BACKUP_LIMITS.locators (507 BACKUP_QUOTA), storing nothing", async () => {
    const o = await owner();
    for (let i = 0; i < BACKUP_LIMITS.locators; i++) await store(o, bytesOf(`at ${i}`), o.laptop, newLocator());
    const over = newLocator();
    expectProblem(await signed(o.agency.url, o.laptop, 'POST', backupsPath(o), { locator: over, data: toBase64url(bytesOf('one more')) }), 507, 'BACKUP_QUOTA');
    expect(await listed(o, over)).toEqual([]);
  });

  it('refuses a key that is not an agent of the owner (401 REQUEST_UNAUTHORIZED), storing nothing', async () => {
    const o = await owner();
    const path = backupsPath(o);
    const body = { locator: o.keys.locator, data: toBase64url(bytesOf('forged')) };
    expectProblem(await signed(o.agency.url, edgeAgent(), 'POST', path, body), 401, 'REQUEST_UNAUTHORIZED');
    // The recovery key is not an agent either.
    expectProblem(await signed(o.agency.url, o.keys.signer(0), 'POST', path, body), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await send(o.agency.url, 'POST', path, {}, body), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await call(`${o.agency.url}/v1/backups/${o.keys.locator}`), 404, 'BACKUP_NOT_FOUND');
  });

  it("refuses another owner's agent a locator that is taken (BACKUP_UNAUTHORIZED), and an unknown cloud agent", async () => {
    const o = await owner();
    await store(o, bytesOf('mine'));
    const other = await owner(o.ledger, o.agency);
    const stolen = await signed(o.agency.url, other.laptop, 'POST', backupsPath(other), { locator: o.keys.locator, data: toBase64url(bytesOf('theirs')) });
    expectProblem(stolen, 401, 'BACKUP_UNAUTHORIZED');
    // Nor may it post to the first owner's cloud agent.
    expectProblem(
      await signed(o.agency.url, other.laptop, 'POST', backupsPath(o), { locator: o.keys.locator, data: toBase64url(bytesOf('theirs')) }),
      401,
      'REQUEST_UNAUTHORIZED',
    );
    const index = await call(`${o.agency.url}/v1/backups/${o.keys.locator}`);
    expect((index.body as { versions: unknown[] }).versions).toHaveLength(1);
    const unknown = `/v1/cloud-agents/${toBase58btc(randomBytes(16))}/backups`;
    expectProblem(
      await signed(o.agency.url, o.laptop, 'POST', unknown, { locator: o.keys.locator, data: toBase64url(bytesOf('x')) }),
      404,
      'CLOUD_AGENT_NOT_FOUND',
    );
  });

  it('refuses a malformed locator or data (400 BAD_INPUT)', async () => {
    const o = await owner();
    const path = backupsPath(o);
    for (const body of [
      { locator: '0OIl0OIl0OIl0OIl0OIl', data: toBase64url(bytesOf('x')) },
      { locator: 'short', data: toBase64url(bytesOf('x')) },
      { locator: o.keys.locator, data: '' },
      { locator: o.keys.locator, data: 'not base64url!' },
      { locator: o.keys.locator, data: toBase64url(bytesOf('x')), extra: 1 },
      { locator: o.keys.locator },
    ]) {
      expectProblem(await signed(o.agency.url, o.laptop, 'POST', path, body), 400, 'BAD_INPUT');
    }
    expectProblem(await call(`${o.agency.url}/v1/backups/${o.keys.locator}`), 404, 'BACKUP_NOT_FOUND');
  });

  it('refuses a replayed store request, storing it once', async () => {
    const o = await owner();
    const path = backupsPath(o);
    const body = { locator: o.keys.locator, data: toBase64url(bytesOf('once')) };
    const auth = signRequest(o.laptop, 'POST', path, body);
    expect((await send(o.agency.url, 'POST', path, auth, body)).status).toBe(201);
    expectProblem(await send(o.agency.url, 'POST', path, auth, body), 409, 'REQUEST_REPLAYED');
    const index = await call(`${o.agency.url}/v1/backups/${o.keys.locator}`);
    expect((index.body as { versions: unknown[] }).versions).toHaveLength(1);
  });

  it("refuses a backup over MAX_BACKUP_BYTES (400 BAD_INPUT) and a body over the route's limit (413)", async () => {
    const o = await owner();
    const path = backupsPath(o);
    // Just over the limit once decoded, but within the body limit as base64url.
    const over = { locator: o.keys.locator, data: toBase64url(new Uint8Array(MAX_BACKUP_BYTES + 1)) };
    const refused = await signed(o.agency.url, o.laptop, 'POST', path, over);
    expectProblem(refused, 400, 'BAD_INPUT');
    expect((refused.body as { detail: string }).detail).toMatch(String(MAX_BACKUP_BYTES));
    // Over the body limit itself: refused before it is read or verified.
    const huge = { locator: o.keys.locator, data: 'A'.repeat(Math.ceil((MAX_BACKUP_BYTES * 4) / 3) + 8192) };
    expectProblem(await send(o.agency.url, 'POST', path, { 'x-dkms-key': o.laptop.key }, huge), 413, 'ENVELOPE_TOO_LARGE');
    // Exactly MAX_BACKUP_BYTES is stored.
    expect((await store(o, new Uint8Array(MAX_BACKUP_BYTES))).size).toBe(MAX_BACKUP_BYTES);
    const index = await call(`${o.agency.url}/v1/backups/${o.keys.locator}`);
    expect((index.body as { versions: { version: number }[] }).versions.map((v) => v.version)).toEqual([1]);
  });

  it("deletes the owner's backups only for its committed recovery key: no agent key, not even ADMIN (BACKUP_UNAUTHORIZED)", async () => {
    const o = await owner();
    await store(o, bytesOf('one'));
    await store(o, bytesOf('two'), o.desktop);
    const path = `${backupsPath(o)}/${o.keys.locator}`;
    const other = await owner(o.ledger, o.agency);
    // Its agents (ADMIN or not), the next recovery key of R, a stranger, another owner's recovery key.
    for (const signer of [o.laptop, o.desktop, o.phone, o.keys.signer(1), edgeAgent(), other.keys.signer(0)]) {
      expectProblem(await signed(o.agency.url, signer, 'DELETE', path), 401, 'BACKUP_UNAUTHORIZED');
    }
    expectProblem(await send(o.agency.url, 'DELETE', path, {}), 401, 'REQUEST_UNAUTHORIZED');
    expect(await listed(o)).toEqual([1, 2]);
    // Not even the recovery key may delete the newest backups (a spent key must not reach them).
    expectProblem(await signed(o.agency.url, o.keys.signer(0), 'DELETE', path), 401, 'BACKUP_UNAUTHORIZED');
    // Once newer ones are stored under a new secret's locator, the old ones may go.
    const next = new RecoveryKeys(newRecoverySecret());
    await store(o, bytesOf('under the new secret'), o.laptop, next.locator);
    expect(await signed(o.agency.url, o.keys.signer(0), 'DELETE', path)).toMatchObject({ status: 200, body: { deleted: 2 } });
    expectProblem(await call(`${o.agency.url}/v1/backups/${o.keys.locator}`), 404, 'BACKUP_NOT_FOUND');
    expect(await listed(o, next.locator)).toEqual([1]);
  });

  it('deletes them for a recovery key the policy revealed (the owner moved on from it) too', async () => {
    const o = await owner();
    await store(o, bytesOf('one'));
    await store(o, bytesOf('two'));
    // R's first key recovers: it is revealed, and the policy commits to the next one.
    const record = (await o.ledgerClient.resolvePolicy(o.policy)).record;
    await o.ledgerClient.submit(
      signEvent(nextEvent('policy.recover', o.policy, record, { next: { digests: [o.keys.signer(1).digest], threshold: 1 } }), [eventSigner(o.keys.signer(0))]),
    );
    expect((await o.ledgerClient.resolvePolicy(o.policy)).record.policy.revealed).toEqual([o.keys.signer(0).digest]);
    const path = `${backupsPath(o)}/${o.keys.locator}`;
    // The laptop is still an ADMIN agent, and still may not delete.
    expectProblem(await signed(o.agency.url, o.laptop, 'DELETE', path), 401, 'BACKUP_UNAUTHORIZED');
    expectProblem(await signed(o.agency.url, o.keys.signer(2), 'DELETE', path), 401, 'BACKUP_UNAUTHORIZED');
    const next = new RecoveryKeys(newRecoverySecret());
    await store(o, bytesOf('newer'), o.laptop, next.locator);
    expect(await signed(o.agency.url, o.keys.signer(0), 'DELETE', path)).toMatchObject({ status: 200, body: { deleted: 2 } });
    expect(await listed(o)).toEqual([]);
    // The newly committed key may, as well.
    await store(o, bytesOf('three'));
    await store(o, bytesOf('newer still'), o.laptop, next.locator);
    expect(await signed(o.agency.url, o.keys.signer(1), 'DELETE', path)).toMatchObject({ status: 200, body: { deleted: 1 } });
  });
});

describe('agency API: fetching backups', () => {
  it('tells whose backups a locator names, and their versions, without a signature', async () => {
    const o = await owner();
    const one = await store(o, bytesOf('one'));
    const two = await store(o, bytesOf('second'));
    const index = await call(`${o.agency.url}/v1/backups/${o.keys.locator}`);
    expect(index.status).toBe(200);
    expect(index.body).toEqual({
      policy: o.policy,
      cloud: o.cloud,
      versions: [
        { version: 1, created: one.created, size: 3 },
        { version: 2, created: two.created, size: 6 },
      ],
    });
    expectProblem(await call(`${o.agency.url}/v1/backups/${newLocator()}`), 404, 'BACKUP_NOT_FOUND');
  });

  it('refuses a malformed locator (400 BAD_INPUT)', async () => {
    const o = await owner();
    for (const bad of ['0OIl0OIl0OIl0OIl0OIl', 'short', '1'.repeat(31), `${o.keys.locator.slice(0, -1)}_`]) {
      expectProblem(await call(`${o.agency.url}/v1/backups/${bad}`), 400, 'BAD_INPUT');
      expectProblem(await signed(o.agency.url, o.keys.signer(0), 'GET', dataPath(bad)), 400, 'BAD_INPUT');
    }
  });

  it('gives the bytes only to the committed recovery key (BACKUP_UNAUTHORIZED otherwise)', async () => {
    const o = await owner();
    const first = randomBytes(2048);
    const second = randomBytes(3000);
    await store(o, first);
    await store(o, second);
    const url = o.agency.url;

    expectProblem(await call(`${url}${dataPath(o.keys.locator)}`), 401, 'BACKUP_UNAUTHORIZED');
    // Signed, but by keys whose digest the policy does not commit to: the owner's own agents,
    // the next recovery key of the same R, a stranger.
    for (const signer of [o.laptop, o.phone, o.keys.signer(1), edgeAgent()]) {
      expectProblem(await signed(url, signer, 'GET', dataPath(o.keys.locator)), 401, 'BACKUP_UNAUTHORIZED');
    }
    // A signature by the committed key over another path does not do either.
    const elsewhere = signRequest(o.keys.signer(0), 'GET', dataPath(o.keys.locator, 1));
    expectProblem(await send(url, 'GET', dataPath(o.keys.locator), elsewhere), 401, 'BACKUP_UNAUTHORIZED');

    const newest = await signed(url, o.keys.signer(0), 'GET', dataPath(o.keys.locator));
    expect(newest.status).toBe(200);
    expect((newest.body as { version: number }).version).toBe(2);
    expect(fromBase64url((newest.body as { data: string }).data)).toEqual(second);
    const older = await signed(url, o.keys.signer(0), 'GET', dataPath(o.keys.locator, 1));
    expect(older.status).toBe(200);
    expect(fromBase64url((older.body as { data: string }).data)).toEqual(first);
    expectProblem(await signed(url, o.keys.signer(0), 'GET', dataPath(o.keys.locator, 3)), 404, 'BACKUP_NOT_FOUND');
    expectProblem(await signed(url, o.keys.signer(0), 'GET', `${dataPath(o.keys.locator)}?version=0`), 400, 'BAD_INPUT');

    // Through the client, as a restore fetches it.
    expect((await new AgencyClient(url, o.keys.signer(0)).getBackup(o.keys.locator)).data).toEqual(second);
  });

  it("does not give another owner's recovery key this owner's backups", async () => {
    const o = await owner();
    await store(o, bytesOf('mine'));
    const other = await owner(o.ledger, o.agency);
    expectProblem(await signed(o.agency.url, other.keys.signer(0), 'GET', dataPath(o.keys.locator)), 401, 'BACKUP_UNAUTHORIZED');
  });

  it('refuses a replayed fetch the second time', async () => {
    const o = await owner();
    await store(o, bytesOf('once'));
    const path = dataPath(o.keys.locator);
    const auth = signRequest(o.keys.signer(0), 'GET', path);
    expect((await send(o.agency.url, 'GET', path, auth)).status).toBe(200);
    const again = await send(o.agency.url, 'GET', path, auth);
    expectProblem(again, 409, 'REQUEST_REPLAYED');
    expect((again.body as { detail: string }).detail).toMatch(/already/);
  });
});
