/**
 * Requests, approvals and combining (custodians.ts explains the protocol). The operator's
 * process makes a request for one purpose with a fresh reply key; each custodian who agrees opens
 * its own share and seals it again to that key in a signed approval bound to the request's
 * digest; the process checks every approval against its own copy of the set and rebuilds K from
 * a threshold of them. Pure: no I/O.
 */
import { z } from 'zod';
import {
  canonicalBytes,
  encodePublicKey,
  fromBase64url,
  randomBytes,
  sha256,
  toBase64url,
  wipe,
  x25519Generate,
  type KeyAgreementKey,
  type KeyPair,
  type Signer,
} from '../crypto/index.js';
import { JweSchema } from '../didcomm/index.js';
import { DkmsError, badInput } from '../errors.js';
import { checkCustodySecret, parseCustodySet, type CustodyMode, type CustodySet } from './custodians.js';
import {
  Digest,
  Epoch,
  ID_BYTES,
  Id,
  Index,
  Multikey,
  Name,
  SealedShares,
  Sig,
  Text,
  Threshold,
  Time,
  badSignature,
  build,
  foreign,
  malformed,
  openShare,
  parseWith,
  rebuild,
  sealTo,
  signed,
  verifies,
} from './format.js';

export const REQUEST_TYPE = 'dkms-custody-request' as const;
export const APPROVAL_TYPE = 'dkms-custody-approval' as const;
export const MAX_REQUEST_TTL_SECONDS = 7 * 24 * 3600;

export const OPERATION_KINDS = ['sign', 'rekey', 'export', 'rotate', 'bind'] as const;
export const CustodyOperationSchema = z.strictObject({ kind: z.enum(OPERATION_KINDS), key: Text(200).optional(), digest: Digest, summary: Text(500) });
/** One master-key operation: its digest, and the summary a custodian reads before approving. */
export type CustodyOperation = z.infer<typeof CustodyOperationSchema>;
export type CustodyPurpose = 'unseal' | 'operation';
/**
 * What a set of each mode releases K for: an unseal-mode set, a session (unseal) or a change of
 * its own custodians (a rotate operation); an approval-mode set, one operation of any kind.
 */
function releases(mode: CustodyMode, purpose: CustodyPurpose, operation: CustodyOperation | undefined): boolean {
  if (mode === 'approval') return purpose === 'operation';
  return purpose === 'unseal' || operation?.kind === 'rotate';
}

export const CustodyRequestSchema = z
  .strictObject({
    v: z.literal(1),
    type: z.literal(REQUEST_TYPE),
    id: Id,
    set: Id,
    epoch: Epoch,
    threshold: Threshold,
    wallet: Text(100),
    generation: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    purpose: z.enum(['unseal', 'operation']),
    operation: CustodyOperationSchema.optional(),
    reply: Multikey('x25519'),
    created: Time,
    expires: Time,
    shares: SealedShares,
  })
  .refine((r) => (r.purpose === 'operation') === (r.operation !== undefined), 'operation must be given exactly when the purpose is operation')
  .refine((r) => Date.parse(r.expires) > Date.parse(r.created), 'expires must be after created');
export type CustodyRequest = z.infer<typeof CustodyRequestSchema>;

const UnsignedApprovalSchema = z.strictObject({
  v: z.literal(1),
  type: z.literal(APPROVAL_TYPE),
  request: Digest,
  set: Id,
  epoch: Epoch,
  custodian: Name,
  index: Index,
  share: JweSchema,
  created: Time,
});
export const CustodyApprovalSchema = UnsignedApprovalSchema.extend({ sig: Sig });
/** One custodian's share, sealed to a request's reply key and signed by the custodian. */
export type CustodyApproval = z.infer<typeof CustodyApprovalSchema>;

export interface CustodyRequestOptions {
  /** The wallet's id, opaque here. */
  readonly wallet: string;
  /** The wallet's generation: custodians refuse one older than they saw. */
  readonly generation: number;
  readonly purpose: CustodyPurpose;
  /** Exactly when the purpose is 'operation'. */
  readonly operation?: CustodyOperation;
  readonly ttlSeconds?: number;
  readonly now?: Date;
}

/**
 * A request for the set's custodians, with a fresh reply key whose private half the caller keeps
 * (in memory only) to combine the approvals. BAD_INPUT for a purpose the set's mode does not
 * release K for (unseal mode: 'unseal'; approval mode: 'operation'), a bad field or ttl.
 * @example const { request, replyKey } = newCustodyRequest(set, { wallet, generation, purpose: 'unseal' });
 */
