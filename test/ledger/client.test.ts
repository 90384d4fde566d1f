/**
 * The verifying ledger client against servers that lie. A real node serves its HTTP API on
 * loopback; a proxy in front of it rewrites answers. Every lie must be caught with its own
 * code (docs/errors.md, "Ledger servers and clients"): an untrusted server cannot forge
 * history, and a rewritten or rolled-back log is exposed by consistency with the last head seen.
 */
import { describe, expect, it } from 'vitest';
import type { Signer } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { subjectOf, type Did, type PolicyAddress, type Subject } from '../../src/ledger/events.js';
import { signHead, type SignedTreeHead } from '../../src/ledger/head.js';
import { MAX_ANSWER_BYTES } from '../../src/ledger/transport.js';
import type { LedgerNode, Receipt } from '../../src/ledger/node.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { commitment, nodeSigner, testKey, type TestKey } from '../helpers/ledger.js';
import {
  ForgedLog,
  clone,
  deadUrl,
  flipFirst,
  renumber,
  startLedger,
  startProxy,
  startServer,
  startSilentServer,
  type Lie,
  type Reply,
  type RunningLedger,
} from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { resolveDid } from '../../src/did/resolve.js';

interface Proven {
  head: SignedTreeHead;
  history: LogRecord[];
  proofs: string[][];
}

// The story's last head is signed about now: clients check that heads are recent.
const T0 = Math.floor(Date.now() / 1000) * 1000 - 5 * 60_000;
const MINUTE = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

/** Global sequence numbers of the story's events. */
const G = { policy: 0, did: 1, grant: 2, update: 3, revoke: 4, other: 5 } as const;

interface Story {
  readonly ledger: RunningLedger;
  readonly policy: PolicyAddress;
  readonly did: Did;
  readonly other: PolicyAddress;
  readonly laptop: TestKey;
  readonly phone: TestKey;
  /** heads[n]: the node's signed head when it held n events. */
  readonly heads: SignedTreeHead[];
  readonly receipts: Receipt[];
}

async function latest(node: LedgerNode, subject: Subject): Promise<{ seq: number; head: string }> {
  const record = await node.subject(subject);
  if (record === undefined) throw new Error(`${subject} missing`);
  return record;
}

/**
 * A laptop creates a policy and a DID, grants a phone PROVE, updates the DID's services and
 * revokes the phone; a stranger then creates another policy. One event per minute, from T0.
 */
async function story(dir = tempDir()): Promise<Story> {
  let now = T0;
  // A frozen clock: the node signs nothing but what the story makes (no re-signing).
  const ledger = await startLedger(dir, { node: { now: () => now, headIntervalMs: 0 } });
  const { node } = ledger;
  const laptop = testKey();
  const phone = testKey();
  const stranger = testKey();
  const heads = [node.head()];
  const receipts: Receipt[] = [];
  const submit = async (event: unknown) => {
    const receipt = await node.submit(event);
    receipts.push(receipt);
    heads.push(node.head());
    now += MINUTE;
    return receipt;
  };
  const policy = (await submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))).subject as PolicyAddress;
  const did = (await submit(signEvent(didCreate(policy, [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'http://127.0.0.1:8421/' }]), [laptop])))
    .subject as Did;
  await submit(signEvent(nextEvent('policy.grant', policy, await latest(node, policy), { agent: phone.agent(FLAGS.PROVE) }), [laptop]));
  const services = [
    { id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'http://127.0.0.1:9000/' },
    { id: '#mediator', type: 'DIDCommMediator', serviceEndpoint: 'http://127.0.0.1:9001/' },
  ];
  await submit(signEvent(nextEvent('did.update', did, await latest(node, did), { services }), [laptop]));
  await submit(signEvent(nextEvent('policy.revoke', policy, await latest(node, policy), { key: phone.multikey }), [laptop]));
  const other = (await submit(signEvent(policyCreate([stranger.agent(ALL_FLAGS)], commitment([testKey()])), [stranger]))).subject as PolicyAddress;
  return { ledger, policy, did, other, laptop, phone, heads, receipts };
}

/** A ledger holding `count` unrelated policies (a different log from the story's). */
async function otherLog(count: number, signer: Signer): Promise<RunningLedger> {
  const ledger = await startLedger(tempDir(), { signer });
  for (let i = 0; i < count; i++) {
    const key = testKey();
    await ledger.node.submit(signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]));
  }
  return ledger;
}

async function firstSubject(ledger: RunningLedger): Promise<PolicyAddress> {
  const [first] = await ledger.node.range(0, 1);
  if (first === undefined) throw new Error('empty log');
  return subjectOf(first.event) as PolicyAddress;
}

/** A lie applied to the successful answers of subject reads only. */
const onSubjectReads =
  (alter: (body: Proven) => unknown): Lie =>
  ({ path, status, body }) =>
    status === 200 && /^\/v1\/(policies|dids)\//.test(path) ? { body: alter(clone(body as Proven)) } : undefined;

/** A lie applied to GET /v1/head only. */
const onHead =
  (alter: (head: SignedTreeHead) => unknown): Lie =>
  ({ path, body }) =>
    path === '/v1/head' ? { body: alter(clone(body as SignedTreeHead)) } : undefined;

