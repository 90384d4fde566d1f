/**
 * The agency over loopback HTTP, with a real ledger behind it: registering cloud agents, signed
 * requests, forward messages in and mail out, durability across a restart, following the
 * owner's policy on the ledger (also when another owner's policy names the same agent),
 * refusals as RFC 9457 problems, long polls, quotas, rate limits by address and by agent.
 */
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import type { Signer } from '../../src/crypto/index.js';
import { AgencyClient, postEnvelope, type CloudAgentDescription, type PickedUp } from '../../src/agency/agency-client.js';
import {
  anoncrypt,
  authcrypt,
  decrypt,
  didKeyUrl,
  forwardMessage,
  memoryAgreementKey,
  messageBytes,
  newMessage,
  parseMessage,
  wrapForward,
  type AgreementKey,
  type Jwe,
} from '../../src/didcomm/index.js';
import { signRequest } from '../../src/agency/request-auth.js';
import { decodePublicKey, randomBytes, toBase58btc, toBase64url, x25519Generate } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import type { PolicyAddress } from '../../src/ledger/events.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { startAgency, type AgencyServiceOptions, type RunningAgency } from '../../src/server/agency-service.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, testKey } from '../helpers/ledger.js';
import { flipFirst, startLedger, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { call, type Answer } from '../helpers/http.js';
import { edgeAgent, type Edge, claiming } from '../helpers/edge.js';
import { waitFor } from '../helpers/wait.js';

// ---------------------------------------------------------------------------------------------
// Agents, owners, agencies

async function runAgency(home: string, ledgerUrl: string, options: Partial<AgencyServiceOptions> = {}): Promise<RunningAgency> {
  const running = await startAgency(home, { ledgerUrl, port: 0, ...options });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await running.close();
  };
  onTestFinished(close);
  return { url: running.url, agency: running.agency, close };
}

interface Owner {
  readonly ledger: RunningLedger;
  readonly ledgerClient: LedgerClient;
  readonly policy: PolicyAddress;
  /** ADMIN. */
  readonly laptop: Edge;
  /** PROVE only. */
  readonly phone: Edge;
  readonly home: string;
  readonly running: RunningAgency;
  readonly cloud: CloudAgentDescription;
  client(edge: Edge, running?: RunningAgency): AgencyClient;
}

/**
 * A ledger, an owner's policy on it (laptop: ADMIN, phone: PROVE), an agency, and the owner's cloud
 * agent there. `beforeRegister` runs once the agency is up, before the owner registers.
 */
async function owner(options: Partial<AgencyServiceOptions> = {}, beforeRegister?: (setup: Omit<Owner, 'cloud'>) => Promise<void>): Promise<Owner> {
  const ledger = await startLedger(tempDir('dkms-agency-ledger-'));
  const ledgerClient = new LedgerClient({ url: ledger.url });
  const laptop = edgeAgent();
  const phone = edgeAgent();
  const create = signEvent(policyCreate([laptop.agent(ALL_FLAGS), phone.agent(FLAGS.PROVE)], commitment([testKey()])), [laptop, phone]);
  const policy = (await ledgerClient.submit(create)).subject as PolicyAddress;
  const home = tempDir('dkms-agency-home-');
  const running = await runAgency(home, ledger.url, options);
  const client = (edge: Edge, at: RunningAgency = running) => new AgencyClient(at.url, edge.signer);
  const setup = { ledger, ledgerClient, policy, laptop, phone, home, running, client };
  await beforeRegister?.(setup);
  const cloud = await client(laptop).register(policy);
  return { ...setup, cloud };
}

/** A policy on the ledger, the admin that signs its changes. */
interface PolicyHolder {
  readonly ledgerClient: LedgerClient;
  readonly policy: PolicyAddress;
  readonly laptop: Edge;
}

/** Grants `edge` on the holder's policy, signed by its admin (the laptop). */
async function grant(o: PolicyHolder, edge: Edge, flags: number = FLAGS.PROVE): Promise<void> {
  const { record } = await o.ledgerClient.resolvePolicy(o.policy);
  await o.ledgerClient.submit(signEvent(nextEvent('policy.grant', o.policy, record, { agent: edge.agent(flags) }), [o.laptop]));
}

async function revoke(o: PolicyHolder, edge: Edge): Promise<void> {
  const { record } = await o.ledgerClient.resolvePolicy(o.policy);
  await o.ledgerClient.submit(signEvent(nextEvent('policy.revoke', o.policy, record, { key: edge.key }), [o.laptop]));
}

// ---------------------------------------------------------------------------------------------
// Messages

const NOTE = 'https://example.org/test/1.0/note';

function sender(): AgreementKey {
  const pair = x25519Generate();
  return memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
}

/** The envelope for the final recipients: authcrypted to their kx keys by a throwaway sender. */
function innerEnvelope(to: readonly Edge[], text: string): Jwe {
  return authcrypt(
    messageBytes(newMessage(NOTE, { text })),
    sender(),
    to.map((e) => ({ kid: e.agreement.kid, publicKey: e.agreement.publicKey })),
  );
}

const mediator = (cloud: CloudAgentDescription) => [{ kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey }];

/** A forward to the cloud agent carrying a note for `to`, routed to `next` (default: every agent of the owner). */
function forward(cloud: CloudAgentDescription, to: readonly Edge[], text: string, next: string = cloud.did): Jwe {
  return wrapForward(innerEnvelope(to, text), next, mediator(cloud));
}

/** The note text in a picked-up envelope, decrypted with the agent's own key. */
function open(edge: Edge, message: PickedUp): string {
  const plain = parseMessage(decrypt(message.envelope, [edge.agreement]).plaintext);
  expect(plain.type).toBe(NOTE);
  return plain.body['text'] as string;
}

