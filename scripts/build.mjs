/**
 * `npm run build`: tsc (incremental: `npm ci` builds once through `prepare`, and `npm test`'s
 * build after it then takes seconds), then the CLI bundle (scripts/bundle-cli.mjs).
 *
 * tsc's incremental state (dist/.tsbuildinfo) records what it emitted, not what is still there:
 * with a compiled file deleted from dist/ it would report success and leave the file missing. So
 * when any source's output is missing, the state is dropped first and everything is compiled.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const SOURCES = ['src', 'bench'];
const STATE = 'dist/.tsbuildinfo';

function sources(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const missing = SOURCES.flatMap(sources).filter((ts) => !existsSync(join('dist', ts.replace(/\.ts$/, '.js'))));
if (missing.length > 0) rmSync(STATE, { force: true });

const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
await import('./bundle-cli.mjs');