const indexOf = (body: Proven, gseq: number): number => {
  const i = body.history.findIndex((r) => r.gseq === gseq);
  if (i < 0) throw new Error(`gseq ${gseq} not in the answer`);
  return i;
};

const recordAt = (body: Proven, gseq: number): LogRecord & { event: Record<string, unknown> } =>
  body.history[indexOf(body, gseq)] as LogRecord & { event: Record<string, unknown> };

const keysOf = (doc: { verificationMethod: readonly { type: string; publicKeyMultibase: string }[] }) =>
  doc.verificationMethod.filter((m) => m.type === 'Ed25519VerificationKey2020').map((m) => m.publicKeyMultibase);

describe('LedgerClient against an honest ledger', () => {
  it('resolves a DID and a policy to what it computed itself from the verified events', async () => {
    const s = await story();
    const client = new LedgerClient({ url: `${s.ledger.url}/`, trustedKeys: [s.ledger.signer.multikey] });

    const resolved = await resolveDid(client, s.did);
    expect(resolved.head).toEqual(s.heads[6]);
    expect(resolved.history.map((r) => r.gseq)).toEqual([G.policy, G.did, G.grant, G.update, G.revoke]);
    expect(keysOf(resolved.didDocument)).toEqual([s.laptop.multikey]);
    expect(resolved.didDocument.keyAgreement).toEqual([`${s.did}#${s.laptop.kx}`]);
    expect(resolved.didDocument.service.map((x) => x.serviceEndpoint)).toEqual(['http://127.0.0.1:9000/', 'http://127.0.0.1:9001/']);
    expect(resolved.didDocumentMetadata).toMatchObject({ created: iso(T0 + MINUTE), updated: iso(T0 + 3 * MINUTE), deactivated: false, controller: s.policy });
    expect(resolved.record).toEqual(await s.ledger.node.subject(s.did));
    expect(resolved.policy).toEqual(await s.ledger.node.subject(s.policy));
    expect(resolved.policyHistory.map((p) => p.policy.agents.length)).toEqual([1, 2, 1]);

    // The document the server itself would serve agrees with the one the client computed.
    const served = (await (await fetch(`${s.ledger.url}/v1/dids/${s.did}`)).json()) as { didDocument: unknown; didDocumentMetadata: unknown };
    expect(resolved.didDocument).toEqual(served.didDocument);
    expect(resolved.didDocumentMetadata).toEqual(served.didDocumentMetadata);

    const policy = await client.resolvePolicy(s.policy);
    expect(policy.record).toEqual(await s.ledger.node.subject(s.policy));
    expect(policy.history.map((r) => r.gseq)).toEqual([G.policy, G.grant, G.revoke]);
    expect(policy.policyHistory.map((p) => p.time)).toEqual([iso(T0), iso(T0 + 2 * MINUTE), iso(T0 + 4 * MINUTE)]);
    expect(client.lastHead).toEqual(s.heads[6]);
  });

  it('reads the state as of a global sequence number', async () => {
    const s = await story();
    const client = new LedgerClient({ url: s.ledger.url });

    // Before the DID update (gseq 3): the phone holds PROVE, the first services stand.
    const then = await resolveDid(client, s.did, { at: G.update });
    expect(then.history.every((r) => r.gseq < G.update)).toBe(true);
    expect(keysOf(then.didDocument).sort()).toEqual([s.laptop.multikey, s.phone.multikey].sort());
    expect(then.didDocument.service.map((x) => x.serviceEndpoint)).toEqual(['http://127.0.0.1:8421/']);
    expect(then.head).toEqual(s.heads[6]);

    const before = await client.resolvePolicy(s.policy, { at: G.grant });
    expect(before.record.seq).toBe(0);
    expect(before.record.policy.agents.map((a) => a.key)).toEqual([s.laptop.multikey]);
    const after = await client.resolvePolicy(s.policy, { at: G.grant + 1 });
    expect(after.record.seq).toBe(1);
    expect(after.record.policy.agents).toHaveLength(2);

    await expectCodeAsync(resolveDid(client, s.did, { at: G.did }), 'SUBJECT_NOT_FOUND');
    // A cutoff past the end is the current state.
    expect((await client.resolvePolicy(s.policy, { at: 1000 })).record).toEqual(await s.ledger.node.subject(s.policy));
  });

  it('reads the state as of a time', async () => {
    const s = await story();
    const client = new LedgerClient({ url: s.ledger.url });

    const midway = await resolveDid(client, s.did, { time: iso(T0 + 2 * MINUTE + 30_000) });
    expect(midway.history.map((r) => r.gseq)).toEqual([G.policy, G.did, G.grant]);
    expect(keysOf(midway.didDocument)).toHaveLength(2);
    expect(midway.didDocument.service).toHaveLength(1);

    // An event accepted exactly at the time asked counts.
    const exact = await client.resolvePolicy(s.policy, { time: iso(T0 + 4 * MINUTE) });
    expect(exact.record.seq).toBe(2);
    expect(exact.record.policy.agents).toHaveLength(1);

    const atStart = await client.resolvePolicy(s.policy, { time: iso(T0) });
    expect(atStart.record.seq).toBe(0);
    await expectCodeAsync(client.resolvePolicy(s.policy, { time: iso(T0 - 1) }), 'SUBJECT_NOT_FOUND');
    await expectCodeAsync(resolveDid(client, s.did, { time: iso(T0 - 1000) }), 'SUBJECT_NOT_FOUND');
  });

  it('reports each new head to onHead once, and a client built with lastHead keeps checking consistency', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const seen: SignedTreeHead[] = [];
    const first = new LedgerClient({ url: proxy.url, onHead: (h) => seen.push(h) });

    expect(await first.head()).toEqual(s.heads[6]);
    await first.resolvePolicy(s.policy);
    await first.head();
    expect(seen).toEqual([s.heads[6]]);

    const laptopGrants = signEvent(nextEvent('policy.grant', s.policy, await latest(s.ledger.node, s.policy), { agent: s.phone.agent(FLAGS.PROVE) }), [
      s.laptop,
    ]);
    const receipt = await first.submit(laptopGrants);
    expect(receipt).toMatchObject({ subject: s.policy, seq: 3, gseq: 6 });
    const grown = await first.head();
    expect(grown.size).toBe(7);
    expect(seen).toEqual([s.heads[6], grown]);
    expect(proxy.seen).toContain('/v1/proofs/consistency?from=6&to=7');

    // A second client, started later from the persisted head, verifies the log extends it.
    const persisted = seen.at(-1);
    const second = new LedgerClient({ url: proxy.url, lastHead: persisted, onHead: (h) => seen.push(h) });
    expect(second.lastHead).toEqual(grown);
    await s.ledger.node.submit(signEvent(nextEvent('did.deactivate', s.did, await latest(s.ledger.node, s.did), {}), [s.laptop]));
    const resolved = await resolveDid(second, s.did);
    expect(resolved.didDocumentMetadata.deactivated).toBe(true);
    expect(resolved.didDocument.verificationMethod).toEqual([]);
    expect(proxy.seen).toContain('/v1/proofs/consistency?from=7&to=8');
    expect(second.lastHead?.size).toBe(8);
    expect(seen.map((h) => h.size)).toEqual([6, 7, 8]);
  });

  it('submits events and batches, passing on the codes of refused events', async () => {
    const s = await story();
    const client = new LedgerClient({ url: s.ledger.url });
    const key = testKey();
    const create = signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]);
    const forged = { ...create, sigs: [{ ...create.sigs[0], sig: flipFirst(create.sigs[0]?.sig ?? '') }] };

    const error = await expectCodeAsync(client.submit(forged as typeof create), 'EVENT_BAD_SIGNATURE');
    expect(error.message).toContain(key.multikey);
    const receipt = await client.submit(create);
    expect(receipt.gseq).toBe(6);
    await expectCodeAsync(client.submit(create), 'EVENT_REPLAY');

    const another = testKey();
    const valid = signEvent(policyCreate([another.agent(ALL_FLAGS)], commitment([testKey()])), [another]);
    const badlySigned = signEvent(policyCreate([another.agent(ALL_FLAGS)], commitment([testKey()])), [key]);
    const results = await client.submitBatch([create, badlySigned, valid]);
    expect(results.map((r) => (r.ok ? r.receipt.gseq : r.error.code))).toEqual(['EVENT_REPLAY', 'EVENT_UNAUTHORIZED', 7]);
  });

  it('refuses identifiers of the wrong kind without asking, and reports unknown subjects', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    await expectCodeAsync(client.resolvePolicy(s.did as unknown as PolicyAddress), 'BAD_INPUT');
    await expectCodeAsync(resolveDid(client, s.policy as unknown as Did), 'BAD_INPUT');
    expect(proxy.seen).toEqual([]);
    const unknown = `did:dkms:${s.policy.slice('policy:'.length)}` as Did;
    await expectCodeAsync(resolveDid(client, unknown), 'SUBJECT_NOT_FOUND');
  });
});