async function inbox(client: AgencyClient, edge: Edge): Promise<string[]> {
  return (await client.pickup(500)).map((m) => open(edge, m));
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP

/** A signed request as AgencyClient makes it, with `headers` applied on top. */
function signed(base: string, signer: Signer, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const auth = signRequest(signer, method, path, body);
  return call(`${base}${path}`, {
    method,
    headers: { ...auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const postRaw = (url: string, body: string, contentType = 'application/didcomm-encrypted+json') =>
  call(url, { method: 'POST', headers: { 'content-type': contentType }, body });

/** Asserts an RFC 9457 problem carrying `code` with its HTTP status. */
function expectProblem(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, code: (answer.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  expect(answer.body).toMatchObject({ type: `urn:dkms:error:${code}`, title: code, status, code });
  expect(typeof (answer.body as { detail?: unknown }).detail).toBe('string');
}

// ---------------------------------------------------------------------------------------------

describe('agency API: registering a cloud agent', () => {
  it('provisions one cloud agent per owner for an ADMIN agent, and describes it publicly', async () => {
    const o = await owner();
    const again = await signed(o.running.url, o.laptop.signer, 'POST', '/v1/cloud-agents', { policy: o.policy });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(o.cloud);
    const cloud = o.cloud;
    expect(cloud.policy).toBe(o.policy);
    expect(cloud.id.length).toBeGreaterThan(0);
    expect(cloud.key).toMatch(/^z6Mk/);
    expect(cloud.kx).toMatch(/^z6LS/);
    expect(cloud.endpoint).toBe(`${o.running.url}/v1/inbound`);
    expect(cloud.routingKey).toBe(didKeyUrl('x25519', decodePublicKey(cloud.kx, 'x25519').publicKey));
    expect(cloud.did).toBe(`did:key:${cloud.kx}`);
    // The key is not one of the owner's agents'.
    expect([o.laptop.key, o.phone.key]).not.toContain(cloud.key);

    const described = await call(`${o.running.url}/v1/cloud-agents/${cloud.id}`);
    expect(described).toMatchObject({ status: 200, body: cloud });
    expect(await new AgencyClient(o.running.url, o.phone.signer).describe(cloud.id)).toEqual(cloud);
    expectProblem(await call(`${o.running.url}/v1/cloud-agents/${toBase58btc(randomBytes(16))}`), 404, 'CLOUD_AGENT_NOT_FOUND');
  });

  it("reads policies only from ledger nodes it trusts: a pinned key that is not the node's refuses registration", async () => {
    const o = await owner();
    const pinned = await runAgency(tempDir('dkms-agency-home-'), o.ledger.url, { trustedLedgerKeys: [o.laptop.key] });
    await expect(o.client(o.laptop, pinned).register(o.policy)).rejects.toMatchObject({ code: 'LEDGER_BAD_HEAD' });
    const trusting = await runAgency(tempDir('dkms-agency-home-'), o.ledger.url, { trustedLedgerKeys: [(await o.ledgerClient.head()).key] });
    expect((await o.client(o.laptop, trusting).register(o.policy)).policy).toBe(o.policy);
  });

  it('gives different owners different cloud agents', async () => {
    const o = await owner();
    const other = edgeAgent();
    const created = await o.ledgerClient.submit(signEvent(policyCreate([other.agent(ALL_FLAGS)], commitment([testKey()])), [other]));
    const theirs = await o.client(other).register(created.subject);
    expect(theirs.id).not.toBe(o.cloud.id);
    expect(theirs.kx).not.toBe(o.cloud.kx);
  });

  it('refuses a PROVE-only agent and a key outside the policy (REQUEST_UNAUTHORIZED)', async () => {
    const o = await owner();
    expectProblem(await signed(o.running.url, o.phone.signer, 'POST', '/v1/cloud-agents', { policy: o.policy }), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await signed(o.running.url, edgeAgent().signer, 'POST', '/v1/cloud-agents', { policy: o.policy }), 401, 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(o.client(o.phone).register(o.policy), 'REQUEST_UNAUTHORIZED');
  });

  it('refuses a policy the ledger does not know with SUBJECT_NOT_FOUND, and provisions nothing', async () => {
    const o = await owner();
    const nowhere = `policy:${toBase58btc(randomBytes(32))}`;
    expectProblem(await signed(o.running.url, o.laptop.signer, 'POST', '/v1/cloud-agents', { policy: nowhere }), 404, 'SUBJECT_NOT_FOUND');
    // The owner's own cloud agent is still the only one, and the same.
    expect(await o.client(o.laptop).register(o.policy)).toEqual(o.cloud);
  });

  it('refuses unsigned registration and bad bodies', async () => {
    const o = await owner();
    expectProblem(
      await call(`${o.running.url}/v1/cloud-agents`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ policy: o.policy }),
      }),
      401,
      'REQUEST_UNAUTHORIZED',
    );
    expectProblem(await signed(o.running.url, o.laptop.signer, 'POST', '/v1/cloud-agents', { policy: o.policy, extra: 1 }), 400, 'BAD_INPUT');
    expectProblem(await signed(o.running.url, o.laptop.signer, 'POST', '/v1/cloud-agents', {}), 400, 'BAD_INPUT');
  });
});

describe('agency API: signed requests', () => {
  /** An owner with one message waiting for the phone. */
  async function withMail() {
    const o = await owner();
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'waiting', o.phone.didKey));
    const phone = o.client(o.phone);
    const [message] = await phone.pickup();
    if (message === undefined) throw new Error('no message');
    const ackPath = '/v1/mailbox/ack';
    const ackBody = { ids: [message.id] };
    /** The phone's mailbox still holds the message. */
    const unchanged = async () => expect((await phone.pickup()).map((m) => m.id)).toEqual([message.id]);
    return { o, phone, message, ackPath, ackBody, unchanged };
  }

  it('refuses a request missing any of the four headers', async () => {
    const { o, ackPath, ackBody, unchanged } = await withMail();
    for (const name of ['x-dkms-key', 'x-dkms-time', 'x-dkms-nonce', 'x-dkms-signature']) {
      const auth = Object.fromEntries(Object.entries(signRequest(o.phone.signer, 'POST', ackPath, ackBody)).filter(([header]) => header !== name));
      const answer = await call(`${o.running.url}${ackPath}`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(ackBody),
      });
      expectProblem(answer, 401, 'REQUEST_UNAUTHORIZED');
    }
    expectProblem(await call(`${o.running.url}/v1/mailbox`), 401, 'REQUEST_UNAUTHORIZED');
    await unchanged();
  });

  it('refuses a wrong signature: altered, by another key, or malformed', async () => {
    const { o, ackPath, ackBody, unchanged } = await withMail();
    const auth = signRequest(o.phone.signer, 'POST', ackPath, ackBody);
    const send = (headers: Record<string, string>) =>
      call(`${o.running.url}${ackPath}`, {
        method: 'POST',
        headers: { ...auth, ...headers, 'content-type': 'application/json' },
        body: JSON.stringify(ackBody),
      });
    expectProblem(await send({ 'x-dkms-signature': flipFirst(auth['x-dkms-signature'] as string) }), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await send({ 'x-dkms-signature': 'not base64url!' }), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await send({ 'x-dkms-signature': toBase64url(randomBytes(32)) }), 401, 'REQUEST_UNAUTHORIZED');
    expectProblem(await send({ 'x-dkms-key': 'zNotAKey' }), 401, 'REQUEST_UNAUTHORIZED');
    // Signed by a stranger but claiming the phone's key.
    const forged = signRequest(claiming(o.phone.key, edgeAgent()), 'POST', ackPath, ackBody);
    expectProblem(await send(forged), 401, 'REQUEST_UNAUTHORIZED');
    // The laptop's valid signature presented with the phone's key.
    const laptops = signRequest(o.laptop.signer, 'POST', ackPath, ackBody);
    expectProblem(await send({ ...laptops, 'x-dkms-key': o.phone.key }), 401, 'REQUEST_UNAUTHORIZED');
    await unchanged();
  });

  it('refuses a body changed after signing', async () => {
    const { o, ackPath, ackBody, unchanged } = await withMail();
    const auth = signRequest(o.phone.signer, 'POST', ackPath, { ids: ackBody.ids.map((id) => `${id}0`) });
    const answer = await call(`${o.running.url}${ackPath}`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(ackBody),
    });
    expectProblem(answer, 401, 'REQUEST_UNAUTHORIZED');
    // Signed without a body, sent with one.
    const bodiless = signRequest(o.phone.signer, 'POST', ackPath);
    expectProblem(
      await call(`${o.running.url}${ackPath}`, { method: 'POST', headers: { ...bodiless, 'content-type': 'application/json' }, body: JSON.stringify(ackBody) }),
      401,
      'REQUEST_UNAUTHORIZED',
    );
    await unchanged();
  });

  it('refuses a request moved to another path, query or method', async () => {
    const { o, ackPath, ackBody, unchanged } = await withMail();
    const syncPath = `/v1/cloud-agents/${o.cloud.id}/sync`;
    const auth = signRequest(o.phone.signer, 'POST', syncPath, ackBody);
    expectProblem(
      await call(`${o.running.url}${ackPath}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(ackBody) }),
      401,
      'REQUEST_UNAUTHORIZED',
    );
    const pickup = signRequest(o.phone.signer, 'GET', '/v1/mailbox?limit=1&wait=0');
    expectProblem(await call(`${o.running.url}/v1/mailbox?limit=2&wait=0`, { headers: pickup }), 401, 'REQUEST_UNAUTHORIZED');
    const posted = signRequest(o.phone.signer, 'POST', '/v1/mailbox?limit=1&wait=0');
    expectProblem(await call(`${o.running.url}/v1/mailbox?limit=1&wait=0`, { headers: posted }), 401, 'REQUEST_UNAUTHORIZED');
    await unchanged();
  });

  it('refuses a time more than 5 minutes behind or 60 seconds ahead, and accepts one inside', async () => {
    const { o, ackPath, ackBody, unchanged } = await withMail();
    const signedAt = (offsetMs: number) => {
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + offsetMs });
      try {
        return signRequest(o.phone.signer, 'POST', ackPath, ackBody);
      } finally {
        vi.useRealTimers();
      }
    };
    const send = (headers: Record<string, string>) =>
      call(`${o.running.url}${ackPath}`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(ackBody) });
    expectProblem(await send(signedAt(-6 * 60_000)), 401, 'REQUEST_TIME_SKEW');
    expectProblem(await send(signedAt(6 * 60_000)), 401, 'REQUEST_TIME_SKEW');
    // Signed for later use: two minutes ahead is refused, where two minutes behind is not.
    expectProblem(await send(signedAt(2 * 60_000)), 401, 'REQUEST_TIME_SKEW');
    expectProblem(await send({ ...signRequest(o.phone.signer, 'POST', ackPath, ackBody), 'x-dkms-time': 'yesterday' }), 401, 'REQUEST_UNAUTHORIZED');
    await unchanged();
    const inside = await send(signedAt(-4 * 60_000));
    expect(inside).toMatchObject({ status: 200, body: { acknowledged: 1 } });
    expect(await send(signedAt(30_000))).toMatchObject({ status: 200, body: { acknowledged: 0 } });
  });

  it('refuses a replayed nonce, even for a request that succeeded', async () => {
    const { o, phone, message, ackPath, ackBody, unchanged } = await withMail();
    const headers = signRequest(o.phone.signer, 'GET', '/v1/mailbox?limit=10&wait=0');
    const first = await call(`${o.running.url}/v1/mailbox?limit=10&wait=0`, { headers });
    expect(first).toMatchObject({ status: 200, body: { messages: [{ id: message.id }] } });
    expectProblem(await call(`${o.running.url}/v1/mailbox?limit=10&wait=0`, { headers }), 409, 'REQUEST_REPLAYED');
    await unchanged();
    // A captured acknowledgement goes through once; its replay is refused.
    const auth = signRequest(o.phone.signer, 'POST', ackPath, ackBody);
    const ack = () =>
      call(`${o.running.url}${ackPath}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(ackBody) });
    expect(await ack()).toMatchObject({ status: 200, body: { acknowledged: 1 } });
    expectProblem(await ack(), 409, 'REQUEST_REPLAYED');
    expect(await phone.pickup()).toEqual([]);
  });
});

