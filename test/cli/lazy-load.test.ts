/**
 * The CLI loads only what the command run needs: a command's definition (name, options, help)
 * is built by every run, `--help` included, so the command files import statically only what
 * their definitions show, and their actions load the rest with `await import()`. The CLI runs
 * under a module-load recorder (test/helpers/record-loads.mjs) and what it loaded is checked; no
 * timings (a static import of a heavy module fails these tests wherever it is run).
 *
 * Checked twice: on the modules as tsc compiled them (test/helpers/unbundled-cli.mjs), where
 * each source file is a module of its own, and on the bundle that `dkms` runs (dist/cli/, made
 * by scripts/bundle-cli.mjs), which must keep the same boundaries.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { DKMS_BIN, UNBUNDLED_CLI as UNBUNDLED, runNode, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = pathToFileURL(fileURLToPath(new URL('../..', import.meta.url))).href;
const RECORDER = new URL('../helpers/record-loads.mjs', import.meta.url).href;

/** Runs `entry args` (the unbundled CLI unless told) and returns what it did and every module it loaded, as paths from the repository root. */
async function loadsOf(args: readonly string[], entry = UNBUNDLED): Promise<{ run: Run; loaded: string[] }> {
  const dir = tempDir('dkms-lazy-');
  const record = join(dir, 'loaded.txt');
  const run = await runNode([`--import=${RECORDER}`, entry, ...args], { DKMS_HOME: join(dir, 'home'), DKMS_RECORD_LOADS: record });
  const loaded = [...new Set(readFileSync(record, 'utf8').split('\n'))].filter((url) => url !== '').map((url) => url.replace(ROOT, ''));
  // The recorder saw the run: without this, a recorder that saw nothing would pass every test.
  expect(loaded).toContain(entry === UNBUNDLED ? 'dist/src/cli/main.js' : 'dist/cli/main.js');
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
  /^test\/helpers\/unbundled-cli\.mjs$/,
  /^node_modules\/commander\//,
  /^node_modules\/@scure\/base\//,
  /^dist\/src\/cli\/(main|options|output|io|terminal|version|run-place|recovery-input)\.js$/,
  /^dist\/src\/cli\/commands\/[^/]+\.js$/,
  /^dist\/src\/errors\.js$/,
  /^dist\/src\/server\/ports\.js$/,
  /^dist\/src\/policy\/(flags|types)\.js$/,
  /^dist\/src\/agency\/agency-store\.js$/,
  // encoding reads base64url through the platform module (Node: Buffer; the dashboard: its own).
  /^dist\/src\/crypto\/(encoding|bytes|kdf-tiers|platform)\.js$/,
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
    expect(run.stdout.trim()).toBe((JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
    expect(loaded.some((m) => m.startsWith('node_modules/commander/'))).toBe(true);
    expect(loaded.filter((m) => !DEFINITIONS_MAY_LOAD.some((allowed) => allowed.test(m)))).toEqual([]);
  });
});

describe('what the bundled dkms loads', () => {
  /** The packages left outside the bundle (scripts/bundle-cli.mjs): a run that needs none loads none. */
  const EXTERNAL = /^node_modules\/(argon2|better-sqlite3|pkcs11js|etcd3|@grpc|fastify|@fastify|pg)\//;

  it('dkms --help and --version run from the bundle alone: no module of node_modules, no module of dist/src', async () => {
    for (const args of [['--help'], ['--version'], ['recovery', 'restore', '--help']]) {
      const { run, loaded } = await loadsOf(args, DKMS_BIN);
      expect(run.code, run.stderr).toBe(0);
      expect(loaded.filter((m) => !/^(node:|bin\/dkms\.js$|dist\/cli\/)/.test(m))).toEqual([]);
    }
  });

  it('dkms did resolve loads none of the packages left outside the bundle (no server stack, no wallet)', async () => {
    const { run, loaded } = await loadsOf(['did', 'resolve', 'did:dkms:nothing-here', '--ledger', 'http://127.0.0.1:1', '--json'], DKMS_BIN);
    expect(run.code, run.stderr).toBe(ERROR_CODES.LEDGER_UNREACHABLE.exit);
    expect(loaded.filter((m) => !/^(node:|bin\/dkms\.js$|dist\/cli\/)/.test(m))).toEqual([]);
  });

  it('dkms wallet create loads SQLite from node_modules, and no server stack', async () => {
    const keyFile = join(tempDir('dkms-lazy-key-'), 'wallet.key');
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const { run, loaded } = await loadsOf(['--key-file', keyFile, 'wallet', 'create', '--json'], DKMS_BIN);
    expect(run.code, run.stderr).toBe(0);
    expect(loaded.some((m) => m.startsWith('node_modules/better-sqlite3/'))).toBe(true);
    expect(loaded.filter((m) => EXTERNAL.test(m) && !m.startsWith('node_modules/better-sqlite3/'))).toEqual([]);
  });
});
