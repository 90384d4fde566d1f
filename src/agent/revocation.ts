/**
 * Revoking an agent (docs/agents.md). An authorized agent signs `policy.revoke`; where the
 * policy's rules need m signatures, it asks the owner's other agents that may revoke to co-sign
 * on their own devices, through messaging, and submits once it has enough. After the ledger
 * accepts it: the cloud agent stops routing to the revoked agent, the other agents are told,
 * and this agent rotates every connection the revoked agent held keys of.
 */
import { z } from 'zod';
import { decodePublicKey, ed25519Verify, fromBase64url, randomId } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { nextEvent, signEvent } from '../ledger/build.js';
import { signingBytes, type LedgerEvent } from '../ledger/events.js';
import { ADMIN_ONLY, FLAGS, hasFlag } from '../policy/flags.js';
import type { Agent } from '../policy/types.js';
import { CATEGORIES, type KnownAgent } from './agent-store.js';
import { dropAgentFromConnections } from './connections.js';
import { newMessage } from '../didcomm/index.js';
import type { EdgeAgent, Handlers } from './edge-agent.js';
import { AGENTS_CHANGED } from './notifications.js';

export const APPROVAL_REQUEST = 'urn:dkms:approval/1.0/request';
export const APPROVAL_RESPONSE = 'urn:dkms:approval/1.0/response';

const Sig = z.object({ kid: z.string().max(100), sig: z.string().max(100) });
const EventShape = z.record(z.string(), z.unknown());
const RequestRecord = z.object({
  id: z.string(),
  target: z.string(),
  needed: z.number().int(),
  event: EventShape,
  created: z.string(),
  declined: z.array(z.string()),
});
const ApprovalRecord = z.object({
  id: z.string(),
  from: z.string(),
  fromLabel: z.string().optional(),
  target: z.string(),
  reason: z.string(),
  event: EventShape,
  received: z.string(),
});
export type Approval = z.infer<typeof ApprovalRecord>;

export interface RevocationOutcome {
  readonly state: 'revoked' | 'waiting';
  readonly target: string;
  readonly requestId?: string;
  readonly signatures: number;
  readonly needed: number;
  readonly rotated?: readonly string[];
}

/** Who may co-sign the revocation of `target`: flags that permit it, not the target itself. */
function canRevoke(agent: Pick<Agent, 'flags' | 'key'>, target: Agent): boolean {
  if (agent.key === target.key) return false;
  return (target.flags & ADMIN_ONLY) !== 0 ? hasFlag(agent.flags, FLAGS.ADMIN) : hasFlag(agent.flags, FLAGS.PROVE_REVOKE);
}

/** Finds an agent by its key or its label in this agent's view. */
export async function resolveAgent(agent: EdgeAgent, ref: string): Promise<KnownAgent> {
  const view = await agent.refreshAgents();
  const found = view.agents.filter((a) => a.key === ref || a.label === ref);
  if (found.length === 1) return found[0] as KnownAgent;
  if (found.length > 1) throw new DkmsError('BAD_INPUT', `several agents are labelled '${ref}': use the key`);
  throw new DkmsError('AGENT_NOT_FOUND', `no agent '${ref.slice(0, 80)}' in the owner's policy`);
}

