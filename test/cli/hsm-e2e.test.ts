/**
 * Hardware tokens as a user meets them through `dkms` (docs/hsm.md), against a SoftHSM2 token of
 * the test's own: keys made in the token (named by a PKCS#11 URI) are listed as there, sign a file
 * and a ledger policy that the ledger accepts; a wallet bound to the token opens only with it;
 * a wrong PIN, a missing PIN, a missing token, a missing module and a PIN in the URI each give
 * their code; an older copy of the bound wallet is WALLET_ROLLED_BACK.
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DKMS_BIN, expectExit, expectOk, json, runNode } from '../helpers/cli.js';
import { startLedger } from '../helpers/lying.js';
import { SOFTHSM_MODULE, TOKEN_PIN, softhsmSuite } from '../helpers/softhsm.js';
import { suiteDirs, tempDir } from '../helpers/tmp.js';

const PASSPHRASE = 'the token test passphrase';

describe('hardware tokens through the CLI', () => {
  const dirs = suiteDirs('dkms-hsm-cli-');
  const conf = softhsmSuite(dirs, ['owner']);

  it('makes keys in the token that sign files and ledger events, binds the wallet to it, and refuses without it', async () => {
    const dir = tempDir('dkms-hsm-cli-');
    writeFileSync(join(dir, 'pin'), `${TOKEN_PIN}\n`, { mode: 0o600 });
    const base = { SOFTHSM2_CONF: conf(), DKMS_HOME: join(dir, 'home'), DKMS_PASSPHRASE: PASSPHRASE };
    const run = (args: readonly string[], env: Record<string, string> = {}) => runNode([DKMS_BIN, ...args], { ...base, ...env }, undefined, dir);
    const withPin = (args: readonly string[]) => run(args, { DKMS_HSM_PIN: TOKEN_PIN });

    expectOk(await run(['wallet', 'create', '--kdf-tier', 'interactive']));
    // A PIN in the URI would be on the command line: refused before anything is done.
    expectExit(await run(['key', 'create', '--type', 'ed25519', '--name', 'admin', '--hsm', `pkcs11:token=owner?pin-value=${TOKEN_PIN}`]), 'BAD_INPUT');
    const uri = `pkcs11:token=owner;object=admin-key?module-path=${SOFTHSM_MODULE}&pin-source=file:${join(dir, 'pin')}`;
    const admin = json<{ publicKey: string; location: string; token: { label: string } }>(
      expectOk(await run(['--json', 'key', 'create', '--type', 'ed25519', '--name', 'admin', '--hsm', uri])),
    );
    expect(admin).toMatchObject({ location: 'token:owner', token: { label: 'admin-key' } });
    expectOk(await withPin(['key', 'create', '--type', 'ed25519', '--name', 'recovery', '--hsm', '--token', 'owner', '--module', SOFTHSM_MODULE]));
    expectOk(await withPin(['key', 'create', '--type', 'ed25519', '--name', 'soft']));
    const listed = json<{ keys: { name: string; location: string }[] }>(expectOk(await withPin(['--json', 'key', 'list']))).keys;
    expect(listed.map((k) => `${k.name}:${k.location}`)).toEqual(['admin:token:owner', 'recovery:token:owner', 'soft:wallet']);

    writeFileSync(join(dir, 'doc.txt'), 'signed inside the token');
    const signed = json<{ signature: string }>(expectOk(await withPin(['--json', 'key', 'sign', '--name', 'admin', '--in', 'doc.txt'])));
    expectOk(await run(['key', 'verify', '--public-key', admin.publicKey, '--signature', signed.signature, '--in', 'doc.txt']));

    // A policy whose first agent's key and recovery key never left the token: the ledger accepts it.
    const ledger = await startLedger(dirs());
    const trust = ['--ledger', ledger.url, '--trust', ledger.signer.multikey];
    const policy = json<{ subject: string }>(expectOk(await withPin(['--json', 'policy', 'create', '--key', 'admin', '--recovery-key', 'recovery', ...trust])));
    expect(policy.subject).toMatch(/^policy:/);
    const shown = json<{ policy: { agents: { key: string }[] } }>(expectOk(await run(['--json', 'policy', 'show', '--policy', policy.subject, ...trust])));
    expect(shown.policy.agents.map((a) => a.key)).toEqual([admin.publicKey]);

    // Keys in the token need its PIN: a wrong one, none (no terminal), a token not there, a module not there.
    expectExit(await run(['key', 'list'], { DKMS_HSM_PIN: 'not-the-pin' }), 'HSM_PIN_WRONG');
    expectExit(await run(['key', 'list']), 'BAD_INPUT');

    // Bound to the token: it opens only with the token and the passphrase.
    const bound = json<{ protection: { token: { token: string; key: string } } }>(
      expectOk(await withPin(['--json', 'wallet', 'bind-token', '--token', 'owner', '--module', SOFTHSM_MODULE])),
    );
    expect(bound.protection.token).toMatchObject({ token: 'owner', key: 'dkms-wallet' });
    const copy = join(dir, 'copy.db');
    copyFileSync(join(dir, 'home', 'wallet.db'), copy);
    // Another token store, where the token is not (the token unplugged).
    const empty = dirs();
    writeFileSync(join(empty, 'softhsm2.conf'), `directories.tokendir = ${empty}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    expectExit(await run(['key', 'list'], { DKMS_HSM_PIN: TOKEN_PIN, SOFTHSM2_CONF: join(empty, 'softhsm2.conf') }), 'HSM_TOKEN_NOT_FOUND');
    expectExit(await run(['key', 'list'], { DKMS_HSM_PIN: TOKEN_PIN, DKMS_HSM_MODULE: join(dir, 'no-module.so') }), 'HSM_UNAVAILABLE');
    expectExit(await run(['key', 'list'], { DKMS_HSM_PIN: TOKEN_PIN, DKMS_PASSPHRASE: 'not the passphrase' }), 'WALLET_BAD_PASSPHRASE');

    // A key made after the copy, then the copy put back: the token has seen a newer wallet.
    expectOk(await withPin(['key', 'create', '--type', 'ed25519', '--name', 'later']));
    copyFileSync(copy, join(dir, 'home', 'wallet.db'));
    expectExit(await withPin(['key', 'list']), 'WALLET_ROLLED_BACK');
  });

  it("makes a first agent whose signing key, holding every flag, is in the token: the ledger's policy names it", async () => {
    const dir = tempDir('dkms-hsm-cli-');
    const env = { SOFTHSM2_CONF: conf(), DKMS_HOME: join(dir, 'home'), DKMS_PASSPHRASE: PASSPHRASE, DKMS_HSM_PIN: TOKEN_PIN };
    const run = (args: readonly string[]) => runNode([DKMS_BIN, ...args], env, undefined, dir);
    const ledger = await startLedger(dirs());
    const trust = ['--ledger', ledger.url, '--trust', ledger.signer.multikey];
    const made = json<{ key: string; policy: string }>(
      expectOk(
        await run([
          '--json',
          'agent',
          'init',
          '--label',
          'vault',
          '--hsm',
          '--token',
          'owner',
          '--module',
          SOFTHSM_MODULE,
          '--kdf-tier',
          'interactive',
          ...trust,
        ]),
      ),
    );
    const keys = json<{ keys: { name: string; location: string; publicKey: string }[] }>(expectOk(await run(['--json', 'key', 'list']))).keys;
    expect(keys.find((k) => k.name === 'agent-sign')).toMatchObject({ location: 'token:owner', publicKey: made.key });
    const shown = json<{ policy: { agents: { key: string }[] } }>(expectOk(await run(['--json', 'policy', 'show', '--policy', made.policy, ...trust])));
    expect(shown.policy.agents.map((a) => a.key)).toEqual([made.key]);
    // Making a key in a token is recorded in the audit log.
    const audit = json<{ records: { op: string; outcome: string; detail: Record<string, unknown> }[] }>(expectOk(await run(['--json', 'audit', 'show'])));
    expect(audit.records.filter((r) => r.op === 'key-create').map((r) => `${r.outcome}:${String(r.detail['name'])}`)).toEqual([
      'started:agent-sign',
      'done:agent-sign',
    ]);
  });
});
