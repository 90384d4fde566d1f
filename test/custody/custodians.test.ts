/**
 * M-of-n custody (custody/custodians.ts, custody/requests.ts), walked as its users rely on it:
 * any m approvals of a request rebuild K and fewer do not; a custodian opens only its own share;
 * a re-split leaves removed custodians and earlier epochs out; every altered, foreign, expired or
 * rolled-back piece is refused with its own code, never silently skipped.
 */
import { describe, expect, it } from 'vitest';
import {
  canonicalBytes,
  concatBytes,
  ed25519Generate,
  fromUtf8,
  memoryKeyAgreementKey,
  memorySigner,
  randomBytes,
  toBase64url,
  x25519Generate,
  type KeyAgreementKey,
  type Signer,
} from '../../src/crypto/index.js';
import {
  approveCustodyRequest,
  checkCustodySecret,
  combineCustodyApprovals,
  custodySetDigest,
  describeCustodyRequest,
  makeCustodianCard,
  newCustodyRequest,
  parseCustodianCard,
  parseCustodyRequest,
  parseCustodySet,
  requestDigest,
  resplitCustody,
  splitCustody,
  type ApproveOptions,
  type CustodianCard,
  type CustodyApproval,
  type CustodyRequest,
  type CustodyRequestOptions,
  type CustodySet,
  type SplitCustodyOptions,
} from '../../src/custody/index.js';
import { anoncrypt, decrypt, didKeyAgreementKey, didKeyUrl } from '../../src/didcomm/index.js';
import { expectCode, expectCodeAsync } from '../helpers/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

interface Custodian {
  readonly name: string;
  readonly signer: Signer;
  readonly kx: KeyAgreementKey;
  readonly card: CustodianCard;
}

const NOW = new Date('2026-03-01T10:00:00.000Z');
const NAMES = ['ada', 'ben', 'cy', 'dee', 'eve', 'fay'];

function custodian(name: string): Custodian {
  const s = ed25519Generate();
  const x = x25519Generate();
  const signer = memorySigner(s.privateKey, s.publicKey);
  const kx = memoryKeyAgreementKey(x.privateKey, x.publicKey);
  return { name, signer, kx, card: makeCustodianCard(name, signer, kx, NOW) };
}

/** n custodians (ada, ben, cy, …) and a fresh m-of-n set over them. */
async function custody(n: number, threshold: number, options: Partial<SplitCustodyOptions> = {}) {
  const people = NAMES.slice(0, n).map(custodian);
  const { set, secret } = await splitCustody({ threshold, mode: 'unseal', custodians: people.map((p) => p.card), now: NOW, ...options });
  const who = (name: string): Custodian => {
    const found = people.find((p) => p.name === name);
    if (found === undefined) throw new Error(`no custodian ${name}`);
    return found;
  };
  return { people, set, secret, who };
}

function ask(set: CustodySet, options: Partial<CustodyRequestOptions> = {}) {
  const { request, replyKey } = newCustodyRequest(set, { wallet: 'wallet-1', generation: 3, purpose: 'unseal', now: NOW, ...options });
  return { request, reply: memoryKeyAgreementKey(replyKey.privateKey, replyKey.publicKey) };
}

const approve = (request: unknown, by: Custodian, options: Partial<ApproveOptions> = {}) =>
  approveCustodyRequest(request, { name: by.name, signer: by.signer, agreementKey: by.kx, now: NOW, ...options });

/** What the share sealed to `key` says, opened as a custodian or a reply key would. */
function opened(jwe: Parameters<typeof decrypt>[0], key: KeyAgreementKey): Record<string, unknown> {
  return JSON.parse(fromUtf8(decrypt(jwe, [didKeyAgreementKey(key)]).plaintext)) as Record<string, unknown>;
}

function sealFor(key: { publicKey: Uint8Array }, plaintext: unknown) {
  return anoncrypt(canonicalBytes(plaintext), [{ kid: didKeyUrl('x25519', key.publicKey), publicKey: key.publicKey }]);
}

