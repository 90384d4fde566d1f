/**
 * Social-recovery shares (docs/recovery.md): the recovery secret R split M-of-N with Shamir
 * over GF(2^8) by the audited `shamir-secret-sharing` library, one share per trustee. Each share
 * is signed by the owner's agent, tagged with a random `set` common to every share of one split
 * (how shares of one secret are recognised), and carries a hint: the owner, the trustees in
 * share-index order, the threshold. Share `index` is the x-coordinate: trustee i holds x = i.
 * Pure: no I/O. The library checks nothing about the secret it rebuilds (see its README); here
 * the owner's signature over every share is what stops a damaged or forged share.
 */
import { z } from 'zod';
import {
  abytes,
  canonicalBytes,
  canonicalJson,
  decodePublicKey,
  ed25519Verify,
  fromBase64url,
  randomBytes,
  secretFromShares,
  sharesAtPositions,
  toBase64url,
  wipe,
  type Signer,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { RECOVERY_SECRET_BYTES } from './secret.js';

export const SHARE_TYPE = 'dkms-recovery-share' as const;
/** GF(2^8) has 255 non-zero x-coordinates. */
export const MAX_TRUSTEES = 255;
/** A share is the secret's length plus one byte: its x-coordinate, last. */
export const SHARE_BYTES = RECOVERY_SECRET_BYTES + 1;
const SET_BYTES = 16;

// Canonical unpadded base64url of exactly 16, 33 and 64 bytes: the unused low bits are zero.
const SET = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const SHARE = /^[A-Za-z0-9_-]{44}$/;
const SIG = /^[A-Za-z0-9_-]{85}[AQgw]$/;
const ED25519_KEY = /^z6Mk[1-9A-HJ-NP-Za-km-z]{40,50}$/;

const PersonSchema = z.strictObject({ id: z.string().min(1).max(200), label: z.string().max(64) });

export const ShareHintSchema = z.strictObject({
  owner: z.strictObject({ policy: z.string().min(1).max(200), label: z.string().max(64) }),
  trustees: z
    .array(PersonSchema)
    .min(2)
    .max(MAX_TRUSTEES)
    .refine((ts) => new Set(ts.map((t) => t.id)).size === ts.length, 'trustee ids must be distinct'),
  created: z.iso.datetime(),
});
export type ShareHint = z.infer<typeof ShareHintSchema>;

const UnsignedShareSchema = z.strictObject({
  v: z.literal(1),
  type: z.literal(SHARE_TYPE),
  set: z.string().regex(SET, 'set must be 16 bytes of base64url'),
  index: z.number().int().min(1).max(MAX_TRUSTEES),
  threshold: z.number().int().min(2).max(MAX_TRUSTEES),
  total: z.number().int().min(2).max(MAX_TRUSTEES),
  hint: ShareHintSchema,
  share: z.string().regex(SHARE, `share must be ${SHARE_BYTES} bytes of base64url`),
  signer: z.string().regex(ED25519_KEY, 'signer must be a multibase Ed25519 key'),
});

export const RecoveryShareSchema = UnsignedShareSchema.extend({ sig: z.string().regex(SIG, 'sig must be 64 bytes of base64url') });
/** One trustee's share, as stored and sent: JSON-serialisable. */
export type RecoveryShare = z.infer<typeof RecoveryShareSchema>;
type UnsignedShare = z.infer<typeof UnsignedShareSchema>;

export interface SplitOptions {
  readonly threshold: number;
  /** One share each, in this order: trustee i receives index i + 1. */
  readonly trustees: readonly { readonly id: string; readonly label: string }[];
  readonly owner: { readonly policy: string; readonly label: string };
  readonly signer: Signer;
  /** Accept fewer than 3 trustees. */
  readonly insist?: boolean;
  readonly now?: Date;
}

/** What a trustee may see and list of a share it keeps: never the share bytes. */
export interface ShareSummary {
  readonly set: string;
  readonly index: number;
  readonly threshold: number;
  readonly total: number;
  readonly owner: ShareHint['owner'];
  readonly trustees: ShareHint['trustees'];
  readonly created: string;
}

const tooFew = (message: string) => new DkmsError('TRUSTEES_TOO_FEW', message);
const malformed = (message: string) => new DkmsError('SHARE_MALFORMED', `recovery share: ${message}`);
const foreign = (message: string) => new DkmsError('SHARE_FOREIGN', message);

/**
 * Refuses a trustee setting: BAD_INPUT for a count that is not a whole number or above 255;
 * TRUSTEES_TOO_FEW for a threshold below 2 (with 1 each trustee alone would hold R) or above the
 * number of trustees, and, unless `insist`, for fewer than 3 trustees.
 * @example checkTrusteeSetting(3, 2, false)
 */
export function checkTrusteeSetting(trustees: number, threshold: number, insist: boolean): void {
  if (!Number.isInteger(trustees) || !Number.isInteger(threshold)) throw badInput('the number of trustees and the threshold must be whole numbers');
  if (trustees > MAX_TRUSTEES) throw badInput(`at most ${MAX_TRUSTEES} trustees`);
  if (threshold < 2) throw tooFew('the threshold must be at least 2: with 1, each trustee alone would hold the recovery secret');
  if (threshold > trustees) throw tooFew(`a threshold of ${threshold} needs at least ${threshold} trustees, got ${trustees}`);
  if (trustees < 3 && !insist) throw tooFew(`${trustees} trustees: at least 3 are recommended so that losing one leaves enough; pass --insist to accept it`);
}

function verifies(share: UnsignedShare, sig: string): boolean {
  return ed25519Verify(decodePublicKey(share.signer, 'ed25519').publicKey, canonicalBytes(share), fromBase64url(sig, 'sig'));
}

/** Signs one share body; BAD_INPUT if it is not a valid share or the signer's key does not verify its signature. */
function signShare(body: UnsignedShare, signer: Signer): RecoveryShare {
  const parsed = UnsignedShareSchema.safeParse(body);
  if (!parsed.success) throw badInput(`cannot make a recovery share: ${describeIssue(parsed.error)}`);
  const sig = toBase64url(signer.sign(canonicalBytes(parsed.data)));
  if (!verifies(parsed.data, sig)) throw badInput("the signer's signature does not verify under its key");
  return { ...parsed.data, sig };
}

/**
 * Splits R into one signed share per trustee, in trustee order (index 1, 2, …), all tagged with
 * one fresh random set. Throws BAD_INPUT (R not 32 bytes, a bad owner/trustee field, a signer
 * whose key does not match its signatures) or TRUSTEES_TOO_FEW (see checkTrusteeSetting).
 * Leaves the caller's R as it is; wipes the raw share bytes after encoding them.
 * @example const shares = await splitRecoverySecret(r, { threshold: 2, trustees, owner, signer });
 */
export async function splitRecoverySecret(secret: Uint8Array, options: SplitOptions): Promise<RecoveryShare[]> {
  abytes(secret, RECOVERY_SECRET_BYTES, 'recovery secret');
  const { threshold, trustees, owner, signer } = options;
  checkTrusteeSetting(trustees.length, threshold, options.insist ?? false);
  const hint = {
    owner: { policy: owner.policy, label: owner.label },
    trustees: trustees.map((t) => ({ id: t.id, label: t.label })),
    created: (options.now ?? new Date()).toISOString(),
  };
  const common = {
    v: 1 as const,
    type: SHARE_TYPE,
    set: toBase64url(randomBytes(SET_BYTES)),
    threshold,
    total: trustees.length,
    hint,
    signer: signer.multikey,
  };
  const raw = await sharesAtPositions(secret, trustees.length, threshold);
  try {
    return raw.map((bytes, i) => signShare({ ...common, index: i + 1, share: toBase64url(bytes) }, signer));
  } finally {
    wipe(...raw);
  }
}

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (issue === undefined) return 'bad shape';
  return issue.path.length === 0 ? issue.message : `${issue.path.join('.')}: ${issue.message}`;
}

