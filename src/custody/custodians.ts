/**
 * M-of-n custody of a wallet or of a master key. A random 32-byte custody secret K opens what is
 * under custody and nobody keeps it: K is split with Shamir over GF(2^8) (the audited
 * `shamir-secret-sharing` library) into one share per custodian, and each share is sealed to its
 * custodian's X25519 key with DIDComm anoncrypt. The custody set holds the custodians'
 * self-signed cards, the sealed shares, the threshold m and a check value that recognises K.
 *
 * 1. The operator's process makes a request: the set's sealed shares, an ephemeral reply key, and
 *    a purpose: unseal the wallet for one session (`unseal` mode), or one operation of the master
 *    key named by its digest (`approval` mode).
 * 2. A custodian reads it (describeCustodyRequest), opens its own share, seals it again to the
 *    reply key, and signs an approval bound to the request's digest.
 * 3. With m approvals, each checked against the set's cards, the process rebuilds K and checks
 *    it; only that process ever holds K, and only for that request.
 *
 * A re-split draws a new K and set id and raises the epoch: the caller re-wraps the wallet, so
 * shares of an earlier epoch or of a removed custodian no longer open it. This file holds the
 * cards and the set; requests.ts the request, approval and combining steps.
 *
 * Objects are JSON: bytes unpadded base64url, keys multikeys (`z6Mk…` Ed25519 to sign, `z6LS…`
 * X25519 to receive shares), signatures Ed25519 over the canonical JSON (RFC 8785) of the object
 * without `sig`. Pure: no I/O; the caller stores sets and carries requests and approvals.
 */
