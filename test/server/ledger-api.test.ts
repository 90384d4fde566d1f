/**
 * The ledger node's HTTP API on loopback: answers, RFC 9457 problems with dkms codes, limits,
 * batches, and the promise that a refused event changes nothing.
 */
import { describe, expect, it, vi } from 'vitest';
import { toBase58btc, fromBase64url, sha256 } from '../../src/crypto/index.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { eventId, subjectOf, type Did, type LedgerEvent, type PolicyAddress } from '../../src/ledger/events.js';
import { mapRootBytes, verifyHeadSignature, rootBytes, type SignedTreeHead } from '../../src/ledger/head.js';
import { mapKey, verifyMapProof } from '../../src/ledger/map.js';
import { verifyConsistency, verifyInclusion } from '../../src/ledger/merkle.js';
import { recordLeaf } from '../../src/ledger/replay.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { commitment, testKey, type TestKey } from '../helpers/ledger.js';
import { flipFirst, startLedger, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { localLedgerTransport } from '../../src/server/ledger-reads.js';
import { sharedValidators } from '../../src/server/validators.js';
import { call, type Answer } from '../helpers/http.js';

const get = (url: string) => call(url);
const post = (url: string, body: unknown, contentType = 'application/json') =>
  call(url, { method: 'POST', headers: { 'content-type': contentType }, body: typeof body === 'string' ? body : JSON.stringify(body) });

/** Asserts an RFC 9457 problem carrying `code` with its HTTP status. */
function expectProblem(answer: Answer, status: number, code: string): void {
  expect({ status: answer.status, code: (answer.body as { code?: unknown }).code }).toEqual({ status, code });
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  const body = answer.body as Record<string, unknown>;
  expect(Object.keys(body).sort()).toEqual(['code', 'detail', 'status', 'title', 'type']);
  expect(body).toMatchObject({ type: `urn:dkms:error:${code}`, title: code, status, code });
  expect(typeof body.detail).toBe('string');
  expect((body.detail as string).length).toBeGreaterThan(0);
}

const newPolicy = (key: TestKey = testKey()) => signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]);

/** Points to an identifier nobody created. */
const nobody = () => toBase58btc(sha256(new TextEncoder().encode(String(Math.random()))));

interface Seeded {
  readonly ledger: RunningLedger;
  readonly laptop: TestKey;
  readonly policy: PolicyAddress;
  readonly did: Did;
}

/** A ledger with a policy (gseq 0), a DID (1) and a grant (2). */
async function seeded(options: Parameters<typeof startLedger>[1] = {}): Promise<Seeded> {
  const ledger = await startLedger(tempDir(), options);
  const laptop = testKey();
  const policy = (await ledger.node.submit(newPolicy(laptop))).subject as PolicyAddress;
  const did = (
    await ledger.node.submit(signEvent(didCreate(policy, [{ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: 'http://127.0.0.1:8421/' }]), [laptop]))
  ).subject as Did;
  const record = await ledger.node.subject(policy);
  if (record === undefined) throw new Error('policy missing');
  await ledger.node.submit(signEvent(nextEvent('policy.grant', policy, record, { agent: testKey().agent(FLAGS.PROVE) }), [laptop]));
  return { ledger, laptop, policy, did };
}

