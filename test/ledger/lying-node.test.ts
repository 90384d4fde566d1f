/**
 * A ledger node that lies, against clients that check: a real node behind its HTTP API on
 * loopback, and a proxy in front of it that withholds, replays and rewrites answers. Each lie is
 * caught with its own code, by a client that read the ledger before (warm) and by one meeting it
 * for the first time (fresh). Lies that need a witness to be caught on first contact (a rollback,
 * a fork signed with the node's key) are in witness.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { subjectOf, type Did, type PolicyAddress, type Subject } from '../../src/ledger/events.js';
import { signHead, type ServedHead, type SignedTreeHead } from '../../src/ledger/head.js';
import type { MapProof } from '../../src/ledger/map.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { verifyAgentSignature } from '../../src/policy/verify.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, testKey, type TestKey } from '../helpers/ledger.js';
import { clone, flipFirst, startLedger, startProxy, type Lie, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { resolveDid } from '../../src/did/resolve.js';

interface Answer {
  head: ServedHead;
  subjects: Record<string, MapProof>;
  history: LogRecord[];
  proofs: string[][];
}

interface World {
  readonly ledger: RunningLedger;
  readonly policy: PolicyAddress;
  readonly did: Did;
  readonly laptop: TestKey;
  readonly tablet: TestKey;
  /** Moves the node's clock (its heads' times), in milliseconds from now. */
  shift(ms: number): void;
}

async function latest(node: LedgerNode, subject: Subject): Promise<{ seq: number; head: string }> {
  const record = await node.subject(subject);
  if (record === undefined) throw new Error(`${subject} missing`);
  return record;
}

/** A laptop's policy and DID, with a tablet granted PROVE, on a node whose clock is `offset` ms from now. */
async function world(offset0 = 0): Promise<World> {
  let offset = offset0;
  const ledger = await startLedger(tempDir(), { node: { now: () => Date.now() + offset, headIntervalMs: 0 } });
  const laptop = testKey();
  const tablet = testKey();
  const policy = (await ledger.node.submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))).subject as PolicyAddress;
  const did = (await ledger.node.submit(signEvent(didCreate(policy, []), [laptop]))).subject as Did;
  await ledger.node.submit(signEvent(nextEvent('policy.grant', policy, await latest(ledger.node, policy), { agent: tablet.agent(FLAGS.PROVE) }), [laptop]));
  return { ledger, policy, did, laptop, tablet, shift: (ms) => (offset = ms) };
}

async function revokeTablet(w: World): Promise<void> {
  await w.ledger.node.submit(signEvent(nextEvent('policy.revoke', w.policy, await latest(w.ledger.node, w.policy), { key: w.tablet.multikey }), [w.laptop]));
}

/** Rewrites successful subject reads only. */
const onReads =
  (alter: (body: Answer, path: string) => unknown): Lie =>
  ({ path, status, body }) =>
    status === 200 && /^\/v1\/(policies|dids)\//.test(path) ? { body: alter(clone(body as Answer), path) } : undefined;

/** Leaves out the newest event of `subject` (and its proof), as if it were not there yet. */
const withholdNewest = (subject: () => Subject): Lie =>
  onReads((body) => {
    const index = body.history.map((r) => subjectOf(r.event)).lastIndexOf(subject());
    if (index >= 0) {
      body.history.splice(index, 1);
      body.proofs.splice(index, 1);
    }
    return body;
  });

const client = (url: string, w: World, options: Partial<ConstructorParameters<typeof LedgerClient>[0]> = {}) =>
  new LedgerClient({ url, trustedKeys: [w.ledger.signer.multikey], ...options });

