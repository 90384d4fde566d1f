/**
 * Multi-step commands run again after a failure, and refused before their first step, through
 * real `dkms` processes on loopback. The failures are left by driving the laptop's agent in this
 * process (its wallet opened while no command holds it) through an agency request that fails;
 * then the same command a user would run again finishes the work: `agent pair` finishes the
 * pairing it confirmed, `agent accept` only waits (and, paired, says so again), `recovery
 * setup` finishes the change the ledger committed instead of making a new secret. A restore that
 * fails before it wrote anything leaves no wallet behind.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { completePairing, createInvitation, parseInvitation, type CreatedInvitation } from '../../src/agent/pairing.js';
import { ERROR_CODES } from '../../src/errors.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { FLAGS } from '../../src/policy/flags.js';
import { mnemonicFromSecret } from '../../src/recovery/paper.js';
import { RecoveryKeys } from '../../src/recovery/secret.js';
import { commitRecovery, prepareRecovery } from '../../src/recovery/setup.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { withFaults } from '../helpers/faults.js';
import { secretFile, suiteDirs } from '../helpers/tmp.js';
import { drainPairing, pairingRequest } from '../helpers/world.js';

type Owner = ReturnType<typeof owner>;
const BAD_INPUT = { code: 'BAD_INPUT', exit: ERROR_CODES.BAD_INPUT.exit };

// Each step takes up to about 11 s on two busy cores; the bound leaves five times that.
describe('multi-step commands, failed half way and run again, through real processes', { timeout: 60_000 }, () => {
  afterAll(killBackground);
  const lasting = suiteDirs();
  let services: { ledger: string; key: string; agency: string };
  let env: Record<string, string>;
  let laptop: Owner;
  let phone: Owner;
  let policy: string;
  let secret: Uint8Array;

  /** The laptop's agent in this process, for as long as `fn` runs. */
  async function asLaptop<T>(fn: (agent: EdgeAgent) => Promise<T>): Promise<T> {
    const wallet = await Wallet.open(join(laptop.home, 'wallet.db'), rawSecret(laptop.walletKey()));
    try {
      return await fn(new EdgeAgent(wallet, new LedgerClient({ url: services.ledger, trustedKeys: [services.key] })));
    } finally {
      wallet.close();
    }
  }

  const seq = async () => Number((await laptop.run(['policy', 'show', '--policy', policy]))['seq']);

  it('starts a ledger and an agency, and makes the laptop the first agent', async () => {
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: lasting() });
    services = JSON.parse(await server.nextLine()) as typeof services;
    env = { DKMS_LEDGER: services.ledger };
    laptop = owner(lasting(), env);
    phone = owner(lasting(), env);
    policy = String((await laptop.run(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes']))['policy']);
  });

  it('`agent pair` and `agent accept` refuse a bad label, and `agent pair` a confirmation it could not ask, before anything is written', async () => {
    expect(await laptop.fails(['agent', 'pair', '--label', '', '--yes'])).toEqual(BAD_INPUT);
    expect(await laptop.fails(['agent', 'pair', '--label', 'phone'])).toEqual(BAD_INPUT);
    expect(await phone.fails(['agent', 'accept', 'dkms-pair:e30', '--label', 'x'.repeat(65)])).toEqual(BAD_INPUT);
    expect(existsSync(join(phone.home, 'wallet.db'))).toBe(false);
  });

  it('`agent pair` run again finishes the pairing it confirmed; `agent accept` run again waits for it, then says it is paired', async () => {
    const before = await seq();
    const created = await asLaptop(async (a): Promise<CreatedInvitation> => createInvitation(a, { flags: FLAGS.PROVE, label: 'phone' }));
    // The phone answers; nobody confirms within its wait.
    const waited = await phone.fails(['agent', 'accept', created.text, '--passcode-file', secretFile(created.passcode), '--label', 'phone', '--wait', '1']);
    expect(waited.code).toBe('PAIRING_TIMEOUT');
    // The laptop takes the answer, the owner confirms, and the agency fails after the grant.
    await asLaptop(async (a) => {
      expect(pairingRequest(await drainPairing(a, created.invitation.id), created.invitation.id)).toBeDefined();
      const { agent: faulty, faults } = withFaults(a);
      faults.arm(({ path }) => path.endsWith('/sync'), 0, 'before');
      await expect(completePairing(faulty, created.invitation.id, true)).rejects.toMatchObject({ code: 'AGENCY_UNREACHABLE' });
    });
    expect(await seq()).toBe(before + 1);

    // Run again: no new invitation (one JSON line, the result), the same grant.
    const finished = await laptop.run(['agent', 'pair', '--yes']);
    expect(finished).toMatchObject({ label: 'phone', flags: ['PROVE'] });
    expect(await seq()).toBe(before + 1);
    // The phone already answered: no passcode is asked (none could be given here), it only waits.
    const invitation = parseInvitation(created.text);
    const accepted = await phone.run(['agent', 'accept', created.text, '--label', 'phone', '--wait', '30']);
    expect(accepted).toMatchObject({ policy: invitation.policy, key: finished['paired'], flags: ['PROVE'] });
    expect(await phone.run(['agent', 'accept', created.text, '--label', 'phone'])).toEqual(accepted);
    const agents = (await laptop.run(['agent', 'list']))['agents'] as Json[];
    expect(agents.find((a) => a['key'] === finished['paired'])).toMatchObject({ label: 'phone', flags: 'PROVE' });
  });

  it('`recovery setup` refuses what it could not finish before its first step, and run again finishes the change the ledger committed', async () => {
    const before = await seq();
    const notADir = join(lasting(), 'file');
    writeFileSync(notADir, 'x');
    expect(await laptop.fails(['recovery', 'setup'])).toEqual(BAD_INPUT);
    expect(await laptop.fails(['recovery', 'setup', '--offline', '--paper-dir', notADir])).toEqual(BAD_INPUT);
    expect(await laptop.fails(['recovery', 'setup', '--offline', '--backup-file', join(notADir, 'sub', 'backup')])).toEqual(BAD_INPUT);
    expect(await laptop.run(['recovery', 'status'])).toMatchObject({ setUp: false, prepared: null });
    expect(await seq()).toBe(before);

    // A setup whose commitment the ledger took, and whose backup after it failed.
    await asLaptop(async (a) => {
      secret = (await prepareRecovery(a, { offline: true, delay: 0 })).secret;
      const { agent: faulty, faults } = withFaults(a);
      faults.arm(({ method, path }) => method === 'POST' && path.endsWith('/backups'), 1, 'before');
      await expect(commitRecovery(faulty)).rejects.toMatchObject({ code: 'AGENCY_UNREACHABLE' });
    });
    expect(await seq()).toBe(before + 1);

    // Run again: the committed secret's setup is finished; no second secret, no new paper.
    const paperDir = join(lasting(), 'paper');
    mkdirSync(paperDir);
    const done = await laptop.run(['recovery', 'setup', '--offline', '--paper-dir', paperDir]);
    const keys = new RecoveryKeys(Uint8Array.from(secret));
    expect(done).toMatchObject({ state: 'committed', setup: { locator: keys.locator, backupKey: keys.backupKey } });
    expect(readdirSync(paperDir)).toEqual([]);
    expect(await seq()).toBe(before + 1);
    expect(await laptop.run(['recovery', 'status'])).toMatchObject({ setUp: true, prepared: null, lastBackup: expect.anything() });
    keys.wipe();
  });

  it('a restore that fails before it wrote anything leaves no wallet; the same restore then recovers', async () => {
    const device = owner(lasting(), env);
    const phrase = secretFile(mnemonicFromSecret(secret));
    const wallet = join(device.home, 'wallet.db');
    expect((await device.fails(['recovery', 'restore', '--mnemonic-file', phrase, '--backup-file', join(device.home, 'missing')])).code).toBe('IO_ERROR');
    expect(existsSync(wallet)).toBe(false);
    expect((await device.fails(['recovery', 'restore', '--mnemonic-file', phrase, '--agency', 'http://127.0.0.1:9'])).code).toBe('AGENCY_UNREACHABLE');
    expect(existsSync(wallet)).toBe(false);
    const restored = await device.run(['recovery', 'restore', '--mnemonic-file', phrase, '--agency', services.agency]);
    expect(restored).toMatchObject({ state: 'recovered', profile: { policy } });
    expect(existsSync(wallet)).toBe(true);
  });
});
