/**
 * Builds the dashboard (web/) with Vite into dist/web, served by `dkms up` and `ledger serve`
 * under /ui/. Part of `npm run build`; skipped when dist/web is newer than everything it is built
 * from. Any warning fails the build: a Node module pulled into the browser graph shows up as one
 * ("externalized for browser compatibility"), and must never ship.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { platformSwap } from '../web/platform-swap.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'dist', 'web');
const STAMP = join(OUT, 'index.html');
/** What the bundle is built from: the pages and the src/ code they import. */
const INPUTS = ['web', 'src', 'scripts/build-web.mjs', 'package-lock.json'];

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return readdirSync(path).reduce((max, name) => Math.max(max, newest(join(path, name))), stat.mtimeMs);
}

/** Builds the pages (or, with `lib`, one module as a library, for tests) into `outDir`. */
export async function buildWeb({ outDir = OUT, lib } = {}) {
  // Vite is loaded only when there is something to build.
  const { build, createLogger } = await import('vite');
  const warnings = [];
  const logger = createLogger('warn');
  const warn = logger.warn;
  logger.warn = (message, options) => {
    warnings.push(message);
    warn(message, options);
  };
  await build({
    configFile: false,
    root: join(ROOT, 'web'),
    base: '/ui/',
    logLevel: 'warn',
    customLogger: logger,
    plugins: [platformSwap(ROOT)],
    build: {
      outDir,
      emptyOutDir: true,
      manifest: lib === undefined,
      assetsInlineLimit: 0,
      modulePreload: { polyfill: false },
      target: 'es2022',
      reportCompressedSize: false,
      ...(lib === undefined
        ? { rollupOptions: { input: { explorer: join(ROOT, 'web', 'index.html'), console: join(ROOT, 'web', 'console', 'index.html') } } }
        : { lib: { entry: lib, formats: ['es'], fileName: 'bundle' }, minify: false }),
    },
  });
  if (warnings.length > 0) throw new Error(`the web build warned (a warning fails it):\n${warnings.join('\n')}`);
}

/** Builds dist/web unless it is newer than every input. */
export async function buildWebIfStale() {
  const built = existsSync(STAMP) ? statSync(STAMP).mtimeMs : 0;
  if (built > Math.max(...INPUTS.map((p) => newest(join(ROOT, p))))) return;
  await buildWeb();
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) await buildWebIfStale();
