/**
 * Crash trials: a child process (crash-child.mjs, on the compiled wallet in dist/) rekeys a
 * wallet, or puts items into it, in a loop and is SIGKILLed at a random moment. After every
 * kill the wallet must open with exactly one of the two secrets (the other failing with
 * WALLET_BAD_PASSPHRASE), at the key version the acknowledgements allow, and every
 * acknowledged item must be intact. One wallet is reused across the trials of a kind, so the
 * kills also land on a wallet that earlier kills left behind.
 *
 * The random delays come from a seeded generator; set DKMS_CRASH_SEED to replay a run. Every
 * failure message carries the seed, the trial and the delay.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DkmsError } from '../../src/errors.js';
import { Wallet, passphraseSecret, rawSecret, type Unlock, type WalletSecret } from '../../src/wallet/index.js';
import { seededDelays } from '../helpers/seeded.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { crashTimeout, crashTrials, killLiveChildren, runChild as runChildScript, type ChildRun } from '../helpers/kill-child.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD = join(HERE, 'crash-child.mjs');

const RAW_REKEY_TRIALS = crashTrials(25);
const PASSPHRASE_REKEY_TRIALS = crashTrials(5);
const CUSTODY_ROTATION_TRIALS = crashTrials(12);
const PUT_TRIALS = crashTrials(25);
/** Upper bounds of the random kill delay, counted from the child's "ready". */
const RAW_REKEY_MAX_DELAY_MS = 150;
const PASSPHRASE_REKEY_MAX_DELAY_MS = 600;
const PUT_MAX_DELAY_MS = 150;
/** A child that is not ready by then is stuck; the trial fails rather than hangs. */

const { seed: SEED, between } = seededDelays('DKMS_CRASH_SEED');
const delayUpTo = (max: number): number => between(0, max);

// Secrets, as the child receives them and as the parent uses them.

/** A raw key, a passphrase, or a custody secret (a wallet its custodians unseal: "rekeyed" by rotating them). */
type SecretSpec = { kind: 'raw'; hex: string } | { kind: 'passphrase'; passphrase: string } | { kind: 'custody'; hex: string };

type RawSpec = { kind: 'raw'; hex: string };

function toSecret(spec: Exclude<SecretSpec, { kind: 'custody' }>): WalletSecret {
  return spec.kind === 'raw' ? rawSecret(new Uint8Array(Buffer.from(spec.hex, 'hex'))) : passphraseSecret(spec.passphrase);
}

/** What opens the wallet for `spec`: its secret, or its custodians' secret. */
function toUnlock(spec: SecretSpec): WalletSecret | Unlock {
  return spec.kind === 'custody' ? { custody: new Uint8Array(Buffer.from(spec.hex, 'hex')) } : toSecret(spec);
}

/** A custody factor for an unseal-mode wallet, as the custody part writes one (the wallet treats the document as opaque). */
const custodyFactor = (epoch: number) => ({ set: `crash-trial-set-${epoch}`, epoch, mode: 'unseal' as const, document: JSON.stringify({ epoch }) });

const rawSpec = (): RawSpec => ({ kind: 'raw', hex: randomBytes(32).toString('hex') });
const custodySpec = (): SecretSpec => ({ kind: 'custody', hex: randomBytes(32).toString('hex') });

// The items of put mode: the same functions as in crash-child.mjs.

function itemName(index: number): string {
  return `item-${String(index).padStart(6, '0')}`;
}

const valueCache = new Map<number, Uint8Array>();

function itemValue(index: number): Uint8Array {
  const cached = valueCache.get(index);
  if (cached !== undefined) return cached;
  const name = itemName(index);
  const length = 32 + ((index * 997) % 6000);
  const blocks: Buffer[] = [];
  for (let i = 0; blocks.length * 32 < length; i++) blocks.push(createHash('sha256').update(`${name}:${i}`).digest());
  const value = new Uint8Array(Buffer.concat(blocks).subarray(0, length));
  valueCache.set(index, value);
  return value;
}

