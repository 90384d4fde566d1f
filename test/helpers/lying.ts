/**
 * Ledger servers that lie, for testing the verifying client: a real node behind its HTTP API
 * on loopback, a proxy in front of it that rewrites answers, and forged logs (a Merkle tree
 * recomputed over altered records, heads signed by whatever key the liar holds).
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { Signer } from '../../src/crypto/index.js';
import type { AddressInfo } from 'node:net';
import { onTestFinished } from 'vitest';
import { toBase64url } from '../../src/crypto/index.js';
import { subjectOf, type Subject } from '../../src/ledger/events.js';
import { signHead, type SignedTreeHead } from '../../src/ledger/head.js';
import { MemoryMapNodes, mapKey, mapProof, mapRoot, updateMap, type MapProof } from '../../src/ledger/map.js';
import { consistencyProof, inclusionProof, rootAt } from '../../src/ledger/merkle.js';
import type { LedgerNode, NodeOptions } from '../../src/ledger/node.js';
import { recordLeaf } from '../../src/ledger/replay.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { CompactTree } from '../../src/ledger/tree.js';
import { buildLedgerServer, type LedgerServerOptions } from '../../src/server/ledger-api.js';
import { nodeSigner, openNode } from './ledger.js';

/** Listens on 127.0.0.1, port 0, and returns the base URL. */
export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

export interface RunningLedger {
  readonly node: LedgerNode;
  readonly signer: Signer;
  readonly url: string;
  close(): Promise<void>;
}

/** A real ledger node and its HTTP API on loopback, closed when the current test finishes. */
export async function startLedger(dir: string, options: { signer?: Signer; node?: NodeOptions; server?: LedgerServerOptions } = {}): Promise<RunningLedger> {
  const signer = options.signer ?? nodeSigner();
  const node = await openNode(dir, signer, options.node);
  const app = buildLedgerServer(node, options.server);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await app.close();
    await node.close();
  };
  onTestFinished(close);
  return { node, signer, url, close };
}

/** One request as the proxy saw it, with the real server's answer (parsed JSON, or the text). */
export interface Exchange {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly status: number;
  readonly body: unknown;
}

/** What the proxy sends instead: a JSON body, or raw text. */
export type Reply = { readonly status?: number; readonly body: unknown } | { readonly status?: number; readonly raw: string; readonly contentType?: string };

/** Rewrites an answer; returning undefined passes the real one through. */
export type Lie = (exchange: Exchange) => Reply | undefined | Promise<Reply | undefined>;

export interface LyingProxy {
  readonly url: string;
  /** Where requests are forwarded; may be switched between requests. */
  target: string;
  lie: Lie;
  /** Rewrites the path (and query) forwarded to the real server. */
  forward: (pathAndQuery: string) => string;
  /** Every path asked, in order. */
  readonly seen: string[];
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A proxy in front of `target` that lets `lie` rewrite each answer; closed when the test finishes. */
export async function startProxy(target: string, lie: Lie = () => undefined): Promise<LyingProxy> {
  const state = { target, lie, forward: (p: string) => p, seen: [] as string[] };
  const server = createServer((request, response) => {
    void (async () => {
      const pathAndQuery = request.url ?? '/';
      state.seen.push(pathAndQuery);
      const body = await readBody(request);
      const method = request.method ?? 'GET';
      const upstream = await fetch(`${state.target}${state.forward(pathAndQuery)}`, {
        method,
        headers: request.headers['content-type'] === undefined ? {} : { 'content-type': request.headers['content-type'] },
        body: method === 'GET' || method === 'HEAD' ? null : body,
      });
      const text = await upstream.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: the lie sees the text.
      }
      const url = new URL(pathAndQuery, 'http://proxy');
      const reply = await state.lie({ method, path: url.pathname, query: url.searchParams, status: upstream.status, body: parsed });
      if (reply === undefined) {
        response.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
        response.end(text);
      } else if ('raw' in reply) {
        response.writeHead(reply.status ?? upstream.status, { 'content-type': reply.contentType ?? 'text/plain' });
        response.end(reply.raw);
      } else {
        response.writeHead(reply.status ?? upstream.status, { 'content-type': 'application/json' });
        response.end(JSON.stringify(reply.body));
      }
    })().catch((e: unknown) => {
      response.writeHead(599, { 'content-type': 'text/plain' });
      response.end(`proxy failure: ${String(e)}`);
    });
  });
  const url = await listen(server);
  onTestFinished(() => closeServer(server));
  return Object.assign(state, { url }) as LyingProxy;
}

/** A loopback server answering with `handler`, closed when the test ends. */
export async function startServer(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  const url = await listen(server);
  onTestFinished(() => closeServer(server));
  return url;
}

