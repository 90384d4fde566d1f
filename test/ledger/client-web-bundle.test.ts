/**
 * The dashboard's verifier is the ledger client itself, built for the browser (web/shared/verify.ts
 * with crypto/web/platform.ts: every digest and signature check by WebCrypto). Here that very
 * bundle runs in Node, whose WebCrypto and fetch are the browser's APIs, against a real node and
 * a lying proxy: the browser's code path is checked before any browser starts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import { subjectOf, type Did, type PolicyAddress, type Subject } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { signHead, type ServedHead } from '../../src/ledger/head.js';
import { commitment, testKey, type TestKey } from '../helpers/ledger.js';
import { clone, flipFirst, startLedger, startProxy, type Lie, type RunningLedger } from '../helpers/lying.js';
import { suiteDirs, tempDir } from '../helpers/tmp.js';
// @ts-expect-error: a build script in JavaScript, without declarations
import { buildWeb } from '../../scripts/build-web.mjs';

type Verify = typeof import('../../web/shared/verify.js');

let web: Verify;
let bundle: string;
const buildDir = suiteDirs('dkms-web-bundle-');

beforeAll(async () => {
  const out = buildDir();
  await (buildWeb as (o: { outDir: string; lib: string }) => Promise<void>)({ outDir: out, lib: join(process.cwd(), 'web', 'shared', 'verify.ts') });
  const file = join(out, 'bundle.js');
  bundle = readFileSync(file, 'utf8');
  web = (await import(pathToFileURL(file).href)) as Verify;
});

interface Answer {
  head: ServedHead;
  subjects: Record<string, unknown>;
  history: LogRecord[];
  proofs: string[][];
}

async function latest(node: LedgerNode, subject: Subject): Promise<{ seq: number; head: string }> {
  const record = await node.subject(subject);
  if (record === undefined) throw new Error(`${subject} missing`);
  return record;
}

/** A policy with a laptop, a tablet granted and then revoked, a recovery commitment; a DID, updated. */
async function world(): Promise<{ ledger: RunningLedger; policy: PolicyAddress; did: Did; laptop: TestKey }> {
  const ledger = await startLedger(tempDir(), { node: { headIntervalMs: 0 } });
  const laptop = testKey();
  const tablet = testKey();
  const policy = (await ledger.node.submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))).subject as PolicyAddress;
  const did = (await ledger.node.submit(signEvent(didCreate(policy, []), [laptop]))).subject as Did;
  await ledger.node.submit(signEvent(nextEvent('policy.grant', policy, await latest(ledger.node, policy), { agent: tablet.agent(FLAGS.PROVE) }), [laptop]));
  await ledger.node.submit(signEvent(nextEvent('did.update', did, await latest(ledger.node, did), { services: [] }), [laptop]));
  await ledger.node.submit(signEvent(nextEvent('policy.revoke', policy, await latest(ledger.node, policy), { key: tablet.multikey }), [laptop]));
  return { ledger, policy, did, laptop };
}

const reads: (alter: (body: Answer) => unknown) => Lie =
  (alter) =>
  ({ path, status, body }) =>
    status === 200 && /^\/v1\/(policies|dids)\//.test(path) ? { body: alter(clone(body as Answer)) } : undefined;

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'resolved';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

