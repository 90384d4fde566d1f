/** Building and signing events, for agents and the CLI. */
import { randomBytes, toBase64url, type Signer } from '../crypto/index.js';
import type { Agent, RecoveryCommitment, Rules } from '../policy/types.js';
import { signingBytes, type LedgerEvent, type Service, type Subject, type UnsignedEvent } from './events.js';

/** Signs `event` with every signer (a wallet's, a token's: any {@link Signer}); each signature covers the canonical event without `sigs`. */
export function signEvent(event: UnsignedEvent, signers: readonly Signer[]): LedgerEvent {
  const bytes = signingBytes(event);
  return { ...event, sigs: signers.map((s) => ({ kid: s.multikey, sig: toBase64url(s.sign(bytes)) })) } as LedgerEvent;
}

/** Adds further signatures to an event (m-of-n: each co-signer adds its own). */
export function addSignatures(event: LedgerEvent, signers: readonly Signer[]): LedgerEvent {
  const more = signEvent(event, signers).sigs;
  return { ...event, sigs: [...event.sigs, ...more] };
}

const nonce = () => toBase64url(randomBytes(16));

export function policyCreate(agents: readonly Agent[], recovery: RecoveryCommitment, rules?: Partial<Rules>): UnsignedEvent {
  return {
    v: 1,
    type: 'policy.create',
    seq: 0,
    prev: null,
    nonce: nonce(),
    agents: [...agents],
    recovery,
    ...(rules === undefined ? {} : { rules }),
  } as UnsignedEvent;
}

export function didCreate(policy: Subject, services: readonly Service[] = []): UnsignedEvent {
  return { v: 1, type: 'did.create', seq: 0, prev: null, nonce: nonce(), policy, services: [...services] } as UnsignedEvent;
}

/** The next event of a subject whose latest event is `head` at `seq`. */
export function nextEvent<T extends Record<string, unknown>>(
  type: Exclude<LedgerEvent['type'], 'policy.create' | 'did.create'>,
  subject: Subject,
  latest: { seq: number; head: string },
  body: T,
): UnsignedEvent {
  return { v: 1, type, subject, seq: latest.seq + 1, prev: latest.head, ...body } as unknown as UnsignedEvent;
}
