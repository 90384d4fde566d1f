/**
 * The unlock session (`dkms unlock`): one process per data directory that holds the wallet open
 * and runs the commands its clients forward (session-client.ts), each with the client's terminal,
 * environment and working directory, so that no command pays for unlocking again. It listens on a
 * Unix socket in the data directory that only its owner can open (mode 0600, made so before it
 * exists) and nowhere else; private keys never leave this process. It locks, closing the wallet
 * and wiping its keys, on `dkms lock`, after its idle time with no command running, when its
 * socket is gone (the data directory removed or moved: no client could reach it), or on SIGTERM,
 * SIGINT or SIGHUP. The protocol is docs/session.md.
 *
 * Commands run side by side, as they arrive: the wallet is one SQLite connection in one thread,
 * so each wallet operation is whole before the next begins, and a command that waits (a pairing,
 * co-signers) keeps no other from running. What must not interleave is serialized where it is
 * (the agent's handling of its mailbox, the automatic backup).
 */
import { lstatSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { z } from 'zod';
import { DkmsError, ERROR_CODES } from '../errors.js';
import type { SecretCheck, Wallet } from '../wallet/index.js';
import { passphraseSecret } from '../wallet/secret.js';
import type { RunPlace } from './run-place.js';
import { CancelSteps, type CommandIo } from './io.js';
import { commandOf, connectSession, runsHere } from './session-client.js';
import { MAX_STDIN_BYTES, SESSION_PROTOCOL, readFrames, send, socketPath, type SessionStatus } from './session-protocol.js';
import { version } from './version.js';

/** How often the session checks that its socket is still there. */
const SOCKET_WATCH_MS = 2_000;

function socketExists(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

const Tty = z.strictObject({ stdin: z.boolean(), stdout: z.boolean(), stderr: z.boolean() });
const Request = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('run'),
    protocol: z.number(),
    version: z.string().max(64),
    argv: z.array(z.string().max(65_536)).max(1024),
    cwd: z.string().min(1).max(4096).startsWith('/'),
    env: z.record(z.string().regex(/^DKMS_[A-Z0-9_]{1,64}$/), z.string().max(65_536)),
    tty: Tty,
    stdin: z
      .string()
      .max(Math.ceil(MAX_STDIN_BYTES / 3) * 4)
      .optional(),
  }),
  z.strictObject({ type: z.literal('status'), protocol: z.number() }),
  z.strictObject({ type: z.literal('lock'), protocol: z.number() }),
  z.strictObject({
    type: z.literal('check'),
    protocol: z.number(),
    secret: z.strictObject({ kind: z.literal('passphrase'), passphrase: z.string().min(1).max(65_536) }),
  }),
]);
type RunRequest = Extract<z.infer<typeof Request>, { type: 'run' }>;
const ClientFrame = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('answer'), id: z.number().int(), text: z.string().max(65_536) }),
  z.strictObject({ type: z.literal('cancel') }),
]);

/** Runs one command (main.ts's main, given by the session process, which main.ts does not import). */
export type RunCommand = (argv: readonly string[], place: RunPlace) => Promise<number>;

const MAX_SOCKET_PATH_BYTES = 107;

export interface SessionOptions {
  readonly home: string;
  readonly run: RunCommand;
  readonly wallet: Wallet;
  readonly idleSeconds: number;
  /** One line about the session's life (never a secret, never a command's arguments). */
  readonly log: (line: string) => void;
}

/** A command the session is running for one client. */
interface Running {
  readonly steps: CancelSteps;
  /** Ends the command for its client with these last words and exit status: cancelled, or the session locked. */
  cancel(why: string, status: number): void;
}

export class UnlockSession {
  readonly #options: SessionOptions;
  readonly #server: Server;
  readonly #running = new Set<Running>();
  readonly #since = new Date();
  readonly #locked: Promise<string>;
  #unlockedUntil: (reason: string) => void = () => undefined;
  #idle: NodeJS.Timeout | undefined;
  /** Looks for the socket now and then: a session no client can reach any more locks. */
  #watch: NodeJS.Timeout | undefined;
  #locksAt: number | undefined;
  #locking = false;

  private constructor(options: SessionOptions) {
    this.#options = options;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#locked = new Promise((resolve) => (this.#unlockedUntil = resolve));
  }

