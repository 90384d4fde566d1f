/**
 * Event validation (docs/ledger.md "Validation"), by property: malformed,
 * oversize, forged, replayed, forked, stale, gapped and misdirected events are refused with
 * exactly the right code, in memory (validateEvent over an OverlayView) and through a ledger
 * node, where a refusal leaves the log size, the signed root and every subject record as they
 * were. Random mixes of good and bad submissions, in batches, leave the state that replaying
 * only the accepted events gives.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalBytes, canonicalJson, encodePublicKey, fromBase64url, toBase58btc, toBase64url, x25519Generate } from '../../src/crypto/index.js';
import type { ErrorCode } from '../../src/errors.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import {
  eventId,
  MAX_EVENT_BYTES,
  signingBytes,
  subjectOf,
  type Did,
  type LedgerEvent,
  type PolicyAddress,
  type Service,
  type Subject,
} from '../../src/ledger/events.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import { validateEvent } from '../../src/ledger/validate.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import type { Rules } from '../../src/policy/types.js';
import {
  clone,
  deleteIn,
  didRecord,
  expectRefused,
  FIXED_MS,
  FIXED_TIME,
  MemoryLedger,
  outcome,
  policyRecord,
  refusedUnchanged,
  setIn,
  snapshot,
  type Ledger,
} from '../helpers/events.js';
import { commitment, nodeSigner, openNode, testKey, type TestKey } from '../helpers/ledger.js';

// ---------------------------------------------------------------------------------------------
// Keys and a fixture ledger

const admin = testKey(); // ALL_FLAGS, creates policy P
const admin2 = testKey(); // ADMIN
const granter = testKey(); // PROVE_GRANT | PROVE
const revoker = testKey(); // PROVE_REVOKE
const prover = testKey(); // PROVE
const outsider = testKey(); // no agent anywhere
const rec1 = testKey(); // P's committed recovery key
const rec2 = testKey(); // Q's committed recovery key
const nextRec = testKey();
const qAdmin = testKey(); // Q's only agent
/** Spare keys: 0-9 new agents of the valid events, 10-39 fork and body material, 40-49 random sequences, 60+ tampering. */
const POOL: readonly TestKey[] = Array.from({ length: 70 }, () => testKey());
const pool = (i: number): TestKey => POOL[i] as TestKey;

const KEYS = new Map<string, TestKey>([admin, admin2, granter, revoker, prover, outsider, rec1, rec2, nextRec, qAdmin, ...POOL].map((k) => [k.multikey, k]));
const X25519_KEY = encodePublicKey('x25519', x25519Generate().publicKey);

const service = (name: string): Service => ({ id: `#${name}`, type: 'DIDCommMessaging', serviceEndpoint: `https://${name}.example/` });

interface Fixture {
  readonly P: PolicyAddress;
  readonly Q: PolicyAddress;
  /** A live DID of P, at seq 1. */
  readonly D1: Did;
  /** A deactivated DID of P. */
  readonly D2: Did;
  /** Every accepted event, in log order. */
  readonly events: readonly LedgerEvent[];
  /** Each subject's events, by seq. */
  readonly chains: ReadonlyMap<Subject, readonly LedgerEvent[]>;
}

/** Policy P (five agents, seq 4), its DIDs D1 (seq 1) and D2 (deactivated), and policy Q (seq 0). */
async function buildFixture(ledger: Ledger): Promise<Fixture> {
  const events: LedgerEvent[] = [];
  const submit = async (event: LedgerEvent): Promise<Subject> => {
    const { subject } = await ledger.submit(event);
    events.push(event);
    return subject;
  };
  const P = (await submit(signEvent(policyCreate([admin.agent(ALL_FLAGS)], commitment([rec1])), [admin]))) as PolicyAddress;
  const grants: [TestKey, number][] = [
    [admin2, FLAGS.ADMIN],
    [granter, FLAGS.PROVE_GRANT | FLAGS.PROVE],
    [revoker, FLAGS.PROVE_REVOKE],
    [prover, FLAGS.PROVE],
  ];
  for (const [key, flags] of grants) await submit(signEvent(nextEvent('policy.grant', P, await policyRecord(ledger, P), { agent: key.agent(flags) }), [admin]));
  const D1 = (await submit(signEvent(didCreate(P, [service('agency')]), [admin]))) as Did;
  await submit(signEvent(nextEvent('did.update', D1, await didRecord(ledger, D1), { services: [service('agency'), service('mediator')] }), [admin]));
  const D2 = (await submit(signEvent(didCreate(P, []), [admin]))) as Did;
  await submit(signEvent(nextEvent('did.deactivate', D2, await didRecord(ledger, D2), {}), [admin]));
  const Q = (await submit(signEvent(policyCreate([qAdmin.agent(ALL_FLAGS)], commitment([rec2])), [qAdmin]))) as PolicyAddress;
  const chains = new Map<Subject, LedgerEvent[]>();
  for (const event of events) chains.set(subjectOf(event), [...(chains.get(subjectOf(event)) ?? []), event]);
  return { P, Q, D1, D2, events, chains };
}

/** One acceptable next event of every kind against the fixture (each on its own). */
async function validEvents(ledger: Ledger, fx: Fixture): Promise<LedgerEvent[]> {
  const p = await policyRecord(ledger, fx.P);
  const d1 = await didRecord(ledger, fx.D1);
  const rules: Rules = { grant: 1, revoke: 1, rules: 1, did: 1 };
  return [
    signEvent(policyCreate([pool(0).agent(ALL_FLAGS), pool(1).agent(FLAGS.PROVE)], commitment([rec1, rec2]), { grant: 1 }), [pool(0), pool(1)]),
    signEvent(nextEvent('policy.grant', fx.P, p, { agent: pool(2).agent(FLAGS.PROVE) }), [admin]),
    signEvent(nextEvent('policy.grant', fx.P, p, { agent: { key: pool(3).multikey, flags: FLAGS.PROVE } }), [granter]),
    signEvent(nextEvent('policy.revoke', fx.P, p, { key: prover.multikey }), [admin]),
    signEvent(nextEvent('policy.rules', fx.P, p, { rules: { grant: 2, revoke: 1, rules: 2, did: 1 } }), [admin]),
    signEvent(nextEvent('policy.recover', fx.P, p, { next: commitment([nextRec]) }), [rec1]),
    signEvent(nextEvent('policy.recover', fx.P, p, { next: commitment([nextRec, rec2], 2), agents: [pool(4).agent(ALL_FLAGS)], rules }), [rec1, pool(4)]),
    signEvent(didCreate(fx.P, [service('agency')]), [admin]),
    signEvent(didCreate(fx.P, []), [admin, admin2]),
    signEvent(nextEvent('did.update', fx.D1, d1, { services: [] }), [admin]),
    signEvent(nextEvent('did.deactivate', fx.D1, d1, {}), [admin2]),
  ];
}

