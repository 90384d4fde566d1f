/**
 * The explorer's timeline (web/explorer/timeline.ts) over a real history: an owner's policy and
 * DID walk through every kind of event on an in-process ledger node whose clock the test holds,
 * and the records are verified into `history` and `steps` as the ledger client does (replayed
 * through the ledger's own validator, each state pushed under its event's subject). Each entry's
 * changes are written out by hand from the story: the oracle.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, LedgerEvent, PolicyAddress, Service, Subject } from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { verifiedRead } from '../helpers/replay.js';
import type { StateStep } from '../../src/ledger/verified-cache.js';
import { ALL_FLAGS, FLAGS, flagNames } from '../../src/policy/flags.js';
import { DEFAULT_RULES } from '../../src/policy/types.js';
import { agentLanes, timelineOf, type Change, type TimelineEntry } from '../../web/explorer/timeline.js';
import { codeOf } from '../helpers/events.js';
import { commitment, nodeSigner, openNode, testKey, type TestKey } from '../helpers/ledger.js';

const { PROVE, PROVE_GRANT, PROVE_REVOKE } = FLAGS;
const START = Date.UTC(2030, 0, 1);
const STEP = 60_000;
const DELAY = 3600;
const iso = (ms: number) => new Date(ms).toISOString();

const laptop = testKey(); // ADMIN from the start; kept by the first recovery, replaced by the second
const watch = testKey(); // PROVE, granted before the DID exists; dropped by the first recovery
const tablet = testKey(); // PROVE_GRANT, then revoked
const phone = testKey(); // PROVE, then PROVE+PROVE_REVOKE; dropped by the first recovery
const fresh = testKey(); // PROVE, added by the immediate recovery
const heir = testKey(); // ADMIN, the delayed recovery's (cancelled once, then completed)
const late = testKey(); // PROVE, granted after the DID is deactivated
const r1 = testKey();
const r2 = testKey();
const r3 = testKey();
const other = testKey(); // a second owner, whose policy sets its own rules

const agency = (endpoint: string): Service => ({ id: '#agency', type: 'DIDCommMessaging', serviceEndpoint: endpoint });
const old: Service = { id: '#old', type: 'LinkedDomains', serviceEndpoint: 'https://old.example/' };
const mail: Service = { id: '#mail', type: 'DIDCommMessaging', serviceEndpoint: 'https://mail.example/' };

const added = (key: TestKey, flags: number, kx = true): Change => ({
  kind: 'agent-added',
  key: key.multikey,
  ...(kx ? { kx: key.kx } : {}),
  flags: flagNames(flags),
});
const removed = (key: TestKey, flags: number): Change => ({ kind: 'agent-removed', key: key.multikey, flags: flagNames(flags) });
/** Agent changes come in key order, as the policy lists its agents. */
const byKey = (changes: Change[]) => [...changes].sort((a, b) => ((a as { key: string }).key < (b as { key: string }).key ? -1 : 1));

