/**
 * The CLI loads only what the command run needs: a command's definition (name, options, help)
 * is built by every run, `--help` included, so the command files import statically only what
 * their definitions show, and their actions load the rest with `await import()`. The compiled
 * CLI runs under a module-load recorder (test/helpers/record-loads.mjs) and what it loaded is
 * checked; no timings (a static import of a heavy module fails these tests wherever it is run).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { dkms, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = pathToFileURL(fileURLToPath(new URL('../..', import.meta.url))).href;
const RECORDER = new URL('../helpers/record-loads.mjs', import.meta.url).href;

/** Runs `dkms args` (the compiled CLI) and returns what it did and every module it loaded, as paths from the repository root. */
async function loadsOf(args: readonly string[]): Promise<{ run: Run; loaded: string[] }> {
  const dir = tempDir('dkms-lazy-');
  const record = join(dir, 'loaded.txt');
  const run = await dkms(args, { DKMS_HOME: join(dir, 'home'), NODE_OPTIONS: `--import=${RECORDER}`, DKMS_RECORD_LOADS: record });
  const loaded = [...new Set(readFileSync(record, 'utf8').split('\n'))].filter((url) => url !== '').map((url) => url.replace(ROOT, ''));
  // The recorder saw the run: without this, a recorder that saw nothing would pass every test.
  expect(loaded).toContain('dist/src/cli/main.js');
  expect(loaded.some((m) => m.startsWith('node_modules/commander/'))).toBe(true);
  return { run, loaded };
}

/** Packages and modules no help text needs, nor any command that runs no server. */
const HEAVY: readonly [string, RegExp][] = [
  ['etcd3', /^node_modules\/etcd3\//],
  ['@grpc', /^node_modules\/@grpc\//],
  ['fastify', /^node_modules\/(@fastify\/|fastify\/)/],
  ['pg', /^node_modules\/pg(-[^/]+)?\//],
  ['qrcode', /^node_modules\/qrcode\//],
  ['jose', /^node_modules\/jose\//],
  ['the servers', /^dist\/src\/server\/(?!ports\.js$)/],
  ['the agency', /^dist\/src\/agency\/agency\.js$/],
];

/** For help: the wallet's native modules too, Argon2 and SQLite. */
const HEAVY_FOR_HELP: readonly [string, RegExp][] = [...HEAVY, ['argon2', /^node_modules\/argon2\//], ['better-sqlite3', /^node_modules\/better-sqlite3\//]];

function heavyIn(loaded: readonly string[], heavy: readonly [string, RegExp][]): string[] {
  return loaded.filter((m) => heavy.some(([, pattern]) => pattern.test(m)));
}

/**
 * All that a definition may load: commander, the option parsers and the few constants the help
 * shows (defaults, choices). Anything else belongs in an action, loaded with `await import()`.
 */
const DEFINITIONS_MAY_LOAD = [
  /^node:/,
  /^bin\/dkms\.js$/,
  /^node_modules\/commander\//,
  /^node_modules\/@scure\/base\//,
  /^dist\/src\/cli\/(main|options|recovery-input)\.js$/,
  /^dist\/src\/cli\/commands\/[^/]+\.js$/,
  /^dist\/src\/errors\.js$/,
  /^dist\/src\/server\/ports\.js$/,
  /^dist\/src\/policy\/(flags|types)\.js$/,
  /^dist\/src\/agency\/agency-store\.js$/,
  /^dist\/src\/crypto\/(encoding|bytes|kdf-tiers)\.js$/,
  /^dist\/src\/agent\/defaults\.js$/,
];

describe('what a run of dkms loads', () => {
  for (const args of [['--help'], ['wallet', '--help'], ['key', 'list', '--help'], ['recovery', 'restore', '--help'], ['trustee', 'commit', '--help']]) {
    it(`dkms ${args.join(' ')} loads only the command definitions`, async () => {
      const { run, loaded } = await loadsOf(args);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^Usage: dkms/);
      expect(heavyIn(loaded, HEAVY_FOR_HELP), 'a module loaded for help: import it in the action that needs it, with await import()').toEqual([]);
      expect(
        loaded.filter((m) => !DEFINITIONS_MAY_LOAD.some((allowed) => allowed.test(m))),
        'a command definition loads only what it shows: load the rest in the action, with await import()',
      ).toEqual([]);
    });
  }

  it('dkms did resolve loads the ledger client, not the servers, the agency or the recovery code', async () => {
    const { run, loaded } = await loadsOf(['did', 'resolve', 'did:dkms:nothing-here', '--ledger', 'http://127.0.0.1:1', '--json']);
    expect(run.code, run.stderr).toBe(ERROR_CODES.LEDGER_UNREACHABLE.exit);
    expect(loaded).toContain('dist/src/ledger/client.js');
    expect(loaded).toContain('dist/src/did/resolve.js');
    expect(heavyIn(loaded, HEAVY)).toEqual([]);
    // It opens no wallet, so neither Argon2 nor SQLite nor the wallet is loaded.
    expect(loaded.filter((m) => /^node_modules\/(argon2|better-sqlite3)\//.test(m) || /^dist\/src\/(wallet\/wallet|sqlite)\.js$/.test(m))).toEqual([]);
    const definitions = (m: string) => DEFINITIONS_MAY_LOAD.some((allowed) => allowed.test(m));
    expect(loaded.filter((m) => /^dist\/src\/(agency|agent|recovery)\//.test(m) && !definitions(m))).toEqual([]);
  });

  it('dkms --version loads no command code beyond the definitions', async () => {
    const { run, loaded } = await loadsOf(['--version']);
    expect(run.code, run.stderr).toBe(0);
    expect(loaded.filter((m) => !DEFINITIONS_MAY_LOAD.some((allowed) => allowed.test(m)))).toEqual([]);
  });
});
