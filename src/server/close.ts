/**
 * Closing a server in bounded time, whatever state it is in: requests in flight may finish, but
 * not forever (a handler waiting on a store that stopped answering), and kept-alive connections
 * do not hold it open.
 */
import type { FastifyInstance } from 'fastify';

export { remaining, settlesWithin } from '../bounded.js';

/**
 * How long a closing server lets what is in flight finish (requests, a batch being written, a
 * round of following the ledger) before it gives up on it. Everything normally ends in
 * milliseconds, long polls are ended at once: this only bounds what hangs.
 */
export const CLOSE_GRACE_MS = 5_000;

/** How often a closing server closes the connections that have fallen idle, and ends long polls begun since. */
const SWEEP_MS = 10;

/**
 * Closes `app`: it stops listening, and answers 503 to requests that arrive on open connections.
 * Until it has closed, every SWEEP_MS it closes the connections that are idle (a keep-alive
 * connection whose request was just answered would otherwise stay open for the keep-alive
 * timeout) and calls `sweep` (which ends long polls, including those that began waiting after
 * the close started). Requests still unanswered after `graceMs` have their connections cut: the
 * client sees the connection fail rather than a server that never stops.
 */
export async function closeWithin(app: FastifyInstance, graceMs: number, sweep: () => void = () => undefined): Promise<void> {
  const tick = () => {
    sweep();
    app.server.closeIdleConnections();
  };
  tick();
  const sweeping = setInterval(tick, SWEEP_MS);
  const cut = setTimeout(() => app.server.closeAllConnections(), graceMs);
  try {
    await app.close();
  } finally {
    clearInterval(sweeping);
    clearTimeout(cut);
  }
}
