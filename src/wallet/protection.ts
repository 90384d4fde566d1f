/**
 * What opens a wallet (docs/hsm.md, "A wallet bound to a token"). A format-1 wallet opens with
 * its passphrase (or raw key) alone. A format-2 wallet names its factors in the keyring header,
 * and every one of them is needed:
 *
 * - **passphrase**: Argon2id of the passphrase (or HKDF of a raw key): what a format-1 wallet's
 *   store key is, so a wallet keeps its passphrase when it gains another factor;
 * - **token**: 32 random bytes sealed by a non-extractable AES key in a PKCS#11 token, which
 *   only that token can open;
 * - **custody** (unseal mode): the custody secret, which only m custodians together rebuild.
 *
 * Each factor gives a 32-byte part; the store key is HKDF over the parts, salted with the
 * wallet's id and bound to a digest of the factors' description, so that editing the header
 * (another token key, another custody set) gives another store key, which opens nothing.
 *
 * A format-2 wallet also has a generation, raised by every change to its keys or protection and
 * authenticated by an HMAC under the store key. The token keeps the highest generation it has
 * seen in a counter object; a wallet file older than that is a copy put back: WALLET_ROLLED_BACK.
 */
import {
  DEFAULT_KDF_TIER,
  canonicalBytes,
  concatBytes,
  fromBase64url,
  hkdf,
  hmacSha256,
  randomBytes,
  sha256,
  toBase64url,
  toHex,
  utf8,
  wipe,
  type KdfTier,
} from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import type { Pkcs11Token } from '../hsm/pkcs11.js';
import { STORE_KEY_LABEL, type CustodyFactor, type KeyringHeader, type TokenFactor } from './keyring.js';
import { assertStrongSecret, deriveKey, newKdfParams, type WalletSecret } from './secret.js';

/** A token to bind a wallet to: open, with the label of its AES key (made there if it has none). */
export interface TokenBinding {
  readonly token: Pkcs11Token;
  readonly module: string;
  readonly key: string;
}

/** Custodians to put a wallet under: their set (canonical JSON, from src/custody) and the custody secret it was split from. */
export interface CustodyBinding {
  readonly factor: CustodyFactor;
  readonly secret: Uint8Array;
}

/**
 * A change to what opens a wallet; what is left out stays as it is. `null` removes a factor.
 * At least one of passphrase, token and custody in unseal mode remains.
 */
export interface ProtectionChange {
  readonly secret?: WalletSecret | null;
  readonly token?: TokenBinding | null;
  readonly custody?: CustodyBinding | null;
  readonly kdfTier?: KdfTier;
}

/** A protection change worked out, not yet written: the new header (its generation authenticated), parts and store key. */
export interface PreparedProtection {
  readonly header: KeyringHeader;
  readonly parts: Parts;
  readonly key: Uint8Array;
}

/** How to reach the token a wallet is bound to: its PIN, and the module when it is not where the wallet was bound. */
export interface TokenAccess {
  readonly pin: string;
  readonly module?: string;
}

/** What a caller gives to open a wallet: each factor the wallet has. */
export interface Unlock {
  readonly secret?: WalletSecret;
  /** The PIN (and module) of the wallet's token, or the token already open (the wallet closes it, whether it opens or not). */
  readonly token?: TokenAccess | Pkcs11Token;
  /** The custody secret, rebuilt from m custodians' approvals (see src/custody). */
  readonly custody?: Uint8Array;
}

/** The parts a format-2 wallet's factors gave, held while it is open (a rekey keeps the factors it does not change). */
export interface Parts {
  passphrase?: Uint8Array;
  token?: Uint8Array;
  custody?: Uint8Array;
}

export function isUnlock(value: WalletSecret | Unlock): value is Unlock {
  return !('kind' in value);
}

export const tokenPartAad = (id: string): Uint8Array => utf8(`dkms/wallet/v2/token-part:${id}`);

/** The label of the token counter that holds the wallet's highest generation. */
export const counterLabel = (id: string): string => `dkms-generation:${id}`;

function describeCustody(custody: CustodyFactor) {
  return { set: custody.set, epoch: custody.epoch, mode: custody.mode, digest: toBase64url(sha256(utf8(custody.document))) };
}

/** What the store key is bound to: every factor's parameters except where the token's module lives. */
function factorDigest(header: KeyringHeader): Uint8Array {
  const { id, kdf, token, custody } = header;
  return sha256(
    canonicalBytes({
      id,
      ...(kdf === undefined ? {} : { kdf }),
      ...(token === undefined ? {} : { token: { token: token.token, key: token.key, sealed: token.sealed } }),
      ...(custody === undefined ? {} : { custody: describeCustody(custody) }),
    }),
  );
}

/** Which parts a header needs, in their fixed order. */
function neededParts(header: KeyringHeader): (keyof Parts)[] {
  const needed: (keyof Parts)[] = [];
  if (header.kdf !== undefined) needed.push('passphrase');
  if (header.token !== undefined) needed.push('token');
  if (header.custody?.mode === 'unseal') needed.push('custody');
  return needed;
}

/** The store key of a format-2 wallet from its parts; the caller has checked every needed part is there. */
export function combineParts(header: KeyringHeader, parts: Parts): Uint8Array {
  const material = concatBytes(
    ...neededParts(header).map((name) => {
      const part = parts[name];
      if (part === undefined) throw new DkmsError('INTERNAL', `the wallet's ${name} part is missing`);
      return part;
    }),
  );
  try {
    return hkdf(material, fromBase64url(header.id ?? '', 'wallet id'), `dkms/wallet/v2/store-key:${toHex(factorDigest(header))}`);
  } finally {
    wipe(material);
  }
}

