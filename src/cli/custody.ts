/**
 * The CLI's side of custody (docs/custodians.md): where an operator's pending requests and their
 * reply keys are kept, how approvals are matched to them and combined, the audit log every
 * master-key use goes through, and the rate limit a custody set may set.
 *
 * Files in the data directory, each 0600:
 * - `custody/requests/<id>.json`: a request made here, with its reply key's private half and,
 *   for a rotation, the change proposed. It is used once and removed.
 * - `audit.log`: the hash-chained, signed audit log (src/custody/audit.ts), signed by the
 *   key in `audit.key` (32 random bytes, an Ed25519 seed), made with the log.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  custodySetDigest,
  combineCustodyApprovals,
  parseCustodyRequest,
  parseCustodySet,
  requestDigest,
  type CustodyRequest,
  type CustodySet,
} from '../custody/index.js';
import { AuditLog, AUDIT_LOG_FILE, type AuditDetail } from '../custody/audit.js';
import {
  canonicalBytes,
  canonicalJson,
  ed25519PublicKey,
  fromBase64url,
  memoryKeyAgreementKey,
  memorySigner,
  sha256,
  toBase64url,
  wipe,
  x25519PublicKey,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { openRawKey } from '../wallet/unattended.js';
import type { CustodyFactor, WalletProtection } from '../wallet/index.js';
import type { Context } from './context.js';
import { readInput } from './files.js';

const Pending = z.strictObject({
  request: z.unknown(),
  reply: z.string().length(43),
  /** For a rotation: the change proposed, whose digest the custodians approve. */
  change: z.unknown().optional(),
});

export interface PendingRequest {
  readonly request: CustodyRequest;
  readonly reply: Uint8Array;
  readonly change?: unknown;
  readonly path: string;
}

const requestsDir = (ctx: Context) => join(ctx.home, 'custody', 'requests');

/**
 * What custody needs to know of the wallet without its secret: its custody factor and protection
 * (id, generation), from the keyring header; from the open wallet in the unlock session, which
 * holds the file.
 */
export async function walletFacts(ctx: Context): Promise<{ custody: CustodyFactor | undefined; protection: WalletProtection }> {
  if (ctx.inSession) return ctx.withWallet((w) => ({ custody: w.custody(), protection: w.info().protection }));
  const { Wallet } = await import('../wallet/index.js');
  return Wallet.protectionOf(ctx.walletPath);
}

/** The wallet's custody set; BAD_INPUT when it has none. */
export async function custodySetOf(ctx: Context): Promise<{ set: CustodySet; factor: CustodyFactor; protection: WalletProtection }> {
  const { custody: factor, protection } = await walletFacts(ctx);
  if (factor === undefined) throw badInput(`the wallet in ${ctx.home} has no custodians: set them up with 'dkms custodian init'`);
  const set = parseCustodySet(JSON.parse(factor.document));
  return { set, factor, protection };
}

/** The wallet's custody factor for `set`: the set's canonical JSON, bound into its keyring. */
export function factorOf(set: CustodySet): CustodyFactor {
  return { set: set.id, epoch: set.epoch, mode: set.mode, document: canonicalJson(set) };
}