// ---------------------------------------------------------------------------------------------
// Generators of broken events

interface Case {
  readonly label: string;
  readonly raw: unknown;
  readonly code: ErrorCode;
}
type Path = readonly (string | number)[];
interface Entry {
  readonly path: Path;
  readonly value: unknown;
}

/** Every value inside `value` with its path (not the root itself). */
function entriesOf(value: unknown, path: Path = []): Entry[] {
  const out: Entry[] = [];
  const children: [string | number, unknown][] = Array.isArray(value)
    ? value.map((v, i) => [i, v])
    : value !== null && typeof value === 'object'
      ? Object.entries(value)
      : [];
  for (const [key, child] of children) out.push({ path: [...path, key], value: child }, ...entriesOf(child, [...path, key]));
  return out;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const last = (path: Path) => path[path.length - 1];
const parentKey = (path: Path) => path[path.length - 2];
const label = (path: Path) => path.join('.');
/** A short description of any value, for failure messages. */
function show(value: unknown): string {
  try {
    return String(JSON.stringify(value)).slice(0, 80);
  } catch {
    return typeof value;
  }
}

const TYPES = ['policy.create', 'policy.grant', 'policy.revoke', 'policy.rules', 'policy.recover', 'did.create', 'did.update', 'did.deactivate'] as const;
const KNOWN_KEYS = [
  'v',
  'type',
  'subject',
  'seq',
  'prev',
  'nonce',
  'sigs',
  'kid',
  'sig',
  'agents',
  'agent',
  'key',
  'kx',
  'flags',
  'rules',
  'grant',
  'revoke',
  'did',
  'recovery',
  'digests',
  'threshold',
  'next',
  'policy',
  'services',
  'id',
  'serviceEndpoint',
];
const COUNT_KEYS = new Set(['grant', 'revoke', 'rules', 'did', 'threshold']);

/** Keys that may be absent: an agent's kx, policy.create's (partial) rules, policy.recover's agents and rules. */
function isOptional(event: LedgerEvent, path: Path): boolean {
  if (last(path) === 'kx') return true;
  if (event.type === 'policy.create' && path[0] === 'rules') return true;
  return event.type === 'policy.recover' && path.length === 1 && (path[0] === 'agents' || path[0] === 'rules');
}

/** Keys an object at `path` could hold besides those it holds. */
function optionalKeysAt(event: LedgerEvent, path: Path): string[] {
  if (path.length === 0) return event.type === 'policy.create' ? ['rules'] : event.type === 'policy.recover' ? ['agents', 'rules'] : [];
  if (path[0] === 'agents' || path[0] === 'agent') return ['kx'];
  if (event.type === 'policy.create' && path[0] === 'rules') return ['grant', 'revoke', 'rules', 'did'];
  return [];
}

const jsonKind = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);
const KIND_ARBS: Record<string, fc.Arbitrary<unknown>> = {
  null: fc.constant(null),
  boolean: fc.boolean(),
  number: fc.oneof(fc.integer(), fc.double()),
  string: fc.string({ maxLength: 20 }),
  array: fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  object: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
};
const otherKind = (v: unknown): fc.Arbitrary<unknown> =>
  fc.oneof(
    ...Object.keys(KIND_ARBS)
      .filter((k) => k !== jsonKind(v))
      .map((k) => KIND_ARBS[k] as fc.Arbitrary<unknown>),
  );

const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const b58 = (n: number) => bytes(n).map(toBase58btc);
const b64 = (n: number) => bytes(n).map(toBase64url);
const digestArb = b58(32);
const prefixed = (prefix: number[], n: number) => bytes(n).map((b) => `z${toBase58btc(Uint8Array.of(...prefix, ...b))}`);
const ED = pool(66).multikey;

const badSigningKey = fc.oneof(
  fc.constant(X25519_KEY),
  prefixed([0xed, 0x01], 31),
  prefixed([0xed, 0x01], 33),
  prefixed([0x12, 0x20], 32),
  fc.constantFrom(
    ED.slice(1),
    `${ED.slice(0, -1)}0`,
    `${ED.slice(0, 10)}O${ED.slice(11)}`,
    '',
    'z',
    `z${'2'.repeat(70)}`,
    `u${toBase64url(new Uint8Array(34))}`,
  ),
);
const badAgreementKey = fc.oneof(fc.constant(ED), prefixed([0xec, 0x01], 31), fc.constantFrom('', `${X25519_KEY.slice(0, -1)}l`, `z${'3'.repeat(70)}`));
const badDigest = fc.oneof(b58(31), b58(33), fc.constantFrom('', '0OIl', 'x'.repeat(65)));
const badAddress = (prefix: string, other: string) =>
  fc.oneof(
    b58(31).map((d) => prefix + d),
    b58(33).map((d) => prefix + d),
    digestArb.map((d) => other + d),
    digestArb,
    digestArb.map((d) => prefix.toUpperCase() + d),
    fc.constantFrom(prefix, `${prefix}0OIl`, prefix + 'x'.repeat(80), 'did:key:z6Mkf5rGMoatrSj1f4CyvuHBeXJELe9RPdzo2PKGNCKVtZxP'),
  );
const badSig = fc.oneof(
  b64(63),
  b64(65),
  bytes(64).map((b) => Buffer.from(b).toString('base64')),
  bytes(64).map((b) => {
    // 86 characters carry 516 bits for 512: a last character with its low bits set is not canonical.
    const text = toBase64url(b);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    return text.slice(0, -1) + alphabet[alphabet.indexOf(text.slice(-1)) + 1];
  }),
  fc.constantFrom('', 'A'.repeat(101)),
);
const badNonce = fc.oneof(
  b64(15),
  b64(33),
  bytes(16).map((b) => Buffer.from(b).toString('base64')),
  fc.constantFrom('', 'A'.repeat(65)),
);
const badServiceId = fc.constantFrom('agency', '#', `#${'a'.repeat(65)}`, '#a b', '#a/b', '##', '');
const badServiceType = fc.constantFrom('', 'x'.repeat(101), 'x'.repeat(100_000));
const badEndpoint = fc.constantFrom(
  'ftp://example.com/',
  'example.com',
  `https://${'a'.repeat(1995)}.example`,
  'mailto:a@b.example',
  '',
  'javascript:alert(1)',
  'file:///etc/passwd',
);
const badCount = fc.constantFrom(0, 65, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY);
// Flags of 2**32 and above have their own test below.
const badFlags = fc.constantFrom(16, 17, 31, 64, -1, 1.5, 2 ** 31, Number.NaN, Number.POSITIVE_INFINITY);

