/**
 * Ledger events (docs/ledger.md): wire schemas, identifiers and signing bytes.
 *
 * Every event has `v`, `type`, `seq`, `prev` and `sigs`; all but the two inception events
 * (`policy.create`, `did.create`) name their `subject`. An inception event instead carries a
 * random `nonce`, and its subject is derived from its own id, so identifiers are
 * self-certifying: `policy:<id>` and `did:dkms:<id>`. An event's id is the base58btc SHA-256
 * of its canonical JSON (RFC 8785) without `sigs`, which is also what each signature covers.
 */
import { z } from 'zod';
import {
  byteLength,
  canonicalBytes,
  canonicalJson,
  decodePublicKey,
  fromBase58btc,
  fromBase64url,
  isSmallOrderEd25519,
  sha256,
  toBase58btc,
} from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { isFlags } from '../policy/flags.js';
import { isDigest } from '../policy/authority.js';
import type { PolicyChange } from '../policy/types.js';

export type EventId = string & { readonly __brand: 'EventId' };
export type PolicyAddress = `policy:${string}`;
export type Did = `did:dkms:${string}`;
export type Subject = PolicyAddress | Did;

export const POLICY_PREFIX = 'policy:';
export const DID_PREFIX = 'did:dkms:';
/** Largest canonical event accepted. */
export const MAX_EVENT_BYTES = 64 * 1024;
/** The longest delay a recovery commitment may set: a year. */
export const MAX_RECOVERY_DELAY_SECONDS = 365 * 24 * 3600;

function isBase58Digest(text: string): boolean {
  try {
    return fromBase58btc(text).length === 32;
  } catch {
    return false;
  }
}

function isPublicKey(text: string, type: 'ed25519' | 'x25519'): boolean {
  try {
    const { publicKey } = decodePublicKey(text, type);
    return type !== 'ed25519' || !isSmallOrderEd25519(publicKey);
  } catch {
    return false;
  }
}

function isBase64urlOf(text: string, min: number, max: number): boolean {
  try {
    const n = fromBase64url(text).length;
    return n >= min && n <= max;
  } catch {
    return false;
  }
}

const eventIdSchema = z.string().max(64).refine(isBase58Digest, 'must be a base58btc SHA-256 digest');
const policyAddress = z
  .string()
  .max(80)
  .refine((s) => s.startsWith(POLICY_PREFIX) && isBase58Digest(s.slice(POLICY_PREFIX.length)), 'must be a policy address (policy:…)');
const did = z
  .string()
  .max(80)
  .refine((s) => s.startsWith(DID_PREFIX) && isBase58Digest(s.slice(DID_PREFIX.length)), 'must be a did:dkms DID');
const signingKey = z
  .string()
  .max(64)
  .refine((s) => isPublicKey(s, 'ed25519'), 'must be an Ed25519 public key (z6Mk…) of a real key pair');
const agreementKey = z
  .string()
  .max(64)
  .refine((s) => isPublicKey(s, 'x25519'), 'must be an X25519 public key (z6LS…)');
const count = z.number().int().min(1).max(64);
const nonce = z
  .string()
  .max(64)
  .refine((s) => isBase64urlOf(s, 16, 32), 'must be 16 to 32 random bytes, base64url');

