/**
 * Keys in a hardware token, through PKCS#11 (OASIS PKCS#11 v3.0; Debian's SoftHSM2 in tests, a
 * real HSM's module in production). An Ed25519 key made here is sensitive and never extractable:
 * its private value cannot be read or wrapped out of the token, by us or anyone, and it signs
 * inside the token (CKM_EDDSA). Keys are found by their label (CKA_LABEL), never by handle:
 * handles last one session. The PIN comes from the caller (a prompt, a variable or a file),
 * never from a command line.
 *
 * The PKCS#11 binding (pkcs11js, a native addon) is loaded only when a token is opened.
 */
import { DkmsError } from '../errors.js';
import { equalBytes, randomBytes, utf8 } from '../crypto/bytes.js';
import { sha256 } from '../crypto/hash.js';
import { publicKeyForms, type Signer } from '../crypto/key-handle.js';
import type * as Pkcs11js from 'pkcs11js';

/** PKCS#11 v3.0 values pkcs11js 2.1.7 does not name. */
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;
/** CKA_EC_PARAMS for Ed25519: the DER of its object identifier, 1.3.101.112 (RFC 8410). */
const ED25519_PARAMS = Buffer.from('06032b6570', 'hex');
/** CKA_APPLICATION of the counter objects dkms keeps in a token. */
const COUNTER_APPLICATION = 'dkms';
/** AES-256-GCM as dkms uses it in a token: a 96-bit nonce of ours, a 128-bit tag after the ciphertext. */
const GCM_NONCE_BYTES = 12;
const GCM_TAG_BYTES = 16;
/** A counter object's value: an unsigned 64-bit big-endian integer. */
const COUNTER_BYTES = 8;

export interface TokenOptions {
  /** Path of the token's PKCS#11 module (a shared library), e.g. SoftHSM2's libsofthsm2.so. */
  readonly module: string;
  /** The token's label. */
  readonly token: string;
  /** The user PIN. */
  readonly pin: string;
}

export interface TokenKey {
  readonly label: string;
  readonly type: 'ed25519';
  readonly publicKey: Uint8Array;
}

type Binding = typeof Pkcs11js;
type Handle = Buffer;

/** The CKR_… name of a PKCS#11 failure (pkcs11js reports some as a code, some only in the message). */
function ckrOf(binding: Binding, e: unknown): string {
  if (!(e instanceof Error)) return 'CKR_GENERAL_ERROR';
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'number') {
    const name = Object.keys(binding).find((k) => k.startsWith('CKR_') && (binding as unknown as Record<string, unknown>)[k] === code);
    if (name !== undefined) return name;
  }
  return /(CKR_[A-Z_]+)/.exec(e.message)?.[1] ?? 'CKR_GENERAL_ERROR';
}

/** A logged-in session with one token; close it when done. */
export class Pkcs11Token {
  readonly #binding: Binding;
  readonly #p11: Pkcs11js.PKCS11;
  readonly #session: Handle;
  readonly #module: string;
  readonly label: string;
  #closed = false;

  private constructor(binding: Binding, p11: Pkcs11js.PKCS11, session: Handle, module: string, label: string) {
    this.#binding = binding;
    this.#p11 = p11;
    this.#session = session;
    this.#module = module;
    this.label = label;
  }