/** Schema-breaking replacements for one value, by what the field holds. */
function badValuesFor(event: LedgerEvent, { path, value }: Entry): fc.Arbitrary<unknown> | undefined {
  const key = last(path);
  const parent = parentKey(path);
  if (path.length === 1 && key === 'type')
    return fc.oneof(
      fc.string().filter((s) => !(TYPES as readonly string[]).includes(s)),
      fc.constantFrom(...TYPES.filter((t) => t !== event.type)),
    );
  if (path.length === 1 && key === 'v') return fc.constantFrom(0, 2, -1, 1.5, Number.NaN);
  if (path.length === 1 && key === 'seq')
    return event.seq === 0 ? fc.constantFrom(1, -1, 0.5) : fc.constantFrom(0, -1, 1.5, 2 ** 31 + 1, Number.MAX_SAFE_INTEGER, Number.NaN);
  if (path.length === 1 && key === 'prev' && value !== null) return badDigest;
  if (path.length === 1 && key === 'subject') return String(value).startsWith('did:') ? badAddress('did:dkms:', 'policy:') : badAddress('policy:', 'did:dkms:');
  if (path.length === 1 && key === 'policy') return badAddress('policy:', 'did:dkms:');
  if (path.length === 1 && key === 'nonce') return badNonce;
  if (key === 'key' || key === 'kid') return badSigningKey;
  if (key === 'kx') return badAgreementKey;
  if (key === 'sig') return badSig;
  if (key === 'flags') return badFlags;
  if (parent === 'digests') return badDigest;
  if (typeof value === 'number' && typeof key === 'string' && COUNT_KEYS.has(key)) return badCount;
  if (path[0] === 'services' && key === 'id') return badServiceId;
  if (path[0] === 'services' && key === 'type') return badServiceType;
  if (key === 'serviceEndpoint') return badEndpoint;
  if (key === 'agents')
    return fc.constantFrom(
      [],
      POOL.slice(0, 65).map((k) => k.agent(FLAGS.PROVE)),
    );
  if (key === 'sigs')
    return fc.constantFrom(
      [],
      POOL.slice(0, 65).map((k) => ({ kid: k.multikey, sig: toBase64url(new Uint8Array(64)) })),
    );
  if (key === 'digests') return fc.oneof(fc.constant([]), fc.array(digestArb, { minLength: 17, maxLength: 20 }));
  if (key === 'services')
    return fc.constantFrom(
      Array.from({ length: 33 }, (_, i) => service(`s${i}`)),
      [service('a'), service('a')],
    );
  return undefined;
}

