/**
 * The verifier API (src/policy/verify.ts): was a signature made by an agent holding PROVE in the
 * owner's policy at the time it claims? The policy history is built as the ledger client builds
 * it, by replaying the accepted records, on a node whose clock the test controls so that every
 * event has its own ledger time.
 */
import fc from 'fast-check';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, utf8 } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { LedgerEvent, PolicyAddress } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { verifyAgentSignature, type AgentSignatureResult, type PolicyHistory, type VerifyFailure } from '../../src/policy/verify.js';
import { policyHistory, policyRecord } from '../helpers/events.js';
import { commitment, nodeSigner, openNode, testKey, type TestKey } from '../helpers/ledger.js';

const { PROVE, PROVE_GRANT } = FLAGS;
const START = Date.UTC(2030, 0, 1);
const STEP = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

const admin = testKey(); // ALL_FLAGS, from the start until the recovery
const granter = testKey(); // PROVE_GRANT only, from the start
const phone = testKey(); // PROVE at T1, revoked at T4, PROVE again at T6
const tablet = testKey(); // PROVE_GRANT only, from T2
const watch = testKey(); // PROVE at T3, loses PROVE at T5
const fresh = testKey(); // the only agent after the recovery at T7
const outsider = testKey();
const recovery = testKey();
const KEYS = { admin, granter, phone, tablet, watch, fresh, outsider };

/**
 * The flags each key holds after each event, written out by hand from the scenario: the
 * oracle the verifier's answers are checked against.
 */
const TIMELINE: readonly Readonly<Partial<Record<keyof typeof KEYS, number>>>[] = [
  { admin: ALL_FLAGS, granter: PROVE_GRANT }, // T0 policy.create
  { admin: ALL_FLAGS, granter: PROVE_GRANT, phone: PROVE }, // T1 grant phone
  { admin: ALL_FLAGS, granter: PROVE_GRANT, phone: PROVE, tablet: PROVE_GRANT }, // T2 grant tablet
  { admin: ALL_FLAGS, granter: PROVE_GRANT, phone: PROVE, tablet: PROVE_GRANT, watch: PROVE }, // T3 grant watch
  { admin: ALL_FLAGS, granter: PROVE_GRANT, tablet: PROVE_GRANT, watch: PROVE }, // T4 revoke phone
  { admin: ALL_FLAGS, granter: PROVE_GRANT, tablet: PROVE_GRANT, watch: 0 }, // T5 watch loses PROVE
  { admin: ALL_FLAGS, granter: PROVE_GRANT, tablet: PROVE_GRANT, watch: 0, phone: PROVE }, // T6 phone again
  { fresh: ALL_FLAGS }, // T7 policy.recover replacing every agent
];
const T = TIMELINE.map((_, i) => START + i * STEP);
const at = (i: number, offset = 0) => iso((T[i] as number) + offset);

function expected(name: keyof typeof KEYS, time: number, signatureValid: boolean): VerifyFailure | 'VALID' {
  const index = T.findLastIndex((t) => t <= time);
  if (index < 0) return 'BEFORE_POLICY';
  const flags = TIMELINE[index]?.[name];
  if (flags === undefined) return TIMELINE.slice(0, index).some((s) => s[name] !== undefined) ? 'REVOKED' : 'NOT_AN_AGENT';
  if ((flags & (FLAGS.ADMIN | PROVE)) === 0) return 'NOT_PROVE';
  return signatureValid ? 'VALID' : 'BAD_SIGNATURE';
}

const verdict = (result: AgentSignatureResult) => (result.valid ? 'VALID' : result.reason);