function itemTags(index: number): Record<string, string> {
  return { index: String(index), parity: index % 2 === 0 ? 'even' : 'odd' };
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

// Running a child to its death.

const runChild = (config: object, delayMs: number): Promise<ChildRun> => runChildScript(CHILD, config, delayMs);

/** The acknowledged payloads ("ack <x>") of a run that was killed after "ready". */
function acksOf(run: ChildRun, where: string): string[] {
  const output = `${where}: exit ${String(run.code)} signal ${String(run.signal)}; stderr: ${run.stderr.trim() || '(none)'}${codeChangedNote()}`;
  expect(run.signal, `the child should die by our SIGKILL (${output})`).toBe('SIGKILL');
  expect(run.lines[0], `the child should have said ready (${output})`).toBe('ready');
  const acks = run.lines.slice(1);
  for (const line of acks) expect(line, `unexpected child output (${output})`).toMatch(/^ack \S+$/);
  // A kill between a line's bytes would leave a prefix of "ack ..."; such a line is not an ack.
  expect(run.partial, `a partial line should only be a prefix of an ack (${output})`).toSatisfy((p: string) => 'ack '.startsWith(p) || p.startsWith('ack '));
  return acks.map((line) => line.slice(4));
}

/** Opens with `secret`: the wallet, or undefined if the secret is wrong (WALLET_BAD_PASSPHRASE). */
async function tryOpen(path: string, secret: WalletSecret | Unlock, where: string): Promise<Wallet | undefined> {
  try {
    // No waiting: the killed child's exclusive lock must be gone as soon as it is dead.
    return await Wallet.open(path, secret, { busyTimeoutMs: 0 });
  } catch (e) {
    if (e instanceof DkmsError && e.code === 'WALLET_BAD_PASSPHRASE') return undefined;
    const detail = e instanceof DkmsError ? `${e.code}: ${e.message}` : String(e);
    throw new Error(`${where}: opening failed otherwise than with WALLET_BAD_PASSPHRASE (${detail})${codeChangedNote()}`, { cause: e });
  }
}

/** Runs `check`, giving a wallet error the trial's context (assertion failures carry their own). */
async function inContext<T>(where: string, check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (e) {
    if (e instanceof DkmsError) throw new Error(`${where}: ${e.code}: ${e.message}${codeChangedNote()}`, { cause: e });
    throw e;
  }
}

const guard = new DistGuard(['wallet', 'crypto']);
const codeChangedNote = (): string => guard.changedNote();

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dkms-crash-'));
  guard.start();
});

afterAll(() => {
  killLiveChildren();
  rmSync(dir, { recursive: true, force: true });
});

// Rekey trials

/** Items put before the rekey trials; they must survive every kill unchanged. */
const FIXTURES: ReadonlyArray<{ category: string; name: string; value: Uint8Array; tags: Record<string, string> }> = [
  { category: 'notes', name: 'first', value: new Uint8Array(randomBytes(48)), tags: { kind: 'note' } },
  { category: 'notes', name: 'second', value: new Uint8Array(randomBytes(5000)), tags: { kind: 'note', big: 'yes' } },
  { category: 'creds', name: 'db', value: new Uint8Array(randomBytes(1)), tags: {} },
];

function checkFixtures(wallet: Wallet, where: string): void {
  for (const f of FIXTURES) {
    const item = wallet.get(f.category, f.name);
    expect(sameBytes(item.value, f.value), `${where}: item ${f.category}/${f.name} has a different value`).toBe(true);
    expect(item.tags, `${where}: item ${f.category}/${f.name} has different tags`).toEqual(f.tags);
  }
  expect(wallet.find({ category: 'notes' }).length, `${where}: notes`).toBe(2);
  expect(wallet.getKey('signer').type, `${where}: key`).toBe('ed25519');
}

interface RekeyState {
  /** Which of the two secrets opens the wallet now. */
  current: 0 | 1;
  keyVersion: number;
}

interface RekeyStats {
  trials: number;
  /** Kills after a rekey committed but before its ack was read: the wallet opened with the next secret. */
  midRekey: number;
  acks: number;
}

async function createRekeyWallet(path: string, first: SecretSpec, kdfTier?: 'interactive'): Promise<RekeyState> {
  const wallet = await Wallet.create(path, first.kind === 'custody' ? toSecret(rawSpec()) : toSecret(first), kdfTier === undefined ? {} : { kdfTier });
  try {
    for (const f of FIXTURES) wallet.put(f.category, f.name, f.value, f.tags);
    wallet.createKey('signer', 'ed25519');
    // Under custodians who unseal it: their secret alone opens it from here on.
    if (first.kind === 'custody') await wallet.protect({ custody: { factor: custodyFactor(1), secret: Buffer.from(first.hex, 'hex') }, secret: null });
    return { current: 0, keyVersion: wallet.info().keyVersion };
  } finally {
    wallet.close();
  }
}

