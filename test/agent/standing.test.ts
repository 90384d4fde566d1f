/**
 * Where an agent stands in its owner's policy history: active while listed; revoked, or
 * recovered away, by the event that took it off the list (with that event's time and place);
 * and not yet, for an agent the policy never listed (a device still being paired or restored).
 * The words a removed device says come with AGENT_REMOVED.
 */
import { describe, expect, it } from 'vitest';
import { removedError, standingIn } from '../../src/agent/standing.js';
import type { LedgerEvent } from '../../src/ledger/events.js';
import type { LogRecord } from '../../src/ledger/state.js';

const ME = 'z6MkMe';
const OTHER = 'z6MkOther';
const NEW = 'z6MkNew';

let gseq = 0;
/** A record of the history, with the fields standing reads (type, agents, agent, key). */
function at(event: Record<string, unknown>): LogRecord {
  gseq += 1;
  return { gseq, time: `2026-12-0${gseq}T00:00:00.000Z`, event: event as unknown as LedgerEvent };
}
const agent = (key: string) => ({ key, flags: 1 });

describe('standingIn', () => {
  it('is active while the current policy lists the agent, whatever the history says', () => {
    const history = [
      at({ type: 'policy.create', agents: [agent(ME)] }),
      at({ type: 'policy.revoke', key: ME }),
      at({ type: 'policy.grant', agent: agent(ME) }),
    ];
    expect(standingIn(history, [agent(ME)], ME)).toEqual({ status: 'active' });
  });

  it('is not yet for an agent no event ever listed', () => {
    const history = [at({ type: 'policy.create', agents: [agent(OTHER)] }), at({ type: 'policy.revoke', key: OTHER })];
    expect(standingIn(history, [], ME)).toEqual({ status: 'not-yet' });
  });

  it('is revoked by the policy.revoke that named it, at its time and place', () => {
    const create = at({ type: 'policy.create', agents: [agent(OTHER)] });
    const grant = at({ type: 'policy.grant', agent: agent(ME) });
    const revoke = at({ type: 'policy.revoke', key: ME });
    // A later revocation of another agent changes nothing of it.
    const later = at({ type: 'policy.revoke', key: NEW });
    expect(standingIn([create, grant, revoke, later], [agent(OTHER)], ME)).toEqual({ status: 'revoked', at: revoke.time, gseq: revoke.gseq });
  });

  it('is recovered away by a recovery that named other agents, at once or when a delayed one completes', () => {
    const create = at({ type: 'policy.create', agents: [agent(ME), agent(OTHER)] });
    const recover = at({ type: 'policy.recover', next: 'x', agents: [agent(NEW)] });
    expect(standingIn([create, recover], [agent(NEW)], ME)).toEqual({ status: 'recovered-away', at: recover.time, gseq: recover.gseq });
    const pending = at({ type: 'policy.recover', next: 'y', agents: [agent(NEW)] });
    const complete = at({ type: 'policy.complete' });
    expect(standingIn([create, pending, complete], [agent(NEW)], ME)).toEqual({ status: 'recovered-away', at: complete.time, gseq: complete.gseq });
  });
});

describe('removedError', () => {
  it('words each removal as AGENT_REMOVED, and has nothing to say of an active agent', () => {
    expect(removedError({ status: 'active' }, ME)).toBeUndefined();
    expect(removedError({ status: 'not-yet' }, ME)).toBeUndefined();
    const revoked = removedError({ status: 'revoked', at: '2026-12-06T10:00:00.000Z', gseq: 7 }, ME);
    expect(revoked?.code).toBe('AGENT_REMOVED');
    expect(revoked?.message).toMatch(
      /^this device's agent \(z6MkMe\) was revoked at 2026-12-06T10:00:00\.000Z \(ledger event 7\): it no longer acts for the owner/,
    );
    const away = removedError({ status: 'recovered-away', at: '2026-12-06T11:00:00.000Z', gseq: 9 }, ME);
    expect(away?.message).toMatch(/was replaced at 2026-12-06T11:00:00\.000Z by a recovery of the owner's policy that named other agents \(ledger event 9\)/);
    expect(away?.message).not.toMatch(/backup/);
  });
});
