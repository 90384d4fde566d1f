/**
 * Interoperability with the DIDComm reference implementation (`didcomm-node` 0.4.1, the Rust
 * `didcomm` crate built to WASM), both ways: what we pack, the reference unpacks, and what the
 * reference packs, we unpack. Every case asserts what a user relies on: the plaintext message,
 * the authenticated sender's key id, the recipient key ids, the signer's key id.
 */
import { Message as RefMessage } from 'didcomm-node';
import { describe, expect, it } from 'vitest';
import { CONTENT_ENCRYPTIONS, fromUtf8, utf8, type ContentEncryption } from '../../src/crypto/index.js';
import {
  ANON_ALG,
  AUTH_ALG,
  FORWARD_TYPE,
  anoncrypt,
  authcrypt,
  authcryptPerDid,
  decrypt,
  messageBytes,
  newMessage,
  parseJwe,
  parseMessage,
  readForward,
  signJws,
  verifyJws,
  wrapForward,
  type AgreementKey,
  type Jwe,
  type Message,
} from '../../src/didcomm/index.js';
import { didOf, ed25519Party, refOf, resolverFor, secretsOf, x25519Party, type PartyKey } from './reference.js';

const alice = x25519Party(); // sender
const bob = x25519Party(); // recipient
const carol = x25519Party(); // another recipient
const signer = ed25519Party();
const mediator = x25519Party(); // bob's mediator (his cloud agent at an agency)
const everyone = [alice, bob, carol, signer, mediator];
const resolver = resolverFor(everyone);

/** The reference's name for anoncrypt with each content encryption. */
const REF_ANON: Record<ContentEncryption, 'A256cbcHs512EcdhEsA256kw' | 'A256gcmEcdhEsA256kw' | 'Xc20pEcdhEsA256kw'> = {
  'A256CBC-HS512': 'A256cbcHs512EcdhEsA256kw',
  A256GCM: 'A256gcmEcdhEsA256kw',
  XC20P: 'Xc20pEcdhEsA256kw',
};

function plain(from: string | undefined, to: readonly string[]): Message {
  return newMessage(
    'https://didcomm.org/basicmessage/2.0/message',
    { content: 'hello from the other implementation' },
    { ...(from === undefined ? {} : { from }), to: [...to], lang: 'en' },
  );
}

/** The reference's view of our message, for comparison with what it unpacks. */
const asReference = (message: Message): unknown => JSON.parse(fromUtf8(messageBytes(message)));

async function theyUnpack(envelope: unknown, recipients: readonly PartyKey<AgreementKey>[]) {
  const [message, metadata] = await RefMessage.unpack(typeof envelope === 'string' ? envelope : JSON.stringify(envelope), resolver, secretsOf(recipients), {});
  return { message: message.as_value(), metadata };
}

async function theyPack(
  message: Message,
  to: string,
  from: string | null,
  options: Parameters<RefMessage['pack_encrypted']>[5] = {},
): Promise<{ envelope: string; toKids: string[]; fromKid?: string }> {
  const [envelope, metadata] = await new RefMessage(asReference(message) as ConstructorParameters<typeof RefMessage>[0]).pack_encrypted(
    to,
    from,
    null,
    resolver,
    secretsOf(everyone),
    { forward: false, ...options },
  );
  return { envelope, toKids: metadata.to_kids, ...(metadata.from_kid === undefined ? {} : { fromKid: metadata.from_kid }) };
}

describe('anoncrypt', () => {
  it.each(CONTENT_ENCRYPTIONS.map((enc) => [enc] as const))('%s: ours unpacks with the reference', async (enc) => {
    const message = plain(undefined, [bob.did]);
    const { message: theirs, metadata } = await theyUnpack(anoncrypt(messageBytes(message), [refOf(bob.key)], enc), [bob]);
    expect(theirs).toEqual(asReference(message));
    expect(metadata.encrypted).toBe(true);
    expect(metadata.authenticated).toBe(false);
    expect(metadata.anonymous_sender).toBe(true);
    expect(metadata.encrypted_to_kids).toEqual([bob.key.kid]);
    expect(metadata.enc_alg_anon).toBe(REF_ANON[enc]);
  });

  it.each(CONTENT_ENCRYPTIONS.map((enc) => [enc] as const))("%s: the reference's unpacks with ours", async (enc) => {
    const message = plain(undefined, [bob.did]);
    const { envelope, toKids } = await theyPack(message, bob.did, null, { enc_alg_anon: REF_ANON[enc] });
    expect(toKids).toEqual([bob.key.kid]);
    const opened = decrypt(envelope, [bob.key]);
    expect(opened.alg).toBe(ANON_ALG);
    expect(opened.enc).toBe(enc);
    expect(opened.senderKid).toBeUndefined();
    expect(opened.recipientKid).toBe(bob.key.kid);
    expect(opened.recipients).toEqual([bob.key.kid]);
    expect(parseMessage(opened.plaintext)).toEqual(message);
  });
});

