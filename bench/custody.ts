/**
 * Custodians (part of `npm run bench -- wallet`): a wallet under 3 of 5 custodians whose keys are
 * in this process's memory, so the figures are the protocol's own cost, with no transport.
 * - unseal: newCustodyRequest, 3 approveCustodyRequest, combineCustodyApprovals, then
 *   Wallet.open with the custody secret and close; the whole and each part;
 * - approval: the same request, approvals and combining for one signature by a master key
 *   sealed under an approval-mode set, then wallet.signWithCustody (the wallet already open).
 * Each run is followed by one of the raw limit: the node:crypto primitives the step cannot do
 * without, on inputs prepared beforehand (keys arrive as 32 bytes, so importing a peer's key is
 * part of each agreement and verification). A sealed share is opened as one AES-256-GCM open, the
 * cheapest AEAD: the envelopes (A256KW and A256CBC-HS512) cost more, so the ratio is an upper bound.
 * - request: one X25519 key pair (the reply key);
 * - one approval: an agreement and an open (the custodian's share), a key pair, an agreement and a
 *   seal (the share sealed to the reply key), an Ed25519 signature;
 * - combine: per approval a verification, an agreement and an open; one Shamir combine of 3
 *   shares (shamir-secret-sharing) and one HKDF (the check value);
 * - open: the wallet's own file opened with better-sqlite3 and its pragmas, its keyring read, one
 *   HKDF (the store key) and one AES-256-GCM open (the profile key), closed;
 * - sign: one HKDF and one open (the sealed master key), the seed imported, one Ed25519 signature.
 * Medians and 95th percentiles over up to RUNS runs, each mode stopped after BUDGET_MS.
 */
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { combine as shamirCombine, split as shamirSplit } from 'shamir-secret-sharing';
import {
  canonicalJson,
  ed25519Generate,
  memoryKeyAgreementKey,
  memorySigner,
  randomBytes,
  sha256,
  toBase64url,
  wipe,
  x25519Generate,
  type KeyAgreementKey,
  type Signer,
} from '../src/crypto/index.js';
import {
  approveCustodyRequest,
  combineCustodyApprovals,
  makeCustodianCard,
  newCustodyRequest,
  splitCustody,
  type CustodyApproval,
  type CustodyMode,
  type CustodyOperation,
  type CustodySet,
} from '../src/custody/index.js';
import { Wallet, rawSecret, type CustodyFactor } from '../src/wallet/index.js';
import { median, report, round } from './report.js';

const CUSTODIANS = 5;
const THRESHOLD = 3;
const RUNS = 50;
const WARMUP = 5;
const BUDGET_MS = 3000;
/** About the canonical JSON of an approval without its signature: what a custodian signs and the operator verifies. */
const SIGNED_BYTES = 1200;
/** About the canonical JSON of a share's plaintext. */
const SHARE_PLAINTEXT_BYTES = 160;

interface Custodian {
  readonly name: string;
  readonly signer: Signer;
  readonly agreementKey: KeyAgreementKey;
}

/** Samples in milliseconds, by what was timed. */
type Samples = Map<string, number[]>;

function record(samples: Samples, what: string, ms: number): void {
  const list = samples.get(what) ?? [];
  list.push(ms);
  samples.set(what, list);
}

async function timed<T>(samples: Samples, what: string, fn: () => T | Promise<T>): Promise<T> {
  const start = process.hrtime.bigint();
  const value = await fn();
  record(samples, what, Number(process.hrtime.bigint() - start) / 1e6);
  return value;
}

/** The value below which 95% of `values` lie (nearest rank). */
function p95(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * 0.95) - 1)] ?? NaN;
}

/** The factor of a wallet under `set`, as the CLI makes it (src/cli/custody.ts factorOf). */
function factorOf(set: CustodySet): CustodyFactor {
  return { set: set.id, epoch: set.epoch, mode: set.mode, document: canonicalJson(set) };
}

function newCustodians(): Custodian[] {
  return Array.from({ length: CUSTODIANS }, (_, i) => {
    const sign = ed25519Generate();
    const kx = x25519Generate();
    return {
      name: `custodian-${i + 1}`,
      signer: memorySigner(sign.privateKey, sign.publicKey),
      agreementKey: memoryKeyAgreementKey(kx.privateKey, kx.publicKey),
    };
  });
}

async function newSet(custodians: readonly Custodian[], mode: CustodyMode): Promise<{ set: CustodySet; secret: Uint8Array }> {
  const cards = custodians.map((c) => makeCustodianCard(c.name, c.signer, c.agreementKey));
  return splitCustody({ threshold: THRESHOLD, mode, custodians: cards });
}

