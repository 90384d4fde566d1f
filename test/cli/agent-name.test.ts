/**
 * `dkms agent name`: the owner chooses the name other owners see (default: the device's label),
 * a real process against `dkms up`; a bad name is refused before the wallet is opened.
 */
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { dkms } from '../helpers/cli.js';
import { newOwner, upForFile } from '../helpers/recovery-cli.js';
import { tempDir } from '../helpers/tmp.js';

const up = upForFile();

describe('dkms agent name', { timeout: 60_000 }, () => {
  it("shows the name other owners see, sets it, and a new connection's peer sees it", async () => {
    const { agency, env } = up();
    const [alice, bob] = await Promise.all([newOwner('laptop', agency, env), newOwner('bob', agency, env)]);
    expect(await alice.run(['agent', 'name'])).toEqual({ name: 'laptop', chosen: false, label: 'laptop' });
    const shown = await alice.dkms(['agent', 'name']);
    expect(shown.stdout).toBe("other owners see you as 'laptop' (this device's label: choose a name with `dkms agent name NAME`)\n");

    expect(await alice.run(['agent', 'name', 'Alice Liddell'])).toEqual({ name: 'Alice Liddell', chosen: true, label: 'laptop' });
    const invitation = String((await alice.run(['connection', 'invite', '--label', 'bob']))['invitation']);
    await bob.run(['connection', 'accept', invitation]);
    const atBob = (await bob.run(['connection', 'list']))['connections'] as { label: string }[];
    expect(atBob.map((c) => c.label)).toEqual(['Alice Liddell']);
  });

  it('refuses an empty or over-long name with BAD_INPUT before it opens the wallet', async () => {
    const home = tempDir();
    for (const name of ['', 'x'.repeat(65)]) {
      // No wallet here at all: the name is refused first.
      const run = await dkms(['agent', 'name', name], { DKMS_HOME: home });
      expect(run.code).toBe(ERROR_CODES.BAD_INPUT.exit);
      expect(run.stderr).toBe('dkms: BAD_INPUT: a name is 1 to 64 characters, none of them control characters\n');
    }
  });
});