/** A copy of `root` with an own property `key` added to the object at `path` (even `__proto__`). */
function withKey(root: unknown, path: Path, key: string, value: unknown): unknown {
  const copy = clone(root);
  let target = copy as Record<string | number, unknown>;
  for (const step of path) target = target[step] as Record<string | number, unknown>;
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** Every way to break the schema of `event`, each a generator of mutants. */
function malformedMutators(event: LedgerEvent): fc.Arbitrary<Case>[] {
  const code: ErrorCode = 'EVENT_MALFORMED';
  const entries = entriesOf(event);
  const out: fc.Arbitrary<Case>[] = [];
  for (const entry of entries) {
    const { path, value } = entry;
    if (typeof last(path) === 'string' && !isOptional(event, path)) out.push(fc.constant({ label: `drop ${label(path)}`, raw: deleteIn(event, path), code }));
    out.push(otherKind(value).map((v) => ({ label: `${label(path)} of another JSON type: ${show(v)}`, raw: setIn(event, path, v), code })));
    const bad = badValuesFor(event, entry);
    if (bad !== undefined) out.push(bad.map((v) => ({ label: `${label(path)} = ${show(v)}`, raw: setIn(event, path, v), code })));
  }
  const objects: Path[] = [[], ...entries.filter((e) => isPlainObject(e.value)).map((e) => e.path)];
  for (const path of objects) {
    let held: unknown = event;
    for (const step of path) held = (held as Record<string | number, unknown>)[step];
    const present = Object.keys(held as object);
    const misplaced = KNOWN_KEYS.filter((k) => !present.includes(k) && !optionalKeysAt(event, path).includes(k));
    const name = fc.oneof(
      fc.string({ minLength: 1, maxLength: 12 }).filter((k) => !KNOWN_KEYS.includes(k)),
      fc.constantFrom('__proto__', 'constructor', 'toString', ...misplaced),
    );
    out.push(
      fc.tuple(name, fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => ({ label: `unknown ${label([...path, k])}`, raw: withKey(event, path, k, v), code })),
    );
  }
  out.push(
    fc
      .constantFrom<unknown>(null, undefined, 0, 'event', [], true, [event], canonicalJson(event))
      .map((raw) => ({ label: `not an object: ${show(raw)}`, raw, code })),
  );
  return out;
}

function flipBit(sig: string, bit: number): string {
  const raw = fromBase64url(sig);
  raw[bit >> 3] = (raw[bit >> 3] as number) ^ (1 << (bit & 7));
  return toBase64url(raw);
}

/** Schema-valid replacements that change what the signatures cover (but not seq, prev or subject). */
function tamperedValuesFor(event: LedgerEvent, { path, value }: Entry): fc.Arbitrary<unknown> | undefined {
  const key = last(path);
  if (path[0] === 'sigs' || ['v', 'type', 'seq', 'prev', 'subject'].includes(String(path[0]))) return undefined;
  if (key === 'flags') return fc.integer({ min: 0, max: 15 }).filter((f) => f !== value);
  if (typeof value === 'number' && typeof key === 'string' && COUNT_KEYS.has(key)) return fc.integer({ min: 1, max: 64 }).filter((n) => n !== value);
  if (key === 'key') return fc.constantFrom(...POOL.slice(60, 65).map((k) => k.multikey));
  if (key === 'kx') return fc.constant(encodePublicKey('x25519', x25519Generate().publicKey));
  if (parentKey(path) === 'digests') return digestArb;
  if (key === 'nonce') return b64(16).filter((n) => n !== value);
  if (key === 'policy') return digestArb.map((d) => `policy:${d}`);
  if (path[0] === 'services' && key === 'id') return fc.stringMatching(/^[a-z]{1,10}$/).map((s) => `#x-${s}`);
  if (path[0] === 'services' && key === 'type') return fc.string({ minLength: 1, maxLength: 100 }).filter((s) => s !== value);
  if (key === 'serviceEndpoint') return fc.stringMatching(/^[a-z]{1,20}$/).map((s) => `https://${s}.example/x`);
  if (key === 'services') return fc.constant([...(value as Service[]), service('added')]);
  return undefined;
}

/** Every way to forge `event`: signatures that do not verify over what it says. */
function forgedMutators(event: LedgerEvent): fc.Arbitrary<Case>[] {
  const code: ErrorCode = 'EVENT_BAD_SIGNATURE';
  const n = event.sigs.length;
  const index = fc.nat({ max: n - 1 });
  const withSig = (i: number, sig: string) => ({ ...event, sigs: event.sigs.map((s, j) => (j === i ? { ...s, sig } : s)) });
  const sigAt = (i: number) => event.sigs[i] as { kid: string; sig: string };
  const signer = (kid: string) => KEYS.get(kid) as TestKey;
  const bytesOf = signingBytes(event);
  const out: fc.Arbitrary<Case>[] = [
    fc.tuple(index, fc.nat({ max: 511 })).map(([i, bit]) => ({ label: `sig ${i} bit ${bit} flipped`, raw: withSig(i, flipBit(sigAt(i).sig, bit)), code })),
    fc.tuple(index, b64(64)).map(([i, sig]) => ({ label: `sig ${i} random`, raw: withSig(i, sig), code })),
    index.map((i) => ({ label: `sig ${i} by another key`, raw: withSig(i, toBase64url(outsider.sign(bytesOf))), code })),
    fc
      .tuple(index, fc.uint8Array({ maxLength: 64 }))
      .map(([i, message]) => ({ label: `sig ${i} over other bytes`, raw: withSig(i, toBase64url(signer(sigAt(i).kid).sign(message))), code })),
    index.map((i) => ({
      label: `kid ${i} swapped for another key`,
      raw: { ...event, sigs: event.sigs.map((s, j) => (j === i ? { ...s, kid: outsider.multikey } : s)) },
      code,
    })),
    b64(64).map((sig) => ({
      label: 'an extra signature that does not verify',
      raw: { ...event, sigs: [...event.sigs, { kid: pool(61).multikey, sig }] },
      code,
    })),
  ];
  if (n >= 2)
    out.push(
      fc.constant({
        label: 'two signatures swapped',
        raw: { ...event, sigs: event.sigs.map((s, j) => ({ ...s, sig: sigAt(j === 0 ? 1 : j === 1 ? 0 : j).sig })) },
        code,
      }),
    );
  for (const entry of entriesOf(event)) {
    const tampered = tamperedValuesFor(event, entry);
    if (tampered !== undefined)
      out.push(tampered.map((v) => ({ label: `${label(entry.path)} changed after signing`, raw: setIn(event, entry.path, v), code })));
    if (last(entry.path) === 'kx') out.push(fc.constant({ label: `${label(entry.path)} removed after signing`, raw: deleteIn(event, entry.path), code }));
  }
  if (event.type === 'policy.recover' && event.rules !== undefined)
    out.push(fc.constant({ label: 'rules removed after signing', raw: deleteIn(event, ['rules']), code }));
  return out;
}

const NON_INCEPTION = ['policy.grant', 'policy.revoke', 'policy.rules', 'policy.recover', 'did.update', 'did.deactivate'] as const;
type NextType = (typeof NON_INCEPTION)[number];
const ruleArb = fc.integer({ min: 1, max: 3 });
const rulesArb = fc.record({ grant: ruleArb, revoke: ruleArb, rules: ruleArb, did: ruleArb }).map((r): Rules => ({ ...r }));

/** A schema-valid body for an event of `type`, unlike anything the fixture holds. */
function bodyArb(type: NextType): fc.Arbitrary<Record<string, unknown>> {
  switch (type) {
    case 'policy.grant':
      return fc.tuple(fc.integer({ min: 10, max: 39 }), fc.integer({ min: 0, max: 15 })).map(([i, flags]) => ({ agent: pool(i).agent(flags) }));
    case 'policy.revoke':
      return fc.integer({ min: 10, max: 39 }).map((i) => ({ key: pool(i).multikey }));
    case 'policy.rules':
      return rulesArb.map((rules) => ({ rules }));
    case 'policy.recover':
      return fc.integer({ min: 10, max: 39 }).map((i) => ({ next: commitment([pool(i)]) }));
    case 'did.update':
      return fc.constantFrom({ services: [] }, { services: [service('other')] });
    case 'did.deactivate':
      return fc.constant({});
  }
}

type SignMode = 'admin' | 'outsider' | 'garbage';
const signModeArb = fc.constantFrom<SignMode>('admin', 'outsider', 'garbage');

/** Signs an unsigned event validly by an authorized or an unauthorized key, or not validly at all. */
function signAs(unsigned: Record<string, unknown>, mode: SignMode, garbage: string): unknown {
  if (mode === 'garbage') return { ...unsigned, sigs: [{ kid: admin.multikey, sig: garbage }] };
  return signEvent(unsigned as never, [mode === 'admin' ? admin : outsider]);
}

/** Events whose structure (subject, seq, prev) is wrong, each with the code it must get. */
function structuralArb(fx: Fixture): fc.Arbitrary<Case> {
  const idOf = (e: LedgerEvent) => eventId(e) as string;
  const chain = (s: Subject) => fx.chains.get(s) as readonly LedgerEvent[];
  const head = (s: Subject) => chain(s)[chain(s).length - 1] as LedgerEvent;
  const typesOf = (s: Subject): readonly NextType[] =>
    s.startsWith('did:') ? ['did.update', 'did.deactivate'] : NON_INCEPTION.filter((t) => t.startsWith('policy.'));
  const typeFor = (s: Subject) => fc.constantFrom(...typesOf(s));
  const event = (type: NextType, subject: Subject, seq: number, prev: string, body: Record<string, unknown>) => ({ v: 1, type, subject, seq, prev, ...body });
  const signed = (arb: fc.Arbitrary<{ label: string; unsigned: Record<string, unknown>; code: ErrorCode }>) =>
    fc
      .tuple(arb, signModeArb, b64(64))
      .map(([c, mode, garbage]) => ({ label: `${c.label} (signed: ${mode})`, raw: signAs(c.unsigned, mode, garbage), code: c.code }));
  const withBody = (type: NextType, f: (body: Record<string, unknown>) => { label: string; unsigned: Record<string, unknown>; code: ErrorCode }) =>
    bodyArb(type).map(f);
  const live: Subject[] = [fx.P, fx.Q, fx.D1];
  const extended: Subject[] = [fx.P, fx.D1];
  const otherIds = (exclude: readonly string[]) => fx.events.map(idOf).filter((id) => !exclude.includes(id));
  const replayable = fx.events.filter((e) => !(subjectOf(e) === fx.D2 && e.seq > 0));

  const replay = fc
    .tuple(fc.constantFrom(...replayable), fc.constantFrom('as accepted', 'garbage sigs', 'reversed sigs', 'duplicated sig'), b64(64))
    .map(([e, how, garbage]) => {
      const sigs =
        how === 'garbage sigs'
          ? [{ kid: admin.multikey, sig: garbage }]
          : how === 'reversed sigs'
            ? [...e.sigs].reverse()
            : how === 'duplicated sig'
              ? [...e.sigs, ...e.sigs]
              : e.sigs;
      return { label: `replay of ${e.type} seq ${e.seq} (${how})`, raw: { ...e, sigs }, code: 'EVENT_REPLAY' as ErrorCode };
    });
  const deactivatedReplay = fc.constant({
    label: 'replay of the did.deactivate of a deactivated DID',
    raw: head(fx.D2),
    code: 'SUBJECT_DEACTIVATED' as ErrorCode,
  });
  const fork = signed(
    fc
      .constantFrom(...extended)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 1, max: chain(s).length - 1 }), typeFor(s)))
      .chain(([s, k, type]) =>
        withBody(type, (body) => ({
          label: `fork of ${s.slice(0, 12)} at seq ${k} by ${type}`,
          unsigned: event(type, s, k, idOf(chain(s)[k - 1] as LedgerEvent), body),
          code: 'EVENT_FORK',
        })),
      ),
  );
  const stale = signed(
    fc
      .constantFrom(...extended)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: 1, max: chain(s).length - 1 }), typeFor(s)))
      .chain(([s, k, type]) => {
        const storedPrev = idOf(chain(s)[k - 1] as LedgerEvent);
        const prev = fc.oneof(digestArb, fc.constantFrom(...otherIds([storedPrev])));
        return fc
          .tuple(prev, bodyArb(type))
          .map(([p, body]) => ({ label: `stale seq ${k} of ${s.slice(0, 12)}`, unsigned: event(type, s, k, p, body), code: 'EVENT_STALE_SEQ' as ErrorCode }));
      }),
  );
  const gap = signed(
    fc
      .constantFrom(...live)
      .chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: head(s).seq + 2, max: 2 ** 31 }), fc.oneof(fc.constant(idOf(head(s))), digestArb), typeFor(s)))
      .chain(([s, seq, prev, type]) =>
        withBody(type, (body) => ({ label: `seq ${seq} skips ahead of ${s.slice(0, 12)}`, unsigned: event(type, s, seq, prev, body), code: 'EVENT_SEQ_GAP' })),
      ),
  );
  const badPrev = signed(
    fc
      .constantFrom(...live)
      .chain((s) => fc.tuple(fc.constant(s), fc.oneof(digestArb, fc.constantFrom(...otherIds([idOf(head(s))]))), typeFor(s)))
      .chain(([s, prev, type]) =>
        withBody(type, (body) => ({
          label: `wrong prev for ${s.slice(0, 12)}`,
          unsigned: event(type, s, head(s).seq + 1, prev, body),
          code: 'EVENT_BAD_PREV',
        })),
      ),
  );
  const unknown = signed(
    fc.tuple(fc.constantFrom(...NON_INCEPTION), digestArb, fc.integer({ min: 1, max: 2 ** 31 }), digestArb).chain(([type, digest, seq, prev]) => {
      const subject = (type.startsWith('did.') ? `did:dkms:${digest}` : `policy:${digest}`) as Subject;
      return withBody(type, (body) => ({
        label: `${type} for an unknown subject`,
        unsigned: event(type, subject, seq, prev, body),
        code: 'SUBJECT_NOT_FOUND',
      }));
    }),
  );
  // A DID's digest under the policy prefix names no policy either.
  const policyNotFound = fc
    .tuple(fc.oneof(digestArb, fc.constant(fx.D1.slice('did:dkms:'.length))), fc.constantFrom(admin, outsider), fc.constantFrom([], [service('agency')]))
    .map(([digest, key, services]) => ({
      label: `did.create for missing policy:${digest.slice(0, 8)}`,
      raw: signEvent(didCreate(`policy:${digest}`, services), [key]),
      code: 'POLICY_NOT_FOUND' as ErrorCode,
    }));
  const deactivated = signed(
    fc
      .tuple(
        fc.constantFrom<NextType>('did.update', 'did.deactivate'),
        fc.integer({ min: 1, max: 2 ** 31 }),
        fc.oneof(fc.constant(idOf(head(fx.D2))), digestArb),
      )
      .chain(([type, seq, prev]) =>
        withBody(type, (body) => ({
          label: `${type} seq ${seq} of a deactivated DID`,
          unsigned: event(type, fx.D2, seq, prev, body),
          code: 'SUBJECT_DEACTIVATED',
        })),
      ),
  );
  return fc.oneof(replay, deactivatedReplay, fork, stale, gap, badPrev, unknown, policyNotFound, deactivated);
}

