/**
 * A delayed recovery (docs/recovery.md "Compromise"; docs/ledger.md): with a delay in the
 * recovery commitment, `policy.recover` only becomes pending; enough ADMIN agents may cancel it
 * during the delay, and `policy.complete` applies it once the ledger's own clock has passed the
 * delay. A client's clock plays no part: the node's time decides.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Signer } from '../../src/crypto/index.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { LedgerEvent, PolicyAddress } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import type { PolicyRules, RecoveryCommitment } from '../../src/policy/types.js';
import { expectRefused, policyHistory, policyRecord } from '../helpers/events.js';
import { commitment, openNode, testKey, type TestKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

const DAY = 24 * 3600;

interface Owner {
  readonly node: LedgerNode;
  readonly policy: PolicyAddress;
  readonly laptop: TestKey;
  readonly phone: TestKey;
  readonly cloud: TestKey;
  /** Moves the ledger node's clock forward. */
  advance(seconds: number): void;
}

async function owner(recovery: RecoveryCommitment, rules = { rules: 1 }): Promise<Owner> {
  let now = Date.parse('2026-03-01T00:00:00.000Z');
  const node = await openNode(tempDir(), undefined, { now: () => now });
  onTestFinished(() => node.close());
  const [laptop, phone, cloud] = [testKey(), testKey(), testKey()] as const;
  const agents = [laptop.agent(ALL_FLAGS), phone.agent(FLAGS.ADMIN), cloud.agent(FLAGS.PROVE)];
  const policy = (await node.submit(signEvent(policyCreate(agents, recovery, rules), [laptop, phone, cloud]))).subject as PolicyAddress;
  return { node, policy, laptop, phone, cloud, advance: (s) => (now += s * 1000) };
}

async function event(
  o: Owner,
  type: 'policy.recover' | 'policy.cancel' | 'policy.complete',
  body: Record<string, unknown>,
  signers: readonly Signer[],
): Promise<LedgerEvent> {
  return signEvent(nextEvent(type, o.policy, await policyRecord(o.node, o.policy), body), signers);
}

const policyNow = async (o: Owner): Promise<PolicyRules> => (await policyRecord(o.node, o.policy)).policy;
const keysOf = (p: PolicyRules) => p.agents.map((a) => a.key).sort();