describe('LedgerClient reuses what it verified, and nothing more', () => {
  it('refuses an answer identical to one it verified once its head has grown stale: LEDGER_STALE', async () => {
    const s = await story();
    let now = T0 + 5 * MINUTE;
    const client = new LedgerClient({ url: s.ledger.url, now: () => now });
    const first = await resolveDid(client, s.did);
    // The node's clock is frozen: the same head, the same answer, word for word.
    expect(await resolveDid(client, s.did)).toEqual(first);
    now += 2 * MINUTE;
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_STALE');
  });

  it('refuses an answer it verified before, replayed word for word after a newer head: LEDGER_INCONSISTENT (rollback)', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url, now: () => T0 + 6 * MINUTE });
    let recorded: unknown;
    proxy.lie = ({ path, body }) => {
      if (path.startsWith('/v1/dids/')) recorded = body;
      return undefined;
    };
    await resolveDid(client, s.did);
    await resolveDid(client, s.did);
    const key = testKey();
    await s.ledger.node.submit(signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]));
    expect((await client.head()).size).toBe(7);
    proxy.lie = ({ path }) => (path.startsWith('/v1/dids/') ? { body: recorded } : undefined);
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_INCONSISTENT');
  });

  it('takes an answer that crossed a newer head in flight (two reads at once), since its head is a prefix of the newer one', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url, now: () => T0 + 6 * MINUTE });
    await resolveDid(client, s.did);
    // The next DID answer is held back until the client has accepted a newer head.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let holding = true;
    proxy.lie = async ({ path }) => {
      if (holding && path.startsWith('/v1/dids/')) {
        holding = false;
        await held;
      }
      return undefined;
    };
    const slow = resolveDid(client, s.did);
    await waitFor('the DID read held at the proxy', () => !holding);
    const key = testKey();
    await s.ledger.node.submit(signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]));
    expect((await client.head()).size).toBe(7);
    release();
    const answer = await slow;
    expect(answer.head.size).toBe(6);
    expect(answer.didDocument.id).toBe(s.did);
  });

  it('gives every caller the same frozen result: one cannot change what another is given', async () => {
    const s = await story();
    const client = new LedgerClient({ url: s.ledger.url, now: () => T0 + 5 * MINUTE });
    const first = await resolveDid(client, s.did);
    const services = first.didDocument.service.map((x) => x.id);
    expect(services).toHaveLength(2);
    expect(() => (first.didDocument.service as unknown[]).push({ id: '#evil' })).toThrow(TypeError);
    expect(() => Object.assign(first.record, { controller: 'policy:evil' })).toThrow(TypeError);
    const again = await resolveDid(client, s.did);
    expect(again.didDocument.service.map((x) => x.id)).toEqual(services);
    expect(again.record.controller).toBe(s.policy);
  });
});

