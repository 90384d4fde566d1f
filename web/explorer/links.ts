/** Where each thing lives in the explorer. */
import { DID_PREFIX, POLICY_PREFIX } from '../../src/ledger/events.js';

export function subjectHref(subject: string): string {
  if (subject.startsWith(DID_PREFIX)) return `/ui/did/${encodeURIComponent(subject)}`;
  if (subject.startsWith(POLICY_PREFIX)) return `/ui/policy/${encodeURIComponent(subject)}`;
  return '/ui/';
}
