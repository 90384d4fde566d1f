/**
 * The interactive prompts on a real terminal, driven through tmux as a person would use them:
 * typing at a passphrase question (never echoed), answering a yes/no question, and pressing
 * Ctrl-C — in a command's own process and through the unlock session, whose questions come to
 * the terminal of the command that asked.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { Wallet, passphraseSecret } from '../../src/wallet/index.js';
import { DKMS_BIN, dkms } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const PASSPHRASE = 'the terminal test passphrase';
const sessions: number[] = [];
const servers: string[] = [];

afterEach(() => {
  for (const socket of servers.splice(0)) spawnSync('tmux', ['-S', socket, 'kill-server']);
  for (const pid of sessions.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Locked and gone already.
    }
  }
});

const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

/** A terminal (a tmux pane, 200 columns) running `dkms args` with only PATH and `env`; the pane shows `[exit N]` when it ends. */
function terminal(dir: string, args: readonly string[], env: Record<string, string>) {
  const socket = join(dir, `tmux-${servers.length}.sock`);
  servers.push(socket);
  const vars = Object.entries({ PATH: process.env['PATH'] ?? '', TERM: 'xterm', ...env }).map(([k, v]) => `${k}=${quote(v)}`);
  // The shell outlives a Ctrl-C sent to the pane (a handler, not an ignore, which the command would inherit).
  const line = `trap true INT; env -i ${vars.join(' ')} ${quote(process.execPath)} ${quote(DKMS_BIN)} ${args.map(quote).join(' ')}; echo "[exit $?]"; sleep 600`;
  const started = spawnSync('tmux', ['-S', socket, 'new-session', '-d', '-c', dir, '-x', '200', '-y', '50', 'sh', '-c', line], { encoding: 'utf8' });
  if (started.status !== 0) throw new Error(`tmux: ${started.stderr}`);
  const tmux = (...more: string[]) => spawnSync('tmux', ['-S', socket, ...more], { encoding: 'utf8' });
  const screen = () => tmux('capture-pane', '-p', '-J', '-t', '0').stdout;
  return {
    screen,
    shows: (text: string | RegExp) =>
      waitFor(`the terminal to show ${String(text)}`, () => (typeof text === 'string' ? screen().includes(text) : text.test(screen()))),
    type: (text: string) => {
      tmux('send-keys', '-t', '0', '-l', text);
      tmux('send-keys', '-t', '0', 'Enter');
    },
    ctrlC: () => tmux('send-keys', '-t', '0', 'C-c'),
    exit: async () => Number((await waitFor('the command to end', () => /\[exit (\d+)\]/.exec(screen())))?.[1]),
  };
}

async function ownerWithWallet() {
  const dir = tempDir('dkms-terminal-');
  const home = join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  (await Wallet.create(join(home, 'wallet.db'), passphraseSecret(PASSPHRASE), { kdfTier: 'interactive' })).close();
  return { dir, home };
}

/** Unlocks at a terminal, typing the passphrase; the session's pid. */
async function unlockAtTerminal(dir: string, home: string): Promise<number> {
  const t = terminal(dir, ['unlock'], { DKMS_HOME: home });
  await t.shows('Wallet passphrase: ');
  t.type(PASSPHRASE);
  expect(await t.exit()).toBe(0);
  const screen = t.screen();
  expect(screen).not.toContain(PASSPHRASE);
  const pid = Number(/session pid (\d+)/.exec(screen)?.[1]);
  sessions.push(pid);
  return pid;
}

/** A TCP server on loopback that accepts connections and never answers; its URL, and how many connections are open. */
async function silentServer(): Promise<{ url: string; open: () => number }> {
  const held: Socket[] = [];
  let open = 0;
  const server = createServer((socket) => {
    held.push(socket);
    open += 1;
    // Read (and drop) what it is sent: a socket left paused never hears its peer close.
    socket.resume();
    socket.on('close', () => (open -= 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  onTestFinished(() => {
    for (const socket of held) socket.destroy();
    server.close();
  });
  return { url: `http://127.0.0.1:${address.port}`, open: () => open };
}

describe('prompts on a terminal (tmux)', () => {
  it('dkms unlock asks for the passphrase unechoed; through the session, the export passphrase questions come to this terminal, unechoed', async () => {
    const { dir, home } = await ownerWithWallet();
    await unlockAtTerminal(dir, home);
    const out = join(dir, 'wallet.export');
    const t = terminal(dir, ['wallet', 'export', '--out', 'wallet.export'], { DKMS_HOME: home });
    await t.shows('Export passphrase: ');
    t.type('an export passphrase');
    await t.shows('Repeat export passphrase: ');
    t.type('an export passphrase');
    expect(await t.exit()).toBe(0);
    expect(t.screen()).toContain(`Exported wallet to ${out}`);
    expect(t.screen()).not.toContain('an export passphrase');
    expect(existsSync(out)).toBe(true);
  });

  it('a yes/no question through the session: "n" declines, and nothing is registered', async () => {
    const { dir, home } = await ownerWithWallet();
    await unlockAtTerminal(dir, home);
    const agency = (await silentServer()).url;
    const t = terminal(dir, ['agent', 'register', '--agency', agency], { DKMS_HOME: home });
    await t.shows(`Register a cloud agent at ${agency} with no flags (a relay and mailbox only)? [y/N] `);
    t.type('n');
    expect(await t.exit()).toBe(ERROR_CODES.PAIRING_DECLINED.exit);
    expect(t.screen()).toContain('dkms: PAIRING_DECLINED: cloud agent registration cancelled');
  });

  it('Ctrl-C at a passphrase question, in its own process: "cancelled", exit 130, nothing written', async () => {
    const { dir, home } = await ownerWithWallet();
    const t = terminal(dir, ['wallet', 'export', '--out', 'wallet.export'], { DKMS_HOME: home });
    await t.shows('Export passphrase: ');
    t.ctrlC();
    expect(await t.exit()).toBe(130);
    expect(t.screen()).toContain('dkms: cancelled');
    expect(existsSync(join(dir, 'wallet.export'))).toBe(false);
  });

  it('Ctrl-C through the session, at a question and while waiting on the network: "cancelled", 130, and the session serves on', async () => {
    const { dir, home } = await ownerWithWallet();
    const pid = await unlockAtTerminal(dir, home);
    const asking = terminal(dir, ['wallet', 'export', '--out', 'wallet.export'], { DKMS_HOME: home });
    await asking.shows('Export passphrase: ');
    asking.ctrlC();
    expect(await asking.exit()).toBe(130);
    expect(asking.screen()).toContain('dkms: cancelled');
    expect(existsSync(join(dir, 'wallet.export'))).toBe(false);

    const ledger = await silentServer();
    const waiting = terminal(dir, ['did', 'resolve', 'did:dkms:nothing-here', '--ledger', ledger.url], { DKMS_HOME: home });
    // The command runs in the session, which has asked the silent ledger.
    await waitFor('the session to ask the ledger', () => ledger.open() > 0);
    waiting.ctrlC();
    expect(await waiting.exit()).toBe(130);
    expect(waiting.screen()).toContain('dkms: cancelled');
    // The session ends the cancelled command's request at once, well before the ledger client's
    // own 10 s deadline would.
    await waitFor('the session to drop the cancelled request', () => ledger.open() === 0, { timeoutMs: 5000 });

    const listed = await dkms(['key', 'list', '--json'], { DKMS_HOME: home });
    expect(listed.code, listed.stderr).toBe(0);
    expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).not.toMatch(/^\d+ \(.*\) Z/);
  });
});
