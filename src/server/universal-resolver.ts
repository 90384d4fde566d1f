/**
 * The ledger node as a Universal Resolver driver: `GET /1.0/identifiers/{did-url}` answers
 * with a DID resolution result or a DID document, by the driver conventions of the DIF
 * Universal Resolver (Accept picks the representation; 200, 400, 404, 406, 410, 500, 501).
 * The node resolves through the same driver as any client (resolver/), with a ledger client
 * over its own answers: what it serves is what a verifying client computes from its events.
 * Failures are resolution results, not problem+json; the rate limit's 429 stays a problem.
 */
import type { DIDResolutionResult } from 'did-resolver';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { LedgerClient } from '../ledger/client.js';
import type { LedgerNode } from '../ledger/node.js';
import { resolutionFailure, resolveDkmsDidUrl, type DocumentMediaType } from '../resolver/index.js';
import { localLedgerTransport } from './ledger-reads.js';

const RESOLUTION_TYPE = 'application/did-resolution';
const RESOLUTION_LD_TYPE = 'application/ld+json;profile="https://w3id.org/did-resolution"';
const RESOLUTION_PROFILE = 'https://w3id.org/did-resolution';
const RESOLUTION_CONTEXT = 'https://w3id.org/did-resolution/v1';
const PREFIX = '/1.0/identifiers/';
/** The node's own heads are current by construction: their age is not the question here. */
const OWN_HEAD_MAX_AGE_MS = 365 * 24 * 3600 * 1000;

/** What the endpoint can answer with: the document alone, or the whole result. */
interface Offer {
  readonly type: string;
  readonly result: boolean;
  readonly matches: (range: MediaRange) => boolean;
}

interface MediaRange {
  readonly type: string;
  readonly params: ReadonlyMap<string, string>;
  readonly q: number;
  /** 3: a type with parameters, 2: a type, 1: `application/*`, 0: `*\/*`. */
  readonly specificity: number;
}

const exactly = (type: string) => (range: MediaRange) =>
  range.type === type || range.type === '*/*' || (range.type === 'application/*' && type.startsWith('application/'));

/** In the server's order of preference: a wildcard gets the first. */
const OFFERS: readonly Offer[] = [
  { type: 'application/did+ld+json', result: false, matches: exactly('application/did+ld+json') },
  { type: 'application/did+json', result: false, matches: exactly('application/did+json') },
  { type: 'application/did', result: false, matches: exactly('application/did') },
  { type: RESOLUTION_TYPE, result: true, matches: exactly(RESOLUTION_TYPE) },
  {
    type: RESOLUTION_LD_TYPE,
    result: true,
    // A bare application/ld+json is no resolution result: the profile must say so.
    matches: (range) =>
      range.type === '*/*' ||
      range.type === 'application/*' ||
      (range.type === 'application/ld+json' && (range.params.get('profile') ?? '').split(' ').includes(RESOLUTION_PROFILE)),
  },
];

