/**
 * What recovery keeps in an agent's wallet (encrypted at rest, and carried by backups). Never
 * R: only what R yielded publicly (the backup key, the locator, which recovery key is next) and
 * the state of the trustee protocol on each side.
 */
import { z } from 'zod';

import type { EdgeAgent } from '../agent/edge-agent.js';
import { RECOVERY_CATEGORIES } from './categories.js';

/** A label a peer chose and people will read: no control characters (terminal escapes). */
export const LabelSchema = z
  .string()
  .max(64)
  .regex(/^[^\p{Cc}]*$/u, 'a label has no control characters');

/** The owner's recovery as set up: where backups go and which recovery key the policy commits to. */
export const RecoverySetupSchema = z.object({
  v: z.literal(1),
  backupKey: z.string(),
  locator: z.string(),
  /** Index of the committed recovery signing key. */
  index: z.number().int().min(0),
  delay: z.number().int().min(0),
  offline: z.boolean(),
  social: z.object({ set: z.string(), threshold: z.number().int(), trustees: z.array(z.string()) }).optional(),
  created: z.string(),
  lastBackup: z.object({ version: z.number().int(), at: z.string() }).optional(),
});
export type RecoverySetup = z.infer<typeof RecoverySetupSchema>;

/** A change of recovery secret whose shares are with the new trustees but not yet committed. */
export const PreparedChangeSchema = z.object({
  v: z.literal(1),
  set: z.string(),
  threshold: z.number().int(),
  trustees: z.array(z.object({ id: z.string(), acked: z.boolean() })),
  /** What the new secret commits and where its backups go (all public). */
  next: z.object({ digest: z.string(), backupKey: z.string(), locator: z.string() }),
  delay: z.number().int().min(0),
  offline: z.boolean(),
  created: z.string(),
  /** A backup the new secret opens is stored (made once, before the ledger commits). */
  backedUp: z.boolean().optional(),
  /**
   * Set once the ledger committed the change and the new setup was written: what the old setup
   * was (its backups' locator, its trustees), for the steps that follow to finish on a later run.
   */
  finishing: z.object({ locator: z.string().optional(), trustees: z.array(z.string()) }).optional(),
});
export type PreparedChange = z.infer<typeof PreparedChangeSchema>;

/** One of the owner's trustees: another owner reached through a connection. */
export const TrusteeSchema = z.object({
  id: z.string(),
  connection: z.string(),
  label: z.string(),
  status: z.enum(['offered', 'accepted', 'declined']),
  /** The trustee's X25519 key for shares (set when it accepts). */
  shareKey: z.string().optional(),
  offered: z.string(),
});
export type Trustee = z.infer<typeof TrusteeSchema>;

/** Trustee side: an offer to become someone's trustee, waiting for `trustee approve|deny`. */
export const TrusteeOfferSchema = z.object({
  id: z.string(),
  connection: z.string(),
  owner: z.object({ label: z.string(), policy: z.string() }),
  received: z.string(),
  status: z.enum(['waiting', 'accepted', 'declined']),
});
export type TrusteeOffer = z.infer<typeof TrusteeOfferSchema>;

/** Trustee side: the shares held for one owner (by offer id), each prepared or active. */
export const HeldSharesSchema = z.object({
  offer: z.string(),
  connection: z.string(),
  owner: z.object({ label: z.string(), policy: z.string() }),
  shareKey: z.string(),
  shares: z.array(z.object({ set: z.string(), state: z.enum(['prepared', 'active']), share: z.unknown(), received: z.string() })),
});
export type HeldShares = z.infer<typeof HeldSharesSchema>;

/** Trustee side: a recovery request from someone claiming to be an owner. */
export const RecoveryRequestSchema = z.object({
  id: z.string(),
  key: z.string(),
  kx: z.string(),
  label: z.string(),
  received: z.string(),
  expires: z.string(),
  attempts: z.number().int(),
  status: z.enum(['waiting', 'released', 'denied', 'refused']),
  /** Wrong challenge answers, kept as a record. */
  failures: z.array(z.object({ at: z.string(), owner: z.string() })),
  releasedFor: z.string().optional(),
});
export type RecoveryRequest = z.infer<typeof RecoveryRequestSchema>;

/** New-device side: this device's recovery request. */
export const MyRequestSchema = z.object({
  id: z.string(),
  challenge: z.string(),
  agency: z.string(),
  label: z.string(),
  created: z.string(),
  expires: z.string(),
});
export type MyRequest = z.infer<typeof MyRequestSchema>;

export function readSetup(agent: EdgeAgent): RecoverySetup | undefined {
  return agent.store.read(RECOVERY_CATEGORIES.recovery, 'setup', RecoverySetupSchema);
}

export function readPrepared(agent: EdgeAgent): PreparedChange | undefined {
  return agent.store.read(RECOVERY_CATEGORIES.recovery, 'prepared', PreparedChangeSchema);
}

export function trustees(agent: EdgeAgent): Trustee[] {
  return agent.store.list(RECOVERY_CATEGORIES.trustee, TrusteeSchema).map((t) => t.value);
}