/** Picks one mutator uniformly, then a mutant from it. */
const anyOf = (mutators: readonly fc.Arbitrary<Case>[]): fc.Arbitrary<Case> =>
  fc.nat({ max: mutators.length - 1 }).chain((i) => mutators[i] as fc.Arbitrary<Case>);

// did.create events padded to an exact canonical size, for the 64 KiB limit.
const PAD_URL = 'https://e.example/';
const PAD_CAP = 2000 - PAD_URL.length;

function paddedServices(extra: number, type: string): Service[] {
  return Array.from({ length: 32 }, (_, i) => ({
    id: `#s${i}`,
    type,
    serviceEndpoint: PAD_URL + 'a'.repeat(Math.max(0, Math.min(PAD_CAP, extra - i * PAD_CAP))),
  }));
}

/** The smallest and largest sizes a padded did.create of `type` services can have. */
function paddedRange(policy: PolicyAddress, type: string): { min: number; max: number } {
  const min = canonicalBytes(signEvent(didCreate(policy, paddedServices(0, type)), [admin])).length;
  return { min, max: min + 32 * PAD_CAP };
}

/** A did.create whose canonical JSON, signatures included, is exactly `size` bytes. */
function sizedDidCreate(policy: PolicyAddress, size: number, type: string): LedgerEvent {
  const event = signEvent(didCreate(policy, paddedServices(size - paddedRange(policy, type).min, type)), [admin]);
  expect(canonicalBytes(event).length).toBe(size);
  return event;
}

