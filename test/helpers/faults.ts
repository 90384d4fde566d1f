/**
 * Failures injected into a multi-step operation, one step at a time: an agency request or a
 * ledger submission that fails either before it reaches the server (nothing happened there) or
 * after (the server did it, the answer was lost), so that a test can check that running the
 * operation again finishes it as if nothing had failed.
 */
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { DkmsError } from '../../src/errors.js';
import type { LedgerEvent } from '../../src/ledger/events.js';

/** Where a request fails: before the server sees it, or after the server did it (its answer lost). */
export type Failure = 'before' | 'after';
export const FAILURES: readonly Failure[] = ['before', 'after'];

export interface Faults {
  /** Fails the `nth` request (from 0) that `matches`, once. */
  arm(matches: (request: { method: string; path: string }) => boolean, nth: number, failure: Failure): void;
  /** Fails the `nth` submitted event (from 0) that `matches`, once. */
  armLedger(matches: (event: LedgerEvent) => boolean, nth: number, failure: Failure): void;
  /** Whether the armed failure has struck. */
  readonly struck: boolean;
}

/**
 * `agent` as seen through faults: the same wallet and ledger client, its agency requests (signed
 * calls and envelope posts alike) through a fetch that fails when armed, its ledger submissions
 * through a wrapper that does the same.
 */
export function withFaults(agent: EdgeAgent): { agent: EdgeAgent; faults: Faults } {
  let request: { matches: (r: { method: string; path: string }) => boolean; left: number; failure: Failure } | undefined;
  let event: { matches: (e: LedgerEvent) => boolean; left: number; failure: Failure } | undefined;
  let struck = false;
  const faulty: typeof fetch = async (input, init) => {
    const armed = request;
    const seen = { method: init?.method ?? 'GET', path: new URL(String(input)).pathname };
    if (armed === undefined || !armed.matches(seen) || armed.left-- > 0) return fetch(input, init);
    request = undefined;
    struck = true;
    if (armed.failure === 'before') throw new TypeError('fetch failed (injected: the request never left)');
    await (await fetch(input, init)).arrayBuffer();
    throw new TypeError('fetch failed (injected: the answer was lost)');
  };
  const submit = async (e: LedgerEvent) => {
    const armed = event;
    if (armed === undefined || !armed.matches(e) || armed.left-- > 0) return agent.ledger.submit(e);
    event = undefined;
    struck = true;
    if (armed.failure === 'before') throw new DkmsError('LEDGER_UNREACHABLE', 'injected: the event never reached the ledger');
    await agent.ledger.submit(e);
    throw new DkmsError('LEDGER_UNREACHABLE', 'injected: the ledger took the event, its answer was lost');
  };
  // The client keeps private state: every other member is the real client's, bound to it.
  const ledger = new Proxy(agent.ledger, {
    get: (target, name) => {
      if (name === 'submit') return submit;
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  const faults: Faults = {
    arm(matches, nth, failure) {
      request = { matches, left: nth, failure };
    },
    armLedger(matches, nth, failure) {
      event = { matches, left: nth, failure };
    },
    get struck() {
      return struck;
    },
  };
  return { agent: new EdgeAgent(agent.wallet, ledger, { ...agent.options, fetch: faulty }), faults };
}