describe('LedgerClient against a server that forges events', () => {
  it('catches an altered signature in the history: LEDGER_BAD_PROOF', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    proxy.lie = onSubjectReads((body) => {
      const sigs = recordAt(body, G.grant).event.sigs as { sig: string }[];
      (sigs[0] as { sig: string }).sig = flipFirst((sigs[0] as { sig: string }).sig);
      return body;
    });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_PROOF');
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_PROOF');
  });

  it('catches an altered field (the phone raised to ADMIN, a service redirected): LEDGER_BAD_PROOF', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    proxy.lie = onSubjectReads((body) => {
      (recordAt(body, G.grant).event.agent as { flags: number }).flags = ALL_FLAGS;
      return body;
    });
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_PROOF');
    proxy.lie = onSubjectReads((body) => {
      const [agency] = recordAt(body, G.update).event.services as { serviceEndpoint: string }[];
      if (agency !== undefined) agency.serviceEndpoint = 'http://127.0.0.1:6666/';
      return body;
    });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_PROOF');
  });

  it('catches an altered ledger time or global sequence number: LEDGER_BAD_PROOF', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    proxy.lie = onSubjectReads((body) => {
      (recordAt(body, G.revoke) as { time: string }).time = iso(T0 + 60 * MINUTE);
      return body;
    });
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_PROOF');
    // The grant claims the revoke's place in the log, with the revoke's proof.
    proxy.lie = onSubjectReads((body) => {
      const i = indexOf(body, G.grant);
      (body.history[i] as { gseq: number }).gseq = G.update;
      body.proofs[i] = body.proofs[indexOf(body, G.revoke)] ?? [];
      return body;
    });
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_PROOF');
  });

  it('catches a forged log whose tree is recomputed and whose head is signed by a key it does not trust: LEDGER_BAD_HEAD', async () => {
    const s = await story();
    const records = clone(await s.ledger.node.range(0, s.ledger.node.size));
    (records[G.grant]?.event as { agent: { flags: number } }).agent.flags = ALL_FLAGS;
    const forged = new ForgedLog(records, nodeSigner());
    const proxy = await startProxy(s.ledger.url);

    // A client that trusts the node's key only.
    const pinned = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    proxy.lie = forged.lie;
    await expectCodeAsync(resolveDid(pinned, s.did), 'LEDGER_BAD_HEAD');
    await expectCodeAsync(pinned.resolvePolicy(s.policy), 'LEDGER_BAD_HEAD');
    await expectCodeAsync(pinned.head(), 'LEDGER_BAD_HEAD');

    // A trust-on-first-use client that met the honest node first.
    proxy.lie = () => undefined;
    const tofu = new LedgerClient({ url: proxy.url });
    await resolveDid(tofu, s.did);
    proxy.lie = forged.lie;
    await expectCodeAsync(resolveDid(tofu, s.did), 'LEDGER_BAD_HEAD');
    expect(tofu.lastHead).toEqual(s.heads[6]);
  });

  it("catches a forged log signed with the node's own key: LEDGER_INCONSISTENT after the honest log, LEDGER_BAD_CHAIN for a newcomer", async () => {
    const s = await story();
    const records = clone(await s.ledger.node.range(0, s.ledger.node.size));
    (records[G.grant]?.event as { agent: { flags: number } }).agent.flags = ALL_FLAGS;
    const forged = new ForgedLog(records, s.ledger.signer);
    const proxy = await startProxy(s.ledger.url, forged.lie);

    // Same size, other root: a fork.
    const sawAll = new LedgerClient({ url: proxy.url, lastHead: s.heads[6] });
    await expectCodeAsync(resolveDid(sawAll, s.did), 'LEDGER_INCONSISTENT');
    // The forgery is inside the prefix this client saw: no consistency proof can exist.
    const sawThree = new LedgerClient({ url: proxy.url, lastHead: s.heads[3] });
    await expectCodeAsync(sawThree.resolvePolicy(s.policy), 'LEDGER_INCONSISTENT');
    expect(sawThree.lastHead).toEqual(s.heads[3]);
    // A client that never saw this ledger accepts the head, but the grant's signature fails on replay.
    const newcomer = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    const error = await expectCodeAsync(newcomer.resolvePolicy(s.policy), 'LEDGER_BAD_CHAIN');
    expect(error.message).toContain('EVENT_BAD_SIGNATURE');
  });

  it('catches a forgery after the prefix the client saw by replaying the chain: LEDGER_BAD_CHAIN', async () => {
    const s = await story();
    const records = clone(await s.ledger.node.range(0, s.ledger.node.size));
    // The revoke now claims to remove the laptop instead of the phone.
    (records[G.revoke]?.event as { key: string }).key = s.laptop.multikey;
    const forged = new ForgedLog(records, s.ledger.signer);
    const proxy = await startProxy(s.ledger.url, forged.lie);
    const client = new LedgerClient({ url: proxy.url, lastHead: s.heads[4] });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_CHAIN');
  });
});