export function newCustodyRequest(set: CustodySet, options: CustodyRequestOptions): { request: CustodyRequest; replyKey: KeyPair } {
  const ttl = options.ttlSeconds ?? 3600;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_REQUEST_TTL_SECONDS)
    throw badInput(`ttlSeconds must be a whole number from 1 to ${MAX_REQUEST_TTL_SECONDS}`);
  if (!releases(set.mode, options.purpose, options.operation))
    throw badInput(
      set.mode === 'approval'
        ? `a custody set in approval mode takes operation requests, not '${options.purpose}'`
        : `a custody set in unseal mode takes unseal requests and rotate operations, not '${options.operation?.kind ?? options.purpose}'`,
    );
  const now = options.now ?? new Date();
  const replyKey = x25519Generate();
  try {
    const body = {
      v: 1 as const,
      type: REQUEST_TYPE,
      id: toBase64url(randomBytes(ID_BYTES)),
      set: set.id,
      epoch: set.epoch,
      threshold: set.threshold,
      wallet: options.wallet,
      generation: options.generation,
      purpose: options.purpose,
      ...(options.operation === undefined ? {} : { operation: options.operation }),
      reply: encodePublicKey('x25519', replyKey.publicKey),
      created: now.toISOString(),
      expires: new Date(now.getTime() + ttl * 1000).toISOString(),
      shares: set.shares,
    };
    return { request: build(CustodyRequestSchema, body, 'custody request'), replyKey };
  } catch (e) {
    wipe(replyKey.privateKey);
    throw e;
  }
}

/** Parses a request at a boundary: SHARE_MALFORMED naming the first problem. */
export function parseCustodyRequest(raw: unknown): CustodyRequest {
  return parseWith(CustodyRequestSchema, raw, (message) => malformed('custody request', message));
}

/** SHA-256 of the request's canonical JSON: what an approval is bound to. */
export function requestDigest(request: CustodyRequest): Uint8Array {
  return sha256(canonicalBytes(request));
}

function checkFresh(request: CustodyRequest, now: Date): void {
  if (now.getTime() >= Date.parse(request.expires)) throw new DkmsError('MESSAGE_EXPIRED', `custody request ${request.id} expired at ${request.expires}`);
}

/** What a custodian reads before approving, one fact a line. Every string in it was checked printable. */
export function describeCustodyRequest(request: CustodyRequest): string {
  const { operation: op } = request;
  const what = op === undefined ? 'unseal the wallet for one session' : `${op.kind}${op.key === undefined ? '' : ` with key '${op.key}'`}: ${op.summary}`;
  return [
    `Custody request ${request.id}`,
    `Purpose: ${what}`,
    ...(op === undefined ? [] : [`Operation digest: ${op.digest}`]),
    `Wallet: ${request.wallet}, generation ${request.generation}`,
    `Needs ${request.threshold} of ${Object.keys(request.shares).length} custodians (set ${request.set}, epoch ${request.epoch})`,
    `Expires: ${request.expires}`,
  ].join('\n');
}

export interface ApproveOptions {
  /** This custodian's name in the set. */
  readonly name: string;
  readonly signer: Signer;
  readonly agreementKey: KeyAgreementKey;
  /** The highest generation of this wallet the custodian has seen; an older one is refused. */
  readonly minGeneration?: number;
  readonly now?: Date;
}

/**
 * Approves a request: opens this custodian's share and seals it to the request's reply key in an
 * approval signed by `signer`. Throws SHARE_MALFORMED (the request or share), MESSAGE_EXPIRED,
 * WALLET_ROLLED_BACK (a generation below `minGeneration`), SHARE_FOREIGN (no share for `name`,
 * one that does not open with this key, or one of another set, epoch or custodian).
 * @example const approval = approveCustodyRequest(JSON.parse(text), { name: 'alice', signer, agreementKey });
 */
export function approveCustodyRequest(raw: unknown, options: ApproveOptions): CustodyApproval {
  const request = parseCustodyRequest(raw);
  const { name } = options;
  const now = options.now ?? new Date();
  checkFresh(request, now);
  if (options.minGeneration !== undefined && request.generation < options.minGeneration)
    throw new DkmsError(
      'WALLET_ROLLED_BACK',
      `the request is for generation ${request.generation} of wallet '${request.wallet}', older than generation ${options.minGeneration} seen before`,
    );
  const sealed = request.shares[name];
  if (sealed === undefined) throw foreign(`the request carries no share for custodian '${name}'`);
  const plaintext = openShare(sealed, options.agreementKey, () => foreign(`the share for '${name}' does not open with this custodian's key`));
  if (plaintext.set !== request.set || plaintext.epoch !== request.epoch || plaintext.name !== name)
    throw foreign(`the share for '${name}' is from another custody set or an earlier epoch`);
  const body = build(
    UnsignedApprovalSchema,
    {
      v: 1,
      type: APPROVAL_TYPE,
      request: toBase64url(requestDigest(request)),
      set: request.set,
      epoch: request.epoch,
      custodian: name,
      index: plaintext.index,
      share: sealTo(request.reply, plaintext),
      created: now.toISOString(),
    },
    'custody approval',
  );
  return signed(body, options.signer);
}