/** Signature, then what the signature cannot vouch for: the fields agreeing with one another. */
function checkSigned(share: RecoveryShare): void {
  const { sig, ...body } = share;
  let ok: boolean;
  try {
    ok = verifies(body, sig);
  } catch (e) {
    throw malformed(e instanceof DkmsError ? e.message : 'not canonical JSON');
  }
  if (!ok) throw new DkmsError('SHARE_BAD_SIGNATURE', `recovery share ${share.index} of set ${share.set}: the owner's signature does not verify`);
  if (share.index > share.total) throw malformed(`index ${share.index} is above the total ${share.total}`);
  if (share.threshold > share.total) throw malformed(`threshold ${share.threshold} is above the total ${share.total}`);
  if (share.hint.trustees.length !== share.total) throw malformed(`the hint names ${share.hint.trustees.length} trustees for a total of ${share.total}`);
  const bytes = fromBase64url(share.share, 'share');
  try {
    if (bytes.length !== SHARE_BYTES) throw malformed(`share must be ${SHARE_BYTES} bytes`);
    if (bytes[SHARE_BYTES - 1] !== share.index) throw malformed(`the share's x-coordinate is not its index ${share.index}`);
  } finally {
    wipe(bytes);
  }
}

/**
 * Parses a share at a boundary. Throws SHARE_MALFORMED (naming the first problem: shape, index or
 * threshold above the total, a share whose x-coordinate is not its index) or SHARE_BAD_SIGNATURE
 * (the signature by `signer` does not verify: some field was altered). Whether `signer` is really
 * the owner's agent is the caller's to check (combineShares' `signers`).
 * @example const share = parseShare(JSON.parse(text));
 */