describe('LedgerClient against a server that drops or reorders events', () => {
  it('catches an event dropped from the middle of a chain, its proof dropped with it: LEDGER_INCOMPLETE (the rest no longer reaches the map entry)', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    proxy.lie = onSubjectReads((body) => {
      const i = indexOf(body, G.grant);
      body.history.splice(i, 1);
      body.proofs.splice(i, 1);
      return body;
    });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_INCOMPLETE');
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_INCOMPLETE');
    // The DID's own chain: without did.create there is no DID.
    proxy.lie = onSubjectReads((body) => {
      const i = indexOf(body, G.did);
      body.history.splice(i, 1);
      body.proofs.splice(i, 1);
      return body;
    });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_CHAIN');
  });

  it('catches an event dropped from a log rebuilt and signed with the node key: LEDGER_INCOMPLETE', async () => {
    const s = await story();
    const records = await s.ledger.node.range(0, s.ledger.node.size);
    const forged = new ForgedLog(renumber(records.filter((r) => r.gseq !== G.grant)), s.ledger.signer);
    const proxy = await startProxy(s.ledger.url, forged.lie);
    const client = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    const error = await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_INCOMPLETE');
    expect(error.message).toContain('expected seq 1, got 2');
  });

  it('catches two events swapped with their proofs: LEDGER_BAD_CHAIN', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    proxy.lie = onSubjectReads((body) => {
      const [i, j] = [indexOf(body, G.grant), indexOf(body, G.revoke)];
      [body.history[i], body.history[j]] = [body.history[j] as LogRecord, body.history[i] as LogRecord];
      [body.proofs[i], body.proofs[j]] = [body.proofs[j] as string[], body.proofs[i] as string[]];
      return body;
    });
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_CHAIN');
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_CHAIN');
  });

  it('catches a chain reordered in a log rebuilt and signed with the node key: LEDGER_INCOMPLETE', async () => {
    const s = await story();
    const records = await s.ledger.node.range(0, s.ledger.node.size);
    const order = [G.policy, G.did, G.revoke, G.update, G.grant, G.other];
    const forged = new ForgedLog(renumber(order.map((g) => records[g] as LogRecord)), s.ledger.signer);
    const proxy = await startProxy(s.ledger.url, forged.lie);
    const client = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_INCOMPLETE');
  });

  it('catches an event shown twice: LEDGER_BAD_CHAIN', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    proxy.lie = onSubjectReads((body) => {
      const i = indexOf(body, G.grant);
      body.history.splice(i + 1, 0, body.history[i] as LogRecord);
      body.proofs.splice(i + 1, 0, body.proofs[i] as string[]);
      return body;
    });
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_CHAIN');
  });

  it("catches another subject's genuine history passed off as the one asked for: LEDGER_BAD_MAP_PROOF, LEDGER_BAD_CHAIN", async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    proxy.forward = (path) => path.replace(s.policy, s.other);
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_BAD_MAP_PROOF');
    // The DID answer reduced to its policy's events, every one genuine and proven.
    proxy.forward = (path) => path;
    proxy.lie = onSubjectReads((body) => {
      const keep = body.history.map((r, i) => [r, body.proofs[i]] as const).filter(([r]) => r.event.type.startsWith('policy.'));
      return { ...body, history: keep.map(([r]) => r), proofs: keep.map(([, p]) => p) };
    });
    await expectCodeAsync(resolveDid(client, s.did), 'LEDGER_BAD_CHAIN');
  });
});