import { z } from 'zod';
import {
  abytes,
  canonicalBytes,
  encodePublicKey,
  equalBytes,
  fromBase64url,
  hkdf,
  randomBytes,
  sha256,
  toBase64url,
  wipe,
  type PublicKeyForms,
  type Signer,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import {
  CUSTODY_SECRET_BYTES,
  Digest,
  Epoch,
  ID_BYTES,
  Id,
  MAX_CUSTODIANS,
  Multikey,
  Name,
  SealedShares,
  Sig,
  Threshold,
  Time,
  build,
  malformed,
  parseWith,
  sealTo,
  sharesAt,
  signed,
  verifies,
} from './format.js';

export { CUSTODY_SECRET_BYTES, MAX_CUSTODIANS } from './format.js';
export const CARD_TYPE = 'dkms-custodian' as const;
export const SET_TYPE = 'dkms-custody' as const;
const CHECK_INFO = 'dkms/custody/v1/check';

const UnsignedCardSchema = z.strictObject({
  v: z.literal(1),
  type: z.literal(CARD_TYPE),
  name: Name,
  sign: Multikey('ed25519'),
  kx: Multikey('x25519'),
  created: Time,
});
export const CustodianCardSchema = UnsignedCardSchema.extend({ sig: Sig });
/** A custodian's public identity, self-signed by its `sign` key. */
export type CustodianCard = z.infer<typeof CustodianCardSchema>;

export const CustodyLimitsSchema = z.strictObject({ perHour: z.number().int().min(1).max(1_000_000).optional() });
export type CustodyLimits = z.infer<typeof CustodyLimitsSchema>;
export const CUSTODY_MODES = ['unseal', 'approval'] as const;
export type CustodyMode = (typeof CUSTODY_MODES)[number];

export const CustodySetSchema = z.strictObject({
  v: z.literal(1),
  type: z.literal(SET_TYPE),
  id: Id,
  epoch: Epoch,
  mode: z.enum(CUSTODY_MODES),
  threshold: Threshold,
  custodians: z.array(CustodianCardSchema).min(1).max(MAX_CUSTODIANS),
  shares: SealedShares,
  check: Digest,
  created: Time,
  limits: CustodyLimitsSchema.optional(),
});
/** Custodians, their sealed shares and the threshold: the operator's copy is the trusted one. */
export type CustodySet = z.infer<typeof CustodySetSchema>;

/**
 * A custodian's card: its name, its signing key and the X25519 key its shares are sealed to,
 * signed by `signer`. BAD_INPUT for a bad name, or a signer whose signature its key does not verify.
 * @example const card = makeCustodianCard('alice', signer, agreementKey);
 */
export function makeCustodianCard(name: string, signer: Signer, kx: PublicKeyForms, now: Date = new Date()): CustodianCard {
  const body = build(
    UnsignedCardSchema,
    { v: 1, type: CARD_TYPE, name, sign: signer.multikey, kx: encodePublicKey('x25519', kx.publicKey), created: now.toISOString() },
    'custodian card',
  );
  const card = signed(body, signer);
  if (!verifies(card, card.sign)) throw badInput("the signer's signature does not verify under its key");
  return card;
}

/**
 * Parses a card at a boundary: BAD_INPUT for its shape, SIGNATURE_INVALID when its self-signature
 * does not verify (a field was altered, or it was not made with its `sign` key).
 */
export function parseCustodianCard(raw: unknown): CustodianCard {
  const card = parseWith(CustodianCardSchema, raw, (message) => badInput(`custodian card: ${message}`));
  if (!verifies(card, card.sign)) throw new DkmsError('SIGNATURE_INVALID', `custodian card '${card.name}': its self-signature does not verify`);
  return card;
}

/** BAD_INPUT unless 1 <= m <= n <= 255 (m = 1 with n > 1 only if `allowSingle`), names and keys distinct. */
function checkSetting(cards: readonly CustodianCard[], threshold: number, allowSingle: boolean): void {
  const n = cards.length;
  if (n < 1) throw badInput('a custody set needs at least one custodian');
  if (n > MAX_CUSTODIANS) throw badInput(`at most ${MAX_CUSTODIANS} custodians, got ${n}`);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > n) throw badInput(`the threshold must be a whole number from 1 to ${n}, got ${threshold}`);
  if (threshold === 1 && n > 1 && !allowSingle) throw badInput(`a threshold of 1 lets any one of the ${n} custodians open it alone; allow it explicitly`);
  const names = new Set<string>();
  const keys = new Set<string>();
  for (const card of cards) {
    if (names.has(card.name)) throw badInput(`custodian '${card.name}' is named twice`);
    if (keys.has(card.sign) || keys.has(card.kx)) throw badInput(`custodian '${card.name}' has a key of another custodian`);
    names.add(card.name);
    keys.add(card.sign).add(card.kx);
  }
}

const checkValue = (secret: Uint8Array, setId: string) => hkdf(secret, fromBase64url(setId, 'set id'), CHECK_INFO);

export interface SplitCustodyOptions {
  readonly threshold: number;
  readonly mode: CustodyMode;
  /** One share each, in this order: custodian i holds index i + 1. */
  readonly custodians: readonly CustodianCard[];
  readonly limits?: CustodyLimits;
  readonly epoch?: number;
  /** Accept a threshold of 1 with several custodians, each of whom could then open it alone. */
  readonly allowSingle?: boolean;
  readonly now?: Date;
}

/**
 * Draws a new custody secret K and splits it among `custodians`, one sealed share each. Returns
 * the set and K (the caller wraps the wallet with K, then wipes it). Throws BAD_INPUT for a bad
 * setting (see checkSetting), card or epoch, SIGNATURE_INVALID for a card that is not self-signed.
 * @example const { set, secret } = await splitCustody({ threshold: 3, mode: 'unseal', custodians: cards });
 */
