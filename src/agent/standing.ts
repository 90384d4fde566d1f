/**
 * Whether this device's agent still acts for its owner. A device whose agent was revoked, or
 * replaced by a recovery, keeps its wallet and its keys, but nothing it signs counts any more:
 * its messages go nowhere, its mailbox is gone, a backup is refused. It learns so from the
 * owner's verified policy, and says so rather than carrying on as if nothing had happened.
 */
import { DkmsError } from '../errors.js';
import type { LedgerEvent, PolicyAddress } from '../ledger/events.js';
import type { LogRecord } from '../ledger/state.js';
import type { EdgeAgent } from './edge-agent.js';

export type Standing =
  | { readonly status: 'active' }
  /** The owner's policy never listed this agent (a device still being paired or restored). */
  | { readonly status: 'not-yet' }
  /** Removed by `policy.revoke` (revoked) or by a recovery that named other agents (recovered-away), at that event's time. */
  | { readonly status: 'revoked' | 'recovered-away'; readonly at: string; readonly gseq: number };

/** The agent keys an event adds to the policy's list of agents. */
function added(event: LedgerEvent): readonly string[] {
  switch (event.type) {
    case 'policy.create':
      return event.agents.map((a) => a.key);
    case 'policy.grant':
      return [event.agent.key];
    case 'policy.recover':
      return event.agents?.map((a) => a.key) ?? [];
    default:
      return [];
  }
}

/** Whether `event` is one after which the policy may no longer list `key`. */
function mayRemove(event: LedgerEvent, key: string): boolean {
  return (event.type === 'policy.revoke' && event.key === key) || event.type === 'policy.recover' || event.type === 'policy.complete';
}

/** What the owner's policy history, verified, says of the agent `key`. */
export function standingIn(history: readonly LogRecord[], agents: readonly { readonly key: string }[], key: string): Standing {
  if (agents.some((a) => a.key === key)) return { status: 'active' };
  if (!history.some((r) => added(r.event).includes(key))) return { status: 'not-yet' };
  // The last event that could have taken it off the list did.
  const removal = history.findLast((r) => mayRemove(r.event, key));
  if (removal === undefined) return { status: 'not-yet' };
  return { status: removal.event.type === 'policy.revoke' ? 'revoked' : 'recovered-away', at: removal.time, gseq: removal.gseq };
}

/** Reads the owner's policy (verified) and says where this agent stands in it. */
export async function agentStanding(agent: EdgeAgent): Promise<Standing> {
  const profile = agent.profile;
  const { history, record } = await agent.ledger.resolvePolicy(profile.policy as PolicyAddress);
  return standingIn(history, record.policy.agents, profile.key);
}

/** AGENT_REMOVED, in words, for an agent that no longer acts for its owner; nothing for one that does. */
export function removedError(standing: Standing, key: string): DkmsError | undefined {
  if (standing.status !== 'revoked' && standing.status !== 'recovered-away') return undefined;
  const what =
    standing.status === 'revoked'
      ? `was revoked at ${standing.at}`
      : `was replaced at ${standing.at} by a recovery of the owner's policy that named other agents`;
  return new DkmsError(
    'AGENT_REMOVED',
    `this device's agent (${key}) ${what} (ledger event ${standing.gseq}): it no longer acts for the owner, and nothing it signs or sends counts. Use one of the owner's current devices, or pair this one again from a fresh data directory`,
  );
}
