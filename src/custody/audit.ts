/**
 * The audit log of master-key use: each use of a wallet's master key (sign, rekey, export,
 * unseal, custodian changes) and each refused attempt is appended to `audit.log` in the data
 * directory before the operation runs. `append` returns only once the record is on disk, and
 * throws when it cannot be written: the caller then does not run the operation.
 *
 * Format: JSON Lines, UTF-8, file mode 0600, one record in canonical JSON (RFC 8785) per line:
 *
 *     {"detail":{…},"hash":…,"key":"z6Mk…","op":"sign","outcome":"done","prev":…,"seq":7,"sig":…,"time":"2025-…Z","v":1}
 *
 * - `seq` counts from 1 and is the record's line number; `prev` is the previous record's `hash`,
 *   for the first record 32 zero bytes (43 'A's).
 * - `hash` = base64url(SHA-256(canonical JSON of the record without `hash` and `sig`)).
 * - `sig` = base64url(Ed25519 by `key` over the canonical JSON of
 *   `{ type: 'dkms.audit-record.v1', hash }`): typed like tree heads, so that an audit signature
 *   never reads as a signature of another protocol by the same key.
 * - `op` is a word of `[a-z][a-z0-9-]{0,39}` (AUDIT_OPS lists those dkms writes); `outcome` is
 *   done, refused or started; `detail` is a flat map of at most 20 keys whose strings are at
 *   most 500 characters. It is readable by whoever reads the file: never put a secret in it.
 * - The first record, `audit-start`, names the key that signs every record of the file, for
 *   life: a log signed by any other key than the opener's is refused, the first record
 *   included. A wallet whose audit key changes starts a new file beside the old one.
 *
 * The file alone cannot show that records were cut from its end: the caller keeps the head it
 * last wrote ({@link AuditLog.head}) and hands it to `open` and `verifyAuditLog`. A file that
 * does not end in a newline holds a record torn by a crash; it is refused like any other
 * damage (nothing is dropped silently) with a message that says so.
 *
 * One writer at a time is the caller's lock (the wallet holds its own for as long as it is
 * open). An AuditLog still takes in records another AuditLog appended to the same file since
 * its own last one, when they verify and continue its chain under its key; any other change
 * is AUDIT_TAMPERED and nothing is appended.
 */
import fs, { closeSync, constants, fstatSync, ftruncateSync, linkSync, openSync, readFileSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { canonicalBytes, canonicalJson, decodePublicKey, ed25519Verify, fromBase64url, fromUtf8, sha256, toBase64url } from '../crypto/index.js';
import type { MultibaseKey, Signer } from '../crypto/index.js';
import { badInput, DkmsError } from '../errors.js';

/** The log's file name in the data directory. */
export const AUDIT_LOG_FILE = 'audit.log';

/** The operations dkms records (any word of `[a-z][a-z0-9-]{0,39}` is accepted). */
export const AUDIT_OPS = [
  'audit-start',
  'unseal',
  'seal',
  'sign',
  'rekey',
  'export',
  'key-create',
  'key-delete',
  'custody-init',
  'custody-rotate',
  'bind-token',
] as const;
export type AuditOp = (typeof AUDIT_OPS)[number];

const GENESIS_PREV = 'A'.repeat(43);
const SIGNING_TYPE = 'dkms.audit-record.v1';

const Op = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'not an operation word');
const Outcome = z.enum(['done', 'refused', 'started']);
const Detail = z
  .record(z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,39}$/, 'not a detail key'), z.union([z.string().max(500), z.number(), z.boolean()]))
  .refine((detail) => Object.keys(detail).length <= 20, 'more than 20 detail keys');
const Hash = z.string().regex(/^[A-Za-z0-9_-]{43}$/);
/** A time as toISOString writes it, and only that: one spelling per instant. */
const Time = z.string().refine((time) => !Number.isNaN(Date.parse(time)) && new Date(time).toISOString() === time, 'not a time');

const AuditRecordSchema = z.strictObject({
  v: z.literal(1),
  seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  time: Time,
  prev: Hash,
  op: Op,
  outcome: Outcome,
  detail: Detail,
  key: z
    .string()
    .regex(/^z[1-9A-HJ-NP-Za-km-z]{40,60}$/)
    .transform((key) => key as MultibaseKey),
  hash: Hash,
  sig: z.string().regex(/^[A-Za-z0-9_-]{86}$/),
});

