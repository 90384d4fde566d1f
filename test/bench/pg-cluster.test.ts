/**
 * The throwaway PostgreSQL server of the benches and tests (bench/pg-cluster.ts) does not outlive
 * the process that started it: a bench interrupted (SIGINT, SIGTERM) or ended without stopping
 * it leaves no server running and no directory behind.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'bench', 'pg-cluster.js');

/** Whether something accepts connections on 127.0.0.1:`port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** Starts a process that starts a server and then `after` ('wait': waits to be signalled; 'exit': exits without stopping it). */
function starter(after: 'wait' | 'exit'): {
  started: Promise<{ port: number; root: string }>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
} {
  const script = `const { startPgCluster } = await import(${JSON.stringify(DIST)});
const cluster = await startPgCluster();
process.stdout.write(JSON.stringify({ port: cluster.port, root: cluster.root }) + '\\n');
${after === 'wait' ? 'setInterval(() => undefined, 1000);' : 'process.exit(0);'}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const started = new Promise<{ port: number; root: string }>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] as string) as { port: number; root: string });
    });
    child.once('exit', (code) => reject(new Error(`the process ended (${String(code)}) before its server started`)));
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { started, exited, kill: (signal) => child.kill(signal) };
}

describe('a throwaway PostgreSQL server', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('is stopped and removed when its process gets %s, which still ends the process', async (signal) => {
    const proc = starter('wait');
    const { port, root } = await proc.started;
    expect(await listening(port)).toBe(true);
    proc.kill(signal);
    expect(await proc.exited).toEqual({ code: null, signal });
    expect(await listening(port)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });

  it('is stopped and removed when its process exits without stopping it', async () => {
    const proc = starter('exit');
    const { port, root } = await proc.started;
    expect(await proc.exited).toEqual({ code: 0, signal: null });
    expect(await listening(port)).toBe(false);
    expect(existsSync(root)).toBe(false);
  });
});