/** Signs the revocation of `targetKey`; submits it, or asks co-signers when the rules need more. */
export async function revokeAgent(agent: EdgeAgent, targetKey: string): Promise<RevocationOutcome> {
  const record = await agent.policy();
  const target = record.policy.agents.find((a) => a.key === targetKey);
  if (target === undefined) throw new DkmsError('AGENT_NOT_FOUND', `agent ${targetKey} is not in the owner's policy`);
  const needed = record.policy.rules.revoke;
  const cosigners = record.policy.agents.filter((a) => a.key !== agent.profile.key && canRevoke(a, target));
  if (needed > 1) refuseUnreachable(cosigners, needed);
  const event = signEvent(nextEvent('policy.revoke', record.subject, record, { key: targetKey }), [agent.signingKey()]);
  if (needed <= 1) return finishRevocation(agent, event, targetKey, needed);
  const id = randomId();
  agent.store.write(CATEGORIES.request, id, { id, target: targetKey, needed, event, created: new Date().toISOString(), declined: [] });
  const label = (await agent.refreshAgents()).agents.find((a) => a.key === targetKey)?.label ?? targetKey;
  await agent.notifyAgents(newMessage(APPROVAL_REQUEST, { id, event, reason: `revoke agent '${label}' (${targetKey})` }), (a) =>
    cosigners.some((c) => c.key === a.key),
  );
  return { state: 'waiting', target: targetKey, requestId: id, signatures: 1, needed };
}

/**
 * EVENT_THRESHOLD, before anything is signed or sent, when the co-signatures a revocation needs
 * can never be gathered: too few other agents may co-sign it (revoking the only other co-signer,
 * say), or some of them cannot be asked, having no key-agreement key to be messaged by.
 */
function refuseUnreachable(cosigners: readonly Agent[], needed: number): void {
  const others = needed - 1;
  if (cosigners.length < others) {
    throw new DkmsError(
      'EVENT_THRESHOLD',
      `the rules need ${needed} signatures to revoke this agent, and only ${cosigners.length + 1} agent(s) may give one (this one included): it can never be revoked so; change the rules first`,
    );
  }
  const reachable = cosigners.filter((a) => a.kx !== undefined);
  if (reachable.length < others) {
    const mute = cosigners.filter((a) => a.kx === undefined).map((a) => a.key);
    throw new DkmsError(
      'EVENT_THRESHOLD',
      `the rules need ${needed} signatures to revoke this agent, and only ${reachable.length + 1} of the agents that may give one can be asked: ${mute.join(', ')} ha${mute.length === 1 ? 's' : 've'} no key-agreement key (grant again with --kx, or pair the device)`,
    );
  }
}

async function finishRevocation(agent: EdgeAgent, event: LedgerEvent, target: string, needed: number): Promise<RevocationOutcome> {
  await agent.ledger.submit(event);
  const cloud = agent.profile.cloud;
  if (cloud !== undefined) await agent.agency(cloud).sync(cloud.id);
  await agent.refreshAgents();
  await agent.notifyAgents(newMessage(AGENTS_CHANGED, { policy: agent.profile.policy, revoked: [target] }));
  const rotated = await dropAgentFromConnections(agent, target);
  return { state: 'revoked', target, signatures: event.sigs.length, needed, rotated };
}

/** The approvals other agents asked this one for. */
export function pendingApprovals(agent: EdgeAgent): Approval[] {
  return agent.store.list(CATEGORIES.approval, ApprovalRecord).map((r) => r.value);
}

/** Approves (co-signs) or declines a request; the answer goes back to the agent that asked. */
export async function answerApproval(agent: EdgeAgent, id: string, approve: boolean): Promise<Approval> {
  const approval = pendingApprovals(agent).find((a) => a.id === id);
  if (approval === undefined) throw new DkmsError('APPROVAL_NOT_FOUND', `no approval request '${id.slice(0, 40)}'`);
  const view = await agent.refreshAgents();
  const requester = view.agents.find((a) => a.key === approval.from);
  agent.store.remove(CATEGORIES.approval, id);
  if (requester === undefined) throw new DkmsError('AGENT_NOT_FOUND', 'the agent that asked is no longer in the policy');
  const event = approval.event as unknown as LedgerEvent;
  const record = await agent.policy();
  if (approval.event['subject'] !== record.subject || event.seq !== record.seq + 1 || event.prev !== record.head) {
    throw new DkmsError('EVENT_STALE_SEQ', 'the policy changed since the request was made: it must be asked again');
  }
  const body = approve ? { id, sig: signEvent(event, [agent.signingKey()]).sigs[0] } : { id, declined: true };
  await agent.sendToAgents(newMessage(APPROVAL_RESPONSE, body), [requester]);
  return approval;
}