/** A server that accepts connections and never answers. */
export function startSilentServer(): Promise<string> {
  return startServer(() => undefined);
}

/** A loopback URL on which nothing listens (a port that was just freed). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  const url = await listen(server);
  await closeServer(server);
  return url;
}

/** `text` with its first character changed to another of the base64url alphabet. */
export function flipFirst(text: string): string {
  return (text.startsWith('A') ? 'B' : 'A') + text.slice(1);
}

/** Deep copy of a JSON value, to alter freely. */
export const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** Records with gseq renumbered 0, 1, 2… in the order given (as a liar rebuilding its log would). */
export function renumber(records: readonly LogRecord[]): LogRecord[] {
  return records.map((r, gseq) => ({ ...r, gseq }));
}

/** What a node's `history` returns for `subject` from a list of records: its chain, plus its controlling policy's for a DID. */
export function historyOf(records: readonly LogRecord[], subject: Subject): LogRecord[] {
  const own = records.filter((r) => subjectOf(r.event) === subject);
  const first = own[0]?.event;
  const controller = first?.type === 'did.create' ? first.policy : undefined;
  return records.filter((r) => subjectOf(r.event) === subject || (controller !== undefined && subjectOf(r.event) === controller));
}

/**
 * A log as a lying node would present it: any records at all, an honest Merkle tree over them,
 * and tree heads signed by whichever key the liar holds.
 */
export class ForgedLog {
  readonly records: readonly LogRecord[];
  readonly #tree = new CompactTree();
  readonly #map = new MemoryMapNodes();
  readonly #signer: Signer;
  readonly #time: string | undefined;

  /** With no `time`, every head is signed at the moment it is asked for (as a live node does). */
  constructor(records: readonly LogRecord[], signer: Signer, time?: string) {
    this.records = records;
    this.#signer = signer;
    this.#time = time;
    this.#tree.commit(this.#tree.pending(records.map(recordLeaf)), records.length);
    this.#map.apply(
      updateMap(
        this.#map,
        records.map((r) => ({ key: mapKey(subjectOf(r.event)), entry: { seq: r.event.seq, gseq: r.gseq, leaf: toBase64url(recordLeaf(r)) } })),
      ).writes,
    );
  }

  /** The head of the whole forged log (its map covers every record). */
  head(): SignedTreeHead {
    const size = this.records.length;
    const head = { size, root: toBase64url(rootAt(size, this.#tree.read)), map: toBase64url(mapRoot(this.#map)), time: this.#time ?? new Date().toISOString() };
    return signHead(head, this.#signer);
  }

  mapProof(subject: Subject): MapProof {
    return mapProof(this.#map, mapKey(subject));
  }

  inclusion(gseq: number, size = this.records.length): string[] {
    return inclusionProof(gseq, size, this.#tree.read).map(toBase64url);
  }

  consistency(from: number, to = this.records.length): string[] {
    return consistencyProof(from, to, this.#tree.read).map(toBase64url);
  }

  /** The answer a node gives to a subject read (after the seqs given), with proofs under this log's head. */
  answer(
    subject: Subject,
    after = -1,
    policyAfter = -1,
  ): { head: SignedTreeHead; subjects: Record<string, MapProof>; history: LogRecord[]; proofs: string[][] } {
    const all = historyOf(this.records, subject);
    const subjects = [...new Set(all.map((r) => subjectOf(r.event)))];
    const history = all.filter((r) => r.event.seq > (subjectOf(r.event) === subject ? after : policyAfter));
    return {
      head: this.head(),
      subjects: Object.fromEntries(subjects.map((s) => [s, this.mapProof(s)])),
      history,
      proofs: history.map((r) => this.inclusion(r.gseq)),
    };
  }

  /**
   * Answers the reads a client makes (head, subject reads, consistency proofs) from this log;
   * other requests pass through.
   */
  readonly lie: Lie = ({ path, query }) => {
    if (path === '/v1/head' || path === '/v1/head/next') return { status: 200, body: this.head() };
    const subject = /^\/v1\/(?:policies|dids)\/(.+)$/.exec(path)?.[1];
    if (subject !== undefined) {
      return {
        status: 200,
        body: this.answer(decodeURIComponent(subject) as Subject, Number(query.get('after') ?? -1), Number(query.get('policyAfter') ?? -1)),
      };
    }
    if (path === '/v1/proofs/consistency') {
      const from = Number(query.get('from'));
      const to = Number(query.get('to') ?? this.records.length);
      return { status: 200, body: { from, to, proof: this.consistency(from, to) } };
    }
    return undefined;
  };
}