  /** Listens on the data directory's socket; SESSION_ACTIVE when another session already does. */
  static async start(options: SessionOptions): Promise<UnlockSession> {
    const path = socketPath(options.home);
    // A Unix socket's path has room for 107 bytes.
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
      throw new DkmsError('BAD_INPUT', `the data directory's path is too long for the session's socket (${path}): use a data directory with a shorter path`);
    }
    await clearStaleSocket(path);
    const session = new UnlockSession(options);
    // The socket exists with mode 0600 from its first moment: no other user can ever open it.
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        session.#server.once('error', reject);
        session.#server.listen(path, () => {
          session.#server.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      throw new DkmsError('IO_ERROR', `cannot listen on ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
    } finally {
      process.umask(umask);
    }
    session.#restartIdle();
    session.#watch = setInterval(() => {
      if (!socketExists(path)) session.lock('its socket was removed');
    }, SOCKET_WATCH_MS);
    options.log(`unlocked: pid ${process.pid}, locks after ${options.idleSeconds} s with no command`);
    return session;
  }

  /** Resolves, with why, once the session has locked. */
  get locked(): Promise<string> {
    return this.#locked;
  }

  status(): SessionStatus {
    return {
      type: 'status',
      protocol: SESSION_PROTOCOL,
      version: version(),
      pid: process.pid,
      home: this.#options.home,
      since: this.#since.toISOString(),
      idleSeconds: this.#options.idleSeconds,
      running: this.#running.size,
      locksAt: this.#locksAt === undefined ? null : new Date(this.#locksAt).toISOString(),
    };
  }

  /** Ends every running command, closes the wallet (wiping its keys) and the socket. */
  lock(reason: string): void {
    if (this.#locking) return;
    this.#locking = true;
    clearTimeout(this.#idle);
    clearInterval(this.#watch);
    for (const run of [...this.#running]) {
      run.cancel(`dkms: SESSION_LOST: the unlock session locked (${reason}) before the command finished\n`, ERROR_CODES.SESSION_LOST.exit);
    }
    this.#options.wallet.close();
    // No new client gets in; the ones still connected (the one asking to lock) end their own way.
    this.#server.close();
    rmSync(socketPath(this.#options.home), { force: true });
    this.#options.log(`locked: ${reason}`);
    this.#unlockedUntil(reason);
  }

  #restartIdle(): void {
    clearTimeout(this.#idle);
    if (this.#locking) return;
    if (this.#running.size > 0) {
      this.#locksAt = undefined;
      return;
    }
    const ms = this.#options.idleSeconds * 1000;
    this.#locksAt = Date.now() + ms;
    this.#idle = setTimeout(() => this.lock(`${this.#options.idleSeconds} s with no command`), ms);
  }

  #accept(socket: Socket): void {
    let first = true;
    let onFrame: (frame: Record<string, unknown>) => void = () => undefined;
    readFrames(
      socket,
      (frame) => {
        if (!first) return onFrame(frame);
        first = false;
        const request = Request.safeParse(frame);
        if (!request.success) return refuse(socket, 'BAD_INPUT', 'not a request of the session protocol (docs/session.md)');
        if (request.data.protocol !== SESSION_PROTOCOL && request.data.type !== 'lock') {
          return refuse(socket, 'SESSION_PROTOCOL', `this session speaks protocol ${SESSION_PROTOCOL}, the client ${request.data.protocol}`);
        }
        if (request.data.type === 'status') {
          send(socket, this.status());
          socket.end();
        } else if (request.data.type === 'lock') {
          this.lock('dkms lock');
          send(socket, { type: 'locked' });
          socket.end();
        } else if (request.data.type === 'check') {
          void this.#check(socket, request.data.secret.passphrase);
        } else if (request.data.version !== version()) {
          refuse(
            socket,
            'SESSION_PROTOCOL',
            `this session runs dkms ${version()} and the command is dkms ${request.data.version}: run \`dkms lock\`, then \`dkms unlock\``,
          );
        } else if (runsHere(commandOf(request.data.argv).words)) {
          refuse(
            socket,
            'BAD_INPUT',
            "servers, ledger verify and reindex, help, unlock, lock, and custodians' unseal and seal run in their own process, not in the unlock session",
          );
        } else if (this.#locking) {
          refuse(socket, 'SESSION_LOST', 'the unlock session is locking: run the command again');
        } else {
          onFrame = this.#run(socket, request.data);
        }
      },
      () => socket.destroy(),
    );
    socket.on('error', () => socket.destroy());
  }

  /**
   * Answers whether `passphrase` opens the session's wallet (one Argon2id, off the event loop:
   * commands keep running meanwhile); refused when the wallet opens with more than a passphrase.
   */
  async #check(socket: Socket, passphrase: string): Promise<void> {
    if (this.#locking) return refuse(socket, 'SESSION_LOST', 'the unlock session is locking');
    let found: SecretCheck;
    try {
      found = await this.#options.wallet.checkSecret(passphraseSecret(passphrase));
    } catch {
      // Only a wallet closed meanwhile fails here: the session locked.
      return refuse(socket, 'SESSION_LOST', 'the unlock session locked');
    }
    if (found === 'unavailable') {
      return refuse(socket, 'CONSOLE_UNAVAILABLE', 'this wallet opens with more than a passphrase (a token, custodians) or with a raw key');
    }
    send(socket, { type: 'checked', ok: found === 'opens' });
    socket.end();
  }

  /** Runs the client's command; returns what handles the client's later frames. */
  #run(socket: Socket, request: RunRequest): (frame: Record<string, unknown>) => void {
    const steps = new CancelSteps();
    const asked = new Map<number, { resolve: (text: string) => void; reject: (e: Error) => void }>();
    let finished = false;
    const finish = (lastWords: string, status: number) => {
      if (finished) return;
      finished = true;
      this.#running.delete(run);
      for (const pending of asked.values()) pending.reject(new DkmsError('BAD_INPUT', 'cancelled'));
      asked.clear();
      if (lastWords !== '') send(socket, { type: 'err', text: lastWords });
      send(socket, { type: 'exit', status });
      socket.end();
      this.#restartIdle();
    };
    const run: Running = {
      steps,
      cancel: (why, status) => {
        steps.run();
        finish(why, status);
      },
    };
    this.#running.add(run);
    this.#restartIdle();
    const cancelled = () => run.cancel('\ndkms: cancelled\n', 130);
    socket.on('close', () => {
      // A client gone before its answer (killed, or Ctrl-C twice) cancels its command.
      if (!finished) steps.run();
      finish('', 130);
    });
    const io = clientIo(socket, request, steps, asked, () => finished, cancelled);
    this.#options.run(request.argv, { io, session: { home: this.#options.home, wallet: this.#options.wallet } }).then(
      (status) => finish('', status),
      (e: unknown) => {
        this.#options.log(`a command failed outside its error handling: ${e instanceof Error ? e.name : 'error'}`);
        finish('dkms: INTERNAL: unexpected error in the unlock session\n', 70);
      },
    );
    return (frame) => {
      const parsed = ClientFrame.safeParse(frame);
      if (!parsed.success) return cancelled();
      if (parsed.data.type === 'cancel') return cancelled();
      const pending = asked.get(parsed.data.id);
      asked.delete(parsed.data.id);
      pending?.resolve(parsed.data.text);
    };
  }
}

/** The client's terminal, environment and working directory, through the socket. */
function clientIo(
  socket: Socket,
  request: RunRequest,
  steps: CancelSteps,
  asked: Map<number, { resolve: (text: string) => void; reject: (e: Error) => void }>,
  finished: () => boolean,
  cancelled: () => void,
): CommandIo {
  let nextId = 1;
  const stdin = request.stdin === undefined ? undefined : new Uint8Array(Buffer.from(request.stdin, 'base64'));
  const write = (type: 'out' | 'err', text: string) => {
    if (!finished()) send(socket, { type, text });
  };
  return {
    cwd: request.cwd,
    env: request.env,
    tty: request.tty,
    out: (text) => write('out', text),
    err: (text) => write('err', text),
    ask(question, hidden) {
      if (finished()) return Promise.reject(new DkmsError('BAD_INPUT', 'cancelled'));
      const id = nextId++;
      send(socket, { type: 'ask', id, question, hidden });
      return new Promise<string>((resolve, reject) => asked.set(id, { resolve, reject })).catch((e: unknown) => {
        if (!finished()) cancelled();
        throw e;
      });
    },
    stdin() {
      if (stdin !== undefined) return stdin;
      if (request.tty.stdin) throw new DkmsError('BAD_INPUT', "standard input is a terminal: pipe the input in, or name a file instead of '-'");
      return new Uint8Array(0);
    },
    onCancel: (fn) => steps.add(fn),
    signal: steps.signal,
  };
}

function refuse(socket: Socket, code: string, message: string): void {
  send(socket, { type: 'refused', code, message });
  socket.end();
}

/**
 * Removes a socket file no session answers on (one that was killed); SESSION_ACTIVE when one does,
 * and IO_ERROR when the path is something other than a socket, which is left alone.
 */
async function clearStaleSocket(path: string): Promise<void> {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return;
  if (!stat.isSocket()) throw new DkmsError('IO_ERROR', `${path} exists and is not a socket: remove it, then unlock again`);
  const probe = await connectSession(path);
  probe?.destroy();
  if (probe !== undefined) throw new DkmsError('SESSION_ACTIVE', `an unlock session already runs for this data directory (${path})`);
  rmSync(path, { force: true });
}
