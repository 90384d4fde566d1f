/**
 * Recovery set up in steps, for the tests that fail it at each step: Alice and her trustees,
 * the agency requests a setup makes, and what a setup that never failed leaves behind.
 */
import { expect } from 'vitest';
import { fetchBackupIndex } from '../../src/agency/agency-client.js';
import { PROVISIONAL_RECOVERY_KEY } from '../../src/agent/agent-store.js';
import type { EdgeAgent } from '../../src/agent/edge-agent.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import type { PrepareOptions } from '../../src/recovery/setup.js';
import { readPrepared, readSetup, trustees } from '../../src/recovery/state.js';
import { answerOffer, heldShares, inviteTrustees, trusteeOffers } from '../../src/recovery/trustees.js';
import type { Failure, Faults } from './faults.js';
import { connect, settle, world, type World } from './world.js';

export const inbound = ({ method, path }: { method: string; path: string }) => method === 'POST' && path === '/v1/inbound';
export const backupPost = ({ method, path }: { method: string; path: string }) => method === 'POST' && path.endsWith('/backups');
export const describeFailure = (failure: Failure) => (failure === 'before' ? 'failed before the server did it' : 'done by the server, its answer lost');
export const copy = (secret: Uint8Array) => Uint8Array.from(secret);

/** Alice and `n` trustees connected to her; the first `accepted` of them accepted, the others only invited. No recovery set up yet. */
export async function aliceAndTrustees(n: number, accepted = n): Promise<{ w: World; alice: EdgeAgent; people: EdgeAgent[] }> {
  const w = await world();
  const alice = await w.makeOwner('alice');
  const people: EdgeAgent[] = [];
  for (let i = 1; i <= n; i++) {
    const t = await w.makeOwner(`trustee${i}`);
    await connect(alice, t);
    people.push(t);
  }
  await inviteTrustees(
    alice,
    people.map((t) => t.profile.label),
  );
  await settle(alice, ...people);
  for (const t of people.slice(0, accepted)) await answerOffer(t, (trusteeOffers(t)[0] as { id: string }).id, true);
  await settle(alice, ...people);
  return { w, alice, people };
}

export const social = (labels: string[], threshold: number): PrepareOptions => ({
  offline: true,
  social: { trustees: labels, threshold, insist: labels.length < 3 },
  delay: 0,
});

/**
 * What a setup of `secret` that never failed leaves, once every agent has handled its mail: the
 * ledger one commitment further, on `secret`'s key; the setup naming `holders`, each of whom
 * holds one share, active, of its set (nothing of an earlier attempt); no change left
 * prepared; `backups` versions under the secret's locator.
 */
export async function expectSetUp(
  w: World,
  alice: EdgeAgent,
  all: readonly EdgeAgent[],
  holders: readonly EdgeAgent[],
  secret: Uint8Array,
  seqBefore: number,
  backups: number,
): Promise<void> {
  await settle(alice, ...all);
  const keys = new RecoveryKeys(copy(secret));
  const record = await alice.policy();
  expect(record.seq).toBe(seqBefore + 1);
  expect(record.policy.recovery.digests).toEqual([keys.signer(0).digest]);
  expect(readPrepared(alice)).toBeUndefined();
  const setup = readSetup(alice);
  expect(setup).toMatchObject({ backupKey: keys.backupKey, locator: keys.locator, index: 0 });
  expect(alice.wallet.listKeys().some((k) => k.name === PROVISIONAL_RECOVERY_KEY)).toBe(false);
  const ids = trustees(alice)
    .filter((t) => holders.some((h) => h.profile.label === t.label))
    .map((t) => t.id);
  expect(setup?.social?.trustees.slice().sort()).toEqual(ids.sort());
  for (const t of holders) {
    expect(heldShares(t).flatMap((h) => h.shares.map((s) => ({ set: s.set, state: s.state })))).toEqual([{ set: setup?.social?.set, state: 'active' }]);
  }
  expect((await fetchBackupIndex(w.agencyUrl, keys.locator)).versions).toHaveLength(backups);
  keys.wipe();
}

export interface CommitStep {
  readonly name: string;
  readonly code: 'LEDGER_UNREACHABLE' | 'AGENCY_UNREACHABLE';
  /** Whether the ledger holds the commitment when this step fails. */
  readonly committed: boolean;
  /** A backup request: answered lost, it is stored once more when run again. */
  readonly backup?: boolean;
  arm(faults: Faults, failure: Failure): void;
}