describe('a node that withholds', () => {
  it("withholding a tablet's revocation: a fresh and a warm client both refuse with LEDGER_INCOMPLETE, and nothing verifies the tablet's later signature", async () => {
    const w = await world();
    const proxy = await startProxy(w.ledger.url);
    const warm = client(proxy.url, w);
    await resolveDid(warm, w.did);
    await warm.resolvePolicy(w.policy);
    await revokeTablet(w);
    const signedAfter = new TextEncoder().encode('signed by the tablet after its revocation');
    const signature = w.tablet.sign(signedAfter);

    proxy.lie = withholdNewest(() => w.policy);
    for (const reader of [warm, client(proxy.url, w)]) {
      await expectCodeAsync(resolveDid(reader, w.did), 'LEDGER_INCOMPLETE');
      await expectCodeAsync(reader.resolvePolicy(w.policy), 'LEDGER_INCOMPLETE');
    }
    // Told the truth, the verifier refuses the tablet's signature: the withheld revocation bites.
    proxy.lie = () => undefined;
    const { policyHistory } = await resolveDid(warm, w.did);
    const result = verifyAgentSignature(policyHistory, { key: w.tablet.multikey, message: signedAfter, signature, time: new Date().toISOString() });
    expect(result).toMatchObject({ valid: false, reason: 'REVOKED' });
  });

  it("withholding a DID's newest event, or its policy's, is LEDGER_INCOMPLETE", async () => {
    const w = await world();
    await w.ledger.node.submit(signEvent(nextEvent('did.update', w.did, await latest(w.ledger.node, w.did), { services: [] }), [w.laptop]));
    const proxy = await startProxy(
      w.ledger.url,
      withholdNewest(() => w.did),
    );
    await expectCodeAsync(resolveDid(client(proxy.url, w), w.did), 'LEDGER_INCOMPLETE');
    proxy.lie = withholdNewest(() => w.policy);
    await expectCodeAsync(resolveDid(client(proxy.url, w), w.did), 'LEDGER_INCOMPLETE');
  });

  it("a map proof rewritten to match what is shown does not verify under the node's head: LEDGER_BAD_MAP_PROOF", async () => {
    const w = await world();
    const proxy = await startProxy(w.ledger.url);
    const honest = (await (await fetch(`${w.ledger.url}/v1/policies/${w.policy}`)).json()) as Answer;
    await revokeTablet(w);
    // The liar withholds the revocation and serves the old map proof, which matches the events shown.
    proxy.lie = onReads((body) => {
      body.history.pop();
      body.proofs.pop();
      return { ...body, subjects: honest.subjects };
    });
    await expectCodeAsync(client(proxy.url, w).resolvePolicy(w.policy), 'LEDGER_BAD_MAP_PROOF');
    // Flipped siblings, a missing proof, junk.
    const alterations: ((proof: MapProof) => unknown)[] = [
      (p) => ({ ...p, siblings: p.siblings.map((s) => (s === null ? s : flipFirst(s))) }),
      (p) => ({ ...p, siblings: p.siblings.slice(1) }),
      (p) => ({ ...p, entry: { ...p.entry, seq: (p.entry?.seq ?? 0) + 1 } }),
      () => 'not a proof',
    ];
    for (const alter of alterations) {
      proxy.lie = onReads((body) => ({ ...body, subjects: { [w.policy]: alter(body.subjects[w.policy] as MapProof) } }));
      await expectCodeAsync(client(proxy.url, w).resolvePolicy(w.policy), 'LEDGER_BAD_MAP_PROOF');
    }
    proxy.lie = onReads((body) => ({ ...body, subjects: {} }));
    await expectCodeAsync(client(proxy.url, w).resolvePolicy(w.policy), 'LEDGER_BAD_MAP_PROOF');
  });
});