describe('agency API: inbound, pickup and acknowledgement', () => {
  it('delivers a forward to every routed agent, who decrypt it and acknowledge it', async () => {
    const o = await owner();
    const posted = await postRaw(o.cloud.endpoint, JSON.stringify(forward(o.cloud, [o.laptop, o.phone], 'to both')));
    expect(posted).toMatchObject({ status: 202, body: { accepted: 2 } });
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone], 'second'));
    for (const edge of [o.laptop, o.phone]) {
      const client = o.client(edge);
      const messages = await client.pickup();
      expect(messages.map((m) => open(edge, m))).toEqual(['to both', 'second']);
      // The agency keeps the sender's inner envelope as it was (JSON), not the forward.
      expect(messages[0]?.envelope).toMatchObject({ protected: expect.any(String), recipients: expect.any(Array) });
      expect(await client.ack(messages.map((m) => m.id))).toBe(2);
      expect(await client.pickup()).toEqual([]);
      expect(await client.ack(messages.map((m) => m.id))).toBe(0);
    }
  });

  it("routes a forward whose next is the owner's policy to every agent", async () => {
    const o = await owner();
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone], 'by policy', o.policy));
    expect(await inbox(o.client(o.laptop), o.laptop)).toEqual(['by policy']);
    expect(await inbox(o.client(o.phone), o.phone)).toEqual(['by policy']);
  });

  it('delivers a forward whose next names one agent to that agent only', async () => {
    const o = await owner();
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'phone only', o.phone.didKey));
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop], 'laptop only', o.laptop.didKey));
    expect(await inbox(o.client(o.phone), o.phone)).toEqual(['phone only']);
    expect(await inbox(o.client(o.laptop), o.laptop)).toEqual(['laptop only']);
  });

  it('lets an agent acknowledge only its own messages', async () => {
    const o = await owner();
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'mine', o.phone.didKey));
    const phone = o.client(o.phone);
    const [message] = await phone.pickup();
    expect(await o.client(o.laptop).ack([message?.id as string])).toBe(0);
    expect(await inbox(phone, o.phone)).toEqual(['mine']);
    expectProblem(await signed(o.running.url, o.phone.signer, 'POST', '/v1/mailbox/ack', { ids: ['not a number'] }), 400, 'BAD_INPUT');
    expectProblem(await signed(o.running.url, o.phone.signer, 'POST', '/v1/mailbox/ack', { ids: [] }), 400, 'BAD_INPUT');
  });

  it('honours the pickup limit and returns the oldest first', async () => {
    const o = await owner();
    for (let i = 0; i < 5; i++) await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], `m${i}`, o.phone.didKey));
    const phone = o.client(o.phone);
    expect((await phone.pickup(2)).map((m) => open(o.phone, m))).toEqual(['m0', 'm1']);
    expectProblem(await signed(o.running.url, o.phone.signer, 'GET', '/v1/mailbox?limit=0'), 400, 'BAD_INPUT');
    expectProblem(await signed(o.running.url, o.phone.signer, 'GET', '/v1/mailbox?limit=501'), 400, 'BAD_INPUT');
    expectProblem(await signed(o.running.url, o.phone.signer, 'GET', '/v1/mailbox?wait=31'), 400, 'BAD_INPUT');
  });
});