export type AuditRecord = Readonly<z.infer<typeof AuditRecordSchema>>;
export type AuditOutcome = z.infer<typeof Outcome>;
export type AuditDetail = Readonly<Record<string, string | number | boolean>>;

/** Where a log ends: what the caller keeps to detect records cut from the end. */
export interface AuditHead {
  readonly seq: number;
  readonly hash: string;
}

export interface AuditSummary {
  readonly records: number;
  readonly head: AuditHead;
  readonly key: MultibaseKey;
  readonly firstTime: string;
  readonly lastTime: string;
}

export interface AuditCheckOptions {
  /** The key the log must be signed by. */
  readonly key?: MultibaseKey;
  /** A head the log must still hold (the last one the caller wrote). */
  readonly head?: AuditHead;
}

/** The chain as far as a record: what the next one must continue. */
interface Chain {
  readonly seq: number;
  readonly hash: string;
  readonly key: MultibaseKey | undefined;
}

interface Loaded {
  readonly records: AuditRecord[];
  /** The file's size and its last line (with its newline): what a later append checks is still there. */
  readonly size: number;
  readonly last: Buffer;
}

function tampered(path: string, line: number, what: string): DkmsError {
  return new DkmsError('AUDIT_TAMPERED', `the audit log ${path} fails its check at line ${line}: ${what}`);
}

function unavailable(path: string, verb: 'read' | 'write', e: unknown): DkmsError {
  const code = typeof e === 'string' ? e : ((e as NodeJS.ErrnoException).code ?? 'error');
  return new DkmsError('AUDIT_UNAVAILABLE', `cannot ${verb} the audit log ${path}: ${code}`, typeof e === 'string' ? {} : { cause: e });
}

/** An error of the file system (an errno code), as opposed to a DkmsError or a bug. */
function isFsError(e: unknown): boolean {
  return !(e instanceof DkmsError) && e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string';
}

function signingBytes(hash: string): Uint8Array {
  return canonicalBytes({ type: SIGNING_TYPE, hash });
}

function signRecord(signer: Signer, body: Omit<AuditRecord, 'hash' | 'sig'>): AuditRecord {
  const hash = toBase64url(sha256(canonicalBytes(body)));
  return { ...body, hash, sig: toBase64url(signer.sign(signingBytes(hash))) };
}

function lineOf(record: AuditRecord): Buffer {
  return Buffer.from(`${canonicalJson(record)}\n`);
}

function signatureValid(key: MultibaseKey, hash: string, sig: string): boolean {
  try {
    return ed25519Verify(decodePublicKey(key, 'ed25519').publicKey, signingBytes(hash), fromBase64url(sig));
  } catch {
    return false;
  }
}

/** The record on one line (without its newline), checked against the chain before it. */
function checkLine(chain: Chain, bytes: Uint8Array, at: (what: string) => DkmsError): AuditRecord {
  let json: unknown;
  try {
    json = JSON.parse(fromUtf8(bytes));
  } catch {
    throw at('not a JSON record');
  }
  const parsed = AuditRecordSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw at(`malformed record (${issue?.path.join('.') || 'record'}: ${issue?.message ?? 'invalid'})`);
  }
  const record = parsed.data;
  const seq = chain.seq + 1;
  if (record.seq !== seq) throw at(`seq is ${record.seq} where ${seq} belongs (a record was removed, repeated or moved)`);
  if (record.prev !== chain.hash) throw at('prev is not the hash of the record before it (a record was replaced or inserted)');
  if ((seq === 1) !== (record.op === 'audit-start')) throw at(seq === 1 ? 'the log does not begin with audit-start' : 'audit-start after the first record');
  if (chain.key !== undefined && record.key !== chain.key) {
    throw at(`signed by another key (${record.key}) than ${seq === 1 ? 'the expected' : "the log's"} ${chain.key}`);
  }
  const { hash, sig, ...body } = record;
  if (toBase64url(sha256(canonicalBytes(body))) !== hash) throw at('the hash does not match the record (the record was edited)');
  if (!signatureValid(record.key, hash, sig)) throw at('the signature does not verify');
  return record;
}