export function parseShare(raw: unknown): RecoveryShare {
  const parsed = RecoveryShareSchema.safeParse(raw);
  if (!parsed.success) throw malformed(describeIssue(parsed.error));
  checkSigned(parsed.data);
  return parsed.data;
}

export interface CombineOptions {
  /** The set the shares must belong to. */
  readonly set?: string;
  /** The owner's agent keys; a share signed by any other key is refused. */
  readonly signers?: readonly string[];
}

/** Every share from the split `first` is from: SHARE_FOREIGN naming the first field that differs, or a repeated index. */
function checkOneSplit(first: RecoveryShare, shares: readonly RecoveryShare[], options: CombineOptions): void {
  const seen = new Set<number>();
  for (const share of shares) {
    if (options.set !== undefined && share.set !== options.set) throw foreign(`share ${share.index} belongs to set ${share.set}, not ${options.set}`);
    if (options.signers !== undefined && !options.signers.includes(share.signer)) {
      throw new DkmsError('SHARE_BAD_SIGNATURE', `share ${share.index} is signed by ${share.signer}, which is not one of the owner's agents`);
    }
    for (const field of ['set', 'threshold', 'total', 'signer'] as const) {
      if (share[field] !== first[field]) throw foreign(`share ${share.index} has another ${field} than share ${first.index}: it is from another split`);
    }
    if (canonicalJson(share.hint) !== canonicalJson(first.hint))
      throw foreign(`share ${share.index} has another hint than share ${first.index}: it is from another split`);
    if (seen.has(share.index)) throw foreign(`index ${share.index} appears twice`);
    seen.add(share.index);
  }
}

/**
 * Rebuilds R from shares of one split, re-checking each (as parseShare). Throws SHARE_MALFORMED,
 * SHARE_BAD_SIGNATURE (also for a signer outside `signers`), SHARE_FOREIGN (shares of different
 * splits or another `set`, a repeated index) or SHARES_INSUFFICIENT (fewer than the threshold).
 * Uses exactly `threshold` shares, the first ones given.
 * @example const r = await combineShares(released, { set, signers: ownerAgentKeys });
 */
export async function combineShares(shares: readonly RecoveryShare[], options: CombineOptions = {}): Promise<Uint8Array> {
  const checked = shares.map(parseShare);
  const [first] = checked;
  if (first === undefined) throw new DkmsError('SHARES_INSUFFICIENT', 'have no shares');
  checkOneSplit(first, checked, options);
  if (checked.length < first.threshold) throw new DkmsError('SHARES_INSUFFICIENT', `have ${checked.length} of ${first.threshold} shares needed`);
  const bytes = checked.slice(0, first.threshold).map((s) => fromBase64url(s.share, 'share'));
  try {
    return await secretFromShares(bytes, first.threshold);
  } finally {
    wipe(...bytes);
  }
}

/** What a trustee may see and list of a share: everything but the share bytes and signature. */
export function shareSummary(share: RecoveryShare): ShareSummary {
  const { set, index, threshold, total, hint } = share;
  return { set, index, threshold, total, owner: { ...hint.owner }, trustees: hint.trustees.map((t) => ({ ...t })), created: hint.created };
}
