/**
 * Edge agents as a library (`dkms/agent`): the owner's software on one device. An
 * {@link EdgeAgent} holds its keys in a wallet, reads the owner's policy from the ledger
 * (verified), keeps a mailbox at an agency through its cloud agent, and speaks DIDComm v2 with
 * the owner's other agents and with other owners.
 *
 * - Provisioning: {@link initFirstAgent} makes the owner's policy (and optionally a DID) with
 *   this agent holding every flag; {@link registerCloudAgent} opens its mailbox at an agency.
 * - Pairing a new device: {@link createInvitation} on an agent the owner has, then
 *   {@link answerInvitation}, {@link completePairing} and {@link awaitWelcome}.
 * - Connections with other owners: {@link inviteConnection}, {@link acceptConnection},
 *   {@link sendText}, {@link inbox} for what arrived and {@link sentMessages} for what was sent.
 * - Receiving: {@link EdgeAgent.receive} with handlers by message type ({@link agentHandlers}
 *   speaks every protocol of this module).
 * - Standing: {@link agentStanding} says whether this agent still acts for its owner, or was
 *   revoked or recovered away ({@link removedError} words that as AGENT_REMOVED).
 *
 * @example
 * ```ts
 * import { EdgeAgent, initFirstAgent, registerCloudAgent } from 'dkms/agent';
 *
 * const agent = new EdgeAgent(wallet, ledger);
 * const profile = await initFirstAgent(agent, { label: 'laptop', ledgerUrl });
 * await registerCloudAgent(agent, agencyUrl, 0);
 * ```
 * @module dkms/agent
 */

// The agent, and how it receives.
export { EdgeAgent, MAX_MESSAGE_AGE_SECONDS, recipientRef } from './edge-agent.js';
export type { EdgeAgentOptions, Handled, Handler, Handlers, ReceiveEntry, Sender } from './edge-agent.js';
export type { AgentStore, AgentView, AgentWallet, Cloud, KnownAgent, Profile } from './agent-store.js';
export { nameForPeers } from './agent-store.js';

// Provisioning: keys, the first agent (policy, DID), a cloud agent at an agency.
export { agentSigner, initFirstAgent, provisionKeys, registerCloudAgent } from './provision.js';
export type { AgentKeys, InitOptions } from './provision.js';

// Pairing another device of the same owner.
export {
  DEFAULT_PAIRING_TTL_SECONDS,
  INVITATION_SCHEME,
  PAIRING,
  answerInvitation,
  awaitWelcome,
  checkNameForPeers,
  checkPairing,
  completePairing,
  createInvitation,
  encodeInvitation,
  inviterHandlers,
  parseInvitation,
  setNameForPeers,
  unfinishedPairing,
  waitingHandlers,
} from './pairing.js';
export type { CreatedInvitation, Invitation, Paired } from './pairing.js';

// Connections with other owners, and text messages over them.
export {
  BASIC_MESSAGE,
  CONNECTION,
  CONNECTION_SCHEME,
  DEFAULT_CONNECTION_TTL_SECONDS,
  acceptConnection,
  connectionHandlers,
  connections,
  deleteConnection,
  findConnection,
  inbox,
  sentMessages,
  inviteConnection,
  parseConnectionInvitation,
  rotateConnection,
  sendText,
  sendToConnection,
} from './connections.js';
export type { ConnectionRecord, TextEntry } from './connections.js';

// Revoking an agent (m-of-n approvals by the owner's other agents) and hearing of changes.
export { answerApproval, approvalHandlers, pendingApprovals, revokeAgent } from './revocation.js';
export type { Approval, RevocationOutcome } from './revocation.js';
export { AGENTS_CHANGED, notificationHandlers } from './notifications.js';
export { agentStanding, removedError, standingIn } from './standing.js';
export type { Standing } from './standing.js';

// Imported after the exports so that the module comment above stays the first thing in the declarations.
import { approvalHandlers } from './revocation.js';
import { connectionHandlers } from './connections.js';
import type { Handlers } from './edge-agent.js';
import { notificationHandlers } from './notifications.js';
import { inviterHandlers } from './pairing.js';

/**
 * Every protocol of this module by message type: notifications, connections and text
 * messages, revocation approvals, and the inviter's side of pairing. Pass it to
 * {@link EdgeAgent.receive}; add the handlers of other protocols (recovery's) beside it.
 */
export const agentHandlers: Handlers = {
  ...notificationHandlers,
  ...connectionHandlers,
  ...approvalHandlers,
  ...inviterHandlers,
};
