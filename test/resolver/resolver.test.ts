/**
 * did:dkms through the did-resolver package, as an application uses it: `new Resolver(
 * getResolver({ ledger, trustedKeys }))` against a real ledger node on loopback. Every document
 * comes from events the client verified; a node that lies gets an error result and no document.
 */
import { Resolver, type DIDResolutionResult } from 'did-resolver';
import { describe, expect, it } from 'vitest';
import { toBase58btc, sha256 } from '../../src/crypto/index.js';
import { DkmsError } from '../../src/errors.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { getResolver } from '../../src/resolver/index.js';
import { nodeSigner } from '../helpers/ledger.js';
import { clone, flipFirst, startProxy } from '../helpers/lying.js';
import { AGENCY_AFTER, AGENCY_BEFORE, MINUTE, didStory, endpoints, iso, signingKeys, type DidStory } from './story.js';

const resolverFor = (s: DidStory, url = s.ledger.url) => new Resolver(getResolver({ ledger: url, trustedKeys: [s.ledger.signer.multikey] }));

/** An identifier nobody created. */
const nobody = () => toBase58btc(sha256(new TextEncoder().encode(`nobody ${Math.random()}`)));

function expectFailure(result: DIDResolutionResult, error: string, code: RegExp): void {
  expect(result.didResolutionMetadata.error).toBe(error);
  expect(result.didResolutionMetadata.message).toMatch(code);
  expect(result.didDocument).toBeNull();
  expect(result.didDocumentMetadata).toEqual({});
}