export const approvalHandlers: Handlers = {
  [APPROVAL_REQUEST]: {
    from: 'agent',
    async handle(agent, message, sender) {
      const parsed = z.object({ id: z.string().max(64), event: EventShape, reason: z.string().max(300) }).safeParse(message.body);
      if (!parsed.success || parsed.data.event['type'] !== 'policy.revoke' || parsed.data.event['subject'] !== agent.profile.policy) {
        throw new DkmsError('MESSAGE_MALFORMED', 'malformed approval request');
      }
      const { id, event, reason } = parsed.data;
      const from = sender.agent?.key ?? '';
      const approval: Approval = {
        id,
        from,
        ...(sender.agent?.label === undefined ? {} : { fromLabel: sender.agent.label }),
        target: String(event['key']),
        reason,
        event,
        received: new Date().toISOString(),
      };
      agent.store.write(CATEGORIES.approval, id, approval);
      return { summary: `approval requested by ${sender.agent?.label ?? from}: ${reason} (dkms agent approve ${id})`, data: { approval: { id, reason } } };
    },
  },
  [APPROVAL_RESPONSE]: {
    from: 'agent',
    async handle(agent, message, sender) {
      const parsed = z.object({ id: z.string().max(64), sig: Sig.optional(), declined: z.boolean().optional() }).safeParse(message.body);
      if (!parsed.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed approval response');
      const request = agent.store.read(CATEGORIES.request, parsed.data.id, RequestRecord);
      if (request === undefined) throw new DkmsError('APPROVAL_NOT_FOUND', 'no revocation of ours is waiting for that approval');
      const from = sender.agent?.key ?? '';
      if (parsed.data.declined === true || parsed.data.sig === undefined) {
        agent.store.write(CATEGORIES.request, request.id, { ...request, declined: [...request.declined, from] });
        return { summary: `${sender.agent?.label ?? from} declined the revocation`, data: { declined: { id: request.id, by: from } } };
      }
      const event = request.event as unknown as LedgerEvent;
      const { sig } = parsed.data;
      const record = await agent.policy();
      const target = record.policy.agents.find((a) => a.key === request.target);
      const cosigner = record.policy.agents.find((a) => a.key === from);
      if (target === undefined || cosigner === undefined || !canRevoke(cosigner, target)) {
        throw new DkmsError('EVENT_UNAUTHORIZED', 'that agent may not co-sign this revocation');
      }
      if (sig.kid !== from || !ed25519Verify(decodePublicKey(from, 'ed25519').publicKey, signingBytes(event), fromBase64url(sig.sig, 'signature'))) {
        throw new DkmsError('EVENT_BAD_SIGNATURE', 'the co-signature does not verify');
      }
      const signed = { ...event, sigs: [...event.sigs.filter((s) => s.kid !== from), sig] } as LedgerEvent;
      if (signed.sigs.length < request.needed) {
        agent.store.write(CATEGORIES.request, request.id, { ...request, event: signed });
        return {
          summary: `co-signed by ${sender.agent?.label ?? from} (${signed.sigs.length} of ${request.needed})`,
          data: { cosigned: { id: request.id, signatures: signed.sigs.length } },
        };
      }
      // The request is kept until the ledger has accepted the revocation: a refusal or an
      // unreachable ledger leaves it open for the next answer or run.
      agent.store.write(CATEGORIES.request, request.id, { ...request, event: signed });
      const outcome = await finishRevocation(agent, signed, request.target, request.needed);
      agent.store.remove(CATEGORIES.request, request.id);
      return { summary: `revoked ${request.target} with ${signed.sigs.length} signatures`, data: { revoked: { ...outcome } } };
    },
  },
};