describe("the dashboard's verifier, built for the browser and run on Node's WebCrypto", () => {
  it('holds no Node module and no hash or curve code of its own: WebCrypto does that work', () => {
    expect(bundle).not.toMatch(/from ["']node:|require\(["']node:/);
    // SHA-256's first round constant (0x428a2f98) appears in any JavaScript SHA-256.
    expect(bundle).not.toMatch(/0x428a2f98|1116352408/i);
    expect(bundle).toContain('crypto.subtle.digest');
    expect(bundle).toContain('crypto.subtle.verify');
  });

  it('passes its WebCrypto self-test', async () => {
    expect(await web.checkWebCrypto()).toEqual({ ok: true });
  });

  it('verifies an honest answer: the head, a policy with its grant and revocation, a DID with its update', async () => {
    const w = await world();
    const client = new web.LedgerClient({ url: w.ledger.url, trustedKeys: [w.ledger.signer.multikey], fetch });
    const head = await client.head();
    expect(head.size).toBe(5);
    const policy = await client.resolvePolicy(w.policy);
    expect(policy.history.map((r) => r.event.type)).toEqual(['policy.create', 'policy.grant', 'policy.revoke']);
    expect(policy.record.policy.agents).toHaveLength(1);
    const did = await client.resolveDidRecord(w.did);
    expect(did.history.map((r) => `${subjectOf(r.event) === w.did ? 'did' : 'policy'} ${r.event.type}`)).toEqual([
      'policy policy.create',
      'did did.create',
      'policy policy.grant',
      'did did.update',
      'policy policy.revoke',
    ]);
    // Read again after a new event: the cached, verified state is extended by the new event alone.
    await w.ledger.node.submit(signEvent(nextEvent('did.update', w.did, await latest(w.ledger.node, w.did), { services: [] }), [w.laptop]));
    expect((await client.resolveDidRecord(w.did)).history).toHaveLength(6);
  });

  const lies: [string, (w: { ledger: RunningLedger }) => Lie, string][] = [
    [
      'a head signed by another key',
      () => {
        const other = testKey();
        return ({ path, status, body }) => {
          if (status !== 200 || !(path === '/v1/head' || /^\/v1\/(policies|dids)\//.test(path))) return undefined;
          const answer = clone(body) as { head?: ServedHead } & ServedHead;
          const head = answer.head ?? answer;
          const forged = signHead(head, other);
          return { body: answer.head === undefined ? forged : { ...answer, head: forged } };
        };
      },
      'LEDGER_BAD_HEAD',
    ],
    [
      'an event with one byte changed',
      () =>
        reads((body) => {
          const record = body.history[1] as LogRecord;
          (record as { time: string }).time = new Date(Date.parse(record.time) + 1000).toISOString();
          return body;
        }),
      'LEDGER_BAD_PROOF',
    ],
    [
      'an inclusion proof with a flipped hash',
      () =>
        reads((body) => {
          body.proofs[0] = (body.proofs[0] ?? []).map((p, i) => (i === 0 ? flipFirst(p) : p));
          return body;
        }),
      'LEDGER_BAD_PROOF',
    ],
    [
      'the newest event left out',
      () =>
        reads((body) => {
          body.history.pop();
          body.proofs.pop();
          return body;
        }),
      'LEDGER_INCOMPLETE',
    ],
    [
      'a map proof with a flipped sibling',
      () =>
        reads((body) => {
          for (const proof of Object.values(body.subjects) as { siblings: (string | null)[] }[]) {
            const at = proof.siblings.findIndex((s) => s !== null);
            if (at >= 0) proof.siblings[at] = flipFirst(proof.siblings[at] as string);
          }
          return body;
        }),
      'LEDGER_BAD_MAP_PROOF',
    ],
  ];

  for (const [what, lie, code] of lies) {
    it(`refuses ${what}: ${code}`, async () => {
      const w = await world();
      const proxy = await startProxy(w.ledger.url, lie(w));
      const client = new web.LedgerClient({ url: proxy.url, trustedKeys: [w.ledger.signer.multikey], fetch });
      expect(await codeOf(client.resolveDidRecord(w.did))).toBe(code);
    });
  }

  it('refuses proven events served out of log order: LEDGER_BAD_CHAIN', async () => {
    const w = await world();
    const proxy = await startProxy(
      w.ledger.url,
      reads((body) => {
        body.history.reverse();
        body.proofs.reverse();
        return body;
      }),
    );
    const client = new web.LedgerClient({ url: proxy.url, trustedKeys: [w.ledger.signer.multikey], fetch });
    expect(await codeOf(client.resolvePolicy(w.policy))).toBe('LEDGER_BAD_CHAIN');
  });
});
