/**
 * The ledger node as a Universal Resolver driver: `GET /1.0/identifiers/{did}` on loopback,
 * each representation the Accept header can ask for and each status of the driver conventions.
 */
import { describe, expect, it } from 'vitest';
import { toBase58btc, sha256 } from '../../src/crypto/index.js';
import { call, type Answer } from '../helpers/http.js';
import { AGENCY_AFTER, AGENCY_BEFORE, MINUTE, didStory, endpoints, iso, type DidStory } from '../resolver/story.js';

const RESOLUTION = 'application/did-resolution';
const RESOLUTION_LD = 'application/ld+json;profile="https://w3id.org/did-resolution"';

const resolve = (s: DidStory, identifier: string, accept?: string, query = '') =>
  call(`${s.ledger.url}/1.0/identifiers/${identifier}${query}`, accept === undefined ? {} : { headers: { accept } });

interface Result {
  '@context': string;
  didResolutionMetadata: { contentType?: string; error?: string; message?: string };
  didDocument: { id: string; service: { serviceEndpoint: string }[]; verificationMethod: unknown[] } | null;
  didDocumentMetadata: Record<string, unknown>;
}

/** A whole resolution result in `type`, with `status`. */
function expectResult(answer: Answer, status: number, type = RESOLUTION): Result {
  expect({ status: answer.status, type: answer.contentType }).toEqual({ status, type });
  const body = answer.body as Result;
  expect(Object.keys(body).sort()).toEqual(['@context', 'didDocument', 'didDocumentMetadata', 'didResolutionMetadata']);
  expect(body['@context']).toBe('https://w3id.org/did-resolution/v1');
  return body;
}

/** An error result: the whole result, whatever representation was asked for, with no document. */
function expectError(answer: Answer, status: number, error: string): Result {
  const body = expectResult(answer, status);
  expect(body.didResolutionMetadata.error).toBe(error);
  expect(body.didResolutionMetadata.message).toMatch(/^[A-Z_]+: /);
  expect(body.didDocument).toBeNull();
  return body;
}

/** The document alone, in `type`. */
function expectDocument(answer: Answer, status: number, type: string, did: string): NonNullable<Result['didDocument']> {
  expect({ status: answer.status, type: answer.contentType }).toEqual({ status, type });
  const body = answer.body as NonNullable<Result['didDocument']>;
  expect(body.id).toBe(did);
  expect(body).not.toHaveProperty('didResolutionMetadata');
  return body;
}

const nobody = () => `did:dkms:${toBase58btc(sha256(new TextEncoder().encode(`nobody ${Math.random()}`)))}`;

