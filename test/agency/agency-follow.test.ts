/**
 * The agency follows the ledger on its own (docs/agents.md, "The agency follows the ledger"),
 * in process over loopback with a real ledger node and agency: a revocation submitted straight
 * to the ledger, with no sync, ends the revoked agent's pickups, mail and backups within 2 s of
 * being committed, its waiting mail and the mail sent after it included; a grant makes a new
 * agent routable; a ledger that withholds a change gets the owner's mail held, not served by
 * stale routes; a ledger out of reach leaves the last verified routes in place; a quiet ledger
 * costs one request a round; closing does not wait for a ledger that never answers. And the
 * follower alone, over a ledger stand-in: requests of 1000, reads of what moved, one round at a
 * time, no failure escaping.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import { AgencyClient, postEnvelope } from '../../src/agency/agency-client.js';
import { anoncrypt, decrypt, messageBytes, newMessage, parseMessage, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { recipientRef, type EdgeAgent } from '../../src/agent/edge-agent.js';
import { PolicyFollower } from '../../src/agency/policy-follower.js';
import { agentSigner, initFirstAgent, provisionKeys, registerCloudAgent } from '../../src/agent/provision.js';
import { randomBytes, toBase58btc } from '../../src/crypto/index.js';
import { DkmsError, isDkmsError, type ErrorCode } from '../../src/errors.js';
import { nextEvent, signEvent } from '../../src/ledger/build.js';
import type { LedgerClient, ResolvedPolicy } from '../../src/ledger/client.js';
import type { PolicyAddress, Subject } from '../../src/ledger/events.js';
import type { SignedTreeHead } from '../../src/ledger/head.js';
import type { Agent } from '../../src/policy/types.js';
import { FLAGS } from '../../src/policy/flags.js';
import { startAgency, type AgencyServiceOptions, type RunningAgency } from '../../src/server/agency-service.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { deadUrl, startProxy, startSilentServer, type Lie, type LyingProxy } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { settle, world, type World } from '../helpers/world.js';

const NOTE = 'https://example.org/test/1.0/note';

/**
 * A correspondent's message to `owner`'s agents: encrypted to the agents' `kx` keys, in a
 * forward to the owner's cloud agent for every agent, or for the agent whose key is `only`.
 */
async function send(owner: EdgeAgent, to: readonly { kx: string }[], text: string, only?: string): Promise<void> {
  const cloud = owner.cloud();
  const inner = anoncrypt(
    messageBytes(newMessage(NOTE, { text })),
    to.map((a) => recipientRef(a.kx)),
  );
  await postEnvelope(cloud.endpoint, wrapForward(inner, only === undefined ? cloud.did : `did:key:${only}`, [recipientFromKid(cloud.routingKey)]));
}

const profiles = (...agents: EdgeAgent[]) => agents.map((a) => a.profile);

/** What `agent` picks up from its cloud agent (acknowledged), as the texts it decrypts. */
async function mail(agent: EdgeAgent): Promise<string[]> {
  const client = agent.agency();
  const picked = await client.pickup(500);
  await client.ack(picked.map((m) => m.id));
  return picked.map((m) => parseMessage(decrypt(m.envelope, [agent.agreementKey()]).plaintext).body['text'] as string);
}

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | 'ok'> {
  try {
    await promise;
    return 'ok';
  } catch (e) {
    if (e instanceof DkmsError) return e.code;
    throw e;
  }
}

/**
 * Polls `check` until it holds. Fails if a check begun after `deadline` (ms since the epoch)
 * still does not hold: the bound is the behaviour under test, the polling only observes it.
 */