/** An approval with `change`, signed again by `signer`: a custodian lying, or someone with a key of its own. */
function resigned(approval: CustodyApproval, change: Partial<CustodyApproval>, signer: Signer): CustodyApproval {
  const { sig: _sig, ...body } = { ...approval, ...change };
  return { ...body, sig: toBase64url(signer.sign(canonicalBytes(body))) };
}

/** A base64url text with one character changed. */
const flip = (text: string, at = Math.floor(text.length / 2)) => `${text.slice(0, at)}${text[at] === 'A' ? 'B' : 'A'}${text.slice(at + 1)}`;

function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  return items.flatMap((item, i) => subsets(items.slice(i + 1), k - 1).map((rest) => [item, ...rest]));
}

// ---------------------------------------------------------------------------------------------
// Cards

describe('custodian cards', () => {
  it('are self-signed: a card parses as made, and an altered field or another signer is refused', () => {
    const [ada, ben] = [custodian('ada'), custodian('ben')];
    expect(parseCustodianCard(JSON.parse(JSON.stringify(ada.card)))).toEqual(ada.card);
    expect(ada.card.sign).toMatch(/^z6Mk/);
    expect(ada.card.kx).toMatch(/^z6LS/);
    for (const change of [{ name: 'eve' }, { kx: ben.card.kx }, { sign: ben.card.sign }, { created: '2020-01-01T00:00:00.000Z' }]) {
      expectCode(() => parseCustodianCard({ ...ada.card, ...change }), 'SIGNATURE_INVALID');
    }
    const { sig: _sig, ...body } = ada.card;
    expectCode(() => parseCustodianCard({ ...body, sig: toBase64url(ben.signer.sign(canonicalBytes(body))) }), 'SIGNATURE_INVALID');
    expectCode(() => parseCustodianCard({ ...ada.card, extra: 1 }), 'BAD_INPUT');
    expectCode(() => parseCustodianCard({ ...ada.card, kx: ada.card.sign }), 'BAD_INPUT');
  });

  it('refuse a bad name, and a signer whose key is not the one it signs with', () => {
    const ada = custodian('ada');
    for (const name of ['', '-ada', 'a b', 'ada/1', 'x'.repeat(65)]) expectCode(() => makeCustodianCard(name, ada.signer, ada.kx), 'BAD_INPUT');
    const liar: Signer = { ...custodian('ben').signer, sign: (m) => ada.signer.sign(m) };
    expectCode(() => makeCustodianCard('ben', liar, ada.kx), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// Splitting

describe('splitCustody', () => {
  it('seals one share per custodian, which that custodian alone can open', async () => {
    const { people, set, secret, who } = await custody(3, 2);
    expect(set).toMatchObject({ v: 1, type: 'dkms-custody', epoch: 1, mode: 'unseal', threshold: 2, created: NOW.toISOString() });
    expect(Object.keys(set.shares).sort()).toEqual(['ada', 'ben', 'cy']);
    expect(secret).toHaveLength(32);
    expect(checkCustodySecret(set, secret)).toBe(true);
    expect(checkCustodySecret(set, randomBytes(32))).toBe(false);
    expect(JSON.stringify(set)).not.toContain(toBase64url(secret));
    expect(parseCustodySet(JSON.parse(JSON.stringify(set)))).toEqual(set);
    expect(custodySetDigest(set)).toHaveLength(32);
    for (const [i, p] of people.entries()) {
      expect(opened(set.shares[p.name], p.kx)).toMatchObject({ set: set.id, epoch: 1, index: i + 1, name: p.name });
    }
    expectCode(() => decrypt(set.shares['ben'], [didKeyAgreementKey(who('ada').kx)]), 'ENVELOPE_NOT_FOR_US');
  });

  it('refuses bad settings with BAD_INPUT, and an unsigned card with SIGNATURE_INVALID', async () => {
    const people = NAMES.slice(0, 3).map(custodian);
    const cards = people.map((p) => p.card);
    const split = (threshold: number, custodians: CustodianCard[] = cards, more: Partial<SplitCustodyOptions> = {}) =>
      splitCustody({ threshold, mode: 'unseal', custodians, ...more });
    for (const threshold of [0, -1, 4, 2.5, Number.NaN]) await expectCodeAsync(split(threshold), 'BAD_INPUT');
    await expectCodeAsync(split(1, []), 'BAD_INPUT');
    expect(
      (
        await expectCodeAsync(
          split(
            2,
            Array.from({ length: 256 }, () => cards[0] as CustodianCard),
          ),
          'BAD_INPUT',
        )
      ).message,
    ).toMatch(/at most 255/);
    expect((await expectCodeAsync(split(2, [...cards, custodian('ada').card]), 'BAD_INPUT')).message).toMatch(/'ada' is named twice/);
    const sameKeys = makeCustodianCard('ada2', people[0]?.signer as Signer, people[1]?.kx as KeyAgreementKey);
    await expectCodeAsync(split(2, [...cards, sameKeys]), 'BAD_INPUT');
    expect((await expectCodeAsync(split(1), 'BAD_INPUT')).message).toMatch(/any one of the 3 custodians open it alone/);
    await expectCodeAsync(split(2, cards, { epoch: 0 }), 'BAD_INPUT');
    await expectCodeAsync(split(2, [{ ...cards[0], name: 'zed' } as CustodianCard, ...cards.slice(1)]), 'SIGNATURE_INVALID');
  });

  it('allows a threshold of 1 alone with one custodian, or when asked', async () => {
    const single = await custody(1, 1);
    const { request, reply } = ask(single.set);
    expect(await combineCustodyApprovals(request, single.set, [approve(request, single.who('ada'))], reply, NOW)).toEqual(single.secret);
    const anyOne = await custody(3, 1, { allowSingle: true });
    const asked = ask(anyOne.set);
    for (const p of anyOne.people) {
      expect(await combineCustodyApprovals(asked.request, anyOne.set, [approve(asked.request, p)], asked.reply, NOW)).toEqual(anyOne.secret);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Thresholds

describe('approvals and thresholds', () => {
  it('3 of 5: any three custodians rebuild K, in any order; more do too', async () => {
    const { people, set, secret } = await custody(5, 3);
    const { request, reply } = ask(set);
    const all = people.map((p) => approve(request, p));
    for (const three of subsets(all, 3)) {
      expect(await combineCustodyApprovals(request, set, three, reply, NOW)).toEqual(secret);
      expect(await combineCustodyApprovals(request, set, [...three].reverse(), reply, NOW)).toEqual(secret);
    }
    expect(await combineCustodyApprovals(request, set, all, reply, NOW)).toEqual(secret);
    expect(await combineCustodyApprovals(request, set, all.slice(1), reply, NOW)).toEqual(secret);
  });

  it('3 of 5: two approvals are not enough, and one custodian approving twice counts once', async () => {
    const { set, secret, who } = await custody(5, 3);
    const { request, reply } = ask(set);
    const [ada, ben, cy] = [approve(request, who('ada')), approve(request, who('ben')), approve(request, who('cy'))];
    const few = await expectCodeAsync(combineCustodyApprovals(request, set, [ada, ben], reply, NOW), 'SHARES_INSUFFICIENT');
    expect(few.message).toBe('2 of 3 custodians approved; 1 more needed');
    await expectCodeAsync(combineCustodyApprovals(request, set, [ada, ada, ben], reply, NOW), 'SHARES_INSUFFICIENT');
    await expectCodeAsync(combineCustodyApprovals(request, set, [ada, approve(request, who('ada')), ben], reply, NOW), 'SHARES_INSUFFICIENT');
    expect(await combineCustodyApprovals(request, set, [ada, ada, ben, cy], reply, NOW)).toEqual(secret);
  });

  it.each([
    [1, 1],
    [2, 3],
    [5, 5],
  ])('%i of %i: one approval fewer than the threshold is refused, the threshold rebuilds K', async (m, n) => {
    const { people, set, secret } = await custody(n, m);
    const { request, reply } = ask(set);
    const all = people.map((p) => approve(request, p));
    const short = await expectCodeAsync(combineCustodyApprovals(request, set, all.slice(0, m - 1), reply, NOW), 'SHARES_INSUFFICIENT');
    expect(short.message).toBe(`${m - 1} of ${m} custodians approved; 1 more needed`);
    expect(await combineCustodyApprovals(request, set, all.slice(n - m), reply, NOW)).toEqual(secret);
  });
});

// ---------------------------------------------------------------------------------------------
// Re-splitting

describe('resplitCustody', () => {
  it('draws a new K in a new set of the next epoch: the old K no longer checks, nor the new one against the old set', async () => {
    const old = await custody(5, 3, { limits: { perHour: 4 } });
    const fay = custodian('fay');
    const { set, secret } = await resplitCustody(old.set, { remove: ['eve'], add: [fay.card], now: NOW });
    expect(set.epoch).toBe(2);
    expect(set.id).not.toBe(old.set.id);
    expect(set.threshold).toBe(3);
    expect(set.limits).toEqual({ perHour: 4 });
    expect(set.custodians.map((c) => c.name)).toEqual(['ada', 'ben', 'cy', 'dee', 'fay']);
    expect(secret).not.toEqual(old.secret);
    expect(checkCustodySecret(set, old.secret)).toBe(false);
    expect(checkCustodySecret(old.set, secret)).toBe(false);
    expect(checkCustodySecret(set, secret)).toBe(true);
    const { request, reply } = ask(set);
    const approvals = [approve(request, old.who('ada')), approve(request, fay), approve(request, old.who('dee'))];
    expect(await combineCustodyApprovals(request, set, approvals, reply, NOW)).toEqual(secret);
    expect((await resplitCustody(set, { threshold: 2 })).set).toMatchObject({ epoch: 3, threshold: 2 });
  });

  it('leaves a removed custodian out: no share to approve, and an approval of its own making is SHARE_FOREIGN', async () => {
    const old = await custody(5, 3);
    const eve = old.who('eve');
    const { set } = await resplitCustody(old.set, { remove: ['eve'] });
    const { request, reply } = ask(set);
    expect(expectCode(() => approve(request, eve), 'SHARE_FOREIGN').message).toMatch(/no share for custodian 'eve'/);
    const oldShare = opened(old.set.shares['eve'], eve.kx);
    const forged = resigned(approve(request, old.who('ada')), { custodian: 'eve', index: 5, share: sealFor(reply, oldShare) }, eve.signer);
    const valid = ['ada', 'ben'].map((name) => approve(request, old.who(name)));
    const err = await expectCodeAsync(combineCustodyApprovals(request, set, [...valid, forged], reply, NOW), 'SHARE_FOREIGN');
    expect(err.message).toMatch(/a custodian not in the set \(removed\?\)/);
  });

  it('refuses requests, approvals and shares of the earlier epoch with SHARE_FOREIGN', async () => {
    const old = await custody(3, 2);
    const { set } = await resplitCustody(old.set);
    const before = ask(old.set);
    const oldApprovals = ['ada', 'ben'].map((name) => approve(before.request, old.who(name)));
    // The old request still rebuilds the old K, which no longer opens anything.
    const oldK = await combineCustodyApprovals(before.request, old.set, oldApprovals, before.reply, NOW);
    expect(checkCustodySecret(set, oldK)).toBe(false);
    await expectCodeAsync(combineCustodyApprovals(before.request, set, oldApprovals, before.reply, NOW), 'SHARE_FOREIGN');
    const { request, reply } = ask(set);
    await expectCodeAsync(combineCustodyApprovals(request, set, oldApprovals, reply, NOW), 'SHARE_FOREIGN');
    // A request carrying an old-epoch share: the custodian refuses it.
    const mixed = { ...request, shares: { ...request.shares, ada: old.set.shares['ada'] } };
    expect(expectCode(() => approve(mixed, old.who('ada')), 'SHARE_FOREIGN').message).toMatch(/another custody set or an earlier epoch/);
    // A custodian signing an old-epoch share into a new approval: the operator refuses it.
    const ada = old.who('ada');
    const stale = resigned(approve(request, ada), { share: sealFor(reply, opened(old.set.shares['ada'], ada.kx)) }, ada.signer);
    await expectCodeAsync(combineCustodyApprovals(request, set, [stale, approve(request, old.who('ben'))], reply, NOW), 'SHARE_FOREIGN');
  });

  it('refuses a removal of a stranger, a threshold above the custodians left and a name added twice', async () => {
    const old = await custody(3, 3);
    await expectCodeAsync(resplitCustody(old.set, { remove: ['zed'] }), 'BAD_INPUT');
    await expectCodeAsync(resplitCustody(old.set, { remove: ['cy'] }), 'BAD_INPUT');
    await expectCodeAsync(resplitCustody(old.set, { add: [custodian('ada').card] }), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// Altered and foreign approvals

describe('combineCustodyApprovals refuses every bad approval, even among enough good ones', () => {
  const cases: [string, (a: CustodyApproval) => unknown, string][] = [
    ['its share JWE', (a) => ({ ...a, share: { ...a.share, ciphertext: flip(a.share.ciphertext) } }), 'SHARE_BAD_SIGNATURE'],
    ['its signature', (a) => ({ ...a, sig: flip(a.sig, 10) }), 'SHARE_BAD_SIGNATURE'],
    ['its index', (a) => ({ ...a, index: 2 }), 'SHARE_BAD_SIGNATURE'],
    ['its custodian, to another in the set', (a) => ({ ...a, custodian: 'ben' }), 'SHARE_BAD_SIGNATURE'],
    ['its custodian, to one not in the set', (a) => ({ ...a, custodian: 'zed' }), 'SHARE_FOREIGN'],
    ['its request digest', (a) => ({ ...a, request: toBase64url(randomBytes(32)) }), 'SHARE_FOREIGN'],
    ['an added field', (a) => ({ ...a, note: 'hi' }), 'SHARE_MALFORMED'],
    ['everything', () => 'not an approval', 'SHARE_MALFORMED'],
  ];

  it.each(cases)('%s altered', async (_what, alter, code) => {
    const { set, who } = await custody(4, 2);
    const { request, reply } = ask(set);
    const good = ['ben', 'cy', 'dee'].map((name) => approve(request, who(name)));
    const bad = alter(approve(request, who('ada')));
    const err = await expectCodeAsync(combineCustodyApprovals(request, set, [...good, bad], reply, NOW), code as 'SHARE_FOREIGN');
    expect(err.message).toMatch(/approval 4/);
  });

  it("refuses an approval signed by a key not in the set, made under a custodian's name", async () => {
    const { set, who } = await custody(3, 2);
    const { request, reply } = ask(set);
    const mallory = custodian('ada');
    const share = concatBytes(randomBytes(32), Uint8Array.of(1));
    const plaintext = { set: set.id, epoch: set.epoch, index: 1, name: 'ada', share: toBase64url(share) };
    const forged = resigned(approve(request, who('ben')), { custodian: 'ada', index: 1, share: sealFor(reply, plaintext) }, mallory.signer);
    const err = await expectCodeAsync(combineCustodyApprovals(request, set, [forged, approve(request, who('ben'))], reply, NOW), 'SHARE_BAD_SIGNATURE');
    expect(err.message).toMatch(/'ada'/);
  });

  it('refuses signed shares that do not rebuild K, or that are sealed to another key', async () => {
    const { set, who } = await custody(3, 2);
    const { request, reply } = ask(set);
    const ada = who('ada');
    const real = opened(set.shares['ada'], ada.kx);
    const wrong = resigned(
      approve(request, ada),
      { share: sealFor(reply, { ...real, share: toBase64url(concatBytes(randomBytes(32), Uint8Array.of(1))) }) },
      ada.signer,
    );
    const ben = approve(request, who('ben'));
    const err = await expectCodeAsync(combineCustodyApprovals(request, set, [wrong, ben], reply, NOW), 'SHARE_BAD_SIGNATURE');
    expect(err.message).toBe('the approved shares do not rebuild the custody secret');
    const elsewhere = resigned(approve(request, ada), { share: sealFor(x25519Generate(), real) }, ada.signer);
    await expectCodeAsync(combineCustodyApprovals(request, set, [elsewhere, ben], reply, NOW), 'SHARE_BAD_SIGNATURE');
  });

  it('refuses what a custodian signs but the set or the share contradicts', async () => {
    const { set, who } = await custody(3, 2);
    const { request, reply } = ask(set);
    const ada = who('ada');
    const real = opened(set.shares['ada'], ada.kx);
    const xAt2 = toBase64url(concatBytes(randomBytes(32), Uint8Array.of(2)));
    const lies: [Partial<CustodyApproval>, string][] = [
      [{ index: 2 }, 'SHARE_FOREIGN'],
      [{ set: toBase64url(randomBytes(16)) }, 'SHARE_FOREIGN'],
      [{ share: sealFor(reply, { ...real, name: 'ben' }) }, 'SHARE_FOREIGN'],
      [{ share: sealFor(reply, { ...real, share: xAt2 }) }, 'SHARE_MALFORMED'],
      [{ share: anoncrypt(Uint8Array.of(1, 2, 3), [{ kid: didKeyUrl('x25519', reply.publicKey), publicKey: reply.publicKey }]) }, 'SHARE_MALFORMED'],
    ];
    for (const [change, code] of lies) {
      const lie = resigned(approve(request, ada), change, ada.signer);
      await expectCodeAsync(combineCustodyApprovals(request, set, [lie, approve(request, who('ben'))], reply, NOW), code as 'SHARE_FOREIGN');
    }
  });

  it('will not release the K of an approval-mode set for an unseal request, even approved', async () => {
    const { set, who } = await custody(3, 2, { mode: 'approval' });
    const operation = { kind: 'export' as const, digest: toBase64url(randomBytes(32)), summary: 'Export the master key' };
    const { request: asked, reply } = ask(set, { purpose: 'operation', operation });
    const { operation: _op, ...rest } = asked;
    const unseal: CustodyRequest = { ...rest, purpose: 'unseal' };
    const approvals = ['ada', 'ben'].map((name) => approve(unseal, who(name)));
    await expectCodeAsync(combineCustodyApprovals(unseal, set, approvals, reply, NOW), 'SHARE_FOREIGN');
  });

  it('refuses approvals of a request altered after they were given, and a reply key not the request’s', async () => {
    const { set, who } = await custody(3, 2);
    const { request, reply } = ask(set);
    const approvals = ['ada', 'ben'].map((name) => approve(request, who(name)));
    await expectCodeAsync(combineCustodyApprovals({ ...request, generation: 4 }, set, approvals, reply, NOW), 'SHARE_FOREIGN');
    await expectCodeAsync(combineCustodyApprovals(request, set, approvals, ask(set).reply, NOW), 'BAD_INPUT');
  });
});

// ---------------------------------------------------------------------------------------------
// Requests

describe('requests', () => {
  it('expire: refused on approving and on combining after their time', async () => {
    const { set, secret, who } = await custody(3, 2);
    const { request, reply } = ask(set, { ttlSeconds: 600 });
    const end = Date.parse(request.expires);
    expect(end - NOW.getTime()).toBe(600_000);
    expectCode(() => approve(request, who('ada'), { now: new Date(end) }), 'MESSAGE_EXPIRED');
    const approvals = ['ada', 'ben'].map((name) => approve(request, who(name), { now: new Date(end - 1) }));
    expect(await combineCustodyApprovals(request, set, approvals, reply, new Date(end - 1))).toEqual(secret);
    await expectCodeAsync(combineCustodyApprovals(request, set, approvals, reply, new Date(end + 1)), 'MESSAGE_EXPIRED');
    expectCode(() => newCustodyRequest(set, { wallet: 'w', generation: 0, purpose: 'unseal', ttlSeconds: 0 }), 'BAD_INPUT');
  });

  it('are refused by a custodian who has seen a newer generation of the wallet', async () => {
    const { set, who } = await custody(3, 2);
    const { request } = ask(set, { generation: 3 });
    expect(expectCode(() => approve(request, who('ada'), { minGeneration: 4 }), 'WALLET_ROLLED_BACK').message).toMatch(/generation 3 .* generation 4/);
    expect(approve(request, who('ada'), { minGeneration: 3 }).custodian).toBe('ada');
  });

  it('let a custodian open only its own share, under its own name', async () => {
    const { set, who } = await custody(3, 2);
    const { request } = ask(set);
    expectCode(() => approve(request, who('ada'), { name: 'ben' }), 'SHARE_FOREIGN');
    const swapped = { ...request, shares: { ...request.shares, ada: request.shares['ben'] } };
    expectCode(() => approve(swapped, who('ada')), 'SHARE_FOREIGN');
    const approval = approve(request, who('ada'));
    expect(approval).toMatchObject({ type: 'dkms-custody-approval', set: set.id, epoch: 1, custodian: 'ada', index: 1 });
    expect(approval.request).toBe(toBase64url(requestDigest(request)));
  });

  it('in approval mode, name one operation, which the custodian reads before approving', async () => {
    const { set, who } = await custody(3, 2, { mode: 'approval' });
    const operation = { kind: 'sign' as const, key: 'master', digest: toBase64url(randomBytes(32)), summary: 'Sign the rotation of the ledger key' };
    const { request } = ask(set, { purpose: 'operation', operation, generation: 7 });
    const text = describeCustodyRequest(request);
    for (const part of [operation.summary, operation.digest, "with key 'master'", 'wallet-1', 'generation 7', 'Needs 2 of 3', request.expires]) {
      expect(text).toContain(part);
    }
    expect(describeCustodyRequest(ask((await custody(1, 1)).set).request)).toMatch(/unseal the wallet/);
    expectCode(() => newCustodyRequest(set, { wallet: 'w', generation: 0, purpose: 'unseal' }), 'BAD_INPUT');
    expectCode(() => newCustodyRequest(set, { wallet: 'w', generation: 0, purpose: 'operation' }), 'BAD_INPUT');
    expectCode(() => ask(set, { purpose: 'operation', operation: { ...operation, summary: 'ok\u001b[2Jreally' } }), 'BAD_INPUT');
    const { operation: _op, ...stripped } = request;
    expectCode(() => approve(stripped, who('ada')), 'SHARE_MALFORMED');
    expectCode(() => approve({ ...request, operation: { ...operation, summary: 'ok\u202Eevil' } }, who('ada')), 'SHARE_MALFORMED');
  });

  it('that are malformed are SHARE_MALFORMED', async () => {
    const { set } = await custody(1, 1);
    const { request } = ask(set);
    const bad: unknown[] = [null, {}, { ...request, extra: 1 }, { ...request, generation: -1 }, { ...request, expires: request.created }];
    for (const raw of bad) expectCode(() => parseCustodyRequest(raw), 'SHARE_MALFORMED');
    expect(parseCustodyRequest(JSON.parse(JSON.stringify(request)) as unknown)).toEqual(request satisfies CustodyRequest);
  });
});
