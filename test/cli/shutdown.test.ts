/**
 * Bounded shutdown: `dkms up` (a ledger node and an agency) asked to stop while clients hold
 * long polls and keep-alive connections open and keep sending, exits within seconds, cleanly,
 * with nothing left to keep the process alive; one whose store fails to close exits non-zero
 * with that error instead of hanging; and a benchmark run that fails, or stalls, ends non-zero
 * with its error. Each server's close() under load and after store failures is tested on its
 * own in test/server/shutdown.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { flood, type Flood } from '../../bench/flood.js';
import { ERROR_CODES } from '../../src/errors.js';
import { UNBUNDLED_CLI, background, dkms, killBackground } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** Loaded into a `dkms` process with NODE_OPTIONS, it injects the store failures DKMS_TEST_FAULT names. */
const STORE_FAULTS = pathToFileURL(join(HERE, '..', 'helpers', 'store-faults.mjs')).href;

/**
 * Resolves with `promise`, or fails the test if it takes longer than `ms`: a hang bound, not a
 * speed figure (what it bounds takes well under a second when nothing hangs).
 */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Keeps 16 requests in flight to `base`, round-robin over `requests`, until stopped: from another
 * loopback address than the agent's, whose per-address rate limit is then its own.
 */
function load(base: string, requests: readonly { method: string; path: string; body?: string }[]): Flood {
  return flood(
    base,
    (i) => {
      const item = requests[i % requests.length] as { method: string; path: string; body?: string };
      const headers: Record<string, string> = item.body === undefined ? {} : { 'content-type': 'application/json' };
      return { ...item, headers };
    },
    16,
    ['127.0.0.2'],
  );
}

/**
 * Whether the server listening on 127.0.0.1:`port` holds a request from 127.0.0.1 unanswered: a
 * connection on which it has received bytes, read them all (nothing queued) and sent nothing
 * back, as the kernel's TCP statistics (`ss`) show it. For a connection whose first request is
 * a long poll, that is the long poll waiting at the server.
 */
async function holdsRequest(port: number): Promise<boolean> {
  const { stdout } = await promisify(execFile)('ss', ['-H', '-t', '-i', '-n', 'state', 'established', `( sport = :${port} and dst 127.0.0.1 )`]);
  // Each connection: a line `Recv-Q Send-Q local peer`, then an indented line of its statistics.
  const sockets = stdout.split(/\n(?=\S)/).filter((socket) => socket.trim() !== '');
  return sockets.some((socket) => {
    const [recvQ] = socket.trim().split(/\s+/);
    return recvQ === '0' && /\bbytes_received:[1-9]/.test(socket) && !/\bbytes_sent:[1-9]/.test(socket);
  });
}

