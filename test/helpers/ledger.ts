import { join } from 'node:path';
import { ed25519Generate, encodePublicKey, memorySigner, x25519Generate, type Signer } from '../../src/crypto/index.js';
import { LedgerNode, type NodeOptions } from '../../src/ledger/node.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import { recoveryKeyDigest } from '../../src/policy/authority.js';
import type { Agent, RecoveryCommitment } from '../../src/policy/types.js';

export interface TestKey extends Signer {
  readonly kx: string;
  agent(flags: number): Agent;
}

/** A fresh agent: an Ed25519 signing key and an X25519 agreement key, held in memory. */
export function testKey(): TestKey {
  const pair = ed25519Generate();
  const signer = memorySigner(pair.privateKey, pair.publicKey);
  const kx = encodePublicKey('x25519', x25519Generate().publicKey);
  return { ...signer, kx, agent: (flags) => ({ key: signer.multikey, kx, flags }) };
}

export function commitment(keys: readonly Signer[], threshold = 1): RecoveryCommitment {
  return { digests: keys.map((k) => recoveryKeyDigest(k.multikey)), threshold };
}

export function nodeSigner(): Signer {
  const pair = ed25519Generate();
  return memorySigner(pair.privateKey, pair.publicKey);
}

export async function openNode(dir: string, signer: Signer = nodeSigner(), options: NodeOptions = {}): Promise<LedgerNode> {
  return LedgerNode.open(SqliteLogStore.open(join(dir, 'ledger.db')), signer, options);
}