describe('ledger API: reads', () => {
  it('reports health and serves the signed tree head', async () => {
    const ledger = await startLedger(tempDir());
    expect(await get(`${ledger.url}/v1/health`)).toMatchObject({ status: 200, body: { status: 'ok', size: 0, key: ledger.signer.multikey } });
    await ledger.node.submit(newPolicy());
    expect((await get(`${ledger.url}/v1/health`)).body).toEqual({ status: 'ok', size: 1, key: ledger.signer.multikey });
    const head = await get(`${ledger.url}/v1/head`);
    expect(head.status).toBe(200);
    expect(head.contentType).toMatch(/^application\/json/);
    expect(head.body).toEqual(ledger.node.head());
    expect(verifyHeadSignature(head.body as SignedTreeHead)).toBe(true);
  });

  it('serves a subject with its history, each event proven under the head it sends', async () => {
    const { ledger, policy, did } = await seeded();
    const answer = (await get(`${ledger.url}/v1/dids/${did}`)).body as {
      head: SignedTreeHead;
      subjects: Record<string, unknown>;
      history: LogRecord[];
      proofs: string[][];
      didDocument: { id: string };
    };
    expect(answer.didDocument.id).toBe(did);
    expect(answer.history.map((r) => r.gseq)).toEqual([0, 1, 2]);
    answer.history.forEach((record, i) => {
      const proof = (answer.proofs[i] ?? []).map((p) => fromBase64url(p));
      expect(verifyInclusion(recordLeaf(record), record.gseq, answer.head.size, proof, rootBytes(answer.head))).toBe(true);
    });
    // Each subject the answer depends on has a map proof under the head, ending at its last event.
    for (const [subject, last] of [
      [did, 1],
      [policy, 2],
    ] as const) {
      const result = verifyMapProof(mapRootBytes(answer.head), mapKey(subject), answer.subjects[subject]);
      expect(result).toMatchObject({ ok: true, entry: { gseq: last } });
    }
    // A historical read still carries the whole history (the client cuts it): `record` is the state then.
    const then = (await get(`${ledger.url}/v1/policies/${policy}?at=2`)).body as { record: { seq: number }; history: LogRecord[]; head: SignedTreeHead };
    expect(then.record.seq).toBe(0);
    expect(then.history.map((r) => r.gseq)).toEqual([0, 2]);
    expect(then.head.size).toBe(3);
    // Only the events after a seq the client holds.
    const newer = (await get(`${ledger.url}/v1/dids/${did}?after=0&policyAfter=0`)).body as { history: LogRecord[]; proofs: string[][] };
    expect(newer.history.map((r) => r.gseq)).toEqual([2]);
    expect(newer.proofs).toHaveLength(1);
    // A client that holds the latest of both gets the head and the map proofs, and the node
    // knows that from the map alone: it does not look in the log.
    const logReads = vi.spyOn(ledger.node, 'subjectLog');
    const warm = (await get(`${ledger.url}/v1/dids/${did}?after=0&policyAfter=1`)).body as {
      history: LogRecord[];
      proofs: string[][];
      subjects: Record<string, unknown>;
      head: SignedTreeHead;
    };
    expect({ history: warm.history, proofs: warm.proofs }).toEqual({ history: [], proofs: [] });
    // ...and nothing more: no convenience state for a client that builds its own.
    expect(Object.keys(warm).sort()).toEqual(['head', 'history', 'proofs', 'subjects']);
    expect(verifyMapProof(mapRootBytes(warm.head), mapKey(policy), warm.subjects[policy])).toMatchObject({ ok: true, entry: { gseq: 2, seq: 1 } });
    expect(logReads).not.toHaveBeenCalled();
    // One behind on the policy only: its newer event, read from the log.
    const behind = (await get(`${ledger.url}/v1/dids/${did}?after=0&policyAfter=0`)).body as { history: LogRecord[] };
    expect(behind.history.map((r) => r.gseq)).toEqual([2]);
    expect(logReads.mock.calls.map(([subject]) => subject)).toEqual([policy]);
    logReads.mockRestore();
    // The same for a policy read: its state only for a reader that asks without `after`.
    expect(Object.keys((await get(`${ledger.url}/v1/policies/${policy}?after=1`)).body as object).sort()).toEqual(['head', 'history', 'proofs', 'subjects']);
    expect((await get(`${ledger.url}/v1/policies/${policy}`)).body).toMatchObject({ record: { seq: 1 } });
  });

  it('serves log ranges and inclusion and consistency proofs', async () => {
    const { ledger } = await seeded();
    const head = ledger.node.head();
    const log = (await get(`${ledger.url}/v1/log?from=1&to=2`)).body as { head: SignedTreeHead; records: LogRecord[] };
    expect(log.head).toEqual(head);
    expect(log.records.map((r) => r.gseq)).toEqual([1]);
    expect(((await get(`${ledger.url}/v1/log?from=0`)).body as { records: LogRecord[] }).records).toHaveLength(3);
    expect(((await get(`${ledger.url}/v1/log?from=7`)).body as { records: LogRecord[] }).records).toEqual([]);

    const inclusion = (await get(`${ledger.url}/v1/proofs/inclusion?gseq=1`)).body as { gseq: number; size: number; proof: string[] };
    expect(inclusion).toMatchObject({ gseq: 1, size: 3 });
    expect(
      verifyInclusion(
        recordLeaf(log.records[0] as LogRecord),
        1,
        3,
        inclusion.proof.map((p) => fromBase64url(p)),
        rootBytes(head),
      ),
    ).toBe(true);

    const first = (await get(`${ledger.url}/v1/proofs/inclusion?gseq=0&size=1`)).body as { proof: string[] };
    expect(first.proof).toEqual([]);
    const consistency = (await get(`${ledger.url}/v1/proofs/consistency?from=1`)).body as { from: number; to: number; proof: string[] };
    expect(consistency).toMatchObject({ from: 1, to: 3 });
    const [zero] = await ledger.node.range(0, 1);
    expect(
      verifyConsistency(
        1,
        3,
        consistency.proof.map((p) => fromBase64url(p)),
        recordLeaf(zero as LogRecord),
        rootBytes(head),
      ),
    ).toBe(true);
  });
});

