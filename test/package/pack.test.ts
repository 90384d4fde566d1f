/**
 * The package as an integrator gets it: `npm pack`ed, unpacked into a fresh project's
 * node_modules/dkms, and used from there by name. A strict TypeScript consumer (nodenext)
 * compiles the examples against the declarations and runs them; every entry point of `exports`
 * resolves, in Node and in TypeScript; an internal module does not, in either. No network: the
 * fresh project gets its dependencies by symlinks to this repository's node_modules.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { background, killBackground } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXAMPLES = ['quickstart', 'ledger-events'];

const BUILD_TIMEOUT_MS = 180_000;
const PACK_TIMEOUT_MS = 60_000;
const TSC_TIMEOUT_MS = 90_000;
const RUN_TIMEOUT_MS = 60_000;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end (or kills it at `timeoutMs`); never rejects, the exit code says how it went. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Run> {
  const env = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr: error !== null && error.killed ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr });
    });
  });
}

function expectOk(result: Run, what: string): void {
  if (result.code !== 0) throw new Error(`${what} failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Whether dist/ lacks the build of some source file (code or declarations), or holds an older one. */
function buildIsStale(): boolean {
  return sources(join(ROOT, 'src')).some((ts) => {
    const base = join(ROOT, 'dist', relative(ROOT, ts)).replace(/\.ts$/, '');
    const mtime = statSync(ts).mtimeMs;
    return [`${base}.js`, `${base}.d.ts`].some((out) => !existsSync(out) || statSync(out).mtimeMs < mtime);
  });
}

const PackSchema = z.array(z.object({ filename: z.string(), files: z.array(z.object({ path: z.string() })) })).length(1);
const ExportsSchema = z.record(z.string(), z.union([z.string(), z.object({ types: z.string(), import: z.string() })]));

