/**
 * One HTTP request and its whole answer as text, over node:http(s), for the clients of the
 * ledger and of agencies. Not the global fetch: a process that makes one request (most CLI
 * commands) pays a quarter of a second of CPU to load fetch's HTTP stack (its parser is
 * WebAssembly, compiled on first use), against a hundredth for node:http. Answers are bounded
 * (a lying server must not make a client buffer without end), and so is the wait for them.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { HttpAnswer, HttpExchange } from './http-fetch.js';

export { fetchExchange, type HttpAnswer, type HttpExchange } from './http-fetch.js';

// One pool of kept-alive connections per scheme for the process; idle sockets do not keep it
// running (an Agent unrefs the sockets it keeps).
let httpAgent: HttpAgent | undefined;
let httpsAgent: HttpsAgent | undefined;

/**
 * Sends one request to `url` (http or https) and resolves with the status and body of the
 * answer, whatever the status. Rejects when the server cannot be reached, does not answer the
 * whole of it within `timeoutMs`, or answers more than `maxBytes`.
 */
export function exchange(url: string | URL, options: HttpExchange): Promise<HttpAnswer> {
  const target = typeof url === 'string' ? new URL(url) : url;
  const secure = target.protocol === 'https:';
  if (!secure && target.protocol !== 'http:') return Promise.reject(new Error(`${target.protocol} is not http or https`));
  const agent = secure ? (httpsAgent ??= new HttpsAgent({ keepAlive: true })) : (httpAgent ??= new HttpAgent({ keepAlive: true }));
  const send = secure ? httpsRequest : httpRequest;
  const headers: Record<string, string | number> = { ...options.headers };
  if (options.body !== undefined) headers['content-length'] = Buffer.byteLength(options.body);
  return new Promise<HttpAnswer>((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(options.signal.reason);
      return;
    }
    const request = send(
      {
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ''),
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: options.method,
        headers,
        agent,
      },
      (response: IncomingMessage) => {
        if (Number(response.headers['content-length'] ?? 0) > options.maxBytes) {
          request.destroy(options.tooLarge());
          return;
        }
        const chunks: Buffer[] = [];
        let bytes = 0;
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > options.maxBytes) request.destroy(options.tooLarge());
          else chunks.push(chunk);
        });
        response.on('error', fail);
        response.on('end', () => {
          done();
          resolve({
            status: response.statusCode ?? 0,
            body: chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
    const abort = () => request.destroy(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    options.signal?.addEventListener('abort', abort, { once: true });
    function done(): void {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
    }
    function fail(error: Error): void {
      done();
      reject(error);
    }
    request.on('error', fail);
    request.end(options.body);
  });
}