/** One approval checked against the set (see combineCustodyApprovals): its custodian's name and share bytes. */
function checkApproval(raw: unknown, at: number, set: CustodySet, digest: string, replyKey: KeyAgreementKey): { name: string; share: Uint8Array } {
  const approval = parseWith(CustodyApprovalSchema, raw, (message) => malformed(`approval ${at + 1}`, message));
  const who = `approval ${at + 1} (by '${approval.custodian}')`;
  if (approval.request !== digest) throw foreign(`${who} is for another request`);
  const index = set.custodians.findIndex((c) => c.name === approval.custodian);
  const card = set.custodians[index];
  if (card === undefined) throw foreign(`${who} is from a custodian not in the set (removed?)`);
  if (!verifies(approval, card.sign)) throw badSignature(`${who}: the signature does not verify with that custodian's key in the set`);
  if (approval.set !== set.id || approval.epoch !== set.epoch || approval.index !== index + 1)
    throw foreign(`${who} names another set, epoch or index than this custody set gives '${card.name}'`);
  const plaintext = openShare(approval.share, replyKey, () => badSignature(`${who}: its share does not open with the request's reply key`));
  if (plaintext.set !== set.id || plaintext.epoch !== set.epoch || plaintext.name !== card.name || plaintext.index !== index + 1)
    throw foreign(`${who}: its share is from another custody set, an earlier epoch or another custodian`);
  return { name: card.name, share: fromBase64url(plaintext.share, 'share') };
}

/**
 * K from the approvals of `request`, with the request's reply key. `set` is the operator's own
 * copy: every approval is checked against its cards, never against keys it carries itself. Any
 * bad approval is an error naming it, even among enough good ones; one custodian's approvals
 * count once. Throws SHARE_FOREIGN (a request of another set or epoch, an approval of another
 * request, custodian, set or epoch), MESSAGE_EXPIRED, SHARE_MALFORMED, SHARE_BAD_SIGNATURE (an
 * altered approval, or shares that do not rebuild K), SHARES_INSUFFICIENT, BAD_INPUT (not the
 * request's reply key). The caller wipes K after use.
 * @example const k = await combineCustodyApprovals(request, set, approvals, memoryKeyAgreementKey(replyKey.privateKey, replyKey.publicKey));
 */
export async function combineCustodyApprovals(
  rawRequest: CustodyRequest,
  rawSet: CustodySet,
  approvals: readonly unknown[],
  replyKey: KeyAgreementKey,
  now: Date = new Date(),
): Promise<Uint8Array> {
  const set = parseCustodySet(rawSet);
  const request = parseCustodyRequest(rawRequest);
  if (request.set !== set.id || request.epoch !== set.epoch || request.threshold !== set.threshold)
    throw foreign(`custody request ${request.id} is for set ${request.set} epoch ${request.epoch}, not this set ${set.id} epoch ${set.epoch}`);
  if (!releases(set.mode, request.purpose, request.operation))
    throw foreign(`a '${request.purpose}' request does not release the secret of a set in ${set.mode} mode`);
  checkFresh(request, now);
  if (encodePublicKey('x25519', replyKey.publicKey) !== request.reply) throw badInput("the reply key is not this request's");
  const digest = toBase64url(requestDigest(request));
  const shares = new Map<string, Uint8Array>();
  try {
    approvals.forEach((raw, at) => {
      const { name, share } = checkApproval(raw, at, set, digest, replyKey);
      if (shares.has(name)) wipe(share);
      else shares.set(name, share);
    });
    if (shares.size < set.threshold)
      throw new DkmsError('SHARES_INSUFFICIENT', `${shares.size} of ${set.threshold} custodians approved; ${set.threshold - shares.size} more needed`);
    const secret = await rebuild([...shares.values()], set.threshold);
    if (checkCustodySecret(set, secret)) return secret;
    wipe(secret);
    throw badSignature('the approved shares do not rebuild the custody secret');
  } finally {
    wipe(...shares.values());
  }
}