/** The records of `bytes`, whose first line is line `chain.seq + 1` of `path`, each checked. */
function readRecords(path: string, bytes: Buffer, start: Chain): { records: AuditRecord[]; last: Buffer } {
  const records: AuditRecord[] = [];
  let chain = start;
  let last: Buffer = Buffer.alloc(0);
  for (let offset = 0; offset < bytes.length;) {
    const line = chain.seq + 1;
    const at = (what: string) => tampered(path, line, what);
    const end = bytes.indexOf(0x0a, offset);
    if (end === -1) throw at('the last record is incomplete (a crash while writing?)');
    const record = checkLine(chain, bytes.subarray(offset, end), at);
    records.push(record);
    chain = { seq: record.seq, hash: record.hash, key: record.key };
    last = bytes.subarray(offset, end + 1);
    offset = end + 1;
  }
  return { records, last };
}

/** The checked log at `path`, or undefined when there is none (and no head says there was). */
function load(path: string, options: AuditCheckOptions): Loaded | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    if (missing && options.head !== undefined) throw tampered(path, 1, `the log is gone (record ${options.head.seq} was written to it)`);
    if (missing) return undefined;
    throw unavailable(path, 'read', e);
  }
  if (bytes.length === 0) throw tampered(path, 1, 'the log is empty');
  const { records, last } = readRecords(path, bytes, { seq: 0, hash: GENESIS_PREV, key: options.key });
  if (options.head !== undefined) checkHead(path, records, options.head);
  return { records, size: bytes.length, last };
}

function checkHead(path: string, records: readonly AuditRecord[], head: AuditHead): void {
  if (!Number.isSafeInteger(head.seq) || head.seq < 1) throw badInput('an audit head has a seq of 1 or more');
  const n = records.length;
  if (head.seq > n) throw tampered(path, n + 1, `records after ${n} were removed (record ${head.seq} was written)`);
  if (records[head.seq - 1]?.hash !== head.hash) throw tampered(path, head.seq, 'the record is not the one written there');
}

/**
 * A new log holding its `audit-start` record, or undefined if another process made the file
 * first. Written aside and linked into place: the file is never seen empty or half-written.
 */
function create(path: string, signer: Signer): Loaded | undefined {
  const time = new Date().toISOString();
  const start = signRecord(signer, { v: 1, seq: 1, time, prev: GENESIS_PREV, op: 'audit-start', outcome: 'done', detail: {}, key: signer.multikey });
  const line = lineOf(start);
  const temp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(temp, line, { mode: 0o600, flush: true });
    linkSync(temp, path);
    const dir = openSync(dirname(path), 'r');
    try {
      fs.fsyncSync(dir);
    } finally {
      closeSync(dir);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw unavailable(path, 'write', e);
  } finally {
    rmSync(temp, { force: true });
  }
  return { records: [start], size: line.length, last: line };
}

/** Up to `length` bytes of `fd` from `position`. */
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buffer.subarray(0, done);
}

/** An append-only, hash-chained log of signed records at one path; see the module comment. */
export class AuditLog {
  readonly path: string;
  readonly key: MultibaseKey;
  readonly #signer: Signer;
  readonly #records: AuditRecord[];
  #size: number;
  #last: Buffer;

  private constructor(path: string, signer: Signer, loaded: Loaded) {
    this.path = path;
    this.key = signer.multikey;
    this.#signer = signer;
    this.#records = loaded.records;
    this.#size = loaded.size;
    this.#last = loaded.last;
  }

  /**
   * Reads and checks the log at `path` (which must be signed by `signer`, and hold
   * `options.head` when given), or creates it with its `audit-start` record in an existing
   * directory. Throws AUDIT_TAMPERED naming the first bad line, AUDIT_UNAVAILABLE when the
   * file cannot be read or made.
   */
  static open(path: string, signer: Signer, options: { readonly head?: AuditHead } = {}): AuditLog {
    const check = { key: signer.multikey, head: options.head };
    const loaded = load(path, check) ?? create(path, signer) ?? load(path, check);
    if (loaded === undefined) throw unavailable(path, 'read', 'ENOENT');
    return new AuditLog(path, signer, loaded);
  }

  head(): AuditHead {
    const last = this.#records[this.#records.length - 1];
    if (last === undefined) throw new DkmsError('INTERNAL', 'an audit log without records');
    return { seq: last.seq, hash: last.hash };
  }

