/**
 * `npm run build`: tsc (incremental: `npm ci` builds once through `prepare`, and `npm test`'s
 * build after it then takes seconds), then the CLI bundle (scripts/bundle-cli.mjs), then the
 * dashboard (scripts/build-web.mjs, when its inputs changed).
 *
 * tsc's incremental state (dist/.tsbuildinfo) records what it emitted, not what is still there:
 * with a compiled file deleted from dist/ it would report success and leave the file missing. So
 * when any source's output is missing, the state is dropped first and everything is compiled.
 *
 * tsc also skips a source whose text did not change, even when its file is newer than its output
 * (after `git stash pop`, a checkout, an editor's save without change). Its output is current, so
 * it gets the time of now: what compares times (the crash tests' DistGuard, make-like tools) then
 * sees a build as new as its sources.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
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

const compiled = (ts) => join('dist', ts.replace(/\.ts$/, '.js'));
const all = SOURCES.flatMap(sources);
if (all.some((ts) => !existsSync(compiled(ts)))) rmSync(STATE, { force: true });

const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const now = new Date();
for (const ts of all) {
  const js = compiled(ts);
  if (statSync(js).mtimeMs < statSync(ts).mtimeMs) utimesSync(js, now, now);
}
await import('./bundle-cli.mjs');
const { buildWebIfStale } = await import('./build-web.mjs');
await buildWebIfStale();