describe('GET /1.0/identifiers/{did}', () => {
  it('answers the whole resolution result to application/did-resolution and to the JSON-LD profile', async () => {
    const s = await didStory();
    for (const type of [RESOLUTION, RESOLUTION_LD]) {
      const body = expectResult(await resolve(s, s.did, type), 200, type);
      expect(body.didResolutionMetadata).toEqual({ contentType: 'application/did+ld+json' });
      expect(body.didDocument?.id).toBe(s.did);
      expect(endpoints(body.didDocument)).toEqual([AGENCY_AFTER]);
      expect(body.didDocumentMetadata).toEqual({
        created: iso(s.t0 + MINUTE),
        updated: iso(s.t0 + 2 * MINUTE),
        deactivated: false,
        versionId: s.ids[2],
        controller: s.policy,
      });
    }
  });

  it('answers the document alone to application/did+ld+json, application/did+json, application/did, */* and no Accept', async () => {
    const s = await didStory();
    const full = expectResult(await resolve(s, s.did, RESOLUTION), 200);
    for (const type of ['application/did+ld+json', 'application/did+json', 'application/did']) {
      expect(expectDocument(await resolve(s, s.did, type), 200, type, s.did)).toEqual(full.didDocument);
    }
    expectDocument(await resolve(s, s.did, '*/*'), 200, 'application/did+ld+json', s.did);
    expectDocument(await resolve(s, s.did), 200, 'application/did+ld+json', s.did);
  });

  it('weighs the Accept header: q values first, then the more specific range', async () => {
    const s = await didStory();
    expectResult(await resolve(s, s.did, `application/did+ld+json;q=0.5, ${RESOLUTION}`), 200);
    expectDocument(await resolve(s, s.did, `${RESOLUTION};q=0.2, application/did+json;q=0.9`), 200, 'application/did+json', s.did);
    expectResult(await resolve(s, s.did, `text/html, ${RESOLUTION_LD};q=0.8, */*;q=0.1`), 200, RESOLUTION_LD);
    expectDocument(await resolve(s, s.did, 'text/html, application/*;q=0.5'), 200, 'application/did+ld+json', s.did);
  });

  it('answers 406 representationNotSupported to an Accept it cannot serve', async () => {
    const s = await didStory();
    expectError(await resolve(s, s.did, 'text/html'), 406, 'representationNotSupported');
    // JSON-LD without the resolution profile, and a representation refused with q=0.
    expectError(await resolve(s, s.did, 'application/ld+json'), 406, 'representationNotSupported');
    expectError(await resolve(s, s.did, 'application/did+ld+json;q=0'), 406, 'representationNotSupported');
  });

  it('answers 400 invalidDid for a malformed DID and invalidDidUrl for a malformed DID URL', async () => {
    const s = await didStory();
    expectError(await resolve(s, 'did:dkms:0OIl', RESOLUTION), 400, 'invalidDid');
    expectError(await resolve(s, 'not-a-did', 'application/did+ld+json'), 400, 'invalidDid');
    expectError(await resolve(s, `did:dkms:${'z'.repeat(500)}`, RESOLUTION), 400, 'invalidDid');
    // A request path that is not valid percent-encoding is refused by the server before the route, as every bad URL is.
    const badUrl = await resolve(s, 'did:dkms:%E0%A4%A', RESOLUTION);
    expect({ status: badUrl.status, code: (badUrl.body as { code?: string }).code }).toEqual({ status: 400, code: 'BAD_INPUT' });
    expect(badUrl.contentType).toMatch(/^application\/problem\+json/);
    expectError(await resolve(s, s.did, RESOLUTION, '?versionTime=yesterday'), 400, 'invalidDidUrl');
    expectError(await resolve(s, `${s.did}%3FversionId%3D${s.ids[1]}`, RESOLUTION, `?versionId=${s.ids[1]}`), 400, 'invalidDidUrl');
  });

  it('answers 404 notFound, as a resolution result, for a DID the ledger does not hold', async () => {
    const s = await didStory();
    const body = expectError(await resolve(s, nobody(), RESOLUTION), 404, 'notFound');
    expect(body.didResolutionMetadata.message).toMatch(/^SUBJECT_NOT_FOUND: /);
    expect(body.didDocumentMetadata).toEqual({});
    // Asked for the document alone: there is none, so the result says why.
    expectError(await resolve(s, nobody(), 'application/did+json'), 404, 'notFound');
    expectError(await resolve(s, s.did, RESOLUTION, `?versionTime=${iso(s.t0)}`), 404, 'notFound');
  });

  it('answers 410 for a deactivated DID, with the result or the document', async () => {
    const s = await didStory();
    const body = expectResult(await resolve(s, s.gone, RESOLUTION), 410);
    expect(body.didResolutionMetadata).toEqual({ contentType: 'application/did+ld+json' });
    expect(body.didDocumentMetadata).toMatchObject({ deactivated: true, versionId: s.ids[5] });
    expect(body.didDocument?.verificationMethod).toEqual([]);
    expect(expectDocument(await resolve(s, s.gone, 'application/did+ld+json'), 410, 'application/did+ld+json', s.gone).service).toEqual([]);
    // Before it was deactivated, it resolves.
    expect(expectResult(await resolve(s, s.gone, RESOLUTION, `?versionId=${s.ids[4]}`), 200).didDocumentMetadata).toMatchObject({
      deactivated: false,
      nextVersionId: s.ids[5],
    });
  });

  it('answers 501 methodNotSupported for another DID method', async () => {
    const s = await didStory();
    expectError(await resolve(s, 'did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', RESOLUTION), 501, 'methodNotSupported');
  });

  it("resolves versionId and versionTime given in the request's query or escaped in the DID URL", async () => {
    const s = await didStory();
    const early = iso(s.t0 + 1.5 * MINUTE);
    const answers = [
      await resolve(s, s.did, RESOLUTION, `?versionId=${s.ids[1]}`),
      await resolve(s, `${s.did}%3FversionId%3D${s.ids[1]}`, RESOLUTION),
      await resolve(s, s.did, RESOLUTION, `?versionTime=${early}`),
      await resolve(s, encodeURIComponent(`${s.did}?versionTime=${early}`), RESOLUTION),
    ];
    for (const answer of answers) {
      const body = expectResult(answer, 200);
      expect(endpoints(body.didDocument)).toEqual([AGENCY_BEFORE]);
      expect(body.didDocumentMetadata).toMatchObject({ versionId: s.ids[1], nextVersionId: s.ids[2], nextUpdate: iso(s.t0 + 2 * MINUTE) });
    }
    const doc = expectDocument(await resolve(s, s.did, 'application/did+json', `?versionId=${s.ids[1]}`), 200, 'application/did+json', s.did);
    expect(endpoints(doc)).toEqual([AGENCY_BEFORE]);
  });

  it('is rate-limited with the rest of the ledger API (429 problem+json)', async () => {
    const s = await didStory({ rateLimitPerSecond: 5 });
    const answers = await Promise.all(Array.from({ length: 20 }, () => resolve(s, s.did, RESOLUTION)));
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const answer of limited) {
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
      expect(answer.body).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    }
    for (const answer of answers.filter((a) => a.status !== 429)) expect(expectResult(answer, 200).didDocument?.id).toBe(s.did);
  });
});
