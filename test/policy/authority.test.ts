/**
 * Who may change a policy (docs/ledger.md "Flags, rules, pre-rotation"):
 * every grant and revoke rule for every combination of flags, policy.rules and DID authority,
 * every m-of-n threshold on both sides of its boundary, lockout, and policy.create's proof of
 * possession. Directly through applyPolicyChange, then through a ledger node, where each
 * refusal must leave the node as it was.
 */
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { canonicalJson } from '../../src/crypto/index.js';
import { addSignatures, didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, PolicyAddress } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { applyPolicyChange as applyAt, checkDidAuthority } from '../../src/policy/authority.js';
import { ADMIN_ONLY, ALL_FLAGS, FLAGS, flagNames } from '../../src/policy/flags.js';
import { RULE_NAMES, type Agent, type PolicyChange, type PolicyRules, type Rules } from '../../src/policy/types.js';
import { codeOf, didRecord, expectRefused, outcome, policyRecord, smallOrderKey } from '../helpers/events.js';
import { commitment, openNode, testKey, type TestKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

/** These tests are about authority, not time: every change at one fixed ledger time. */
const applyPolicyChange = (...args: Parameters<typeof applyAt> extends [infer S, infer C, infer K, string] ? [S, C, K] : never) =>
  applyAt(...args, '2026-01-01T00:00:00.000Z');

const { ADMIN, PROVE, PROVE_GRANT, PROVE_REVOKE } = FLAGS;
const FLAG_SETS = Array.from({ length: 16 }, (_, i) => i);
const describeFlags = (flags: number | undefined) => (flags === undefined ? 'not an agent' : flags === 0 ? 'no flags' : flagNames(flags).join('+'));

const recovery = testKey();
const outsider = testKey();

const keysOf = (...keys: readonly TestKey[]): Set<string> => new Set(keys.map((k) => k.multikey));

/** A policy as policy.create makes it, every agent signing. */
function created(agents: readonly Agent[], rules?: Partial<Rules>): PolicyRules {
  const change: PolicyChange = { type: 'policy.create', agents, recovery: commitment([recovery]), ...(rules === undefined ? {} : { rules }) };
  return applyPolicyChange(undefined, change, new Set(agents.map((a) => a.key)));
}

/** What the flag rules of docs/ledger.md say about moving an agent from `before` to `after` flags. */
function mayGrant(signer: number, before: number | undefined, after: number): boolean {
  if ((signer & ADMIN) !== 0) return true;
  if ((((before ?? 0) ^ after) & ADMIN_ONLY) !== 0) return false;
  const takesProve = before !== undefined && (before & PROVE) !== 0 && (after & PROVE) === 0;
  return takesProve ? (signer & PROVE_REVOKE) !== 0 : (signer & PROVE_GRANT) !== 0;
}

function mayRevoke(signer: number, target: number): boolean {
  if ((signer & ADMIN) !== 0) return true;
  return (target & ADMIN_ONLY) === 0 && (signer & PROVE_REVOKE) !== 0;
}

describe('applyPolicyChange: flags', () => {
  const admin = testKey(); // a bystander ADMIN, so that no change here locks the policy out
  const signer = testKey();
  const target = testKey();

  it.each(FLAG_SETS.map((s) => [describeFlags(s), s]))('grant signed by %s: every target, before and after, as the flag rules say', (_name, s) => {
    const wrong: string[] = [];
    for (const before of [undefined, ...FLAG_SETS]) {
      const state = created([admin.agent(ADMIN), signer.agent(s), ...(before === undefined ? [] : [target.agent(before)])]);
      const snapshot = canonicalJson(state);
      for (const after of FLAG_SETS) {
        const expected = before === after ? 'EVENT_INVALID' : mayGrant(s, before, after) ? 'ACCEPTED' : 'EVENT_UNAUTHORIZED';
        let next: PolicyRules | undefined;
        const got = codeOf(() => (next = applyPolicyChange(state, { type: 'policy.grant', agent: target.agent(after) }, keysOf(signer))));
        if (got !== expected) wrong.push(`${describeFlags(before)} -> ${describeFlags(after)}: expected ${expected}, got ${got}`);
        if (next !== undefined) {
          expect(next.agents.find((a) => a.key === target.multikey)?.flags).toBe(after);
          expect(next.agents.filter((a) => a.key !== target.multikey)).toEqual(state.agents.filter((a) => a.key !== target.multikey));
          expect(next.recovery).toEqual(state.recovery);
        }
      }
      expect(canonicalJson(state), 'applyPolicyChange changed its input').toBe(snapshot);
    }
    expect(wrong).toEqual([]);
  });

  it.each(FLAG_SETS.map((s) => [describeFlags(s), s]))('revoke signed by %s: every target, as the flag rules say', (_name, s) => {
    const wrong: string[] = [];
    for (const t of FLAG_SETS) {
      const state = created([admin.agent(ADMIN), signer.agent(s), target.agent(t)]);
      const expected = mayRevoke(s, t) ? 'ACCEPTED' : 'EVENT_UNAUTHORIZED';
      let next: PolicyRules | undefined;
      const got = codeOf(() => (next = applyPolicyChange(state, { type: 'policy.revoke', key: target.multikey }, keysOf(signer))));
      if (got !== expected) wrong.push(`revoke ${describeFlags(t)}: expected ${expected}, got ${got}`);
      if (next !== undefined) expect(next.agents.map((a) => a.key).sort()).toEqual([admin.multikey, signer.multikey].sort());
    }
    expect(wrong).toEqual([]);
  });

  it.each(FLAG_SETS.map((s) => [describeFlags(s), s]))('policy.rules and DID changes signed by %s need ADMIN', (_name, s) => {
    const state = created([admin.agent(ADMIN), signer.agent(s)]);
    const expected = (s & ADMIN) !== 0 ? 'ACCEPTED' : 'EVENT_UNAUTHORIZED';
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.rules', rules: { grant: 1, revoke: 1, rules: 1, did: 1 } }, keysOf(signer)))).toBe(expected);
    for (const what of ['did.create', 'did.update', 'did.deactivate']) expect(codeOf(() => checkDidAuthority(state, keysOf(signer), what))).toBe(expected);
  });

  it('refuses a signer that is no agent, even beside an ADMIN, and counts no signature as below threshold', () => {
    const prove = testKey();
    const state = created([admin.agent(ALL_FLAGS), prove.agent(PROVE)]);
    const changes: PolicyChange[] = [
      { type: 'policy.grant', agent: target.agent(PROVE) },
      { type: 'policy.revoke', key: prove.multikey },
      { type: 'policy.rules', rules: { grant: 1, revoke: 1, rules: 1, did: 1 } },
    ];
    for (const change of changes) {
      expect(
        codeOf(() => applyPolicyChange(state, change, keysOf(outsider))),
        change.type,
      ).toBe('EVENT_UNAUTHORIZED');
      expect(
        codeOf(() => applyPolicyChange(state, change, keysOf(admin, outsider))),
        change.type,
      ).toBe('EVENT_UNAUTHORIZED');
      expect(
        codeOf(() => applyPolicyChange(state, change, new Set())),
        change.type,
      ).toBe('EVENT_THRESHOLD');
      expect(
        codeOf(() => applyPolicyChange(state, change, keysOf(admin))),
        change.type,
      ).toBe('ACCEPTED');
    }
    expect(codeOf(() => checkDidAuthority(state, keysOf(admin, outsider), 'did.update'))).toBe('EVENT_UNAUTHORIZED');
    expect(codeOf(() => checkDidAuthority(state, new Set(), 'did.update'))).toBe('EVENT_THRESHOLD');
  });

  it('refuses changes that make no sense with EVENT_INVALID, and changes to no policy with SUBJECT_NOT_FOUND', () => {
    const state = created([admin.agent(ALL_FLAGS), target.agent(PROVE)]);
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.grant', agent: target.agent(PROVE) }, keysOf(admin)))).toBe('EVENT_INVALID');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.revoke', key: outsider.multikey }, keysOf(admin)))).toBe('EVENT_INVALID');
    expect(
      codeOf(() => applyPolicyChange(state, { type: 'policy.create', agents: [admin.agent(ALL_FLAGS)], recovery: commitment([recovery]) }, keysOf(admin))),
    ).toBe('EVENT_INVALID');
    expect(codeOf(() => applyPolicyChange(undefined, { type: 'policy.grant', agent: target.agent(PROVE) }, keysOf(admin)))).toBe('SUBJECT_NOT_FOUND');
    // Changing only an agent's key-agreement key is a change.
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.grant', agent: { key: target.multikey, flags: PROVE } }, keysOf(admin)))).toBe('ACCEPTED');
  });
});