describe('agency API: durability', () => {
  it('keeps every message, in order, across a restart; acknowledged ones stay gone', async () => {
    const o = await owner();
    for (let i = 0; i < 20; i++) await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], `m${i}`, o.phone.didKey));
    const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
    await o.running.close();

    const second = await runAgency(o.home, o.ledger.url);
    const phone = o.client(o.phone, second);
    const waiting = await phone.pickup();
    expect(waiting.map((m) => open(o.phone, m))).toEqual(expected);
    expect(await phone.ack(waiting.slice(0, 5).map((m) => m.id))).toBe(5);
    // The cloud agent, its keys and its routes survived too.
    const cloud = await phone.describe(o.cloud.id);
    expect({ ...cloud, endpoint: o.cloud.endpoint }).toEqual(o.cloud);
    await postEnvelope(cloud.endpoint, forward(cloud, [o.laptop, o.phone], 'after restart'));
    await second.close();

    const third = await runAgency(o.home, o.ledger.url);
    expect(await inbox(o.client(o.phone, third), o.phone)).toEqual([...expected.slice(5), 'after restart']);
    expect(await inbox(o.client(o.laptop, third), o.laptop)).toEqual(['after restart']);
    expect(await o.client(o.laptop, third).register(o.policy)).toMatchObject({ id: o.cloud.id, kx: o.cloud.kx, key: o.cloud.key });
  });
});