describe('verifyAgentSignature over a policy history from the ledger', () => {
  let t = START;
  let dir: string;
  let node: LedgerNode;
  let policy: PolicyAddress;
  let history: PolicyHistory;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkms-verify-'));
    node = await openNode(dir, nodeSigner(), { now: () => t });
    const submit = async (event: LedgerEvent, i: number) => {
      t = T[i] as number;
      const receipt = await node.submit(event);
      expect(receipt.time).toBe(at(i));
      return receipt;
    };
    policy = (await submit(signEvent(policyCreate([admin.agent(ALL_FLAGS), granter.agent(PROVE_GRANT)], commitment([recovery])), [admin, granter]), 0))
      .subject as PolicyAddress;
    const next = async (type: 'policy.grant' | 'policy.revoke' | 'policy.recover', body: Record<string, unknown>, signers: TestKey[], i: number) =>
      submit(signEvent(nextEvent(type, policy, await policyRecord(node, policy), body), signers), i);
    await next('policy.grant', { agent: phone.agent(PROVE) }, [granter], 1);
    await next('policy.grant', { agent: tablet.agent(PROVE_GRANT) }, [admin], 2);
    await next('policy.grant', { agent: watch.agent(PROVE) }, [granter], 3);
    await next('policy.revoke', { key: phone.multikey }, [admin], 4);
    await next('policy.grant', { agent: watch.agent(0) }, [admin], 5);
    await next('policy.grant', { agent: phone.agent(PROVE) }, [tablet], 6);
    await next('policy.recover', { next: commitment([testKey()]), agents: [fresh.agent(ALL_FLAGS)] }, [recovery, fresh], 7);
    history = await policyHistory(node, policy);
  });

  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const message = utf8('hello from the owner');
  const claim = (key: TestKey, time: string, overrides: { message?: Uint8Array; signature?: Uint8Array; key?: string } = {}) => ({
    key: overrides.key ?? key.multikey,
    message: overrides.message ?? message,
    signature: overrides.signature ?? key.sign(overrides.message ?? message),
    time,
  });

  it('has one entry per policy event, at its ledger time, matching the scenario', () => {
    expect(history.map((h) => h.time)).toEqual(T.map((x) => iso(x)));
    history.forEach((entry, i) => {
      const want = Object.entries(TIMELINE[i] ?? {})
        .map(([name, flags]) => [KEYS[name as keyof typeof KEYS].multikey, flags])
        .sort();
      expect(entry.policy.agents.map((a) => [a.key, a.flags]).sort()).toEqual(want);
    });
  });

  it('accepts a PROVE agent signing at or after its grant, naming the agent and the policy time used', () => {
    for (const time of [at(1), at(1, 1), at(3, 30_000), at(4, -1)]) {
      const result = verifyAgentSignature(history, claim(phone, time));
      expect(result.valid, time).toBe(true);
      if (result.valid) {
        expect(result.agent).toEqual(phone.agent(PROVE));
        expect(result.asOf).toBe(history.findLast((h) => h.time <= time)?.time);
      }
    }
    // ADMIN implies PROVE.
    expect(verdict(verifyAgentSignature(history, claim(admin, at(0))))).toBe('VALID');
    expect(verdict(verifyAgentSignature(history, claim(fresh, at(7, 1))))).toBe('VALID');
  });

  it('BEFORE_POLICY for a time before the policy existed', () => {
    for (const time of [at(0, -1), '2000-01-01T00:00:00.000Z', '1970-01-01T00:00:00Z']) {
      expect(verdict(verifyAgentSignature(history, claim(admin, time))), time).toBe('BEFORE_POLICY');
    }
    expect(verdict(verifyAgentSignature([], claim(admin, at(3))))).toBe('BEFORE_POLICY');
  });

  it('NOT_AN_AGENT for a key that never was one, or not yet', () => {
    expect(verdict(verifyAgentSignature(history, claim(outsider, at(3))))).toBe('NOT_AN_AGENT');
    expect(verdict(verifyAgentSignature(history, claim(phone, at(0, 1))))).toBe('NOT_AN_AGENT');
    expect(verdict(verifyAgentSignature(history, claim(phone, at(1, -1))))).toBe('NOT_AN_AGENT');
    expect(verdict(verifyAgentSignature(history, claim(fresh, at(6))))).toBe('NOT_AN_AGENT');
  });

  it('REVOKED for a signature dated at or after the revocation; one dated before it still verifies', () => {
    expect(verdict(verifyAgentSignature(history, claim(phone, at(4, -1))))).toBe('VALID');
    expect(verdict(verifyAgentSignature(history, claim(phone, at(4))))).toBe('REVOKED');
    expect(verdict(verifyAgentSignature(history, claim(phone, at(5, 10))))).toBe('REVOKED');
    // Granted again, then shut out by the recovery.
    expect(verdict(verifyAgentSignature(history, claim(phone, at(6))))).toBe('VALID');
    expect(verdict(verifyAgentSignature(history, claim(phone, at(7))))).toBe('REVOKED');
    expect(verdict(verifyAgentSignature(history, claim(admin, at(7, -1))))).toBe('VALID');
    expect(verdict(verifyAgentSignature(history, claim(admin, at(7))))).toBe('REVOKED');
    expect(verdict(verifyAgentSignature(history, claim(admin, '2099-12-31T23:59:59.999Z')))).toBe('REVOKED');
  });

  it('NOT_PROVE for an agent without PROVE, or after PROVE was taken away', () => {
    expect(verdict(verifyAgentSignature(history, claim(granter, at(0))))).toBe('NOT_PROVE');
    expect(verdict(verifyAgentSignature(history, claim(tablet, at(2, 5))))).toBe('NOT_PROVE');
    expect(verdict(verifyAgentSignature(history, claim(watch, at(5, -1))))).toBe('VALID');
    expect(verdict(verifyAgentSignature(history, claim(watch, at(5))))).toBe('NOT_PROVE');
  });

  it('BAD_SIGNATURE for a signature over another message, by another key, altered or of the wrong length', () => {
    const time = at(3);
    const good = phone.sign(message);
    const flipped = Uint8Array.from(good, (b, i) => (i === 10 ? b ^ 1 : b));
    for (const signature of [
      phone.sign(utf8('another message')),
      watch.sign(message),
      flipped,
      good.slice(0, 63),
      new Uint8Array([...good, 0]),
      new Uint8Array(64),
      new Uint8Array(),
    ]) {
      expect(verdict(verifyAgentSignature(history, claim(phone, time, { signature })))).toBe('BAD_SIGNATURE');
    }
    expect(verdict(verifyAgentSignature(history, claim(phone, time, { message: utf8('hello from the owner!'), signature: good })))).toBe('BAD_SIGNATURE');
  });

  it('BAD_KEY for a key that is not an Ed25519 public key', () => {
    for (const key of [phone.kx, '', 'garbage', phone.multikey.slice(0, -2), phone.multikey.slice(1), `${phone.multikey}1`]) {
      expect(verdict(verifyAgentSignature(history, claim(phone, at(3), { key }))), key).toBe('BAD_KEY');
    }
  });

  it('reads the claimed time in any ISO 8601 offset', () => {
    const local = new Date((T[4] as number) - 1).toISOString().replace('Z', '+00:00');
    expect(verdict(verifyAgentSignature(history, claim(phone, local)))).toBe('VALID');
    const paris = '2030-01-01T01:04:00+01:00'; // T4 exactly
    expect(verdict(verifyAgentSignature(history, claim(phone, paris)))).toBe('REVOKED');
  });

  it('agrees with the scenario for every key at random times, with good and bad signatures', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...(Object.keys(KEYS) as (keyof typeof KEYS)[])),
        fc.integer({ min: START - 2 * STEP, max: START + TIMELINE.length * STEP }),
        fc.boolean(),
        fc.uint8Array({ maxLength: 64 }),
        (name, time, good, text) => {
          const key = KEYS[name];
          const signature = good ? key.sign(text) : outsider.sign(randomBytes(8));
          const result = verifyAgentSignature(history, { key: key.multikey, message: text, signature, time: iso(time) });
          expect(verdict(result)).toBe(expected(name, time, good));
          if (result.valid) expect(result.asOf).toBe(iso(T.findLast((x) => x <= time) as number));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses an unparseable claimed time without throwing a RangeError', () => {
    for (const time of ['yesterday', '', '2030-13-45T00:00:00Z']) {
      let result: AgentSignatureResult | undefined;
      try {
        result = verifyAgentSignature(history, claim(phone, time));
      } catch (e) {
        expect(e, time).toBeInstanceOf(DkmsError);
        continue;
      }
      expect(result.valid, time).toBe(false);
    }
  });

  it('judges a signature dated after year 9999 by the latest policy', () => {
    // As text, '+010000-01-01T00:00:00.000Z' sorts before every '2030-…' ledger time: compare instants.
    expect(verdict(verifyAgentSignature(history, claim(fresh, '+010000-01-01T00:00:00.000Z')))).toBe('VALID');
  });
});