  /**
   * Loads the module, finds the token by its label and logs in as its user. HSM_UNAVAILABLE when
   * the module cannot be loaded, HSM_TOKEN_NOT_FOUND when no slot holds the token, HSM_PIN_WRONG
   * for a PIN the token refuses (it may lock the PIN after several: the token's own rule).
   */
  static async open(options: TokenOptions): Promise<Pkcs11Token> {
    const binding = (await import('pkcs11js')).default;
    const loaded = loadModule(binding, options.module);
    const p11 = loaded.p11;
    try {
      // Token labels are 32 bytes, padded with spaces.
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === options.token);
      if (slot === undefined) throw new DkmsError('HSM_TOKEN_NOT_FOUND', `no token labelled '${options.token}' in ${options.module}`);
      const session = p11.C_OpenSession(slot, binding.CKF_SERIAL_SESSION | binding.CKF_RW_SESSION);
      try {
        logIn(binding, loaded, session, options);
      } catch (e) {
        p11.C_CloseSession(session);
        throw e;
      }
      return new Pkcs11Token(binding, p11, session, options.module, options.token);
    } catch (e) {
      unloadModule(options.module);
      throw e;
    }
  }

  /** Makes a new Ed25519 key pair in the token, its private half sensitive and never extractable; KEY_EXISTS for a label in use. */
  createEd25519(label: string): Signer {
    checkLabel(label);
    const b = this.#binding;
    if (this.#find(b.CKO_PRIVATE_KEY, label).length > 0) throw new DkmsError('KEY_EXISTS', `token '${this.label}' already holds a key labelled '${label}'`);
    const common = [
      { type: b.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      { type: b.CKA_TOKEN, value: true },
      { type: b.CKA_LABEL, value: label },
    ];
    this.#call('make a key', () =>
      this.#p11.C_GenerateKeyPair(
        this.#session,
        { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
        [...common, { type: b.CKA_CLASS, value: b.CKO_PUBLIC_KEY }, { type: b.CKA_VERIFY, value: true }, { type: b.CKA_EC_PARAMS, value: ED25519_PARAMS }],
        [
          ...common,
          { type: b.CKA_CLASS, value: b.CKO_PRIVATE_KEY },
          { type: b.CKA_PRIVATE, value: true },
          { type: b.CKA_SIGN, value: true },
          { type: b.CKA_SENSITIVE, value: true },
          { type: b.CKA_EXTRACTABLE, value: false },
        ],
      ),
    );
    return this.signer(label);
  }

  /** A signer for the token's Ed25519 key `label`; HSM_KEY_NOT_FOUND when it holds none. */
  signer(label: string): Signer {
    const b = this.#binding;
    const [privateKey] = this.#find(b.CKO_PRIVATE_KEY, label);
    if (privateKey === undefined) throw new DkmsError('HSM_KEY_NOT_FOUND', `token '${this.label}' holds no key labelled '${label}'`);
    const publicKey = this.#publicKey(label);
    return {
      ...publicKeyForms('ed25519', publicKey),
      sign: (message) =>
        this.#call('sign', () => {
          this.#p11.C_SignInit(this.#session, { mechanism: CKM_EDDSA }, privateKey);
          return new Uint8Array(this.#p11.C_Sign(this.#session, Buffer.from(message), Buffer.alloc(64)));
        }),
    };
  }

  /** Makes a new AES-256 key in the token, sensitive and never extractable, that only encrypts and decrypts; KEY_EXISTS for a label in use. */
  createAesKey(label: string): void {
    checkLabel(label);
    const b = this.#binding;
    if (this.#findSecret(label) !== undefined) throw new DkmsError('KEY_EXISTS', `token '${this.label}' already holds a secret key labelled '${label}'`);
    this.#call('make a key', () =>
      this.#p11.C_GenerateKey(this.#session, { mechanism: b.CKM_AES_KEY_GEN }, [
        { type: b.CKA_CLASS, value: b.CKO_SECRET_KEY },
        { type: b.CKA_KEY_TYPE, value: b.CKK_AES },
        { type: b.CKA_VALUE_LEN, value: 32 },
        { type: b.CKA_TOKEN, value: true },
        { type: b.CKA_PRIVATE, value: true },
        { type: b.CKA_LABEL, value: label },
        { type: b.CKA_ENCRYPT, value: true },
        { type: b.CKA_DECRYPT, value: true },
        { type: b.CKA_SENSITIVE, value: true },
        { type: b.CKA_EXTRACTABLE, value: false },
      ]),
    );
  }

  /** Whether the token holds an AES key labelled `label`. */
  hasAesKey(label: string): boolean {
    return this.#findSecret(label) !== undefined;
  }

  /**
   * Encrypts `plaintext` inside the token with its AES key `label` (AES-256-GCM): nonce ‖
   * ciphertext ‖ tag. `aad` is authenticated, not encrypted. The nonce is random, drawn here.
   */
  encrypt(label: string, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
    const key = this.#secretKey(label);
    const nonce = Buffer.from(randomBytes(GCM_NONCE_BYTES));
    const sealed = this.#call('encrypt', () => {
      this.#p11.C_EncryptInit(this.#session, this.#gcm(nonce, aad), key);
      return this.#p11.C_Encrypt(this.#session, Buffer.from(plaintext), Buffer.alloc(plaintext.length + GCM_TAG_BYTES));
    });
    return new Uint8Array(Buffer.concat([nonce, sealed]));
  }

  /** Opens what {@link encrypt} sealed with the same key and `aad`; HSM_FAILED when it was altered or sealed by another key. */
  decrypt(label: string, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
    const key = this.#secretKey(label);
    if (sealed.length < GCM_NONCE_BYTES + GCM_TAG_BYTES) throw new DkmsError('HSM_FAILED', `token '${this.label}': the sealed value is too short`);
    const nonce = Buffer.from(sealed.subarray(0, GCM_NONCE_BYTES));
    const body = Buffer.from(sealed.subarray(GCM_NONCE_BYTES));
    try {
      this.#p11.C_DecryptInit(this.#session, this.#gcm(nonce, aad), key);
      return new Uint8Array(this.#p11.C_Decrypt(this.#session, body, Buffer.alloc(body.length)));
    } catch (e) {
      if (e instanceof DkmsError) throw e;
      // A GCM tag that does not verify is all the token reports (SoftHSM2 says CKR_GENERAL_ERROR).
      throw new DkmsError(
        'HSM_FAILED',
        `token '${this.label}' could not decrypt with key '${label}': the value was altered or sealed by another key (${ckrOf(this.#binding, e)})`,
      );
    }
  }

  /**
   * The value of the counter `label` (private data objects in the token), or undefined when there
   * is none. Tokens may keep a data object's value read-only (SoftHSM2 does), so a counter moves by
   * a new object replacing the old: should a crash leave both, the larger value is the counter.
   */
  counter(label: string): bigint | undefined {
    let highest: bigint | undefined;
    for (const handle of this.#findCounters(label)) {
      const value = this.#attribute(handle, this.#binding.CKA_VALUE);
      if (value.length !== COUNTER_BYTES) throw new DkmsError('HSM_FAILED', `counter '${label}' in token '${this.label}' is not ${COUNTER_BYTES} bytes`);
      const n = value.readBigUInt64BE(0);
      if (highest === undefined || n > highest) highest = n;
    }
    return highest;
  }

  /** Sets the counter `label` to `value`: the new object is made before the old ones are removed. */
  setCounter(label: string, value: bigint): void {
    checkLabel(label);
    const b = this.#binding;
    const bytes = Buffer.alloc(COUNTER_BYTES);
    bytes.writeBigUInt64BE(value, 0);
    const old = this.#findCounters(label);
    const made = this.#call('make a counter', () =>
      this.#p11.C_CreateObject(this.#session, [
        { type: b.CKA_CLASS, value: b.CKO_DATA },
        { type: b.CKA_TOKEN, value: true },
        { type: b.CKA_PRIVATE, value: true },
        { type: b.CKA_APPLICATION, value: COUNTER_APPLICATION },
        { type: b.CKA_LABEL, value: label },
        { type: b.CKA_VALUE, value: bytes },
      ]),
    );
    for (const handle of old) if (!handle.equals(made)) this.#call('remove an old counter', () => this.#p11.C_DestroyObject(this.#session, handle));
  }

  #gcm(nonce: Buffer, aad: Uint8Array): Pkcs11js.Mechanism {
    const b = this.#binding;
    // tagBits must be given: without it the token makes no tag at all.
    const parameter: Pkcs11js.GcmParams = { type: b.CK_PARAMS_GCM, iv: nonce, ivBits: GCM_NONCE_BYTES * 8, aad: Buffer.from(aad), tagBits: GCM_TAG_BYTES * 8 };
    return { mechanism: b.CKM_AES_GCM, parameter };
  }

  #findSecret(label: string): Handle | undefined {
    const b = this.#binding;
    return this.#findTemplate([
      { type: b.CKA_CLASS, value: b.CKO_SECRET_KEY },
      { type: b.CKA_KEY_TYPE, value: b.CKK_AES },
      { type: b.CKA_LABEL, value: label },
    ])[0];
  }

  #secretKey(label: string): Handle {
    const key = this.#findSecret(label);
    if (key === undefined) throw new DkmsError('HSM_KEY_NOT_FOUND', `token '${this.label}' holds no AES key labelled '${label}'`);
    return key;
  }

  #findCounters(label: string): Handle[] {
    const b = this.#binding;
    return this.#findTemplate([
      { type: b.CKA_CLASS, value: b.CKO_DATA },
      { type: b.CKA_APPLICATION, value: COUNTER_APPLICATION },
      { type: b.CKA_LABEL, value: label },
    ]);
  }

  /** The token's Ed25519 keys, by label. */
  keys(): TokenKey[] {
    const b = this.#binding;
    const labels = this.#find(b.CKO_PUBLIC_KEY).map((h) => this.#attribute(h, b.CKA_LABEL).toString('utf8'));
    return [...new Set(labels)].sort().map((label) => ({ label, type: 'ed25519' as const, publicKey: this.#publicKey(label) }));
  }

  /** Logs out and unloads the module. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      const loaded = modules.get(this.#module);
      const login = loaded?.logins.get(this.label);
      // The login is the token's, shared by every session on it: the last one out logs out.
      if (login !== undefined && --login.count === 0) {
        loaded?.logins.delete(this.label);
        this.#p11.C_Logout(this.#session);
      }
      this.#p11.C_CloseSession(this.#session);
    } finally {
      unloadModule(this.#module);
    }
  }

  #publicKey(label: string): Uint8Array {
    const [handle] = this.#find(this.#binding.CKO_PUBLIC_KEY, label);
    if (handle === undefined) throw new DkmsError('HSM_KEY_NOT_FOUND', `token '${this.label}' holds no public key labelled '${label}'`);
    // CKA_EC_POINT is the DER OCTET STRING of the 32-byte key: 04 20 ‖ key.
    const point = this.#attribute(handle, this.#binding.CKA_EC_POINT);
    if (point.length !== 34 || point[0] !== 0x04 || point[1] !== 0x20)
      throw new DkmsError('HSM_FAILED', `key '${label}' in token '${this.label}' is not an Ed25519 key`);
    return new Uint8Array(point.subarray(2));
  }

  /** Ed25519 objects of `cls`, with `label` when given. */
  #find(cls: number, label?: string): Handle[] {
    const b = this.#binding;
    return this.#findTemplate([
      { type: b.CKA_CLASS, value: cls },
      { type: b.CKA_KEY_TYPE, value: CKK_EC_EDWARDS },
      ...(label === undefined ? [] : [{ type: b.CKA_LABEL, value: label }]),
    ]);
  }

  #findTemplate(template: Pkcs11js.Template): Handle[] {
    return this.#call('find objects', () => {
      this.#p11.C_FindObjectsInit(this.#session, template);
      try {
        return this.#p11.C_FindObjects(this.#session, 1024);
      } finally {
        this.#p11.C_FindObjectsFinal(this.#session);
      }
    });
  }

  #attribute(handle: Handle, type: number): Buffer {
    const [found] = this.#call('read an attribute', () => this.#p11.C_GetAttributeValue(this.#session, handle, [{ type }]));
    if (!(found?.value instanceof Buffer)) throw new DkmsError('HSM_FAILED', `token '${this.label}' gave no value for attribute ${type}`);
    return found.value;
  }

  /** Runs a PKCS#11 call; a failure becomes HSM_FAILED naming what was being done and the token's CKR_… code. */
  #call<T>(what: string, fn: () => T): T {
    if (this.#closed) throw new DkmsError('HSM_FAILED', `token '${this.label}' is closed`);
    try {
      return fn();
    } catch (e) {
      if (e instanceof DkmsError) throw e;
      throw new DkmsError('HSM_FAILED', `token '${this.label}' could not ${what}: ${ckrOf(this.#binding, e)}`);
    }
  }
}