describe("agency API: following the owner's policy", () => {
  it('routes to a newly granted agent after sync, and drops a revoked one with its mail, refusing mail for it', async () => {
    // The agency does not follow the ledger on its own here (agency-follow.test.ts does): this is sync.
    const o = await owner({ followIntervalMs: 3_600_000 });
    const tablet = edgeAgent();
    await grant(o, tablet);
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone, tablet], 'before sync'));
    const tabletClient = o.client(tablet);
    // Not routed yet, and no mail for its key: the agency keeps no mailbox for it.
    await expectCodeAsync(tabletClient.pickup(), 'MAILBOX_NOT_FOUND');

    const synced = await signed(o.running.url, o.laptop.signer, 'POST', `/v1/cloud-agents/${o.cloud.id}/sync`, {});
    expect(synced).toMatchObject({ status: 200, body: { added: [tablet.key], removed: [] } });
    expect((synced.body as { routes: { agentKey: string }[] }).routes.map((r) => r.agentKey).sort()).toEqual([o.laptop.key, o.phone.key, tablet.key].sort());
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone, tablet], 'after grant'));
    expect(await inbox(tabletClient, tablet)).toEqual(['after grant']);
    expect(await inbox(o.client(o.phone), o.phone)).toEqual(['before sync', 'after grant']);

    // The phone is revoked on the ledger. Its own sync is refused, and applies the revocation:
    // its mail is gone with its route, and the agency keeps no mailbox for it any more.
    await revoke(o, o.phone);
    const phone = o.client(o.phone);
    await expectCodeAsync(phone.sync(o.cloud.id), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(phone.pickup(), 'MAILBOX_NOT_FOUND');
    // Any remaining agent may sync (the tablet is PROVE-only); there is nothing left to remove.
    const afterRevoke = await signed(o.running.url, tablet.signer, 'POST', `/v1/cloud-agents/${o.cloud.id}/sync`, {});
    expect(afterRevoke).toMatchObject({ status: 200, body: { added: [], removed: [] } });
    await expectCodeAsync(phone.pickup(), 'MAILBOX_NOT_FOUND');
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, tablet], 'after revoke'));
    await expectCodeAsync(phone.pickup(), 'MAILBOX_NOT_FOUND');
    expect(await inbox(tabletClient, tablet)).toEqual(['after grant', 'after revoke']);
    // Mail naming the revoked agent alone is refused, not kept for it as guest mail.
    expectProblem(await postRaw(o.cloud.endpoint, JSON.stringify(forward(o.cloud, [o.phone], 'to the revoked phone', o.phone.didKey))), 404, 'NOT_FOUND');
    await expectCodeAsync(postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'again', o.phone.didKey)), 'NOT_FOUND');
    await expectCodeAsync(phone.pickup(), 'MAILBOX_NOT_FOUND');
    // A key the cloud agent never routed gets guest mail once an agent of the owner allows it
    // (a device being paired), and not before; the revoked phone cannot be allowed.
    const pairing = edgeAgent();
    expectProblem(await postRaw(o.cloud.endpoint, JSON.stringify(forward(o.cloud, [pairing], 'too early', pairing.didKey))), 404, 'NOT_FOUND');
    await expectCodeAsync(o.client(pairing).pickup(), 'MAILBOX_NOT_FOUND');
    await expectCodeAsync(o.client(o.laptop).allowGuest(o.cloud.kx, o.phone.key), 'REQUEST_UNAUTHORIZED');
    expect(await o.client(o.laptop).allowGuest(o.cloud.kx, pairing.key)).toMatchObject({ key: pairing.key });
    expect(await o.client(pairing).pickup()).toEqual([]);
    expect(await postRaw(o.cloud.endpoint, JSON.stringify(forward(o.cloud, [pairing], 'welcome', pairing.didKey)))).toMatchObject({
      status: 202,
      body: { accepted: 1 },
    });
    expect(await inbox(o.client(pairing), pairing)).toEqual(['welcome']);
    await expectCodeAsync(phone.sync(o.cloud.id), 'REQUEST_UNAUTHORIZED');
    // Syncing again changes nothing, and the revoked agent's mail is still refused.
    expect(await signed(o.running.url, o.laptop.signer, 'POST', `/v1/cloud-agents/${o.cloud.id}/sync`, {})).toMatchObject({
      status: 200,
      body: { added: [], removed: [] },
    });
    await expectCodeAsync(postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'still revoked', o.phone.didKey)), 'NOT_FOUND');
    await expectCodeAsync(phone.pickup(), 'MAILBOX_NOT_FOUND');
    // Granted again and synced, the phone is routed again and gets its mail.
    await grant(o, o.phone);
    expect(await signed(o.running.url, o.laptop.signer, 'POST', `/v1/cloud-agents/${o.cloud.id}/sync`, {})).toMatchObject({
      status: 200,
      body: { added: [o.phone.key], removed: [] },
    });
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'welcome back', o.phone.didKey));
    expect(await inbox(phone, o.phone)).toEqual(['welcome back']);
  });

  it("lets another owner's policy name the same agent without blocking the real owner or touching its mail", async () => {
    // The attacker's policy grants the victim's phone (a grant needs no proof that the key is held),
    // and the attacker registers its cloud agent, routing to the phone, before the owner does.
    const attacker = edgeAgent();
    let theirs: PolicyHolder | undefined;
    let theirCloud: CloudAgentDescription | undefined;
    const o = await owner({ limits: { maxMessages: 2 } }, async (setup) => {
      const created = await setup.ledgerClient.submit(signEvent(policyCreate([attacker.agent(ALL_FLAGS)], commitment([testKey()])), [attacker]));
      theirs = { ledgerClient: setup.ledgerClient, policy: created.subject as PolicyAddress, laptop: attacker };
      await grant(theirs, setup.phone);
      theirCloud = await setup.client(attacker).register(theirs.policy);
      const synced = await signed(setup.running.url, attacker.signer, 'POST', `/v1/cloud-agents/${theirCloud.id}/sync`, {});
      expect(synced.status).toBe(200);
      expect((synced.body as { routes: { agentKey: string }[] }).routes.map((r) => r.agentKey).sort()).toEqual([attacker.key, setup.phone.key].sort());
    });
    if (theirs === undefined || theirCloud === undefined) throw new Error('the attacker did not set up');
    const stranger = theirCloud;
    expect(o.cloud.id).not.toBe(stranger.id);

    // The real owner's register (done by owner()) and sync succeed and route to its own agents.
    expect(await signed(o.running.url, o.laptop.signer, 'POST', '/v1/cloud-agents', { policy: o.policy })).toMatchObject({ status: 201, body: o.cloud });
    const synced = await signed(o.running.url, o.laptop.signer, 'POST', `/v1/cloud-agents/${o.cloud.id}/sync`, {});
    expect(synced).toMatchObject({ status: 200, body: { added: [], removed: [] } });
    expect((synced.body as { routes: { agentKey: string }[] }).routes.map((r) => r.agentKey).sort()).toEqual([o.laptop.key, o.phone.key].sort());

    // The attacker fills the phone's mailbox with its own cloud agent: that counts against it only.
    await postEnvelope(stranger.endpoint, forward(stranger, [o.phone], 'stranger 0', o.phone.didKey));
    await postEnvelope(stranger.endpoint, forward(stranger, [o.phone], 'stranger 1'));
    await expectCodeAsync(postEnvelope(stranger.endpoint, forward(stranger, [o.phone], 'stranger 2', o.phone.didKey)), 'MAILBOX_FULL');
    // The victim still gets its owner's mail, addressed to it alone or to every agent of the owner.
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'from my owner', o.phone.didKey));
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone], 'for every agent', o.policy));
    const phone = o.client(o.phone);
    expect((await phone.pickup()).map((m) => open(o.phone, m))).toEqual(['stranger 0', 'stranger 1', 'from my owner', 'for every agent']);
    expect(await inbox(o.client(o.laptop), o.laptop)).toEqual(['for every agent']);

    // The attacker drops the phone: only the attacker's mail for it goes.
    await revoke(theirs, o.phone);
    expect(await signed(o.running.url, attacker.signer, 'POST', `/v1/cloud-agents/${stranger.id}/sync`, {})).toMatchObject({
      status: 200,
      body: { added: [], removed: [o.phone.key] },
    });
    const left = await phone.pickup();
    expect(left.map((m) => open(o.phone, m))).toEqual(['from my owner', 'for every agent']);
    await expectCodeAsync(postEnvelope(stranger.endpoint, forward(stranger, [o.phone], 'stranger 3', o.phone.didKey)), 'NOT_FOUND');
    // The owner's cloud agent still routes to the phone.
    expect(await phone.ack(left.map((m) => m.id))).toBe(2);
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'still mine', o.phone.didKey));
    expect(await inbox(phone, o.phone)).toEqual(['still mine']);
  });

  it('refuses sync from strangers and for unknown cloud agents', async () => {
    const o = await owner();
    await expectCodeAsync(o.client(edgeAgent()).sync(o.cloud.id), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(o.client(o.laptop).sync(toBase58btc(randomBytes(16))), 'CLOUD_AGENT_NOT_FOUND');
    expectProblem(
      await call(`${o.running.url}/v1/cloud-agents/${o.cloud.id}/sync`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }),
      401,
      'REQUEST_UNAUTHORIZED',
    );
  });
});