/** Splits on `separator` outside double quotes. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

/** The media ranges of an Accept header (RFC 9110 section 12.5.1); an unreadable one is left out. */
function mediaRanges(accept: string): MediaRange[] {
  return splitOutsideQuotes(accept, ',').flatMap((entry) => {
    const [head = '', ...rest] = splitOutsideQuotes(entry, ';').map((p) => p.trim());
    const type = head.toLowerCase();
    if (!/^[a-z0-9!#$&^_.+*-]+\/[a-z0-9!#$&^_.+*-]+$/.test(type) || (type.startsWith('*/') && type !== '*/*')) return [];
    const params = new Map<string, string>();
    let q = 1;
    for (const param of rest) {
      const eq = param.indexOf('=');
      if (eq < 0) continue;
      const name = param.slice(0, eq).trim().toLowerCase();
      const value = param
        .slice(eq + 1)
        .trim()
        .replace(/^"(.*)"$/, '$1');
      if (name === 'q') q = /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value) ? Number(value) : 0;
      else params.set(name, value);
    }
    const specificity = type === '*/*' ? 0 : type.endsWith('/*') ? 1 : params.size > 0 ? 3 : 2;
    return [{ type, params, q, specificity }];
  });
}

/** The offer the Accept header prefers (RFC 9110: the most specific matching range gives each offer its q), or undefined: 406. */
function negotiate(accept: string | undefined): Offer | undefined {
  if (accept === undefined || accept.trim() === '') return OFFERS[0];
  const ranges = mediaRanges(accept);
  let best: { offer: Offer; q: number; specificity: number; index: number } | undefined;
  for (const offer of OFFERS) {
    let match: { q: number; specificity: number; index: number } | undefined;
    ranges.forEach((range, index) => {
      if (offer.matches(range) && (match === undefined || range.specificity > match.specificity)) match = { q: range.q, specificity: range.specificity, index };
    });
    if (match === undefined || match.q <= 0) continue;
    const better =
      best === undefined ||
      match.q > best.q ||
      (match.q === best.q && (match.specificity > best.specificity || (match.specificity === best.specificity && match.index < best.index)));
    if (better) best = { offer, ...match };
  }
  return best?.offer;
}

/** The HTTP status of a result, by the driver conventions. */
function statusOf(result: DIDResolutionResult): number {
  switch (result.didResolutionMetadata.error) {
    case undefined:
      return result.didDocumentMetadata.deactivated === true ? 410 : 200;
    case 'invalidDid':
    case 'invalidDidUrl':
      return 400;
    case 'notFound':
      return 404;
    case 'representationNotSupported':
      return 406;
    case 'methodNotSupported':
      return 501;
    default:
      return 500;
  }
}

/**
 * The DID URL of a request: the path after the prefix, percent-decoded, and the request's own
 * query, if any, as the DID URL's (so `?versionId=` may be sent escaped or not, but not both).
 */
function didUrlOf(url: string): { ok: true; didUrl: string } | { ok: false; result: DIDResolutionResult } {
  const mark = url.indexOf('?');
  const path = (mark < 0 ? url : url.slice(0, mark)).slice(PREFIX.length);
  const query = mark < 0 ? '' : url.slice(mark + 1);
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return { ok: false, result: resolutionFailure('invalidDid', 'BAD_INPUT: the identifier has a malformed percent-escape') };
  }
  if (query !== '' && decoded.includes('?'))
    return { ok: false, result: resolutionFailure('invalidDidUrl', 'BAD_INPUT: the DID URL has a query both escaped in the path and in the request') };
  if (!decoded.startsWith('did:dkms:') && /^did:[a-z0-9]+:/.test(decoded)) {
    const message = `BAD_INPUT: this driver resolves did:dkms only, not ${decoded.split(':', 2).join(':')}`;
    return { ok: false, result: { didResolutionMetadata: { error: 'methodNotSupported', message }, didDocument: null, didDocumentMetadata: {} } };
  }
  return { ok: true, didUrl: query === '' ? decoded : `${decoded}?${query}` };
}

/** Runs resolutions one at a time: the ledger client's last head must only grow, and concurrent reads could verify heads out of order. */
function serially(): <T>(task: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (task) => {
    const run = tail.then(task, task);
    tail = run.catch(() => undefined);
    return run;
  };
}

function send(reply: FastifyReply, offer: Offer | undefined, result: DIDResolutionResult): FastifyReply {
  // A failure has no document to show: it is always the whole result.
  const documentOnly = offer !== undefined && !offer.result && result.didDocument !== null;
  const type = offer !== undefined && (offer.result || documentOnly) ? offer.type : RESOLUTION_TYPE;
  const body = documentOnly ? result.didDocument : { '@context': RESOLUTION_CONTEXT, ...result };
  // Bytes: fastify would add a charset parameter to a string of a JSON type; the types are sent as named.
  return reply
    .code(statusOf(result))
    .type(type)
    .send(Buffer.from(JSON.stringify(body)));
}

/** Registers `GET /1.0/identifiers/*` on `app` (inside the ledger API's rate-limited routes). */
export function universalResolverRoutes(app: FastifyInstance, node: LedgerNode): void {
  const client = new LedgerClient({ url: 'in-process:', trustedKeys: [node.key], transport: localLedgerTransport(node), maxHeadAgeMs: OWN_HEAD_MAX_AGE_MS });
  const queue = serially();
  app.get(`${PREFIX}*`, async (request, reply) => {
    const header = request.headers.accept;
    const offer = negotiate(header);
    const target = didUrlOf(request.url);
    if (!target.ok) return send(reply, offer, target.result);
    if (offer === undefined) {
      return send(
        reply,
        offer,
        resolutionFailure(
          'representationNotSupported',
          `BAD_INPUT: cannot answer with any of ${JSON.stringify(header ?? '')}; ask for ${OFFERS.map((o) => o.type).join(', ')}`,
        ),
      );
    }
    const accept = offer.result ? 'application/did+ld+json' : (offer.type as DocumentMediaType);
    return send(reply, offer, await queue(() => resolveDkmsDidUrl(client, target.didUrl, { accept })));
  });
}
