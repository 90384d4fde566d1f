/**
 * Pre-rotation (docs/ledger.md "Flags, rules, pre-rotation"): only the
 * committed recovery keys can sign policy.recover, each works once, the next keys are committed
 * as the current ones are revealed, no agent (however many sign) can touch the commitment, and a
 * recovery that replaces the agents shuts the old ones out.
 */
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, LedgerEvent, PolicyAddress } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { applyPolicyChange as applyAt, recoveryKeyDigest } from '../../src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import type { Agent, PolicyRules, RecoveryCommitment, Rules } from '../../src/policy/types.js';
import { codeOf, didRecord, expectRefused, policyRecord } from '../helpers/events.js';
import { commitment, openNode, testKey, type TestKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

/** These tests are about authority, not time: every change at one fixed ledger time. */
const applyPolicyChange = (...args: Parameters<typeof applyAt> extends [infer S, infer C, infer K, string] ? [S, C, K] : never) =>
  applyAt(...args, '2026-01-01T00:00:00.000Z');

const { ADMIN, PROVE } = FLAGS;

interface Owner {
  readonly node: LedgerNode;
  readonly policy: PolicyAddress;
  readonly did: Did;
  readonly laptop: TestKey; // ALL_FLAGS
  readonly phone: TestKey; // ADMIN
  readonly watch: TestKey; // PROVE
}

/** A node with an owner's policy (three agents, recovery committed as given) and one DID. */
async function owner(recovery: RecoveryCommitment): Promise<Owner> {
  const node = await openNode(tempDir());
  onTestFinished(() => node.close());
  const [laptop, phone, watch] = [testKey(), testKey(), testKey()] as const;
  const agents = [laptop.agent(ALL_FLAGS), phone.agent(ADMIN), watch.agent(PROVE)];
  const policy = (await node.submit(signEvent(policyCreate(agents, recovery), [laptop, phone, watch]))).subject as PolicyAddress;
  const did = (await node.submit(signEvent(didCreate(policy, []), [laptop]))).subject as Did;
  return { node, policy, did, laptop, phone, watch };
}

async function recoverEvent(o: Owner, body: { next: RecoveryCommitment; agents?: Agent[]; rules?: Rules }, signers: readonly TestKey[]): Promise<LedgerEvent> {
  return signEvent(nextEvent('policy.recover', o.policy, await policyRecord(o.node, o.policy), body), signers);
}

async function policyNow(o: Owner): Promise<PolicyRules> {
  return (await policyRecord(o.node, o.policy)).policy;
}

describe('pre-rotation through a ledger node', () => {
  it('no agent key can sign policy.recover: not an ADMIN, not every agent together', async () => {
    const [r1, r2, other] = [testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r1]));
    const next = commitment([r2]);
    await expectRefused(o.node, await recoverEvent(o, { next }, [o.laptop]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next }, [o.laptop, o.phone, o.watch]), 'EVENT_UNAUTHORIZED');
    // Naming themselves as the new agents only proves possession: no recovery key signed.
    const themselves = [o.laptop.agent(ALL_FLAGS), o.phone.agent(ADMIN), o.watch.agent(PROVE)];
    await expectRefused(o.node, await recoverEvent(o, { next, agents: themselves }, [o.laptop, o.phone, o.watch]), 'EVENT_THRESHOLD');
    // The committed key with an agent beside it: the agent's signature is refused, not ignored.
    await expectRefused(o.node, await recoverEvent(o, { next }, [r1, o.laptop]), 'EVENT_UNAUTHORIZED');
    // Another key that is no agent, and the next (committed-to-be) key, cannot either.
    await expectRefused(o.node, await recoverEvent(o, { next }, [other]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next }, [r2]), 'EVENT_UNAUTHORIZED');
    expect((await policyNow(o)).recovery).toEqual(commitment([r1]));
  });

  it('no other event carries or changes the recovery commitment', async () => {
    const [r1, r2] = [testKey(), testKey()] as const;
    const o = await owner(commitment([r1]));
    const record = await policyRecord(o.node, o.policy);
    const everyone = [o.laptop, o.phone];
    const rules: Rules = { grant: 1, revoke: 1, rules: 1, did: 1 };
    await expectRefused(
      o.node,
      signEvent({ ...nextEvent('policy.rules', o.policy, record, { rules }), recovery: commitment([r2]) } as never, everyone),
      'EVENT_MALFORMED',
    );
    await expectRefused(
      o.node,
      signEvent({ ...nextEvent('policy.grant', o.policy, record, { agent: r2.agent(PROVE) }), recovery: commitment([r2]) } as never, everyone),
      'EVENT_MALFORMED',
    );
    await expectRefused(
      o.node,
      signEvent({ ...nextEvent('policy.grant', o.policy, record, { agent: r2.agent(PROVE) }), next: commitment([r2]) } as never, everyone),
      'EVENT_MALFORMED',
    );
    await o.node.submit(signEvent(nextEvent('policy.rules', o.policy, record, { rules: { ...rules, rules: 2 } }), everyone));
    await o.node.submit(signEvent(nextEvent('policy.revoke', o.policy, await policyRecord(o.node, o.policy), { key: o.watch.multikey }), everyone));
    expect((await policyNow(o)).recovery).toEqual(commitment([r1]));
    expect((await policyNow(o)).revealed).toEqual([]);
  });

  it('the committed recovery key signs policy.recover once, committing the next key; reusing it is refused', async () => {
    const [r1, r2, r3] = [testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r1]));
    const before = await policyNow(o);
    const recovered = await recoverEvent(o, { next: commitment([r2]) }, [r1]);
    await o.node.submit(recovered);
    const after = await policyNow(o);
    expect(after.recovery).toEqual(commitment([r2]));
    expect(after.revealed).toEqual([recoveryKeyDigest(r1.multikey)]);
    expect(after.agents).toEqual(before.agents);
    expect(after.rules).toEqual(before.rules);

    await expectRefused(o.node, recovered, 'EVENT_REPLAY');
    // r1 is revealed: it no longer signs a recovery, as itself or dressed as a new agent.
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([r3]) }, [r1]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([r3]), agents: [r1.agent(ALL_FLAGS)] }, [r1]), 'EVENT_THRESHOLD');
    // ...and can never be committed again, alone or beside fresh keys.
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([r1]) }, [r2]), 'EVENT_RECOVERY_KEY_REUSED');
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([r3, r1]) }, [r2]), 'EVENT_RECOVERY_KEY_REUSED');
    // Nor can the key being revealed commit itself.
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([r2]) }, [r2]), 'EVENT_RECOVERY_KEY_REUSED');
    await o.node.submit(await recoverEvent(o, { next: commitment([r3]) }, [r2]));
    expect((await policyNow(o)).revealed).toEqual([recoveryKeyDigest(r1.multikey), recoveryKeyDigest(r2.multikey)].sort());
    expect((await o.node.reindex(false)).differences).toEqual([]);
  });

  it('a recovery key cannot act as an agent', async () => {
    const r1 = testKey();
    const o = await owner(commitment([r1]));
    const record = await policyRecord(o.node, o.policy);
    await expectRefused(o.node, signEvent(nextEvent('policy.grant', o.policy, record, { agent: r1.agent(ALL_FLAGS) }), [r1]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, signEvent(nextEvent('policy.revoke', o.policy, record, { key: o.laptop.multikey }), [r1]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, signEvent(nextEvent('did.deactivate', o.did, await didRecord(o.node, o.did), {}), [r1]), 'EVENT_UNAUTHORIZED');
  });

  it('a 2-of-3 recovery commitment needs two distinct committed keys, reveals exactly those that signed', async () => {
    const [k1, k2, k3, k4, k5] = [testKey(), testKey(), testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([k1, k2, k3], 2));
    const next = commitment([k4, k5], 2);
    await expectRefused(o.node, await recoverEvent(o, { next }, [k1]), 'EVENT_THRESHOLD');
    await expectRefused(o.node, await recoverEvent(o, { next }, [k1, k1]), 'EVENT_MALFORMED');
    await expectRefused(o.node, await recoverEvent(o, { next }, [k1, o.laptop]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next }, [k1, k4]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([k4, k1], 2) }, [k1, k2]), 'EVENT_RECOVERY_KEY_REUSED');
    // The unrevealed third key may stay committed.
    await o.node.submit(await recoverEvent(o, { next: commitment([k3, k4, k5], 2) }, [k2, k1]));
    expect((await policyNow(o)).revealed).toEqual([k1, k2].map((k) => recoveryKeyDigest(k.multikey)).sort());
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([testKey()]) }, [k1, k2]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([testKey()]) }, [k3]), 'EVENT_THRESHOLD');
    // All three committed keys may sign: each is revealed.
    const k6 = testKey();
    await o.node.submit(await recoverEvent(o, { next: commitment([k6]) }, [k3, k4, k5]));
    expect((await policyNow(o)).revealed).toEqual([k1, k2, k3, k4, k5].map((k) => recoveryKeyDigest(k.multikey)).sort());
    expect((await policyNow(o)).recovery).toEqual(commitment([k6]));
  });

  it('a recovery that replaces the agents needs every new agent to sign, and shuts the old agents out', async () => {
    const [r1, r2, fresh, freshWatch] = [testKey(), testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r1]));
    const agents = [fresh.agent(ALL_FLAGS), freshWatch.agent(PROVE)];
    const next = commitment([r2]);
    await expectRefused(o.node, await recoverEvent(o, { next, agents }, [r1]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next, agents }, [r1, fresh]), 'EVENT_UNAUTHORIZED');
    await expectRefused(o.node, await recoverEvent(o, { next, agents }, [fresh, freshWatch]), 'EVENT_THRESHOLD');
    await expectRefused(o.node, await recoverEvent(o, { next, agents: [freshWatch.agent(PROVE)] }, [r1, freshWatch]), 'EVENT_LOCKOUT');
    await expectRefused(
      o.node,
      await recoverEvent(o, { next, agents, rules: { grant: 2, revoke: 1, rules: 1, did: 1 } }, [r1, fresh, freshWatch]),
      'EVENT_LOCKOUT',
    );
    await expectRefused(o.node, await recoverEvent(o, { next, agents: [fresh.agent(ALL_FLAGS), fresh.agent(PROVE)] }, [r1, fresh]), 'EVENT_INVALID');
    const rules: Rules = { grant: 1, revoke: 1, rules: 1, did: 1 };
    await o.node.submit(await recoverEvent(o, { next, agents, rules }, [freshWatch, r1, fresh]));
    const policy = await policyNow(o);
    expect(policy.agents).toEqual([...agents].sort((a, b) => (a.key < b.key ? -1 : 1)));
    expect(policy.rules).toEqual(rules);

    // The old agents, even the ADMINs together, can do nothing any more.
    const record = await policyRecord(o.node, o.policy);
    const did = await didRecord(o.node, o.did);
    for (const old of [[o.laptop], [o.phone], [o.laptop, o.phone]]) {
      await expectRefused(o.node, signEvent(nextEvent('policy.grant', o.policy, record, { agent: o.watch.agent(PROVE) }), old), 'EVENT_UNAUTHORIZED');
      await expectRefused(o.node, signEvent(nextEvent('policy.revoke', o.policy, record, { key: fresh.multikey }), old), 'EVENT_UNAUTHORIZED');
      await expectRefused(o.node, signEvent(nextEvent('policy.rules', o.policy, record, { rules }), old), 'EVENT_UNAUTHORIZED');
      await expectRefused(o.node, signEvent(nextEvent('did.update', o.did, did, { services: [] }), old), 'EVENT_UNAUTHORIZED');
      await expectRefused(o.node, signEvent(didCreate(o.policy, []), old), 'EVENT_UNAUTHORIZED');
      await expectRefused(o.node, await recoverEvent(o, { next: commitment([testKey()]) }, old), 'EVENT_UNAUTHORIZED');
    }
    // The new device acts for the owner.
    await o.node.submit(signEvent(nextEvent('did.update', o.did, did, { services: [] }), [fresh]));
    await o.node.submit(signEvent(nextEvent('policy.grant', o.policy, record, { agent: o.watch.agent(PROVE) }), [fresh]));
    expect((await o.node.verify()).problems).toEqual([]);
  });

  it('a thief with an ADMIN device can revoke the owner, but not stop the recovery key taking the policy back', async () => {
    const [r1, r2, newPhone] = [testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r1]));
    const thief = o.phone;
    await o.node.submit(signEvent(nextEvent('policy.revoke', o.policy, await policyRecord(o.node, o.policy), { key: o.laptop.multikey }), [thief]));
    await expectRefused(o.node, await recoverEvent(o, { next: commitment([testKey()]), agents: [thief.agent(ALL_FLAGS)] }, [thief]), 'EVENT_THRESHOLD');
    await o.node.submit(await recoverEvent(o, { next: commitment([r2]), agents: [newPhone.agent(ALL_FLAGS)] }, [r1, newPhone]));
    await expectRefused(
      o.node,
      signEvent(nextEvent('policy.revoke', o.policy, await policyRecord(o.node, o.policy), { key: newPhone.multikey }), [thief]),
      'EVENT_UNAUTHORIZED',
    );
    expect((await policyNow(o)).agents.map((a) => a.key)).toEqual([newPhone.multikey]);
  });

  it('a run of recoveries: each key works exactly once, in order, and every revealed key stays refused', async () => {
    const keys = Array.from({ length: 6 }, () => testKey());
    const o = await owner(commitment([keys[0] as TestKey]));
    for (let i = 1; i < keys.length; i++) {
      const current = keys[i - 1] as TestKey;
      const next = keys[i] as TestKey;
      for (const old of keys.slice(0, i - 1)) {
        await expectRefused(o.node, await recoverEvent(o, { next: commitment([next]) }, [old]), 'EVENT_UNAUTHORIZED');
        await expectRefused(o.node, await recoverEvent(o, { next: commitment([old]) }, [current]), 'EVENT_RECOVERY_KEY_REUSED');
      }
      await o.node.submit(await recoverEvent(o, { next: commitment([next]) }, [current]));
    }
    expect((await policyNow(o)).revealed).toEqual(
      keys
        .slice(0, -1)
        .map((k) => recoveryKeyDigest(k.multikey))
        .sort(),
    );
    expect((await o.node.reindex(false)).differences).toEqual([]);
  });
});

