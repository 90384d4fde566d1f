import { join } from 'node:path';
import { ed25519Generate, ed25519Sign, encodePublicKey, x25519Generate } from '../../src/crypto/index.js';
import type { EventSigner } from '../../src/ledger/build.js';
import { LedgerNode, type NodeOptions, type NodeSigner } from '../../src/ledger/node.js';
import { SqliteLogStore } from '../../src/ledger/sqlite-store.js';
import { recoveryKeyDigest } from '../../src/policy/authority.js';
import type { Agent, RecoveryCommitment } from '../../src/policy/types.js';

export interface TestKey extends EventSigner {
  readonly kx: string;
  agent(flags: number): Agent;
}

/** A fresh agent: an Ed25519 signing key and an X25519 agreement key, held in memory. */
export function testKey(): TestKey {
  const pair = ed25519Generate();
  const publicKey = encodePublicKey('ed25519', pair.publicKey);
  const kx = encodePublicKey('x25519', x25519Generate().publicKey);
  return { publicKey, kx, sign: (m) => ed25519Sign(pair.privateKey, m), agent: (flags) => ({ key: publicKey, kx, flags }) };
}

export function commitment(keys: readonly EventSigner[], threshold = 1): RecoveryCommitment {
  return { digests: keys.map((k) => recoveryKeyDigest(k.publicKey)), threshold };
}

export function nodeSigner(): NodeSigner {
  const key = testKey();
  return { key: key.publicKey, sign: key.sign };
}

export async function openNode(dir: string, signer: NodeSigner = nodeSigner(), options: NodeOptions = {}): Promise<LedgerNode> {
  return LedgerNode.open(SqliteLogStore.open(join(dir, 'ledger.db')), signer, options);
}