const ASCII_TYPE = 'DIDCommMessaging';

// ---------------------------------------------------------------------------------------------
// In memory

describe('validateEvent in memory', () => {
  let mem: MemoryLedger;
  let fx: Fixture;
  let valid: LedgerEvent[];

  beforeAll(async () => {
    mem = new MemoryLedger();
    fx = await buildFixture(mem);
    valid = await validEvents(mem, fx);
  });

  it('accepts each of the valid events the mutants start from', async () => {
    for (const event of valid) expect(await outcome(mem.validate(event))).toBe('ACCEPTED');
  });

  it('refuses malformed events (missing, unknown, mistyped, out-of-range fields) with EVENT_MALFORMED', async () => {
    const mutators = valid.flatMap(malformedMutators);
    expect(mutators.length).toBeGreaterThan(300);
    await fc.assert(
      fc.asyncProperty(anyOf(mutators), async (c) => {
        expect(await outcome(mem.validate(c.raw)), c.label).toBe(c.code);
      }),
      { numRuns: 8000 },
    );
  });

  it('refuses forged events (bad signature bytes, another key, a field changed after signing) with EVENT_BAD_SIGNATURE', async () => {
    const mutators = valid.flatMap(forgedMutators);
    await fc.assert(
      fc.asyncProperty(anyOf(mutators), async (c) => {
        expect(await outcome(mem.validate(c.raw)), c.label).toBe(c.code);
      }),
      { numRuns: 4000 },
    );
  });

  it('refuses replays, forks, stale seqs, gaps, wrong prevs, unknown subjects and policies and deactivated DIDs with their codes', async () => {
    await fc.assert(
      fc.asyncProperty(structuralArb(fx), async (c) => {
        expect(await outcome(mem.validate(c.raw)), c.label).toBe(c.code);
      }),
      { numRuns: 4000 },
    );
  });

  it('accepts events up to exactly 64 KiB of canonical JSON and refuses larger ones with EVENT_TOO_LARGE', async () => {
    expect(await outcome(mem.validate(sizedDidCreate(fx.P, MAX_EVENT_BYTES, ASCII_TYPE)))).toBe('ACCEPTED');
    expect(await outcome(mem.validate(sizedDidCreate(fx.P, MAX_EVENT_BYTES + 1, ASCII_TYPE)))).toBe('EVENT_TOO_LARGE');
    await fc.assert(
      fc.asyncProperty(fc.integer(paddedRange(fx.P, ASCII_TYPE)), async (size) => {
        expect(await outcome(mem.validate(sizedDidCreate(fx.P, size, ASCII_TYPE)))).toBe(size > MAX_EVENT_BYTES ? 'EVENT_TOO_LARGE' : 'ACCEPTED');
      }),
      { numRuns: 300 },
    );
  });

  it('measures the 64 KiB limit in UTF-8 bytes, not UTF-16 code units', async () => {
    // The limit is in UTF-8 bytes: a count of UTF-16 code units would let multi-byte text through.
    for (const type of ['€'.repeat(100), '😀'.repeat(50)]) {
      expect(await outcome(mem.validate(sizedDidCreate(fx.P, MAX_EVENT_BYTES, type))), type).toBe('ACCEPTED');
      expect(await outcome(mem.validate(sizedDidCreate(fx.P, MAX_EVENT_BYTES + 1, type))), type).toBe('EVENT_TOO_LARGE');
    }
    // Non-ASCII endpoints pass the URL check: this event is about 190 KB.
    const wide = signEvent(
      didCreate(
        fx.P,
        Array.from({ length: 32 }, (_, i) => ({ id: `#s${i}`, type: 'DIDCommMessaging', serviceEndpoint: `https://e.example/${'€'.repeat(1980)}` })),
      ),
      [admin],
    );
    expect(canonicalBytes(wide).length).toBeGreaterThan(3 * MAX_EVENT_BYTES - 8000);
    expect(await outcome(mem.validate(wide))).toBe('EVENT_TOO_LARGE');
  });

  it('refuses an oversize did.update of a live DID with EVENT_TOO_LARGE', async () => {
    const d1 = await didRecord(mem, fx.D1);
    const event = signEvent(nextEvent('did.update', fx.D1, d1, { services: paddedServices(32 * PAD_CAP, 'DIDCommMessaging') }), [admin]);
    expect(canonicalBytes(event).length).toBeGreaterThan(MAX_EVENT_BYTES);
    expect(await outcome(mem.validate(event))).toBe('EVENT_TOO_LARGE');
  });

  it('treats the same key signing twice as EVENT_MALFORMED', async () => {
    for (const event of valid) expect(await outcome(mem.validate({ ...event, sigs: [...event.sigs, ...event.sigs] }))).toBe('EVENT_MALFORMED');
  });

  it('refuses flags of 2**32 and above, which alias a valid bitset, with EVENT_MALFORMED', async () => {
    // Bitwise & truncates to 32 bits: 2**32 + 1 must not pass as a bitset (it would act as ADMIN).
    const p = await policyRecord(mem, fx.P);
    for (const flags of [2 ** 32, 2 ** 32 + FLAGS.ADMIN, 2 ** 32 + FLAGS.PROVE, 2 ** 53]) {
      const grant = signEvent(nextEvent('policy.grant', fx.P, p, { agent: { key: pool(5).multikey, flags } }), [admin]);
      expect(await outcome(mem.validate(grant)), `flags ${flags}`).toBe('EVENT_MALFORMED');
    }
  });

  it('refuses strings that are not valid Unicode (lone surrogates) with EVENT_MALFORMED', async () => {
    // Schema-valid strings that canonical JSON refuses: still an event problem, not a caller's BAD_INPUT.
    const base = signEvent(didCreate(fx.P, [service('agency')]), [admin]);
    for (const [field, text] of [
      ['type', 'Messaging\uD800'],
      ['type', '\uDC00'],
      ['serviceEndpoint', 'https://agency.example/\uD800'],
    ] as const) {
      const raw = setIn(base, ['services', 0, field], text);
      expect(await outcome(mem.validate(raw)), `${field} = ${JSON.stringify(text)}`).toBe('EVENT_MALFORMED');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Through a ledger node

describe('validation through a ledger node', () => {
  let dir: string;
  let node: LedgerNode;
  let fx: Fixture;
  let valid: LedgerEvent[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dkms-validate-'));
    node = await openNode(dir, nodeSigner(), { now: () => FIXED_MS, verifyThreads: 2 });
    fx = await buildFixture(node);
    valid = await validEvents(node, fx);
  });

  afterAll(async () => {
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('built the fixture: every valid event would be accepted, and the state replays', async () => {
    expect(node.size).toBe(fx.events.length);
    for (const event of valid) expect(await outcome(validateEvent(event, node.store, { gseq: node.size, time: FIXED_TIME }))).toBe('ACCEPTED');
    expect((await node.reindex(false)).differences).toEqual([]);
  });

  it('refuses malformed events with EVENT_MALFORMED and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(anyOf(valid.flatMap(malformedMutators)), async (c) => refusedUnchanged(node, c.raw, c.code, c.label)),
      { numRuns: 1000 },
    );
  });

  it('refuses forged events with EVENT_BAD_SIGNATURE and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(anyOf(valid.flatMap(forgedMutators)), async (c) => refusedUnchanged(node, c.raw, c.code, c.label)),
      { numRuns: 1000 },
    );
  });

  it('refuses replayed, forked, stale, gapped, misdirected and deactivated-subject events and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(structuralArb(fx), async (c) => refusedUnchanged(node, c.raw, c.code, c.label)),
      { numRuns: 1000 },
    );
  });

  it('refuses many bad events submitted in one batch, each with its own code, and changes nothing', async () => {
    const cases = fc.sample(fc.oneof(anyOf(valid.flatMap(malformedMutators)), anyOf(valid.flatMap(forgedMutators)), structuralArb(fx)), 500);
    const before = await snapshot(node);
    const results = await node.submitMany(cases.map((c) => c.raw));
    expect(results.map((r) => (r.ok ? 'ACCEPTED' : r.error.code))).toEqual(cases.map((c) => c.code));
    expect(await snapshot(node)).toEqual(before);
  });

  it('refuses an event over 64 KiB with EVENT_TOO_LARGE and changes nothing; exactly 64 KiB is accepted', async () => {
    await expectRefused(node, sizedDidCreate(fx.P, MAX_EVENT_BYTES + 1, ASCII_TYPE), 'EVENT_TOO_LARGE');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: MAX_EVENT_BYTES + 1, max: paddedRange(fx.P, ASCII_TYPE).max }), async (size) =>
        refusedUnchanged(node, sizedDidCreate(fx.P, size, ASCII_TYPE), 'EVENT_TOO_LARGE'),
      ),
      { numRuns: 50 },
    );
    // Last in this block: it changes the fixture.
    const receipt = await node.submit(sizedDidCreate(fx.P, MAX_EVENT_BYTES, ASCII_TYPE));
    expect(receipt.gseq).toBe(node.size - 1);
    expect((await node.reindex(false)).differences).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Random mixes of good and bad submissions

