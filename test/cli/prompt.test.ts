import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Wallet, passphraseSecret } from '../../src/wallet/index.js';
import { DKMS_BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Runs dkms on a real pseudo-terminal (util-linux `script`) and types `answers` one per prompt,
 * each after its prompt appears. Returns everything the terminal showed.
 */
function onTerminal(args: readonly string[], env: Record<string, string>, answers: readonly string[]): Promise<{ code: number; screen: string }> {
  const command = [process.execPath, DKMS_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: { PATH: process.env['PATH'] ?? '', TERM: 'dumb', ...env } });
    let screen = '';
    let answered = 0;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      screen += chunk;
      const prompts = screen.match(/passphrase: /gi)?.length ?? 0;
      while (answered < prompts && answered < answers.length) child.stdin.write(`${answers[answered++]}\r`);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, screen }));
  });
}

describe('passphrase prompt on a terminal', () => {
  it('asks twice without echo when creating, once when opening', async () => {
    const home = tempDir();
    const secret = 'typed at the terminal';
    const created = await onTerminal(['wallet', 'create', '--kdf-tier', 'interactive'], { DKMS_HOME: home }, [secret, secret]);
    expect(created.code).toBe(0);
    expect(created.screen).toContain('Wallet passphrase: ');
    expect(created.screen).toContain('Repeat wallet passphrase: ');
    expect(created.screen).not.toContain(secret);

    const listed = await onTerminal(['key', 'list'], { DKMS_HOME: home }, [secret]);
    expect(listed.code).toBe(0);
    expect(listed.screen).toContain('No keys.');
    expect(listed.screen).not.toContain(secret);
    // Slow steps are said as they begin, at a terminal (restores and the rest use the same
    // channel); with --json, standard error stays quiet there too.
    expect(created.screen).toContain('Creating wallet…');
    expect(listed.screen).toContain('Opening wallet…');
    const quiet = await onTerminal(['key', 'list', '--json'], { DKMS_HOME: home }, [secret]);
    expect(quiet.code).toBe(0);
    expect(quiet.screen).not.toContain('Opening wallet…');

    const wallet = await Wallet.open(join(home, 'wallet.db'), passphraseSecret(secret));
    wallet.close();
  });

  it('refuses two different answers and creates nothing', async () => {
    const home = tempDir();
    const run = await onTerminal(['wallet', 'create', '--kdf-tier', 'interactive'], { DKMS_HOME: home }, ['first answer here', 'second answer here']);
    expect(run.code).toBe(2);
    expect(run.screen).toContain('dkms: BAD_INPUT: the two passphrases differ');
    const info = await onTerminal(['wallet', 'info'], { DKMS_HOME: home }, []);
    expect(info.screen).toContain('WALLET_NOT_FOUND');
  });
});
