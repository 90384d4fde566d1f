/**
 * `dkms doctor`, a real process against `dkms up`: each check says ok, warn or fail with what to
 * do, and the exit status is that of the first failure's code (0 when only warnings).
 */
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { dkms, owner } from '../helpers/cli.js';
import { upForFile } from '../helpers/recovery-cli.js';
import { suiteDirs, tempDir } from '../helpers/tmp.js';

interface Check {
  check: string;
  status: 'ok' | 'warn' | 'fail' | 'skipped';
  detail: string;
  fix?: string;
  code?: string;
}

const report = (stdout: string) => JSON.parse(stdout) as { ok: boolean; checks: Check[] };
const statuses = (checks: readonly Check[]) => Object.fromEntries(checks.map((c) => [c.check, c.status]));

const up = upForFile();
const lasting = suiteDirs();
let services: { ledger: string; agency: string; key: string };
let alice: ReturnType<typeof owner>;

beforeAll(async () => {
  services = up();
  alice = owner(lasting(), up().env);
  await alice.run(['agent', 'init', '--label', 'alice', '--agency', services.agency, '--yes']);
}, 60_000);

describe('dkms doctor', { timeout: 60_000 }, () => {
  it('on a working device: every check ok or a warning with what to do, exit 0', async () => {
    const run = await alice.dkms(['doctor', '--json']);
    expect(run.code, run.stderr).toBe(0);
    const { ok, checks } = report(run.stdout);
    expect(ok).toBe(true);
    expect(statuses(checks)).toEqual({
      'data directory': 'ok',
      'wallet file': 'ok',
      session: 'ok',
      ledger: 'ok',
      // The node key was trusted on first use by agent init: configured nowhere.
      'ledger trust': 'warn',
      agent: 'ok',
      agency: 'ok',
      recovery: 'warn',
      approvals: 'ok',
    });
    const byName = new Map(checks.map((c) => [c.check, c]));
    expect(byName.get('ledger trust')?.fix).toBe(
      `check that key with the node's operator, then put it in ${join(alice.home, 'trust.json')} as {"nodeKeys": ["${services.key}"]}`,
    );
    expect(byName.get('recovery')?.fix).toBe('run `dkms recovery setup`');
    expect(byName.get('ledger')?.detail).toMatch(new RegExp(`^${services.ledger}: head of \\d+ events, signed \\d+ s ago, verified$`));
    // With the key configured, trust is ok; the text form shows each check on its line, fixes under them.
    writeFileSync(join(alice.home, 'trust.json'), JSON.stringify({ nodeKeys: [services.key] }));
    let trusted;
    try {
      trusted = await alice.dkms(['doctor']);
    } finally {
      rmSync(join(alice.home, 'trust.json'));
    }
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.stdout).toContain(`ok    ledger trust: node key ${services.key}, as configured\n`);
    expect(trusted.stdout).toContain('WARN  recovery: not set up: only a provisional key protects this identity\n        → run `dkms recovery setup`\n');
  });

  it('says when the data directory can be read by others, and how to fix it', async () => {
    chmodSync(alice.home, 0o755);
    try {
      const run = await alice.dkms(['doctor', '--json']);
      expect(run.code, run.stderr).toBe(0);
      expect(report(run.stdout).checks[0]).toEqual({
        check: 'data directory',
        status: 'warn',
        detail: `${alice.home} can be read by others (mode 0755)`,
        fix: `chmod 700 ${alice.home}`,
      });
    } finally {
      chmodSync(alice.home, 0o700);
    }
  });

  it('fails with the ledger unreachable: exit LEDGER_UNREACHABLE, the agent check skipped, the rest still checked', async () => {
    const run = await alice.dkms(['--ledger', 'http://127.0.0.1:9', 'doctor', '--json']);
    expect(run.code).toBe(ERROR_CODES.LEDGER_UNREACHABLE.exit);
    const { ok, checks } = report(run.stdout);
    expect(ok).toBe(false);
    expect(statuses(checks)).toMatchObject({ ledger: 'fail', agent: 'skipped', agency: 'ok' });
    expect(checks.find((c) => c.check === 'ledger')).toMatchObject({
      code: 'LEDGER_UNREACHABLE',
      fix: 'start a local node with `dkms up`, or name a reachable one with --ledger or DKMS_LEDGER',
    });
    // One JSON object on standard output, nothing on standard error but the run's own notes.
    expect(run.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('fails on a wallet it cannot open, and on a data directory with nothing in it', async () => {
    const wrongKey = join(tempDir(), 'wrong.key');
    writeFileSync(wrongKey, `${'cd'.repeat(32)}\n`, { mode: 0o600 });
    const refused = await dkms(['--key-file', wrongKey, 'doctor', '--json'], { DKMS_HOME: alice.home, DKMS_LEDGER: services.ledger });
    expect(refused.code).toBe(ERROR_CODES.WALLET_BAD_PASSPHRASE.exit);
    expect(report(refused.stdout).checks.at(-1)).toMatchObject({ check: 'wallet', status: 'fail', code: 'WALLET_BAD_PASSPHRASE' });

    const empty = join(tempDir(), 'nothing-here');
    const none = await dkms(['doctor', '--json'], { DKMS_HOME: empty, DKMS_LEDGER: services.ledger });
    expect(none.code).toBe(ERROR_CODES.WALLET_NOT_FOUND.exit);
    const { checks } = report(none.stdout);
    expect(checks[0]).toEqual({
      check: 'data directory',
      status: 'fail',
      detail: `${empty} does not exist`,
      fix: 'run `dkms agent init` (a first device) or `dkms agent accept` (another one), or give --home',
      code: 'WALLET_NOT_FOUND',
    });
    // The ledger is still checked; nothing was made.
    expect(statuses(checks)).toEqual({ 'data directory': 'fail', ledger: 'ok', 'ledger trust': 'warn' });
    expect(existsSync(empty)).toBe(false);
  });

  it('has help that says what it checks and what its exit status means', async () => {
    const help = await dkms(['doctor', '--help'], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--backup-age <days>\s+warn when the last backup is older than this \(default: 7\)/);
    expect(help.stdout).toContain("Exit status: 0 when nothing failed (warnings included), else the status of the first failed check's error code");
  });
});
