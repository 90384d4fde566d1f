/** Walks a data directory: every file and directory in it that is readable by others than its owner. */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

export function notPrivate(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      const stat = statSync(path);
      if ((stat.mode & 0o077) !== 0) found.push(`${path} ${(stat.mode & 0o777).toString(8)}`);
      if (stat.isDirectory()) walk(path);
    }
  };
  walk(dir);
  return found;
}

/** Every file under `dir`, by name, to check the walk saw what it should. */
export function filesUnder(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else found.push(name);
    }
  };
  walk(dir);
  return found;
}