const SEQ_KEYS = POOL.slice(40, 46);
const SEQ_RECOVERY = POOL.slice(46, 50);
const OPS = ['create', 'grant', 'grant', 'revoke', 'rules', 'recover', 'didCreate', 'didUpdate', 'didDeactivate', 'replay'] as const;
const CORRUPTIONS = ['flip', 'gap', 'fork', 'prev', 'field', 'dupSig'] as const;

const commandArb = fc.record({
  op: fc.constantFrom(...OPS),
  target: fc.nat(),
  key: fc.nat({ max: SEQ_KEYS.length - 1 }),
  flags: fc.integer({ min: 0, max: 15 }),
  /** null: the signers a well-behaved client would use; else indexes into keys then recovery keys. */
  signers: fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 2, arbitrary: fc.array(fc.nat({ max: SEQ_KEYS.length + SEQ_RECOVERY.length - 1 }), { minLength: 1, maxLength: 3 }) },
  ),
  count: fc.integer({ min: 1, max: 3 }),
  rule: fc.constantFrom('grant', 'revoke', 'rules', 'did'),
  next: fc.subarray([0, 1, 2, 3], { minLength: 1 }),
  threshold: fc.integer({ min: 1, max: 2 }),
  replace: fc.boolean(),
  corrupt: fc.oneof({ weight: 6, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constantFrom(...CORRUPTIONS) }),
  flush: fc.boolean(),
});
type Command = typeof commandArb extends fc.Arbitrary<infer T> ? T : never;

/** Builds the event a command stands for, against the model's current state. */
class Scenario {
  readonly mem = new MemoryLedger();
  readonly policies: PolicyAddress[] = [];
  readonly dids: Did[] = [];

  async build(cmd: Command): Promise<unknown> {
    const { mem } = this;
    let op: (typeof OPS)[number] = cmd.op;
    if (op === 'replay' && mem.accepted.length === 0) op = 'create';
    if ((op === 'didUpdate' || op === 'didDeactivate') && this.dids.length === 0) op = 'didCreate';
    if (op !== 'create' && op !== 'replay' && this.policies.length === 0) op = 'create';
    if (op === 'replay') return mem.accepted[cmd.target % mem.accepted.length];

    const explicit = cmd.signers?.map((i) => (i < SEQ_KEYS.length ? SEQ_KEYS[i] : SEQ_RECOVERY[i - SEQ_KEYS.length]) as TestKey);
    const key = SEQ_KEYS[cmd.key] as TestKey;
    const recovery = commitment(
      cmd.next.map((i) => SEQ_RECOVERY[i] as TestKey),
      cmd.threshold,
    );
    let unsigned: Record<string, unknown>;
    let proper: TestKey[];
    if (op === 'create') {
      const agents = [key.agent(ALL_FLAGS), ...(cmd.count > 1 ? [(SEQ_KEYS[(cmd.key + 1) % SEQ_KEYS.length] as TestKey).agent(cmd.flags)] : [])];
      unsigned = policyCreate(agents, recovery, cmd.replace ? ({ [cmd.rule]: cmd.count } as Partial<Rules>) : undefined) as never;
      proper = agents.map((a) => KEYS.get(a.key) as TestKey);
    } else if (op === 'didUpdate' || op === 'didDeactivate') {
      const did = this.dids[cmd.target % this.dids.length] as Did;
      const record = await didRecord(mem, did);
      const policy = await policyRecord(mem, record.controller);
      unsigned = nextEvent(
        op === 'didUpdate' ? 'did.update' : 'did.deactivate',
        did,
        record,
        op === 'didUpdate' ? { services: [service(`s${cmd.flags}`)] } : {},
      ) as never;
      proper = this.admins(policy.policy.agents).slice(0, policy.policy.rules.did);
    } else {
      const address = this.policies[cmd.target % this.policies.length] as PolicyAddress;
      const record = await policyRecord(mem, address);
      const { agents, rules } = record.policy;
      const admins = this.admins(agents);
      switch (op) {
        case 'grant':
          unsigned = nextEvent('policy.grant', address, record, { agent: key.agent(cmd.flags) }) as never;
          proper = admins.slice(0, rules.grant);
          break;
        case 'revoke':
          unsigned = nextEvent('policy.revoke', address, record, { key: key.multikey }) as never;
          proper = admins.slice(0, rules.revoke);
          break;
        case 'rules':
          unsigned = nextEvent('policy.rules', address, record, { rules: { ...rules, [cmd.rule]: cmd.count } }) as never;
          proper = admins.slice(0, rules.rules);
          break;
        case 'recover': {
          const newAgents = cmd.replace ? [key.agent(ALL_FLAGS)] : undefined;
          unsigned = nextEvent('policy.recover', address, record, { next: recovery, ...(newAgents === undefined ? {} : { agents: newAgents }) }) as never;
          const committed = SEQ_RECOVERY.filter((k) => commitment([k]).digests.every((d) => record.policy.recovery.digests.includes(d)));
          proper = [...committed.slice(0, record.policy.recovery.threshold), ...(newAgents === undefined || committed.includes(key) ? [] : [key])];
          break;
        }
        default:
          unsigned = didCreate(address, [service('agency')]) as never;
          proper = admins.slice(0, rules.did);
      }
    }
    const signers = explicit ?? proper;
    return this.corrupt(unsigned, signers, cmd);
  }