describe('ledger API: problems', () => {
  it('answers malformed events with EVENT_MALFORMED', async () => {
    const { ledger } = await seeded();
    const event = newPolicy();
    const answers = [
      await post(`${ledger.url}/v1/events`, {}),
      await post(`${ledger.url}/v1/events`, { v: 1, type: 'policy.create' }),
      await post(`${ledger.url}/v1/events`, { ...event, color: 'blue' }),
      await post(`${ledger.url}/v1/events`, { ...event, type: 'policy.destroy' }),
      await post(`${ledger.url}/v1/events`, []),
      await post(`${ledger.url}/v1/events`, 'null'),
      await post(`${ledger.url}/v1/events`, '"an event"'),
      await post(`${ledger.url}/v1/events`, '{"v": 1,'),
      await post(`${ledger.url}/v1/events`, ''),
      await post(`${ledger.url}/v1/events`, JSON.stringify(event), 'text/plain'),
      await post(`${ledger.url}/v1/events/batch`, {}),
      await post(`${ledger.url}/v1/events/batch`, { events: [] }),
      await post(`${ledger.url}/v1/events/batch`, { events: { 0: event } }),
      await post(`${ledger.url}/v1/events/batch`, { events: Array.from({ length: 501 }, () => ({})) }),
    ];
    for (const answer of answers) expectProblem(answer, 400, 'EVENT_MALFORMED');
  });

  it('the in-process transport checks requests with the same contracts, and answers as HTTP does', async () => {
    const { ledger, policy } = await seeded();
    const local = localLedgerTransport(ledger.node);
    const cases: readonly { method: 'GET' | 'POST'; path: string; body?: unknown }[] = [
      { method: 'GET', path: `/v1/policies/${policy}?at=1e3` },
      { method: 'GET', path: `/v1/policies/${policy}?after=-2` },
      { method: 'GET', path: `/v1/policies/${policy}?colour=blue` },
      { method: 'GET', path: `/v1/dids/${policy}` },
      { method: 'GET', path: '/v1/head?at=1' },
      { method: 'GET', path: '/v1/proofs/consistency?from=3&to=1' },
      { method: 'GET', path: '/v1/proofs/consistency?from=x' },
      { method: 'POST', path: '/v1/proofs/map', body: { subjects: policy } },
      { method: 'POST', path: '/v1/proofs/map', body: { subjects: [policy], extra: 1 } },
      { method: 'POST', path: '/v1/events/batch', body: {} },
      { method: 'POST', path: '/v1/events/batch', body: { events: [] } },
      { method: 'POST', path: '/v1/events', body: { v: 1 } },
    ];
    for (const request of cases) {
      const body = request.body === undefined ? undefined : JSON.stringify(request.body);
      const http = await call(`${ledger.url}${request.path}`, {
        method: request.method,
        ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      });
      const answer = await local({ method: request.method, path: request.path, ...(body === undefined ? {} : { body }), timeoutMs: 5000 });
      const inProcess = JSON.parse(answer.body) as { code?: string };
      expect({ request, status: answer.status, code: inProcess.code }).toEqual({ request, status: http.status, code: (http.body as { code?: string }).code });
      expect(answer.status, request.path).toBe(400);
    }
  });

  it('answers an event whose signature does not verify with EVENT_BAD_SIGNATURE', async () => {
    const { ledger } = await seeded();
    const event = newPolicy();
    const forged = { ...event, sigs: event.sigs.map((s) => ({ ...s, sig: flipFirst(s.sig) })) };
    const answer = await post(`${ledger.url}/v1/events`, forged);
    expectProblem(answer, 400, 'EVENT_BAD_SIGNATURE');
    expect((answer.body as { detail: string }).detail).toContain(event.sigs[0]?.kid);
  });

  it('answers unknown subjects with SUBJECT_NOT_FOUND and a proof of absence; a subject not yet there at a past point has no state then', async () => {
    const { ledger, policy, did, laptop } = await seeded();
    for (const subject of [`policy:${nobody()}`, `did:dkms:${nobody()}`]) {
      const answer = await get(`${ledger.url}/v1/${subject.startsWith('policy:') ? 'policies' : 'dids'}/${subject}`);
      expect({ status: answer.status, code: (answer.body as { code?: unknown }).code }).toEqual({ status: 404, code: 'SUBJECT_NOT_FOUND' });
      const body = answer.body as { head: SignedTreeHead; subjects: Record<string, unknown> };
      expect(verifyHeadSignature(body.head)).toBe(true);
      expect(verifyMapProof(mapRootBytes(body.head), mapKey(subject), body.subjects[subject])).toEqual({ ok: true, entry: undefined });
    }
    const before = (await get(`${ledger.url}/v1/dids/${did}?at=1`)).body as { didDocument: unknown; history: LogRecord[] };
    expect(before.didDocument).toBeNull();
    expect(before.history.map((r) => r.gseq)).toEqual([0, 1, 2]);
    expect(((await get(`${ledger.url}/v1/policies/${policy}?time=2000-01-01T00:00:00Z`)).body as { record: unknown }).record).toBeNull();
    const stranger = `policy:${nobody()}` as PolicyAddress;
    const grant = signEvent(nextEvent('policy.grant', stranger, { seq: 0, head: eventId(newPolicy()) }, { agent: testKey().agent(FLAGS.PROVE) }), [laptop]);
    expectProblem(await post(`${ledger.url}/v1/events`, grant), 404, 'SUBJECT_NOT_FOUND');
  });

  it('answers unknown routes with NOT_FOUND', async () => {
    const { ledger } = await seeded();
    expectProblem(await get(`${ledger.url}/v1/nothing-here`), 404, 'NOT_FOUND');
    expectProblem(await get(`${ledger.url}/`), 404, 'NOT_FOUND');
    expectProblem(await get(`${ledger.url}/v1/events`), 404, 'NOT_FOUND');
    expectProblem(await post(`${ledger.url}/v1/head`, {}), 404, 'NOT_FOUND');
    const answer = await get(`${ledger.url}/v2/head?secret=1`);
    expectProblem(answer, 404, 'NOT_FOUND');
    expect((answer.body as { detail: string }).detail).toBe('no route GET /v2/head');
  });

  it('answers bad query parameters and identifiers with BAD_INPUT', async () => {
    const { ledger, policy, did } = await seeded();
    const paths = [
      `/v1/policies/${policy}?at=-1`,
      `/v1/policies/${policy}?at=abc`,
      `/v1/policies/${policy}?at=1.5`,
      `/v1/policies/${policy}?time=yesterday`,
      `/v1/policies/${policy}?time=${'2030-01-01T00:00:00.000Z'.repeat(2)}`,
      `/v1/policies/${policy}?at=1&time=2030-01-01T00:00:00Z`,
      `/v1/dids/${did}?at=1&time=2030-01-01T00:00:00Z`,
      `/v1/policies/${did}`,
      `/v1/dids/${policy}`,
      '/v1/log',
      '/v1/log?from=x',
      '/v1/log?from=-1',
      '/v1/proofs/inclusion',
      '/v1/proofs/inclusion?gseq=3',
      '/v1/proofs/inclusion?gseq=0&size=0',
      '/v1/proofs/inclusion?gseq=0&size=4',
      '/v1/proofs/inclusion?gseq=2&size=2',
      '/v1/proofs/consistency',
      '/v1/proofs/consistency?from=2&to=1',
      '/v1/proofs/consistency?from=0&to=4',
      '/v1/proofs/consistency?from=4',
      // What a lax validator coerces to a number: never a plain integer in range.
      `/v1/policies/${policy}?at=Infinity`,
      `/v1/policies/${policy}?at=1e999`,
      `/v1/policies/${policy}?after=-2`,
      `/v1/dids/${did}?policyAfter=0x1`,
      `/v1/dids/${did}?after=%201`,
      '/v1/log?from=Infinity',
      '/v1/log?from=0&to=1e999',
      '/v1/log?from=1e2',
      '/v1/proofs/inclusion?gseq=Infinity',
      '/v1/proofs/inclusion?gseq=0&size=1e999',
      '/v1/proofs/consistency?from=-Infinity',
      '/v1/head/next?wait=Infinity',
      '/v1/head/next?after=NaN',
      '/v1/head/next?wait=99999999999',
    ];
    for (const path of paths) {
      const answer = await get(`${ledger.url}${path}`);
      expect({ path, status: answer.status }).toEqual({ path, status: 400 });
      expectProblem(answer, 400, 'BAD_INPUT');
    }
  });

  it('answers URLs the router itself refuses (an over-long identifier, bad percent-encoding) with BAD_INPUT problems', async () => {
    const { ledger } = await seeded();
    for (const path of [`/v1/dids/did:dkms:${'x'.repeat(100)}`, `/v1/policies/policy:${'x'.repeat(200)}`, '/v1/dids/%E0%A4%A']) {
      const answer = await get(`${ledger.url}${path}`);
      expect({ path, status: answer.status }).toEqual({ path, status: 400 });
      expectProblem(answer, 400, 'BAD_INPUT');
    }
  });
});

