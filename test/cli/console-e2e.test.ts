/**
 * The owner console of a real `dkms up` on loopback (docs/dashboard.md, "Owner console API"),
 * spoken to as its page's browser would (fetch, with the cookie and the headers a browser sends):
 * the owner's data directory is up's own; the login starts the unlock session with the passphrase
 * (or, with one running, checks the passphrase against it); the overview lists the agents; a
 * revoke reaches the ledger; the CLI meanwhile runs in the same session; a backup; the logout
 * locks only a session the console started, and so does stopping `up`.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import type { ConsoleOverview } from '../../src/server/console-types.js';
import { alive, background, dkms, endSessions, json, killBackground, type Json } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const PASSPHRASE = 'the console e2e passphrase';
const sessions: number[] = [];
afterEach(killBackground);
afterEach(() => endSessions(sessions, 'SIGKILL'));

/** The console of the `dkms up` at `ledger`, as its page in a browser reaches it. */
function browserAt(ledger: string) {
  const origin = new URL(ledger).origin;
  let cookie: string | undefined;
  let csrf: string | undefined;
  const call = async (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) => {
    const answer = await fetch(`${origin}/ui/console/api${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...(method === 'GET' ? {} : { origin, 'sec-fetch-site': 'same-origin' }),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(cookie === undefined ? {} : { cookie }),
        ...(csrf === undefined ? {} : { 'x-dkms-csrf': csrf }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    expect(answer.headers.get('cache-control'), `${method} ${path}`).toBe('no-store');
    const set = answer.headers.get('set-cookie');
    if (set !== null) cookie = set.split(';')[0];
    const text = await answer.text();
    return { status: answer.status, body: (text === '' ? undefined : JSON.parse(text)) as Json };
  };
  return {
    async login(passphrase: string) {
      const answer = await call('POST', '/session', { passphrase });
      if (answer.status === 200) csrf = String(answer.body['csrf']);
      return answer;
    },
    overview: async () => {
      const answer = await call('GET', '/overview');
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return answer.body as unknown as ConsoleOverview;
    },
    revoke: (key: string) => call('POST', '/agents/revoke', { key }),
    backup: () => call('POST', '/backups', {}),
    logout: () => call('DELETE', '/session'),
  };
}

describe('the owner console of dkms up', { timeout: 120_000 }, () => {
  it('logs in with the passphrase, shows and revokes an agent, backs up beside the CLI, and locks only what it started', async () => {
    const home = tempDir('dkms-console-');
    const up = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: home });
    const services = JSON.parse(await up.nextLine()) as { ledger: string; agency: string; console: string | null; home: string };
    expect(services.console).toBe(`${services.ledger}/ui/console/`);
    expect((await fetch(services.console ?? '')).status).toBe(200);

    // The owner is the data directory's: a passphrase wallet at the interactive tier, a second agent granted.
    const bare = { DKMS_HOME: home, DKMS_LEDGER: services.ledger };
    const withPass = { ...bare, DKMS_PASSPHRASE: PASSPHRASE };
    const cli = (args: readonly string[], env: Record<string, string> = withPass) => dkms([...args, '--json'], env);
    const ok = async (args: readonly string[], env?: Record<string, string>) => {
      const run = await cli(args, env);
      expect(run.code, `${args.join(' ')}: ${run.stderr}`).toBe(0);
      return json(run);
    };
    const made = await ok(['agent', 'init', '--label', 'laptop', '--agency', services.agency, '--yes', '--kdf-tier', 'interactive']);
    const policy = String(made['policy']);
    const phone = String((await ok(['key', 'create', '--type', 'ed25519', '--name', 'phone']))['publicKey']);
    await ok(['policy', 'grant', '--policy', policy, '--agent', phone, '--flags', 'PROVE', '--key', 'agent-sign']);
    const paper = join(home, 'paper');
    mkdirSync(paper);
    // It prints the paper wallet, then the setup: two lines.
    const setup = await cli(['recovery', 'setup', '--offline', '--paper-dir', paper]);
    expect(setup.code, setup.stderr).toBe(0);

    const page = browserAt(services.ledger);
    const wrong = await page.login('not the passphrase');
    expect(wrong).toMatchObject({ status: 401, body: { code: 'WALLET_BAD_PASSPHRASE' } });
    expect(existsSync(join(home, 'session.sock'))).toBe(false);
    const login = await page.login(PASSPHRASE);
    expect(login.status, JSON.stringify(login.body)).toBe(200);
    expect(login.body).toMatchObject({ csrf: expect.any(String), idleSeconds: 900 });
    // The console started the unlock session.
    const status = await ok(['unlock'], bare);
    expect(status['already']).toBe(true);
    const started = Number(status['pid']);
    sessions.push(started);

    const before = await page.overview();
    expect(before.problems).toEqual([]);
    expect(before.home).toBe(home);
    expect(before.agents?.agents.map((a) => a.key)).toEqual(expect.arrayContaining([phone, String(made['key'])]));
    expect(before.agents?.agents.find((a) => a.me)).toMatchObject({ label: 'laptop', key: made['key'] });
    expect(before.wallet?.factors).toEqual(['passphrase']);
    expect(before.wallet?.keys.map((k) => k.name)).toEqual(expect.arrayContaining(['agent-sign', 'phone']));
    for (const key of before.wallet?.keys ?? []) expect(Object.keys(key).sort()).toEqual(['location', 'name', 'publicKey', 'type']);
    expect(before.recovery).toMatchObject({ setUp: true, offline: true, pending: null });
    expect(before.backups).toMatchObject({ lastBackup: { version: expect.any(Number) }, ageSeconds: expect.any(Number) });
    const version = before.backups?.lastBackup?.version ?? 0;

    const revoked = await page.revoke(phone);
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    expect(revoked.body['result']).toMatchObject({ state: 'revoked', target: phone });
    const shown = await ok(['policy', 'show', '--policy', policy], bare);
    expect(JSON.stringify(shown)).not.toContain(phone);
    expect((await page.overview()).agents?.agents.map((a) => a.key)).not.toContain(phone);

    // The CLI in the same data directory runs in the console's session: no passphrase, no WALLET_BUSY.
    const keys = await ok(['key', 'list'], bare);
    expect((keys['keys'] as Json[]).map((k) => k['name'])).toContain('phone');
    const alone = await cli(['key', 'list'], { ...withPass, DKMS_SESSION: 'off' });
    expect(alone.code).toBe(ERROR_CODES.WALLET_BUSY.exit);

    const backup = await page.backup();
    expect(backup.status, JSON.stringify(backup.body)).toBe(200);
    // A new version at the cloud agent (the revoke made automatic backups of its own before it).
    const result = backup.body['result'] as { version: number; size: number };
    expect(result).toEqual({ version: expect.any(Number), size: expect.any(Number) });
    expect(result.version).toBeGreaterThan(version);
    expect((await page.overview()).backups).toMatchObject({ lastBackup: { version: result.version } });

    expect((await page.logout()).status).toBe(204);
    await waitFor('the console-started session to lock', () => !alive(started));
    expect((await cli(['key', 'list'], bare)).code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect((await page.backup()).body).toMatchObject({ code: 'CONSOLE_LOGIN_REQUIRED' });

    // With a session already running, the login checks the passphrase against it, and the logout leaves it running.
    const unlocked = await ok(['unlock'], withPass);
    const mine = Number(unlocked['pid']);
    sessions.push(mine);
    expect(await page.login('still not the passphrase')).toMatchObject({ status: 401, body: { code: 'WALLET_BAD_PASSPHRASE' } });
    expect((await page.login(PASSPHRASE)).status).toBe(200);
    expect((await page.overview()).problems).toEqual([]);
    expect((await page.logout()).status).toBe(204);
    expect(await ok(['unlock'], bare)).toMatchObject({ already: true, pid: mine });
    expect(await ok(['lock'], bare)).toEqual({ locked: true });
    await waitFor('the session to lock', () => !alive(mine));

    // Stopping up locks a session the console started.
    expect((await page.login(PASSPHRASE)).status).toBe(200);
    const last = Number((await ok(['unlock'], bare))['pid']);
    sessions.push(last);
    up.kill('SIGTERM');
    expect((await up.done).code).toBe(0);
    await waitFor('the session to lock with up', () => !alive(last));
    expect(existsSync(join(home, 'session.sock'))).toBe(false);
  });
});
