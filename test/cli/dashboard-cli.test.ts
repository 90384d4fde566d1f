/**
 * `dkms up` and `dkms ledger serve` serve the package's dashboard build (docs/dashboard.md):
 * run from a copy of the package whose dist/web/ the test writes (or leaves out), they print
 * the explorer's address, serve it under /ui/ with its config, say when it was not built, and
 * leave it out with --no-dashboard.
 */
import { cpSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { background, killBackground, type Background } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const INDEX = '<!doctype html><html lang="en"><head><title>dkms</title></head><body>explorer</body></html>\n';

afterEach(killBackground);

/** A copy of the built package (its bundled CLI, the repository's node_modules), with `web` as its dist/web/ files. */
function packageWith(web: Record<string, string> | undefined): string {
  const dir = tempDir('dkms-package-');
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist', 'cli'), join(dir, 'dist', 'cli'), { recursive: true });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  for (const [path, content] of Object.entries(web ?? {})) {
    mkdirSync(join(dir, 'dist', 'web', path, '..'), { recursive: true });
    writeFileSync(join(dir, 'dist', 'web', path), content);
  }
  return join(dir, 'bin', 'dkms.js');
}

/** Runs `args` from the package copy `bin` until it prints its first line; the JSON of that line with --json. */
async function start(bin: string, args: readonly string[]): Promise<{ server: Background; first: string }> {
  const server = background(args, { DKMS_HOME: tempDir() }, bin);
  return { server, first: await server.nextLine() };
}

/** Stops `server` and returns what it wrote on stderr. */
async function stderrOf(server: Background): Promise<string> {
  server.kill('SIGTERM');
  return (await server.done).stderr;
}

describe('the dashboard from the CLI', () => {
  it('dkms up prints the explorer (line and --json field) and serves the build, its config naming the node, the console offered on loopback', async () => {
    const bin = packageWith({ 'index.html': INDEX, 'console/index.html': INDEX, 'assets/app-1a2b.js': 'export {}' });
    const { server, first } = await start(bin, ['up', '--ledger-port', '0', '--agency-port', '0', '--json']);
    const up = JSON.parse(first) as { ledger: string; key: string; explorer: string; console: string };
    expect(up.explorer).toBe(`${up.ledger}/ui/#trust=${up.key}`);
    expect(up.console).toBe(`${up.ledger}/ui/console/`);
    const page = await fetch(up.explorer);
    expect({ status: page.status, body: await page.text() }).toEqual({ status: 200, body: INDEX });
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'none'; script-src 'self';/);
    expect(await (await fetch(`${up.ledger}/ui/config.json`)).json()).toStrictEqual({ nodeKey: up.key, witnessKeys: [], quorum: 1, console: true });
    expect(await stderrOf(server)).toBe('');

    const human = await start(bin, ['up', '--ledger-port', '0', '--agency-port', '0']);
    const lines = [human.first];
    while (lines.length < 6) lines.push(await human.server.nextLine());
    expect(lines[3]).toMatch(/^explorer: {4}http:\/\/127\.0\.0\.1:\d+\/ui\/#trust=z6Mk\w+$/);
    expect(lines[4]).toMatch(/^console: {5}http:\/\/127\.0\.0\.1:\d+\/ui\/console\/$/);
    expect(lines[5]).toBe('stop with Ctrl-C');
  });

  it('dkms up offers the owner console on loopback only, and not with --no-console: its API is 404 then, config.json says so', async () => {
    const bin = packageWith({ 'index.html': INDEX, 'console/index.html': INDEX });
    const login = (ledger: string) =>
      fetch(`${ledger}/ui/console/api/session`, {
        method: 'POST',
        headers: { origin: new URL(ledger).origin, 'content-type': 'application/json' },
        body: JSON.stringify({ passphrase: 'anything at all' }),
      });
    const open = await start(bin, ['up', '--ledger-port', '0', '--agency-port', '0', '--host', '0.0.0.0', '--json']);
    const wide = JSON.parse(open.first) as { ledger: string; console: string | null };
    expect(wide.console).toBeNull();
    const local = wide.ledger.replace(/\/\/[^:]+:/, '//127.0.0.1:');
    expect((await (await fetch(`${local}/ui/config.json`)).json()) as object).toMatchObject({ console: false });
    expect((await login(local)).status).toBe(404);
    expect(await stderrOf(open.server)).toBe('dkms: owner console off: --host is not loopback\n');

    const off = await start(bin, ['up', '--ledger-port', '0', '--agency-port', '0', '--no-console', '--json']);
    const up = JSON.parse(off.first) as { ledger: string; console: string | null };
    expect(up.console).toBeNull();
    expect((await (await fetch(`${up.ledger}/ui/config.json`)).json()) as object).toMatchObject({ console: false });
    expect((await login(up.ledger)).status).toBe(404);
    expect(await stderrOf(off.server)).toBe('');
  });

  it('ledger serve serves the explorer alone (no console), shown at 127.0.0.1 when it listens on every address', async () => {
    const bin = packageWith({ 'index.html': INDEX, 'console/index.html': INDEX });
    const { server, first } = await start(bin, ['ledger', 'serve', '--port', '0', '--host', '0.0.0.0', '--accept-witness', 'z6MkWitness']);
    expect(first).toMatch(/^ledger node listening on http:\/\/[^ ]+:\d+$/);
    const key = (await server.nextLine()).replace(/^node key /, '');
    const explorer = await server.nextLine();
    const port = /:(\d+)$/.exec(first)?.[1] ?? '';
    expect(explorer).toBe(`explorer: http://127.0.0.1:${port}/ui/#trust=${key}`);
    expect(await (await fetch(`http://127.0.0.1:${port}/ui/config.json`)).json()).toStrictEqual({
      nodeKey: key,
      witnessKeys: ['z6MkWitness'],
      quorum: 2,
      console: false,
    });
  });

  it('serves the API alone, saying so in one line, when the dashboard was not built; --no-dashboard says nothing', async () => {
    const bin = packageWith(undefined);
    const { server, first } = await start(bin, ['ledger', 'serve', '--port', '0', '--json']);
    const served = JSON.parse(first) as Record<string, string>;
    expect(Object.keys(served).sort()).toEqual(['home', 'key', 'ledger']);
    expect((await fetch(`${served['ledger'] ?? ''}/v1/health`)).status).toBe(200);
    expect((await fetch(`${served['ledger'] ?? ''}/ui/`)).status).toBe(404);
    expect(await stderrOf(server)).toBe('dkms: dashboard not built: run npm run build\n');

    const built = packageWith({ 'index.html': INDEX });
    const off = await start(built, ['up', '--ledger-port', '0', '--agency-port', '0', '--json', '--no-dashboard']);
    const up = JSON.parse(off.first) as Record<string, string | null>;
    expect(up['explorer']).toBeUndefined();
    expect(up['console']).toBeNull();
    expect((await fetch(`${up['ledger'] ?? ''}/ui/`)).status).toBe(404);
    expect(await stderrOf(off.server)).toBe('');
  });
});