describe('agency API: refused envelopes', () => {
  it('answers every bad inbound with a problem, and stores nothing', async () => {
    const o = await owner();
    const url = o.cloud.endpoint;
    expectProblem(await postRaw(url, 'this is not json'), 400, 'ENVELOPE_MALFORMED');
    expectProblem(await postRaw(url, '{"truncated": '), 400, 'ENVELOPE_MALFORMED');
    expectProblem(await postRaw(url, 'this is not json', 'application/json'), 400, 'ENVELOPE_MALFORMED');
    expectProblem(await postRaw(url, '[]'), 400, 'ENVELOPE_MALFORMED');
    expectProblem(await postRaw(url, JSON.stringify({ protected: 'x' })), 400, 'ENVELOPE_MALFORMED');

    // Encrypted to a key that is no cloud agent's.
    const stranger = x25519Generate().publicKey;
    const notOurs = wrapForward(innerEnvelope([o.phone], 'lost'), o.cloud.did, [{ kid: didKeyUrl('x25519', stranger), publicKey: stranger }]);
    expectProblem(await postRaw(url, JSON.stringify(notOurs)), 400, 'ENVELOPE_NOT_FOR_US');
    // The inner envelope posted directly: its recipients are edge agents, not the cloud agent.
    expectProblem(await postRaw(url, JSON.stringify(innerEnvelope([o.phone], 'direct'))), 400, 'ENVELOPE_NOT_FOR_US');

    // A next this cloud agent does not route to.
    expectProblem(await postRaw(url, JSON.stringify(forward(o.cloud, [o.phone], 'nowhere', 'did:example:nobody'))), 404, 'NOT_FOUND');
    expectProblem(await postRaw(url, JSON.stringify(forward(o.cloud, [o.phone], 'nowhere', `did:key:${o.phone.kx}`))), 404, 'NOT_FOUND');

    // An expired forward.
    const expired = anoncrypt(messageBytes(forwardMessage(innerEnvelope([o.phone], 'late'), o.cloud.did, -60)), mediator(o.cloud));
    expectProblem(await postRaw(url, JSON.stringify(expired)), 410, 'MESSAGE_EXPIRED');
    await expectCodeAsync(postEnvelope(url, expired), 'MESSAGE_EXPIRED');

    // Something that is not a forward, encrypted to the cloud agent.
    const notForward = anoncrypt(messageBytes(newMessage(NOTE, { text: 'hi' })), mediator(o.cloud));
    expectProblem(await postRaw(url, JSON.stringify(notForward)), 400, 'MESSAGE_MALFORMED');

    // Altered in transit.
    const tampered = forward(o.cloud, [o.phone], 'tampered');
    expectProblem(await postRaw(url, JSON.stringify({ ...tampered, ciphertext: flipFirst(tampered.ciphertext) })), 400, 'ENVELOPE_TAMPERED');

    // Over 1 MiB.
    const huge = JSON.stringify({ ...forward(o.cloud, [o.phone], 'huge'), ciphertext: 'A'.repeat(1_048_576 + 8192) });
    expectProblem(await postRaw(url, huge), 413, 'ENVELOPE_TOO_LARGE');

    // A valid envelope under the wrong media type.
    const good = JSON.stringify(forward(o.cloud, [o.phone], 'wrong type'));
    expectProblem(await postRaw(url, good, 'text/plain'), 400, 'ENVELOPE_MALFORMED');

    for (const edge of [o.laptop, o.phone]) expect(await o.client(edge).pickup()).toEqual([]);
    // The same envelope with the right type is accepted.
    expect(await postRaw(url, good)).toMatchObject({ status: 202, body: { accepted: 2 } });
    expect(await postRaw(url, good, 'application/json; charset=utf-8')).toMatchObject({ status: 202 });
  });

  it('answers a signed pickup whose query is not what the schema says (no integer, out of range, unknown) with BAD_INPUT, showing no server detail', async () => {
    const o = await owner();
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'waiting', o.phone.didKey));
    for (const query of [
      'limit=Infinity',
      'limit=1e999',
      'limit=-Infinity',
      'limit=NaN',
      'limit=1.5',
      'limit=0',
      'limit=501',
      'limit=-1',
      'limit=abc',
      'limit=',
      'limit=1e2',
      'limit=0x10',
      'limit=%201',
      'wait=31',
      'wait=1.5',
      'wait=Infinity',
      'limit=1&limit=2',
      'other=1',
    ]) {
      const answer = await signed(o.running.url, o.phone.signer, 'GET', `/v1/mailbox?${query}`);
      expect({ query, status: answer.status, body: answer.body }).toMatchObject({ query, status: 400 });
      expectProblem(answer, 400, 'BAD_INPUT');
      const detail = (answer.body as { detail: string }).detail;
      expect(detail, query).not.toMatch(/\/(work|tmp|home|root)\/|\.db|node_modules|at /);
    }
    // The mail is still there, for a well-formed pickup.
    expect(await inbox(o.client(o.phone), o.phone)).toEqual(['waiting']);
  });

  it('answers unknown routes with a NOT_FOUND problem', async () => {
    const o = await owner();
    expectProblem(await call(`${o.running.url}/v1/nothing-here`), 404, 'NOT_FOUND');
    expect(await call(`${o.running.url}/v1/health`)).toMatchObject({ status: 200, body: { status: 'ok', service: 'agency' } });
  });
});