describe('ledger API: request validation in a process of several servers', () => {
  it('compiles each route schema once for the process, and each server still refuses bad requests as its own', async () => {
    const seen: unknown[][] = [];
    const build = sharedValidators.buildValidator;
    const builds = vi.spyOn(sharedValidators, 'buildValidator').mockImplementation((external, options) => {
      const compile = build(external, options);
      const schemas: unknown[] = [];
      seen.push(schemas);
      return (route) => {
        schemas.push(route.schema);
        return compile(route);
      };
    });
    try {
      const first = await seeded();
      const second = await seeded();
      // Each server asked for its validators; the second brought no schema object the first had not.
      expect(seen).toHaveLength(2);
      expect(seen[1]?.length).toBeGreaterThan(0);
      expect(seen[1]).toEqual(seen[0]);
      for (const [a, b] of (seen[0] ?? []).map((schema, i) => [schema, seen[1]?.[i]])) expect(b).toBe(a);
      for (const { ledger, policy } of [first, second]) {
        expectProblem(await get(`${ledger.url}/v1/policies/${policy}?at=abc`), 400, 'BAD_INPUT');
        expectProblem(await get(`${ledger.url}/v1/log?from=1e2`), 400, 'BAD_INPUT');
        expect((await get(`${ledger.url}/v1/policies/${policy}?at=0`)).status).toBe(200);
      }
    } finally {
      builds.mockRestore();
    }
  });
});

