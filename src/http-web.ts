/**
 * The browser's http.ts (the dashboard's build swaps it in): the same exchange over the
 * page's own `fetch`, with the same bounds on the answer and the wait.
 */
import { fetchExchange, type HttpAnswer, type HttpExchange } from './http-fetch.js';

export { fetchExchange, type HttpAnswer, type HttpExchange } from './http-fetch.js';

export function exchange(url: string | URL, options: HttpExchange): Promise<HttpAnswer> {
  return fetchExchange((input, init) => fetch(input, init), String(url), options);
}
