/**
 * DIDComm v2 envelopes end to end: anoncrypt and authcrypt round trips for every content
 * encryption and several recipients, signed messages, forward routing; and every way an
 * envelope can be damaged or forged, each refused with its own DkmsError code. The parsers are
 * also fuzzed: whatever they are given, they either succeed or throw an ENVELOPE_* or
 * MESSAGE_* DkmsError, never a TypeError, SyntaxError or RangeError.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ANON_ALG,
  AUTH_ALG,
  ENCRYPTED_TYP,
  FORWARD_TYPE,
  anoncrypt,
  anoncryptPerDid,
  authcrypt,
  authcryptPerDid,
  decodeHeader,
  decrypt,
  didKeyUrl,
  didOfKid,
  encodeHeader,
  forwardMessage,
  memoryAgreementKey,
  messageBytes,
  newMessage,
  okpJwk,
  parseJwe,
  parseMessage,
  readForward,
  recipientsDigest,
  signJws,
  verifyJws,
  wrapForward,
  type AgreementKey,
  type Jwe,
  type Jws,
  type Message,
  type PublicKeyRef,
  type SenderResolver,
  type SigningKey,
} from '../../src/didcomm/index.js';
import {
  type ContentEncryption,
  ed25519Generate,
  fromBase64url,
  fromHex,
  fromUtf8,
  memorySigner,
  randomBytes,
  toBase64url,
  utf8,
  x25519Generate,
} from '../../src/crypto/index.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';
import { clone, codeOf, outcome, smallOrderKey } from '../helpers/events.js';

// ---------------------------------------------------------------------------------------------
// Keys and fixtures

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** An X25519 key held in memory, named by its did:key URL unless `kid` is given. */
function agreementKey(kid?: string): AgreementKey {
  const pair = x25519Generate();
  return memoryAgreementKey(kid ?? didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
}

const refOf = (key: AgreementKey): PublicKeyRef => ({ kid: key.kid, publicKey: key.publicKey });

function signingKey(): SigningKey {
  const pair = ed25519Generate();
  return { ...memorySigner(pair.privateKey, pair.publicKey), kid: didKeyUrl('ed25519', pair.publicKey) };
}

const alice = agreementKey(); // the authcrypt sender
const mallory = agreementKey(); // another key, known to the default resolver (did:key)
// An envelope's recipients are keys of one DID: bob's devices. Not did:key URLs: recipients need no resolving.
const bob = agreementKey('did:example:bob#key-1'); // "us"
const carol = agreementKey('did:example:bob#key-2'); // another key of bob's DID
const dave = agreementKey('did:example:bob#key-3');

/** A resolver that knows alice only. */
const onlyAlice: SenderResolver = (skid) => (skid === alice.kid ? alice.publicKey : undefined);

const message = newMessage('https://example.org/test/1.0/ping', { text: 'hello, envelopes', n: 42 }, { from: 'did:example:alice', to: ['did:example:bob'] });
const plaintext = messageBytes(message);

interface Mode {
  readonly name: string;
  readonly alg: string;
  readonly enc: ContentEncryption;
  readonly sender?: string;
  seal(to: readonly PublicKeyRef[], body?: Uint8Array): Jwe;
}

const MODES: readonly Mode[] = [
  ...(['A256CBC-HS512', 'A256GCM', 'XC20P'] as const).map((enc): Mode => ({
    name: `anoncrypt ${enc}`,
    alg: ANON_ALG,
    enc,
    seal: (to, body = plaintext) => anoncrypt(body, to, enc),
  })),
  { name: 'authcrypt', alg: AUTH_ALG, enc: 'A256CBC-HS512', sender: alice.kid, seal: (to, body = plaintext) => authcrypt(body, alice, to) },
];
const MODE_CASES = MODES.map((mode) => [mode.name, mode] as const);

const ENVELOPE_FIELDS = ['protected', 'encrypted_key', 'iv', 'ciphertext', 'tag'] as const;
type EnvelopeField = (typeof ENVELOPE_FIELDS)[number];

/** The value of `field` in `jwe`; encrypted_key is recipient `index`'s. */
function getField(jwe: Jwe, field: EnvelopeField, index = 0): string {
  if (field === 'encrypted_key') return (jwe.recipients[index] as Jwe['recipients'][number]).encrypted_key;
  return jwe[field];
}

/** A copy of `jwe` with `field` set to `value`. */
function withField(jwe: Jwe, field: EnvelopeField, value: string, index = 0): Jwe {
  const copy = clone(jwe);
  if (field === 'encrypted_key') (copy.recipients[index] as Jwe['recipients'][number]).encrypted_key = value;
  else copy[field] = value;
  return copy;
}

/** `text` with the character at `position` replaced by another base64url character (`shift` of 1..63 along the alphabet). */
function flipAt(text: string, position: number, shift: number): string {
  const original = BASE64URL_ALPHABET.indexOf(text[position] as string);
  const replacement = BASE64URL_ALPHABET[(original + shift) % 64] as string;
  return text.slice(0, position) + replacement + text.slice(position + 1);
}

/** Whether `text` is the one canonical unpadded base64url encoding of some bytes. */
function isCanonicalBase64url(text: string): boolean {
  try {
    fromBase64url(text);
    return true;
  } catch {
    return false;
  }
}

/** `encoded` re-encoded after cutting `cut` bytes off its end (at least 0 left). */
function cutBytes(encoded: string, cut: number): string {
  const bytes = fromBase64url(encoded);
  return toBase64url(bytes.subarray(0, Math.max(0, bytes.length - cut)));
}

/** A copy of `jwe` whose protected header is `edit` applied to the decoded original. */
function withHeader(jwe: Jwe, edit: (header: Record<string, unknown>) => void): Jwe {
  const header = decodeHeader(jwe.protected);
  edit(header);
  return { ...clone(jwe), protected: encodeHeader(header) };
}

/** A copy of `value` without its member `name`. */
function without<T extends object>(value: T, name: string): unknown {
  const copy = { ...clone(value) } as Record<string, unknown>;
  Reflect.deleteProperty(copy, name);
  return copy;
}

const DECRYPT_CODES: readonly string[] = ['ENVELOPE_MALFORMED', 'ENVELOPE_UNSUPPORTED', 'ENVELOPE_NOT_FOR_US', 'ENVELOPE_TAMPERED', 'ENVELOPE_UNKNOWN_SENDER'];
const VERIFY_CODES: readonly string[] = ['ACCEPTED', 'ENVELOPE_MALFORMED', 'ENVELOPE_UNKNOWN_SENDER', 'ENVELOPE_BAD_SIGNATURE'];

// ---------------------------------------------------------------------------------------------
// 1. Round trips

describe('round trips', () => {
  const groups = [
    { size: 1, keys: [bob] },
    { size: 1, keys: [agreementKey()] }, // a did:key DID
    { size: 2, keys: [bob, carol] },
    { size: 5, keys: [bob, carol, dave, agreementKey('did:example:bob#key-4'), agreementKey('did:example:bob#key-5')] },
  ];
  const cases = MODES.flatMap((mode) => groups.map((group) => [mode.name, group.size, mode, group.keys] as const));

  it.each(cases)('%s to %i recipient(s): every recipient decrypts', (_name, _size, mode, keys) => {
    const jwe = mode.seal(keys.map(refOf));
    const header = decodeHeader(jwe.protected);
    expect(header).toMatchObject({ typ: ENCRYPTED_TYP, alg: mode.alg, enc: mode.enc, epk: { kty: 'OKP', crv: 'X25519' } });
    expect(header['apv']).toBe(toBase64url(recipientsDigest(keys.map((k) => k.kid))));
    if (mode.sender === undefined) {
      expect(header['skid']).toBeUndefined();
      expect(header['apu']).toBeUndefined();
    } else {
      expect(header['skid']).toBe(mode.sender);
      expect(header['apu']).toBe(toBase64url(utf8(mode.sender)));
    }
    expect(jwe.recipients.map((r) => r.header?.['kid'])).toEqual(keys.map((k) => k.kid));
    for (const key of keys) {
      // Handing decrypt every key but the right one first does not matter; nor does the input form.
      const others = [agreementKey(), key];
      for (const input of [jwe, JSON.stringify(jwe), utf8(JSON.stringify(jwe))]) {
        const opened = decrypt(input, others);
        expect(fromUtf8(opened.plaintext)).toBe(fromUtf8(plaintext));
        expect(opened.alg).toBe(mode.alg);
        expect(opened.enc).toBe(mode.enc);
        expect(opened.recipientKid).toBe(key.kid);
        expect(opened.recipients).toEqual(keys.map((k) => k.kid));
        expect(opened.senderKid).toBe(mode.sender);
        expect(opened.typ).toBe(ENCRYPTED_TYP);
      }
      expect(parseMessage(decrypt(jwe, [key]).plaintext)).toEqual(message);
    }
  });

  it.each(MODE_CASES)('%s: an empty plaintext and a 64 KiB one round trip', (_name, mode) => {
    for (const body of [new Uint8Array(0), randomBytes(65_536)]) {
      const opened = decrypt(mode.seal([refOf(bob)], body), [bob]);
      expect(Buffer.from(opened.plaintext).equals(Buffer.from(body))).toBe(true);
    }
  });

  it('authcrypt authenticates the sender through a custom resolver', () => {
    const jwe = authcrypt(plaintext, alice, [refOf(bob), refOf(carol)]);
    for (const key of [bob, carol]) {
      const opened = decrypt(jwe, [key], onlyAlice);
      expect(opened.senderKid).toBe(alice.kid);
      expect(opened.alg).toBe(AUTH_ALG);
    }
  });

  it('reordering the recipient list is harmless: apv binds the sorted kids', () => {
    const jwe = anoncrypt(plaintext, [refOf(bob), refOf(carol), refOf(dave)]);
    const reordered = { ...jwe, recipients: [...jwe.recipients].reverse() };
    expect(decrypt(reordered, [bob]).recipients).toEqual([dave.kid, carol.kid, bob.kid]);
  });

  it('each message gets a fresh ephemeral key, IV and content key', () => {
    const a = anoncrypt(plaintext, [refOf(bob)]);
    const b = anoncrypt(plaintext, [refOf(bob)]);
    expect(decodeHeader(a.protected)['epk']).not.toEqual(decodeHeader(b.protected)['epk']);
    expect(a.iv).not.toBe(b.iv);
    expect(a.ciphertext).not.toBe(b.ciphertext);
  });

  it('refuses to encrypt to nobody or to the same kid twice', () => {
    expectCode(() => anoncrypt(plaintext, []), 'BAD_INPUT');
    expectCode(() => authcrypt(plaintext, alice, [refOf(bob), refOf(bob)]), 'BAD_INPUT');
    expectCode(() => authcryptPerDid(plaintext, alice, []), 'BAD_INPUT');
    expectCode(() => anoncryptPerDid(plaintext, [refOf(bob), refOf(bob)]), 'BAD_INPUT');
  });

  it("to several DIDs: one envelope per DID, in the order the DIDs first appear, each listing only that DID's keys", () => {
    const erin = agreementKey();
    const frank = agreementKey();
    for (const sealed of [
      anoncryptPerDid(plaintext, [refOf(erin), refOf(bob), refOf(frank), refOf(carol)], 'XC20P'),
      authcryptPerDid(plaintext, alice, [refOf(erin), refOf(bob), refOf(frank), refOf(carol)]),
    ]) {
      expect(sealed.map((e) => e.did)).toEqual([didOfKid(erin.kid), 'did:example:bob', didOfKid(frank.kid)]);
      expect(sealed.map((e) => e.envelope.recipients.map((r) => r.header?.['kid']))).toEqual([[erin.kid], [bob.kid, carol.kid], [frank.kid]]);
      for (const key of [erin, bob, carol, frank]) {
        const opened = decrypt(sealed.find((e) => e.did === didOfKid(key.kid))?.envelope, [key]);
        expect(opened.recipientKid).toBe(key.kid);
        expect(fromUtf8(opened.plaintext)).toBe(fromUtf8(plaintext));
      }
    }
  });

  it('signed message: signJws then verifyJws with a did:key kid and the default resolver', async () => {
    const signer = signingKey();
    const jws = signJws(plaintext, signer);
    expect(jws.signatures[0]?.header).toEqual({ kid: didKeyUrl('ed25519', signer.publicKey) });
    expect(decodeHeader(jws.signatures[0]?.protected as string)).toEqual({ typ: 'application/didcomm-signed+json', alg: 'EdDSA' });
    for (const input of [jws, JSON.stringify(jws), utf8(JSON.stringify(jws))]) {
      const verified = await verifyJws(input);
      expect(verified.signerKid).toBe(signer.kid);
      expect(parseMessage(verified.payload)).toEqual(message);
    }
  });

  it('signed message with several signatures: one by a known key that verifies is enough', async () => {
    const known = signingKey();
    const stranger = { ...signingKey(), kid: 'did:example:stranger#key-1' };
    const good = signJws(plaintext, known).signatures[0] as Jws['signatures'][number];
    const other = signJws(plaintext, stranger).signatures[0] as Jws['signatures'][number];
    const wrongPayload = signJws(utf8('something else'), signingKey()).signatures[0] as Jws['signatures'][number];
    const jws: Jws = { payload: toBase64url(plaintext), signatures: [other, wrongPayload, good] };
    expect((await verifyJws(jws)).signerKid).toBe(known.kid);
  });

  it('forward: the mediator unwraps, readForward names next and hands back the inner envelope, which the recipient decrypts', () => {
    const mediator = agreementKey();
    const inner = authcrypt(plaintext, alice, [refOf(bob)]);
    const outer = wrapForward(inner, bob.kid, [refOf(mediator)]);

    const unwrapped = decrypt(outer, [mediator]);
    expect(unwrapped.alg).toBe(ANON_ALG);
    expect(unwrapped.senderKid).toBeUndefined();
    expect(unwrapped.recipientKid).toBe(mediator.kid);
    const forward = parseMessage(unwrapped.plaintext);
    expect(forward.type).toBe(FORWARD_TYPE);
    expect(forward.expires_time).toBeGreaterThan(forward.created_time ?? 0);
    const { next, payload } = readForward(forward);
    expect(next).toBe(bob.kid);
    expect(payload).toEqual(inner);

    const opened = decrypt(payload, [bob]);
    expect(opened.senderKid).toBe(alice.kid);
    expect(parseMessage(opened.plaintext)).toEqual(message);

    // Neither side can open the other's layer.
    expectCode(() => decrypt(outer, [bob]), 'ENVELOPE_NOT_FOR_US');
    expectCode(() => decrypt(payload, [mediator]), 'ENVELOPE_NOT_FOR_US');
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Tampering

describe('tampering', () => {
  /** The envelope every tampering test starts from, per mode: to bob and carol; we are bob. */
  const sealed = new Map(MODES.map((mode) => [mode.name, mode.seal([refOf(bob), refOf(carol)])]));
  const envelope = (mode: Mode): Jwe => sealed.get(mode.name) as Jwe;
  const open = (jwe: unknown) => decrypt(jwe, [bob]);

  it.each(MODE_CASES)('%s: the untouched envelope decrypts (control)', (_name, mode) => {
    expect(open(envelope(mode)).plaintext).toEqual(plaintext);
  });

  /** Header members whose values the decryption depends on. */
  const BOUND_MEMBERS = ['alg', 'enc', 'epk', 'skid', 'apu', 'apv', 'crit', 'kid'];

  it.each(MODE_CASES)('%s: one flipped base64url character anywhere is refused with the right code', (_name, mode) => {
    const jwe = envelope(mode);
    const originalHeader = decodeHeader(jwe.protected);
    fc.assert(
      fc.property(fc.constantFrom(...ENVELOPE_FIELDS), fc.nat(), fc.integer({ min: 1, max: 63 }), (field, at, shift) => {
        const original = getField(jwe, field);
        const value = flipAt(original, at % original.length, shift);
        const got = codeOf(() => open(withField(jwe, field, value)));
        if (field !== 'protected') {
          // A flip that leaves a non-canonical tail (only unused bits changed) is not base64url at
          // all: MALFORMED. Every other flip is an intact encoding of altered bytes: TAMPERED.
          expect(got).toBe(isCanonicalBase64url(value) ? 'ENVELOPE_TAMPERED' : 'ENVELOPE_MALFORMED');
          return;
        }
        let header: Record<string, unknown> | undefined;
        try {
          header = decodeHeader(value);
        } catch {
          header = undefined;
        }
        if (header === undefined) {
          // Not base64url JSON any more (non-canonical tail, bad UTF-8, broken JSON).
          expect(got).toBe('ENVELOPE_MALFORMED');
        } else if (BOUND_MEMBERS.every((name) => isDeepStrictEqual(header[name], originalHeader[name]))) {
          // Still the same algorithms and keys (typ changed, or a member renamed harmlessly): the
          // protected header is authenticated data, so the tag no longer verifies.
          expect(got).toBe('ENVELOPE_TAMPERED');
        } else {
          // alg, enc or epk altered: UNSUPPORTED; a member no longer valid: MALFORMED; else TAMPERED.
          expect(['ENVELOPE_MALFORMED', 'ENVELOPE_UNSUPPORTED', 'ENVELOPE_TAMPERED']).toContain(got);
        }
      }),
      { numRuns: 200 },
    );
  });

  it.each(MODE_CASES)('%s: a flip in the last character of each field that keeps the encoding canonical is TAMPERED', (_name, mode) => {
    const jwe = envelope(mode);
    for (const field of ['encrypted_key', 'iv', 'ciphertext', 'tag'] as const) {
      const original = getField(jwe, field);
      const at = original.length - 1;
      // Flipping the character's top bit always changes a used bit.
      const value = flipAt(original, at, 32);
      expect(isCanonicalBase64url(value)).toBe(true);
      expectCode(() => open(withField(jwe, field, value)), 'ENVELOPE_TAMPERED');
    }
  });

  it('a non-canonical base64url tail is MALFORMED, not TAMPERED (the decoder is strict)', () => {
    const jwe = envelope(MODES[0] as Mode); // A256CBC-HS512: a 16-byte IV leaves 4 unused bits
    const iv = jwe.iv;
    expect(iv.length).toBe(22);
    const value = flipAt(iv, iv.length - 1, 1);
    expect(isCanonicalBase64url(value)).toBe(false);
    expectCode(() => open({ ...jwe, iv: value }), 'ENVELOPE_MALFORMED');
  });

  it.each(MODE_CASES)("%s: another recipient's encrypted_key is not ours to check: we still decrypt", (_name, mode) => {
    const jwe = envelope(mode);
    const theirs = getField(jwe, 'encrypted_key', 1);
    const damaged = withField(jwe, 'encrypted_key', flipAt(theirs, 5, 7), 1);
    expect(open(damaged).plaintext).toEqual(plaintext);
    expectCode(() => decrypt(damaged, [carol]), 'ENVELOPE_TAMPERED');
  });

  it.each(MODE_CASES)('%s: truncating or extending iv, ciphertext, tag or encrypted_key is TAMPERED', (_name, mode) => {
    const jwe = envelope(mode);
    for (const field of ['encrypted_key', 'iv', 'ciphertext', 'tag'] as const) {
      const value = getField(jwe, field);
      const length = fromBase64url(value).length;
      for (const cut of [1, 8, 16, Math.floor(length / 2), length]) {
        if (cut > length) continue;
        expectCode(() => open(withField(jwe, field, cutBytes(value, cut))), 'ENVELOPE_TAMPERED');
      }
      const extended = toBase64url(Buffer.concat([fromBase64url(value), new Uint8Array(8)]));
      expectCode(() => open(withField(jwe, field, extended)), 'ENVELOPE_TAMPERED');
    }
  });

  it.each(MODE_CASES)('%s: dropping a required member is MALFORMED', (_name, mode) => {
    const jwe = envelope(mode);
    for (const member of ['protected', 'recipients', 'iv', 'ciphertext', 'tag']) {
      expectCode(() => open(without(jwe, member)), 'ENVELOPE_MALFORMED');
    }
    expectCode(() => open({ ...jwe, recipients: [] }), 'ENVELOPE_MALFORMED');
    expectCode(() => open({ ...jwe, recipients: jwe.recipients.map((r) => without(r, 'encrypted_key')) }), 'ENVELOPE_MALFORMED');
    expectCode(() => open({ ...jwe, unexpected: 'member' }), 'ENVELOPE_MALFORMED');
    for (const name of ['alg', 'enc']) {
      expectCode(() => open(withHeader(jwe, (h) => Reflect.deleteProperty(h, name))), 'ENVELOPE_MALFORMED');
    }
  });

  it.each(MODE_CASES)('%s: dropping the ephemeral key (epk) from the header is MALFORMED', (_name, mode) => {
    expectCode(() => open(withHeader(envelope(mode), (h) => Reflect.deleteProperty(h, 'epk'))), 'ENVELOPE_MALFORMED');
  });

  it('authcrypt: naming another sender in skid and apu makes the message undecryptable', () => {
    const jwe = envelope(MODES[3] as Mode);
    const other = mallory.kid;
    const swapped = withHeader(jwe, (h) => {
      h['skid'] = other;
      h['apu'] = toBase64url(utf8(other));
    });
    // The default resolver knows every did:key sender: the key agreement then differs.
    expectCode(() => open(swapped), 'ENVELOPE_TAMPERED');
    // A resolver that knows only alice does not know the new sender at all.
    expectCode(() => decrypt(swapped, [bob], onlyAlice), 'ENVELOPE_UNKNOWN_SENDER');
    // skid and apu disagreeing, either way round.
    expectCode(() => open(withHeader(jwe, (h) => (h['skid'] = other))), 'ENVELOPE_TAMPERED');
    expectCode(() => open(withHeader(jwe, (h) => (h['apu'] = toBase64url(utf8(other))))), 'ENVELOPE_TAMPERED');
    // skid dropped: apu alone still names alice, but the protected header is authenticated.
    expectCode(() => open(withHeader(jwe, (h) => Reflect.deleteProperty(h, 'skid'))), 'ENVELOPE_TAMPERED');
    // Neither skid nor apu: no sender at all.
    expectCode(
      () =>
        open(
          withHeader(jwe, (h) => {
            Reflect.deleteProperty(h, 'skid');
            Reflect.deleteProperty(h, 'apu');
          }),
        ),
      'ENVELOPE_MALFORMED',
    );
  });

  it("authcrypt: a sender claiming alice's kid without alice's key is TAMPERED", () => {
    const impostor: AgreementKey = { ...mallory, kid: alice.kid };
    const forged = authcrypt(plaintext, impostor, [refOf(bob)]);
    expectCode(() => open(forged), 'ENVELOPE_TAMPERED');
    expectCode(() => decrypt(forged, [bob], onlyAlice), 'ENVELOPE_TAMPERED');
  });

  it.each(MODE_CASES)('%s: removing, adding or duplicating a recipient after encryption is TAMPERED (apv binds the list)', (_name, mode) => {
    const jwe = mode.seal([refOf(bob), refOf(carol), refOf(dave)]);
    const [ours, theirs] = jwe.recipients as [Jwe['recipients'][number], Jwe['recipients'][number]];
    expectCode(() => open({ ...jwe, recipients: jwe.recipients.filter((r) => r !== theirs) }), 'ENVELOPE_TAMPERED');
    expectCode(() => open({ ...jwe, recipients: [ours] }), 'ENVELOPE_TAMPERED');
    expectCode(
      () => open({ ...jwe, recipients: [...jwe.recipients, { header: { kid: mallory.kid }, encrypted_key: ours.encrypted_key }] }),
      'ENVELOPE_TAMPERED',
    );
    expectCode(
      () => open({ ...jwe, recipients: [{ header: { kid: 'did:example:eve#1' }, encrypted_key: theirs.encrypted_key }, ...jwe.recipients] }),
      'ENVELOPE_TAMPERED',
    );
    expectCode(() => open({ ...jwe, recipients: [...jwe.recipients, ours] }), 'ENVELOPE_TAMPERED');
  });

  it('a recipient header repeating a protected member is MALFORMED', () => {
    const jwe = envelope(MODES[0] as Mode);
    const recipients = jwe.recipients.map((r) => ({ ...r, header: { ...r.header, alg: ANON_ALG } }));
    expectCode(() => open({ ...jwe, recipients }), 'ENVELOPE_MALFORMED');
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Wrong recipient

describe('wrong recipient', () => {
  it.each(MODE_CASES)('%s: a key not among the recipients is NOT_FOR_US', (_name, mode) => {
    const jwe = mode.seal([refOf(carol), refOf(dave)]);
    expectCode(() => decrypt(jwe, [bob]), 'ENVELOPE_NOT_FOR_US');
    expectCode(() => decrypt(jwe, []), 'ENVELOPE_NOT_FOR_US');
    // Same key material under another kid is still not a match: recipients are found by kid.
    expectCode(() => decrypt(jwe, [memoryAgreementKey('did:example:other#1', new Uint8Array(32), carol.publicKey)]), 'ENVELOPE_NOT_FOR_US');
  });

  it.each(MODE_CASES)("%s: a recipient entry with our kid but another key's material is TAMPERED", (_name, mode) => {
    // Encrypted to mallory's public key, labelled with bob's kid.
    const mislabelled = mode.seal([{ kid: bob.kid, publicKey: mallory.publicKey }]);
    expectCode(() => decrypt(mislabelled, [bob]), 'ENVELOPE_TAMPERED');
    // Carol's entry relabelled with bob's kid after encryption.
    const jwe = mode.seal([refOf(carol)]);
    const relabelled = { ...jwe, recipients: [{ header: { kid: bob.kid }, encrypted_key: getField(jwe, 'encrypted_key') }] };
    expectCode(() => decrypt(relabelled, [bob]), 'ENVELOPE_TAMPERED');
  });

  it('an ephemeral key of small order is TAMPERED, not a crash', () => {
    const jwe = anoncrypt(plaintext, [refOf(bob)]);
    const zero = withHeader(jwe, (h) => (h['epk'] = okpJwk('X25519', new Uint8Array(32))));
    expectCode(() => decrypt(zero, [bob]), 'ENVELOPE_TAMPERED');
  });
});

// ---------------------------------------------------------------------------------------------
// 4. Unsupported algorithms

describe('unsupported', () => {
  const anon = anoncrypt(plaintext, [refOf(bob)]);
  const auth = authcrypt(plaintext, alice, [refOf(bob)]);
  const p256 = { kty: 'EC', crv: 'P-256', x: toBase64url(randomBytes(32)), y: toBase64url(randomBytes(32)) };

  it('an unchanged re-encoded header still decrypts, and any edit is TAMPERED (controls)', () => {
    expect(withHeader(anon, () => undefined).protected).toBe(anon.protected);
    expect(
      decrypt(
        withHeader(auth, () => undefined),
        [bob],
      ).senderKid,
    ).toBe(alice.kid);
    expectCode(
      () =>
        decrypt(
          withHeader(anon, (h) => (h['note'] = 'x')),
          [bob],
        ),
      'ENVELOPE_TAMPERED',
    );
  });

  const cases: readonly (readonly [string, Jwe, (h: Record<string, unknown>) => void])[] = [
    ['alg RSA-OAEP', anon, (h) => (h['alg'] = 'RSA-OAEP')],
    ['alg ECDH-ES (direct)', anon, (h) => (h['alg'] = 'ECDH-ES')],
    ['enc A128GCM', anon, (h) => (h['enc'] = 'A128GCM')],
    ['enc A128CBC-HS256', anon, (h) => (h['enc'] = 'A128CBC-HS256')],
    ['epk on P-256', anon, (h) => (h['epk'] = p256)],
    ['epk OKP claiming crv P-256', anon, (h) => (h['epk'] = { ...(h['epk'] as object), crv: 'P-256' })],
    ['epk on Ed25519', anon, (h) => (h['epk'] = { ...(h['epk'] as object), crv: 'Ed25519' })],
    ['a crit header', anon, (h) => (h['crit'] = ['exp'])],
    ['a crit header (authcrypt)', auth, (h) => (h['crit'] = ['b64'])],
    ['authcrypt with A256GCM', auth, (h) => (h['enc'] = 'A256GCM')],
    ['authcrypt with XC20P', auth, (h) => (h['enc'] = 'XC20P')],
  ];

  it.each(cases)('%s is UNSUPPORTED', (_name, jwe, edit) => {
    expectCode(() => decrypt(withHeader(jwe, edit), [bob]), 'ENVELOPE_UNSUPPORTED');
  });

  it('a header built by hand: authcrypt with an enc other than A256CBC-HS512 is UNSUPPORTED', () => {
    const epk = okpJwk('X25519', x25519Generate().publicKey);
    for (const enc of ['A256GCM', 'XC20P', 'A128GCM']) {
      const header = {
        typ: ENCRYPTED_TYP,
        alg: AUTH_ALG,
        enc,
        skid: alice.kid,
        apu: toBase64url(utf8(alice.kid)),
        apv: toBase64url(recipientsDigest([bob.kid])),
        epk,
      };
      const jwe: Jwe = {
        protected: encodeHeader(header),
        recipients: [{ header: { kid: bob.kid }, encrypted_key: toBase64url(randomBytes(40)) }],
        iv: toBase64url(randomBytes(12)),
        ciphertext: toBase64url(randomBytes(32)),
        tag: toBase64url(randomBytes(16)),
      };
      expectCode(() => decrypt(jwe, [bob]), 'ENVELOPE_UNSUPPORTED');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 5. Signed messages

describe('signed messages', () => {
  const signer = signingKey();
  const jws = signJws(plaintext, signer);
  const sig = jws.signatures[0] as Jws['signatures'][number];
  const withSignature = (change: Partial<Jws['signatures'][number]>): Jws => ({ ...jws, signatures: [{ ...sig, ...change }] });

  /** Whether the text is the one canonical base64url encoding of its bytes. */
  const canonicalB64 = (text: string) => Buffer.from(text, 'base64url').toString('base64url') === text;

  it('a flipped payload character is BAD_SIGNATURE (or MALFORMED when the flip makes the encoding non-canonical)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 63 }), async (at, shift) => {
        const payload = flipAt(jws.payload, at % jws.payload.length, shift);
        expect(await outcome(verifyJws({ ...jws, payload }))).toBe(canonicalB64(payload) ? 'ENVELOPE_BAD_SIGNATURE' : 'ENVELOPE_MALFORMED');
      }),
      { numRuns: 200 },
    );
  });

  it('a flipped signature character that changes the signature bytes is BAD_SIGNATURE (or MALFORMED when non-canonical)', async () => {
    const original = Buffer.from(sig.signature, 'base64url');
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 63 }), async (at, shift) => {
        const signature = flipAt(sig.signature, at % sig.signature.length, shift);
        // A flip of the unused low bits of the last character leaves the bytes as they were:
        // see the next test.
        fc.pre(!Buffer.from(signature, 'base64url').equals(original));
        expect(await outcome(verifyJws(withSignature({ signature })))).toBe(canonicalB64(signature) ? 'ENVELOPE_BAD_SIGNATURE' : 'ENVELOPE_MALFORMED');
      }),
      { numRuns: 200 },
    );
  });

  it('a signature in a non-canonical base64url encoding (unused bits set) is not accepted', async () => {
    // 64 bytes take 86 characters: the last one carries 4 unused bits.
    const last = sig.signature.length - 1;
    const index = BASE64URL_ALPHABET.indexOf(sig.signature[last] as string);
    const variant = sig.signature.slice(0, last) + (BASE64URL_ALPHABET[index ^ 1] as string);
    expect(Buffer.from(variant, 'base64url').equals(Buffer.from(sig.signature, 'base64url'))).toBe(true);
    expect(isCanonicalBase64url(variant)).toBe(false);
    expect(['ENVELOPE_MALFORMED', 'ENVELOPE_BAD_SIGNATURE']).toContain(await outcome(verifyJws(withSignature({ signature: variant }))));
  });

  it('a truncated, empty or foreign signature is BAD_SIGNATURE', async () => {
    await expectCodeAsync(verifyJws(withSignature({ signature: cutBytes(sig.signature, 1) })), 'ENVELOPE_BAD_SIGNATURE');
    await expectCodeAsync(verifyJws(withSignature({ signature: '' })), 'ENVELOPE_BAD_SIGNATURE');
    const foreign = signJws(utf8('another message'), signer).signatures[0] as Jws['signatures'][number];
    await expectCodeAsync(verifyJws(withSignature({ signature: foreign.signature })), 'ENVELOPE_BAD_SIGNATURE');
  });

  it('a known kid whose key does not match the signature is BAD_SIGNATURE', async () => {
    const other = signingKey();
    await expectCodeAsync(
      verifyJws(jws, () => other.publicKey),
      'ENVELOPE_BAD_SIGNATURE',
    );
  });

  it('a resolver that knows no signer is UNKNOWN_SENDER', async () => {
    await expectCodeAsync(
      verifyJws(jws, () => undefined),
      'ENVELOPE_UNKNOWN_SENDER',
    );
    await expectCodeAsync(
      verifyJws(jws, (kid) => (kid === 'did:example:someone#1' ? signer.publicKey : undefined)),
      'ENVELOPE_UNKNOWN_SENDER',
    );
    // A resolver handing back something that is not a 32-byte key knows nobody either.
    await expectCodeAsync(
      verifyJws(jws, () => signer.publicKey.subarray(0, 31)),
      'ENVELOPE_UNKNOWN_SENDER',
    );
    // The default resolver knows did:key URLs only, of the right key type.
    await expectCodeAsync(verifyJws(withSignature({ header: { kid: 'did:example:alice#key-1' } })), 'ENVELOPE_UNKNOWN_SENDER');
    await expectCodeAsync(verifyJws(withSignature({ header: { kid: didKeyUrl('x25519', signer.publicKey) } })), 'ENVELOPE_UNKNOWN_SENDER');
    await expectCodeAsync(verifyJws(withSignature({ header: {} })), 'ENVELOPE_UNKNOWN_SENDER');
  });

  it('a signature header with an algorithm other than EdDSA names no signer we verify: UNKNOWN_SENDER', async () => {
    const protectedHeader = encodeHeader({ typ: 'application/didcomm-signed+json', alg: 'ES256' });
    await expectCodeAsync(verifyJws(withSignature({ protected: protectedHeader })), 'ENVELOPE_UNKNOWN_SENDER');
  });

  it('a small-order Ed25519 key is never accepted as a signer', async () => {
    const { key, sig: forgedSignature } = smallOrderKey();
    const identity = new Uint8Array(32);
    identity[0] = 1;
    // Without the check the forgery would verify: node:crypto accepts it under the identity key.
    const protectedHeader = encodeHeader({ typ: 'application/didcomm-signed+json', alg: 'EdDSA' });
    const forged: Jws = {
      payload: toBase64url(plaintext),
      signatures: [{ protected: protectedHeader, signature: forgedSignature, header: { kid: `did:key:${key}#${key}` } }],
    };
    const identityKey = createPublicKey({ key: okpJwk('Ed25519', identity), format: 'jwk' });
    expect(nodeVerify(null, utf8(`${protectedHeader}.${forged.payload}`), identityKey, fromBase64url(forgedSignature))).toBe(true);

    await expectCodeAsync(verifyJws(forged), 'ENVELOPE_UNKNOWN_SENDER');
    await expectCodeAsync(
      verifyJws(forged, () => identity),
      'ENVELOPE_UNKNOWN_SENDER',
    );
    // Every point of small order, with or without the sign bit of x set.
    for (const hex of ED25519_TORSION_SUBGROUP) {
      for (const signBit of [0, 0x80]) {
        const point = fromHex(hex);
        point[31] = ((point[31] as number) & 0x7f) | signBit;
        await expectCodeAsync(
          verifyJws(forged, () => point),
          'ENVELOPE_UNKNOWN_SENDER',
        );
        const kid = didKeyUrl('ed25519', point);
        await expectCodeAsync(
          verifyJws({ ...forged, signatures: [{ ...(forged.signatures[0] as Jws['signatures'][number]), header: { kid } }] }),
          'ENVELOPE_UNKNOWN_SENDER',
        );
      }
    }
  });

  it('a forged small-order signature next to a real one by a known key does not stop the real one', async () => {
    const { key, sig: forgedSignature } = smallOrderKey();
    const forged = { protected: sig.protected, signature: forgedSignature, header: { kid: `did:key:${key}#${key}` } };
    expect((await verifyJws({ ...jws, signatures: [forged, sig] })).signerKid).toBe(signer.kid);
  });
});

// ---------------------------------------------------------------------------------------------
// 6. The parsers never throw anything but their own codes

describe('parsers on arbitrary input', () => {
  const b64 = (maxLength = 80) => fc.uint8Array({ maxLength }).map(toBase64url);
  const looseB64 = fc.oneof(b64(), fc.stringMatching(/^[A-Za-z0-9_-]{0,40}$/), fc.string({ maxLength: 20 }));
  /** Mostly `valid`, sometimes `junk`. */
  const mostly = <T, U>(valid: fc.Arbitrary<T>, junk: fc.Arbitrary<U>) => fc.oneof({ arbitrary: valid, weight: 6 }, { arbitrary: junk, weight: 1 });
  /** Canonical base64url of exactly `lengths` bytes (mostly) or of any length up to the largest. */
  const sized = (...lengths: number[]) =>
    mostly(
      fc
        .constantFrom(...lengths)
        .chain((n) => fc.uint8Array({ minLength: n, maxLength: n }))
        .map(toBase64url),
      mostly(b64(Math.max(...lengths) + 8), looseB64),
    );
  const epk = mostly(
    fc.oneof(
      fc.constant(okpJwk('X25519', x25519Generate().publicKey)),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((x) => okpJwk('X25519', x)),
    ),
    fc.oneof(fc.record({ kty: fc.constantFrom('OKP', 'EC'), crv: fc.constantFrom('X25519', 'Ed25519', 'P-256'), x: looseB64 }), fc.jsonValue()),
  );
  const kids = fc.constantFrom(alice.kid, mallory.kid, 'did:example:x#1');
  // apu: valid UTF-8 only; apu bytes that are not UTF-8 have their own test below.
  const apu = mostly(kids, fc.string({ maxLength: 40 })).map((k) => toBase64url(utf8(k)));
  const header = fc
    .record(
      {
        typ: mostly(fc.constant(ENCRYPTED_TYP), fc.string({ maxLength: 20 })),
        alg: mostly(fc.constantFrom(ANON_ALG, AUTH_ALG), fc.oneof(fc.string({ maxLength: 20 }), fc.integer())),
        enc: mostly(fc.constantFrom('A256CBC-HS512', 'A256GCM', 'XC20P'), fc.string({ maxLength: 20 })),
        epk,
        skid: mostly(kids, fc.string({ maxLength: 40 })),
        apu,
        apv: mostly(fc.constant(toBase64url(recipientsDigest([bob.kid]))), looseB64),
      },
      { requiredKeys: ['alg', 'enc', 'epk'] },
    )
    .chain((h) =>
      mostly(
        fc.constant<Record<string, unknown>>(h),
        fc.record({ crit: fc.jsonValue(), extra: fc.jsonValue() }, { requiredKeys: [] }).map((more) => ({ ...h, ...more })),
      ),
    );
  const recipient = fc.record({
    header: mostly(
      fc.record({ kid: mostly(fc.constant(bob.kid), fc.string({ maxLength: 20 })) }),
      fc.dictionary(fc.constantFrom('kid', 'alg', 'apv', 'x'), fc.jsonValue(), { maxKeys: 2 }),
    ),
    encrypted_key: sized(40, 72),
  });
  /** Objects shaped almost like a JWE: every member random, most of them plausible. */
  const almostJwe = fc
    .record({
      protected: mostly(
        header.map((h) => encodeHeader(h)),
        looseB64,
      ),
      recipients: mostly(fc.array(recipient, { minLength: 1, maxLength: 3 }), fc.array(recipient, { maxLength: 1 })),
      iv: sized(12, 16, 24),
      ciphertext: sized(0, 16, 48),
      tag: sized(16, 32),
    })
    .chain((jwe) =>
      mostly(
        fc.constant<Record<string, unknown>>(jwe),
        fc.record({ extra: fc.jsonValue() }).map((more) => ({ ...jwe, ...more })),
      ),
    );
  const anyInput = fc.oneof(
    fc.anything(),
    fc.json(),
    fc.string(),
    almostJwe,
    almostJwe.map((j) => JSON.stringify(j)),
  );
  const runs = { numRuns: 300 };

  it('parseJwe: succeeds or throws ENVELOPE_MALFORMED', () => {
    fc.assert(
      fc.property(anyInput, (input) => {
        expect(['ACCEPTED', 'ENVELOPE_MALFORMED']).toContain(codeOf(() => parseJwe(input)));
      }),
      runs,
    );
  });

  it('parseJwe, decrypt and verifyJws on UTF-8 bytes: MALFORMED, never BAD_INPUT', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.json(),
          fc.string(),
          almostJwe.map((j) => JSON.stringify(j)),
        ),
        async (text) => {
          const bytes = utf8(text);
          expect(['ACCEPTED', 'ENVELOPE_MALFORMED']).toContain(codeOf(() => parseJwe(bytes)));
          expect(DECRYPT_CODES).toContain(codeOf(() => decrypt(bytes, [bob])));
          expect(VERIFY_CODES).toContain(await outcome(verifyJws(bytes)));
        },
      ),
      { numRuns: 150 },
    );
  });

  it('parseJwe, decrypt and verifyJws on bytes that are not UTF-8: ENVELOPE_MALFORMED', async () => {
    const bytes = Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d);
    expectCode(() => parseJwe(bytes), 'ENVELOPE_MALFORMED');
    expectCode(() => decrypt(bytes, [bob]), 'ENVELOPE_MALFORMED');
    await expectCodeAsync(verifyJws(bytes), 'ENVELOPE_MALFORMED');
  });

  it('decrypt: succeeds or throws an ENVELOPE_* code', () => {
    const resolvers: SenderResolver[] = [(skid) => (skid === alice.kid ? alice.publicKey : undefined), () => mallory.publicKey, () => undefined];
    fc.assert(
      fc.property(anyInput, fc.nat(2), (input, r) => {
        expect(DECRYPT_CODES).toContain(codeOf(() => decrypt(input, [bob], resolvers[r])));
      }),
      runs,
    );
  });

  it('decrypt: an authcrypt header whose apu is not UTF-8 is refused with an ENVELOPE_* code', () => {
    const jwe = authcrypt(plaintext, alice, [refOf(bob)]);
    for (const edit of [
      (h: Record<string, unknown>) => (h['apu'] = '_w'),
      (h: Record<string, unknown>) => {
        h['apu'] = '_w';
        Reflect.deleteProperty(h, 'skid');
      },
    ]) {
      expect(DECRYPT_CODES).toContain(codeOf(() => decrypt(withHeader(jwe, edit), [bob])));
    }
  });

  it('decrypt: damaged real envelopes (members replaced by random values) give an ENVELOPE_* code', () => {
    const real = MODES.map((mode) => mode.seal([refOf(bob), refOf(carol)]));
    fc.assert(
      fc.property(fc.nat(real.length - 1), fc.constantFrom('protected', 'recipients', 'iv', 'ciphertext', 'tag'), fc.anything(), (m, member, value) => {
        const jwe = { ...(real[m] as Jwe), [member]: value };
        expect(DECRYPT_CODES).toContain(codeOf(() => decrypt(jwe, [bob])));
      }),
      runs,
    );
  });

  it('verifyJws: succeeds or throws ENVELOPE_MALFORMED, UNKNOWN_SENDER or BAD_SIGNATURE', async () => {
    const signer = signingKey();
    const real = signJws(plaintext, signer);
    const signature = fc.record(
      {
        protected: mostly(
          fc.oneof(
            fc.constant(real.signatures[0]?.protected as string),
            fc.constantFrom('EdDSA', 'Ed25519', 'ES256').map((alg) => encodeHeader({ alg })),
          ),
          fc.oneof(
            fc.jsonValue().map((v) => toBase64url(utf8(JSON.stringify(v) ?? 'null'))),
            looseB64,
          ),
        ),
        header: mostly(
          fc.oneof(
            fc.constant({ kid: signer.kid }),
            fc.uint8Array({ minLength: 32, maxLength: 32 }).map((k) => ({ kid: didKeyUrl('ed25519', k) })),
          ),
          fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 3 }),
        ),
        signature: mostly(fc.oneof(fc.constant(real.signatures[0]?.signature as string), sized(64)), looseB64),
      },
      { requiredKeys: ['protected', 'signature'] },
    );
    const almostJws = fc.record({
      payload: mostly(fc.constant(real.payload), looseB64),
      signatures: mostly(fc.array(signature, { minLength: 1, maxLength: 3 }), fc.array(signature, { maxLength: 1 })),
    });
    const input = fc.oneof(
      fc.anything(),
      fc.json(),
      fc.string(),
      almostJws,
      almostJws.map((j) => JSON.stringify(j)),
    );
    await fc.assert(
      fc.asyncProperty(input, async (value) => {
        expect(VERIFY_CODES).toContain(await outcome(verifyJws(value)));
      }),
      runs,
    );
  });

  it('parseMessage: succeeds or throws MESSAGE_MALFORMED', () => {
    const messageLike = fc.record(
      {
        id: mostly(fc.string({ minLength: 1, maxLength: 10 }), fc.jsonValue()),
        type: mostly(fc.constantFrom(FORWARD_TYPE, 'https://didcomm.org/trust-ping/2.0/ping'), fc.jsonValue()),
        body: mostly(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue(), { maxKeys: 3 }), fc.jsonValue()),
        created_time: mostly(fc.nat(), fc.oneof(fc.integer(), fc.double(), fc.jsonValue())),
        to: mostly(fc.array(fc.string({ minLength: 1, maxLength: 10 }), { maxLength: 3 }), fc.jsonValue()),
        attachments: mostly(
          fc.array(fc.record({ data: fc.dictionary(fc.constantFrom('json', 'base64', 'links'), fc.jsonValue()) }), { maxLength: 2 }),
          fc.jsonValue(),
        ),
        extra: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.json().map(utf8),
      fc.string().map(utf8),
      messageLike.map((m) => utf8(JSON.stringify(m))),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        expect(['ACCEPTED', 'MESSAGE_MALFORMED']).toContain(codeOf(() => parseMessage(input)));
      }),
      runs,
    );
  });

  it('readForward: on any parsed message, succeeds or throws MESSAGE_MALFORMED or ENVELOPE_MALFORMED', () => {
    const inner = anoncrypt(plaintext, [refOf(bob)]);
    const attachment = fc.record(
      {
        data: fc.record({ json: mostly(fc.constant(inner), fc.oneof(almostJwe, fc.jsonValue())), base64: b64(8) }, { requiredKeys: [] }),
        media_type: fc.string({ maxLength: 10 }),
      },
      { requiredKeys: ['data'] },
    );
    const forwardLike = fc.record(
      {
        id: fc.constant('id-1'),
        type: mostly(fc.constant(FORWARD_TYPE), fc.string({ minLength: 1, maxLength: 10 })),
        body: mostly(
          fc.record({ next: mostly(fc.string({ minLength: 1, maxLength: 12 }), fc.oneof(fc.constantFrom('', 'x'.repeat(513)), fc.jsonValue())) }),
          fc.dictionary(fc.string({ maxLength: 4 }), fc.jsonValue(), { maxKeys: 2 }),
        ),
        attachments: mostly(
          fc.tuple(attachment).map((a) => [...a]),
          fc.array(attachment, { maxLength: 3 }),
        ),
      },
      { requiredKeys: ['id', 'type', 'body'] },
    );
    fc.assert(
      fc.property(forwardLike, (candidate) => {
        let parsed: Message;
        try {
          parsed = parseMessage(utf8(JSON.stringify(candidate)));
        } catch {
          return; // not a message at all: parseMessage's property covers that
        }
        expect(['ACCEPTED', 'MESSAGE_MALFORMED', 'ENVELOPE_MALFORMED']).toContain(codeOf(() => readForward(parsed)));
      }),
      runs,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// 7. readForward

describe('readForward', () => {
  const inner = anoncrypt(plaintext, [refOf(bob)]);
  const base = forwardMessage(inner, bob.kid);
  const variant = (change: Partial<Message>): Message => ({ ...clone(base), ...change });

  it('reads a well-formed forward, also after a bytes round trip, and accepts a 512-character next', () => {
    expect(readForward(base)).toEqual({ next: bob.kid, payload: inner });
    expect(readForward(parseMessage(messageBytes(base)))).toEqual({ next: bob.kid, payload: inner });
    expect(readForward(variant({ body: { next: 'n'.repeat(512) } })).next).toBe('n'.repeat(512));
  });

  const malformed: readonly (readonly [string, Message])[] = [
    ['a message of another type', variant({ type: 'https://didcomm.org/basicmessage/2.0/message' })],
    ['a type that only starts like forward', variant({ type: `${FORWARD_TYPE}x` })],
    ['no body.next', variant({ body: {} })],
    ['an empty body.next', variant({ body: { next: '' } })],
    ['an oversized body.next (513 characters)', variant({ body: { next: 'n'.repeat(513) } })],
    ['a body.next that is not a string', variant({ body: { next: 7 } })],
    ['a body.next that is a list', variant({ body: { next: [bob.kid] } })],
    [
      'no attachments member',
      (() => {
        const m = variant({});
        Reflect.deleteProperty(m, 'attachments');
        return m;
      })(),
    ],
    ['zero attachments', variant({ attachments: [] })],
    ['two attachments', variant({ attachments: [{ data: { json: inner } }, { data: { json: inner } }] })],
    ['an attachment without data.json', variant({ attachments: [{ data: { base64: toBase64url(utf8(JSON.stringify(inner))) } }] })],
    ['an attachment with empty data', variant({ attachments: [{ data: {} }] })],
  ];

  it.each(malformed)('%s is MESSAGE_MALFORMED', (_name, candidate) => {
    expectCode(() => readForward(candidate), 'MESSAGE_MALFORMED');
  });

  it('an attachment whose data.json is not a JWE is ENVELOPE_MALFORMED', () => {
    expectCode(() => readForward(variant({ attachments: [{ data: { json: { hello: 'world' } } }] })), 'ENVELOPE_MALFORMED');
    expectCode(() => readForward(variant({ attachments: [{ data: { json: null } }] })), 'ENVELOPE_MALFORMED');
  });

  it('parseMessage refuses messages without id, type or body with MESSAGE_MALFORMED', () => {
    for (const member of ['id', 'type', 'body']) {
      expectCode(() => parseMessage(utf8(JSON.stringify(without(base, member)))), 'MESSAGE_MALFORMED');
    }
    expectCode(() => parseMessage(utf8('not json')), 'MESSAGE_MALFORMED');
    expectCode(() => parseMessage(Uint8Array.of(0xff)), 'MESSAGE_MALFORMED');
  });
});

// ---------------------------------------------------------------------------------------------
// 7. What DIDComm v2 requires of headers and plaintext, and the reference implementation checks

describe('DIDComm v2 rules', () => {
  const sealed = new Map(MODES.map((mode) => [mode.name, mode.seal([refOf(bob), refOf(carol)])]));
  const envelope = (mode: Mode): Jwe => sealed.get(mode.name) as Jwe;

  it.each(MODE_CASES)('%s: an envelope without apv is MALFORMED, also with apv moved to the recipient header', (_name, mode) => {
    const jwe = envelope(mode);
    const apv = decodeHeader(jwe.protected)['apv'];
    const stripped = withHeader(jwe, (h) => Reflect.deleteProperty(h, 'apv'));
    expectCode(() => decrypt(stripped, [bob]), 'ENVELOPE_MALFORMED');
    expectCode(
      () => decrypt({ ...stripped, recipients: stripped.recipients.map((r) => ({ ...r, header: { ...r.header, apv } })) }, [bob]),
      'ENVELOPE_MALFORMED',
    );
  });

  it('authcrypt naming its sender in skid without apu is MALFORMED, whoever the resolver knows', () => {
    const jwe = withHeader(envelope(MODES[3] as Mode), (h) => Reflect.deleteProperty(h, 'apu'));
    expectCode(() => decrypt(jwe, [bob]), 'ENVELOPE_MALFORMED');
    expectCode(() => decrypt(jwe, [bob], onlyAlice), 'ENVELOPE_MALFORMED');
  });

  const plainMessage = (extra: Record<string, unknown>) => utf8(JSON.stringify({ ...message, ...extra }));

  it('a plaintext typ other than application/didcomm-plain+json is MESSAGE_MALFORMED; none at all is accepted', () => {
    for (const typ of ['application/didcomm-encrypted+json', 'application/didcomm-signed+json', 'application/json', 'JWM', '', 42]) {
      expectCode(() => parseMessage(plainMessage({ typ })), 'MESSAGE_MALFORMED');
    }
    expect(parseMessage(plainMessage({ typ: 'application/didcomm-plain+json' })).typ).toBe('application/didcomm-plain+json');
    expect(parseMessage(utf8(JSON.stringify(without(message, 'typ')))).typ).toBeUndefined();
  });

  it('an attachment whose data carries no content (no base64, json or links) is MESSAGE_MALFORMED', () => {
    for (const data of [{}, { hash: 'QmHash' }, { jws: { signature: 'x' } }, { hash: 'QmHash', jws: { signature: 'x' } }]) {
      expectCode(() => parseMessage(plainMessage({ attachments: [{ id: 'a', data }] })), 'MESSAGE_MALFORMED');
    }
  });

  it('attachment links without the hash of the content, or with no link at all, are MESSAGE_MALFORMED', () => {
    expectCode(() => parseMessage(plainMessage({ attachments: [{ data: { links: ['https://example.org/a.bin'] } }] })), 'MESSAGE_MALFORMED');
    expectCode(() => parseMessage(plainMessage({ attachments: [{ data: { links: ['https://example.org/a.bin'], hash: '' } }] })), 'MESSAGE_MALFORMED');
    expectCode(() => parseMessage(plainMessage({ attachments: [{ data: { links: [], hash: 'QmHash' } }] })), 'MESSAGE_MALFORMED');
  });

  it('attachments with base64, json, or links and their hash are accepted', () => {
    const attachments = [
      { data: { base64: toBase64url(utf8('hi')) } },
      { data: { json: { a: 1 } } },
      { data: { json: null } },
      { data: { links: ['https://example.org/a.bin'], hash: 'QmHash' } },
    ];
    expect(parseMessage(plainMessage({ attachments })).attachments).toEqual(attachments);
  });
});