/**
 * A PKCS#11 module is initialised once per process, however many of its tokens are open (a
 * second C_Initialize is refused), and finalised when the last one closes.
 */
interface LoadedModule {
  readonly p11: Pkcs11js.PKCS11;
  users: number;
  /** The tokens logged in, by label: how many open Pkcs11Tokens share the login, and the PIN's digest. */
  readonly logins: Map<string, { count: number; pin: Uint8Array }>;
}

const modules = new Map<string, LoadedModule>();

function loadModule(binding: Binding, path: string): LoadedModule {
  const loaded = modules.get(path);
  if (loaded !== undefined) {
    loaded.users += 1;
    return loaded;
  }
  const p11 = new binding.PKCS11();
  try {
    p11.load(path);
    p11.C_Initialize();
  } catch (e) {
    throw new DkmsError('HSM_UNAVAILABLE', `cannot load the PKCS#11 module ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const made = { p11, users: 1, logins: new Map<string, { count: number; pin: Uint8Array }>() };
  modules.set(path, made);
  return made;
}

/**
 * Logs in as the token's user, once per token: a token already logged in in this process (its
 * login holds for every session) is joined only with the same PIN, checked against its digest.
 */
function logIn(binding: Binding, loaded: LoadedModule, session: Handle, options: TokenOptions): void {
  const pin = sha256(utf8(options.pin));
  const login = loaded.logins.get(options.token);
  if (login !== undefined) {
    if (!equalBytes(login.pin, pin)) throw new DkmsError('HSM_PIN_WRONG', `the PIN for token '${options.token}' is wrong`);
    login.count += 1;
    return;
  }
  try {
    loaded.p11.C_Login(session, binding.CKU_USER, options.pin);
  } catch (e) {
    const ckr = ckrOf(binding, e);
    if (ckr === 'CKR_PIN_INCORRECT' || ckr === 'CKR_PIN_LEN_RANGE') throw new DkmsError('HSM_PIN_WRONG', `the PIN for token '${options.token}' is wrong`);
    if (ckr === 'CKR_PIN_LOCKED') throw new DkmsError('HSM_PIN_WRONG', `the PIN of token '${options.token}' is locked: its security officer must unlock it`);
    throw new DkmsError('HSM_FAILED', `token '${options.token}' refused the login: ${ckr}`);
  }
  loaded.logins.set(options.token, { count: 1, pin });
}

function unloadModule(path: string): void {
  const loaded = modules.get(path);
  if (loaded === undefined || --loaded.users > 0) return;
  modules.delete(path);
  try {
    loaded.p11.C_Finalize();
  } finally {
    loaded.p11.close();
  }
}

function checkLabel(label: string): void {
  if (!/^[\x20-\x7e]{1,128}$/.test(label)) {
    throw new DkmsError('BAD_INPUT', 'a token key label is 1 to 128 printable ASCII characters');
  }
}
