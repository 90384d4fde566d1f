/**
 * The documentation that code and docs point to is there: no file cites the design document the
 * project began from (its content is docs/architecture.md), and every `docs/<name>.md` named in
 * the sources, tests, benches, scripts or docs exists.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SCANNED = ['src', 'test', 'bench', 'scripts', 'docs', 'examples'];

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'api' && dir.endsWith('docs') ? [] : files(path);
    return /\.(ts|mts|mjs|js|md)$/.test(e.name) ? [path] : [];
  });
}

const sources = [...SCANNED.flatMap((d) => files(join(ROOT, d))), join(ROOT, 'README.md')].filter((f) => f !== fileURLToPath(import.meta.url));

describe('documentation references', () => {
  it('cite no design document outside the repository', () => {
    const citing = sources.filter((f) => readFileSync(f, 'utf8').includes('DESIGN' + '.md')).map((f) => f.slice(ROOT.length + 1));
    expect(citing).toEqual([]);
  });

  it('name only docs that exist', () => {
    const missing: string[] = [];
    for (const file of sources) {
      for (const [, name] of readFileSync(file, 'utf8').matchAll(/docs\/([a-z0-9-]+\.md)/g)) {
        if (!existsSync(join(ROOT, 'docs', name as string))) missing.push(`${file.slice(ROOT.length + 1)}: docs/${name as string}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('has the architecture document name every part of src/', () => {
    const architecture = readFileSync(join(ROOT, 'docs', 'architecture.md'), 'utf8');
    const parts = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(parts.filter((part) => !architecture.includes(`${part}/`))).toEqual([]);
  });
});
