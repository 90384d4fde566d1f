/**
 * The etcd log store: the ledger in an etcd cluster (Raft), shared by several stateless ledger
 * nodes. Keys, under a prefix:
 *   size                       the log's size: the compare-and-swap anchor of every append
 *   log/<gseq>                 {time, id, subject, seq, event (canonical JSON)}
 *   leaf/<gseq>                the RFC 9162 leaf hash (base64url), read at start-up
 *   subj/<subject>/<seq>       gseq of a subject's event
 *   rec/<subject>              the subject's current record
 *   head/<size>                the latest signed tree head written with that size
 * An append is one transaction: "if size is still n, write the batch and size n+k". A call that
 * timed out may still have committed, so before trying again the store looks whether its batch
 * is already at position n (by the first event's id) and, if so, reports success.
 * Calls have deadlines and are retried on another member, and the per-member circuit breaker
 * opens only briefly, so losing the leader stalls writes for about a second, not the client
 * library's default of many seconds.
 */
import { ConsecutiveBreaker, ConstantBackoff, circuitBreaker, handleWhen, retry as retryPolicy } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions, type Namespace } from 'etcd3';
import { canonicalJson, fromBase64url, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import type { EventId, LedgerEvent, Subject } from './events.js';
import type { LogRecord, SubjectRecord } from './state.js';
import type { AppendBatch, LogStore, StoredHead } from './store.js';
import { retry } from '../retry.js';

export interface EtcdStoreOptions {
  /** Client URLs of the cluster's members, e.g. http://127.0.0.1:2379. */
  readonly endpoints: readonly string[];
  /** Key prefix, so one cluster can hold several ledgers (default `dkms/ledger/`). */
  readonly prefix?: string;
  /** Deadline of one call to one member. */
  readonly callDeadlineMs?: number;
  /** How long an append keeps trying before it reports the store unavailable. */
  readonly appendBudgetMs?: number;
}

/**
 * Events per transaction. An event takes three puts and may change one subject record; with the
 * head and the size that is at most 4n + 2 operations, within etcd's default --max-txn-ops of 128.
 */
export const ETCD_MAX_BATCH = 30;
const PAGE = 1000;
const pad = (n: number) => String(n).padStart(12, '0');

interface LogValue {
  readonly time: string;
  readonly id: string;
  readonly subject: string;
  readonly seq: number;
  readonly event: string;
}

const unavailable = (message: string, cause?: unknown) => new DkmsError('LEDGER_STORE_UNAVAILABLE', message, cause === undefined ? undefined : { cause });

/** Parses `etcd://h1:p1,h2:p2` (or a list of http URLs) into client URLs. */
export function parseEtcdUrl(url: string): string[] {
  const rest = url.startsWith('etcd://') ? url.slice('etcd://'.length) : undefined;
  if (rest === undefined) throw new DkmsError('BAD_INPUT', `'${url}' is not an etcd store URL (etcd://host:port,host:port,…)`);
  const hosts = rest
    .replace(/\/+$/, '')
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  if (hosts.length === 0 || !hosts.every((h) => /^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(h))) {
    throw new DkmsError('BAD_INPUT', `'${url}' must list host:port members, e.g. etcd://127.0.0.1:2379,127.0.0.1:22379`);
  }
  return hosts.map((h) => `http://${h}`);
}

/**
 * The etcd3 client settings the store uses: a fresh deadline for every attempt, immediate retries
 * on another member, a per-member circuit that opens only briefly. (The library's defaults stall
 * writes for many seconds after a leader is lost.)
 */
export function etcdClientOptions(endpoints: readonly string[], deadlineMs = 500): IOptions {
  return {
    hosts: [...endpoints],
    dialTimeout: 1000,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + deadlineMs }),
    faultHandling: {
      global: retryPolicy(handleWhen(isRecoverableError), { maxAttempts: 4, backoff: new ConstantBackoff(0) }),
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(5) }),
    },
    grpcOptions: {
      // Not more often than etcd's --grpc-keepalive-min-time (5 s), which refuses faster pings;
      // a lost member is noticed sooner anyway, by the per-call deadline.
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  };
}