describe('applyPolicyChange: m-of-n thresholds', () => {
  const admins = Array.from({ length: 4 }, () => testKey());
  const prove = testKey();
  const victim = testKey();
  const newcomer = testKey();

  /** One change of each kind of rule, needing that rule's signers. */
  function attempt(rule: (typeof RULE_NAMES)[number], state: PolicyRules, signers: Set<string>): string {
    switch (rule) {
      case 'grant':
        return codeOf(() => applyPolicyChange(state, { type: 'policy.grant', agent: newcomer.agent(PROVE) }, signers));
      case 'revoke':
        return codeOf(() => applyPolicyChange(state, { type: 'policy.revoke', key: victim.multikey }, signers));
      case 'rules':
        return codeOf(() => applyPolicyChange(state, { type: 'policy.rules', rules: { ...state.rules, did: 2 } }, signers));
      case 'did':
        return codeOf(() => checkDidAuthority(state, signers, 'did.update'));
    }
  }

  for (const rule of RULE_NAMES) {
    for (const m of [1, 2, 3, 4]) {
      it(`rules.${rule} = ${m}: ${m - 1} distinct authorized signers get EVENT_THRESHOLD, ${m} or more are enough, an unauthorized co-signer is refused`, () => {
        const state = created([...admins.map((k) => k.agent(ADMIN)), prove.agent(PROVE), victim.agent(PROVE)], { [rule]: m });
        for (let k = 0; k <= admins.length; k++) {
          expect(attempt(rule, state, keysOf(...admins.slice(0, k))), `${k} of ${m}`).toBe(k >= m ? 'ACCEPTED' : 'EVENT_THRESHOLD');
        }
        expect(attempt(rule, state, keysOf(...admins.slice(0, m), outsider))).toBe('EVENT_UNAUTHORIZED');
        expect(attempt(rule, state, keysOf(...admins.slice(0, m), prove))).toBe('EVENT_UNAUTHORIZED');
        expect(attempt(rule, state, keysOf(...admins.slice(0, m - 1), outsider))).toBe('EVENT_UNAUTHORIZED');
      });
    }
  }

  it('counts PROVE_GRANT and PROVE_REVOKE holders toward their rules, but not toward ADMIN-only changes', () => {
    const [admin, g1, g2, r1, r2] = [testKey(), testKey(), testKey(), testKey(), testKey()] as const;
    const state = created(
      [admin.agent(ADMIN), g1.agent(PROVE_GRANT), g2.agent(PROVE_GRANT), r1.agent(PROVE_REVOKE), r2.agent(PROVE_REVOKE), victim.agent(PROVE)],
      { grant: 2, revoke: 2 },
    );
    const grantProve: PolicyChange = { type: 'policy.grant', agent: newcomer.agent(PROVE) };
    const grantAdminOnly: PolicyChange = { type: 'policy.grant', agent: newcomer.agent(PROVE_GRANT) };
    expect(codeOf(() => applyPolicyChange(state, grantProve, keysOf(g1)))).toBe('EVENT_THRESHOLD');
    expect(codeOf(() => applyPolicyChange(state, grantProve, keysOf(g1, g2)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(state, grantProve, keysOf(admin, g1)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(state, grantAdminOnly, keysOf(admin)))).toBe('EVENT_THRESHOLD');
    expect(codeOf(() => applyPolicyChange(state, grantAdminOnly, keysOf(admin, g1)))).toBe('EVENT_UNAUTHORIZED');
    // Taking PROVE away by policy.grant needs PROVE_REVOKE, and meets rules.grant.
    const takeProve: PolicyChange = { type: 'policy.grant', agent: victim.agent(0) };
    expect(codeOf(() => applyPolicyChange(state, takeProve, keysOf(r1)))).toBe('EVENT_THRESHOLD');
    expect(codeOf(() => applyPolicyChange(state, takeProve, keysOf(r1, r2)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(state, takeProve, keysOf(g1, g2)))).toBe('EVENT_UNAUTHORIZED');
    const revokeProve: PolicyChange = { type: 'policy.revoke', key: victim.multikey };
    expect(codeOf(() => applyPolicyChange(state, revokeProve, keysOf(r1)))).toBe('EVENT_THRESHOLD');
    expect(codeOf(() => applyPolicyChange(state, revokeProve, keysOf(r1, r2)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.revoke', key: g1.multikey }, keysOf(r1, r2)))).toBe('EVENT_UNAUTHORIZED');
  });
});

describe('applyPolicyChange: lockout', () => {
  const [admin, admin2, granter, revoker, prover] = [testKey(), testKey(), testKey(), testKey(), testKey()] as const;
  const agents = [admin.agent(ADMIN), admin2.agent(ADMIN), granter.agent(PROVE_GRANT), revoker.agent(PROVE_REVOKE), prover.agent(PROVE)];
  /** How many of `agents` can sign each kind of change. */
  const able: Rules = { grant: 3, revoke: 3, rules: 2, did: 2 };

  it.each(RULE_NAMES.map((r) => [r]))('policy.rules may raise rules.%s to the number of agents able to sign, not above', (rule) => {
    const state = created(agents);
    const at = { grant: 1, revoke: 1, rules: 1, did: 1, [rule]: able[rule] };
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.rules', rules: at }, keysOf(admin)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.rules', rules: { ...at, [rule]: able[rule] + 1 } }, keysOf(admin)))).toBe('EVENT_LOCKOUT');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.rules', rules: { ...at, [rule]: 64 } }, keysOf(admin)))).toBe('EVENT_LOCKOUT');
  });

  it('refuses a revoke or a demotion that leaves a rule unsatisfiable', () => {
    const cases: [Partial<Rules>, PolicyChange][] = [
      [{ grant: 3 }, { type: 'policy.revoke', key: granter.multikey }],
      [{ rules: 2 }, { type: 'policy.revoke', key: admin2.multikey }],
      [{ did: 2 }, { type: 'policy.revoke', key: admin2.multikey }],
      [{ rules: 2 }, { type: 'policy.grant', agent: admin2.agent(PROVE) }],
      [{ did: 2 }, { type: 'policy.grant', agent: admin2.agent(PROVE_GRANT | PROVE_REVOKE | PROVE) }],
    ];
    for (const [rules, change] of cases) {
      expect(
        codeOf(() => applyPolicyChange(created(agents, rules), change, keysOf(admin))),
        JSON.stringify([rules, change]),
      ).toBe('EVENT_LOCKOUT');
    }
    // The same changes are fine while enough agents remain.
    expect(codeOf(() => applyPolicyChange(created(agents, { grant: 2 }), { type: 'policy.revoke', key: granter.multikey }, keysOf(admin)))).toBe('ACCEPTED');
    expect(codeOf(() => applyPolicyChange(created(agents, { rules: 2 }), { type: 'policy.grant', agent: admin2.agent(ADMIN | PROVE) }, keysOf(admin)))).toBe(
      'ACCEPTED',
    );
    expect(codeOf(() => applyPolicyChange(created(agents, { grant: 3 }), { type: 'policy.revoke', key: prover.multikey }, keysOf(admin)))).toBe('ACCEPTED');
  });

  it('refuses revoking the last ADMIN, or taking its ADMIN away', () => {
    const state = created([admin.agent(ADMIN), prover.agent(PROVE)]);
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.revoke', key: admin.multikey }, keysOf(admin)))).toBe('EVENT_LOCKOUT');
    expect(codeOf(() => applyPolicyChange(state, { type: 'policy.grant', agent: admin.agent(PROVE | PROVE_GRANT | PROVE_REVOKE) }, keysOf(admin)))).toBe(
      'EVENT_LOCKOUT',
    );
  });

  it('refuses creating a policy without an ADMIN, or with a rule above its agents', () => {
    const create = (list: Agent[], rules?: Partial<Rules>) => codeOf(() => created(list, rules));
    expect(create([granter.agent(PROVE_GRANT | PROVE_REVOKE | PROVE)])).toBe('EVENT_LOCKOUT');
    for (const rule of RULE_NAMES) {
      expect(create(agents, { [rule]: able[rule] }), rule).toBe('ACCEPTED');
      expect(create(agents, { [rule]: able[rule] + 1 }), rule).toBe('EVENT_LOCKOUT');
    }
  });
});

describe('applyPolicyChange: policy.create', () => {
  const [a, b, c] = [testKey(), testKey(), testKey()] as const;
  const agents = [a.agent(ALL_FLAGS), b.agent(ADMIN), c.agent(PROVE)];

  it('needs every initial agent to sign, and nobody else (every subset of signers)', () => {
    const everyone = [a, b, c, outsider];
    for (let mask = 0; mask < 1 << everyone.length; mask++) {
      const signers = everyone.filter((_, i) => (mask & (1 << i)) !== 0);
      const change: PolicyChange = { type: 'policy.create', agents, recovery: commitment([recovery]) };
      expect(
        codeOf(() => applyPolicyChange(undefined, change, keysOf(...signers))),
        signers.length.toString(),
      ).toBe(mask === 0b0111 ? 'ACCEPTED' : 'EVENT_UNAUTHORIZED');
    }
  });

  it('sorts agents by key, fills rules from the defaults, and reveals nothing', () => {
    const state = applyPolicyChange(undefined, { type: 'policy.create', agents, recovery: commitment([recovery]), rules: { did: 2 } }, keysOf(a, b, c));
    expect(state.agents.map((x) => x.key)).toEqual(agents.map((x) => x.key).sort());
    expect(state.rules).toEqual({ grant: 1, revoke: 1, rules: 1, did: 2 });
    expect(state.revealed).toEqual([]);
  });

  it('refuses an agent listed twice and a bad recovery commitment with EVENT_INVALID', () => {
    const create = (list: Agent[], rec = commitment([recovery])) =>
      codeOf(() => applyPolicyChange(undefined, { type: 'policy.create', agents: list, recovery: rec }, new Set(list.map((x) => x.key))));
    expect(create([a.agent(ALL_FLAGS), a.agent(PROVE)])).toBe('EVENT_INVALID');
    expect(create([a.agent(ALL_FLAGS)], commitment([recovery], 2))).toBe('EVENT_INVALID');
    expect(create([a.agent(ALL_FLAGS)], commitment([recovery, recovery]))).toBe('EVENT_INVALID');
  });
});

// ---------------------------------------------------------------------------------------------
// Through a ledger node

interface Setup {
  readonly node: LedgerNode;
  readonly policy: PolicyAddress;
}

/** A node with one policy whose agents are `agents` (each signing its creation). */
async function setup(agents: readonly [TestKey, number][], rules?: Partial<Rules>): Promise<Setup> {
  const node = await openNode(tempDir());
  onTestFinished(() => node.close());
  const { subject } = await node.submit(
    signEvent(
      policyCreate(
        agents.map(([k, f]) => k.agent(f)),
        commitment([recovery]),
        rules,
      ),
      agents.map(([k]) => k),
    ),
  );
  return { node, policy: subject as PolicyAddress };
}

async function grantEvent({ node, policy }: Setup, agent: Agent, signers: readonly TestKey[]) {
  return signEvent(nextEvent('policy.grant', policy, await policyRecord(node, policy), { agent }), signers);
}
async function revokeEvent({ node, policy }: Setup, key: TestKey, signers: readonly TestKey[]) {
  return signEvent(nextEvent('policy.revoke', policy, await policyRecord(node, policy), { key: key.multikey }), signers);
}
async function rulesEvent({ node, policy }: Setup, rules: Rules, signers: readonly TestKey[]) {
  return signEvent(nextEvent('policy.rules', policy, await policyRecord(node, policy), { rules }), signers);
}
const ONES: Rules = { grant: 1, revoke: 1, rules: 1, did: 1 };

describe('authority through a ledger node', () => {
  const [admin, granter, revoker, prover, newcomer, other] = [testKey(), testKey(), testKey(), testKey(), testKey(), testKey()] as const;
  const team: [TestKey, number][] = [
    [admin, ADMIN],
    [granter, PROVE_GRANT],
    [revoker, PROVE_REVOKE],
    [prover, PROVE],
  ];

  it('ADMIN may grant and revoke anything', async () => {
    const s = await setup(team);
    for (const flags of [ADMIN, PROVE_GRANT, PROVE_REVOKE, ALL_FLAGS, PROVE, 0]) await s.node.submit(await grantEvent(s, newcomer.agent(flags), [admin]));
    for (const key of [granter, revoker, prover, newcomer]) await s.node.submit(await revokeEvent(s, key, [admin]));
    expect((await policyRecord(s.node, s.policy)).policy.agents.map((a) => a.key)).toEqual([admin.multikey]);
    expect((await s.node.reindex(false)).differences).toEqual([]);
  });

  it('PROVE_GRANT may add an agent and grant PROVE, but not ADMIN, PROVE_GRANT or PROVE_REVOKE, nor revoke or take PROVE', async () => {
    const s = await setup(team);
    for (const flags of [ADMIN, PROVE_GRANT, PROVE_REVOKE, PROVE | PROVE_GRANT, ALL_FLAGS])
      await expectRefused(s.node, await grantEvent(s, newcomer.agent(flags), [granter]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await revokeEvent(s, prover, [granter]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, prover.agent(0), [granter]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, revoker.agent(PROVE), [granter]), 'EVENT_UNAUTHORIZED');
    await s.node.submit(await grantEvent(s, newcomer.agent(PROVE), [granter]));
    await s.node.submit(await grantEvent(s, other.agent(0), [granter]));
    await s.node.submit(await grantEvent(s, other.agent(PROVE), [granter]));
    await s.node.submit(await grantEvent(s, revoker.agent(PROVE_REVOKE | PROVE), [granter]));
  });

  it('PROVE_REVOKE may revoke PROVE or a PROVE-only agent, but not a holder of ADMIN, PROVE_GRANT or PROVE_REVOKE, nor grant', async () => {
    const s = await setup([...team, [other, PROVE_REVOKE]]);
    for (const key of [admin, granter, other]) await expectRefused(s.node, await revokeEvent(s, key, [revoker]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, newcomer.agent(PROVE), [revoker]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, other.agent(0), [revoker]), 'EVENT_UNAUTHORIZED');
    await s.node.submit(await grantEvent(s, prover.agent(0), [revoker]));
    await s.node.submit(await revokeEvent(s, prover, [revoker]));
  });

  it('PROVE alone may change nothing', async () => {
    const s = await setup(team);
    await expectRefused(s.node, await grantEvent(s, newcomer.agent(PROVE), [prover]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, prover.agent(0), [prover]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await revokeEvent(s, prover, [prover]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await rulesEvent(s, ONES, [prover]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, signEvent(didCreate(s.policy, []), [prover]), 'EVENT_UNAUTHORIZED');
  });

  it('policy.rules and did.create, did.update and did.deactivate need ADMIN', async () => {
    const allButAdmin = testKey();
    const s = await setup([...team, [allButAdmin, PROVE | PROVE_GRANT | PROVE_REVOKE]]);
    for (const key of [granter, revoker, prover, allButAdmin]) {
      await expectRefused(s.node, await rulesEvent(s, ONES, [key]), 'EVENT_UNAUTHORIZED');
      await expectRefused(s.node, signEvent(didCreate(s.policy, []), [key]), 'EVENT_UNAUTHORIZED');
    }
    await s.node.submit(await rulesEvent(s, ONES, [admin]));
    const did = (await s.node.submit(signEvent(didCreate(s.policy, []), [admin]))).subject as Did;
    const record = await didRecord(s.node, did);
    for (const key of [granter, revoker, prover, allButAdmin, outsider]) {
      await expectRefused(s.node, signEvent(nextEvent('did.update', did, record, { services: [] }), [key]), 'EVENT_UNAUTHORIZED');
      await expectRefused(s.node, signEvent(nextEvent('did.deactivate', did, record, {}), [key]), 'EVENT_UNAUTHORIZED');
    }
    await s.node.submit(signEvent(nextEvent('did.deactivate', did, record, {}), [admin]));
  });

  it('with rules {grant: 2}: one signature is EVENT_THRESHOLD, the same key twice EVENT_MALFORMED, an unauthorized co-signer EVENT_UNAUTHORIZED, two distinct agents are accepted', async () => {
    const [a, b] = [testKey(), testKey()] as const;
    const s = await setup(
      [
        [a, ALL_FLAGS],
        [b, ALL_FLAGS],
        [prover, PROVE],
      ],
      { grant: 2, did: 2 },
    );
    const grant = await grantEvent(s, newcomer.agent(PROVE), [a]);
    await expectRefused(s.node, grant, 'EVENT_THRESHOLD');
    await expectRefused(s.node, addSignatures(grant, [a]), 'EVENT_MALFORMED');
    await expectRefused(s.node, addSignatures(grant, [outsider]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, addSignatures(grant, [prover]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, addSignatures(grant, [b, outsider]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, signEvent(didCreate(s.policy, []), [b]), 'EVENT_THRESHOLD');
    await s.node.submit(signEvent(didCreate(s.policy, []), [b, a]));
    const receipt = await s.node.submit(addSignatures(grant, [b]));
    expect(receipt.seq).toBe(1);
    // Revocation kept its default of one signature.
    await s.node.submit(await revokeEvent(s, newcomer, [b]));
  });

  it('refuses a rules change, a revoke or a demotion that would lock the policy out with EVENT_LOCKOUT', async () => {
    const admin2 = testKey();
    const s = await setup([...team, [admin2, ADMIN]]);
    await expectRefused(s.node, await rulesEvent(s, { ...ONES, rules: 3 }, [admin]), 'EVENT_LOCKOUT');
    await expectRefused(s.node, await rulesEvent(s, { ...ONES, grant: 4 }, [admin]), 'EVENT_LOCKOUT');
    await s.node.submit(await rulesEvent(s, { ...ONES, rules: 2, did: 2 }, [admin]));
    await expectRefused(s.node, await revokeEvent(s, admin2, [admin]), 'EVENT_LOCKOUT');
    await expectRefused(s.node, await grantEvent(s, admin2.agent(PROVE), [admin]), 'EVENT_LOCKOUT');
    await s.node.submit(await rulesEvent(s, { grant: 3, revoke: 1, rules: 2, did: 2 }, [admin, admin2]));
    await expectRefused(s.node, await revokeEvent(s, granter, [admin]), 'EVENT_LOCKOUT');
    await s.node.submit(await revokeEvent(s, prover, [admin]));
    expect((await s.node.reindex(false)).differences).toEqual([]);
  });

  it('policy.create needs every initial agent to sign and refuses extra signers', async () => {
    const node = await openNode(tempDir());
    onTestFinished(() => node.close());
    const [a, b] = [testKey(), testKey()] as const;
    const create = policyCreate([a.agent(ALL_FLAGS), b.agent(PROVE)], commitment([recovery]));
    await expectRefused(node, signEvent(create, [a]), 'EVENT_UNAUTHORIZED');
    await expectRefused(node, signEvent(create, [b]), 'EVENT_UNAUTHORIZED');
    await expectRefused(node, signEvent(create, [a, b, outsider]), 'EVENT_UNAUTHORIZED');
    await expectRefused(node, signEvent(create, [a, b, a]), 'EVENT_MALFORMED');
    await node.submit(signEvent(create, [b, a]));
  });

  it('agrees with the flag rules for random grants and revokes', async () => {
    const node = await openNode(tempDir());
    onTestFinished(() => node.close());
    const [bystander, signer, target] = [testKey(), testKey(), testKey()] as const;
    const flags = fc.integer({ min: 0, max: 15 });
    await fc.assert(
      fc.asyncProperty(flags, fc.option(flags, { nil: undefined }), flags, fc.boolean(), async (s, before, after, revoke) => {
        const agents: [TestKey, number][] = [[bystander, ADMIN], [signer, s], ...(before === undefined ? [] : [[target, before] as [TestKey, number]])];
        const { subject } = await node.submit(
          signEvent(
            policyCreate(
              agents.map(([k, f]) => k.agent(f)),
              commitment([recovery]),
            ),
            agents.map(([k]) => k),
          ),
        );
        const setup = { node, policy: subject as PolicyAddress };
        const event = revoke ? await revokeEvent(setup, target, [signer]) : await grantEvent(setup, target.agent(after), [signer]);
        const expected = revoke
          ? before === undefined
            ? 'EVENT_INVALID'
            : mayRevoke(s, before)
              ? 'ACCEPTED'
              : 'EVENT_UNAUTHORIZED'
          : before === after
            ? 'EVENT_INVALID'
            : mayGrant(s, before, after)
              ? 'ACCEPTED'
              : 'EVENT_UNAUTHORIZED';
        if (expected === 'ACCEPTED') expect(await outcome(node.submit(event))).toBe('ACCEPTED');
        else await expectRefused(node, event, expected);
      }),
      { numRuns: 150 },
    );
    expect((await node.reindex(false)).differences).toEqual([]);
  });

  it('refuses a PROVE_GRANT agent replacing the key-agreement key of an ADMIN_ONLY flag holder', async () => {
    // With the flags unchanged, a PROVE_GRANT device must still not point an ADMIN's key agreement
    // (in every DID document) at a key it holds.
    const s = await setup(team);
    const stolenKx = testKey().kx;
    await expectRefused(s.node, await grantEvent(s, { key: admin.multikey, kx: stolenKx, flags: ADMIN }, [granter]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, { key: revoker.multikey, kx: stolenKx, flags: PROVE_REVOKE }, [granter]), 'EVENT_UNAUTHORIZED');
    await expectRefused(s.node, await grantEvent(s, { key: admin.multikey, flags: ADMIN }, [granter]), 'EVENT_UNAUTHORIZED');
  });

  it('refuses a policy.create "signed" for a small-order key nobody holds', async () => {
    // node:crypto verifies (R = identity, S = 0) under the identity point for every message.
    const node = await openNode(tempDir());
    onTestFinished(() => node.close());
    const { key, sig } = smallOrderKey();
    const unsigned = policyCreate([{ key, flags: ALL_FLAGS }], commitment([recovery]));
    const got = await outcome(node.submit({ ...unsigned, sigs: [{ kid: key, sig }] }));
    expect(['EVENT_MALFORMED', 'EVENT_BAD_SIGNATURE']).toContain(got);
    expect(node.size).toBe(0);
  });
});