describe('a recovery with a delay', () => {
  it('waits, is refused early by ledger time, then completes and replaces the agents', async () => {
    const [r0, r1, fresh] = [testKey(), testKey(), testKey()] as const;
    const o = await owner({ ...commitment([r0]), delay: 2 * DAY });
    const before = await policyNow(o);
    // The cloud agent is kept without signing: it proved possession when it was added.
    const agents = [fresh.agent(ALL_FLAGS), o.cloud.agent(FLAGS.PROVE)];
    await o.node.submit(await event(o, 'policy.recover', { next: commitment([r1]), agents }, [r0, fresh]));
    const pending = await policyNow(o);
    expect(keysOf(pending)).toEqual(keysOf(before));
    expect(pending.recovery).toEqual(before.recovery);
    expect(pending.pending?.until).toBe('2026-03-03T00:00:00.000Z');

    // A second recovery cannot start over the pending one.
    await expectRefused(o.node, await event(o, 'policy.recover', { next: commitment([r1]), agents }, [r0, fresh]), 'RECOVERY_PENDING');
    o.advance(2 * DAY - 1);
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [fresh]), 'RECOVERY_DELAY');
    o.advance(1);
    await o.node.submit(await event(o, 'policy.complete', {}, [fresh]));
    const after = await policyNow(o);
    expect(keysOf(after)).toEqual([fresh.multikey, o.cloud.multikey].sort());
    expect(after.recovery).toEqual(commitment([r1]));
    expect(after.pending).toBeUndefined();
    // The old laptop is out: it can no longer change anything.
    await expectRefused(o.node, await event(o, 'policy.recover', { next: commitment([r1]) }, [o.laptop]), 'EVENT_UNAUTHORIZED');
    // A client re-validating the chain with the recorded ledger times reaches the same policy.
    expect((await policyHistory(o.node, o.policy)).at(-1)?.policy).toEqual(after);
  });

  it('enough ADMIN agents cancel it during the delay; the commitment stays and works again', async () => {
    const [r0, r1, thief] = [testKey(), testKey(), testKey()] as const;
    const o = await owner({ ...commitment([r0]), delay: DAY }, { rules: 2 });
    const takeover = { next: commitment([r1]), agents: [thief.agent(ALL_FLAGS)], rules: { grant: 1, revoke: 1, rules: 1, did: 1 } };
    // A takeover that would lock the policy out is refused when it starts, not when it completes.
    await expectRefused(o.node, await event(o, 'policy.recover', { next: takeover.next, agents: takeover.agents }, [r0, thief]), 'EVENT_LOCKOUT');
    await o.node.submit(await event(o, 'policy.recover', takeover, [r0, thief]));
    // One ADMIN is not enough under rules 2; a PROVE-only agent may not cancel at all.
    await expectRefused(o.node, await event(o, 'policy.cancel', {}, [o.laptop]), 'EVENT_THRESHOLD');
    await expectRefused(o.node, await event(o, 'policy.cancel', {}, [o.laptop, o.cloud]), 'EVENT_UNAUTHORIZED');
    await o.node.submit(await event(o, 'policy.cancel', {}, [o.laptop, o.phone]));
    expect((await policyNow(o)).pending).toBeUndefined();
    o.advance(DAY);
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [thief]), 'EVENT_INVALID');
    expect(keysOf(await policyNow(o))).toEqual([o.laptop.multikey, o.phone.multikey, o.cloud.multikey].sort());
    // The owner's own recovery with the same committed key can start again.
    await o.node.submit(await event(o, 'policy.recover', { next: commitment([r1]) }, [r0]));
    expect((await policyNow(o)).pending?.revealed).toEqual(commitment([r0]).digests);
  });

  it('ADMIN agents co-signing (the rules threshold) make it take effect at once, even over a pending one', async () => {
    const [r0, r1, r2, thief] = [testKey(), testKey(), testKey(), testKey()] as const;
    const o = await owner({ ...commitment([r0]), delay: DAY }, { rules: 2 });
    // Colluding trustees start a takeover; the owner, with her paper and two ADMIN devices, rotates at once.
    await o.node.submit(
      await event(o, 'policy.recover', { next: commitment([r1]), agents: [thief.agent(ALL_FLAGS)], rules: { grant: 1, revoke: 1, rules: 1, did: 1 } }, [
        r0,
        thief,
      ]),
    );
    // One ADMIN co-signer is below the rules threshold: still blocked by the pending one.
    await expectRefused(o.node, await event(o, 'policy.recover', { next: { ...commitment([r2]), delay: DAY } }, [r0, o.laptop]), 'RECOVERY_PENDING');
    // A PROVE-only agent's signature is no consent: refused outright.
    await expectRefused(o.node, await event(o, 'policy.recover', { next: { ...commitment([r2]), delay: DAY } }, [r0, o.laptop, o.cloud]), 'EVENT_UNAUTHORIZED');
    await o.node.submit(await event(o, 'policy.recover', { next: { ...commitment([r2]), delay: DAY } }, [r0, o.laptop, o.phone]));
    const after = await policyNow(o);
    expect(after.pending).toBeUndefined();
    expect(after.recovery).toEqual({ ...commitment([r2]), delay: DAY });
    expect(keysOf(after)).toEqual([o.laptop.multikey, o.phone.multikey, o.cloud.multikey].sort());
    // The takeover's key is spent: it is no longer committed.
    o.advance(DAY);
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [thief]), 'EVENT_INVALID');
  });

  it('cancel and complete are refused when nothing is pending; complete needs a party to it', async () => {
    const [r0, r1, fresh, stranger] = [testKey(), testKey(), testKey(), testKey()] as const;
    const o = await owner({ ...commitment([r0]), delay: 60 });
    await expectRefused(o.node, await event(o, 'policy.cancel', {}, [o.laptop]), 'EVENT_INVALID');
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [o.laptop]), 'EVENT_INVALID');
    await o.node.submit(await event(o, 'policy.recover', { next: commitment([r1]), agents: [fresh.agent(ALL_FLAGS)] }, [r0, fresh]));
    o.advance(60);
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [stranger]), 'EVENT_UNAUTHORIZED');
    // The recovery key itself may complete it.
    await o.node.submit(await event(o, 'policy.complete', {}, [r0]));
    expect(keysOf(await policyNow(o))).toEqual([fresh.multikey]);
  });

  it('without a delay the recovery applies at once and policy.complete has nothing to do', async () => {
    const [r0, r1, fresh] = [testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r0]));
    await o.node.submit(await event(o, 'policy.recover', { next: { ...commitment([r1]), delay: DAY }, agents: [fresh.agent(ALL_FLAGS)] }, [r0, fresh]));
    const after = await policyNow(o);
    expect(keysOf(after)).toEqual([fresh.multikey]);
    // The new commitment carries the delay for the next recovery.
    expect(after.recovery.delay).toBe(DAY);
    await expectRefused(o.node, await event(o, 'policy.complete', {}, [fresh]), 'EVENT_INVALID');
  });

  it('a recovery that names new agents still needs their signatures; kept agents need none', async () => {
    const [r0, r1, fresh] = [testKey(), testKey(), testKey()] as const;
    const o = await owner(commitment([r0]));
    await expectRefused(o.node, await event(o, 'policy.recover', { next: commitment([r1]), agents: [fresh.agent(ALL_FLAGS)] }, [r0]), 'EVENT_UNAUTHORIZED');
    await o.node.submit(await event(o, 'policy.recover', { next: commitment([r1]), agents: [o.phone.agent(ALL_FLAGS)] }, [r0]));
    expect((await policyNow(o)).agents).toEqual([o.phone.agent(ALL_FLAGS)]);
  });

  it('a delay above a year is malformed', async () => {
    const [r0, r1] = [testKey(), testKey()] as const;
    const o = await owner(commitment([r0]));
    await expectRefused(o.node, await event(o, 'policy.recover', { next: { ...commitment([r1]), delay: 366 * DAY } }, [r0]), 'EVENT_MALFORMED');
  });
});
