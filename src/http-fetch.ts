/**
 * An HTTP exchange (one request, its whole answer as text) over a `fetch` implementation: the
 * types the clients of the ledger and of agencies use, on any platform. http.ts does the same
 * over node:http(s); http-web.ts is what the browser build uses in its place.
 */
export interface HttpExchange {
  readonly method: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The body, as text (sent as UTF-8, with its length). */
  readonly body?: string;
  /** The whole exchange must end within this. */
  readonly timeoutMs: number;
  /** The largest answer accepted, in bytes; a larger one fails with `tooLarge()`. */
  readonly maxBytes: number;
  readonly tooLarge: () => Error;
  /** Ends the exchange early (its error is the signal's reason). */
  readonly signal?: AbortSignal;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

/**
 * The same exchange over a fetch implementation (a test's, or a server's in the same process):
 * the same bounds on the answer and on the wait.
 */
export async function fetchExchange(fetchFn: typeof fetch, url: string, options: HttpExchange): Promise<HttpAnswer> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const response = await fetchFn(url, {
    method: options.method,
    headers: { ...options.headers },
    body: options.body ?? null,
    signal: options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]),
  });
  if (Number(response.headers.get('content-length') ?? 0) > options.maxBytes) throw options.tooLarge();
  const body = await response.text();
  // Each UTF-16 unit is at most 3 bytes of UTF-8: only a long text needs counting.
  if (body.length > options.maxBytes / 3 && new TextEncoder().encode(body).length > options.maxBytes) throw options.tooLarge();
  return { status: response.status, body };
}
