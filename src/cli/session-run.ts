/**
 * The unlock session used by a program rather than a terminal (the owner console): run a `dkms`
 * command in it and gather what it printed, check a passphrase against its wallet, ask how it is,
 * lock it. Each is one connection to the data directory's socket (docs/session.md). A command
 * runs with no terminal (it asks nothing), no standard input, the data directory as its working
 * directory, and no environment but `DKMS_HOME`: no secret travels with it.
 */
import type { Socket } from 'node:net';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { askSession, connectSession, sessionSocket } from './session-client.js';
import { SESSION_PROTOCOL, readFrames, send, type Request } from './session-protocol.js';
import { version } from './version.js';

/** What a command run in the session printed, and its exit status. */
export interface SessionRun {
  readonly status: number;
  readonly out: string;
  readonly err: string;
}

/** The most output gathered from one command (its JSON answer is far smaller). */
const MAX_OUTPUT_CHARS = 8 * 1024 * 1024;

const lost = (why: string) => new DkmsError('SESSION_LOST', `the unlock session ${why}: log in again`);

/** A refusal's code as one of ours (SESSION_PROTOCOL for one this dkms does not know). */
function refusal(frame: Record<string, unknown>): DkmsError {
  const code = typeof frame['code'] === 'string' && frame['code'] in ERROR_CODES ? (frame['code'] as ErrorCode) : 'SESSION_PROTOCOL';
  return new DkmsError(code, typeof frame['message'] === 'string' ? frame['message'].slice(0, 500) : 'the unlock session refused the request');
}

/** The socket of the session of `home`; SESSION_LOST when none runs. */
async function connect(home: string): Promise<Socket> {
  const path = sessionSocket(home);
  const socket = path === undefined ? undefined : await connectSession(path);
  if (socket === undefined) throw lost('is not running');
  return socket;
}

/**
 * Runs `dkms argv` in the unlock session of `home` and resolves with its exit status and output
 * once it ends (a failure is its status and output, not a rejection).
 *
 * @throws DkmsError SESSION_LOST when no session runs, or it locked or went away before the
 *   command ended; a refusal's code (SESSION_PROTOCOL for another dkms version, BAD_INPUT for a
 *   command that never runs in a session).
 */
export async function runInSession(home: string, argv: readonly string[]): Promise<SessionRun> {
  const socket = await connect(home);
  const request: Request = {
    type: 'run',
    protocol: SESSION_PROTOCOL,
    version: version(),
    argv,
    cwd: home,
    env: { DKMS_HOME: home },
    tty: { stdin: false, stdout: false, stderr: false },
  };
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    let status: number | undefined;
    let refused: DkmsError | undefined;
    readFrames(
      socket,
      (frame) => {
        const { type, text } = frame;
        if ((type === 'out' || type === 'err') && typeof text === 'string') {
          if (type === 'out') out += text;
          else err += text;
          if (out.length + err.length > MAX_OUTPUT_CHARS) {
            refused = new DkmsError('INTERNAL', `the command printed more than ${MAX_OUTPUT_CHARS} characters`);
            socket.destroy();
          }
        } else if (type === 'exit' && typeof frame['status'] === 'number') status = frame['status'];
        else if (type === 'refused') refused = refusal(frame);
        // A question would need a terminal, which this run has none of: the command is cancelled.
        else if (type === 'ask') send(socket, { type: 'cancel' });
      },
      () => socket.destroy(),
    );
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (refused !== undefined) return reject(refused);
      // A session that locks while the command runs ends it with SESSION_LOST's status.
      if (status === undefined || status === ERROR_CODES.SESSION_LOST.exit) return reject(lost('ended before the command finished'));
      resolve({ status, out, err });
    });
    send(socket, request);
  });
}

/**
 * Whether `passphrase` opens the wallet of the session of `home` (one Argon2id in the session).
 *
 * @throws DkmsError SESSION_LOST when no session runs; CONSOLE_UNAVAILABLE when its wallet opens
 *   with more than a passphrase (a token, custodians) or with a raw key.
 */
export async function checkInSession(home: string, passphrase: string): Promise<boolean> {
  const path = sessionSocket(home);
  const answer =
    path === undefined ? undefined : await askSession(path, { type: 'check', protocol: SESSION_PROTOCOL, secret: { kind: 'passphrase', passphrase } });
  if (answer?.['type'] === 'checked' && typeof answer['ok'] === 'boolean') return answer['ok'];
  if (answer?.['type'] === 'refused') throw refusal(answer);
  throw lost('is not running');
}

/** The pid of the session of `home`, or undefined when none runs there. */
export async function sessionPid(home: string): Promise<number | undefined> {
  const path = sessionSocket(home);
  const answer = path === undefined ? undefined : await askSession(path, { type: 'status', protocol: SESSION_PROTOCOL });
  return answer?.['type'] === 'status' && typeof answer['pid'] === 'number' ? answer['pid'] : undefined;
}

/** Locks the session of `home`; whether one was running to lock. */
export async function lockSession(home: string): Promise<boolean> {
  const path = sessionSocket(home);
  const answer = path === undefined ? undefined : await askSession(path, { type: 'lock', protocol: SESSION_PROTOCOL });
  return answer?.['type'] === 'locked';
}
