/**
 * Ctrl-C at each step of `dkms agent init`, as the agency issue's tests fail it at each step
 * (test/agent/init-resume.test.ts): the set-up's every write to the ledger or the agency is held
 * by a proxy — once before it reaches the server, and once after the server did it, its answer
 * held — and the command is interrupted there. It must say "cancelled" and exit 130; then the
 * same command, run again, finishes the set-up as if nothing had happened: one identity, its
 * agents listed once, its DID resolving.
 */
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { suiteDirs } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

type Mode = 'before' | 'after';

/** Counts the writes (POSTs) that pass through the proxies, and holds the armed one. */
interface Writes {
  count: number;
  armed: { n: number; mode: Mode } | undefined;
  /** The held exchange's response, once held. */
  held: ServerResponse | undefined;
}

/** A reverse proxy to `target` (every header and the body passed on) that holds the armed write. */
async function holdingProxy(target: string, writes: Writes): Promise<{ url: string; close: () => void }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const armed = req.method === 'POST' && writes.armed?.n === writes.count ? writes.armed : undefined;
      if (req.method === 'POST') writes.count += 1;
      if (armed?.mode === 'before') {
        writes.held = res;
        return;
      }
      const url = new URL(req.url ?? '/', target);
      const headers = { ...req.headers, host: url.host };
      const upstream = httpRequest(url, { method: req.method, headers }, (answer) => {
        const body: Buffer[] = [];
        answer.on('data', (c: Buffer) => body.push(c));
        answer.on('end', () => {
          if (armed?.mode === 'after') {
            writes.held = res;
            return;
          }
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          res.end(Buffer.concat(body));
        });
      });
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('Ctrl-C at each step of agent init', { timeout: 120_000 }, () => {
  afterAll(killBackground);
  const lasting = suiteDirs();

  it('"cancelled", 130, then the same command finishes the set-up', async () => {
    const up = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: lasting() });
    const services = JSON.parse(await up.nextLine()) as { ledger: string; agency: string };
    const writes: Writes = { count: 0, armed: undefined, held: undefined };
    const ledger = await holdingProxy(services.ledger, writes);
    const agency = await holdingProxy(services.agency, writes);
    const init = ['agent', 'init', '--label', 'laptop', '--did', '--agency', agency.url, '--yes'];
    try {
      // An uninterrupted set-up, to count its writes.
      const clean = owner(lasting(), { DKMS_LEDGER: ledger.url });
      await clean.run(init);
      const steps = writes.count;
      expect(steps).toBeGreaterThanOrEqual(3);
      const cases: { n: number; mode: Mode }[] = [{ n: 0, mode: 'before' }, ...Array.from({ length: steps }, (_, n) => ({ n, mode: 'after' as const }))];
      for (const { n, mode } of cases) {
        const device = owner(lasting(), { DKMS_LEDGER: ledger.url });
        Object.assign(writes, { count: 0, armed: { n, mode }, held: undefined });
        const interrupted = device.background([...init, '--json']);
        await waitFor(`write ${n} (${mode}) to be held`, () => writes.held !== undefined);
        interrupted.kill('SIGINT');
        const run = await interrupted.done;
        expect(run.code, `write ${n} (${mode}): ${run.stderr}`).toBe(130);
        expect(run.stderr).toContain('dkms: cancelled');
        writes.held?.destroy();
        writes.armed = undefined;

        const done = await device.run(init);
        expect(String(done['did']), `write ${n} (${mode})`).toMatch(/^did:dkms:/);
        const agents = (await device.run(['agent', 'list']))['agents'] as Json[];
        expect(agents.map((a) => a['label']).sort(), `write ${n} (${mode})`).toEqual(['cloud', 'laptop']);
        expect(((await device.run(['did', 'resolve', String(done['did'])]))['didDocument'] as Json)['id']).toBe(done['did']);
      }
    } finally {
      ledger.close();
      agency.close();
    }
  });
});
