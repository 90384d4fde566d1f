/**
 * `dkms agency serve --store`: a PostgreSQL store named without a password (the command line is
 * public), or the whole URL from DKMS_AGENCY_STORE; anything else refused before anything
 * starts; and a real agency on a throwaway PostgreSQL that makes its agency key 0600.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { background, dkms, killBackground } from '../helpers/cli.js';
import { pgClusterForSuite } from '../helpers/postgres.js';
import { startLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';

const cluster = pgClusterForSuite();
afterEach(() => killBackground());

describe('dkms agency serve --store', () => {
  it('refuses a password on the command line, and anything but a postgres:// URL, without echoing the password', async () => {
    const home = tempDir();
    const withPassword = await dkms(['--home', home, 'agency', 'serve', '--port', '0', '--store', 'postgres://dkms:hunter2-secret@127.0.0.1:5432/db']);
    expect(withPassword.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(withPassword.stderr).toContain('PGPASSWORD');
    expect(withPassword.stderr + withPassword.stdout).not.toContain('hunter2-secret');
    const other = await dkms(['--home', home, 'agency', 'serve', '--port', '0', '--store', 'mysql://127.0.0.1/db']);
    expect(other.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(other.stderr).toContain('postgres://');
    const env = await dkms(['--home', home, 'agency', 'serve', '--port', '0'], { DKMS_AGENCY_STORE: 'sqlite:agency.db' });
    expect(env.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(env.stderr).toContain('DKMS_AGENCY_STORE');
  });

  it('serves on a PostgreSQL database given in DKMS_AGENCY_STORE, and makes its agency key private', async () => {
    const ledger = await startLedger(tempDir());
    const home = tempDir();
    const store = await cluster().createDatabase();
    const agency = background(['--home', home, '--ledger', ledger.url, 'agency', 'serve', '--port', '0', '--ledger-key', ledger.signer.multikey], {
      DKMS_AGENCY_STORE: store,
    });
    const line = await agency.nextLine();
    expect(line).toMatch(/^agency listening on http:\/\/127\.0\.0\.1:\d+ \(store: postgres:\/\/postgres@127\.0\.0\.1:\d+\/dkms_\w+\)$/);
    const url = /on (\S+)/.exec(line)?.[1] ?? '';
    expect(await (await fetch(`${url}/v1/health`)).json()).toEqual({ status: 'ok', service: 'agency' });
    expect(statSync(join(home, 'agency', 'agency.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'agency')).mode & 0o777).toBe(0o700);
    agency.kill('SIGTERM');
    expect((await agency.done).code).toBe(0);
  });
});
