/**
 * A did:dkms driver for the `did-resolver` package: `new Resolver(getResolver({ ledger,
 * trustedKeys }))` resolves did:dkms DIDs and DID URLs (`?versionId=`, `?versionTime=`) with
 * every check of the ledger client (signed head from a trusted node key, map proofs, inclusion,
 * completeness, chain replay). It sits above ledger/ and did/, and only uses did-resolver's
 * types: the package is not needed at run time.
 *
 * @example
 * import { Resolver } from 'did-resolver';
 * const resolver = new Resolver(getResolver({ ledger: 'https://ledger.example', trustedKeys: ['z6Mk…'] }));
 * const { didDocument, didDocumentMetadata, didResolutionMetadata } = await resolver.resolve('did:dkms:4Hx…');
 */
import type { DIDResolver } from 'did-resolver';
import type { DidRecordReader } from '../did/resolve.js';
import { DkmsError } from '../errors.js';
import { LedgerClient } from '../ledger/client.js';
import { resolveDkmsDidUrl } from './resolve.js';

export { parseDkmsDidUrl, type DidUrlParse, type DidUrlRefusal, type DkmsDidUrl } from './did-url.js';
export {
  DOCUMENT_MEDIA_TYPES,
  resolutionFailure,
  resolveDkmsDidUrl,
  type DkmsResolutionError,
  type DkmsResolutionOptions,
  type DocumentMediaType,
} from './resolve.js';

export interface DkmsResolverOptions {
  /**
   * A ledger node's base URL (http or https), or a client of your own: a LedgerClient, with
   * its trust, witnesses, quorum and cache (anything with its `resolveDidRecord`).
   */
  readonly ledger: string | DidRecordReader;
  /**
   * With a URL, required: the node keys (multibase Ed25519, `z6Mk…`) whose signed tree heads
   * are trusted. A resolver does not trust a node on first use; pass a LedgerClient for that.
   */
  readonly trustedKeys?: readonly string[];
}

function readerOf(options: DkmsResolverOptions): DidRecordReader {
  const { ledger, trustedKeys } = options;
  if (typeof ledger !== 'string') {
    if (trustedKeys !== undefined) throw new DkmsError('BAD_INPUT', 'trustedKeys go with a ledger URL: a ledger client brings its own trust');
    return ledger;
  }
  if (trustedKeys === undefined || trustedKeys.length === 0) {
    throw new DkmsError('BAD_INPUT', 'give trustedKeys, the ledger node keys to verify answers against (or a LedgerClient of your own as ledger)');
  }
  return new LedgerClient({ url: ledger, trustedKeys });
}

/**
 * The did-resolver registry entry for did:dkms: `{ dkms }`, to pass to `new Resolver(…)` (or
 * spread with other methods' entries). The resolver honours `accept` (application/did+ld+json,
 * the default, application/did+json or application/did; any other is representationNotSupported).
 *
 * @throws DkmsError BAD_INPUT when a URL comes without trustedKeys, trustedKeys with a client,
 * or the URL is not http(s).
 */
export function getResolver(options: DkmsResolverOptions): { dkms: DIDResolver } {
  const ledger = readerOf(options);
  const dkms: DIDResolver = (_did, parsed, _resolver, resolution) =>
    resolveDkmsDidUrl(ledger, parsed.didUrl, resolution.accept === undefined ? {} : { accept: resolution.accept });
  return { dkms };
}
