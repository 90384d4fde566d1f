/**
 * What a command reads and writes outside the data directory: its standard streams, terminal,
 * environment, working directory, and Ctrl-C. A command `dkms` runs in its own process has that
 * process's (`processIo`); one the unlock session runs has its client's, forwarded over the
 * session socket (session-server.ts). Commands reach these only through their Context.
 */
import { readFileSync } from 'node:fs';
import { DkmsError } from '../errors.js';
import { askHidden, askLine, Interrupted } from './terminal.js';

export interface CommandIo {
  /** The directory relative paths are relative to. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether standard input, output and error are a terminal. */
  readonly tty: { readonly stdin: boolean; readonly stdout: boolean; readonly stderr: boolean };
  out(text: string): void;
  err(text: string): void;
  /** Asks at the terminal (only when `tty.stdin`); `hidden` types without echo. Cancels the command on Ctrl-C. */
  ask(question: string, hidden: boolean): Promise<string>;
  /** All of standard input. */
  stdin(): Uint8Array;
  /** Runs `fn` if the command is cancelled (Ctrl-C) before the returned function is called. */
  onCancel(fn: () => void): () => void;
  /** Aborted when the command is cancelled. */
  readonly signal: AbortSignal;
}

/** Undo steps registered with onCancel, run newest first; one that fails does not keep the others from running. */
export class CancelSteps {
  readonly #steps = new Set<() => void>();
  readonly #controller = new AbortController();

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  add(fn: () => void): () => void {
    this.#steps.add(fn);
    return () => {
      this.#steps.delete(fn);
    };
  }

  run(): void {
    this.#controller.abort();
    for (const fn of [...this.#steps].reverse()) {
      try {
        fn();
      } catch {
        // Undoing goes on.
      }
    }
    this.#steps.clear();
  }
}

/**
 * Ctrl-C in a command run in its own process: says "cancelled", undoes what the command had
 * begun and must not leave half made, and exits 130, as an interrupted program does. Server
 * commands, which stop cleanly on Ctrl-C, take the signal over (`takeOverInterrupt`).
 */
const processSteps = new CancelSteps();

function cancelProcess(): never {
  processSteps.run();
  process.stderr.write('\ndkms: cancelled\n');
  process.exit(130);
}

function onSigint(): void {
  cancelProcess();
}

/** For a command that handles Ctrl-C itself from now on (a server that stops cleanly). */
export function takeOverInterrupt(): void {
  process.off('SIGINT', onSigint);
}

/** This process's own streams, environment and working directory; installs the Ctrl-C handler (once). */
export function processIo(): CommandIo {
  if (!process.listeners('SIGINT').includes(onSigint)) process.on('SIGINT', onSigint);
  return {
    cwd: process.cwd(),
    env: process.env,
    tty: { stdin: process.stdin.isTTY === true, stdout: process.stdout.isTTY === true, stderr: process.stderr.isTTY === true },
    out: (text) => void process.stdout.write(text),
    err: (text) => void process.stderr.write(text),
    async ask(question, hidden) {
      try {
        return await (hidden ? askHidden(question) : askLine(question));
      } catch (e) {
        // Ctrl-C typed at a hidden prompt arrives as a character, not as a signal.
        if (e instanceof Interrupted) cancelProcess();
        throw e;
      }
    },
    stdin() {
      try {
        return new Uint8Array(readFileSync(0));
      } catch (e) {
        throw new DkmsError('IO_ERROR', `cannot read standard input: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
      }
    },
    onCancel: (fn) => processSteps.add(fn),
    signal: processSteps.signal,
  };
}