/** Keeps a request made here, with its reply key, until its approvals come back. */
export function keepPending(ctx: Context, request: CustodyRequest, reply: Uint8Array, change?: unknown): string {
  const dir = requestsDir(ctx);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, `${request.id}.json`);
  const body = { request, reply: toBase64url(reply), ...(change === undefined ? {} : { change }) };
  writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(body)}\n`));
  return path;
}

/** Reads approval files (JSON); BAD_INPUT for one that is not JSON. */
/** The JSON in `file` (a card, a request, an approval): IO_ERROR when it cannot be read, BAD_INPUT when it is not JSON. */
export function readJsonFile(ctx: Context, file: string, what: string): unknown {
  const text = new TextDecoder().decode(readInput(ctx.io, file));
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badInput(`${file} is not JSON: give the ${what}`);
  }
}

export function readApprovals(ctx: Context, files: readonly string[]): unknown[] {
  if (files.length === 0) throw new DkmsError('CUSTODY_REQUIRED', "give the custodians' approvals with --approval FILE (one per custodian)");
  return files.map((file) => readJsonFile(ctx, file, "file 'dkms custodian approve' wrote"));
}

/**
 * The pending request the approvals answer (by the request digest they carry), or
 * APPROVAL_NOT_FOUND: none made here, used already, or for another data directory.
 */
export function pendingFor(ctx: Context, approvals: readonly unknown[]): PendingRequest {
  const wanted = new Set(approvals.map((a) => (typeof a === 'object' && a !== null ? (a as { request?: unknown }).request : undefined)));
  const dir = requestsDir(ctx);
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  for (const file of files) {
    const path = join(dir, file);
    let pending: z.infer<typeof Pending>;
    try {
      pending = Pending.parse(JSON.parse(readFileSync(path, 'utf8')));
    } catch {
      continue;
    }
    const request = parseCustodyRequest(pending.request);
    if (wanted.has(toBase64url(requestDigest(request)))) {
      return { request, reply: fromBase64url(pending.reply, 'reply key'), path, ...(pending.change === undefined ? {} : { change: pending.change }) };
    }
  }
  throw new DkmsError(
    'APPROVAL_NOT_FOUND',
    `the approvals answer no request pending in ${ctx.home}: it was used already, or made elsewhere (make one with 'dkms custodian request')`,
  );
}

/** Rebuilds the custody secret from approvals of `pending` (the caller uses the request up once its operation is done). */
export async function combinePending(pending: PendingRequest, set: CustodySet, approvals: readonly unknown[]): Promise<Uint8Array> {
  const publicKey = x25519PublicKey(pending.reply);
  try {
    return await combineCustodyApprovals(pending.request, set, approvals, memoryKeyAgreementKey(pending.reply, publicKey));
  } finally {
    wipe(pending.reply);
  }
}

/** The requests pending here, oldest first; those expired are removed (their approvals could no longer be used). */
export function pendingRequests(ctx: Context, now = new Date()): CustodyRequest[] {
  const dir = requestsDir(ctx);
  const kept: CustodyRequest[] = [];
  for (const file of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : []) {
    const path = join(dir, file);
    try {
      const request = parseCustodyRequest(Pending.parse(JSON.parse(readFileSync(path, 'utf8'))).request);
      if (Date.parse(request.expires) <= now.getTime()) rmSync(path, { force: true });
      else kept.push(request);
    } catch {
      // Not a request this dkms wrote: left alone.
    }
  }
  return kept.sort((a, b) => Date.parse(a.created) - Date.parse(b.created));
}

/** Removes a pending request once used, so that its approvals cannot be used twice. */
export function usePending(pending: PendingRequest): void {
  rmSync(pending.path, { force: true });
}

/**
 * The data directory's audit log, made with its key on first use. The two go together: a log
 * without its key, or a key without its log, is AUDIT_TAMPERED, never silently begun anew.
 */
export function auditLog(ctx: Context): AuditLog {
  mkdirSync(ctx.home, { recursive: true, mode: 0o700 });
  const keyPath = join(ctx.home, 'audit.key');
  const logPath = join(ctx.home, AUDIT_LOG_FILE);
  if (existsSync(keyPath) !== existsSync(logPath)) {
    throw new DkmsError(
      'AUDIT_TAMPERED',
      existsSync(keyPath)
        ? `the audit log ${logPath} is gone: its records were removed`
        : `the audit log's key ${keyPath} is gone: the log cannot be continued`,
    );
  }
  const seed = openRawKey(keyPath, 'AUDIT_TAMPERED');
  try {
    return AuditLog.open(logPath, memorySigner(seed, ed25519PublicKey(seed)));
  } finally {
    wipe(seed);
  }
}

/**
 * Runs a master-key operation under the audit log: a `started` record first (an operation whose
 * record cannot be written does not run: AUDIT_UNAVAILABLE), then `done`, or `refused` with the
 * code that stopped it.
 */
export async function audited<T>(ctx: Context, op: string, detail: AuditDetail, run: () => Promise<T>): Promise<T> {
  const log = auditLog(ctx);
  log.append(op, 'started', detail);
  let result: T;
  try {
    result = await run();
  } catch (e) {
    const code = e instanceof DkmsError ? e.code : 'INTERNAL';
    log.append(op, 'refused', { ...detail, code });
    throw e;
  }
  log.append(op, 'done', detail);
  return result;
}

/** Refuses a use of the master key beyond the set's hourly limit (RATE_LIMITED), counting this log's uses in the last hour. */
export function checkRate(ctx: Context, set: CustodySet, ops: readonly string[]): void {
  const limit = set.limits?.perHour;
  if (limit === undefined) return;
  const used = auditLog(ctx).countSince(ops, new Date(Date.now() - 3_600_000), 'done');
  if (used >= limit) {
    throw new DkmsError('RATE_LIMITED', `the custody set allows ${limit} use(s) of the master key an hour, and ${used} were made in the last hour`);
  }
}