const manifest = z.object({ exports: ExportsSchema }).parse(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')));
/** The entry points, as a consumer imports them: `dkms`, `dkms/wallet`, … */
const entries = Object.entries(manifest.exports).flatMap(([key, target]) =>
  typeof target === 'string' ? [] : [{ specifier: `dkms${key.slice(1)}`, types: target.types }],
);

/** The consumer's file that reaches what it must not: every error the compiler reports for it is expected. */
const INTERNAL = [
  "import { DkmsError } from 'dkms/dist/src/errors.js';",
  "import type { EdgeAgent } from 'dkms';",
  "export const e = new DkmsError('BAD_INPUT', 'x');",
  // An agent is used through its operations: its wallet, store and ledger are not part of the API.
  'export const parts = (agent: EdgeAgent) => [agent.wallet, agent.store, agent.ledger];',
  '',
].join('\n');

/** A probe importing every entry point and printing how many names each exports. */
const probe = () =>
  entries.map(({ specifier }, i) => `import * as e${i} from '${specifier}';\nconsole.log('${specifier}', Object.keys(e${i}).length);`).join('\n');

/** A strict consumer: nodenext, strict, and the package's own declarations checked too. */
const consumerTsconfig = (include: readonly string[], noEmit: boolean) => ({
  compilerOptions: {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    noEmit,
    outDir: 'out',
    rootDir: 'src',
  },
  include,
});

describe('the packed package', () => {
  let work = '';
  let project = '';
  let packed: readonly string[] = [];
  let compiled: Run = { code: -1, stdout: '', stderr: '' };
  let errors: string[] = [];
  const errorsIn = (file: string) => errors.filter((line) => line.startsWith(`src/${file}(`));

  beforeAll(
    async () => {
      if (buildIsStale()) expectOk(await run('npm', ['run', 'build', '--silent'], ROOT, BUILD_TIMEOUT_MS), 'npm run build');
      work = mkdtempSync(join(tmpdir(), 'dkms-pack-'));
      const pack = await run('npm', ['pack', '--json', '--ignore-scripts', '--offline', '--pack-destination', work], ROOT, PACK_TIMEOUT_MS);
      expectOk(pack, 'npm pack');
      const [info] = PackSchema.parse(JSON.parse(pack.stdout));
      if (info === undefined) throw new Error('npm pack described no tarball');
      packed = info.files.map((f) => f.path);

      project = join(work, 'consumer');
      const modules = join(project, 'node_modules');
      mkdirSync(join(modules, 'dkms'), { recursive: true });
      expectOk(await run('tar', ['-xzf', join(work, info.filename), '-C', join(modules, 'dkms'), '--strip-components=1'], work, PACK_TIMEOUT_MS), 'tar');
      for (const name of readdirSync(join(ROOT, 'node_modules'))) {
        if (name.startsWith('.') || name === 'dkms') continue;
        symlinkSync(join(ROOT, 'node_modules', name), join(modules, name), 'dir');
      }
      writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'dkms-consumer', private: true, type: 'module' }, null, 2));
      mkdirSync(join(project, 'src'));
      for (const example of EXAMPLES) copyFileSync(join(ROOT, 'examples', `${example}.ts`), join(project, 'src', `${example}.ts`));
      writeFileSync(join(project, 'src', 'entries.ts'), `${probe()}\n`);
      writeFileSync(join(project, 'src', 'internal.ts'), INTERNAL);
      writeFileSync(join(project, 'tsconfig.json'), JSON.stringify(consumerTsconfig(['src'], false), null, 2));
      // One compilation of the whole consumer (the compiler's start is most of its cost): the
      // examples and the probe must compile cleanly, internal.ts must not.
      compiled = await tsc('tsconfig.json');
      errors = compiled.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
    },
    BUILD_TIMEOUT_MS + 2 * PACK_TIMEOUT_MS + TSC_TIMEOUT_MS + 30_000,
  );

  afterAll(() => {
    if (work !== '') rmSync(work, { recursive: true, force: true });
  });
  afterEach(killBackground);

  const tsc = (config: string) => run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', config], project, TSC_TIMEOUT_MS);
  const node = (args: readonly string[]) => run(process.execPath, args, project, RUN_TIMEOUT_MS);

  it('holds the build with its declarations, the CLI and the docs, and no tests or benches', () => {
    for (const file of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/dkms.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'docs/library.md',
    ])
      expect(packed).toContain(file);
    for (const { types } of entries) expect(packed).toContain(types.replace(/^\.\//, ''));
    expect(packed.filter((path) => /^(test|bench|examples|dist\/test|dist\/bench|docs\/api)\//.test(path))).toEqual([]);
  });

  it('walks through the quick start in docs/library.md as it is', () => {
    const example = readFileSync(join(ROOT, 'examples', 'quickstart.ts'), 'utf8');
    const code = example.slice(example.indexOf('\nimport ') + 1);
    expect(readFileSync(join(ROOT, 'docs', 'library.md'), 'utf8')).toContain(`\`\`\`ts\n${code}\`\`\``);
  });

  it('compiles the examples with strict TypeScript against the declarations', () => {
    // The compiler ran; its only complaints are about internal.ts.
    expect(compiled.stdout + compiled.stderr).toMatch(/error TS/);
    expect(
      errors.filter((line) => !line.startsWith('src/internal.ts(')),
      compiled.stdout,
    ).toEqual([]);
    for (const example of EXAMPLES) expect(existsSync(join(project, 'out', `${example}.js`))).toBe(true);
  });

  it(
    'runs the quick start: policy and DID on a local node, resolved verified, a message from Bob to Alice',
    async () => {
      const result = await node([join('out', 'quickstart.js')]);
      expectOk(result, 'the quick start');
      expect(result.stdout).toMatch(/^policy: policy:\S+$/m);
      expect(result.stdout).toMatch(/^did: did:dkms:\S+$/m);
      expect(result.stdout).toMatch(/^resolved: did:dkms:\S+ with 2 verification methods, version \S+$/m);
      expect(result.stdout).toMatch(/^service: DIDCommMessaging http:\/\/127\.0\.0\.1:\d+\/?$/m);
      expect(result.stdout).toContain("signature by alice's agent: valid\n");
      expect(result.stdout).toContain('alice received: https://didcomm.org/basicmessage/2.0/message (handled)\n');
      expect(result.stdout).toContain('message from bob: Hello Alice, this is Bob.\n');
    },
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'runs the ledger example: events signed by wallet keys, resolved through did-resolver',
    async () => {
      const result = await node([join('out', 'ledger-events.js')]);
      expectOk(result, 'the ledger example');
      expect(result.stdout).toMatch(/^did: did:dkms:\S+$/m);
      expect(result.stdout).toMatch(/^resolved: did:dkms:\S+, keys: 2$/m);
      expect(result.stdout).toContain('after the grant, keys: 3\n');
      expect(result.stdout).toMatch(/^refused: [A-Z_]+$/m);
      expect(result.stdout).not.toContain('refused: no');
    },
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'resolves every entry point, in Node and in TypeScript',
    async () => {
      expect(errorsIn('entries.ts'), compiled.stdout).toEqual([]);
      writeFileSync(join(project, 'entries.mjs'), `${probe().replaceAll(/^import \* as (e\d+) from ('[^']+');$/gm, 'const $1 = await import($2);')}\n`);
      const result = await node(['entries.mjs']);
      expectOk(result, 'importing every entry point');
      for (const { specifier } of entries) expect(result.stdout).toMatch(new RegExp(`^${specifier} [1-9]\\d*$`, 'm'));
      expectOk(await node([join('node_modules', 'dkms', 'bin', 'dkms.js'), '--version']), 'the CLI from the package');
    },
    2 * RUN_TIMEOUT_MS,
  );

  it(
    'serves its built dashboard with no build step: dkms up from the package answers the explorer, its scripts and the console',
    async () => {
      for (const file of ['dist/web/index.html', 'dist/web/console/index.html']) expect(packed).toContain(file);
      expect(packed.filter((path) => /^dist\/web\/assets\/explorer-[\w-]+\.js$/.test(path))).toHaveLength(1);
      const server = background(
        ['up', '--ledger-port', '0', '--agency-port', '0', '--json'],
        { DKMS_HOME: join(work, 'home') },
        join(project, 'node_modules', 'dkms', 'bin', 'dkms.js'),
      );
      const up = JSON.parse(await server.nextLine()) as { ledger: string };
      const page = await fetch(`${up.ledger}/ui/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'none'; script-src 'self';/);
      const html = await page.text();
      const scripts = [...html.matchAll(/<script type="module" crossorigin src="(\/ui\/assets\/[\w-]+\.js)"><\/script>/g)].map((m) => m[1] ?? '');
      expect(scripts).toHaveLength(1);
      for (const script of scripts) {
        const answer = await fetch(`${up.ledger}${script}`);
        expect({ status: answer.status, type: answer.headers.get('content-type') }).toEqual({ status: 200, type: 'text/javascript; charset=utf-8' });
      }
      expect((await fetch(`${up.ledger}/ui/console/`)).status).toBe(200);
      server.kill('SIGTERM');
      expect((await server.done).code).toBe(0);
    },
    RUN_TIMEOUT_MS + 10_000,
  );

  it(
    'keeps internal modules out of reach, in Node and in TypeScript',
    async () => {
      const result = await node(['--input-type=module', '-e', "await import('dkms/dist/src/errors.js')"]);
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
      expect(errorsIn('internal.ts'), compiled.stdout).toHaveLength(4);
      expect(compiled.stdout).toMatch(/src\/internal\.ts\(1,\d+\): error TS2307: Cannot find module 'dkms\/dist\/src\/errors\.js'/);
      for (const part of ['wallet', 'store', 'ledger'])
        expect(compiled.stdout).toMatch(new RegExp(`src/internal\\.ts\\(4,\\d+\\): error TS2339: Property '${part}' does not exist on type 'EdgeAgent'`));
    },
    RUN_TIMEOUT_MS + 10_000,
  );
});
