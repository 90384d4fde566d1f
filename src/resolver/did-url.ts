/**
 * did:dkms DID URLs as a resolver takes them (W3C DID Core, section 3.2): the DID, then the
 * optional DID parameters `versionId` (the id of one of the DID's events) or `versionTime`
 * (an ISO 8601 date-time), and a fragment, which resolution ignores (it names a part of the
 * document the caller picks out). A did:dkms DID has no paths, and other parameters name
 * nothing it has: both are refused, not dropped.
 */
import { fromBase58btc } from '../crypto/index.js';
import { DID_PREFIX, type Did, type EventId } from '../ledger/events.js';

/** A DID URL parsed: the DID and the version asked for, if any. */
export interface DkmsDidUrl {
  readonly did: Did;
  readonly versionId?: EventId;
  /** Normalized to UTC with milliseconds, as ledger times are. */
  readonly versionTime?: string;
}

/** Why a DID URL was refused: its DID itself (`invalidDid`), or the rest of it (`invalidDidUrl`). */
export interface DidUrlRefusal {
  readonly error: 'invalidDid' | 'invalidDidUrl';
  readonly message: string;
}

type Refused = { readonly ok: false } & DidUrlRefusal;

export type DidUrlParse = { readonly ok: true; readonly url: DkmsDidUrl } | Refused;

/** Longer than any did:dkms DID URL with a version: refused before it is looked at. */
const MAX_DID_URL_LENGTH = 400;
const DID_URL = /^(did:[a-z0-9]+:[^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/;
/** An ISO 8601 date-time with its offset (DID Core's versionTime, with optional fractions of a second). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

const refuse = (error: DidUrlRefusal['error'], message: string): Refused => ({ ok: false, error, message });

/** Whether `text` is a base58btc SHA-256 digest: what an event id, and a DID's method-specific id, are. */
function isDigest(text: string): boolean {
  try {
    return fromBase58btc(text).length === 32;
  } catch {
    return false;
  }
}

/**
 * Parses a did:dkms DID URL. Never throws: a DID URL it cannot resolve is a refusal that says
 * why, `invalidDid` when the DID is not a did:dkms DID, `invalidDidUrl` for the rest.
 *
 * @example parseDkmsDidUrl('did:dkms:4Hx…?versionTime=2026-01-01T00:00:00Z')
 */
export function parseDkmsDidUrl(didUrl: string): DidUrlParse {
  if (didUrl.length > MAX_DID_URL_LENGTH) return refuse('invalidDid', `a did:dkms DID URL has at most ${MAX_DID_URL_LENGTH} characters`);
  const match = DID_URL.exec(didUrl);
  const did = match?.[1];
  if (match === null || did === undefined) return refuse('invalidDid', `${JSON.stringify(didUrl.slice(0, 120))} is not a DID`);
  if (!did.startsWith(DID_PREFIX) || !isDigest(did.slice(DID_PREFIX.length))) {
    return refuse('invalidDid', `${did} is not a did:dkms DID (did:dkms: and the base58btc SHA-256 id of its did.create event)`);
  }
  if ((match[2] ?? '') !== '') return refuse('invalidDidUrl', `a did:dkms DID has no paths (${JSON.stringify(match[2])})`);
  const version = parseQuery(match[3] ?? '');
  if ('error' in version) return version;
  return { ok: true, url: { did: did as Did, ...version } };
}

function parseQuery(query: string): Pick<DkmsDidUrl, 'versionId' | 'versionTime'> | Refused {
  let params: URLSearchParams;
  try {
    // URLSearchParams would turn a malformed escape into U+FFFD; decoding first refuses it.
    decodeURIComponent(query);
    params = new URLSearchParams(query);
  } catch {
    return refuse('invalidDidUrl', 'the DID URL query has a malformed percent-escape');
  }
  const names = [...params.keys()];
  const unknown = names.find((n) => n !== 'versionId' && n !== 'versionTime');
  if (unknown !== undefined) return refuse('invalidDidUrl', `unsupported DID parameter ${JSON.stringify(unknown)} (did:dkms takes versionId or versionTime)`);
  if (new Set(names).size !== names.length) return refuse('invalidDidUrl', 'a DID parameter is given twice');
  const versionId = params.get('versionId');
  const versionTime = params.get('versionTime');
  if (versionId !== null && versionTime !== null) return refuse('invalidDidUrl', 'give versionId or versionTime, not both');
  if (versionId !== null) {
    if (!isDigest(versionId)) return refuse('invalidDidUrl', "versionId must be the id of one of the DID's events (base58btc SHA-256)");
    return { versionId: versionId as EventId };
  }
  if (versionTime !== null) {
    const ms = DATE_TIME.test(versionTime) ? Date.parse(versionTime) : Number.NaN;
    if (Number.isNaN(ms))
      return refuse(
        'invalidDidUrl',
        `versionTime must be an ISO 8601 date-time with its offset, like 2026-01-31T12:00:00Z (got ${JSON.stringify(versionTime.slice(0, 40))})`,
      );
    return { versionTime: new Date(ms).toISOString() };
  }
  return {};
}