describe('LedgerClient against a server that rewrites or rolls back history', () => {
  it('catches a second node with the same key and a different log: LEDGER_INCONSISTENT', async () => {
    const s = await story();
    const sameSize = await otherLog(6, s.ledger.signer);
    const longer = await otherLog(8, s.ledger.signer);
    const shorter = await otherLog(3, s.ledger.signer);
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] });
    await resolveDid(client, s.did);

    for (const liar of [sameSize, longer, shorter]) {
      proxy.target = liar.url;
      await expectCodeAsync(client.head(), 'LEDGER_INCONSISTENT');
      await expectCodeAsync(client.resolvePolicy(await firstSubject(liar)), 'LEDGER_INCONSISTENT');
    }
    expect(client.lastHead).toEqual(s.heads[6]);

    // The honest node growing is still fine.
    proxy.target = s.ledger.url;
    await s.ledger.node.submit(signEvent(nextEvent('did.deactivate', s.did, await latest(s.ledger.node, s.did), {}), [s.laptop]));
    expect((await client.head()).size).toBe(7);
  });

  it('catches a rewritten log in subject reads too, whatever the subject: LEDGER_INCONSISTENT', async () => {
    const s = await story();
    const longer = await otherLog(8, s.ledger.signer);
    const client = new LedgerClient({ url: longer.url, lastHead: s.heads[6] });
    await expectCodeAsync(client.resolvePolicy(await firstSubject(longer)), 'LEDGER_INCONSISTENT');
    // Trust on first use pinned the key of lastHead: the same node key, so the refusal is about the log itself.
    expect(client.lastHead).toEqual(s.heads[6]);
  });

  it('catches an older genuine head of the same node: LEDGER_INCONSISTENT (rollback)', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = new LedgerClient({ url: proxy.url });
    await client.head();
    proxy.lie = onHead(() => s.heads[3]);
    await expectCodeAsync(client.head(), 'LEDGER_INCONSISTENT');
    proxy.lie = onSubjectReads((body) => ({ ...body, head: s.heads[4] }));
    await expectCodeAsync(client.resolvePolicy(s.policy), 'LEDGER_INCONSISTENT');
    expect(client.lastHead).toEqual(s.heads[6]);
  });

  it('catches a tampered consistency proof: LEDGER_INCONSISTENT', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const tampered: ((proof: string[]) => string[])[] = [
      (proof) => [flipFirst(proof[0] ?? ''), ...proof.slice(1)],
      (proof) => proof.slice(1),
      (proof) => [...proof, proof[0] ?? ''],
      () => [],
    ];
    for (const alter of tampered) {
      proxy.lie = ({ path, body }) =>
        path === '/v1/proofs/consistency' ? { body: { ...(body as object), proof: alter((body as { proof: string[] }).proof) } } : undefined;
      const client = new LedgerClient({ url: proxy.url, lastHead: s.heads[3] });
      await expectCodeAsync(client.head(), 'LEDGER_INCONSISTENT');
    }
    proxy.lie = () => undefined;
    expect((await new LedgerClient({ url: proxy.url, lastHead: s.heads[3] }).head()).size).toBe(6);
  });

  it('treats a server that will not prove the consistency of its own head as a ledger fault, not a client error', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const refusals: Reply[] = [
      { status: 400, body: { type: 'urn:dkms:error:BAD_INPUT', title: 'BAD_INPUT', status: 400, detail: 'need from <= to <= 3', code: 'BAD_INPUT' } },
      { status: 404, body: { type: 'urn:dkms:error:NOT_FOUND', title: 'NOT_FOUND', status: 404, detail: 'no route', code: 'NOT_FOUND' } },
      { status: 200, body: {} },
      { status: 200, raw: 'no proof today' },
    ];
    for (const refusal of refusals) {
      proxy.lie = ({ path }) => (path === '/v1/proofs/consistency' ? refusal : undefined);
      const client = new LedgerClient({ url: proxy.url, lastHead: s.heads[3] });
      const error = await client.head().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DkmsError);
      expect((error as DkmsError).code).toMatch(/^LEDGER_(INCONSISTENT|BAD_RESPONSE)$/);
      expect(client.lastHead).toEqual(s.heads[3]);
    }
  });
});

describe('LedgerClient checks tree heads', () => {
  it('refuses a head whose signature does not cover what it says: LEDGER_BAD_HEAD', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const other = nodeSigner();
    const tampered: ((head: SignedTreeHead) => SignedTreeHead)[] = [
      (h) => ({ ...h, sig: flipFirst(h.sig) }),
      (h) => ({ ...h, size: h.size + 1 }),
      (h) => ({ ...h, root: s.heads[3]?.root ?? '' }),
      (h) => ({ ...h, time: iso(T0 + 99 * MINUTE) }),
      (h) => ({ ...h, key: other.multikey }),
      (h) => ({ ...h, key: 'z6Mknotakey' }),
    ];
    for (const alter of tampered) {
      proxy.lie = onHead(alter);
      await expectCodeAsync(new LedgerClient({ url: proxy.url }).head(), 'LEDGER_BAD_HEAD');
      proxy.lie = onSubjectReads((body) => ({ ...body, head: alter(body.head) }));
      await expectCodeAsync(resolveDid(new LedgerClient({ url: proxy.url }), s.did), 'LEDGER_BAD_HEAD');
    }
  });

  it('refuses a head signed by a key outside trustedKeys, and accepts any key listed: LEDGER_BAD_HEAD', async () => {
    const s = await story();
    const other = nodeSigner();
    const proxy = await startProxy(s.ledger.url);
    const resign = (h: SignedTreeHead) => signHead(h, other);
    proxy.lie = onHead(resign);
    await expectCodeAsync(new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] }).head(), 'LEDGER_BAD_HEAD');
    proxy.lie = onSubjectReads((body) => ({ ...body, head: resign(body.head) }));
    await expectCodeAsync(resolveDid(new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey] }), s.did), 'LEDGER_BAD_HEAD');

    const both = new LedgerClient({ url: proxy.url, trustedKeys: [s.ledger.signer.multikey, other.multikey] });
    expect((await resolveDid(both, s.did)).head.key).toBe(other.multikey);
    proxy.lie = () => undefined;
    expect((await both.head()).key).toBe(s.ledger.signer.multikey);
  });

  it('pins the first key it meets when no key is configured (trust on first use)', async () => {
    const s = await story();
    const other = nodeSigner();
    const proxy = await startProxy(s.ledger.url);
    const resign: Lie = onHead((h) => signHead(h, other));

    const metHonest = new LedgerClient({ url: proxy.url });
    await metHonest.head();
    proxy.lie = resign;
    await expectCodeAsync(metHonest.head(), 'LEDGER_BAD_HEAD');

    // The first key met is pinned even when it is not the node's.
    const metImpostor = new LedgerClient({ url: proxy.url });
    expect((await metImpostor.head()).key).toBe(other.multikey);
    proxy.lie = () => undefined;
    await expectCodeAsync(metImpostor.head(), 'LEDGER_BAD_HEAD');

    // A client built from a persisted head trusts that head's key, and only it.
    await s.ledger.node.submit(signEvent(nextEvent('did.deactivate', s.did, await latest(s.ledger.node, s.did), {}), [s.laptop]));
    proxy.lie = onHead((h) => signHead(h, other));
    await expectCodeAsync(new LedgerClient({ url: proxy.url, lastHead: s.heads[6] }).head(), 'LEDGER_BAD_HEAD');
    proxy.lie = () => undefined;
    expect((await new LedgerClient({ url: proxy.url, lastHead: s.heads[6] }).head()).size).toBe(7);
  });
});

