/**
 * The first thing `dkms` does (bin/dkms.js): when the data directory has an unlock session
 * (session-server.ts), the command runs there and this process only carries its terminal: it
 * sends the arguments, working directory, DKMS_* environment and, when an argument is '-', its
 * standard input; it prints what the session writes, answers its questions at the terminal, and
 * passes Ctrl-C on. Node's own modules only, so that a command run this way costs little more
 * than starting Node. Without a session (or for commands that run here: servers, help, unlock and
 * lock themselves) it returns undefined and the command runs in this process.
 */
import { lstatSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { MAX_STDIN_BYTES, SESSION_PROTOCOL, readFrames, send, socketPath, type Request } from './session-protocol.js';
import { askHidden, askLine, Interrupted } from './terminal.js';
import { version } from './version.js';

/**
 * Commands that always run in their own process: servers (and the ledger store's offline audit
 * and reindex, which need no wallet and hold a store of their own), help, and the session's own
 * (unlock and lock, and custodians' unseal and seal, which start and end one).
 */
const LOCAL_COMMANDS = new Set(['up', 'help', 'unlock', 'lock']);
const LOCAL_SUBCOMMANDS = new Set(['ledger serve', 'ledger witness', 'ledger verify', 'ledger reindex', 'agency serve', 'custodian unseal', 'custodian seal']);

/** Global options that take a value (main.ts), so that the command's name is found after them. */
const VALUE_OPTIONS = new Set(['--home', '--passphrase-file', '--key-file', '--pin-file', '--ledger', '--quorum', '--max-head-age']);
const LIST_OPTIONS = new Set(['--trust', '--node-key', '--witness-key']);

/** The command's words and the --home it names, as commander will read them; undefined words for help and version. */
export function commandOf(argv: readonly string[]): { words: string[]; home: string | undefined } {
  const words: string[] = [];
  let home: string | undefined;
  let inList = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') break;
    if (arg === '-h' || arg === '--help' || arg === '-V' || arg === '--version') return { words: [], home };
    if (arg.startsWith('--home=')) home = arg.slice('--home='.length);
    if (arg.startsWith('-')) {
      inList = LIST_OPTIONS.has(arg);
      if (VALUE_OPTIONS.has(arg)) {
        if (arg === '--home') home = argv[i + 1];
        i++;
      }
      continue;
    }
    if (inList) continue;
    if (words.length < 2) words.push(arg);
  }
  return { words, home };
}

/** Whether the command with these words runs in its own process, never in a session. */
export function runsHere(words: readonly string[]): boolean {
  return words.length === 0 || LOCAL_COMMANDS.has(words[0] ?? '') || LOCAL_SUBCOMMANDS.has(words.join(' '));
}

/** The data directory, as Context resolves it. */
export function homeOf(home: string | undefined, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  const fromEnv = env['DKMS_HOME'];
  return resolve(cwd, home ?? (fromEnv === undefined || fromEnv === '' ? join(homedir(), '.dkms') : fromEnv));
}

/**
 * The socket of the data directory's session, when it is one this user made: a socket file owned
 * by this user (a file left by anyone else is not a session of ours, and is not trusted).
 */
export function sessionSocket(home: string): string | undefined {
  const path = socketPath(home);
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined || !stat.isSocket()) return undefined;
  if (process.getuid !== undefined && stat.uid !== process.getuid()) return undefined;
  return path;
}

/** Connects to the session at `path`; undefined when none answers there (it was killed: the socket is stale). */
export function connectSession(path: string): Promise<Socket | undefined> {
  return new Promise((resolvePromise) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolvePromise(socket);
    });
    socket.once('error', () => resolvePromise(undefined));
  });
}

function fail(code: ErrorCode, message: string): number {
  process.stderr.write(`dkms: ${code}: ${message}\n`);
  return ERROR_CODES[code].exit;
}

/** Runs the command through the data directory's session; undefined when it runs in this process. */
export async function runThroughSession(argv: readonly string[]): Promise<number | undefined> {
  if (process.env['DKMS_SESSION'] === 'off') return undefined;
  const { words, home } = commandOf(argv);
  if (runsHere(words)) return undefined;
  const path = sessionSocket(homeOf(home));
  if (path === undefined) return undefined;
  let stdin: string | undefined;
  if (argv.includes('-') && !process.stdin.isTTY) {
    const bytes = readFileSync(0);
    if (bytes.length > MAX_STDIN_BYTES) return fail('BAD_INPUT', `standard input is over ${MAX_STDIN_BYTES} bytes: name a file instead of '-'`);
    stdin = bytes.toString('base64');
  }
  const socket = await connectSession(path);
  if (socket === undefined) return undefined;
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) if (/^DKMS_[A-Z0-9_]{1,64}$/.test(name) && value !== undefined) env[name] = value;
  const request: Request = {
    type: 'run',
    protocol: SESSION_PROTOCOL,
    version: version(),
    argv,
    cwd: process.cwd(),
    env,
    tty: { stdin: process.stdin.isTTY === true, stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true },
    ...(stdin === undefined ? {} : { stdin }),
  };
  send(socket, request);
  return carry(socket);
}

/** Carries the session's frames to this terminal until the command's exit status arrives. */
function carry(socket: Socket): Promise<number> {
  return new Promise((resolvePromise) => {
    let status: number | undefined;
    let interrupts = 0;
    const onInterrupt = () => {
      // The session says "cancelled" and ends the command; a second Ctrl-C does not wait for it.
      if (++interrupts > 1) process.exit(130);
      send(socket, { type: 'cancel' });
    };
    process.on('SIGINT', onInterrupt);
    const done = (code: number) => {
      process.off('SIGINT', onInterrupt);
      resolvePromise(code);
    };
    readFrames(
      socket,
      (frame) => {
        if (frame['type'] === 'out' && typeof frame['text'] === 'string') process.stdout.write(frame['text']);
        else if (frame['type'] === 'err' && typeof frame['text'] === 'string') process.stderr.write(frame['text']);
        else if (frame['type'] === 'exit' && typeof frame['status'] === 'number') status = frame['status'];
        else if (frame['type'] === 'ask' && typeof frame['id'] === 'number' && typeof frame['question'] === 'string') {
          const id = frame['id'];
          const question = frame['question'];
          (frame['hidden'] === true ? askHidden(question) : askLine(question)).then(
            (text) => send(socket, { type: 'answer', id, text }),
            (e: unknown) => {
              if (e instanceof Interrupted) onInterrupt();
              else send(socket, { type: 'cancel' });
            },
          );
        } else if (frame['type'] === 'refused' && typeof frame['code'] === 'string' && typeof frame['message'] === 'string') {
          const code = frame['code'] in ERROR_CODES ? (frame['code'] as ErrorCode) : 'SESSION_PROTOCOL';
          status = fail(code, frame['message']);
        }
      },
      () => socket.destroy(),
    );
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (status !== undefined) return done(status);
      done(fail('SESSION_LOST', 'the unlock session ended before the command finished (locked or killed): run the command again'));
    });
  });
}

/** Sends `request` (status, lock) to the session at `path`; its one answer, or undefined when none answers there. */
export async function askSession(path: string, request: Request): Promise<Record<string, unknown> | undefined> {
  const socket = await connectSession(path);
  if (socket === undefined) return undefined;
  return new Promise((resolvePromise) => {
    let answer: Record<string, unknown> | undefined;
    readFrames(
      socket,
      (frame) => (answer ??= frame),
      () => socket.destroy(),
    );
    socket.on('error', () => undefined);
    socket.on('close', () => resolvePromise(answer));
    send(socket, request);
  });
}
