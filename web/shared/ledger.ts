/** The page's ledger client: the CLI's own verifying client, against this page's origin, with the page's pins. */
import { LedgerClient } from '../../src/ledger/client.js';
import { keepHead, lastHead, pinFirstUse, type Pins } from './trust.js';

export function openLedger(pins: Pins): LedgerClient {
  const kept = lastHead();
  return new LedgerClient({
    url: location.origin,
    fetch: (input, init) => fetch(input, init),
    trustedKeys: pins.nodeKeys,
    witnessKeys: pins.witnessKeys,
    quorum: pins.quorum,
    ...(kept === undefined || (pins.nodeKeys.length > 0 && !pins.nodeKeys.includes(kept.key)) ? {} : { lastHead: kept }),
    onHead: keepHead,
    onFirstUse: pinFirstUse,
  });
}