/** Request, THRESHOLD approvals and combining, each part timed: the custody secret of `set`. */
async function release(
  samples: Samples,
  set: CustodySet,
  custodians: readonly Custodian[],
  wallet: { id: string; generation: number },
  operation?: CustodyOperation,
): Promise<Uint8Array> {
  const purpose = operation === undefined ? 'unseal' : 'operation';
  const { request, replyKey } = await timed(samples, 'request', () =>
    newCustodyRequest(set, { wallet: wallet.id, generation: wallet.generation, purpose, ...(operation === undefined ? {} : { operation }) }),
  );
  const approvals: CustodyApproval[] = [];
  for (const c of custodians.slice(0, THRESHOLD)) {
    approvals.push(await timed(samples, 'approval', () => approveCustodyRequest(request, { name: c.name, signer: c.signer, agreementKey: c.agreementKey })));
  }
  const reply = memoryKeyAgreementKey(replyKey.privateKey, replyKey.publicKey);
  try {
    return await timed(samples, 'combine', () => combineCustodyApprovals(request, set, approvals, reply));
  } finally {
    wipe(replyKey.privateKey);
  }
}

const x25519Public = (key: KeyObject) => key.export({ format: 'jwk' }).x ?? '';
const importX25519 = (x: string) => createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x }, format: 'jwk' });
const importEd25519 = (x: string) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');

interface Sealed {
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

function gcmSeal(key: Buffer, plaintext: Buffer): Sealed {
  const iv = nodeRandomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { key, iv, ciphertext, tag: cipher.getAuthTag() };
}

function gcmOpen(sealed: Sealed): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', sealed.key, sealed.iv);
  decipher.setAuthTag(sealed.tag);
  return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
}

const hkdf = (ikm: Buffer) => hkdfSync('sha256', ikm, Buffer.alloc(16), 'dkms/bench', 32);

/** The raw limit of each part: node:crypto primitives on inputs prepared here (see the file's comment). */
class RawLimit {
  readonly #own = generateKeyPairSync('x25519');
  readonly #peer = x25519Public(generateKeyPairSync('x25519').publicKey);
  readonly #signing = generateKeyPairSync('ed25519');
  readonly #signingPublic = this.#signing.publicKey.export({ format: 'jwk' }).x ?? '';
  readonly #message = nodeRandomBytes(SIGNED_BYTES);
  readonly #signature = nodeSign(null, this.#message, this.#signing.privateKey);
  readonly #share = gcmSeal(nodeRandomBytes(32), nodeRandomBytes(SHARE_PLAINTEXT_BYTES));
  readonly #profileKey = gcmSeal(nodeRandomBytes(32), nodeRandomBytes(32));
  readonly #masterKey = gcmSeal(nodeRandomBytes(32), nodeRandomBytes(32));
  readonly #secret = nodeRandomBytes(32);
  #shares: Uint8Array[] = [];

  async prepare(): Promise<void> {
    this.#shares = (await shamirSplit(new Uint8Array(32), CUSTODIANS, THRESHOLD)).slice(0, THRESHOLD);
  }

