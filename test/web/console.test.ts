/**
 * The owner console in a real browser (Debian's Chromium), on a real `dkms up` on loopback:
 * the owner logs in with the wallet passphrase (a wrong one is refused and said), sees both of
 * the identity's agents, revokes the second through the confirmation dialog, and the registry
 * explorer, verifying in the same browser, shows the revocation on the ledger; a backup is
 * made, while the CLI runs in the console's session; a recovery started elsewhere with the paper
 * shows as pending and is cancelled (the explorer then shows the cancel); the custodians of a master key and the
 * audit log of its use are shown; logging out locks the session the console started, and only
 * that one (with the owner's own session running, the login checks the passphrase against it);
 * stopping `up` locks it too. No page meets a browser problem but the refused logins' 401s.
 * (It replaces an API-only end-to-end test of the same story: the browser speaks the API.)
 * Screenshots: console-login, console-overview, console-revoke, console-after.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import type { ConsoleOverview } from '../../src/server/console-types.js';
import { rawSecret } from '../../src/wallet/index.js';
import { Wallet } from '../../src/wallet/wallet.js';
import { alive, background, dkms, endSessions, json, killBackground, type Json } from '../helpers/cli.js';
import { launchChromium, openPage, screenshot } from '../helpers/browser.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const PASSPHRASE = 'the console page passphrase';
const sessions: number[] = [];
let browser: Browser;

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
});
afterEach(killBackground);
afterEach(() => endSessions(sessions, 'SIGKILL'));

describe('the owner console in a browser', { timeout: 120_000 }, () => {
  it('logs in, shows the agents, revokes one after confirmation (the explorer then shows it on the ledger), backs up, and logs out', async () => {
    const home = tempDir('dkms-console-page-');
    const up = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: home });
    const services = JSON.parse(await up.nextLine()) as { ledger: string; agency: string; key: string; console: string };
    const bare = { DKMS_HOME: home, DKMS_LEDGER: services.ledger };
    const ok = async (args: readonly string[], env: Record<string, string> = { ...bare, DKMS_PASSPHRASE: PASSPHRASE }): Promise<Json> => {
      const run = await dkms([...args, '--json'], env);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
      return json(run);
    };
    const made = await ok(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes', '--kdf-tier', 'interactive']);
    const policy = String(made['policy']);
    const phone = String((await ok(['key', 'create', '--type', 'ed25519', '--name', 'phone']))['publicKey']);
    await ok(['policy', 'grant', '--policy', policy, '--agent', phone, '--flags', 'PROVE', '--key', 'agent-sign']);
    const paper = join(home, 'paper');
    mkdirSync(paper);
    // A recovery from this paper waits an hour on the ledger, during which ADMIN agents may cancel it.
    const setup = await dkms(['recovery', 'setup', '--offline', '--paper-dir', paper, '--delay', '1h', '--json'], { ...bare, DKMS_PASSPHRASE: PASSPHRASE });
    expect(setup.code, setup.stderr).toBe(0);
    const phrase = String(((JSON.parse(setup.stdout.split('\n')[0] ?? '{}') as Json)['paper'] as Json)['mnemonic']);

    // A master key under two custodians (approval mode: the passphrase still opens the wallet).
    await ok(['key', 'create', '--type', 'ed25519', '--name', 'master']);
    const cards: string[] = [];
    for (const name of ['carol', 'dave']) {
      const custodianHome = join(home, '..', `${name}-${Date.now()}`);
      mkdirSync(custodianHome, { mode: 0o700 });
      (await Wallet.create(join(custodianHome, 'wallet.db'), rawSecret(new Uint8Array(32).fill(7)), { kdfTier: 'interactive' })).close();
      writeFileSync(join(custodianHome, 'key'), Buffer.alloc(32, 7));
      const card = join(custodianHome, `${name}.card`);
      const made = await dkms(['--home', custodianHome, '--key-file', join(custodianHome, 'key'), 'custodian', 'key', '--name', name, '--out', card], {});
      expect(made.code, made.stderr).toBe(0);
      cards.push(card);
    }
    await ok(['custodian', 'init', '--threshold', '2', '--mode', 'approval', '--key', 'master', '--card', ...cards]);

    const { page, problems } = await openPage(browser, services.console);
    await page.locator('html[data-console="login"]').waitFor({ state: 'attached' });
    const field = page.getByLabel('Wallet passphrase');
    expect(await field.getAttribute('autocomplete')).toBe('current-password');
    expect(await field.getAttribute('type')).toBe('password');
    await screenshot(page, 'console-login');

    // A wrong passphrase: refused, said, and the field emptied for another try.
    await field.fill('not the passphrase');
    await field.press('Enter');
    await page.locator('#console-status[data-kind="bad"]').waitFor();
    expect(await page.locator('#console-status').innerText()).toContain('WALLET_BAD_PASSPHRASE');
    expect(await field.inputValue()).toBe('');

    await field.fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.locator('html[data-console="overview"]').waitFor({ state: 'attached' });
    // The laptop, its cloud agent (agent init registered it at the agency) and the phone.
    const rows = page.locator('table.agents tbody tr');
    expect(await rows.count()).toBe(3);
    expect(await page.locator(`table.agents tr[data-key="${phone}"]`).count()).toBe(1);
    expect(await page.locator(`table.agents tr[data-key="${String(made['key'])}"]`).innerText()).toContain('this device');
    expect(await page.locator('[data-field="pending-recovery"]').innerText()).toContain('No recovery is pending');
    // The agents, read again and verified in the browser against the ledger.
    await page.locator('[data-field="agents-check"][data-state]').waitFor();
    expect(await page.locator('[data-field="agents-check"]').getAttribute('data-state')).toBe('verified');
    expect(await page.locator('svg[role="img"]').count()).toBeGreaterThanOrEqual(2);
    // The custodians and the audit log of master-key use; the master key drawn where it lives.
    const custody = await page.locator('#custody').innerText();
    for (const text of ['carol', 'dave', 'approval']) expect(custody).toContain(text);
    expect(await page.locator('#audit').innerText()).toContain('custody-init');
    expect(await page.locator('#wallet svg desc').textContent()).toContain('master (ed25519, custody)');
    // The page never holds the session's cookie in script: it is HttpOnly.
    expect(await page.evaluate('document.cookie')).toBe('');
    // What reached the browser about the wallet's keys: public facts only, never key material.
    const [cookie] = await page.context().cookies();
    const overview = (await (
      await fetch(`${services.console}api/overview`, {
        headers: {
          cookie: `${cookie?.name ?? ''}=${cookie?.value ?? ''}`,
          'x-dkms-csrf': String(await page.evaluate("sessionStorage.getItem('dkms.console.csrf')")),
        },
      })
    ).json()) as ConsoleOverview;
    expect(overview.problems).toEqual([]);
    expect(overview.wallet?.keys.map((k) => k.name).sort()).toEqual(['agent-kx', 'agent-sign', 'master', 'phone']);
    for (const key of overview.wallet?.keys ?? []) expect(Object.keys(key).sort()).toEqual(['location', 'name', 'publicKey', 'type']);
    await screenshot(page, 'console-overview');
    const started = Number((await ok(['unlock'], bare))['pid']);
    sessions.push(started);

    // Revoke the phone: the dialog's confirm stays disabled until its name is typed.
    const name = phone.slice(0, 12);
    await page.getByRole('button', { name: `Revoke agent ${name}` }).click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    const confirm = dialog.getByRole('button', { name: 'Confirm' });
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel(/to confirm/).fill('something else');
    expect(await confirm.isDisabled()).toBe(true);
    await dialog.getByLabel(/to confirm/).fill(name);
    await screenshot(page, 'console-revoke');
    await confirm.click();
    await page.locator('#console-status[data-kind="ok"]', { hasText: `Revoking ${name}: done.` }).waitFor();
    expect(await rows.count()).toBe(2);
    expect(await page.locator(`table.agents tr[data-key="${phone}"]`).count()).toBe(0);
    await page.locator('[data-field="agents-check"][data-state]').waitFor();
    expect(await page.locator('[data-field="agents-check"]').getAttribute('data-state')).toBe('verified');
    expect(await page.locator('#last-result').innerText()).toContain('revoked');

    // The CLI in the same data directory runs in the console's session: no passphrase asked, and
    // a command that will not use the session finds the wallet busy.
    const listed = await ok(['key', 'list'], bare);
    expect((listed['keys'] as Json[]).map((k) => k['name'])).toContain('phone');
    const alone = await dkms(['key', 'list', '--json'], { ...bare, DKMS_PASSPHRASE: PASSPHRASE, DKMS_SESSION: 'off' });
    expect(alone.code).toBe(ERROR_CODES.WALLET_BUSY.exit);

    // The explorer, verifying the ledger in this browser, shows the revocation.
    const explorer = await browser.newPage();
    await explorer.goto(`${services.ledger}/ui/policy/${policy}#trust=${services.key}`);
    await explorer.locator('html:not([data-verify-state="verifying"])').waitFor({ state: 'attached' });
    expect(await explorer.getAttribute('html', 'data-verify-state')).toBe('verified');
    expect(await explorer.locator('ol.timeline > li').first().getAttribute('data-type')).toBe('policy.revoke');
    expect(await explorer.locator('#agents-title + table').innerText()).not.toContain(phone);
    await explorer.close();

    // Back up now: the last backup moves on.
    const before = await page.locator('[data-field="last-backup"]').innerText();
    await page.getByRole('button', { name: 'Back up now' }).click();
    await page.locator('#console-status[data-kind="ok"]', { hasText: 'Backing up: done.' }).waitFor();
    expect(await page.locator('[data-field="last-backup"]').innerText()).not.toBe(before);
    await screenshot(page, 'console-after');

    // Someone with the paper starts a recovery on another device: it waits its delay. The console
    // shows it as an alert, and cancels it after a confirmation; the explorer shows the cancel.
    const elsewhere = await dkms(['recovery', 'restore', '--mnemonic', '--agency', services.agency, '--kdf-tier', 'interactive', '--json'], {
      DKMS_HOME: tempDir('dkms-console-thief-'),
      DKMS_LEDGER: services.ledger,
      DKMS_PASSPHRASE: 'the other device passphrase',
      DKMS_RECOVERY_PHRASE: phrase,
    });
    expect(elsewhere.code, elsewhere.stderr).toBe(0);
    await page.reload();
    const pending = page.locator('[data-field="pending-recovery"]');
    await pending.filter({ hasText: 'A recovery of this identity is pending' }).waitFor();
    expect(await pending.getAttribute('role')).toBe('alert');
    await page.getByRole('button', { name: 'Cancel this recovery…' }).click();
    await page
      .getByRole('dialog')
      .getByLabel(/to confirm/)
      .fill('cancel');
    await page.getByRole('dialog').getByRole('button', { name: 'Confirm' }).click();
    await page.locator('#console-status[data-kind="ok"]', { hasText: 'Cancelling the recovery: done.' }).waitFor();
    expect(await pending.innerText()).toContain('No recovery is pending');
    const cancelled = await browser.newPage();
    await cancelled.goto(`${services.ledger}/ui/policy/${policy}#trust=${services.key}`);
    await cancelled.locator('html:not([data-verify-state="verifying"])').waitFor({ state: 'attached' });
    expect(await cancelled.getAttribute('html', 'data-verify-state')).toBe('verified');
    expect(await cancelled.locator('ol.timeline > li').first().getAttribute('data-type')).toBe('policy.cancel');
    expect(await cancelled.locator('ol.timeline > li').nth(1).getAttribute('data-type')).toBe('policy.recover');
    await cancelled.close();

    // On a phone's width the page keeps to the screen: wide tables scroll inside their cards.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await screenshot(page, 'console-narrow');

    // Logging out locks the session the console started, and the page asks to log in again; the
    // CLI then needs the passphrase again.
    const logIn = async (passphrase: string, kind: 'ok' | 'bad') => {
      await field.fill(passphrase);
      await field.press('Enter');
      await page.locator(`#console-status[data-kind="${kind}"]`).waitFor();
    };
    const logOut = async () => {
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.locator('html[data-console="login"]').waitFor({ state: 'attached' });
    };
    await page.setViewportSize({ width: 1280, height: 800 });
    await logOut();
    await waitFor('the console-started session to lock', () => !alive(started));
    expect((await dkms(['key', 'list', '--json'], bare)).code).toBe(ERROR_CODES.BAD_INPUT.exit);

    // With a session of the owner's own running, the login checks the passphrase against it, and
    // the logout leaves it running.
    const mine = Number((await ok(['unlock']))['pid']);
    sessions.push(mine);
    await logIn('still not the passphrase', 'bad');
    expect(await page.locator('#console-status').innerText()).toContain('WALLET_BAD_PASSPHRASE');
    await logIn(PASSPHRASE, 'ok');
    expect(await rows.count()).toBe(2);
    await logOut();
    expect(await ok(['unlock'], bare)).toMatchObject({ already: true, pid: mine });
    expect(await ok(['lock'], bare)).toEqual({ locked: true });
    await waitFor("the owner's session to lock", () => !alive(mine));

    // Stopping up locks a session the console started.
    await logIn(PASSPHRASE, 'ok');
    const last = Number((await ok(['unlock'], bare))['pid']);
    sessions.push(last);
    up.kill('SIGTERM');
    expect((await up.done).code).toBe(0);
    await waitFor('the session to lock with up', () => !alive(last));
    expect(existsSync(join(home, 'session.sock'))).toBe(false);

    // The refused logins are the only things the browser reported: each 401, which Chromium also logs.
    const login = `${services.console}api/session`;
    const refusal = [`HTTP 401: POST ${login}`, expect.stringMatching(/^console error: Failed to load resource: the server responded with a status of 401/)];
    expect(problems).toEqual([...refusal, ...refusal]);
  });
});
