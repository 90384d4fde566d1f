/**
 * The unlock session (docs/session.md), as its users meet it: `dkms unlock` once, then commands
 * that need no passphrase and run with the client's working directory, input and exit status;
 * a socket only its owner can open; the idle time and `dkms lock` closing the wallet; a waiting
 * command that keeps no other from running; Ctrl-C and a vanished client cancelling; a killed
 * session that loses nothing. The protocol itself is spoken raw where a test needs a client
 * that waits or misbehaves.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { Wallet, passphraseSecret, rawSecret } from '../../src/wallet/index.js';
import { checkInSession, lockSession, runInSession, sessionPid } from '../../src/cli/session-run.js';
import { startSessionProcess } from '../../src/cli/session-start.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { DKMS_BIN, alive, endSessions, json, runNode, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const PASSPHRASE = 'the session test passphrase';
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const sessions: number[] = [];
afterEach(() => endSessions(sessions, 'SIGKILL'));

/** Runs dkms in `cwd` with only PATH and `env`. */
const dkmsIn = (cwd: string, args: readonly string[], env: Record<string, string>, input?: string): Promise<Run> =>
  runNode([DKMS_BIN, ...args], env, input, cwd);

/** A data directory whose wallet (passphrase PASSPHRASE) holds the Ed25519 key k1. */
async function ownerWithKey() {
  const dir = tempDir('dkms-session-');
  const home = join(dir, 'home');
  const withPass = { DKMS_HOME: home, DKMS_PASSPHRASE: PASSPHRASE };
  const run = (args: readonly string[], env: Record<string, string> = { DKMS_HOME: home }, input?: string) => dkmsIn(dir, args, env, input);
  // Made in process (the CLI's wallet commands are tested elsewhere): two processes fewer a test.
  mkdirSync(home, { mode: 0o700 });
  const wallet = await Wallet.create(join(home, 'wallet.db'), passphraseSecret(PASSPHRASE), { kdfTier: 'interactive' });
  wallet.createKey('k1', 'ed25519');
  wallet.close();
  const unlock = async (...more: string[]) => {
    const result = await run(['unlock', '--json', ...more], withPass);
    expect(result.code, result.stderr).toBe(0);
    const answer = json<{ pid: number; already: boolean; locksAt: string }>(result);
    sessions.push(answer.pid);
    return answer;
  };
  return { dir, home, socket: join(home, 'session.sock'), withPass, run, unlock };
}

/** A raw connection speaking the session protocol: frames as they come. */
function rawClient(path: string) {
  const socket: Socket = connect(path);
  const frames: Record<string, unknown>[] = [];
  let buffered = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) frames.push(JSON.parse(line) as Record<string, unknown>);
  });
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('error', () => undefined);
  return {
    frames,
    closed,
    send: (frame: object) => socket.write(`${JSON.stringify(frame)}\n`),
    line: (text: string) => socket.write(`${text}\n`),
    close: () => socket.destroy(),
    frame: (type: string) => waitFor(`a ${type} frame`, () => frames.find((f) => f['type'] === type)),
  };
}

const run = (argv: readonly string[], over: Record<string, unknown> = {}) => ({
  type: 'run',
  protocol: 1,
  version: VERSION,
  argv,
  cwd: '/',
  env: {},
  tty: { stdin: false, stdout: false, stderr: false },
  ...over,
});

