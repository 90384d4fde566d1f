/**
 * A connection's key-event log: each side of a pairwise relationship has its own identifier
 * and its own log of which keys (one pair per agent of that owner) speak for it. Both sides keep
 * both logs. The identifier commits to the inception event (`conn:<digest>`); every later event
 * must be signed by a key the log authorized before it, so a peer can verify a rotation it
 * receives against what it already knows. `conn.disable` is final. Pure: no I/O.
 */
import { z } from 'zod';
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, sha256, toBase58btc, toBase64url, type Signer } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

export const CONNECTION_PREFIX = 'conn:';
const MultibaseKey = z.string().regex(/^z[1-9A-HJ-NP-Za-km-z]{40,60}$/);

export const ConnKeySchema = z.strictObject({ key: MultibaseKey, kx: MultibaseKey });
export type ConnKey = z.infer<typeof ConnKeySchema>;

export const EndpointSchema = z.strictObject({ uri: z.string().url().max(2048), routingKey: z.string().max(300), did: z.string().max(200) });
export type Endpoint = z.infer<typeof EndpointSchema>;

const Sig = z.strictObject({ kid: MultibaseKey, sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/) });
const Keys = z.array(ConnKeySchema).min(1).max(16);

export const ConnEventSchema = z.discriminatedUnion('type', [
  z.strictObject({
    v: z.literal(1),
    type: z.literal('conn.inception'),
    seq: z.literal(0),
    prev: z.null(),
    nonce: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
    keys: Keys,
    endpoint: EndpointSchema,
    sigs: z.array(Sig).min(1).max(16),
  }),
  z.strictObject({
    v: z.literal(1),
    type: z.literal('conn.rotate'),
    id: z.string().max(80),
    seq: z.number().int().min(1),
    prev: z.string().max(80),
    keys: Keys,
    endpoint: EndpointSchema.optional(),
    sigs: z.array(Sig).min(1).max(16),
  }),
  z.strictObject({
    v: z.literal(1),
    type: z.literal('conn.disable'),
    id: z.string().max(80),
    seq: z.number().int().min(1),
    prev: z.string().max(80),
    sigs: z.array(Sig).min(1).max(16),
  }),
]);
export type ConnEvent = z.infer<typeof ConnEventSchema>;
export type UnsignedConnEvent = DistributiveOmit<ConnEvent, 'sigs'>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export interface ConnState {
  readonly id: string;
  readonly seq: number;
  readonly head: string;
  readonly keys: readonly ConnKey[];
  readonly endpoint: Endpoint;
  readonly disabled: boolean;
}

const invalid = (message: string) => new DkmsError('CONNECTION_EVENT_INVALID', message);

function unsigned(event: ConnEvent): UnsignedConnEvent {
  const { sigs: _sigs, ...rest } = event;
  return rest;
}

/** The digest naming an event: of its canonical form without signatures. */
export function connEventId(event: ConnEvent | UnsignedConnEvent): string {
  const { sigs: _sigs, ...rest } = event as ConnEvent;
  return toBase58btc(sha256(canonicalBytes(rest)));
}

export function signConnEvent(event: UnsignedConnEvent, signers: readonly Signer[]): ConnEvent {
  const bytes = canonicalBytes(event);
  return ConnEventSchema.parse({ ...event, sigs: signers.map((s) => ({ kid: s.multikey, sig: toBase64url(s.sign(bytes)) })) });
}

/** The keys among `allowed` that validly signed `event`. */
function validSigners(event: ConnEvent, allowed: readonly ConnKey[]): Set<string> {
  const bytes = canonicalBytes(unsigned(event));
  const ok = new Set<string>();
  for (const { kid, sig } of event.sigs) {
    if (!allowed.some((k) => k.key === kid)) continue;
    try {
      if (ed25519Verify(decodePublicKey(kid, 'ed25519').publicKey, bytes, fromBase64url(sig))) ok.add(kid);
    } catch {
      // A malformed key or signature simply does not count.
    }
  }
  return ok;
}

function checkKeys(keys: readonly ConnKey[]): void {
  for (const k of keys) {
    try {
      decodePublicKey(k.key, 'ed25519');
      decodePublicKey(k.kx, 'x25519');
    } catch {
      throw invalid('a connection key is not an Ed25519/X25519 pair');
    }
  }
  if (new Set(keys.map((k) => k.key)).size !== keys.length) throw invalid('a key appears twice');
}

/**
 * Applies one event to a log's state (undefined before inception). Refuses with
 * CONNECTION_EVENT_INVALID (shape, seq, prev, id), CONNECTION_EVENT_UNAUTHORIZED (not signed by a
 * key authorized before it; for inception, by every key it names) or CONNECTION_DELETED.
 */
export function applyConnEvent(state: ConnState | undefined, raw: unknown): ConnState {
  const parsed = ConnEventSchema.safeParse(raw);
  if (!parsed.success) throw invalid(`malformed connection event: ${parsed.error.issues[0]?.message ?? ''}`);
  const event = parsed.data;
  const id = connEventId(event);
  if (event.type === 'conn.inception') {
    if (state !== undefined) throw invalid('a log has one inception event');
    checkKeys(event.keys);
    const signers = validSigners(event, event.keys);
    if (!event.keys.every((k) => signers.has(k.key)))
      throw new DkmsError('CONNECTION_EVENT_UNAUTHORIZED', 'an inception event must be signed by every key it names');
    return { id: `${CONNECTION_PREFIX}${id}`, seq: 0, head: id, keys: event.keys, endpoint: event.endpoint, disabled: false };
  }
  if (state === undefined) throw invalid('the log must start with its inception event');
  if (state.disabled) throw new DkmsError('CONNECTION_DELETED', 'the connection was deleted: its log takes no more events');
  if (event.id !== state.id) throw invalid('the event is for another connection');
  if (event.seq !== state.seq + 1 || event.prev !== state.head) throw invalid(`expected seq ${state.seq + 1} after ${state.head}`);
  if (validSigners(event, state.keys).size === 0) {
    throw new DkmsError('CONNECTION_EVENT_UNAUTHORIZED', 'the event is not signed by any key the connection authorized before it');
  }
  if (event.type === 'conn.disable') return { ...state, seq: event.seq, head: id, disabled: true };
  checkKeys(event.keys);
  return { ...state, seq: event.seq, head: id, keys: event.keys, endpoint: event.endpoint ?? state.endpoint };
}

/** The state a whole log leads to. */
export function replayConnLog(events: readonly unknown[]): ConnState {
  let state: ConnState | undefined;
  for (const event of events) state = applyConnEvent(state, event);
  if (state === undefined) throw invalid('an empty connection log');
  return state;
}