/** The HMAC that authenticates a format-2 header's generation. */
export function generationMac(storeKey: Uint8Array, header: KeyringHeader): string {
  const key = hkdf(storeKey, new Uint8Array(0), 'dkms/wallet/v2/generation');
  try {
    return toBase64url(hmacSha256(key, canonicalBytes({ id: header.id, generation: header.generation, keyVersion: header.keyVersion })));
  } finally {
    wipe(key);
  }
}

/** Opens the token a wallet is bound to (or a token its keys live in): HSM_* codes for each failure. */
export async function openToken(where: Pick<TokenFactor, 'module' | 'token'>, access: TokenAccess): Promise<Pkcs11Token> {
  const { Pkcs11Token } = await import('../hsm/pkcs11.js');
  return Pkcs11Token.open({ module: access.module ?? where.module, token: where.token, pin: access.pin });
}

/** The token part of a wallet bound to `token`, opened inside the token. */
export function openTokenPart(header: KeyringHeader, token: Pkcs11Token): Uint8Array {
  const factor = header.token;
  if (factor === undefined) throw new DkmsError('INTERNAL', 'the wallet is not bound to a token');
  if (token.label !== factor.token) {
    throw new DkmsError('HSM_TOKEN_NOT_FOUND', `the wallet is bound to token '${factor.token}', not '${token.label}'`);
  }
  const part = token.decrypt(factor.key, fromBase64url(factor.sealed, 'token part'), tokenPartAad(header.id ?? ''));
  if (part.length !== 32) throw new DkmsError('HSM_FAILED', `token '${factor.token}' gave a part of ${part.length} bytes`);
  return part;
}

/**
 * Compares the wallet's generation with the token's counter: an older wallet is a copy put back
 * (WALLET_ROLLED_BACK); a newer one (a crash between the wallet's write and the token's) moves the
 * counter up.
 */
export function checkGeneration(header: KeyringHeader, token: Pkcs11Token, path: string): void {
  const label = counterLabel(header.id ?? '');
  const generation = BigInt(header.generation ?? 0);
  const seen = token.counter(label);
  if (seen !== undefined && seen > generation) {
    throw new DkmsError(
      'WALLET_ROLLED_BACK',
      `wallet ${path} is at generation ${generation}, but token '${token.label}' has seen generation ${seen}: this is an older copy put back`,
    );
  }
  if (seen === undefined || seen < generation) token.setCounter(label, generation);
}

/**
 * Works out a protection change from the wallet's present header, parts and store key: a format-2
 * header with a new key version and generation, the parts of the factors kept and of those given
 * (a token's part drawn here and sealed in `token`, the one the wallet holds), and the store key
 * they give. The slow part (Argon2id for a new passphrase) happens here, before anything is written.
 */
export async function prepareProtection(
  current: { readonly header: KeyringHeader; readonly parts: Parts; readonly storeKey: Uint8Array },
  change: ProtectionChange,
  token: Pkcs11Token | undefined,
): Promise<PreparedProtection> {
  const { header: was } = current;
  const id = was.id ?? toBase64url(randomBytes(16));
  const parts: Parts = { ...current.parts };
  const header: KeyringHeader = {
    ...was,
    format: 2,
    id,
    keyVersion: was.keyVersion + 1,
    rekeyedAt: new Date().toISOString(),
    generation: (was.generation ?? 0) + 1,
  };
  const fresh: Uint8Array[] = [];
  try {
    if (change.secret === null) {
      delete header.kdf;
      delete parts.passphrase;
    } else if (change.secret !== undefined) {
      assertStrongSecret(change.secret);
      header.kdf = newKdfParams(change.secret, change.kdfTier ?? DEFAULT_KDF_TIER);
      const part = await deriveKey(change.secret, header.kdf, STORE_KEY_LABEL);
      fresh.push(part);
      parts.passphrase = part;
    } else if (was.format === 1) {
      // A format-1 store key is the passphrase's part: the passphrase stays a factor as it is.
      const part = current.storeKey.slice();
      fresh.push(part);
      parts.passphrase = part;
    }
    if (change.token === null) {
      delete header.token;
      delete parts.token;
    } else if (change.token !== undefined && token !== undefined) {
      const { key, module } = change.token;
      if (!token.hasAesKey(key)) token.createAesKey(key);
      const part = randomBytes(32);
      fresh.push(part);
      header.token = { module, token: token.label, key, sealed: toBase64url(token.encrypt(key, part, tokenPartAad(id))) };
      parts.token = part;
    }
    if (change.custody === null) {
      delete header.custody;
      delete parts.custody;
    } else if (change.custody !== undefined) {
      header.custody = change.custody.factor;
      if (change.custody.factor.mode === 'unseal') {
        const part = change.custody.secret.slice();
        fresh.push(part);
        parts.custody = part;
      } else {
        delete parts.custody;
      }
    }
    if (header.kdf === undefined && header.token === undefined && header.custody?.mode !== 'unseal') {
      throw badInput('a wallet needs at least one of a passphrase, a token, or custodians who unseal it');
    }
    delete header.generationMac;
    const key = combineParts(header, parts);
    return { header: { ...header, generationMac: generationMac(key, header) }, parts, key };
  } catch (e) {
    wipe(...fresh);
    throw e;
  }
}
