/**
 * Connection key-event logs (agent/connection-log.ts), pure: inception signed by every key it
 * names; rotations and disables signed by a key the log authorized before them (never by a key
 * the event itself adds); seq, prev and id chained; nothing after a disable. Fuzzed: a mutated
 * event is refused with a CONNECTION_* code unless its signed content is unchanged, and arbitrary
 * input is only ever CONNECTION_EVENT_INVALID. The invitation parsers of pairing and connections
 * answer anything that is not an invitation with INVITATION_MALFORMED and nothing else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  applyConnEvent,
  connEventId,
  replayConnLog,
  signConnEvent,
  CONNECTION_PREFIX,
  type ConnEvent,
  type ConnKey,
  type ConnState,
  type Endpoint,
  type UnsignedConnEvent,
} from '../../src/agent/connection-log.js';
import { encodeConnectionInvitation, parseConnectionInvitation } from '../../src/agent/connections.js';
import { encodeInvitation, parseInvitation, type Invitation } from '../../src/agent/pairing.js';
import {
  canonicalBytes,
  ed25519Generate,
  encodePublicKey,
  memorySigner,
  randomBytes,
  type Signer,
  toBase64url,
  x25519Generate,
} from '../../src/crypto/index.js';
import { DkmsError, type ErrorCode } from '../../src/errors.js';
import { codeOrOk as codeOf, expectCode } from '../helpers/errors.js';
import { BASE64URL_CHARS, getAt, paths, type Path } from '../helpers/json-paths.js';

// ---------------------------------------------------------------------------------------------
// Keys, events

interface Member {
  readonly key: ConnKey;
  readonly signer: Signer;
}

function member(): Member {
  const sign = ed25519Generate();
  const kx = x25519Generate();
  const key = encodePublicKey('ed25519', sign.publicKey);
  return { key: { key, kx: encodePublicKey('x25519', kx.publicKey) }, signer: memorySigner(sign.privateKey, sign.publicKey) };
}

function endpoint(port = 8421): Endpoint {
  const kx = encodePublicKey('x25519', x25519Generate().publicKey);
  return { uri: `http://127.0.0.1:${port}/v1/inbound`, routingKey: `did:key:${kx}#${kx}`, did: `did:key:${kx}` };
}

const nonce = () => toBase64url(randomBytes(16));

function inception(keys: readonly Member[], signers: readonly Member[] = keys, ep: Endpoint = endpoint()): ConnEvent {
  return signConnEvent(
    { v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: nonce(), keys: keys.map((m) => m.key), endpoint: ep },
    signers.map((m) => m.signer),
  );
}

function rotate(state: ConnState, keys: readonly Member[], signers: readonly Member[], ep?: Endpoint): ConnEvent {
  return signConnEvent(
    {
      v: 1,
      type: 'conn.rotate',
      id: state.id,
      seq: state.seq + 1,
      prev: state.head,
      keys: keys.map((m) => m.key),
      ...(ep === undefined ? {} : { endpoint: ep }),
    },
    signers.map((m) => m.signer),
  );
}

function disable(state: ConnState, signers: readonly Member[]): ConnEvent {
  return signConnEvent(
    { v: 1, type: 'conn.disable', id: state.id, seq: state.seq + 1, prev: state.head },
    signers.map((m) => m.signer),
  );
}

/** Signs arbitrary (already unsigned) content, bypassing the schema, for events the builder would refuse. */
function rawSign(event: Record<string, unknown>, signers: readonly Member[]): Record<string, unknown> {
  const bytes = canonicalBytes(event);
  return { ...event, sigs: signers.map((m) => ({ kid: m.signer.multikey, sig: toBase64url(m.signer.sign(bytes)) })) };
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

function unsignedOf(event: ConnEvent): UnsignedConnEvent {
  const { sigs: _sigs, ...rest } = event;
  return rest;
}

const CONNECTION_CODES: readonly ErrorCode[] = ['CONNECTION_EVENT_INVALID', 'CONNECTION_EVENT_UNAUTHORIZED', 'CONNECTION_DELETED'];

// ---------------------------------------------------------------------------------------------
// Inception

describe('inception', () => {
  it('names the connection after the digest of the unsigned event and starts at seq 0', () => {
    const a = member();
    const b = member();
    const ep = endpoint();
    const event = inception([a, b], [a, b], ep);
    const state = applyConnEvent(undefined, event);
    expect(state.id).toBe(`${CONNECTION_PREFIX}${connEventId(event)}`);
    expect(state.seq).toBe(0);
    expect(state.head).toBe(connEventId(event));
    expect(state.keys).toEqual([a.key, b.key]);
    expect(state.endpoint).toEqual(ep);
    expect(state.disabled).toBe(false);
    // The id does not depend on the signatures (or their order).
    expect(connEventId({ ...event, sigs: [...event.sigs].reverse() })).toBe(connEventId(event));
  });

  it('needs the signature of every key it names', () => {
    const [a, b, c] = [member(), member(), member()];
    expectCode(() => applyConnEvent(undefined, inception([a, b], [a])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expectCode(() => applyConnEvent(undefined, inception([a, b], [b])), 'CONNECTION_EVENT_UNAUTHORIZED');
    // A signature by a key it does not name counts for nothing.
    expectCode(() => applyConnEvent(undefined, inception([a], [c])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expectCode(() => applyConnEvent(undefined, inception([a, b], [a, c])), 'CONNECTION_EVENT_UNAUTHORIZED');
    // Extra signers beside all named keys do no harm.
    expect(applyConnEvent(undefined, inception([a, b], [a, b, c])).keys).toHaveLength(2);
  });

  it("refuses a signature of other content, and a kid paired with another key's signature", () => {
    const [a, b] = [member(), member()];
    const good = inception([a]);
    const other = inception([a]);
    // a's signature over another inception (different nonce).
    expectCode(() => applyConnEvent(undefined, { ...good, sigs: other.sigs }), 'CONNECTION_EVENT_UNAUTHORIZED');
    // b's valid signature over this very event, labelled as a's.
    const byB = signConnEvent(unsignedOf(good), [b.signer]);
    const sigOfB = byB.sigs[0]?.sig ?? '';
    expectCode(() => applyConnEvent(undefined, { ...good, sigs: [{ kid: a.key.key, sig: sigOfB }] }), 'CONNECTION_EVENT_UNAUTHORIZED');
  });

  it('refuses keys that are not an Ed25519/X25519 pair, and a key named twice', () => {
    const a = member();
    const swapped = rawSign(
      { v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: nonce(), keys: [{ key: a.key.kx, kx: a.key.key }], endpoint: endpoint() },
      [a],
    );
    expectCode(() => applyConnEvent(undefined, swapped), 'CONNECTION_EVENT_INVALID');
    const twice = rawSign({ v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: nonce(), keys: [a.key, a.key], endpoint: endpoint() }, [a]);
    expectCode(() => applyConnEvent(undefined, twice), 'CONNECTION_EVENT_INVALID');
    const kxIsEd = rawSign(
      { v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: nonce(), keys: [{ key: a.key.key, kx: a.key.key }], endpoint: endpoint() },
      [a],
    );
    expectCode(() => applyConnEvent(undefined, kxIsEd), 'CONNECTION_EVENT_INVALID');
  });

  it('is the only event a log may start with, and a log has only one', () => {
    const a = member();
    const state = applyConnEvent(undefined, inception([a]));
    expectCode(() => applyConnEvent(state, inception([a])), 'CONNECTION_EVENT_INVALID');
    expectCode(() => applyConnEvent(undefined, rotate(state, [a], [a])), 'CONNECTION_EVENT_INVALID');
    expectCode(() => applyConnEvent(undefined, disable(state, [a])), 'CONNECTION_EVENT_INVALID');
  });

  it('refuses malformed shapes (extra fields, wrong version, bad nonce, no signatures)', () => {
    const a = member();
    const good = inception([a]);
    const variants: unknown[] = [
      { ...good, extra: 1 },
      { ...good, v: 2 },
      { ...good, seq: 1 },
      { ...good, prev: 'x' },
      { ...good, nonce: 'short' },
      { ...good, sigs: [] },
      { ...good, keys: [] },
      { ...good, endpoint: { ...(good.type === 'conn.inception' ? good.endpoint : endpoint()), uri: 'not a url' } },
      { ...good, type: 'conn.something' },
      null,
      'conn.inception',
      [],
    ];
    for (const v of variants) expectCode(() => applyConnEvent(undefined, v), 'CONNECTION_EVENT_INVALID');
  });
});

// ---------------------------------------------------------------------------------------------
// Rotation and disable

describe('rotation and disable', () => {
  it('accept a signature by any key authorized before, and replace the keys', () => {
    const [a, b, c] = [member(), member(), member()];
    const s0 = applyConnEvent(undefined, inception([a, b]));
    const ep = endpoint(9000);
    const r1 = rotate(s0, [b, c], [b], ep);
    const s1 = applyConnEvent(s0, r1);
    expect(s1).toEqual({ id: s0.id, seq: 1, head: connEventId(r1), keys: [b.key, c.key], endpoint: ep, disabled: false });
    // Without an endpoint the old one stays.
    const s2 = applyConnEvent(s1, rotate(s1, [c], [c]));
    expect(s2.endpoint).toEqual(ep);
    expect(s2.keys).toEqual([c.key]);
    const s3 = applyConnEvent(s2, disable(s2, [c]));
    expect(s3).toMatchObject({ id: s0.id, seq: 3, keys: [c.key], disabled: true });
  });

  it('refuse a rotation signed only by a key the rotation itself adds', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    expectCode(() => applyConnEvent(s0, rotate(s0, [a, b], [b])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expectCode(() => applyConnEvent(s0, rotate(s0, [b], [b])), 'CONNECTION_EVENT_UNAUTHORIZED');
    // A stranger's signature alongside does not count either.
    expectCode(() => applyConnEvent(s0, rotate(s0, [b], [b, member()])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expect(applyConnEvent(s0, rotate(s0, [b], [a])).keys).toEqual([b.key]);
  });

  it('refuse a key that was authorized once but was rotated out', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    const s1 = applyConnEvent(s0, rotate(s0, [b], [a]));
    expectCode(() => applyConnEvent(s1, rotate(s1, [a], [a])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expectCode(() => applyConnEvent(s1, disable(s1, [a])), 'CONNECTION_EVENT_UNAUTHORIZED');
  });

  it('refuse a disable signed by a stranger', () => {
    const a = member();
    const s0 = applyConnEvent(undefined, inception([a]));
    expectCode(() => applyConnEvent(s0, disable(s0, [member()])), 'CONNECTION_EVENT_UNAUTHORIZED');
  });

  it('refuse a wrong seq, prev or id with CONNECTION_EVENT_INVALID', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    const other = applyConnEvent(undefined, inception([a]));
    const wrong: Record<string, unknown>[] = [];
    for (const type of ['conn.rotate', 'conn.disable'] as const) {
      const body = type === 'conn.rotate' ? { keys: [b.key] } : {};
      wrong.push(
        rawSign({ v: 1, type, id: s0.id, seq: 2, prev: s0.head, ...body }, [a]),
        rawSign({ v: 1, type, id: s0.id, seq: 1, prev: other.head, ...body }, [a]),
        rawSign({ v: 1, type, id: other.id, seq: 1, prev: s0.head, ...body }, [a]),
        rawSign({ v: 1, type, id: other.id, seq: 1, prev: other.head, ...body }, [a]),
      );
    }
    for (const event of wrong) expectCode(() => applyConnEvent(s0, event), 'CONNECTION_EVENT_INVALID');
    // A replay of an event the log already applied is out of sequence too.
    const r1 = rotate(s0, [b], [a]);
    const s1 = applyConnEvent(s0, r1);
    expectCode(() => applyConnEvent(s1, r1), 'CONNECTION_EVENT_INVALID');
  });

  it('refuse a rotation to keys that are not a pair, or that name a key twice', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    const base = { v: 1, type: 'conn.rotate', id: s0.id, seq: 1, prev: s0.head };
    expectCode(() => applyConnEvent(s0, rawSign({ ...base, keys: [b.key, b.key] }, [a])), 'CONNECTION_EVENT_INVALID');
    expectCode(() => applyConnEvent(s0, rawSign({ ...base, keys: [{ key: b.key.kx, kx: b.key.kx }] }, [a])), 'CONNECTION_EVENT_INVALID');
  });

  it('after a disable, take nothing more: CONNECTION_DELETED', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    const s1 = applyConnEvent(s0, disable(s0, [a]));
    expect(s1.disabled).toBe(true);
    expectCode(() => applyConnEvent(s1, rotate(s1, [b], [a])), 'CONNECTION_DELETED');
    expectCode(() => applyConnEvent(s1, disable(s1, [a])), 'CONNECTION_DELETED');
    // Even events that would otherwise be wrong in other ways.
    expectCode(() => applyConnEvent(s1, rotate(s0, [b], [a])), 'CONNECTION_DELETED');
    expectCode(() => applyConnEvent(s1, rotate(s1, [b], [b])), 'CONNECTION_DELETED');
    expectCode(() => applyConnEvent(s1, rawSign({ v: 1, type: 'conn.rotate', id: 'conn:x', seq: 9, prev: 'y', keys: [b.key] }, [b])), 'CONNECTION_DELETED');
  });

  it('never change the state they are given', () => {
    const [a, b] = [member(), member()];
    const s0 = applyConnEvent(undefined, inception([a]));
    const before = clone(s0);
    applyConnEvent(s0, rotate(s0, [b], [a]));
    expectCode(() => applyConnEvent(s0, rotate(s0, [b], [b])), 'CONNECTION_EVENT_UNAUTHORIZED');
    expect(s0).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------
// Whole logs

describe('replayConnLog', () => {
  it('replays valid chains to the same state as applying each event', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.boolean(), fc.boolean()), { minLength: 0, maxLength: 6 }),
        fc.boolean(),
        (steps, end) => {
          let keys = [member()];
          const log: ConnEvent[] = [inception(keys)];
          let state = applyConnEvent(undefined, log[0]);
          for (const [count, keepOne, newEndpoint] of steps) {
            const next = [...(keepOne ? keys.slice(0, 1) : []), ...Array.from({ length: count }, member)];
            const signer = keys[keys.length - 1] as Member;
            const event = rotate(state, next, [signer], newEndpoint ? endpoint(1000 + log.length) : undefined);
            state = applyConnEvent(state, event);
            log.push(event);
            keys = next;
          }
          if (end) {
            const event = disable(state, [keys[0] as Member]);
            state = applyConnEvent(state, event);
            log.push(event);
          }
          const replayed = replayConnLog(log);
          expect(replayed).toEqual(state);
          expect(replayed.seq).toBe(log.length - 1);
          expect(replayed.head).toBe(connEventId(log[log.length - 1] as ConnEvent));
          expect(replayed.disabled).toBe(end);
          // The log survives a JSON round trip (as stored in the wallet and sent to peers).
          expect(replayConnLog(clone(log))).toEqual(state);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('refuses an empty log, a log out of order, and a log with a gap', () => {
    const [a, b, c] = [member(), member(), member()];
    expectCode(() => replayConnLog([]), 'CONNECTION_EVENT_INVALID');
    const e0 = inception([a]);
    const s0 = applyConnEvent(undefined, e0);
    const e1 = rotate(s0, [b], [a]);
    const s1 = applyConnEvent(s0, e1);
    const e2 = rotate(s1, [c], [b]);
    expect(replayConnLog([e0, e1, e2]).keys).toEqual([c.key]);
    expectCode(() => replayConnLog([e1, e0, e2]), 'CONNECTION_EVENT_INVALID');
    expectCode(() => replayConnLog([e0, e2]), 'CONNECTION_EVENT_INVALID');
    expectCode(() => replayConnLog([e0, e1, e1]), 'CONNECTION_EVENT_INVALID');
  });
});

// ---------------------------------------------------------------------------------------------
// Mutations and arbitrary input

type Mutation =
  | { readonly kind: 'replace'; readonly value: unknown }
  | { readonly kind: 'delete' }
  | { readonly kind: 'char'; readonly at: number; readonly with: number }
  | { readonly kind: 'number'; readonly delta: number }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'extra'; readonly name: string; readonly value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('replace' as const),
    value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(0, 1, -1, 2 ** 53, null, '', 'conn.rotate', 'conn.disable', [], {})),
  }),
  fc.constant({ kind: 'delete' as const }),
  fc.record({ kind: fc.constant('char' as const), at: fc.nat(), with: fc.nat({ max: BASE64URL_CHARS.length - 1 }) }),
  fc.record({ kind: fc.constant('number' as const), delta: fc.constantFrom(-1, 1, 0.5, 1000) }),
  fc.constant({ kind: 'duplicate' as const }),
  fc.record({ kind: fc.constant('extra' as const), name: fc.string({ maxLength: 8 }), value: fc.jsonValue({ maxDepth: 1 }) }),
);

/** `value` (a JSON value, copied) with the mutation applied at `path`. */
function mutate(value: unknown, path: Path, mutation: Mutation): unknown {
  const copy = clone(value);
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1] as string | number;
  const parent = getAt(copy, parentPath) as Record<string | number, unknown> | unknown[];
  const current = getAt(copy, path);
  switch (mutation.kind) {
    case 'replace':
      (parent as Record<string | number, unknown>)[last] = mutation.value;
      break;
    case 'delete':
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else Reflect.deleteProperty(parent, last);
      break;
    case 'char':
      if (typeof current === 'string' && current.length > 0) {
        const at = mutation.at % current.length;
        let c = BASE64URL_CHARS[mutation.with] as string;
        if (c === current[at]) c = c === 'A' ? 'B' : 'A';
        (parent as Record<string | number, unknown>)[last] = current.slice(0, at) + c + current.slice(at + 1);
      } else {
        (parent as Record<string | number, unknown>)[last] = `${String(current)}x`;
      }
      break;
    case 'number':
      (parent as Record<string | number, unknown>)[last] = typeof current === 'number' ? current + mutation.delta : mutation.delta;
      break;
    case 'duplicate':
      if (Array.isArray(parent)) parent.splice(last as number, 0, clone(current));
      else (parent as Record<string | number, unknown>)[last] = [current, current];
      break;
    case 'extra':
      if (current !== null && typeof current === 'object' && !Array.isArray(current)) (current as Record<string, unknown>)[mutation.name] = mutation.value;
      else (parent as Record<string | number, unknown>)[last] = { value: current, [mutation.name]: mutation.value };
      break;
  }
  return copy;
}

describe('mutated events', () => {
  // One fixture per event type: the state before it, and the valid event.
  const [a, b, c] = [member(), member(), member()];
  const e0 = inception([a, b]);
  const s0 = applyConnEvent(undefined, e0);
  const e1 = rotate(s0, [b, c], [a], endpoint(9001));
  const s1 = applyConnEvent(s0, e1);
  const e2 = disable(s1, [c]);
  const fixtures: readonly { name: string; state: ConnState | undefined; event: ConnEvent }[] = [
    { name: 'inception', state: undefined, event: e0 },
    { name: 'rotate', state: s0, event: e1 },
    { name: 'disable', state: s1, event: e2 },
  ];

  for (const { name, state, event } of fixtures) {
    it(`a mutated ${name} is refused with a CONNECTION_* code unless its signed content is unchanged`, () => {
      const valid = applyConnEvent(state, event);
      const all = paths(event);
      fc.assert(
        fc.property(fc.nat({ max: all.length - 1 }), mutationArb, (index, mutation) => {
          const mutated = mutate(event, all[index] as Path, mutation);
          let result: ConnState;
          try {
            result = applyConnEvent(state, mutated);
          } catch (e) {
            expect(e).toBeInstanceOf(DkmsError);
            expect(CONNECTION_CODES).toContain((e as DkmsError).code);
            return;
          }
          // Accepted: then only the signature list changed (e.g. a duplicated or extra entry),
          // and the event still means exactly what the authorized key signed.
          expect(connEventId(mutated as ConnEvent)).toBe(connEventId(event));
          expect(result).toEqual(valid);
        }),
        { numRuns: 400 },
      );
    });
  }

  it('a mutation is never accepted as a different event, exhaustively over one-character changes of every string', () => {
    for (const { state, event } of fixtures) {
      for (const path of paths(event)) {
        const value = getAt(event, path);
        if (typeof value !== 'string') continue;
        for (let at = 0; at < value.length; at += 7) {
          const mutated = mutate(event, path, { kind: 'char', at, with: (at * 13) % BASE64URL_CHARS.length });
          const code = codeOf(() => applyConnEvent(state, mutated));
          if (code === 'ok') expect(connEventId(mutated as ConnEvent)).toBe(connEventId(event));
          else expect(CONNECTION_CODES).toContain(code);
        }
      }
    }
  });

  it('a rotation re-signed by a fresh key but claiming an authorized kid is refused', () => {
    const stranger = member();
    const forged = rotate(s0, [stranger], [stranger]);
    const relabelled = { ...forged, sigs: forged.sigs.map((s) => ({ ...s, kid: a.key.key })) };
    expectCode(() => applyConnEvent(s0, relabelled), 'CONNECTION_EVENT_UNAUTHORIZED');
    // And with the authorized key's genuine signature of another event appended.
    expectCode(() => applyConnEvent(s0, { ...forged, sigs: [...forged.sigs, ...e1.sigs] }), 'CONNECTION_EVENT_UNAUTHORIZED');
  });

  it('arbitrary input only ever throws CONNECTION_EVENT_INVALID', () => {
    for (const state of [undefined, s0, s1]) {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.anything(),
            fc.jsonValue(),
            fc.string().map((s) => ({ v: 1, type: s })),
          ),
          (input) => {
            const code = codeOf(() => applyConnEvent(state, input));
            expect(code).toBe('CONNECTION_EVENT_INVALID');
          },
        ),
        { numRuns: 300 },
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Invitation parsers

function pairingInvitation(): Invitation {
  const inviter = member();
  return {
    v: 1,
    id: nonce(),
    policy: 'policy:z6Mkexample',
    agency: 'http://127.0.0.1:8421',
    ledger: 'http://127.0.0.1:8420',
    inviter: inviter.key,
    cloud: { endpoint: 'http://127.0.0.1:8421/v1/inbound', routingKey: endpoint().routingKey },
    expires: new Date(Date.now() + 600_000).toISOString(),
  };
}

function connectionInvitation() {
  return { v: 1 as const, id: nonce(), label: 'alice', inception: inception([member()]), expires: new Date(Date.now() + 600_000).toISOString() };
}

const PAIR = 'dkms-pair:';
const CONNECT = 'dkms-connect:';
const encodeJson = (prefix: string, value: unknown) => `${prefix}${toBase64url(new TextEncoder().encode(JSON.stringify(value)))}`;

function malformedOrOk(fn: () => unknown): void {
  const code = codeOf(fn);
  if (code !== 'ok') expect(code).toBe('INVITATION_MALFORMED');
}

describe('invitation parsers', () => {
  it('round-trip valid invitations, with surrounding whitespace', () => {
    const pair = pairingInvitation();
    expect(parseInvitation(`  ${encodeInvitation(pair)}\n`)).toEqual(pair);
    const conn = connectionInvitation();
    expect(parseConnectionInvitation(`\t${encodeConnectionInvitation(conn)} `)).toEqual(conn);
  });

  it('refuse the wrong scheme, damaged base64url, non-JSON and wrong shapes with INVITATION_MALFORMED', () => {
    const pair = pairingInvitation();
    const conn = connectionInvitation();
    for (const [parse, prefix, good, other] of [
      [parseInvitation, PAIR, encodeInvitation(pair), encodeConnectionInvitation(conn)],
      [parseConnectionInvitation, CONNECT, encodeConnectionInvitation(conn), encodeInvitation(pair)],
    ] as const) {
      for (const text of [
        '',
        prefix,
        other,
        good.slice(0, -3),
        `${good}=`,
        `${good}!`,
        `${prefix}%%%`,
        `${prefix}${toBase64url(new TextEncoder().encode('not json'))}`,
        `${prefix}${toBase64url(Uint8Array.of(0xff, 0xfe, 0x7b, 0x7d))}`,
        encodeJson(prefix, null),
        encodeJson(prefix, []),
        encodeJson(prefix, 'text'),
        good.toUpperCase(),
      ]) {
        expectCode(() => parse(text), 'INVITATION_MALFORMED');
      }
    }
  });

  it('refuse a connection invitation whose inception does not verify', () => {
    const conn = connectionInvitation();
    const unsigned = { ...conn, inception: { ...conn.inception, sigs: inception([member()]).sigs } };
    expectCode(() => parseConnectionInvitation(encodeJson(CONNECT, unsigned)), 'INVITATION_MALFORMED');
    const rotation = { ...conn, inception: e1OfOwn() };
    expectCode(() => parseConnectionInvitation(encodeJson(CONNECT, rotation)), 'INVITATION_MALFORMED');
  });

  it('answer arbitrary strings with INVITATION_MALFORMED only', () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.string().map((s) => `${PAIR}${s}`),
      fc.string().map((s) => `${CONNECT}${s}`),
      fc.uint8Array({ maxLength: 64 }).map((b) => `${PAIR}${toBase64url(b)}`),
      fc.uint8Array({ maxLength: 64 }).map((b) => `${CONNECT}${toBase64url(b)}`),
      fc.jsonValue().map((v) => encodeJson(PAIR, v)),
      fc.jsonValue().map((v) => encodeJson(CONNECT, v)),
    );
    fc.assert(
      fc.property(text, (t) => {
        expectCode(() => parseInvitation(t), 'INVITATION_MALFORMED');
        expectCode(() => parseConnectionInvitation(t), 'INVITATION_MALFORMED');
      }),
      { numRuns: 500 },
    );
  });

  it('answer near-valid invitations (any field mutated, any character changed) with a valid invitation or INVITATION_MALFORMED', () => {
    const pair = pairingInvitation();
    const conn = connectionInvitation();
    const pairPaths = paths(pair);
    const connPaths = paths(conn);
    fc.assert(
      fc.property(fc.nat(), mutationArb, fc.nat(), fc.nat({ max: BASE64URL_CHARS.length - 1 }), (index, mutation, at, withChar) => {
        malformedOrOk(() => parseInvitation(encodeJson(PAIR, mutate(pair, pairPaths[index % pairPaths.length] as Path, mutation))));
        malformedOrOk(() => parseConnectionInvitation(encodeJson(CONNECT, mutate(conn, connPaths[index % connPaths.length] as Path, mutation))));
        for (const [parse, text, prefix] of [
          [parseInvitation, encodeInvitation(pair), PAIR],
          [parseConnectionInvitation, encodeConnectionInvitation(conn), CONNECT],
        ] as const) {
          const i = prefix.length + (at % (text.length - prefix.length));
          const c = BASE64URL_CHARS[withChar] === text[i] ? '_' : (BASE64URL_CHARS[withChar] as string);
          malformedOrOk(() => parse(text.slice(0, i) + c + text.slice(i + 1)));
        }
      }),
      { numRuns: 400 },
    );
  });

  // A connection's rotation event, for an invitation that carries something other than an inception.
  function e1OfOwn(): ConnEvent {
    const m = member();
    const s = applyConnEvent(undefined, inception([m]));
    return rotate(s, [member()], [m]);
  }
});
