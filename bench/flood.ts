/**
 * An attacker's traffic, for the abuse bench and tests: HTTP requests sent as fast as a server
 * answers them, a fixed number in flight, from several loopback source addresses (all of 127/8
 * is loopback on Linux, so each address counts as another client). Bounded: it runs until
 * stopped, and never holds more than `inFlight` requests.
 */
import { Agent as HttpAgent, request } from 'node:http';
import type { Signer } from '../src/crypto/index.js';
import { signRequest } from '../src/agency/request-auth.js';

/** The source addresses an attacker sends from. */
export const ATTACKER_ADDRESSES: readonly string[] = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

export interface FloodRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
}

export interface Flood {
  /** How many answers of each status (-1: no answer, the connection failed). */
  readonly statuses: Map<number, number>;
  /** Requests sent so far. */
  sent(): number;
  /** Stops sending and waits for the requests in flight. */
  stop(): Promise<void>;
}

/** Sends what `next(i)` makes to `base`, `inFlight` at a time, round-robin over the addresses, until stopped. */
export function flood(base: string, next: (i: number) => FloodRequest, inFlight = 16, addresses: readonly string[] = ATTACKER_ADDRESSES): Flood {
  const agents = addresses.map(() => new HttpAgent({ keepAlive: true, maxSockets: inFlight }));
  const statuses = new Map<number, number>();
  const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
  let sent = 0;
  let running = true;
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const made = next(i);
      const req = request(
        `${base}${made.path}`,
        { method: made.method, headers: made.headers, localAddress: addresses[i % addresses.length], agent: agents[i % agents.length] },
        (res) => {
          count(res.statusCode ?? 0);
          res.resume();
          res.on('end', resolve);
          res.on('error', resolve);
        },
      );
      req.on('error', () => {
        count(-1);
        resolve();
      });
      req.end(made.body);
    });
  const workers = Array.from({ length: inFlight }, async () => {
    while (running) await one(sent++);
  });
  return {
    statuses,
    sent: () => sent,
    async stop() {
      running = false;
      await Promise.all(workers);
      for (const agent of agents) agent.destroy();
    },
  };
}

/** The headers of a request signed by `signer` as if its clock were `aheadMs` ahead. */
export function signedAhead(signer: Signer, method: string, path: string, body: unknown, aheadMs: number): Record<string, string> {
  const realNow = Date.now;
  Date.now = () => realNow() + aheadMs;
  try {
    return signRequest(signer, method, path, body);
  } finally {
    Date.now = realNow;
  }
}