describe('did:dkms through did-resolver', () => {
  it("resolves a DID to the document its verified events make: policy keys, the DID's services, W3C metadata", async () => {
    const s = await didStory();
    const result = await resolverFor(s).resolve(s.did);

    expect(result.didResolutionMetadata).toEqual({ contentType: 'application/did+ld+json' });
    const doc = result.didDocument;
    expect(doc?.id).toBe(s.did);
    expect(doc?.['@context']).toContain('https://www.w3.org/ns/did/v1');
    expect(new Set(signingKeys(doc))).toEqual(new Set([s.laptop.multikey, s.phone.multikey]));
    expect(doc?.keyAgreement).toHaveLength(2);
    expect(doc?.service).toEqual([{ id: `${s.did}#agency`, type: 'DIDCommMessaging', serviceEndpoint: AGENCY_AFTER }]);
    expect(result.didDocumentMetadata).toEqual({
      created: iso(s.t0 + 1 * MINUTE),
      updated: iso(s.t0 + 2 * MINUTE),
      deactivated: false,
      versionId: s.ids[2],
      controller: s.policy,
    });
  });

  it('resolves a DID URL with a fragment to the whole document (the caller picks the part), and honours accept', async () => {
    const s = await didStory();
    const resolver = resolverFor(s);
    const withFragment = await resolver.resolve(`${s.did}#${s.laptop.multikey}`);
    expect(withFragment.didDocument?.id).toBe(s.did);
    expect(withFragment.didDocument?.verificationMethod?.map((m) => m.id)).toContain(`${s.did}#${s.laptop.multikey}`);

    expect((await resolver.resolve(s.did, { accept: 'application/did+json' })).didResolutionMetadata).toEqual({ contentType: 'application/did+json' });
    expectFailure(await resolver.resolve(s.did, { accept: 'text/html' }), 'representationNotSupported', /^BAD_INPUT: /);
  });

  it("takes a LedgerClient of the caller's own as the ledger", async () => {
    const s = await didStory();
    const client = new LedgerClient({ url: s.ledger.url, trustedKeys: [s.ledger.signer.multikey] });
    const result = await new Resolver(getResolver({ ledger: client })).resolve(s.did);
    expect(result.didDocumentMetadata.versionId).toBe(s.ids[2]);
  });

  it('answers notFound for a DID the ledger proves absent', async () => {
    const s = await didStory();
    expectFailure(await resolverFor(s).resolve(`did:dkms:${nobody()}`), 'notFound', /^SUBJECT_NOT_FOUND: .*proven absent/);
  });

  it('answers invalidDid for what is not a did:dkms DID, without asking the ledger', async () => {
    const s = await didStory();
    const proxy = await startProxy(s.ledger.url);
    const resolver = resolverFor(s, proxy.url);
    // 0, O, I and l are not base58; a 16-byte id is no SHA-256 digest.
    expectFailure(await resolver.resolve('did:dkms:0OIl'), 'invalidDid', /^BAD_INPUT: .*not a did:dkms DID/);
    expectFailure(await resolver.resolve(`did:dkms:${toBase58btc(new Uint8Array(16).fill(7))}`), 'invalidDid', /^BAD_INPUT: /);
    expect((await resolver.resolve('did:dkms')).didResolutionMetadata.error).toBe('invalidDid');
    expect(proxy.seen).toEqual([]);
  });

  it('answers invalidDidUrl for paths, unknown parameters, both versions at once, and a malformed versionTime', async () => {
    const s = await didStory();
    const resolver = resolverFor(s);
    expectFailure(await resolver.resolve(`${s.did}/path`), 'invalidDidUrl', /no paths/);
    expectFailure(await resolver.resolve(`${s.did}?service=agency`), 'invalidDidUrl', /unsupported DID parameter "service"/);
    expectFailure(await resolver.resolve(`${s.did}?versionId=${s.ids[1]}&versionTime=${iso(s.t0)}`), 'invalidDidUrl', /not both/);
    expectFailure(await resolver.resolve(`${s.did}?versionTime=yesterday`), 'invalidDidUrl', /versionTime must be an ISO 8601/);
    expectFailure(await resolver.resolve(`${s.did}?versionId=x`), 'invalidDidUrl', /versionId must be/);
  });

  it('resolves a deactivated DID with deactivated: true and a document without keys or services', async () => {
    const s = await didStory();
    const result = await resolverFor(s).resolve(s.gone);
    expect(result.didResolutionMetadata).toEqual({ contentType: 'application/did+ld+json' });
    expect(result.didDocumentMetadata).toMatchObject({
      deactivated: true,
      versionId: s.ids[5],
      created: iso(s.t0 + 4 * MINUTE),
      updated: iso(s.t0 + 5 * MINUTE),
    });
    expect(result.didDocument).toMatchObject({ id: s.gone, verificationMethod: [], authentication: [], keyAgreement: [], service: [] });
  });

  it("resolves ?versionId= to the last state of that version, with the next version's id and time", async () => {
    const s = await didStory();
    const resolver = resolverFor(s);
    const first = await resolver.resolve(`${s.did}?versionId=${s.ids[1]}`);
    expect(first.didResolutionMetadata.error).toBeUndefined();
    expect(endpoints(first.didDocument)).toEqual([AGENCY_BEFORE]);
    // The phone was granted after the DID's next event: not in this version.
    expect(signingKeys(first.didDocument)).toEqual([s.laptop.multikey]);
    expect(first.didDocumentMetadata).toEqual({
      created: iso(s.t0 + 1 * MINUTE),
      updated: iso(s.t0 + 1 * MINUTE),
      deactivated: false,
      versionId: s.ids[1],
      controller: s.policy,
      nextVersionId: s.ids[2],
      nextUpdate: iso(s.t0 + 2 * MINUTE),
    });

    // The latest version is the current document, with nothing next.
    const current = await resolver.resolve(s.did);
    expect(await resolver.resolve(`${s.did}?versionId=${current.didDocumentMetadata.versionId ?? ''}`)).toEqual(current);

    const gone = await resolver.resolve(`${s.gone}?versionId=${s.ids[4]}`);
    expect(gone.didDocumentMetadata).toMatchObject({ deactivated: false, versionId: s.ids[4], nextVersionId: s.ids[5], nextUpdate: iso(s.t0 + 5 * MINUTE) });
    expect(signingKeys(gone.didDocument)).toHaveLength(2);

    // A version that is no event of this DID: another subject's event, or nobody's.
    expectFailure(await resolver.resolve(`${s.did}?versionId=${s.ids[0]}`), 'notFound', /^SUBJECT_NOT_FOUND: .*has no version/);
    expectFailure(await resolver.resolve(`${s.did}?versionId=${nobody()}`), 'notFound', /^SUBJECT_NOT_FOUND: /);
  });

  it('resolves ?versionTime= to the state after every event accepted by then', async () => {
    const s = await didStory();
    const resolver = resolverFor(s);
    const at = (minutes: number) => resolver.resolve(`${s.did}?versionTime=${iso(s.t0 + minutes * MINUTE)}`);

    const early = await at(1.5);
    expect(endpoints(early.didDocument)).toEqual([AGENCY_BEFORE]);
    expect(early.didDocumentMetadata).toMatchObject({ versionId: s.ids[1], nextVersionId: s.ids[2], nextUpdate: iso(s.t0 + 2 * MINUTE) });

    const moved = await at(2.5);
    expect(endpoints(moved.didDocument)).toEqual([AGENCY_AFTER]);
    expect(signingKeys(moved.didDocument)).toEqual([s.laptop.multikey]);
    expect(moved.didDocumentMetadata.versionId).toBe(s.ids[2]);
    expect(moved.didDocumentMetadata.nextVersionId).toBeUndefined();

    // An event's own time includes it; the policy's grant changes the keys, not the version.
    const granted = await at(3);
    expect(new Set(signingKeys(granted.didDocument))).toEqual(new Set([s.laptop.multikey, s.phone.multikey]));
    expect(granted.didDocumentMetadata.versionId).toBe(s.ids[2]);

    // Another offset names the same instant.
    const offset = await resolver.resolve(`${s.did}?versionTime=${encodeURIComponent(iso(s.t0 + 90 * 1000).replace('Z', '+00:00'))}`);
    expect(offset.didDocumentMetadata.versionId).toBe(s.ids[1]);

    expectFailure(await at(0.5), 'notFound', /did not exist yet/);
    const beforeDeactivation = await resolver.resolve(`${s.gone}?versionTime=${iso(s.t0 + 4.5 * MINUTE)}`);
    expect(beforeDeactivation.didDocumentMetadata).toMatchObject({ deactivated: false, nextVersionId: s.ids[5] });
  });

  it("gives an error result and no document when a node's answer does not verify", async () => {
    const s = await didStory();
    const proxy = await startProxy(s.ledger.url);
    const resolver = resolverFor(s, proxy.url);

    // The agency moved somewhere else: the DID's events no longer carry their signers' signatures.
    proxy.lie = ({ path, status, body }) => {
      if (status !== 200 || !path.startsWith('/v1/dids/')) return undefined;
      const answer = clone(body) as { history: { event: { type: string; services?: { serviceEndpoint: string }[] } }[] };
      for (const record of answer.history) for (const service of record.event.services ?? []) service.serviceEndpoint = 'http://127.0.0.1:6666/';
      return { body: answer };
    };
    expectFailure(await resolver.resolve(s.did), 'verificationFailed', /^LEDGER_BAD_(PROOF|CHAIN): the ledger node's answer does not verify/);

    // A node cannot make an existing DID look absent without a proof of its absence.
    proxy.lie = ({ path }) =>
      path.startsWith('/v1/dids/')
        ? {
            status: 404,
            body: { type: 'urn:dkms:error:SUBJECT_NOT_FOUND', title: 'SUBJECT_NOT_FOUND', status: 404, detail: 'no DID', code: 'SUBJECT_NOT_FOUND' },
          }
        : undefined;
    expectFailure(await resolver.resolve(s.did), 'verificationFailed', /^LEDGER_BAD_MAP_PROOF: /);

    // A head signed with another key.
    proxy.lie = ({ path, body }) =>
      path === '/v1/head' || path.startsWith('/v1/dids/')
        ? { body: { ...(clone(body) as object), head: { ...(body as { head: object }).head, sig: flipFirst((body as { head: { sig: string } }).head.sig) } } }
        : undefined;
    expectFailure(await resolver.resolve(`${s.did}?versionId=${s.ids[1]}`), 'verificationFailed', /^LEDGER_BAD_HEAD: /);
  });

  it("never takes the node's own summary of the document", async () => {
    const s = await didStory();
    const proxy = await startProxy(s.ledger.url, ({ path, status, body }) => {
      if (status !== 200 || !path.startsWith('/v1/dids/')) return undefined;
      const answer = clone(body) as { didDocument?: { service: { serviceEndpoint: string }[] } };
      for (const service of answer.didDocument?.service ?? []) service.serviceEndpoint = 'http://127.0.0.1:6666/';
      return { body: answer };
    });
    const result = await resolverFor(s, proxy.url).resolve(s.did);
    expect(endpoints(result.didDocument)).toEqual([AGENCY_AFTER]);
  });

  it('refuses a resolver that would trust nobody in particular, or is given trust twice', async () => {
    const s = await didStory();
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof DkmsError ? e.code : 'not a DkmsError';
      }
      return 'no error';
    };
    expect(code(() => getResolver({ ledger: s.ledger.url }))).toBe('BAD_INPUT');
    expect(code(() => getResolver({ ledger: s.ledger.url, trustedKeys: [] }))).toBe('BAD_INPUT');
    expect(code(() => getResolver({ ledger: 'ftp://127.0.0.1/', trustedKeys: [s.ledger.signer.multikey] }))).toBe('BAD_INPUT');
    const client = new LedgerClient({ url: s.ledger.url, trustedKeys: [s.ledger.signer.multikey] });
    expect(code(() => getResolver({ ledger: client, trustedKeys: [s.ledger.signer.multikey] }))).toBe('BAD_INPUT');
    // A resolver trusting another node's key gets nothing from this one.
    const stranger = new Resolver(getResolver({ ledger: s.ledger.url, trustedKeys: [nodeSigner().multikey] }));
    expectFailure(await stranger.resolve(s.did), 'verificationFailed', /^LEDGER_BAD_HEAD: /);
  });
});