describe('agency API: long poll', () => {
  it('answers a waiting pickup as soon as a message arrives', async () => {
    const o = await owner();
    const phone = o.client(o.phone);
    let settled = false;
    const waiting = phone.pickup(100, 5).finally(() => {
      settled = true;
    });
    await waitFor('the pickup waiting at the agency', () => o.running.agency.waiting === 1);
    expect(settled).toBe(false);
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'woken', o.phone.didKey));
    const messages = await waiting;
    expect(messages.map((m) => open(o.phone, m))).toEqual(['woken']);
  });

  it('does not wake an agent for mail addressed to another', async () => {
    const o = await owner();
    let settled = false;
    const waiting = o
      .client(o.phone)
      .pickup(100, 2)
      .finally(() => {
        settled = true;
      });
    await waitFor("the phone's pickup waiting at the agency", () => o.running.agency.waiting === 1);
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop], 'for the laptop', o.laptop.didKey));
    // The laptop's mail left the phone's long poll waiting.
    expect(o.running.agency.waiting).toBe(1);
    expect(settled).toBe(false);
    expect(await waiting).toEqual([]);
    expect(await inbox(o.client(o.laptop), o.laptop)).toEqual(['for the laptop']);
  });
});

describe('agency API: limits', () => {
  it('refuses the message that would overfill a mailbox with MAILBOX_FULL (507), storing no copy', async () => {
    const o = await owner({ limits: { maxMessages: 3 } });
    for (let i = 0; i < 3; i++) await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone], `m${i}`));
    const fourth = forward(o.cloud, [o.laptop, o.phone], 'm3');
    await expectCodeAsync(postEnvelope(o.cloud.endpoint, fourth), 'MAILBOX_FULL');
    expectProblem(await postRaw(o.cloud.endpoint, JSON.stringify(fourth)), 507, 'MAILBOX_FULL');
    // The phone makes room; the laptop is still full, so a message for both is still refused whole.
    const phone = o.client(o.phone);
    const [first] = await phone.pickup(1);
    expect(await phone.ack([first?.id as string])).toBe(1);
    await expectCodeAsync(postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.laptop, o.phone], 'both')), 'MAILBOX_FULL');
    expect(await inbox(phone, o.phone)).toEqual(['m1', 'm2']);
    // A message for the phone alone fits.
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'phone only', o.phone.didKey));
    expect(await inbox(phone, o.phone)).toEqual(['m1', 'm2', 'phone only']);
    expect(await inbox(o.client(o.laptop), o.laptop)).toEqual(['m0', 'm1', 'm2']);
  });

  it('rate-limits a burst of requests from one address with RATE_LIMITED (429)', async () => {
    const o = await owner({ rateLimitPerSecond: 5 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(`${o.running.url}/v1/health`)));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) expectProblem(answer, 429, 'RATE_LIMITED');
    expect(answers.some((a) => a.status === 200)).toBe(true);
  });

  it('counts requests by address whatever agent key they name', async () => {
    const o = await owner({ rateLimitPerSecond: 5 });
    // A different x-dkms-key on every request does not buy a fresh allowance.
    const answers = await Promise.all(Array.from({ length: 20 }, () => call(`${o.running.url}/v1/mailbox`, { headers: { 'x-dkms-key': edgeAgent().key } })));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) expectProblem(answer, 429, 'RATE_LIMITED');
    for (const answer of answers.filter((a) => a.status !== 429)) expectProblem(answer, 401, 'REQUEST_UNAUTHORIZED');
  });

  it('holds each verified agent to agentRequestsPerSecond without slowing down another agent', async () => {
    const o = await owner({ agentRequestsPerSecond: 3, rateLimitPerSecond: 10_000 });
    const path = '/v1/mailbox?limit=1';
    const burst = Promise.all(Array.from({ length: 10 }, () => signed(o.running.url, o.phone.signer, 'GET', path)));
    const other = signed(o.running.url, o.laptop.signer, 'GET', path);
    const [answers, laptops] = await Promise.all([burst, other]);
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) expectProblem(answer, 429, 'RATE_LIMITED');
    const served = answers.filter((a) => a.status !== 429);
    // Every second lets at least the quota through.
    expect(served.length).toBeGreaterThanOrEqual(3);
    for (const answer of served) expect(answer).toMatchObject({ status: 200, body: { messages: [] } });
    expect(laptops).toMatchObject({ status: 200, body: { messages: [] } });
  });

  it("does not charge unverified requests naming an agent's key to that agent's quota", async () => {
    const o = await owner({ agentRequestsPerSecond: 5, rateLimitPerSecond: 10_000 });
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [o.phone], 'for the victim', o.phone.didKey));
    const path = '/v1/mailbox?limit=10';
    // Half carry only the victim's key, half a signature by another key claiming the victim's key.
    const unsigned = () => call(`${o.running.url}${path}`, { headers: { 'x-dkms-key': o.phone.key } });
    const forged = () => signed(o.running.url, claiming(o.phone.key, edgeAgent()), 'GET', path);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? unsigned() : forged())));
    for (const answer of answers) expectProblem(answer, 401, 'REQUEST_UNAUTHORIZED');
    const own = await signed(o.running.url, o.phone.signer, 'GET', path);
    expect(own.status).toBe(200);
    expect((own.body as { messages: PickedUp[] }).messages.map((m) => open(o.phone, m))).toEqual(['for the victim']);
  });
});