  #agree(privateKey: KeyObject): Buffer {
    return diffieHellman({ privateKey, publicKey: importX25519(this.#peer) });
  }

  request(): void {
    generateKeyPairSync('x25519');
  }

  approval(): void {
    this.#agree(this.#own.privateKey);
    gcmOpen(this.#share);
    this.#agree(generateKeyPairSync('x25519').privateKey);
    gcmSeal(this.#share.key, nodeRandomBytes(SHARE_PLAINTEXT_BYTES));
    nodeSign(null, this.#message, this.#signing.privateKey);
  }

  async combine(): Promise<void> {
    for (let i = 0; i < THRESHOLD; i++) {
      if (!nodeVerify(null, this.#message, importEd25519(this.#signingPublic), this.#signature)) throw new Error('raw verify failed');
      this.#agree(this.#own.privateKey);
      gcmOpen(this.#share);
    }
    await shamirCombine(this.#shares);
    hkdf(this.#secret);
  }

  open(path: string): void {
    const db = new Database(path, { fileMustExist: true });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec('BEGIN EXCLUSIVE; COMMIT');
      db.prepare('SELECT header, digest FROM keyring WHERE id = 1').get();
      db.prepare('SELECT kek FROM profiles WHERE name = ?').get('default');
      hkdf(this.#secret);
      gcmOpen(this.#profileKey);
    } finally {
      db.close();
    }
  }

  sign(): void {
    hkdf(this.#secret);
    const seed = gcmOpen(this.#masterKey);
    nodeSign(null, this.#message.subarray(0, 64), createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, seed]), format: 'der', type: 'pkcs8' }));
  }

  /** The raw limit of one whole run: request, THRESHOLD approvals, combine, then `last` (open or sign). */
  async run(samples: Samples, last: 'open' | 'sign', path: string): Promise<void> {
    await timed(samples, 'whole', async () => {
      await timed(samples, 'request', () => this.request());
      for (let i = 0; i < THRESHOLD; i++) await timed(samples, 'approval', () => this.approval());
      await timed(samples, 'combine', () => this.combine());
      await timed(samples, last, () => (last === 'open' ? this.open(path) : this.sign()));
    });
  }
}

/** Runs `library` and `raw` in turns, WARMUP times unrecorded, then until RUNS runs or BUDGET_MS. */
async function alternate(
  library: (samples: Samples) => Promise<void>,
  raw: (samples: Samples) => Promise<void>,
): Promise<{ library: Samples; raw: Samples; runs: number }> {
  for (let i = 0; i < WARMUP; i++) {
    await library(new Map());
    await raw(new Map());
  }
  const samples = { library: new Map() as Samples, raw: new Map() as Samples };
  const deadline = Date.now() + BUDGET_MS;
  let runs = 0;
  while (runs < RUNS && (runs === 0 || Date.now() < deadline)) {
    await library(samples.library);
    await raw(samples.raw);
    runs++;
  }
  return { ...samples, runs };
}

function reportFigures(bench: string, measured: { library: Samples; raw: Samples; runs: number }, parts: readonly string[]): void {
  const figure = (what: string) => {
    const library = measured.library.get(what) ?? [];
    const raw = measured.raw.get(what) ?? [];
    return { medianMs: round(median(library), 3), p95Ms: round(p95(library), 3), rawMs: round(median(raw), 3), ratio: round(median(library) / median(raw)) };
  };
  report({ bench, custodians: CUSTODIANS, threshold: THRESHOLD, runs: measured.runs, ...figure('whole') });
  for (const part of parts) report({ bench: `${bench}.part`, part, ...figure(part) });
}

async function unsealBench(dir: string, custodians: readonly Custodian[], raw: RawLimit): Promise<void> {
  const path = join(dir, 'custody-unseal.db');
  const { set, secret } = await newSet(custodians, 'unseal');
  const wallet = await Wallet.create(path, rawSecret(randomBytes(32)));
  await wallet.protect({ custody: { factor: factorOf(set), secret }, secret: null });
  wipe(secret);
  const { id = '', generation = 0 } = wallet.info().protection;
  wallet.close();

  const measured = await alternate(
    (samples) =>
      timed(samples, 'whole', async () => {
        const k = await release(samples, set, custodians, { id, generation });
        try {
          await timed(samples, 'open', async () => (await Wallet.open(path, { custody: k })).close());
        } finally {
          wipe(k);
        }
      }),
    (samples) => raw.run(samples, 'open', path),
  );
  reportFigures('wallet.custody-unseal', measured, ['request', 'approval', 'combine', 'open']);
}

async function approvalBench(dir: string, custodians: readonly Custodian[], raw: RawLimit): Promise<void> {
  const path = join(dir, 'custody-approval.db');
  const { set, secret } = await newSet(custodians, 'approval');
  const wallet = await Wallet.create(path, rawSecret(randomBytes(32)));
  try {
    wallet.createKey('master', 'ed25519');
    await wallet.protect({ custody: { factor: factorOf(set), secret } });
    wallet.sealKeyUnderCustody('master', secret);
    wipe(secret);
    const { id = '', generation = 0 } = wallet.info().protection;
    const message = randomBytes(64);
    const operation: CustodyOperation = {
      kind: 'sign',
      key: 'master',
      digest: toBase64url(sha256(message)),
      summary: `sign ${message.length} bytes with master key 'master'`,
    };

    const measured = await alternate(
      (samples) =>
        timed(samples, 'whole', async () => {
          const k = await release(samples, set, custodians, { id, generation }, operation);
          try {
            await timed(samples, 'sign', () => wallet.signWithCustody('master', message, k));
          } finally {
            wipe(k);
          }
        }),
      (samples) => raw.run(samples, 'sign', path),
    );
    reportFigures('wallet.custody-approval', measured, ['sign']);
  } finally {
    wallet.close();
  }
}

export async function custodyBench(dir: string): Promise<void> {
  const custodians = newCustodians();
  const raw = new RawLimit();
  await raw.prepare();
  await unsealBench(dir, custodians, raw);
  await approvalBench(dir, custodians, raw);
}
