/**
 * The unlock session's socket protocol (docs/session.md), shared by the session and its client:
 * one JSON object per line in each direction. Node's own modules only: the client loads this.
 */
import { join } from 'node:path';
import type { Socket } from 'node:net';

/** The protocol version this dkms speaks; a session refuses a client that speaks another. */
export const SESSION_PROTOCOL = 1;

/** The longest line either side accepts: a command's standard input travels in one (base64). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** Standard input a client sends at most (its base64 must fit in a frame). */
export const MAX_STDIN_BYTES = 32 * 1024 * 1024;

export function socketPath(home: string): string {
  return join(home, 'session.sock');
}

export interface Tty {
  readonly stdin: boolean;
  readonly stdout: boolean;
  readonly stderr: boolean;
}

/** What a client sends first. */
export type Request =
  | {
      readonly type: 'run';
      readonly protocol: number;
      readonly version: string;
      readonly argv: readonly string[];
      readonly cwd: string;
      readonly env: Readonly<Record<string, string>>;
      readonly tty: Tty;
      readonly stdin?: string;
    }
  | { readonly type: 'status'; readonly protocol: number }
  | { readonly type: 'lock'; readonly protocol: number }
  | { readonly type: 'check'; readonly protocol: number; readonly secret: { readonly kind: 'passphrase'; readonly passphrase: string } };

/** What a client sends while its command runs. */
export type ClientFrame = { readonly type: 'answer'; readonly id: number; readonly text: string } | { readonly type: 'cancel' };

export interface SessionStatus {
  readonly type: 'status';
  readonly protocol: number;
  readonly version: string;
  readonly pid: number;
  readonly home: string;
  readonly since: string;
  readonly idleSeconds: number;
  readonly running: number;
  readonly locksAt: string | null;
}

/** What the session sends. */
export type SessionFrame =
  | { readonly type: 'out'; readonly text: string }
  | { readonly type: 'err'; readonly text: string }
  | { readonly type: 'ask'; readonly id: number; readonly question: string; readonly hidden: boolean }
  | { readonly type: 'exit'; readonly status: number }
  | { readonly type: 'refused'; readonly code: string; readonly message: string }
  | { readonly type: 'locked' }
  | { readonly type: 'checked'; readonly ok: boolean }
  | SessionStatus;

export function send(socket: Socket, frame: object): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(frame)}\n`);
}

/**
 * Calls `onFrame` with each JSON object the socket sends, one a line; `onBad` (and no more
 * frames) for a line that is too long or not a JSON object.
 */
export function readFrames(socket: Socket, onFrame: (frame: Record<string, unknown>) => void, onBad: (why: string) => void): void {
  let buffered: Buffer[] = [];
  let size = 0;
  let bad = false;
  socket.on('data', (chunk: Buffer) => {
    if (bad) return;
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      buffered.push(chunk.subarray(start, nl));
      const line = Buffer.concat(buffered).toString('utf8');
      buffered = [];
      size = 0;
      start = nl + 1;
      let frame: unknown;
      try {
        frame = JSON.parse(line);
      } catch {
        frame = undefined;
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
        bad = true;
        onBad('a line that is not a JSON object');
        return;
      }
      onFrame(frame as Record<string, unknown>);
      if (bad) return;
    }
    size += chunk.length - start;
    if (size > MAX_FRAME_BYTES) {
      bad = true;
      onBad(`a line longer than ${MAX_FRAME_BYTES} bytes`);
      return;
    }
    buffered.push(chunk.subarray(start));
  });
}