describe('LedgerClient checks inclusion proofs and answers', () => {
  it('refuses wrong inclusion proofs: LEDGER_BAD_PROOF', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const lies: ((body: Proven) => unknown)[] = [
      // Another event's proof.
      (b) => ({ ...b, proofs: b.proofs.map((_, i) => b.proofs[(i + 1) % b.proofs.length]) }),
      // One sibling changed, one dropped, one added.
      (b) => ({ ...b, proofs: b.proofs.map((p) => [flipFirst(p[0] ?? ''), ...p.slice(1)]) }),
      (b) => ({ ...b, proofs: b.proofs.map((p) => p.slice(1)) }),
      (b) => ({ ...b, proofs: b.proofs.map((p) => [...p, p[0] ?? '']) }),
      // Proofs missing, or fewer than the events.
      (b) => ({ ...b, proofs: [] }),
      (b) => ({ ...b, proofs: b.proofs.slice(1) }),
      // Not a hash at all.
      (b) => ({ ...b, proofs: b.proofs.map((p) => ['not+base64url!', ...p.slice(1)]) }),
      (b) => ({ ...b, proofs: b.proofs.map((p) => ['AAAA', ...p.slice(1)]) }),
    ];
    for (const lie of lies) {
      proxy.lie = onSubjectReads(lie);
      await expectCodeAsync(resolveDid(new LedgerClient({ url: proxy.url }), s.did), 'LEDGER_BAD_PROOF');
    }
    // Genuine events under a genuine but older head that cannot contain them.
    // That head is minutes old, so a client refuses it as stale; one that accepts old heads still
    // finds the events outside it.
    proxy.lie = onSubjectReads((b) => ({ ...b, head: s.heads[3] }));
    await expectCodeAsync(resolveDid(new LedgerClient({ url: proxy.url }), s.did), 'LEDGER_STALE');
    await expectCodeAsync(resolveDid(new LedgerClient({ url: proxy.url, maxHeadAgeMs: Number.POSITIVE_INFINITY }), s.did), 'LEDGER_BAD_PROOF');
  });

  it('refuses malformed answers: LEDGER_BAD_RESPONSE', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    const client = () => new LedgerClient({ url: proxy.url });
    const headLies: Lie[] = [
      () => ({ raw: 'not json' }),
      () => ({ raw: '' }),
      () => ({ body: null }),
      () => ({ body: [] }),
      onHead((h) => ({ ...h, size: String(h.size) })),
      onHead((h) => ({ ...h, size: -1 })),
      onHead((h) => ({ ...h, extra: true })),
      onHead(({ sig: _sig, ...h }) => h),
      () => ({ status: 502, raw: '<html>bad gateway</html>', contentType: 'text/html' }),
      () => ({ status: 500, body: { error: 'oops' } }),
      () => ({ status: 404, body: { type: 'x', title: 'x', status: 404, detail: 'gone', code: 'NOT_A_DKMS_CODE' } }),
    ];
    for (const lie of headLies) {
      proxy.lie = lie;
      await expectCodeAsync(client().head(), 'LEDGER_BAD_RESPONSE');
    }
    const readLies: ((body: Proven) => unknown)[] = [
      ({ proofs: _proofs, ...b }) => b,
      (b) => ({ ...b, history: {} }),
      (b) => ({ ...b, history: b.history.map((r) => ({ ...r, note: 'extra' })) }),
      (b) => ({ ...b, history: b.history.map((r) => ({ ...r, gseq: -1 })) }),
      (b) => ({ ...b, history: b.history.map(({ event: _event, ...r }) => r) }),
      (b) => ({ ...b, proofs: b.proofs.map((p) => p.map(() => 7)) }),
    ];
    for (const lie of readLies) {
      proxy.lie = onSubjectReads(lie);
      await expectCodeAsync(resolveDid(client(), s.did), 'LEDGER_BAD_RESPONSE');
    }
  });

  describe('refuses malformed answers to submissions: LEDGER_BAD_RESPONSE', () => {
    const fresh = () => {
      const key = testKey();
      return signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]);
    };
    const lyingAbout = async (route: string, lie: (body: unknown) => Reply) => {
      const s = await story();
      const proxy = await startProxy(s.ledger.url, ({ path, body }) => (path === route ? lie(body) : undefined));
      return new LedgerClient({ url: proxy.url });
    };

    it('a receipt that is not JSON', async () => {
      const client = await lyingAbout('/v1/events', () => ({ status: 201, raw: 'accepted!' }));
      await expectCodeAsync(client.submit(fresh()), 'LEDGER_BAD_RESPONSE');
    });

    it('a receipt that is not a receipt', async () => {
      const client = await lyingAbout('/v1/events', () => ({ status: 201, body: {} }));
      await expectCodeAsync(client.submit(fresh()), 'LEDGER_BAD_RESPONSE');
    });

    it('a batch answer without results', async () => {
      const client = await lyingAbout('/v1/events/batch', () => ({ status: 200, body: {} }));
      await expectCodeAsync(client.submitBatch([fresh()]), 'LEDGER_BAD_RESPONSE');
    });

    it('a batch answer with fewer results than events', async () => {
      const client = await lyingAbout('/v1/events/batch', (body) => ({ body: { results: (body as { results: unknown[] }).results.slice(1) } }));
      await expectCodeAsync(client.submitBatch([fresh(), fresh()]), 'LEDGER_BAD_RESPONSE');
    });
  });

  it('reports a ledger it cannot reach: LEDGER_UNREACHABLE', async () => {
    const dead = await deadUrl();
    await expectCodeAsync(new LedgerClient({ url: dead }).head(), 'LEDGER_UNREACHABLE');
    await expectCodeAsync(resolveDid(new LedgerClient({ url: dead }), 'did:dkms:x' as Did), 'LEDGER_UNREACHABLE');
    const silent = await startSilentServer();
    await expectCodeAsync(new LedgerClient({ url: silent, timeoutMs: 200 }).head(), 'LEDGER_UNREACHABLE');
  });

  it('refuses an answer larger than it will hold, announced or streamed: LEDGER_BAD_RESPONSE', async () => {
    const chunk = Buffer.alloc(2 ** 20, 0x20);
    const url = await startServer((request, response) => {
      if (request.url === '/v1/head') {
        // Announces more than the limit, then stalls: refused at once, not after the timeout.
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(MAX_ANSWER_BYTES + 1) });
        response.write('{');
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      let sent = 0;
      const more = () => {
        while (sent <= MAX_ANSWER_BYTES && response.write(chunk)) sent += chunk.length;
        if (sent <= MAX_ANSWER_BYTES) response.once('drain', () => ((sent += chunk.length), more()));
      };
      response.on('error', () => undefined);
      more();
    });
    for (const transport of ['default', 'fetch'] as const) {
      const client = new LedgerClient({ url, timeoutMs: 30_000, ...(transport === 'fetch' ? { fetch } : {}) });
      await expectCodeAsync(client.head(), 'LEDGER_BAD_RESPONSE');
      if (transport === 'default') await expectCodeAsync(resolveDid(client, 'did:dkms:x' as Did), 'LEDGER_BAD_RESPONSE');
    }
  });
});