describe('agency client errors', () => {
  it('maps an agency problem to a DkmsError with its code', async () => {
    const o = await owner();
    const error = await expectCodeAsync(o.client(edgeAgent()).register(o.policy), 'REQUEST_UNAUTHORIZED');
    expect(error).toBeInstanceOf(DkmsError);
  });
});

describe('agency API: guests and sponsors', () => {
  it("lets only the owner's agents, and the sponsors they named, open a guest mailbox", async () => {
    const o = await owner();
    const stranger = edgeAgent();
    const trustee = edgeAgent();
    const device = edgeAgent();
    // A stranger cannot allow a guest, nor name sponsors; nothing is kept of either request.
    await expectCodeAsync(o.client(stranger).allowGuest(o.cloud.kx, device.key), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(o.client(stranger).setSponsors(o.cloud.id, [stranger.key]), 'REQUEST_UNAUTHORIZED');
    expectProblem(await postRaw(o.cloud.endpoint, JSON.stringify(forward(o.cloud, [device], 'hello', device.didKey))), 404, 'NOT_FOUND');
    // Not a sponsor yet.
    await expectCodeAsync(o.client(trustee).allowGuest(o.cloud.kx, device.key), 'REQUEST_UNAUTHORIZED');
    // Any agent of the owner names them (any may set up recovery): the PROVE-only phone too.
    expect(await o.client(o.phone).setSponsors(o.cloud.id, [trustee.key, trustee.key])).toBe(1);
    // The sponsor allows the owner's new device, which then gets its mail.
    const allowed = await o.client(trustee).allowGuest(o.cloud.kx, device.key);
    expect(Date.parse(allowed.expires) - Date.parse(allowed.allowed)).toBe(24 * 3600_000);
    await postEnvelope(o.cloud.endpoint, forward(o.cloud, [device], 'your shares', device.didKey));
    expect(await inbox(o.client(device), device)).toEqual(['your shares']);
    // Named no more, the trustee can allow nothing.
    await o.client(o.laptop).setSponsors(o.cloud.id, []);
    await expectCodeAsync(o.client(trustee).allowGuest(o.cloud.kx, edgeAgent().key), 'REQUEST_UNAUTHORIZED');
  });

  it('refuses a malformed key or cloud (BAD_INPUT), and an unknown cloud agent (CLOUD_AGENT_NOT_FOUND)', async () => {
    const o = await owner();
    const device = edgeAgent();
    await expectCodeAsync(o.client(o.laptop).allowGuest('zNotAKey', device.key), 'BAD_INPUT');
    // The cloud's signing key is not its key-agreement key.
    await expectCodeAsync(o.client(o.laptop).allowGuest(o.cloud.key, device.key), 'BAD_INPUT');
    await expectCodeAsync(o.client(o.laptop).allowGuest(o.cloud.kx, o.cloud.kx), 'BAD_INPUT');
    await expectCodeAsync(o.client(o.laptop).allowGuest(edgeAgent().kx, device.key), 'CLOUD_AGENT_NOT_FOUND');
    await expectCodeAsync(
      o.client(o.laptop).setSponsors(
        o.cloud.id,
        Array.from({ length: 1025 }, () => edgeAgent().key),
      ),
      'BAD_INPUT',
    );
  });
});