describe('dkms unlock', () => {
  it('opens the wallet once: later commands need no passphrase, keep their working directory, input, output and exit status; dkms lock ends that', async () => {
    const o = await ownerWithKey();
    const noPass = { DKMS_HOME: o.home };
    // Without a session, a command with no passphrase cannot open the wallet.
    expect((await o.run(['key', 'list'], noPass)).code).toBe(ERROR_CODES.BAD_INPUT.exit);

    const started = await o.unlock();
    expect(started.already).toBe(false);
    expect(lstatSync(o.socket).mode & 0o777).toBe(0o600);

    writeFileSync(join(o.dir, 'note.txt'), 'signed through the session');
    const signed = await o.run(['key', 'sign', '--name', 'k1', '--in', 'note.txt', '--json'], noPass);
    expect(signed.code, signed.stderr).toBe(0);
    const { signature, publicKey } = json<{ signature: string; publicKey: string }>(signed);
    const verified = await o.run(['key', 'verify', '--public-key', publicKey, '--signature', signature, '--in', 'note.txt'], noPass);
    expect(verified.stdout.trim()).toBe('valid');

    // Standard input, when an argument is '-'.
    const piped = await o.run(['key', 'sign', '--name', 'k1', '--in', '-', '--json'], noPass, 'signed through the session');
    expect(json<{ signature: string }>(piped).signature).toBe(signature);

    // Failures keep their code, message and exit status; --json prints the error object.
    const missing = await o.run(['key', 'sign', '--name', 'nope', '--in', 'note.txt', '--json'], noPass);
    expect(missing.code).toBe(ERROR_CODES.KEY_NOT_FOUND.exit);
    expect(missing.stderr).toMatch(/^dkms: KEY_NOT_FOUND: /);
    expect(json<{ error: { code: string } }>(missing).error.code).toBe('KEY_NOT_FOUND');

    const doctor = json<{ checks: { check: string; status: string; detail: string }[] }>(
      await o.run(['doctor', '--json', '--ledger', 'http://127.0.0.1:1'], noPass),
    );
    expect(doctor.checks.find((c) => c.check === 'session')).toMatchObject({ status: 'ok', detail: expect.stringContaining(`pid ${started.pid}`) });
    // wallet info answers from the open wallet (the file is locked by the session).
    const info = await o.run(['wallet', 'info', '--json'], noPass);
    expect(json<{ items: number }>(info).items).toBeGreaterThan(0);

    // A second unlock reports the running session.
    const again = await o.unlock();
    expect(again).toMatchObject({ already: true, pid: started.pid });

    const locked = await o.run(['lock', '--json'], noPass);
    expect(json(locked)).toEqual({ locked: true });
    await waitFor('the session process to exit', () => !alive(started.pid));
    expect(existsSync(o.socket)).toBe(false);
    expect((await o.run(['key', 'list'], noPass)).code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(json(await o.run(['lock', '--json'], noPass))).toEqual({ locked: false });
    expect(readFileSync(join(o.home, 'session.log'), 'utf8')).toMatch(/unlocked: pid \d+[^\n]*\n.*locked: dkms lock\n/);
  });

  it('refuses a wrong passphrase, a missing wallet and a bad --idle, and starts no session', async () => {
    const o = await ownerWithKey();
    const wrong = await o.run(['unlock'], { DKMS_HOME: o.home, DKMS_PASSPHRASE: 'not the passphrase' });
    expect(wrong.code).toBe(ERROR_CODES.WALLET_BAD_PASSPHRASE.exit);
    expect(wrong.stderr).toContain('dkms: WALLET_BAD_PASSPHRASE:');
    expect(existsSync(o.socket)).toBe(false);
    const none = await o.run(['unlock'], { DKMS_HOME: join(o.dir, 'elsewhere'), DKMS_PASSPHRASE: PASSPHRASE });
    expect(none.code).toBe(ERROR_CODES.WALLET_NOT_FOUND.exit);
    const idle = await o.run(['unlock', '--idle', '25h'], o.withPass);
    expect(idle.code).toBe(ERROR_CODES.BAD_INPUT.exit);
    expect(idle.stderr).toContain('from 1s to 24h');
  });

  it('is reachable only by its owner: the socket is 0600, and a socket of another user is never used', async () => {
    const o = await ownerWithKey();
    await o.unlock();
    expect(lstatSync(o.socket).mode & 0o777).toBe(0o600);
    // Root may do what the test needs next; anyone else has the mode checked, above.
    if (process.getuid?.() !== 0) return;
    // Another user who can reach the directory still cannot open the socket. The control, a
    // socket open to all in the same directory, shows that the test would see a connection.
    chmodSync(o.dir, 0o711);
    chmodSync(o.home, 0o711);
    const open = createServer(() => undefined);
    const openPath = join(o.home, 'open.sock');
    await new Promise<void>((resolve) => open.listen(openPath, resolve));
    chmodSync(openPath, 0o666);
    const asNobody = (path: string) =>
      spawnSync(
        process.execPath,
        [
          '-e',
          `require('node:net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0); }).on('error', (e) => console.log(e.code))`,
        ],
        { uid: 65534, gid: 65534, encoding: 'utf8' },
      ).stdout.trim();
    try {
      expect(asNobody(openPath)).toBe('connected');
      expect(asNobody(o.socket)).toBe('EACCES');
    } finally {
      open.close();
    }
    // A socket file owned by someone else is not this user's session: the command runs by
    // itself, and finds the wallet held by the session process.
    chownSync(o.socket, 65534, 65534);
    expect((await o.run(['key', 'list'], { DKMS_HOME: o.home })).code).toBe(ERROR_CODES.WALLET_BUSY.exit);
    chownSync(o.socket, 0, 0);
    expect((await o.run(['key', 'list'], { DKMS_HOME: o.home })).code).toBe(0);
  });

  it('locks after its idle time, which a running command postpones', async () => {
    const o = await ownerWithKey();
    const { pid } = await o.unlock('--idle', '1s');
    // A command waiting for an answer at the terminal runs past the idle time, and finishes.
    const waiting = rawClient(o.socket);
    waiting.send(
      run(['wallet', 'export', '--out', join(o.dir, 'export.bin')], { tty: { stdin: true, stdout: false, stderr: false }, env: { DKMS_HOME: o.home } }),
    );
    const ask = await waiting.frame('ask');
    expect(ask).toMatchObject({ question: 'Export passphrase', hidden: true });
    const status = rawClient(o.socket);
    status.send({ type: 'status', protocol: 1 });
    expect(await status.frame('status')).toMatchObject({ running: 1, locksAt: null, pid });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(alive(pid)).toBe(true);
    waiting.send({ type: 'answer', id: ask['id'], text: 'an export passphrase' });
    await waitFor('the second question', () => waiting.frames.filter((f) => f['type'] === 'ask').length === 2);
    waiting.send({ type: 'answer', id: waiting.frames.filter((f) => f['type'] === 'ask')[1]?.['id'], text: 'an export passphrase' });
    expect(await waiting.frame('exit')).toEqual({ type: 'exit', status: 0 });
    expect(existsSync(join(o.dir, 'export.bin'))).toBe(true);
    // Then, with nothing running, it locks on its own.
    await waitFor('the idle session to lock', () => !alive(pid), { timeoutMs: 10_000 });
    expect(existsSync(o.socket)).toBe(false);
    expect(readFileSync(join(o.home, 'session.log'), 'utf8')).toContain('locked: 1 s with no command');
    expect((await o.run(['key', 'list'], { DKMS_HOME: o.home })).code).toBe(ERROR_CODES.BAD_INPUT.exit);
  });

  it('runs two commands at once: one waiting at the terminal does not hold up another', async () => {
    const o = await ownerWithKey();
    await o.unlock();
    const waiting = rawClient(o.socket);
    waiting.send(
      run(['wallet', 'export', '--out', join(o.dir, 'export.bin')], { tty: { stdin: true, stdout: false, stderr: false }, env: { DKMS_HOME: o.home } }),
    );
    await waiting.frame('ask');
    writeFileSync(join(o.dir, 'note.txt'), 'meanwhile');
    const [a, b] = await Promise.all([
      o.run(['key', 'sign', '--name', 'k1', '--in', 'note.txt'], { DKMS_HOME: o.home }),
      o.run(['key', 'create', '--name', 'k2', '--type', 'ed25519', '--json'], { DKMS_HOME: o.home }),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(waiting.frames.some((f) => f['type'] === 'exit')).toBe(false);
    // Ctrl-C at the waiting client: "cancelled", 130, and no export file.
    waiting.send({ type: 'cancel' });
    expect(await waiting.frame('exit')).toEqual({ type: 'exit', status: 130 });
    expect(waiting.frames.filter((f) => f['type'] === 'err').map((f) => f['text'])).toContain('\ndkms: cancelled\n');
    expect(existsSync(join(o.dir, 'export.bin'))).toBe(false);
    // A client that goes away mid-command cancels it too: the session is idle again.
    const vanishing = rawClient(o.socket);
    vanishing.send(
      run(['wallet', 'export', '--out', join(o.dir, 'export.bin')], { tty: { stdin: true, stdout: false, stderr: false }, env: { DKMS_HOME: o.home } }),
    );
    await vanishing.frame('ask');
    vanishing.close();
    await waitFor('the session to be idle', async () => {
      const status = rawClient(o.socket);
      status.send({ type: 'status', protocol: 1 });
      return (await status.frame('status'))['running'] === 0;
    });
    expect(existsSync(join(o.dir, 'export.bin'))).toBe(false);
    const keys = json<{ keys: { name: string }[] }>(await o.run(['key', 'list', '--json'], { DKMS_HOME: o.home }));
    expect(keys.keys.map((k) => k.name).sort()).toEqual(['k1', 'k2']);
  });

  it('ends a command that runs when the session locks with SESSION_LOST, and refuses other versions and malformed requests', async () => {
    const o = await ownerWithKey();
    const { pid } = await o.unlock();
    for (const [request, code] of [
      [run(['key', 'list'], { protocol: 2 }), 'SESSION_PROTOCOL'],
      [run(['key', 'list'], { version: '0.0.0-other' }), 'SESSION_PROTOCOL'],
      [{ type: 'run', protocol: 1 }, 'BAD_INPUT'],
      [run(['key', 'list'], { env: { PATH: '/bin' } }), 'BAD_INPUT'],
      // Servers and the session's own commands are never run inside it.
      [run(['up', '--ledger-port', '0', '--agency-port', '0']), 'BAD_INPUT'],
      [run(['--home', o.home, 'unlock']), 'BAD_INPUT'],
      [run(['ledger', 'serve']), 'BAD_INPUT'],
    ] as const) {
      const client = rawClient(o.socket);
      client.send(request);
      expect(await client.frame('refused')).toMatchObject({ code });
      await client.closed;
    }
    const garbage = rawClient(o.socket);
    garbage.line('not json');
    await garbage.closed;
    expect(garbage.frames).toEqual([]);
    // The session still serves.
    expect((await o.run(['key', 'list'], { DKMS_HOME: o.home })).code).toBe(0);

    const waiting = rawClient(o.socket);
    waiting.send(
      run(['wallet', 'export', '--out', join(o.dir, 'export.bin')], { tty: { stdin: true, stdout: false, stderr: false }, env: { DKMS_HOME: o.home } }),
    );
    await waiting.frame('ask');
    expect(json(await o.run(['lock', '--json'], { DKMS_HOME: o.home }))).toEqual({ locked: true });
    expect(await waiting.frame('exit')).toEqual({ type: 'exit', status: ERROR_CODES.SESSION_LOST.exit });
    expect(waiting.frames.find((f) => f['type'] === 'err')?.['text']).toMatch(/^dkms: SESSION_LOST: the unlock session locked \(dkms lock\)/);
    await waitFor('the session process to exit', () => !alive(pid));
  });

  it('locks once its socket is gone: a data directory removed leaves no session behind', async () => {
    const o = await ownerWithKey();
    const { pid } = await o.unlock();
    rmSync(o.socket);
    await waitFor('the session to exit', () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
    expect(readFileSync(join(o.home, 'session.log'), 'utf8')).toContain('locked: its socket was removed');
  });

  it('loses nothing when killed: what it committed stays, the stale socket is ignored, and unlock starts anew', async () => {
    const o = await ownerWithKey();
    const { pid } = await o.unlock();
    const created = await o.run(['key', 'create', '--name', 'k2', '--type', 'x25519'], { DKMS_HOME: o.home });
    expect(created.code, created.stderr).toBe(0);
    process.kill(pid, 'SIGKILL');
    await waitFor('the session process to die', () => !alive(pid));
    expect(lstatSync(o.socket).isSocket()).toBe(true);
    const doctor = await o.run(['doctor', '--json', '--ledger', 'http://127.0.0.1:1'], o.withPass);
    const checks = json<{ checks: { check: string; status: string; fix?: string }[] }>(doctor).checks;
    expect(checks.find((c) => c.check === 'session')).toMatchObject({ status: 'warn', fix: expect.stringContaining('dkms lock') });
    const listed = await o.run(['key', 'list', '--json'], o.withPass);
    expect(listed.code, listed.stderr).toBe(0);
    expect(
      json<{ keys: { name: string }[] }>(listed)
        .keys.map((k) => k.name)
        .sort(),
    ).toEqual(['k1', 'k2']);
    const second = await o.unlock();
    expect(second.already).toBe(false);
    expect((await o.run(['key', 'list'], { DKMS_HOME: o.home })).code).toBe(0);
  });

  it('serves a program as it serves a terminal: started from a passphrase, it checks passphrases and runs commands with no terminal', async () => {
    const o = await ownerWithKey();
    const pid = await startSessionProcess(o.home, { secret: passphraseSecret(PASSPHRASE) }, 60);
    sessions.push(pid);
    expect(await sessionPid(o.home)).toBe(pid);
    expect(lstatSync(o.socket).mode & 0o777).toBe(0o600);
    expect(await checkInSession(o.home, PASSPHRASE)).toBe(true);
    expect(await checkInSession(o.home, `${PASSPHRASE}!`)).toBe(false);

    const listed = await runInSession(o.home, ['key', 'list', '--json']);
    expect(listed.status, listed.err).toBe(0);
    expect(JSON.parse(listed.out)).toMatchObject({ keys: [{ name: 'k1', type: 'ed25519' }] });
    const missing = await runInSession(o.home, ['key', 'show', '--name', 'nope', '--json']);
    expect(missing).toMatchObject({ status: ERROR_CODES.KEY_NOT_FOUND.exit, err: expect.stringMatching(/^dkms: KEY_NOT_FOUND: /) });
    expect(JSON.parse(missing.out)).toMatchObject({ error: { code: 'KEY_NOT_FOUND' } });
    // With no terminal, a command that would ask says so instead.
    const asks = await runInSession(o.home, ['wallet', 'export', '--out', join(o.dir, 'export.bin'), '--json']);
    expect(asks.status).toBe(ERROR_CODES.BAD_INPUT.exit);
    await expectCodeAsync(runInSession(o.home, ['up', '--json']), 'BAD_INPUT');

    // The passphrase reached the session on its pipe and socket: never in its arguments or environment.
    const seen = `${readFileSync(`/proc/${pid}/cmdline`, 'utf8')}\n${readFileSync(`/proc/${pid}/environ`, 'utf8')}`;
    expect(seen).not.toContain(PASSPHRASE);
    expect(readFileSync(join(o.home, 'session.log'), 'utf8')).not.toContain(PASSPHRASE);

    // A session that locks, or dies, while a command runs: SESSION_LOST.
    const hung = createServer(() => undefined);
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => void hung.close());
    const address = hung.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const connected = new Promise<void>((resolve) => hung.once('connection', (socket) => (socket.on('error', () => undefined), resolve())));
    // Its refusal is expected from the start: it may come before lockSession's own answer does.
    const waiting = expectCodeAsync(runInSession(o.home, ['ledger', 'status', '--ledger', `http://127.0.0.1:${port}`, '--json']), 'SESSION_LOST');
    await connected;
    expect(await lockSession(o.home)).toBe(true);
    await waiting;
    await waitFor('the session process to exit', () => !alive(pid));
    expect(await sessionPid(o.home)).toBeUndefined();
    expect(await lockSession(o.home)).toBe(false);
    await expectCodeAsync(runInSession(o.home, ['key', 'list']), 'SESSION_LOST');
    await expectCodeAsync(checkInSession(o.home, PASSPHRASE), 'SESSION_LOST');

    const again = await startSessionProcess(o.home, { secret: passphraseSecret(PASSPHRASE) }, 60);
    sessions.push(again);
    const killedConnected = new Promise<void>((resolve) => hung.once('connection', () => resolve()));
    const killedWhile = expectCodeAsync(runInSession(o.home, ['ledger', 'status', '--ledger', `http://127.0.0.1:${port}`, '--json']), 'SESSION_LOST');
    await killedConnected;
    process.kill(again, 'SIGKILL');
    await killedWhile;

    await expectCodeAsync(startSessionProcess(o.home, { secret: passphraseSecret('not the passphrase') }, 60), 'WALLET_BAD_PASSPHRASE');
  });

  it('refuses a passphrase check of a wallet the passphrase alone does not open, and a check of another protocol', async () => {
    const dir = tempDir('dkms-session-');
    const home = join(dir, 'home');
    mkdirSync(home, { mode: 0o700 });
    const key = rawSecret(new Uint8Array(32).fill(7));
    (await Wallet.create(join(home, 'wallet.db'), key)).close();
    const pid = await startSessionProcess(home, { secret: key }, 60);
    sessions.push(pid);
    await expectCodeAsync(checkInSession(home, PASSPHRASE), 'CONSOLE_UNAVAILABLE');
    for (const [request, code] of [
      [{ type: 'check', protocol: 2, secret: { kind: 'passphrase', passphrase: PASSPHRASE } }, 'SESSION_PROTOCOL'],
      [{ type: 'check', protocol: 1, secret: { kind: 'raw', key: 'AAAA' } }, 'BAD_INPUT'],
      [{ type: 'check', protocol: 1, secret: { kind: 'passphrase', passphrase: '' } }, 'BAD_INPUT'],
    ] as const) {
      const client = rawClient(join(home, 'session.sock'));
      client.send(request);
      expect(await client.frame('refused')).toMatchObject({ code });
      await client.closed;
    }
    // The session still serves.
    expect(await runInSession(home, ['key', 'list', '--json'])).toMatchObject({ status: 0 });
  });

  it('a client of a running session loads only the session client: none of the commands, the wallet or its native modules', async () => {
    const o = await ownerWithKey();
    await o.unlock();
    const record = join(o.dir, 'loaded.txt');
    const recorder = new URL('../helpers/record-loads.mjs', import.meta.url).href;
    const result = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [`--import=${recorder}`, DKMS_BIN, 'key', 'list'], {
        env: { PATH: process.env['PATH'] ?? '', DKMS_HOME: o.home, DKMS_RECORD_LOADS: record },
        stdio: 'ignore',
      });
      child.on('close', resolve);
    });
    expect(result).toBe(0);
    const root = new URL('../..', import.meta.url).href;
    const loaded = [...new Set(readFileSync(record, 'utf8').split('\n'))].filter((u) => u !== '' && !u.startsWith('node:')).map((u) => u.replace(root, ''));
    expect(loaded).toContain('dist/cli/session-client.js');
    expect(loaded.filter((m) => !/^(bin\/dkms\.js|dist\/cli\/session-client\.js|dist\/cli\/chunks\/[^/]+\.js)$/.test(m))).toEqual([]);
    const chunks = loaded.filter((m) => m.startsWith('dist/cli/chunks/'));
    // The chunks it shares with the commands are small: the protocol, the prompts, the error codes.
    for (const chunk of chunks) expect(readFileSync(new URL(chunk, root), 'utf8').length, chunk).toBeLessThan(20_000);
  });
});