describe('LedgerClient historical reads from a lying server', () => {
  /** Resolves, and returns the record or the error, so both outcomes can be judged. */
  const outcome = <T>(promise: Promise<T>): Promise<T | DkmsError> => promise.catch((e: unknown) => (e instanceof DkmsError ? e : Promise.reject(e)));

  it('never passes off the current state as the state as of `at`', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    proxy.forward = (path) => path.split('?')[0] ?? path;
    const result = await outcome(new LedgerClient({ url: proxy.url }).resolvePolicy(s.policy, { at: G.revoke }));
    if (result instanceof DkmsError) {
      expect(result.code).toMatch(/^LEDGER_/);
    } else {
      // Either refused, or computed from the events before `at` only: the phone was still an agent.
      expect(result.history.every((r) => r.gseq < G.revoke)).toBe(true);
      expect(result.record.seq).toBe(1);
      expect(result.record.policy.agents).toHaveLength(2);
    }
  });

  it('never passes off the current state as the state as of `time`', async () => {
    const s = await story();
    const proxy = await startProxy(s.ledger.url);
    proxy.forward = (path) => path.split('?')[0] ?? path;
    const time = iso(T0 + 2 * MINUTE + 30_000);
    const result = await outcome(resolveDid(new LedgerClient({ url: proxy.url }), s.did, { time }));
    if (result instanceof DkmsError) {
      expect(result.code).toMatch(/^LEDGER_/);
    } else {
      expect(result.history.every((r) => r.time <= time)).toBe(true);
      expect(result.didDocument.service.map((x) => x.serviceEndpoint)).toEqual(['http://127.0.0.1:8421/']);
    }
  });
});