describe('a node that claims a subject does not exist', () => {
  const notFound = (body: Answer | undefined, subject: Subject, proof?: unknown) => ({
    status: 404,
    body: {
      type: 'urn:dkms:error:SUBJECT_NOT_FOUND',
      title: 'SUBJECT_NOT_FOUND',
      status: 404,
      code: 'SUBJECT_NOT_FOUND',
      detail: `no ${subject}`,
      ...(body === undefined ? {} : { head: body.head, subjects: proof === undefined ? {} : { [subject]: proof } }),
    },
  });

  it('is refused: with its own map proof LEDGER_INCOMPLETE, without one or with a forged one LEDGER_BAD_MAP_PROOF', async () => {
    const w = await world();
    const proxy = await startProxy(w.ledger.url);
    const warm = client(proxy.url, w);
    await resolveDid(warm, w.did);
    // A 404 under the real head, with the map's real proof for the subject: which shows it present.
    proxy.lie = ({ path, status, body }) => {
      if (status !== 200 || !/^\/v1\/(policies|dids)\//.test(path)) return undefined;
      const subject = decodeURIComponent(path.split('/').at(-1) ?? '') as Subject;
      return notFound(body as Answer, subject, (body as Answer).subjects[subject]);
    };
    for (const reader of [warm, client(proxy.url, w)]) {
      await expectCodeAsync(resolveDid(reader, w.did), 'LEDGER_INCOMPLETE');
      await expectCodeAsync(reader.resolvePolicy(w.policy), 'LEDGER_INCOMPLETE');
    }
    proxy.lie = ({ path, status, body }) => (status === 200 && path.startsWith('/v1/dids/') ? notFound(body as Answer, w.did) : undefined);
    await expectCodeAsync(resolveDid(client(proxy.url, w), w.did), 'LEDGER_BAD_MAP_PROOF');
    proxy.lie = ({ path, status }) => (status === 200 && path.startsWith('/v1/dids/') ? notFound(undefined, w.did) : undefined);
    await expectCodeAsync(resolveDid(client(proxy.url, w), w.did), 'LEDGER_BAD_MAP_PROOF');
    // Another subject's proof of absence, passed off as this one's.
    const absent = (await (await fetch(`${w.ledger.url}/v1/dids/did:dkms:${'1'.repeat(44)}`)).json()) as { subjects: Record<string, MapProof> };
    const [foreign] = Object.values(absent.subjects);
    proxy.lie = ({ path, status, body }) => (status === 200 && path.startsWith('/v1/dids/') ? notFound(body as Answer, w.did, foreign) : undefined);
    await expectCodeAsync(resolveDid(client(proxy.url, w), w.did), 'LEDGER_BAD_MAP_PROOF');
  });

  it('an honest "not found" is proven, and believed', async () => {
    const w = await world();
    const error = await expectCodeAsync(resolveDid(client(w.ledger.url, w), `did:dkms:${'1'.repeat(44)}` as Did), 'SUBJECT_NOT_FOUND');
    expect(error.message).toContain('proven absent');
  });
});

describe('a node that serves old heads', () => {
  it('a stuck node (its last head minutes old) is refused as LEDGER_STALE, warm or fresh', async () => {
    const w = await world();
    // The clients' clocks run on; the node signs nothing new (its re-signing timer is off here).
    let later = 0;
    const now = () => Date.now() + later;
    const warm = client(w.ledger.url, w, { now });
    await resolveDid(warm, w.did);
    later = 5 * 60_000;
    for (const reader of [warm, client(w.ledger.url, w, { now })]) {
      await expectCodeAsync(resolveDid(reader, w.did), 'LEDGER_STALE');
      await expectCodeAsync(reader.head(), 'LEDGER_STALE');
    }
    // A client told to accept older heads reads it (the age limit is the client's to set).
    expect((await resolveDid(client(w.ledger.url, w, { now, maxHeadAgeMs: 10 * 60_000 }), w.did)).head.size).toBe(3);
  });

  it('a head dated in the future is refused as LEDGER_STALE', async () => {
    const w = await world();
    w.shift(5 * 60_000);
    await revokeTablet(w);
    await expectCodeAsync(client(w.ledger.url, w).resolvePolicy(w.policy), 'LEDGER_STALE');
  });

  it('an old signed head replayed (before the revocation): a fresh client says LEDGER_STALE, a warm one LEDGER_INCONSISTENT', async () => {
    const w = await world(-3 * 60_000);
    const old = (await (await fetch(`${w.ledger.url}/v1/policies/${w.policy}`)).json()) as Answer;
    w.shift(0);
    await revokeTablet(w);
    const warm = client(w.ledger.url, w);
    await warm.resolvePolicy(w.policy);
    const proxy = await startProxy(w.ledger.url, ({ path }) =>
      path.startsWith('/v1/policies/') ? { status: 200, body: old } : path === '/v1/head' ? { status: 200, body: old.head } : undefined,
    );
    const replayed = new LedgerClient({
      url: proxy.url,
      trustedKeys: [w.ledger.signer.multikey],
      lastHead: warm.lastHead as SignedTreeHead,
      cache: warm.cache,
    });
    await expectCodeAsync(replayed.resolvePolicy(w.policy), 'LEDGER_INCONSISTENT');
    await expectCodeAsync(client(proxy.url, w).resolvePolicy(w.policy), 'LEDGER_STALE');
  });

  it('a fresh signature by the node key over an old, shorter log (a rollback) is LEDGER_INCONSISTENT for a warm client', async () => {
    const w = await world();
    const before = (await (await fetch(`${w.ledger.url}/v1/policies/${w.policy}`)).json()) as Answer;
    await revokeTablet(w);
    const warm = client(w.ledger.url, w);
    await warm.resolvePolicy(w.policy);
    const rolledBack = signHead({ ...before.head, time: new Date().toISOString() }, w.ledger.signer);
    const proxy = await startProxy(w.ledger.url, ({ path }) =>
      path.startsWith('/v1/policies/') ? { status: 200, body: { ...before, head: rolledBack } } : undefined,
    );
    const same = new LedgerClient({ url: proxy.url, trustedKeys: [w.ledger.signer.multikey], lastHead: warm.lastHead as SignedTreeHead, cache: warm.cache });
    await expectCodeAsync(same.resolvePolicy(w.policy), 'LEDGER_INCONSISTENT');
  });
});

describe('a warm client reads only what changed', () => {
  it('asks for events after the seq it holds, and an unchanged subject costs no events at all', async () => {
    const w = await world();
    const proxy = await startProxy(w.ledger.url);
    const reader = client(proxy.url, w);
    const cold = await resolveDid(reader, w.did);
    expect(cold.history).toHaveLength(3);
    await resolveDid(reader, w.did);
    expect(proxy.seen.at(-1)).toBe(`/v1/dids/${w.did}?after=0&policyAfter=1`);
    let served: Answer | undefined;
    proxy.lie = ({ path, body }) => {
      if (path.startsWith('/v1/dids/')) served = body as Answer;
      return undefined;
    };
    await resolveDid(reader, w.did);
    expect(served?.history).toEqual([]);
    await revokeTablet(w);
    const after = await resolveDid(reader, w.did);
    expect(served?.history.map((r) => r.event.type)).toEqual(['policy.revoke']);
    expect(after.history).toHaveLength(4);
    expect(after.policy.policy.agents.map((a) => a.key)).toEqual([w.laptop.multikey]);
    // As of before the revocation, from what it holds.
    const then = await resolveDid(reader, w.did, { at: 3 });
    expect(then.policy.policy.agents).toHaveLength(2);
  });
});