  records(): readonly AuditRecord[] {
    return this.#records;
  }

  /** How many records of one of `ops` with `outcome` were written at `since` or later. */
  countSince(ops: readonly string[], since: Date, outcome: AuditOutcome = 'done'): number {
    const from = since.getTime();
    return this.#records.filter((r) => r.outcome === outcome && ops.includes(r.op) && Date.parse(r.time) >= from).length;
  }

  /**
   * Appends a signed record and returns it once it is on disk. Throws BAD_INPUT for a bad op or
   * detail, AUDIT_UNAVAILABLE when the file cannot be written (the head does not move, and a
   * partly written line is cut off again), AUDIT_TAMPERED when the file no longer ends with
   * this log's last record or a record another writer added does not verify.
   */
  append(op: string, outcome: AuditOutcome, detail: AuditDetail = {}): AuditRecord {
    const body = z.strictObject({ op: Op, outcome: Outcome, detail: Detail }).safeParse({ op, outcome, detail });
    if (!body.success) throw badInput(`bad audit record: ${body.error.issues[0]?.message ?? 'invalid'}`);
    if (op === 'audit-start') throw badInput('audit-start is written by AuditLog.open only');
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDWR | constants.O_APPEND);
    } catch (e) {
      throw unavailable(this.path, 'write', e);
    }
    try {
      this.#catchUp(fd);
      const { seq, hash } = this.head();
      const time = new Date().toISOString();
      const record = signRecord(this.#signer, { v: 1, seq: seq + 1, time, prev: hash, ...body.data, key: this.key });
      const line = lineOf(record);
      this.#write(fd, line);
      this.#records.push(record);
      this.#size += line.length;
      this.#last = line;
      return record;
    } catch (e) {
      throw isFsError(e) ? unavailable(this.path, 'write', e) : e;
    } finally {
      try {
        closeSync(fd);
      } catch {
        // The record was fsynced (or the error that matters is already on its way).
      }
    }
  }

  /** Checks that the file still ends with this log's last record, and takes in what other writers appended after it. */
  #catchUp(fd: number): void {
    const { seq, hash } = this.head();
    const size = fstatSync(fd).size;
    if (size < this.#size) throw tampered(this.path, seq, `the log was cut: ${size} bytes where it had ${this.#size} after this record`);
    if (!readAt(fd, this.#size - this.#last.length, this.#last.length).equals(this.#last)) {
      throw tampered(this.path, seq, 'the record changed after it was written');
    }
    if (size === this.#size) return;
    const more = readRecords(this.path, readAt(fd, this.#size, size - this.#size), { seq, hash, key: this.key });
    this.#records.push(...more.records);
    this.#size = size;
    this.#last = more.last;
  }

  /** Writes `line` in one write and fsyncs it; on failure cuts off whatever part of it was written. */
  #write(fd: number, line: Buffer): void {
    let failure: unknown = 'short write';
    try {
      if (fs.writeSync(fd, line) === line.length) {
        fs.fsyncSync(fd);
        return;
      }
    } catch (e) {
      failure = e;
    }
    try {
      ftruncateSync(fd, this.#size);
    } catch {
      // Left torn, the tail is refused by the next append and by verify: nothing passes unseen.
    }
    throw unavailable(this.path, 'write', failure);
  }
}

/**
 * Checks the log at `path` without writing: every line a well-formed record, seq consecutive,
 * each `prev` the hash before it, each hash recomputed, each signature valid, one key
 * throughout (`options.key` when given), and `options.head` still in it. Throws AUDIT_TAMPERED
 * naming the first bad line, AUDIT_UNAVAILABLE when the file cannot be read.
 */
export function verifyAuditLog(path: string, options: AuditCheckOptions = {}): AuditSummary {
  const loaded = load(path, options);
  if (loaded === undefined) throw unavailable(path, 'read', 'ENOENT');
  const first = loaded.records[0];
  const last = loaded.records[loaded.records.length - 1];
  if (first === undefined || last === undefined) throw new DkmsError('INTERNAL', 'a checked audit log without records');
  return { records: loaded.records.length, head: { seq: last.seq, hash: last.hash }, key: first.key, firstTime: first.time, lastTime: last.time };
}
