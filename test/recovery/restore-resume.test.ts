/**
 * A restore is several steps: the backup found and checked, this device's keys and the
 * backup's items written with the profile, the recovery on the ledger, then the agency's routes,
 * each connection rotated, a fresh backup. Failed at each of them, before the server did it or
 * after (its answer lost), running the restore again in the same data directory ends as one
 * that never failed: one recovery key spent, the owner's DID kept, each connection rotated once
 * with no keys left behind, nothing in the wallet twice. A failure before anything is written
 * leaves the wallet as it was.
 */
import { describe, expect, it } from 'vitest';

import { connections, inbox, sendText } from '../../src/agent/connections.js';
import type { EdgeAgent } from '../../src/agent/edge-agent.js';
import { initFirstAgent, registerCloudAgent } from '../../src/agent/provision.js';
import { DkmsError } from '../../src/errors.js';
import { restoreFromSecret, type RestoreOptions } from '../../src/recovery/restore.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { readSetup } from '../../src/recovery/state.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { withFaults, type Failure, type Faults } from '../helpers/faults.js';
import { connect, drain, world, type World } from '../helpers/world.js';
import { CATEGORIES } from '../../src/agent/agent-store.js';
import { RECOVERY_CATEGORIES } from '../../src/recovery/categories.js';

const copy = (secret: Uint8Array) => Uint8Array.from(secret);

/** Alice with a public DID, a cloud agent, a connection with Bob, and a paper wallet. */
async function aliceWithPaper(): Promise<{ w: World; alice: EdgeAgent; bob: EdgeAgent; secret: Uint8Array }> {
  const w = await world();
  const alice = await w.newAgent();
  await initFirstAgent(alice, { label: 'alice', ledgerUrl: w.ledgerUrl, did: { services: [] } });
  await registerCloudAgent(alice, w.agencyUrl, 0);
  const bob = await w.makeOwner('bob');
  await connect(alice, bob);
  const { secret } = await prepareRecovery(alice, { offline: true, delay: 0 });
  expect((await commitRecovery(alice)).state).toBe('committed');
  return { w, alice, bob, secret };
}

/** What a restore that never failed leaves, on the ledger, in the new device's wallet, and with Bob. */
async function expectRestored(
  alice: EdgeAgent,
  bob: EdgeAgent,
  device: EdgeAgent,
  secret: Uint8Array,
  before: { seq: number; revealed: readonly string[] },
): Promise<void> {
  const keys = new RecoveryKeys(copy(secret));
  const record = await device.policy();
  expect(record.seq).toBe(before.seq + 1);
  expect(record.policy.revealed).toEqual([...before.revealed, keys.signer(0).digest].sort());
  expect(record.policy.recovery.digests).toEqual([keys.signer(1).digest]);
  expect(record.policy.agents.map((a) => a.key).sort()).toEqual([device.profile.key, alice.cloud().key].sort());
  expect(device.profile).toMatchObject({ policy: alice.profile.policy, did: alice.profile.did, cloud: alice.profile.cloud });
  // Nothing left to resume, the setup pointed at R's next key, a backup made.
  expect(device.wallet.find({ category: RECOVERY_CATEGORIES.recovery }).map((i) => i.name)).toEqual(['setup']);
  expect(readSetup(device)).toMatchObject({ backupKey: keys.backupKey, locator: keys.locator, index: 1, lastBackup: expect.anything() });
  // One connection, rotated once: the backed-up pair and the new pair, no other keys left behind.
  const [connection, ...others] = connections(device);
  expect(others).toEqual([]);
  expect(connection?.rotating).toBeUndefined();
  expect(connection?.myLog.filter((e) => e.type === 'conn.rotate')).toHaveLength(1);
  expect(device.wallet.listKeys().filter((k) => k.name.startsWith('conn-'))).toHaveLength(4);
  // Bob takes the rotation, and the connection works both ways.
  await drain(bob);
  expect(connections(bob)[0]?.flags).toEqual([]);
  await sendText(device, 'bob', 'it is me, on a new device');
  await sendText(bob, 'alice', 'welcome back');
  await drain(bob);
  await drain(device);
  expect(inbox(bob).map((m) => m.content)).toContain('it is me, on a new device');
  expect(inbox(device).map((m) => m.content)).toContain('welcome back');
  keys.wipe();
}

interface Step {
  readonly name: string;
  readonly failures: readonly Failure[];
  /** The code the first run fails with; undefined when the restore takes effect and reports the failure as a warning. */
  readonly code?: 'AGENCY_UNREACHABLE' | 'LEDGER_UNREACHABLE' | 'IO_ERROR';
  /** Whether the failed run wrote nothing at all. */
  readonly nothingWritten?: boolean;
  /** Whether it stopped with the backup's items written and no profile yet. */
  readonly itemsWritten?: boolean;
  /** Whether it stopped with the profile and the step reached written (which come before the ledger hears of the recovery). */
  readonly profileWritten?: boolean;
  arm(device: EdgeAgent, faults: Faults, failure: Failure): void;
}