describe('authcrypt', () => {
  it('ours unpacks with the reference, which authenticates the sender', async () => {
    const message = plain(alice.did, [bob.did]);
    const { message: theirs, metadata } = await theyUnpack(authcrypt(messageBytes(message), alice.key, [refOf(bob.key)]), [bob]);
    expect(theirs).toEqual(asReference(message));
    expect(metadata.authenticated).toBe(true);
    expect(metadata.anonymous_sender).toBe(false);
    expect(metadata.encrypted_from_kid).toBe(alice.key.kid);
    expect(metadata.encrypted_to_kids).toEqual([bob.key.kid]);
  });

  it("the reference's unpacks with ours, which authenticates the sender", async () => {
    const message = plain(alice.did, [bob.did]);
    const { envelope, fromKid } = await theyPack(message, bob.did, alice.did);
    expect(fromKid).toBe(alice.key.kid);
    const opened = decrypt(envelope, [bob.key]);
    expect(opened.alg).toBe(AUTH_ALG);
    expect(opened.senderKid).toBe(alice.key.kid);
    expect(opened.recipientKid).toBe(bob.key.kid);
    expect(parseMessage(opened.plaintext)).toEqual(message);
  });
});

describe('signed (JWS)', () => {
  it('ours verifies with the reference', async () => {
    const message = plain(signer.did, [bob.did]);
    const [theirs, metadata] = await RefMessage.unpack(JSON.stringify(signJws(messageBytes(message), signer.key)), resolver, secretsOf([]), {});
    expect(theirs.as_value()).toEqual(asReference(message));
    expect(metadata.non_repudiation).toBe(true);
    expect(metadata.sign_from).toBe(signer.key.kid);
    expect(metadata.sign_alg).toBe('EdDSA');
  });

  it("the reference's verifies with ours", async () => {
    const message = plain(signer.did, [bob.did]);
    const [jws, metadata] = await new RefMessage(asReference(message) as ConstructorParameters<typeof RefMessage>[0]).pack_signed(
      signer.did,
      resolver,
      secretsOf([signer]),
    );
    expect(metadata.sign_by_kid).toBe(signer.key.kid);
    const verified = await verifyJws(jws);
    expect(verified.signerKid).toBe(signer.key.kid);
    expect(parseMessage(verified.payload)).toEqual(message);
  });
});

describe('forward through a mediator', () => {
  it('ours: the reference mediator unwraps the forward, and the reference recipient opens what it carries', async () => {
    const message = plain(alice.did, [bob.did]);
    const inner = authcrypt(messageBytes(message), alice.key, [refOf(bob.key)]);
    const atMediator = await theyUnpack(wrapForward(inner, bob.did, [refOf(mediator.key)]), [mediator]);
    expect(atMediator.message.type).toBe(FORWARD_TYPE);
    expect(atMediator.metadata.encrypted_to_kids).toEqual([mediator.key.kid]);
    expect(atMediator.metadata.anonymous_sender).toBe(true);
    // This build's try_parse_forward returns the parsed forward itself, not the wrapper its types describe.
    const parsed = new RefMessage(atMediator.message).try_parse_forward() as unknown as { next: string; forwarded_msg: unknown };
    expect(parsed.next).toBe(bob.did);
    expect(parsed.forwarded_msg).toEqual(inner);
    const atBob = await theyUnpack(parsed.forwarded_msg, [bob]);
    expect(atBob.message).toEqual(asReference(message));
    expect(atBob.metadata.encrypted_from_kid).toBe(alice.key.kid);
  });

  it("the reference's: our mediator (as the agency does) unwraps it, names next, and bob opens the inner envelope", async () => {
    const message = plain(alice.did, [bob.did]);
    const { envelope: inner } = await theyPack(message, bob.did, alice.did);
    // pack_encrypted's own `forward` option does nothing in this build: wrap explicitly, as its README does.
    const envelope = await RefMessage.wrap_in_forward(inner, {}, bob.did, [mediator.key.kid], REF_ANON['A256CBC-HS512'], resolver);
    const unwrapped = decrypt(envelope, [mediator.key]);
    expect(unwrapped.senderKid).toBeUndefined();
    expect(unwrapped.recipientKid).toBe(mediator.key.kid);
    const { next, payload } = readForward(parseMessage(unwrapped.plaintext));
    expect(next).toBe(bob.did);
    expect(payload).toEqual(JSON.parse(inner));
    const opened = decrypt(payload, [bob.key]);
    expect(opened.senderKid).toBe(alice.key.kid);
    expect(opened.recipientKid).toBe(bob.key.kid);
    expect(parseMessage(opened.plaintext)).toEqual(message);
  });
});

