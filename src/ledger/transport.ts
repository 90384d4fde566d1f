/**
 * How a LedgerClient talks to a node: one request out, the answer's status and text back. The
 * client verifies the text itself, so a transport needs no Response objects or streams; the
 * default one is node:http(s) with keep-alive connections, which costs a verified read less
 * than fetch does. Tests and in-process callers pass their own (a fetch, or a node in the same
 * process: see localLedgerTransport).
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { DkmsError } from '../errors.js';

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
export function fetchTransport(baseUrl: string, fetchFn: typeof fetch): LedgerTransport {
  return async ({ method, path, body, timeoutMs }) => {
    const response = await fetchFn(`${baseUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body ?? null,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_ANSWER_BYTES) throw tooLarge();
    const text = await response.text();
    if (text.length > MAX_ANSWER_BYTES) throw tooLarge();
    return { status: response.status, body: text };
  };
}

/** A transport over node:http or node:https, keeping connections open between requests. */
export function httpTransport(baseUrl: string): LedgerTransport {
  const url = new URL(baseUrl);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DkmsError('BAD_INPUT', `the ledger URL ${baseUrl} is not http or https`);
  const secure = url.protocol === 'https:';
  // Idle kept-alive sockets do not keep the process running (the agent unrefs them).
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
  const send = secure ? httpsRequest : httpRequest;
  const prefix = url.pathname.replace(/\/+$/, '');
  const target = { protocol: url.protocol, hostname: url.hostname.replace(/^\[|\]$/g, ''), port: url.port, agent };
  return ({ method, path, body, timeoutMs }) =>
    new Promise<TransportAnswer>((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: 'application/json' };
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      const request = send({ ...target, method, path: `${prefix}${path}`, headers }, (response: IncomingMessage) => {
        if (Number(response.headers['content-length'] ?? 0) > MAX_ANSWER_BYTES) {
          request.destroy(tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > MAX_ANSWER_BYTES) request.destroy(tooLarge());
          else chunks.push(chunk);
        });
        response.on('error', fail);
        response.on('end', () => {
          clearTimeout(timer);
          resolve({
            status: response.statusCode ?? 0,
            body: chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'),
          });
        });
      });
      const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      function fail(error: Error): void {
        clearTimeout(timer);
        reject(error);
      }
      request.on('error', fail);
      request.end(body);
    });
}