async function rekeyTrial(
  path: string,
  specs: readonly [SecretSpec, SecretSpec],
  state: RekeyState,
  stats: RekeyStats,
  delayMs: number,
  where: string,
  kdfTier?: 'interactive',
): Promise<void> {
  const run = await runChild({ mode: 'rekey', path, secrets: specs, current: state.current, kdfTier }, delayMs);
  const acks = acksOf(run, where);
  acks.forEach((ack, i) => expect(ack, `${where}: acks out of order`).toBe(String(i + 1)));
  const n = acks.length;
  const acked = ((state.current + n) % 2) as 0 | 1;
  const next = (1 - acked) as 0 | 1;
  const context = `${where}, ${n} rekeys acknowledged`;

  // Try both secrets, the wrong one first in every other trial: a failed open changes nothing.
  const order: Array<0 | 1> = stats.trials % 2 === 0 ? [0, 1] : [1, 0];
  const opened: Array<0 | 1> = [];
  for (const i of order) {
    const wallet = await tryOpen(path, toUnlock(specs[i]), `${context}, secret ${i}`);
    if (wallet === undefined) continue;
    try {
      opened.push(i);
      const { keyVersion } = wallet.info();
      // Acknowledged rekeys are durable; at most the one in flight may have landed besides.
      const expected = i === acked ? state.keyVersion + n : state.keyVersion + n + 1;
      expect(keyVersion, `${context}: secret ${i} opens the wallet at the wrong key version`).toBe(expected);
      await inContext(`${context}, secret ${i}`, () => checkFixtures(wallet, context));
    } finally {
      wallet.close();
    }
  }
  expect(opened, `${context}: exactly one secret must open the wallet`).toHaveLength(1);
  const winner = opened[0] as 0 | 1;
  if (winner === next) stats.midRekey++;
  stats.acks += n;
  stats.trials++;
  state.current = winner;
  state.keyVersion += winner === acked ? n : n + 1;
}

// Put trials

const PUT_CATEGORY = 'crash';

/**
 * Checks the put wallet after a kill: items 0..acked-1 are all there with their values and
 * tags, item `acked` (the one in flight) may be there too and then whole, and nothing else.
 * Returns how many items are stored.
 */
function checkPuts(wallet: Wallet, acked: number, fullTagScan: boolean, context: string): number {
  const items = wallet.find({ category: PUT_CATEGORY });
  expect([acked, acked + 1], `${context}: ${items.length} items found`).toContain(items.length);
  const byName = new Map(items.map((item) => [item.name, item]));
  expect(byName.size, `${context}: duplicate names`).toBe(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = byName.get(itemName(i));
    if (item === undefined) throw new Error(`${context}: item ${itemName(i)} is missing`);
    // Thousands of items per trial: compare cheaply, and let expect report only a mismatch.
    if (!sameBytes(item.value, itemValue(i))) expect.fail(`${context}: item ${itemName(i)} has a different value`);
    const tags = itemTags(i);
    if (Object.keys(item.tags).length !== 2 || item.tags.index !== tags.index || item.tags.parity !== tags.parity) {
      expect(item.tags, `${context}: item ${itemName(i)} has different tags`).toEqual(tags);
    }
  }
  // The items the kill came near are found by name and by their tags too (their index entries
  // landed with them); on a full scan, every item is looked up by tag (it reads everything again).
  for (let i = Math.max(0, acked - 2); i < items.length; i++) {
    expect(sameBytes(wallet.get(PUT_CATEGORY, itemName(i)).value, itemValue(i)), `${context}: get ${itemName(i)}`).toBe(true);
    const found = wallet.find({ category: PUT_CATEGORY, tags: itemTags(i) }).map((item) => item.name);
    expect(found, `${context}: find ${itemName(i)} by its tags`).toEqual([itemName(i)]);
  }
  if (fullTagScan) {
    const even = wallet.find({ category: PUT_CATEGORY, tags: { parity: 'even' } }).length;
    expect(even, `${context}: items tagged even`).toBe(Math.ceil(items.length / 2));
  }
  return items.length;
}