describe('protected sender (authcrypt inside anoncrypt)', () => {
  it('ours unpacks with the reference, which still authenticates the sender', async () => {
    const message = plain(alice.did, [bob.did]);
    const inner = authcrypt(messageBytes(message), alice.key, [refOf(bob.key)]);
    const outer = anoncrypt(utf8(JSON.stringify(inner)), [refOf(bob.key)]);
    const { message: theirs, metadata } = await theyUnpack(outer, [bob]);
    expect(theirs).toEqual(asReference(message));
    expect(metadata.authenticated).toBe(true);
    expect(metadata.anonymous_sender).toBe(true);
    expect(metadata.encrypted_from_kid).toBe(alice.key.kid);
  });

  it("the reference's unpacks with ours: the outer layer hides the sender, the inner one names it", async () => {
    const message = plain(alice.did, [bob.did]);
    const { envelope } = await theyPack(message, bob.did, alice.did, { protect_sender: true });
    expect(envelope).not.toContain(alice.key.kid);
    const outer = decrypt(envelope, [bob.key]);
    expect(outer.alg).toBe(ANON_ALG);
    expect(outer.senderKid).toBeUndefined();
    const inner = decrypt(parseJwe(outer.plaintext), [bob.key]);
    expect(inner.alg).toBe(AUTH_ALG);
    expect(inner.senderKid).toBe(alice.key.kid);
    expect(inner.recipientKid).toBe(bob.key.kid);
    expect(parseMessage(inner.plaintext)).toEqual(message);
  });
});

describe('several recipients: one envelope per DID', () => {
  it("ours: each DID's envelope lists only its keys and unpacks with the reference", async () => {
    const message = plain(alice.did, [bob.did, carol.did]);
    const envelopes = authcryptPerDid(messageBytes(message), alice.key, [refOf(bob.key), refOf(carol.key)]);
    expect(envelopes.map((e) => e.did)).toEqual([bob.did, carol.did]);
    for (const [index, party] of [bob, carol].entries()) {
      const envelope = envelopes[index]?.envelope as Jwe;
      expect(envelope.recipients.map((r) => r.header?.['kid'])).toEqual([party.key.kid]);
      const { message: theirs, metadata } = await theyUnpack(envelope, [party]);
      expect(theirs).toEqual(asReference(message));
      expect(metadata.encrypted_from_kid).toBe(alice.key.kid);
      expect(metadata.encrypted_to_kids).toEqual([party.key.kid]);
    }
  });

  it("the reference's, one per recipient DID, unpack with ours", async () => {
    const message = plain(alice.did, [bob.did, carol.did]);
    for (const party of [bob, carol]) {
      const { envelope } = await theyPack(message, party.did, alice.did);
      const opened = decrypt(envelope, [bob.key, carol.key]);
      expect(opened.recipientKid).toBe(party.key.kid);
      expect(opened.recipients).toEqual([party.key.kid]);
      expect(opened.senderKid).toBe(alice.key.kid);
      expect(parseMessage(opened.plaintext)).toEqual(message);
    }
  });

  it('why: the reference refuses one envelope listing keys of two DIDs', async () => {
    expect(didOf(bob.key.kid)).not.toBe(didOf(carol.key.kid));
    const message = plain(alice.did, [bob.did, carol.did]);
    for (const envelope of [
      anoncrypt(messageBytes(message), [refOf(bob.key), refOf(carol.key)]),
      authcrypt(messageBytes(message), alice.key, [refOf(bob.key), refOf(carol.key)]),
    ]) {
      await expect(theyUnpack(envelope, [bob])).rejects.toThrow(/outside of one did/);
    }
  });
});

describe('plaintext rules both implementations enforce', () => {
  const refused: readonly [string, Record<string, unknown>][] = [
    ['a typ other than the plaintext media type', { typ: 'application/json' }],
    ['an attachment with empty data', { attachments: [{ id: 'a', data: {} }] }],
    ['attachment links without a hash', { attachments: [{ id: 'a', data: { links: ['https://example.org/a.bin'] } }] }],
  ];

  it.each(refused)('%s: refused by the reference and by us (MESSAGE_MALFORMED)', async (_name, extra) => {
    const bytes = utf8(JSON.stringify({ ...plain(undefined, [bob.did]), ...extra }));
    await expect(theyUnpack(anoncrypt(bytes, [refOf(bob.key)]), [bob])).rejects.toThrow(/Malformed/);
    expect(() => parseMessage(decrypt(anoncrypt(bytes, [refOf(bob.key)]), [bob.key]).plaintext)).toThrow(
      expect.objectContaining({ code: 'MESSAGE_MALFORMED' }),
    );
  });

  it('attachment links with the hash of the content: accepted by both', async () => {
    const message: Message = { ...plain(undefined, [bob.did]), attachments: [{ id: 'a', data: { links: ['https://example.org/a.bin'], hash: 'QmHash' } }] };
    const { message: theirs } = await theyUnpack(anoncrypt(messageBytes(message), [refOf(bob.key)]), [bob]);
    expect(theirs['attachments']).toEqual(message.attachments);
    expect(parseMessage(messageBytes(message))).toEqual(message);
  });
});