async function until(what: string, deadline: number, check: () => boolean | Promise<boolean>): Promise<void> {
  for (;;) {
    const at = Date.now();
    if (await check()) return;
    if (at > deadline) throw new Error(`${what}: not by the deadline (${at - deadline} ms late)`);
    // The pause between two checks against the deadline (not waitFor: here only a check begun after the deadline fails the test).
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Submits a change of `admin`'s policy straight to the ledger (no sync); the time the ledger committed it, in ms. */
async function change(admin: EdgeAgent, type: 'policy.revoke' | 'policy.grant', body: { key: string } | { agent: Agent }): Promise<number> {
  const record = await admin.policy();
  const receipt = await admin.ledger.submit(signEvent(nextEvent(type, record.subject, record, body), [agentSigner(admin.wallet)]));
  return Date.parse(receipt.time);
}

const BOUND_MS = 2000;
const backup = () => randomBytes(64);

/** An agency of its own in front of `w`'s ledger behind a proxy, and an owner (laptop) whose cloud agent it hosts. */
async function behindProxy(
  w: World,
  options: Partial<AgencyServiceOptions> = {},
): Promise<{ proxy: LyingProxy; agency: RunningAgency; errors: DkmsError[]; laptop: EdgeAgent }> {
  const proxy = await startProxy(w.ledgerUrl);
  const errors: DkmsError[] = [];
  const agency = await startAgency(tempDir(), {
    ledgerUrl: proxy.url,
    port: 0,
    rateLimitPerSecond: 100_000,
    agentRequestsPerSecond: 100_000,
    followIntervalMs: 200,
    onFollowError: (e) => errors.push(e),
    ...options,
  });
  onTestFinished(() => agency.close());
  const laptop = await w.newAgent();
  await initFirstAgent(laptop, { label: 'alice', ledgerUrl: w.ledgerUrl });
  await registerCloudAgent(laptop, agency.url, 0);
  return { proxy, agency, errors, laptop };
}

/** Answers the agency's reads of `policy` without its events of `type`, under the real head and map. */
function withholding(policy: string, type: string): Lie {
  return ({ path, body }) => {
    if (path !== `/v1/policies/${policy}`) return undefined;
    const answer = body as { history: { event: { type: string } }[]; proofs: unknown[] };
    const keep = answer.history.map((r) => r.event.type !== type);
    return { body: { ...answer, history: answer.history.filter((_, i) => keep[i]), proofs: answer.proofs.filter((_, i) => keep[i]) } };
  };
}

describe('the agency follows the ledger', () => {
  it("ends a revoked agent's pickups, mail and backups within 2 s of the revocation, with no sync, as if it had never been authorized", async () => {
    const w = await world();
    const laptop = await w.makeOwner('alice');
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    const tablet = await w.pairAgent(laptop, 'tablet', FLAGS.PROVE);
    await settle(laptop, phone, tablet);
    const { id } = laptop.cloud();
    const locator = toBase58btc(randomBytes(16));
    await phone.agency().putBackup(id, locator, backup());
    const everyone = profiles(laptop, phone, tablet);
    await send(laptop, everyone, 'waiting for the phone');

    const committed = await change(laptop, 'policy.revoke', { key: phone.profile.key });
    await send(laptop, everyone, 'after the revocation');
    // Not picking up as the phone meanwhile: mail for it alone is refused once the agency has
    // stopped routing to it (until then such probes wait in its mailbox, and go with it).
    await until(
      'the agency stops routing to the revoked phone',
      committed + BOUND_MS,
      async () => (await codeOf(send(laptop, profiles(phone), 'probe', phone.profile.key))) === 'NOT_FOUND',
    );

    // The agency keeps no mailbox for the revoked phone: its mail went with its route.
    await expectCodeAsync(mail(phone), 'MAILBOX_NOT_FOUND');
    await expectCodeAsync(phone.agency().putBackup(id, locator, backup()), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(phone.agency().sync(id), 'REQUEST_UNAUTHORIZED');
    expect(await mail(laptop)).toEqual(['waiting for the phone', 'after the revocation']);
    expect(await mail(tablet)).toEqual(['waiting for the phone', 'after the revocation']);
    await send(laptop, everyone, 'later');
    await expectCodeAsync(mail(phone), 'MAILBOX_NOT_FOUND');
    expect(await mail(tablet)).toEqual(['later']);

    // The codes a key the owner never authorized gets: the same.
    const stranger = await w.newAgent();
    provisionKeys(stranger.wallet);
    const strangers = new AgencyClient(w.agencyUrl, stranger.signingKey());
    await expectCodeAsync(strangers.pickup(), 'MAILBOX_NOT_FOUND');
    await expectCodeAsync(strangers.putBackup(id, locator, backup()), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(strangers.sync(id), 'REQUEST_UNAUTHORIZED');
  });

  it('gives no guest mailbox to a key the policy revoked before the cloud agent ever routed to it', async () => {
    const w = await world();
    const laptop = await w.newAgent();
    await initFirstAgent(laptop, { label: 'alice', ledgerUrl: w.ledgerUrl });
    const revoked = provisionKeys((await w.newAgent()).wallet);
    await change(laptop, 'policy.grant', { agent: { ...revoked, flags: FLAGS.PROVE } });
    await change(laptop, 'policy.revoke', { key: revoked.key });
    await registerCloudAgent(laptop, w.agencyUrl, 0);
    await expectCodeAsync(send(laptop, [revoked], 'for the revoked key', revoked.key), 'NOT_FOUND');
    // Not even if the owner's agent allows it.
    const cloud = laptop.cloud();
    await expectCodeAsync(laptop.agency(cloud).allowGuest(cloud.kx, revoked.key), 'REQUEST_UNAUTHORIZED');
    await expectCodeAsync(send(laptop, [revoked], 'for the revoked key', revoked.key), 'NOT_FOUND');
    // A key the policy never named gets one once the owner's agent allows it (a device being paired).
    const pairing = provisionKeys((await w.newAgent()).wallet);
    await expectCodeAsync(send(laptop, [pairing], 'too early', pairing.key), 'NOT_FOUND');
    await laptop.agency(cloud).allowGuest(cloud.kx, pairing.key);
    await send(laptop, [pairing], 'welcome', pairing.key);
  });

  it('routes to a newly granted agent within 2 s, with no sync', async () => {
    const w = await world();
    const laptop = await w.makeOwner('alice');
    const device = await w.newAgent();
    const keys = provisionKeys(device.wallet);
    const client = new AgencyClient(w.agencyUrl, device.signingKey());
    const to = [laptop.profile, keys];
    await send(laptop, to, 'before the grant');
    await expectCodeAsync(client.pickup(), 'MAILBOX_NOT_FOUND');

    const committed = await change(laptop, 'policy.grant', { agent: { ...keys, flags: FLAGS.PROVE } });
    await until('the agency routes to the new agent', committed + BOUND_MS, async () => {
      await send(laptop, to, 'for every agent');
      try {
        return (await client.pickup()).length > 0;
      } catch (e) {
        if (isDkmsError(e, 'MAILBOX_NOT_FOUND')) return false;
        throw e;
      }
    });
    const texts = (await client.pickup(500)).map((m) => parseMessage(decrypt(m.envelope, [device.agreementKey()]).plaintext).body['text']);
    expect(texts.length).toBeGreaterThan(0);
    expect(new Set(texts)).toEqual(new Set(['for every agent']));
  });

  it("holds the owner's mail while the ledger withholds a change it proves, and delivers by the change once it is shown", async () => {
    const w = await world();
    const { proxy, errors, laptop } = await behindProxy(w);
    const phone = await w.pairAgent(laptop, 'phone', FLAGS.ADMIN);
    await settle(laptop, phone);
    const { id } = laptop.cloud();
    const locator = toBase58btc(randomBytes(16));
    await phone.agency().putBackup(id, locator, backup());

    proxy.lie = withholding(laptop.profile.policy, 'policy.revoke');
    const committed = await change(laptop, 'policy.revoke', { key: phone.profile.key });
    await until('the follower reports the withheld revocation', committed + BOUND_MS, () => errors.some((e) => e.code === 'LEDGER_INCOMPLETE'));
    // The map proves the policy moved: the routes held are out of date, so no agent of the owner picks up by them.
    await expectCodeAsync(phone.agency().pickup(), 'LEDGER_INCOMPLETE');
    await expectCodeAsync(laptop.agency().pickup(), 'LEDGER_INCOMPLETE');
    await expectCodeAsync(phone.agency().putBackup(id, locator, backup()), 'LEDGER_INCOMPLETE');
    await send(laptop, profiles(laptop, phone), 'while withheld');
    // It keeps refusing, round after round.
    const reported = errors.length;
    await until('another round', Date.now() + BOUND_MS, () => errors.length > reported);
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['LEDGER_INCOMPLETE']));
    await expectCodeAsync(phone.agency().pickup(), 'LEDGER_INCOMPLETE');

    proxy.lie = () => undefined;
    const shown = Date.now();
    await until('the agency applies the revocation once shown', shown + BOUND_MS, async () => (await codeOf(laptop.agency().pickup())) === 'ok');
    expect(await mail(laptop)).toEqual(['while withheld']);
    await expectCodeAsync(mail(phone), 'MAILBOX_NOT_FOUND');
    await expectCodeAsync(phone.agency().putBackup(id, locator, backup()), 'REQUEST_UNAUTHORIZED');
  });

  it('keeps the routes it verified last while the ledger is out of reach, says so, and closes without waiting for it', async () => {
    const w = await world();
    const { proxy, agency, errors, laptop } = await behindProxy(w);
    // Once the follower has read the new owner's policy (a round ends before the next begins),
    // a quiet ledger costs one request a round: the map entries.
    const rounds = (after: number) => proxy.seen.slice(after).filter((p) => p === '/v1/proofs/map').length;
    const registered = proxy.seen.length;
    await until('two rounds', Date.now() + 10 * BOUND_MS, () => rounds(registered) >= 2);
    const from = proxy.seen.length;
    await until('three more rounds', Date.now() + 10 * BOUND_MS, () => proxy.seen.length >= from + 3);
    expect(new Set(proxy.seen.slice(from).map((p) => p.split('?')[0]))).toEqual(new Set(['/v1/proofs/map']));

    proxy.target = await deadUrl();
    await until('the follower reports the ledger out of reach', Date.now() + BOUND_MS, () => errors.length > 0);
    expect(errors.every((e) => e.code === 'LEDGER_BAD_RESPONSE' || e.code === 'LEDGER_UNREACHABLE')).toBe(true);
    await send(laptop, profiles(laptop), 'still delivered');
    expect(await mail(laptop)).toEqual(['still delivered']);

    proxy.target = await startSilentServer();
    const asked = proxy.seen.length;
    await until('a request to the silent ledger', Date.now() + BOUND_MS, () => proxy.seen.length > asked);
    const closing = Date.now();
    await agency.close();
    expect(Date.now() - closing).toBeLessThan(BOUND_MS);
  });
});

/** A ledger stand-in for the follower: each policy's seq, the requests it got, and failures to give. */
function fakeLedger(policies: readonly PolicyAddress[]) {
  const seqs = new Map(policies.map((p) => [p, 0]));
  const log = { asked: [] as number[], read: [] as PolicyAddress[], busy: 0, most: 0 };
  const fail: { entries?: DkmsError; read?: Map<PolicyAddress, DkmsError> } = {};
  const ledger: Pick<LedgerClient, 'entries' | 'resolvePolicy'> = {
    async entries(subjects: readonly Subject[]) {
      log.busy += 1;
      log.most = Math.max(log.most, log.busy);
      // A ledger that takes its time (so that rounds run at once would overlap): the stand-in's delay, not a wait for a condition.
      await new Promise((resolve) => setTimeout(resolve, 5));
      log.busy -= 1;
      log.asked.push(subjects.length);
      if (fail.entries !== undefined) throw fail.entries;
      return { head: {} as SignedTreeHead, entries: new Map(subjects.map((s) => [s, { seq: seqs.get(s as PolicyAddress) ?? 0, gseq: 0, leaf: '' }])) };
    },
    async resolvePolicy(policy: PolicyAddress) {
      log.read.push(policy);
      const error = fail.read?.get(policy);
      if (error !== undefined) throw error;
      return { record: { seq: seqs.get(policy) } } as unknown as ResolvedPolicy;
    },
  };
  return { ledger, seqs, log, fail };
}

const addresses = (n: number) => Array.from({ length: n }, (_, i) => `policy:${i}` as PolicyAddress);

describe('PolicyFollower', () => {
  it('asks for the entries 1000 policies to a request, and reads and hands on only the policies that moved', async () => {
    const policies = addresses(2500);
    const { ledger, seqs, log } = fakeLedger(policies);
    const handed: PolicyAddress[] = [];
    const follower = new PolicyFollower({ ledger, policies: async () => policies, onChange: async (p) => void handed.push(p) });
    await follower.round();
    expect(log.asked).toEqual([1000, 1000, 500]);
    expect(handed).toEqual(policies);

    log.asked.length = 0;
    log.read.length = 0;
    handed.length = 0;
    await follower.round();
    expect(log.asked).toEqual([1000, 1000, 500]);
    expect(log.read).toEqual([]);
    const moved = policies[1700] as PolicyAddress;
    seqs.set(moved, 1);
    await follower.round();
    expect(log.read).toEqual([moved]);
    expect(handed).toEqual([moved]);
    await follower.close();
  });

  it('runs one round at a time, lets no failure escape, reports a moved policy it cannot verify, and stops at close', async () => {
    const policies = addresses(3);
    const [first, second, third] = policies as [PolicyAddress, PolicyAddress, PolicyAddress];
    const { ledger, seqs, log, fail } = fakeLedger(policies);
    const errors: [string, PolicyAddress | undefined][] = [];
    const unverified: PolicyAddress[] = [];
    const follower = new PolicyFollower({
      ledger,
      policies: async () => policies,
      onChange: async () => undefined,
      onUnverified: async (p) => void unverified.push(p),
      onError: (e, p) => {
        errors.push([e.code, p]);
        throw new Error('a failing reporter');
      },
      intervalMs: 10,
    });
    await Promise.all([follower.round(), follower.round(), follower.round()]);
    expect(log.most).toBe(1);

    fail.entries = new DkmsError('LEDGER_STALE', 'stale');
    await follower.round();
    expect(errors).toEqual([['LEDGER_STALE', undefined]]);
    expect(unverified).toEqual([]);

    delete fail.entries;
    for (const p of policies) seqs.set(p, 1);
    fail.read = new Map([
      [first, new DkmsError('LEDGER_INCOMPLETE', 'withheld')],
      [second, new DkmsError('LEDGER_UNREACHABLE', 'gone')],
    ]);
    log.read.length = 0;
    await follower.round();
    // Withheld: reported, and the round goes on; out of reach: the round ends.
    expect(unverified).toEqual([first, second]);
    expect(errors.slice(1)).toEqual([
      ['LEDGER_INCOMPLETE', first],
      ['LEDGER_UNREACHABLE', second],
    ]);
    expect(log.read).toEqual([first, second]);

    delete fail.read;
    follower.start();
    await until('rounds on the timer', Date.now() + 5000, () => log.read.includes(third));
    await follower.close();
    const asked = log.asked.length;
    // A window of five intervals in which no round may start: an absence, with no condition to wait for.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(log.asked.length).toBe(asked);
  });
});