describe('wallet crash trials', () => {
  it(
    `rekey with raw keys survives ${RAW_REKEY_TRIALS} SIGKILLs at random moments`,
    async ({ annotate }) => {
      const path = join(dir, 'rekey-raw.wallet');
      const specs = [rawSpec(), rawSpec()] as const;
      const state = await createRekeyWallet(path, specs[0]);
      const stats: RekeyStats = { trials: 0, midRekey: 0, acks: 0 };
      for (let t = 0; t < RAW_REKEY_TRIALS; t++) {
        const delay = delayUpTo(RAW_REKEY_MAX_DELAY_MS);
        await rekeyTrial(path, specs, state, stats, delay, `seed ${SEED}, raw rekey trial ${t}, kill ${delay} ms after ready`);
      }
      expect(stats.trials).toBe(RAW_REKEY_TRIALS);
      await annotate(`seed ${SEED}: ${stats.trials} kills, ${stats.acks} rekeys acknowledged, ${stats.midRekey} kills after an unacknowledged rekey committed`);
    },
    crashTimeout(120_000),
  );

  it(
    `rekey with passphrases (Argon2id) survives ${PASSPHRASE_REKEY_TRIALS} SIGKILLs`,
    async ({ annotate }) => {
      const path = join(dir, 'rekey-passphrase.wallet');
      const specs = [
        { kind: 'passphrase', passphrase: 'correct horse battery staple' },
        { kind: 'passphrase', passphrase: 'tr0ub4dor & 3, the sequel' },
      ] as const satisfies readonly [SecretSpec, SecretSpec];
      const state = await createRekeyWallet(path, specs[0], 'interactive');
      const stats: RekeyStats = { trials: 0, midRekey: 0, acks: 0 };
      for (let t = 0; t < PASSPHRASE_REKEY_TRIALS; t++) {
        const delay = delayUpTo(PASSPHRASE_REKEY_MAX_DELAY_MS);
        const where = `seed ${SEED}, passphrase rekey trial ${t}, kill ${delay} ms after ready`;
        await rekeyTrial(path, specs, state, stats, delay, where, 'interactive');
      }
      expect(stats.trials).toBe(PASSPHRASE_REKEY_TRIALS);
      await annotate(`seed ${SEED}: ${stats.trials} kills, ${stats.acks} rekeys acknowledged, ${stats.midRekey} kills after an unacknowledged rekey committed`);
    },
    crashTimeout(120_000),
  );

  it(
    `custodian rotation (an unseal-mode wallet re-keyed to a new custody secret) survives ${CUSTODY_ROTATION_TRIALS} SIGKILLs`,
    async ({ annotate }) => {
      const path = join(dir, 'rotate-custody.wallet');
      const specs = [custodySpec(), custodySpec()] as const;
      const state = await createRekeyWallet(path, specs[0]);
      const stats: RekeyStats = { trials: 0, midRekey: 0, acks: 0 };
      for (let t = 0; t < CUSTODY_ROTATION_TRIALS; t++) {
        const delay = delayUpTo(RAW_REKEY_MAX_DELAY_MS);
        await rekeyTrial(path, specs, state, stats, delay, `seed ${SEED}, custody rotation trial ${t}, kill ${delay} ms after ready`);
      }
      expect(stats.trials).toBe(CUSTODY_ROTATION_TRIALS);
      await annotate(
        `seed ${SEED}: ${stats.trials} kills, ${stats.acks} rotations acknowledged, ${stats.midRekey} kills after an unacknowledged rotation committed`,
      );
    },
    crashTimeout(120_000),
  );

  it(
    `puts survive ${PUT_TRIALS} SIGKILLs at random moments`,
    async ({ annotate }) => {
      const path = join(dir, 'put.wallet');
      const spec = rawSpec();
      (await Wallet.create(path, toSecret(spec))).close();
      let count = 0;
      let inFlightLanded = 0;
      for (let t = 0; t < PUT_TRIALS; t++) {
        const delay = delayUpTo(PUT_MAX_DELAY_MS);
        const where = `seed ${SEED}, put trial ${t}, kill ${delay} ms after ready`;
        const run = await runChild({ mode: 'put', path, secret: spec, category: PUT_CATEGORY, start: count }, delay);
        const acks = acksOf(run, where);
        acks.forEach((ack, i) => expect(ack, `${where}: acks out of order`).toBe(itemName(count + i)));
        const acked = count + acks.length;
        const context = `${where}, items 0..${acked - 1} acknowledged`;

        const wallet = await tryOpen(path, toSecret(spec), context);
        if (wallet === undefined) throw new Error(`${context}: the secret no longer opens the wallet`);
        try {
          const stored = await inContext(context, () => checkPuts(wallet, acked, t % 10 === 9 || t === PUT_TRIALS - 1, context));
          if (stored > acked) inFlightLanded++;
          count = stored;
        } finally {
          wallet.close();
        }
      }
      await annotate(`seed ${SEED}: ${PUT_TRIALS} kills, ${count} items stored, ${inFlightLanded} kills after an unacknowledged put committed`);
    },
    crashTimeout(120_000),
  );
});