describe('timelineOf and agentLanes over a real history', () => {
  let t = START;
  let dir: string;
  let node: LedgerNode;
  let policy: PolicyAddress;
  let did: Did;
  let second: PolicyAddress;
  let timeline: TimelineEntry[];
  let read: Awaited<ReturnType<typeof verifiedRead>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkms-timeline-'));
    node = await openNode(dir, nodeSigner(), { now: () => t, headIntervalMs: 0 });
    const submit = async (event: LedgerEvent, wait = STEP) => {
      t += wait;
      return (await node.submit(event)).subject;
    };
    const latest = async (subject: Subject) => {
      const record = await node.subject(subject);
      if (record === undefined) throw new Error(`${subject} missing`);
      return record;
    };
    const next = async (type: Parameters<typeof nextEvent>[0], subject: Subject, body: Record<string, unknown>, signers: TestKey[], wait = STEP) =>
      submit(signEvent(nextEvent(type, subject, await latest(subject), body), signers), wait);

    policy = (await submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([r1])), [laptop]))) as PolicyAddress; // 0
    await next('policy.grant', policy, { agent: watch.agent(PROVE) }, [laptop]); // 1
    did = (await submit(signEvent(didCreate(policy, [agency('https://a.example/'), old]), [laptop]))) as Did; // 2
    await next('policy.grant', policy, { agent: tablet.agent(PROVE_GRANT) }, [laptop]); // 3
    await next('policy.grant', policy, { agent: phone.agent(PROVE) }, [tablet]); // 4
    await next('policy.grant', policy, { agent: phone.agent(PROVE | PROVE_REVOKE) }, [laptop]); // 5
    await next('policy.revoke', policy, { key: tablet.multikey }, [laptop]); // 6
    await next('policy.rules', policy, { rules: { ...DEFAULT_RULES, revoke: 2 } }, [laptop]); // 7
    await next('did.update', did, { services: [agency('https://b.example/'), mail] }, [laptop]); // 8
    await next('did.update', did, { services: [agency('https://b.example/'), mail] }, [laptop]); // 9
    const immediate = { next: { ...commitment([r2]), delay: DELAY }, agents: [laptop.agent(ALL_FLAGS), fresh.agent(PROVE)], rules: DEFAULT_RULES };
    await next('policy.recover', policy, immediate, [r1, fresh]); // 10
    await next('policy.recover', policy, { next: commitment([r3]), agents: [heir.agent(ALL_FLAGS)] }, [r2, heir]); // 11
    await next('policy.cancel', policy, {}, [laptop]); // 12
    await next('policy.recover', policy, { next: commitment([r3]), agents: [heir.agent(ALL_FLAGS)] }, [r2, heir]); // 13
    await next('policy.complete', policy, {}, [heir], DELAY * 1000); // 14
    await next('policy.grant', policy, { agent: { key: heir.multikey, flags: ALL_FLAGS } }, [heir]); // 15
    await next('did.deactivate', did, {}, [heir]); // 16
    await next('policy.grant', policy, { agent: late.agent(PROVE) }, [heir]); // 17
    const owner2 = policyCreate([other.agent(ALL_FLAGS), phone.agent(PROVE_REVOKE)], commitment([testKey()]), { revoke: 2 });
    second = (await submit(signEvent(owner2, [other, phone]))) as PolicyAddress; // 18

    read = await verifiedRead(await node.range(0, node.size));
    timeline = timelineOf(read.history, read.steps);
  });

  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const entry = (gseq: number): TimelineEntry => {
    const found = timeline[gseq];
    if (found === undefined) throw new Error(`no entry ${gseq}`);
    return found;
  };

  it('has one entry per event, in log order, with its subject, seq, type, time and signers', () => {
    expect(timeline.map((e) => e.gseq)).toEqual(read.history.map((r) => r.gseq));
    expect(timeline.map((e) => e.time)).toEqual(read.history.map((r) => r.time));
    expect(timeline.map((e) => e.type)).toEqual(read.history.map((r) => r.event.type));
    expect(timeline.map((e) => e.subject)).toEqual([policy, policy, did, ...Array(5).fill(policy), did, did, ...Array(6).fill(policy), did, policy, second]);
    expect(timeline.map((e) => e.seq)).toEqual([0, 1, 0, 2, 3, 4, 5, 6, 1, 2, 7, 8, 9, 10, 11, 12, 3, 13, 0]);
    expect(entry(4).signers).toEqual([tablet.multikey]);
    expect(entry(10).signers).toEqual([r1.multikey, fresh.multikey]);
    expect(entry(18).signers).toEqual([other.multikey, phone.multikey]);
    expect(entry(14).time).toBe(iso(Date.parse(entry(13).time) + DELAY * 1000));
  });

  it('policy.create: the policy, its agents and its commitment (and rules only where they are not the defaults)', () => {
    expect(entry(0).changes).toEqual([
      { kind: 'policy-created', agents: 1 },
      added(laptop, ALL_FLAGS),
      { kind: 'recovery-committed', digests: 1, threshold: 1, delaySeconds: 0 },
    ]);
    expect(entry(18).changes).toEqual([
      { kind: 'policy-created', agents: 2 },
      ...byKey([added(other, ALL_FLAGS), added(phone, PROVE_REVOKE)]),
      { kind: 'rules-changed', from: DEFAULT_RULES, to: { ...DEFAULT_RULES, revoke: 2 } },
      { kind: 'recovery-committed', digests: 1, threshold: 1, delaySeconds: 0 },
    ]);
  });

  it('grant, re-grant with other flags, revoke, rules', () => {
    expect(entry(1).changes).toEqual([added(watch, PROVE)]);
    expect(entry(3).changes).toEqual([added(tablet, PROVE_GRANT)]);
    expect(entry(4).changes).toEqual([added(phone, PROVE)]);
    expect(entry(5).changes).toEqual([{ kind: 'flags-changed', key: phone.multikey, from: ['PROVE'], to: ['PROVE', 'PROVE_REVOKE'] }]);
    expect(entry(6).changes).toEqual([removed(tablet, PROVE_GRANT)]);
    expect(entry(7).changes).toEqual([{ kind: 'rules-changed', from: DEFAULT_RULES, to: { ...DEFAULT_RULES, revoke: 2 } }]);
  });

  it('a grant that only leaves out the key-agreement key: kx-changed, flags as they were', () => {
    expect(entry(15).changes).toEqual([{ kind: 'kx-changed', key: heir.multikey, from: heir.kx }]);
  });

  it('a recovery without delay: agents replaced, rules replaced, the next commitment (agents it keeps show nothing)', () => {
    expect(entry(10).changes).toEqual([
      ...byKey([added(fresh, PROVE), removed(phone, PROVE | PROVE_REVOKE), removed(watch, PROVE)]),
      { kind: 'rules-changed', from: { ...DEFAULT_RULES, revoke: 2 }, to: DEFAULT_RULES },
      { kind: 'recovery-committed', digests: 1, threshold: 1, delaySeconds: DELAY },
    ]);
  });

  it('a delayed recovery: pending, and nothing else changes; cancelled; pending again, then completed with its changes', () => {
    expect(entry(11).changes).toEqual([
      { kind: 'recovery-pending', since: entry(11).time, until: iso(Date.parse(entry(11).time) + DELAY * 1000), revealed: 1 },
    ]);
    expect(entry(12).changes).toEqual([{ kind: 'recovery-cancelled' }]);
    expect(entry(13).changes).toEqual([{ kind: 'recovery-pending', since: entry(13).time, until: entry(14).time, revealed: 1 }]);
    expect(entry(14).changes).toEqual([
      { kind: 'recovery-completed' },
      ...byKey([added(heir, ALL_FLAGS), removed(laptop, ALL_FLAGS), removed(fresh, PROVE)]),
      { kind: 'recovery-committed', digests: 1, threshold: 1, delaySeconds: 0 },
    ]);
  });

  it('did.create, did.update (services added, removed, changed; or none), did.deactivate', () => {
    expect(entry(2).changes).toEqual([
      { kind: 'did-created', controller: policy },
      { kind: 'services-changed', added: ['#agency', '#old'], removed: [], changed: [] },
    ]);
    expect(entry(8).changes).toEqual([{ kind: 'services-changed', added: ['#mail'], removed: ['#old'], changed: ['#agency'] }]);
    expect(entry(9).changes).toEqual([]);
    expect(entry(16).changes).toEqual([{ kind: 'did-deactivated' }]);
  });

  it("is the same for a read's own subjects as for the whole log", async () => {
    const subjects = new Set<string>([did, policy]);
    const own = await verifiedRead(read.history.filter((_, i) => subjects.has(entry(i).subject)));
    expect(timelineOf(own.history, own.steps)).toEqual(timeline.filter((e) => subjects.has(e.subject)));
  });

  it('refuses a history that is not of its steps', () => {
    const { [policy]: _dropped, ...withoutPolicy } = read.steps;
    expect(() => timelineOf(read.history, withoutPolicy)).toThrow(/no verified state/);
    const shifted = { ...read.steps, [did]: (read.steps[did] ?? []).map((s) => ({ ...s, record: { ...s.record, seq: s.record.seq + 1 } })) };
    expect(() => timelineOf(read.history, shifted)).toThrow(/seq/);
    expect(codeOf(() => timelineOf(read.history, withoutPolicy))).toBe('BAD_INPUT');
  });

  it('agentLanes: a lane per key in order of first appearance, a period per flag set, open while current', () => {
    const g = (i: number) => ({ gseq: entry(i).gseq, time: entry(i).time });
    const from = (i: number) => ({ fromGseq: g(i).gseq, fromTime: g(i).time });
    const to = (i: number) => ({ toGseq: g(i).gseq, toTime: g(i).time });
    expect(agentLanes(read.steps[policy] ?? [])).toEqual([
      { key: laptop.multikey, periods: [{ ...from(0), ...to(14), flags: flagNames(ALL_FLAGS) }] },
      { key: watch.multikey, periods: [{ ...from(1), ...to(10), flags: ['PROVE'] }] },
      { key: tablet.multikey, periods: [{ ...from(3), ...to(6), flags: ['PROVE_GRANT'] }] },
      {
        key: phone.multikey,
        periods: [
          { ...from(4), ...to(5), flags: ['PROVE'] },
          { ...from(5), ...to(10), flags: ['PROVE', 'PROVE_REVOKE'] },
        ],
      },
      { key: fresh.multikey, periods: [{ ...from(10), ...to(14), flags: ['PROVE'] }] },
      // The kx-only grant at 15 starts no period.
      { key: heir.multikey, periods: [{ ...from(14), flags: flagNames(ALL_FLAGS) }] },
      { key: late.multikey, periods: [{ ...from(17), flags: ['PROVE'] }] },
    ]);
    expect(agentLanes([])).toEqual([]);
  });

  it('agentLanes: an agent removed and granted again gets a new period after the gap', () => {
    const steps = read.steps[policy] ?? [];
    const at = (i: number) => steps[i] as StateStep;
    // The states after the tablet's grant, after its revocation, then the first of them again, as if granted anew.
    const lanes = agentLanes([at(0), at(2), at(5), { ...at(2), gseq: 100, time: iso(START + 100 * STEP) }]);
    const tabletLane = lanes.find((l) => l.key === tablet.multikey);
    expect(tabletLane?.periods).toEqual([
      { fromGseq: at(2).gseq, fromTime: at(2).time, toGseq: at(5).gseq, toTime: at(5).time, flags: ['PROVE_GRANT'] },
      { fromGseq: 100, fromTime: iso(START + 100 * STEP), flags: ['PROVE_GRANT'] },
    ]);
  });

  it("agentLanes refuses a DID's states", () => {
    expect(() => agentLanes(read.steps[did] ?? [])).toThrow(/not a policy's/);
    expect(codeOf(() => agentLanes(read.steps[did] ?? []))).toBe('BAD_INPUT');
  });
});
