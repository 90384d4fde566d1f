/**
 * Bounded shutdown: `dkms up` (a ledger node and an agency) asked to stop while clients hold
 * long polls and keep-alive connections open and keep sending, exits within seconds, cleanly,
 * with nothing left to keep the process alive.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { flood, type Flood } from '../../bench/flood.js';
import { ERROR_CODES } from '../../src/errors.js';
import { background, dkms, killBackground } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * Keeps 16 requests in flight to `base`, round-robin over `requests`, until stopped: from another
 * loopback address than the agent's, whose per-address rate limit is then its own.
 */
function load(base: string, requests: readonly { method: string; path: string; body?: string }[]): Flood {
  return flood(base, (i) => {
    const item = requests[i % requests.length] as { method: string; path: string; body?: string };
    const headers: Record<string, string> = item.body === undefined ? {} : { 'content-type': 'application/json' };
    return { ...item, headers };
  }, 16, ['127.0.0.2']);
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
      // Long enough for the agent's process to start and its long poll to be waiting.
      await new Promise((resolve) => setTimeout(resolve, 2500));
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
});
