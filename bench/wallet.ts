/**
 * Wallet benchmark. Raw limits, measured in the same run on the same disk:
 * - put: one AES-256-GCM seal of the same value plus a bare SQLite insert, one transaction
 *   each, with the wallet's pragmas (WAL, synchronous=FULL, exclusive lock);
 * - get: a bare SQLite select by key plus one AES-256-GCM open;
 * - open: one Argon2id derivation at the tier's parameters.
 * Rekey time is reported at 1k, 10k and 100k items: it should not grow with the item count.
 * Signing in a PKCS#11 token (SoftHSM2), beside raw PKCS#11 signing and software: bench/token.ts.
 * Unseal and one approved signature under 3 of 5 custodians, beside the primitives they need: bench/custody.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KDF_TIERS, argon2idDerive, newArgon2idParams, open, randomBytes, seal, type KdfTier } from '../src/crypto/index.js';
import { Wallet, passphraseSecret, rawSecret } from '../src/wallet/index.js';
import { custodyBench } from './custody.js';
import { median, millis, opsPerSecond, report, round } from './report.js';
import { tokenSigning } from './token.js';

const VALUE_BYTES = 256;
const OPS = 3000;
const RUNS = 15;
const GET_ROUNDS = 5;

function rawStore(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (name TEXT PRIMARY KEY, value BLOB NOT NULL)');
  return db;
}

async function putAndGet(dir: string): Promise<void> {
  const value = randomBytes(VALUE_BYTES);
  const key = randomBytes(32);

  const db = rawStore(join(dir, 'raw.db'));
  const insert = db.prepare('INSERT INTO t (name, value) VALUES (?, ?)');
  const select = db.prepare<[string], { value: Buffer }>('SELECT value FROM t WHERE name = ?');
  const rawPut = opsPerSecond(OPS, (i) => insert.run(`item-${i}`, seal(key, value)));

  const wallet = await Wallet.create(join(dir, 'wallet.db'), rawSecret(randomBytes(32)));
  const tags = { kind: 'bench', owner: 'alice' };
  const put = opsPerSecond(OPS, (i) => wallet.put('bench', `item-${i}`, value, tags));

  // Reads are CPU-bound and short: alternate the two over several rounds and take medians.
  const rawGets: number[] = [];
  const gets: number[] = [];
  for (let round = 0; round < GET_ROUNDS; round++) {
    rawGets.push(opsPerSecond(OPS, (i) => open(key, new Uint8Array(select.get(`item-${(i * 7919) % OPS}`)?.value ?? []))));
    gets.push(opsPerSecond(OPS, (i) => wallet.get('bench', `item-${(i * 7919) % OPS}`)));
  }
  const rawGet = median(rawGets);
  const get = median(gets);
  db.close();
  wallet.close();

  report({
    bench: 'wallet.put',
    ops: OPS,
    valueBytes: VALUE_BYTES,
    opsPerSec: round(put, 0),
    rawOpsPerSec: round(rawPut, 0),
    ratio: round(put / rawPut),
    expected: '>= 0.5',
  });
  report({
    bench: 'wallet.get',
    ops: OPS,
    rounds: GET_ROUNDS,
    valueBytes: VALUE_BYTES,
    opsPerSec: round(get, 0),
    rawOpsPerSec: round(rawGet, 0),
    ratio: round(get / rawGet),
    expected: '>= 0.5',
  });
}

async function rekeyScaling(dir: string): Promise<void> {
  const secrets = [rawSecret(randomBytes(32)), rawSecret(randomBytes(32))] as const;
  const wallet = await Wallet.create(join(dir, 'rekey.db'), secrets[0]);
  const value = randomBytes(64);
  let items = 0;
  let turn = 0;
  const times: Record<number, number> = {};
  for (const target of [1_000, 10_000, 100_000]) {
    while (items < target) {
      const upTo = Math.min(target, items + 5_000);
      wallet.transaction(() => {
        for (; items < upTo; items++) wallet.put('bench', `item-${items}`, value);
      });
    }
    const runs: number[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await millis(() => wallet.rekey(secrets[++turn % 2] ?? secrets[0])));
    times[target] = median(runs);
    report({ bench: 'wallet.rekey', items: target, ms: round(times[target] ?? NaN, 3), runs: RUNS });
  }
  wallet.close();
  report({ bench: 'wallet.rekey.scaling', ratio100kTo1k: round((times[100_000] ?? NaN) / (times[1_000] ?? NaN)), expected: '~1 (flat)' });
}

async function openTimes(dir: string): Promise<void> {
  const passphrase = 'benchmark passphrase';
  for (const tier of Object.keys(KDF_TIERS) as KdfTier[]) {
    const path = join(dir, `open-${tier}.db`);
    (await Wallet.create(path, passphraseSecret(passphrase), { kdfTier: tier })).close();
    const openMs = await millis(async () => (await Wallet.open(path, passphraseSecret(passphrase))).close());
    const rawMs = await millis(() => argon2idDerive(passphrase, newArgon2idParams(tier)));
    const { memoryKiB, passes, lanes } = KDF_TIERS[tier];
    report({ bench: 'wallet.open', tier, memoryKiB, passes, lanes, ms: round(openMs, 1), rawArgon2idMs: round(rawMs, 1), ratio: round(openMs / rawMs) });
  }
}

export async function walletBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-'));
  try {
    await putAndGet(dir);
    await rekeyScaling(dir);
    await openTimes(dir);
    await tokenSigning(dir);
    await custodyBench(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