export async function splitCustody(options: SplitCustodyOptions): Promise<{ set: CustodySet; secret: Uint8Array }> {
  const cards = options.custodians.map(parseCustodianCard);
  checkSetting(cards, options.threshold, options.allowSingle ?? false);
  const id = toBase64url(randomBytes(ID_BYTES));
  const epoch = options.epoch ?? 1;
  const secret = randomBytes(CUSTODY_SECRET_BYTES);
  try {
    const raw = await sharesAt(secret, cards.length, options.threshold);
    try {
      const sealed = raw.map((bytes, i) => {
        const card = cards[i] as CustodianCard;
        return [card.name, sealTo(card.kx, { set: id, epoch, index: i + 1, name: card.name, share: toBase64url(bytes) })] as const;
      });
      const body = {
        v: 1 as const,
        type: SET_TYPE,
        id,
        epoch,
        mode: options.mode,
        threshold: options.threshold,
        custodians: cards,
        shares: Object.fromEntries(sealed),
        check: toBase64url(checkValue(secret, id)),
        created: (options.now ?? new Date()).toISOString(),
        ...(options.limits === undefined ? {} : { limits: options.limits }),
      };
      return { set: build(CustodySetSchema, body, 'custody set'), secret };
    } finally {
      wipe(...raw);
    }
  } catch (e) {
    wipe(secret);
    throw e;
  }
}

export interface CustodyChange {
  readonly add?: readonly CustodianCard[];
  /** Names of custodians to leave out. */
  readonly remove?: readonly string[];
  readonly threshold?: number;
  readonly limits?: CustodyLimits;
  readonly allowSingle?: boolean;
  readonly now?: Date;
}

/**
 * A new K split among the old custodians less `remove`, plus `add`, in a new set: new id, epoch
 * one higher, same mode; threshold and limits kept unless changed. Shares of the old set do not
 * open the new K. BAD_INPUT for a name to remove that is not in the set, and as splitCustody.
 */
export async function resplitCustody(old: CustodySet, change: CustodyChange = {}): Promise<{ set: CustodySet; secret: Uint8Array }> {
  const current = parseCustodySet(old);
  const remove = new Set(change.remove ?? []);
  for (const name of remove) if (!current.custodians.some((c) => c.name === name)) throw badInput(`custodian '${name}' is not in the custody set`);
  const limits = change.limits ?? current.limits;
  return splitCustody({
    threshold: change.threshold ?? current.threshold,
    mode: current.mode,
    custodians: [...current.custodians.filter((c) => !remove.has(c.name)), ...(change.add ?? [])],
    epoch: current.epoch + 1,
    ...(limits === undefined ? {} : { limits }),
    ...(change.allowSingle === undefined ? {} : { allowSingle: change.allowSingle }),
    ...(change.now === undefined ? {} : { now: change.now }),
  });
}

/**
 * Parses a stored set: SHARE_MALFORMED for its shape, its setting, or shares that are not one per
 * custodian; SIGNATURE_INVALID for a card that is not self-signed.
 */
export function parseCustodySet(raw: unknown): CustodySet {
  const set = parseWith(CustodySetSchema, raw, (message) => malformed('custody set', message));
  set.custodians.forEach(parseCustodianCard);
  try {
    checkSetting(set.custodians, set.threshold, true);
  } catch (e) {
    throw malformed('custody set', e instanceof Error ? e.message : 'bad setting');
  }
  const names = set.custodians.map((c) => c.name);
  if (Object.keys(set.shares).length !== names.length || !names.every((name) => Object.hasOwn(set.shares, name)))
    throw malformed('custody set', 'its shares are not one per custodian');
  return set;
}

/** SHA-256 of the set's canonical JSON: what a custodian or an audit record names it by. */
export function custodySetDigest(set: CustodySet): Uint8Array {
  return sha256(canonicalBytes(set));
}

/** True when `secret` is the set's K (compared in constant time). BAD_INPUT unless it is 32 bytes. */
export function checkCustodySecret(set: CustodySet, secret: Uint8Array): boolean {
  abytes(secret, CUSTODY_SECRET_BYTES, 'custody secret');
  const actual = checkValue(secret, set.id);
  try {
    return equalBytes(actual, fromBase64url(set.check, 'check'));
  } finally {
    wipe(actual);
  }
}