describe('ledger API: limits', () => {
  it('refuses a body over 1 MiB with EVENT_TOO_LARGE, and an event over 64 KiB too', async () => {
    const { ledger, laptop, policy } = await seeded();
    const huge = { ...newPolicy(), padding: 'x'.repeat(1024 * 1024 + 1) };
    expectProblem(await post(`${ledger.url}/v1/events`, huge), 413, 'EVENT_TOO_LARGE');
    expectProblem(await post(`${ledger.url}/v1/events/batch`, { events: [huge] }), 413, 'EVENT_TOO_LARGE');

    // Within the body limit, but the canonical event is over 64 KiB.
    const services = Array.from({ length: 32 }, (_, i) => ({ id: `#s${i}`, type: 'LinkedDomains', serviceEndpoint: `http://127.0.0.1/${'a'.repeat(1980)}` }));
    const big = signEvent(didCreate(policy, services), [laptop]);
    expect(JSON.stringify(big).length).toBeGreaterThan(64 * 1024);
    expectProblem(await post(`${ledger.url}/v1/events`, big), 413, 'EVENT_TOO_LARGE');
  });

  it('honours a configured body limit', async () => {
    const ledger = await startLedger(tempDir(), { server: { bodyLimit: 2048 } });
    expect((await post(`${ledger.url}/v1/events`, newPolicy())).status).toBe(201);
    expectProblem(await post(`${ledger.url}/v1/events`, { ...newPolicy(), padding: 'x'.repeat(4096) }), 413, 'EVENT_TOO_LARGE');
  });

  it('rate-limits a burst with RATE_LIMITED', async () => {
    const ledger = await startLedger(tempDir(), { server: { rateLimitPerSecond: 3 } });
    const answers = await Promise.all(Array.from({ length: 12 }, () => get(`${ledger.url}/v1/health`)));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(answers.some((a) => a.status === 200)).toBe(true);
    for (const answer of limited) {
      expectProblem(answer, 429, 'RATE_LIMITED');
      expect(answer.headers.get('retry-after')).not.toBeNull();
    }
  });

  it('limits nothing with a rate limit of 0', async () => {
    const ledger = await startLedger(tempDir(), { server: { rateLimitPerSecond: 0 } });
    const answers = await Promise.all(Array.from({ length: 300 }, () => get(`${ledger.url}/v1/health`)));
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    expect(answers[0]?.headers.get('x-ratelimit-limit')).toBeNull();
  });
});

