/**
 * The page's verification state, shown in the header's status region (announced to screen
 * readers) and kept on <html data-verify-state>:
 * - `verifying`: checks are running;
 * - `verified`: everything shown was verified in this browser against the trusted keys;
 * - `first-use`: verified, but against a node key trusted on first use rather than given;
 * - `failed`: a check failed; the reason is shown, and the page stays failed (a later answer
 *   that verifies does not make it green again).
 * Each state has its own icon and words, never colour alone.
 */
import { DkmsError } from '../../src/errors.js';
import { byId, fill, h } from './dom.js';

export type VerifyState = 'verifying' | 'verified' | 'first-use' | 'failed';

const ICONS: Record<VerifyState, string> = { verifying: '…', verified: '✓', 'first-use': '!', failed: '✗' };
const WORDS: Record<VerifyState, string> = {
  verifying: 'Verifying',
  verified: 'Verified in this browser',
  'first-use': 'Verified, node key trusted on first use',
  failed: 'Verification failed',
};

export function verifyState(): VerifyState {
  return (document.documentElement.dataset.verifyState as VerifyState | undefined) ?? 'verifying';
}

/** Sets the page's state (a failed page stays failed) with a line of detail. */
export function setState(state: VerifyState, detail = ''): void {
  if (verifyState() === 'failed' && state !== 'failed') return;
  document.documentElement.dataset.verifyState = state;
  fill(
    byId('verify-status'),
    h('span', { class: `state-icon state-${state}`, 'aria-hidden': 'true' }, ICONS[state]),
    h('span', { class: 'state-words' }, WORDS[state]),
    detail === '' ? null : h('span', { class: 'state-detail' }, detail),
  );
}

/** The error's code and message, for a person: "LEDGER_BAD_PROOF: event 3 of … is not in the log". */
export function reasonOf(error: unknown): { code: string; message: string } {
  if (error instanceof DkmsError) return { code: error.code, message: error.message };
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** Fails the page with the error's code and message; returns the error box to show in place of the data. */
export function fail(error: unknown): HTMLElement {
  const { code, message } = reasonOf(error);
  setState('failed', `${code}: ${message}`);
  return h(
    'div',
    { class: 'failure', role: 'alert' },
    h('p', { class: 'failure-title' }, h('span', { 'aria-hidden': 'true' }, '✗ '), 'Not verified: this answer was refused'),
    h('p', {}, h('code', { class: 'failure-code' }, code), ' ', message),
    h(
      'p',
      { class: 'muted' },
      'Nothing on this page comes from the refused answer. The ledger (or something between it and you) sent data that does not check out.',
    ),
  );
}

/** A verified / not verified mark for one item. */
export function badge(verified: boolean, what: string): HTMLElement {
  return h(
    'span',
    { class: verified ? 'badge badge-ok' : 'badge badge-bad', title: `${what}: ${verified ? 'verified in this browser' : 'not verified'}` },
    h('span', { 'aria-hidden': 'true' }, verified ? '✓ ' : '✗ '),
    verified ? 'verified' : 'not verified',
  );
}
