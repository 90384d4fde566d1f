/**
 * How a LedgerClient talks to a node: one request out, the answer's status and text back. The
 * client verifies the text itself, so a transport needs no Response objects or streams; the
 * default one is node:http(s) with keep-alive connections, which costs a verified read less
 * than fetch does. Tests and in-process callers pass their own (a fetch, or a node in the same
 * process: see localLedgerTransport).
 */
import { DkmsError } from '../errors.js';
import { exchange, fetchExchange } from '../http.js';

export interface TransportRequest {
  readonly method: 'GET' | 'POST';
  /** The path and query, e.g. `/v1/head` (the transport knows the node's base URL). */
  readonly path: string;
  /** A JSON body, for POST. */
  readonly body?: string;
  readonly timeoutMs: number;
}

export interface TransportAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * Sends one request. Rejects with a DkmsError for an answer it refuses (LEDGER_BAD_RESPONSE),
 * and with any other error when the node could not be reached or did not answer in time.
 */
export type LedgerTransport = (request: TransportRequest) => Promise<TransportAnswer>;

/** The largest answer accepted: a lying node must not make a client buffer without end. */
export const MAX_ANSWER_BYTES = 64 * 2 ** 20;

const tooLarge = () => new DkmsError('LEDGER_BAD_RESPONSE', `the ledger's answer is larger than ${MAX_ANSWER_BYTES / 2 ** 20} MiB`);

/** A transport over a fetch implementation (the global one, or a test's). */
export function fetchTransport(baseUrl: string, fetchFn: typeof fetch, signal?: AbortSignal): LedgerTransport {
  return ({ method, path, body, timeoutMs }) =>
    fetchExchange(fetchFn, `${baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
      timeoutMs,
      maxBytes: MAX_ANSWER_BYTES,
      tooLarge,
      ...(signal === undefined ? {} : { signal }),
    });
}

/** A transport over node:http or node:https (src/http.ts), keeping connections open between requests; `signal` ends them. */
export function httpTransport(baseUrl: string, signal?: AbortSignal): LedgerTransport {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DkmsError('BAD_INPUT', `the ledger URL ${baseUrl} is not http or https`);
  const prefix = url.href.replace(/\/+$/, '');
  return ({ method, path, body, timeoutMs }) =>
    exchange(`${prefix}${path}`, {
      method,
      headers: body === undefined ? { accept: 'application/json' } : { accept: 'application/json', 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
      timeoutMs,
      maxBytes: MAX_ANSWER_BYTES,
      tooLarge,
      ...(signal === undefined ? {} : { signal }),
    });
}
