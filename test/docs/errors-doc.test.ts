import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

/** The rows of the table in docs/errors.md: code → [exit, http]. */
function documented(): Map<string, [number, number]> {
  const rows = new Map<string, [number, number]>();
  for (const match of doc.matchAll(/^\| `([A-Z_]+)` \| (\d+) \| (\d+) \|/gm)) {
    rows.set(match[1] ?? '', [Number(match[2]), Number(match[3])]);
  }
  return rows;
}

describe('docs/errors.md', () => {
  it('documents every error code with the exit status and HTTP status the code uses', () => {
    const rows = documented();
    for (const [code, info] of Object.entries(ERROR_CODES) as [ErrorCode, { exit: number; http: number }][]) {
      expect(rows.get(code), code).toEqual([info.exit, info.http]);
    }
    expect([...rows.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('gives every code its own exit status', () => {
    const statuses = Object.values(ERROR_CODES).map((c) => c.exit);
    expect(new Set(statuses).size).toBe(statuses.length);
  });
});