describe('bounded shutdown', () => {
  afterEach(killBackground);

  it('`dkms up` stops within seconds of SIGTERM under load, with long polls held and connections kept alive', async () => {
    const up = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: tempDir() });
    const services = JSON.parse(await up.nextLine()) as { ledger: string; agency: string };
    const ledgerLoad = load(services.ledger, [
      { method: 'GET', path: '/v1/head' },
      { method: 'GET', path: '/v1/head/next?after=1000000&wait=30000' },
      { method: 'POST', path: '/v1/events', body: '{"type":"nonsense"}' },
    ]);
    // An agent whose `message inbox --wait 30` holds a long poll at the agency.
    const home = tempDir();
    const env = { DKMS_HOME: home, DKMS_PASSPHRASE: 'a passphrase for the shutdown test', DKMS_LEDGER: services.ledger };
    const init = await dkms(['agent', 'init', '--label', 'waiting', '--agency', services.agency, '--yes', '--kdf-tier', 'interactive', '--json'], env);
    expect(init.code, init.stderr).toBe(0);
    const waiting = background(['message', 'inbox', '--wait', '30', '--json'], env);
    let waitingExited = false;
    void waiting.done.then(() => (waitingExited = true));
    const agencyLoad = load(services.agency, [
      { method: 'GET', path: '/v1/health' },
      { method: 'POST', path: '/v1/inbound', body: '{}' },
      { method: 'GET', path: '/v1/mailbox?limit=1&wait=30' },
    ]);
    try {
      // Until the agent's process has started and its long poll waits at the agency: the agent is
      // the only client of the agency on 127.0.0.1 (the loads send from 127.0.0.2), and its long
      // poll is its first request there.
      await waitFor("the agent's long poll waiting at the agency", async () => {
        if (waitingExited) throw new Error(`the waiting agent exited before its long poll was held: ${(await waiting.done).stderr}`);
        return holdsRequest(Number(new URL(services.agency).port));
      });
      expect(waitingExited).toBe(false);
      const asked = Date.now();
      up.kill('SIGTERM');
      const done = await up.done;
      const took = Date.now() - asked;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stderr).not.toMatch(/error|INTERNAL/i);
      // Bounded: long polls of 30 s were waiting, and clients kept their connections open. (A
      // hang bound, not a speed figure: a clean stop takes well under a second.)
      expect(took).toBeLessThan(10_000);
      // The waiting agent's long poll ends with the agency (answered with nothing, or cut off),
      // and it is not left hanging either.
      const left = await waiting.done;
      expect([0, ERROR_CODES.AGENCY_UNREACHABLE.exit], left.stderr).toContain(left.code);
    } finally {
      await ledgerLoad.stop();
      await agencyLoad.stop();
    }
  });

  it('`dkms up` whose agency store fails to close still closes its ledger, and exits non-zero with the error', async () => {
    // The unbundled CLI: the faults patch the store class of dist/src/, which the bundle has a copy of.
    const up = background(
      ['up', '--ledger-port', '0', '--agency-port', '0', '--json'],
      { DKMS_HOME: tempDir(), NODE_OPTIONS: `--import=${STORE_FAULTS}`, DKMS_TEST_FAULT: 'agency:close' },
      UNBUNDLED_CLI,
    );
    JSON.parse(await up.nextLine());
    up.kill('SIGTERM');
    // Bounded (10 s, as above): the ledger it would have left open kept the process alive for good.
    const done = await within(up.done, 10_000, '`dkms up` to exit after its agency store failed to close');
    expect(done.code, done.stderr).toBe(ERROR_CODES.IO_ERROR.exit);
    expect(done.stdout + done.stderr).toMatch(/injected store failure/);
  });
});

describe('a benchmark run always ends', () => {
  const CHILD = join(HERE, 'bench-runner-child.mjs');

  /** Runs the bench-runner child on the benchmark `name` (runner limits: 1 s stalled, 1 s lingering). */
  function runBench(name: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [CHILD, name], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
      // Never left running by a failed test.
      setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
    });
  }

  // Each is bounded at 10 s: the runner's limits in the child are 1 s; a hang would never end.
  it('a benchmark that passes exits 0 at once', async () => {
    const run = await within(runBench('passes'), 10_000, 'the passing run to end');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe('{"bench":"passes"}\n');
    expect(run.stderr).toBe('');
  });

  it('a benchmark that fails with a server left open exits 1 with its error, naming what held it', async () => {
    const run = await within(runBench('fails'), 10_000, 'the failed run to end');
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toMatch(/bench fails failed: Error: the bench failed on purpose/);
    expect(run.stderr).toMatch(/still running 1 s after the benchmarks ended, held by: .*TCPServerWrap/);
  });

  it('a benchmark whose main thread stops running is aborted with a message', async () => {
    const run = await within(runBench('stalls'), 10_000, 'the stalled run to end');
    expect(run.signal, run.stderr).toBe('SIGABRT');
    expect(run.stderr).toMatch(/the main thread has not run for 1 s \(deadlocked\?\): aborting/);
  });
});
