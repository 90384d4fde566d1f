/**
 * The verifier API: was this signature made by an agent that held PROVE in this owner's
 * policy at time t? Pure: it is handed the policy's history, which the ledger client has
 * already verified against the ledger's proofs, and fetches nothing.
 */
import { decodePublicKey, ed25519Verify } from '../crypto/index.js';
import { FLAGS, hasFlag } from './flags.js';
import type { Agent, PolicyRules } from './types.js';

/** The policy after each of its events, with the ledger time the event was accepted at, oldest first. */
export type PolicyHistory = readonly { readonly time: string; readonly policy: PolicyRules }[];

export type VerifyFailure = 'BAD_SIGNATURE' | 'BAD_KEY' | 'BAD_TIME' | 'BEFORE_POLICY' | 'NOT_AN_AGENT' | 'REVOKED' | 'NOT_PROVE';

export type AgentSignatureResult =
  { readonly valid: true; readonly agent: Agent; readonly asOf: string } | { readonly valid: false; readonly reason: VerifyFailure; readonly message: string };

export interface AgentSignature {
  /** The signer's Ed25519 key, multibase. */
  readonly key: string;
  readonly message: Uint8Array;
  readonly signature: Uint8Array;
  /** When the signature is said to have been made (ISO 8601). */
  readonly time: string;
}

const failure = (reason: VerifyFailure, message: string): AgentSignatureResult => ({ valid: false, reason, message });

export function verifyAgentSignature(history: PolicyHistory, claim: AgentSignature): AgentSignatureResult {
  let publicKey: Uint8Array;
  try {
    publicKey = decodePublicKey(claim.key, 'ed25519').publicKey;
  } catch {
    return failure('BAD_KEY', 'the key is not an Ed25519 public key');
  }
  // Times compare as instants, not as text (ISO strings of years past 9999 sort wrongly).
  const at = Date.parse(claim.time);
  if (Number.isNaN(at)) return failure('BAD_TIME', `'${claim.time}' is not an ISO 8601 date-time`);
  const index = history.findLastIndex((entry) => Date.parse(entry.time) <= at);
  const entry = history[index];
  if (entry === undefined) return failure('BEFORE_POLICY', `the policy did not exist at ${claim.time}`);
  const agent = entry.policy.agents.find((a) => a.key === claim.key);
  if (agent === undefined) {
    const earlier = history.slice(0, index).some((e) => e.policy.agents.some((a) => a.key === claim.key));
    return earlier
      ? failure('REVOKED', `the agent had been revoked by ${entry.time}`)
      : failure('NOT_AN_AGENT', `the key was not an agent of the policy at ${claim.time}`);
  }
  if (!hasFlag(agent.flags, FLAGS.PROVE)) return failure('NOT_PROVE', `the agent did not hold PROVE at ${claim.time}`);
  if (!ed25519Verify(publicKey, claim.message, claim.signature)) return failure('BAD_SIGNATURE', 'the signature does not verify with the key');
  return { valid: true, agent, asOf: entry.time };
}