export class EtcdLogStore implements LogStore {
  readonly maxBatch = ETCD_MAX_BATCH;
  readonly #client: Etcd3;
  readonly #kv: Namespace;
  readonly #budgetMs: number;
  /** Set by close: the retry loops stop at once instead of running out their budget on a closed client. */
  #closed = false;

  constructor(options: EtcdStoreOptions) {
    this.#client = new Etcd3(etcdClientOptions(options.endpoints, options.callDeadlineMs));
    this.#kv = this.#client.namespace(options.prefix ?? 'dkms/ledger/');
    this.#budgetMs = options.appendBudgetMs ?? 10_000;
  }

  /** Runs a read, retrying within the budget while the cluster has no leader. */
  async #read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await retry(fn, { retryOn: () => true, deadlineMs: this.#budgetMs, baseDelayMs: 20, maxDelayMs: 250, stopped: () => this.#closed });
    } catch (e) {
      throw unavailable(`the etcd cluster did not answer (${what}): ${e instanceof Error ? e.message : String(e)}`, e);
    }
  }

  async #get(key: string): Promise<string | null> {
    return this.#read(`get ${key}`, () => this.#kv.get(key).string());
  }

  /** Every key-value in [start, end), in key order, paged at one revision so the pages agree. */
  async #rangeAll(start: string, end: string): Promise<IKeyValue[]> {
    return this.#read(`range ${start}`, async () => {
      const out: IKeyValue[] = [];
      let from = start;
      let revision: string | undefined;
      for (;;) {
        let builder = this.#kv.getAll().inRange({ start: from, end }).sort('Key', 'Ascend').limit(PAGE);
        if (revision !== undefined) builder = builder.revision(revision);
        const page = await builder.exec();
        revision ??= page.header.revision;
        out.push(...page.kvs);
        const last = page.kvs.at(-1);
        if (!page.more || last === undefined) return out;
        from = `${last.key.toString()}\0`;
      }
    });
  }

  async size(): Promise<number> {
    const value = await this.#get('size');
    return value === null ? 0 : Number(value);
  }

  async leaves(from: number, to: number): Promise<Uint8Array[]> {
    if (to <= from) return [];
    return (await this.#rangeAll(`leaf/${pad(from)}`, `leaf/${pad(to)}`)).map((kv) => fromBase64url(kv.value.toString()));
  }

  async range(from: number, to: number): Promise<LogRecord[]> {
    if (to <= from) return [];
    return (await this.#rangeAll(`log/${pad(from)}`, `log/${pad(to)}`)).map((kv) => toRecord(kv));
  }

  async subjectLog(subject: Subject, untilGseq = Number.MAX_SAFE_INTEGER, afterSeq = -1): Promise<LogRecord[]> {
    const index = await this.#rangeAll(`subj/${subject}/${pad(afterSeq + 1)}`, `subj/${subject}0`);
    const gseqs = index.map((kv) => Number(kv.value.toString())).filter((g) => g < untilGseq);
    const records = await Promise.all(gseqs.map((g) => this.#get(`log/${pad(g)}`).then((v) => (v === null ? undefined : parseLog(g, v)))));
    if (records.some((r) => r === undefined)) throw new DkmsError('LEDGER_STORE_DAMAGED', `the etcd index of ${subject} names events that are missing`);
    return records as LogRecord[];
  }

  async subject(subject: Subject): Promise<SubjectRecord | undefined> {
    const value = await this.#get(`rec/${subject}`);
    return value === null ? undefined : (JSON.parse(value) as SubjectRecord);
  }

  async eventAt(subject: Subject, seq: number): Promise<LedgerEvent | undefined> {
    const gseq = await this.#get(`subj/${subject}/${pad(seq)}`);
    if (gseq === null) return undefined;
    const value = await this.#get(`log/${pad(Number(gseq))}`);
    return value === null ? undefined : (JSON.parse((JSON.parse(value) as LogValue).event) as LedgerEvent);
  }

  async latestHead(): Promise<StoredHead | undefined> {
    const page = await this.#read('latest head', () => this.#kv.getAll().prefix('head/').sort('Key', 'Descend').limit(1).exec());
    const kv = page.kvs[0];
    return kv === undefined ? undefined : parseHead(kv.value.toString());
  }

  async heads(): Promise<StoredHead[]> {
    return (await this.#rangeAll('head/', 'head0')).map((kv) => parseHead(kv.value.toString()));
  }

  async subjects(): Promise<SubjectRecord[]> {
    return (await this.#rangeAll('rec/', 'rec0')).map((kv) => JSON.parse(kv.value.toString()) as SubjectRecord);
  }

  /** Not one transaction here (etcd bounds a transaction's size): run it with every node stopped. */
  async replaceSubjects(records: readonly SubjectRecord[]): Promise<void> {
    await this.#read('clear subjects', () => this.#kv.delete().prefix('rec/').exec());
    for (const record of records) await this.#read('write subjects', () => this.#kv.put(`rec/${record.subject}`).value(canonicalJson(record)).exec());
  }

  /** Whether the batch starting at `expected` is already in the log: an earlier attempt committed. */
  async #landed(expected: number, firstId: EventId): Promise<boolean> {
    const value = await this.#get(`log/${pad(expected)}`);
    return value !== null && (JSON.parse(value) as LogValue).id === firstId;
  }

  async append(batch: AppendBatch): Promise<void> {
    const first = batch.events[0];
    if (first === undefined) return;
    if (batch.events.length > ETCD_MAX_BATCH) throw new DkmsError('INTERNAL', `an etcd append holds at most ${ETCD_MAX_BATCH} events`);
    const expected = first.record.gseq;
    const ops = [
      ...batch.events.flatMap(({ record, id, subject, canonical, leaf }) => [
        this.#kv
          .put(`log/${pad(record.gseq)}`)
          .value(JSON.stringify({ time: record.time, id, subject, seq: record.event.seq, event: canonical } satisfies LogValue)),
        this.#kv.put(`leaf/${pad(record.gseq)}`).value(toBase64url(leaf)),
        this.#kv.put(`subj/${subject}/${pad(record.event.seq)}`).value(String(record.gseq)),
      ]),
      ...batch.subjects.map((s) => this.#kv.put(`rec/${s.subject}`).value(canonicalJson(s))),
      this.#kv.put(`head/${pad(batch.head.size)}`).value(canonicalJson(batch.head)),
      this.#kv.put('size').value(String(expected + batch.events.length)),
    ];
    // After an unknown outcome (deadline, leader lost, circuit open), look before trying again.
    let unknown = false;
    try {
      await retry(
        async () => {
          if (unknown) {
            unknown = false;
            if (await this.#landed(expected, first.id)) return;
          }
          let result;
          try {
            const guard = expected === 0 ? this.#kv.if('size', 'Create', '==', 0) : this.#kv.if('size', 'Value', '==', String(expected));
            result = await guard.then(...ops).commit();
          } catch (e) {
            unknown = true;
            throw e;
          }
          if (result.succeeded) return;
          // The compare failed: another node appended, or our own earlier attempt did (the client
          // library itself re-sends a transaction whose call timed out, and the first may have landed).
          if (await this.#landed(expected, first.id)) return;
          throw new DkmsError('LEDGER_CONFLICT', `the log grew past ${expected} events before this batch was written`);
        },
        { retryOn: (e) => !(e instanceof DkmsError), deadlineMs: this.#budgetMs, baseDelayMs: 5, maxDelayMs: 100, stopped: () => this.#closed },
      );
    } catch (e) {
      if (e instanceof DkmsError) throw e;
      throw unavailable(`the etcd cluster did not take the batch in ${this.#budgetMs} ms: ${e instanceof Error ? e.message : String(e)}`, e);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#client.close();
  }
}

function parseHead(text: string): StoredHead {
  const head = JSON.parse(text) as { size?: unknown; root?: unknown; map?: unknown };
  if (typeof head.size !== 'number' || typeof head.root !== 'string') throw new DkmsError('LEDGER_STORE_DAMAGED', 'a stored tree head is malformed');
  return { size: head.size, root: head.root, ...(typeof head.map === 'string' ? { map: head.map } : {}) };
}

function parseLog(gseq: number, value: string): LogRecord {
  const parsed = JSON.parse(value) as LogValue;
  return { gseq, time: parsed.time, event: JSON.parse(parsed.event) as LedgerEvent };
}

function toRecord(kv: IKeyValue): LogRecord {
  const key = kv.key.toString();
  return parseLog(Number(key.slice(key.lastIndexOf('/') + 1)), kv.value.toString());
}
