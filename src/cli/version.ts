/** The package's version and root. Node's own modules only: the session client reads them too. */
import { readFileSync } from 'node:fs';

let root: { dir: URL; version: string } | undefined;

/** The nearest package.json above this module (dist/src/cli/ or the bundle in dist/cli/). */
function packageJson(): { dir: URL; version: string } {
  if (root !== undefined) return root;
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      root = { dir, version: (JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { version: string }).version };
      return root;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || dir.pathname === '/') throw e;
    }
  }
}

export function version(): string {
  return packageJson().version;
}

/** The package's directory (where package.json is), as a file URL. */
export function packageDir(): URL {
  return packageJson().dir;
}