const inbound = ({ method, path }: { method: string; path: string }) => method === 'POST' && path === '/v1/inbound';

const STEPS: readonly Step[] = [
  {
    name: 'finding the backup',
    failures: ['before'],
    code: 'AGENCY_UNREACHABLE',
    nothingWritten: true,
    arm: (_d, f, x) => f.arm(({ method, path }) => method === 'GET' && path.startsWith('/v1/backups/'), 0, x),
  },
  {
    name: "checking the owner's DID on the ledger",
    failures: ['before'],
    code: 'LEDGER_UNREACHABLE',
    nothingWritten: true,
    arm: (device) => {
      const real = device.ledger.resolveDidRecord.bind(device.ledger);
      let failed = false;
      device.ledger.resolveDidRecord = async (...args) => {
        if (failed) return real(...args);
        failed = true;
        throw new DkmsError('LEDGER_UNREACHABLE', 'injected: the ledger did not answer');
      };
    },
  },
  {
    name: 'writing the profile after the items',
    failures: ['before'],
    code: 'IO_ERROR',
    itemsWritten: true,
    arm: (device) => {
      const real = device.wallet.transaction.bind(device.wallet);
      let failed = false;
      device.wallet.transaction = <T>(fn: () => T): T => {
        if (failed) return real(fn);
        failed = true;
        throw new DkmsError('IO_ERROR', 'injected: the process stopped here');
      };
    },
  },
  {
    name: 'the recovery on the ledger',
    failures: ['before', 'after'],
    code: 'LEDGER_UNREACHABLE',
    profileWritten: true,
    arm: (_d, f, x) => f.armLedger((e) => e.type === 'policy.recover', 0, x),
  },
  { name: "the agency's routes", failures: ['before'], arm: (_d, f, x) => f.arm(({ path }) => path.endsWith('/sync'), 0, x) },
  { name: 'the rotation of the connection', failures: ['before', 'after'], arm: (_d, f, x) => f.arm(inbound, 0, x) },
  {
    name: 'the backup after the recovery',
    failures: ['before'],
    arm: (_d, f, x) => f.arm(({ method, path }) => method === 'POST' && path.endsWith('/backups'), 0, x),
  },
];

describe('a restore failed at each step finishes when run again in the same data directory', () => {
  for (const step of STEPS) {
    for (const failure of step.failures) {
      it(`${step.name}: ${failure === 'before' ? 'failed before it was done' : 'done, its answer lost'}`, async () => {
        const { w, alice, bob, secret } = await aliceWithPaper();
        const record = await alice.policy();
        const before = { seq: record.seq, revealed: record.policy.revealed };
        const base = await w.newAgent();
        const { agent: device, faults } = withFaults(base);
        step.arm(device, faults, failure);
        const options: RestoreOptions = { agency: w.agencyUrl };
        const faulty: RestoreOptions = { ...options, ...(device.options.fetch === undefined ? {} : { fetch: device.options.fetch }) };

        if (step.code !== undefined) {
          await expectCodeAsync(restoreFromSecret(device, copy(secret), faulty), step.code);
          expect(device.store.hasProfile()).toBe(step.profileWritten === true);
          if (step.code === 'LEDGER_UNREACHABLE' && failure === 'before') expect((await alice.policy()).seq).toBe(before.seq);
          if (step.nothingWritten === true) {
            expect(device.wallet.listKeys()).toEqual([]);
            expect([...Object.values(CATEGORIES), ...Object.values(RECOVERY_CATEGORIES)].flatMap((category) => device.wallet.find({ category }))).toEqual([]);
          }
          if (step.itemsWritten === true) expect(connections(device)).toHaveLength(1);
        } else {
          // The ledger took the recovery: what failed after it is a warning, kept to retry.
          const first = await restoreFromSecret(device, copy(secret), faulty);
          expect(first.state).toBe('recovered');
          expect('warnings' in first && first.warnings.length).toBe(1);
          expect(
            device.wallet
              .find({ category: RECOVERY_CATEGORIES.recovery })
              .map((i) => i.name)
              .sort(),
          ).toEqual(['after-restore', 'setup']);
        }
        const again = await restoreFromSecret(base, copy(secret), options);
        expect(again).toMatchObject({ state: 'recovered', backupBy: alice.profile.key, warnings: [] });
        expect(again.items).toBeGreaterThan(0);
        await expectRestored(alice, bob, base, secret, before);
        // Done: a restore into this data directory now is refused, and changes nothing.
        await expectCodeAsync(restoreFromSecret(base, copy(secret), options), 'AGENT_EXISTS');
      });
    }
  }
});
