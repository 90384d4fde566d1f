import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Crash children run the compiled build in dist/ while the test runs the sources: this guard
 * refuses a stale build, and notes in failure messages when the code changed mid-run.
 */
export class DistGuard {
  readonly #dirs: readonly string[];
  #stamp = '';

  /** `dirs`: the source folders (under src/) whose compiled output the child loads. */
  constructor(dirs: readonly string[]) {
    this.#dirs = dirs;
  }

  #sources(): string[] {
    const found = ['src/errors.ts'];
    for (const dir of this.#dirs) {
      for (const file of readdirSync(join(ROOT, 'src', dir))) if (file.endsWith('.ts')) found.push(`src/${dir}/${file}`);
    }
    return found;
  }

  static #compiled(ts: string): string {
    return join(ROOT, 'dist', ts.replace(/\.ts$/, '.js'));
  }

  #codeStamp(): string {
    return this.#sources()
      .flatMap((ts) => [join(ROOT, ts), DistGuard.#compiled(ts)])
      .map((file) => (existsSync(file) ? statSync(file).mtimeMs : 0))
      .join(',');
  }

  /** Fails unless dist/ holds a build at least as new as the sources; remembers the code seen. */
  start(): void {
    const stale = this.#sources().filter((ts) => {
      const out = DistGuard.#compiled(ts);
      return !existsSync(out) || statSync(out).mtimeMs < statSync(join(ROOT, ts)).mtimeMs;
    });
    if (stale.length > 0) throw new Error(`the crash child runs dist/, which is older than ${stale.join(', ')}: run 'npm run build' first`);
    this.#stamp = this.#codeStamp();
  }

  /** A note for failure messages if src/ or dist/ changed under the trials. */
  changedNote(): string {
    return this.#codeStamp() === this.#stamp ? '' : ' (NOTE: src/ or dist/ changed during this run, so parent and child may have run different code)';
  }
}
