import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const DKMS_BIN = fileURLToPath(new URL('../../bin/dkms.js', import.meta.url));

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs the real `dkms` process (the compiled CLI, as a user would) with a clean environment:
 * only PATH and what the test passes, so no variable of the developer's leaks in.
 */
export function dkms(args: readonly string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DKMS_BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

/** Parses the one JSON object a `--json` command prints. */
export function json<T = Record<string, unknown>>(run: Run): T {
  const lines = run.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one JSON line, got: ${run.stdout}\n${run.stderr}`);
  return JSON.parse(lines[0] ?? '') as T;
}