describe('pre-rotation in applyPolicyChange', () => {
  const agent = testKey();
  const recoveryKeys = Array.from({ length: 4 }, () => testKey());
  const fresh = testKey();

  it('m-of-n recovery keys: any m distinct committed keys recover, fewer get EVENT_THRESHOLD, and exactly the signers are revealed', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n }), fc.subarray(recoveryKeys.slice(0, n)))),
        ([n, m, signing]) => {
          const committed = recoveryKeys.slice(0, n);
          const state = applyPolicyChange(
            undefined,
            { type: 'policy.create', agents: [agent.agent(ALL_FLAGS)], recovery: commitment(committed, m) },
            new Set([agent.multikey]),
          );
          const signers = new Set(signing.map((k) => k.multikey));
          let next: PolicyRules | undefined;
          const code = codeOf(() => (next = applyPolicyChange(state, { type: 'policy.recover', next: commitment([fresh]) }, signers)));
          expect(code).toBe(signing.length >= m ? 'ACCEPTED' : 'EVENT_THRESHOLD');
          const after = next;
          if (after !== undefined) {
            expect(after.revealed).toEqual(signing.map((k) => recoveryKeyDigest(k.multikey)).sort());
            expect(after.recovery).toEqual(commitment([fresh]));
            expect(after.agents).toEqual(state.agents);
            // Every key just revealed is refused in the next commitment; the unrevealed ones are not.
            for (const key of committed) {
              const again = codeOf(() => applyPolicyChange(after, { type: 'policy.recover', next: commitment([key]) }, new Set([fresh.multikey])));
              expect(again).toBe(signing.includes(key) ? 'EVENT_RECOVERY_KEY_REUSED' : 'ACCEPTED');
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses a commitment whose threshold exceeds its keys, or that lists a key twice, with EVENT_INVALID', () => {
    const state = applyPolicyChange(
      undefined,
      { type: 'policy.create', agents: [agent.agent(ALL_FLAGS)], recovery: commitment([recoveryKeys[0] as TestKey]) },
      new Set([agent.multikey]),
    );
    const by = new Set([(recoveryKeys[0] as TestKey).multikey]);
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.recover', next: commitment([fresh], 2) }, by))).toBe('EVENT_INVALID');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.recover', next: commitment([fresh, fresh]) }, by))).toBe('EVENT_INVALID');
  });
});