describe('ledger API: submitting', () => {
  it('accepts an event with 201 and its receipt', async () => {
    const ledger = await startLedger(tempDir());
    const event = newPolicy();
    const answer = await post(`${ledger.url}/v1/events`, event);
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({ id: eventId(event), subject: subjectOf(event), seq: 0, gseq: 0 });
    expect(ledger.node.head().size).toBe(1);
  });

  it('answers a batch with one result per event, in order, each seeing the ones before it', async () => {
    const ledger = await startLedger(tempDir());
    const laptop = testKey();
    const phone = testKey();
    const create = newPolicy(laptop);
    const policy = subjectOf(create) as PolicyAddress;
    const afterCreate = { seq: 0, head: eventId(create) };
    const grant = signEvent(nextEvent('policy.grant', policy, afterCreate, { agent: phone.agent(FLAGS.PROVE) }), [laptop]);
    const rivalGrant = signEvent(nextEvent('policy.grant', policy, afterCreate, { agent: testKey().agent(FLAGS.PROVE) }), [laptop]);
    const byPhone = signEvent(nextEvent('policy.revoke', policy, { seq: 1, head: eventId(grant) }, { key: laptop.multikey }), [phone]);
    const did = signEvent(didCreate(policy), [laptop]);
    const forged = { ...newPolicy(), sigs: create.sigs };
    const events: unknown[] = [create, grant, forged, create, rivalGrant, byPhone, {}, did];

    const answer = await post(`${ledger.url}/v1/events/batch`, { events });
    expect(answer.status).toBe(200);
    const results = (
      answer.body as { results: ({ ok: true; receipt: { gseq: number; subject: string } } | { ok: false; error: { code: string; message: string } })[] }
    ).results;
    expect(results.map((r) => (r.ok ? `ok ${r.receipt.gseq}` : r.error.code))).toEqual([
      'ok 0',
      'ok 1',
      'EVENT_BAD_SIGNATURE',
      'EVENT_REPLAY',
      'EVENT_FORK',
      'EVENT_UNAUTHORIZED',
      'EVENT_MALFORMED',
      'ok 2',
    ]);
    for (const r of results) if (!r.ok) expect(r.error.message.length).toBeGreaterThan(0);
    expect(results[7]).toMatchObject({ ok: true, receipt: { subject: subjectOf(did) } });
    expect(ledger.node.head().size).toBe(3);
    expect(await ledger.node.verify()).toEqual({ events: 3, problems: [] });
  });

  it('leaves the head unchanged when it refuses events', async () => {
    const { ledger, laptop, policy } = await seeded();
    const before = (await get(`${ledger.url}/v1/head`)).body as SignedTreeHead;
    const record = await ledger.node.subject(policy);
    if (record === undefined) throw new Error('policy missing');
    const create = newPolicy();
    const refused: { body: unknown; code: string; status: number }[] = [
      { body: { v: 1 }, code: 'EVENT_MALFORMED', status: 400 },
      { body: { ...create, sigs: create.sigs.map((s) => ({ ...s, sig: flipFirst(s.sig) })) }, code: 'EVENT_BAD_SIGNATURE', status: 400 },
      { body: signEvent(nextEvent('policy.revoke', policy, record, { key: laptop.multikey }), [testKey()]), code: 'EVENT_UNAUTHORIZED', status: 403 },
      {
        body: signEvent(nextEvent('policy.revoke', policy, { ...record, seq: record.seq + 1 }, { key: laptop.multikey }), [laptop]),
        code: 'EVENT_SEQ_GAP',
        status: 409,
      },
      { body: signEvent(nextEvent('policy.revoke', policy, record, { key: laptop.multikey }), [laptop]), code: 'EVENT_LOCKOUT', status: 422 },
      { body: signEvent(didCreate(`policy:${nobody()}` as PolicyAddress), [laptop]), code: 'POLICY_NOT_FOUND', status: 404 },
    ];
    for (const { body, code, status } of refused) expectProblem(await post(`${ledger.url}/v1/events`, body), status, code);
    const batch = await post(`${ledger.url}/v1/events/batch`, { events: refused.map((r) => r.body) });
    expect((batch.body as { results: { ok: boolean }[] }).results.every((r) => !r.ok)).toBe(true);

    expect((await get(`${ledger.url}/v1/head`)).body).toEqual(before);
    expect(((await get(`${ledger.url}/v1/health`)).body as { size: number }).size).toBe(3);
    expect(await ledger.node.verify()).toEqual({ events: 3, problems: [] });
  });

  it('accepts the same event once: a replay is refused with EVENT_REPLAY', async () => {
    const ledger = await startLedger(tempDir());
    const event: LedgerEvent = newPolicy();
    expect((await post(`${ledger.url}/v1/events`, event)).status).toBe(201);
    const head = ledger.node.head();
    expectProblem(await post(`${ledger.url}/v1/events`, event), 409, 'EVENT_REPLAY');
    expect(ledger.node.head()).toEqual(head);
  });
});