/** A short fingerprint of a request, for operator and custodian to compare by voice or chat. */
export function fingerprint(request: CustodyRequest): string {
  const hex = Buffer.from(requestDigest(request)).toString('hex').slice(0, 16).toUpperCase();
  return hex.match(/.{4}/g)?.join('-') ?? hex;
}

/** The set's digest in base64url (for output). */
export function setDigest(set: CustodySet): string {
  return toBase64url(custodySetDigest(set));
}

/**
 * Signs `message` once with master key `name`, with the custodians' approvals of exactly this
 * use: the pending request they answer must be a sign request for this key and this message's
 * digest. Audited (started, then done or refused with the code) and rate limited by the set.
 * `deliver` does what the signature is for (submits the event); the request is used up after it.
 */
export async function signWithApprovals(
  ctx: Context,
  name: string,
  message: Uint8Array,
  files: readonly string[],
  deliver: (signature: Uint8Array) => Promise<void> = async () => undefined,
): Promise<Uint8Array> {
  const { set } = await custodySetOf(ctx);
  const digest = toBase64url(sha256(message));
  return audited(ctx, 'sign', { key: name, digest }, async () => {
    const approvals = readApprovals(ctx, files);
    const pending = pendingFor(ctx, approvals);
    const op = pending.request.operation;
    if (op?.kind !== 'sign' || op.key !== name) throw new DkmsError('CUSTODY_REQUIRED', `request ${pending.request.id} is not for signing with key '${name}'`);
    if (op.digest !== digest) throw new DkmsError('CUSTODY_REQUIRED', `the custodians approved signing other data than this with key '${name}'`);
    checkRate(ctx, set, ['sign']);
    const secret = await combinePending(pending, set, approvals);
    try {
      const signature = await ctx.withWallet((w) => w.signWithCustody(name, message, secret));
      // Delivered (an event submitted) before the request is used up: if the ledger cannot be
      // reached, the same approvals sign again.
      await deliver(signature);
      usePending(pending);
      return signature;
    } finally {
      wipe(secret);
    }
  });
}

/** What custodians approve for a wallet-wide operation (export, rekey): the operation on this wallet at this generation. */
export function walletOperationDigest(kind: 'export' | 'rekey', wallet: string, generation: number): string {
  return toBase64url(sha256(canonicalBytes({ kind, wallet, generation })));
}

/**
 * Runs a wallet-wide operation (export, rekey) under the wallet's custodians, if it has them: in
 * approval mode only with their approvals of exactly this operation on this wallet at its
 * present generation (CUSTODY_REQUIRED otherwise); in unseal mode within the unsealed session.
 * Either way audited. A wallet without custodians runs it as it is.
 */
export async function underCustody<T>(ctx: Context, kind: 'export' | 'rekey', files: readonly string[] | undefined, run: () => Promise<T>): Promise<T> {
  const { custody, protection } = await walletFacts(ctx);
  if (custody === undefined) {
    if (files !== undefined) throw badInput('--approval: the wallet has no custodians');
    return run();
  }
  const digest = walletOperationDigest(kind, protection.id ?? 'wallet', protection.generation ?? 0);
  if (custody.mode === 'unseal') return audited(ctx, kind, { mode: 'unseal' }, run);
  const set = parseCustodySet(JSON.parse(custody.document));
  if (files === undefined) {
    return audited(ctx, kind, { mode: 'approval' }, () => {
      throw new DkmsError('CUSTODY_REQUIRED', `the wallet's custodians approve each ${kind}: 'dkms custodian request --${kind}', then --approval FILE…`);
    });
  }
  const approvals = readApprovals(ctx, files);
  const pending = pendingFor(ctx, approvals);
  return audited(ctx, kind, { mode: 'approval', request: pending.request.id }, async () => {
    const op = pending.request.operation;
    if (op?.kind !== kind || op.digest !== digest) {
      throw new DkmsError('CUSTODY_REQUIRED', `request ${pending.request.id} is not for this ${kind} of this wallet at its present generation`);
    }
    wipe(await combinePending(pending, set, approvals));
    const result = await run();
    usePending(pending);
    return result;
  });
}

/**
 * Records a refused use of a master key (one tried without its custodians' approvals) and gives
 * back the refusal to throw. The refusal stands whether or not the record can be written.
 */
export function recordRefusal(ctx: Context, op: string, detail: AuditDetail, error: DkmsError): DkmsError {
  try {
    auditLog(ctx).append(op, 'refused', { ...detail, code: error.code });
  } catch {
    // Refused all the same: nothing was done.
  }
  return error;
}
