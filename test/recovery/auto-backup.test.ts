/**
 * The automatic backup rule (recovery/auto-backup.ts), which every program that changes an
 * agent's wallet applies after the change: nothing before recovery is set up; a new backup
 * version at the cloud agent once it is; and a failure reported, not thrown, so that the change
 * itself stands and the next one tries again.
 */
import { describe, expect, it } from 'vitest';
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { backUpAfterChange } from '../../src/recovery/auto-backup.js';
import { commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { world } from '../helpers/world.js';

describe('the automatic backup rule', () => {
  it('stores nothing before recovery is set up, then a new version after each change, and reports a failure without throwing', async () => {
    const w = await world();
    const alice = await w.makeOwner('alice');
    expect(await backUpAfterChange(alice)).toEqual({ stored: false, reason: 'not-set-up' });

    await prepareRecovery(alice, { offline: true, delay: 0 });
    expect((await commitRecovery(alice)).state).toBe('committed');
    const first = await backUpAfterChange(alice);
    const second = await backUpAfterChange(alice);
    expect(first).toEqual({ stored: true, version: expect.any(Number) });
    expect(second).toEqual({ stored: true, version: (first as { version: number }).version + 1 });

    // The same wallet, with the agency out of reach: the rule says why, and throws nothing.
    const cut = new EdgeAgent(alice.wallet, alice.ledger, { fetch: () => Promise.reject(new TypeError('fetch failed')) });
    const failed = await backUpAfterChange(cut);
    expect(failed).toMatchObject({ stored: false, reason: 'failed', error: { code: 'AGENCY_UNREACHABLE' } });
  });
});
