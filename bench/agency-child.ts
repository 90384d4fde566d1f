/**
 * A second agency process for the agent bench: `startAgencyChild` runs this file (compiled, in
 * dist/bench/) as a child process on the same store, and ends it with `close`. The child prints
 * `ready <url>` once listening, and stops when its stdin closes (its parent went away).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { writeSync } from 'node:fs';

export interface AgencyChildOptions {
  readonly home: string;
  readonly ledgerUrl: string;
  readonly trustedLedgerKeys: readonly string[];
  readonly store: string;
  readonly agencyKeyFile: string;
}

export interface AgencyChild {
  readonly url: string;
  close(): Promise<void>;
}

const SELF = fileURLToPath(import.meta.url);
const START_TIMEOUT_MS = 60_000;

export function startAgencyChild(options: AgencyChildOptions): Promise<AgencyChild> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the second agency process did not start'));
    }, START_TIMEOUT_MS);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the second agency process exited with ${String(code)}`));
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const url = /^ready (\S+)$/m.exec(out)?.[1];
      if (url === undefined) return;
      clearTimeout(timer);
      resolve({
        url,
        async close() {
          // Closing stdin asks it to stop; a child that does not within 10 s is killed.
          child.stdin.end();
          const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(kill);
        },
      });
    });
  });
}

async function main(config: AgencyChildOptions): Promise<void> {
  const { startAgency } = await import('../src/server/agency-service.js');
  const running = await startAgency(config.home, {
    ledgerUrl: config.ledgerUrl,
    trustedLedgerKeys: config.trustedLedgerKeys,
    store: config.store,
    agencyKeyFile: config.agencyKeyFile,
    port: 0,
    rateLimitPerSecond: 1_000_000,
    agentRequestsPerSecond: 1_000_000,
  });
  writeSync(1, `ready ${running.url}\n`);
  process.stdin.resume();
  process.stdin.once(
    'end',
    () =>
      void running.close().then(
        () => process.exit(0),
        () => process.exit(1),
      ),
  );
}

if (process.argv[1] === SELF && process.argv[2] !== undefined) await main(JSON.parse(process.argv[2]) as AgencyChildOptions);