const agent = z.strictObject({ key: signingKey, kx: agreementKey.optional(), flags: z.number().refine(isFlags, 'must be a flag bitset') });
const agents = z.array(agent).min(1).max(64);
const rules = z.strictObject({ grant: count, revoke: count, rules: count, did: count });
const recovery = z.strictObject({
  digests: z.array(z.string().max(64).refine(isDigest, 'must be a base58btc SHA-256 digest')).min(1).max(16),
  threshold: count,
  delay: z.number().int().min(0).max(MAX_RECOVERY_DELAY_SECONDS).optional(),
});
const service = z.strictObject({
  id: z.string().regex(/^#[A-Za-z0-9._~-]{1,64}$/, 'must be a fragment like #agency'),
  type: z.string().min(1).max(100),
  serviceEndpoint: z.url({ protocol: /^https?$/ }).max(2000),
});
const services = z
  .array(service)
  .max(32)
  .refine((list) => new Set(list.map((s) => s.id)).size === list.length, 'service ids must be unique');
const sig = z.strictObject({
  kid: signingKey,
  sig: z
    .string()
    .max(100)
    .refine((s) => isBase64urlOf(s, 64, 64), 'must be a 64-byte signature, base64url'),
});
const sigs = z.array(sig).min(1).max(64);

const common = { v: z.literal(1), sigs };
const next = {
  seq: z
    .number()
    .int()
    .min(1)
    .max(2 ** 31),
  prev: eventIdSchema,
};
const inception = { seq: z.literal(0), prev: z.null(), nonce };

export const LedgerEvent = z.discriminatedUnion('type', [
  z.strictObject({ ...common, ...inception, type: z.literal('policy.create'), agents, rules: rules.partial().optional(), recovery }),
  z.strictObject({ ...common, ...next, type: z.literal('policy.grant'), subject: policyAddress, agent }),
  z.strictObject({ ...common, ...next, type: z.literal('policy.revoke'), subject: policyAddress, key: signingKey }),
  z.strictObject({ ...common, ...next, type: z.literal('policy.rules'), subject: policyAddress, rules }),
  z.strictObject({
    ...common,
    ...next,
    type: z.literal('policy.recover'),
    subject: policyAddress,
    next: recovery,
    agents: agents.optional(),
    rules: rules.optional(),
  }),
  z.strictObject({ ...common, ...next, type: z.literal('policy.cancel'), subject: policyAddress }),
  z.strictObject({ ...common, ...next, type: z.literal('policy.complete'), subject: policyAddress }),
  z.strictObject({ ...common, ...inception, type: z.literal('did.create'), policy: policyAddress, services }),
  z.strictObject({ ...common, ...next, type: z.literal('did.update'), subject: did, services }),
  z.strictObject({ ...common, ...next, type: z.literal('did.deactivate'), subject: did }),
]);
export type LedgerEvent = z.infer<typeof LedgerEvent>;
export type UnsignedEvent = DistributiveOmit<LedgerEvent, 'sigs'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type Service = z.infer<typeof service>;

export const isInception = (event: { type: string }): boolean => event.type === 'policy.create' || event.type === 'did.create';

/** Parses untrusted input into an event: EVENT_TOO_LARGE or EVENT_MALFORMED naming the first problem. */
export function parseEvent(raw: unknown): LedgerEvent {
  return prepareEvent(raw).event;
}

/** A parsed event with what validation and storage need, each computed once. */
export interface PreparedEvent {
  readonly event: LedgerEvent;
  /** Canonical JSON without `sigs`: what the signatures cover and the id hashes. */
  readonly signingBytes: Uint8Array;
  readonly id: EventId;
  readonly subject: Subject;
  /** Canonical JSON of the whole event, as stored and as the Merkle leaf embeds it. */
  readonly canonical: string;
}

export function prepareEvent(raw: unknown): PreparedEvent {
  const result = LedgerEvent.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? 'event' : issue.path.join('.');
    throw new DkmsError('EVENT_MALFORMED', `${where}: ${issue?.message ?? 'invalid'}`);
  }
  const event = result.data;
  let canonical: string;
  try {
    canonical = canonicalJson(event);
  } catch (e) {
    throw new DkmsError('EVENT_MALFORMED', `event: ${e instanceof Error ? e.message : 'not JSON'}`);
  }
  if (byteLength(canonical) > MAX_EVENT_BYTES) throw new DkmsError('EVENT_TOO_LARGE', `event is larger than ${MAX_EVENT_BYTES} bytes`);
  const bytes = signingBytes(event);
  const id = toBase58btc(sha256(bytes)) as EventId;
  const subject =
    event.type === 'policy.create'
      ? (`${POLICY_PREFIX}${id}` as const)
      : event.type === 'did.create'
        ? (`${DID_PREFIX}${id}` as const)
        : (event.subject as Subject);
  return { event, signingBytes: bytes, id, subject, canonical };
}

function withoutSigs(event: LedgerEvent | UnsignedEvent): UnsignedEvent {
  const { sigs: _sigs, ...rest } = event as LedgerEvent;
  return rest as UnsignedEvent;
}

/** The bytes every signature on the event covers. */
export function signingBytes(event: LedgerEvent | UnsignedEvent): Uint8Array {
  return canonicalBytes(withoutSigs(event));
}

export function eventId(event: LedgerEvent | UnsignedEvent): EventId {
  return toBase58btc(sha256(signingBytes(event))) as EventId;
}

/** The subject an event is about: named, or derived from the inception event's own id. */
export function subjectOf(event: LedgerEvent | UnsignedEvent): Subject {
  if (event.type === 'policy.create') return `${POLICY_PREFIX}${eventId(event)}`;
  if (event.type === 'did.create') return `${DID_PREFIX}${eventId(event)}`;
  return event.subject as Subject;
}

export const isDid = (subject: string): subject is Did => subject.startsWith(DID_PREFIX);

/** The policy change an event carries, for the rules in policy/. */
export function policyChangeOf(event: LedgerEvent): PolicyChange | undefined {
  switch (event.type) {
    case 'policy.create':
      return { type: event.type, agents: event.agents, recovery: event.recovery, ...(event.rules === undefined ? {} : { rules: event.rules }) };
    case 'policy.grant':
      return { type: event.type, agent: event.agent };
    case 'policy.revoke':
      return { type: event.type, key: event.key };
    case 'policy.rules':
      return { type: event.type, rules: event.rules };
    case 'policy.recover':
      return {
        type: event.type,
        next: event.next,
        ...(event.agents === undefined ? {} : { agents: event.agents }),
        ...(event.rules === undefined ? {} : { rules: event.rules }),
      };
    case 'policy.cancel':
    case 'policy.complete':
      return { type: event.type };
    default:
      return undefined;
  }
}