  admins(agents: readonly { key: string; flags: number }[]): TestKey[] {
    return agents.filter((a) => (a.flags & FLAGS.ADMIN) !== 0).map((a) => KEYS.get(a.key) as TestKey);
  }

  async corrupt(unsigned: Record<string, unknown>, signers: TestKey[], cmd: Command): Promise<unknown> {
    const sign = (u: Record<string, unknown>) => signEvent(u as never, signers);
    const event = sign(unsigned);
    const seq = unsigned.seq as number;
    switch (cmd.corrupt) {
      case 'flip':
        return { ...event, sigs: event.sigs.map((s, i) => (i === 0 ? { ...s, sig: flipBit(s.sig, cmd.flags * 31) } : s)) };
      case 'gap':
        return sign({ ...unsigned, seq: seq + 1 });
      case 'fork': {
        if (seq < 2) return sign({ ...unsigned, extra: true });
        const stored = await this.mem.view.eventAt(unsigned.subject as Subject, seq - 1);
        return sign({ ...unsigned, seq: seq - 1, prev: stored?.prev });
      }
      case 'prev':
        return sign({ ...unsigned, prev: toBase58btc(new Uint8Array(32).fill(cmd.flags + 1)) });
      case 'field':
        return { ...event, extra: cmd.count };
      case 'dupSig':
        return { ...event, sigs: [...event.sigs, ...event.sigs] };
      default:
        return event;
    }
  }

  /** Validates in the model, recording what is accepted; returns the code. */
  async expect(raw: unknown): Promise<string> {
    let created: Subject | undefined;
    const code = await outcome(
      this.mem.submit(raw).then((a) => {
        if (a.event.seq === 0) created = a.subject;
      }),
    );
    if (created?.startsWith('policy:')) this.policies.push(created as PolicyAddress);
    else if (created !== undefined) this.dids.push(created as Did);
    return code;
  }
}

describe('random sequences of valid and invalid submissions', () => {
  it('give each event the code an in-memory replay gives, and leave exactly the state of the accepted events', async () => {
    const seen = new Map<string, number>();
    await fc.assert(
      // With worker threads checking signatures, everything goes in one batch, large enough for the pool.
      fc.asyncProperty(fc.boolean(), fc.array(commandArb, { minLength: 5, maxLength: 60, size: 'max' }), async (workers, commands) => {
        const dir = mkdtempSync(join(tmpdir(), 'dkms-seq-'));
        const node = await openNode(dir, nodeSigner(), { now: () => FIXED_MS, verifyThreads: workers ? 2 : 0 });
        try {
          const scenario = new Scenario();
          let batch: unknown[] = [];
          let expected: string[] = [];
          const flush = async () => {
            const results = await node.submitMany(batch);
            expect(results.map((r) => (r.ok ? 'ACCEPTED' : r.error.code))).toEqual(expected);
            batch = [];
            expected = [];
          };
          for (const [i, cmd] of commands.entries()) {
            const raw = await scenario.build(cmd);
            const code = await scenario.expect(raw);
            seen.set(code, (seen.get(code) ?? 0) + 1);
            batch.push(raw);
            expected.push(code);
            if ((cmd.flush && !workers) || i === commands.length - 1) await flush();
          }
          const { mem } = scenario;
          // The log holds exactly the accepted events, in order; the state is theirs alone.
          expect(node.size).toBe(mem.accepted.length);
          expect((await node.range(0, node.size)).map((r) => canonicalJson(r.event))).toEqual(mem.accepted.map((e) => canonicalJson(e)));
          expect((await node.store.subjects()).map((r) => canonicalJson(r))).toEqual(mem.records());
          const again = new MemoryLedger();
          for (const event of mem.accepted) await again.submit(event);
          expect(again.records()).toEqual(mem.records());
          expect((await node.reindex(false)).differences).toEqual([]);
          expect((await node.verify()).problems).toEqual([]);
        } finally {
          await node.close();
          rmSync(dir, { recursive: true, force: true });
        }
      }),
      { numRuns: 80 },
    );
    // The generator reaches acceptance and the main refusals, not just one of them.
    const codes = [
      'ACCEPTED',
      'EVENT_MALFORMED',
      'EVENT_BAD_SIGNATURE',
      'EVENT_UNAUTHORIZED',
      'EVENT_INVALID',
      'EVENT_LOCKOUT',
      'EVENT_REPLAY',
      'EVENT_FORK',
      'EVENT_SEQ_GAP',
      'EVENT_BAD_PREV',
    ];
    for (const code of [...codes, 'EVENT_RECOVERY_KEY_REUSED', 'SUBJECT_DEACTIVATED']) {
      expect(seen.get(code) ?? 0, code).toBeGreaterThan(0);
    }
  });
});
