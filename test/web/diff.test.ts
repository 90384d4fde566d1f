/**
 * The explorer's JSON line diff (web/explorer/diff.ts): lines printed the same way on both sides
 * whatever the order of keys, a longest common subsequence of them kept, and past the bound the
 * lines that differ shown whole instead of matched.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/crypto/index.js';
import { MAX_DIFF_LINES, diffJson, type DiffLine } from '../../web/explorer/diff.js';
import { codeOf } from '../helpers/events.js';

const text = (lines: readonly DiffLine[], ...ops: DiffLine['op'][]) => lines.filter((l) => ops.includes(l.op)).map((l) => l.text);
/** The lines a value prints as: its diff with itself. */
const linesOf = (value: unknown) => text(diffJson(value, value), 'same');

/** The length of a longest common subsequence, by the textbook table: the oracle. */
function lcsLength(a: readonly string[], b: readonly string[]): number {
  let row = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    const next = [0];
    b.forEach((y, j) => next.push(x === y ? (row[j] ?? 0) + 1 : Math.max(row[j + 1] ?? 0, next[j] ?? 0)));
    row = next;
  }
  return row[b.length] ?? 0;
}

/** Values as JSON.parse makes them: fast-check's objects may have no prototype, which canonical JSON refuses. */
const plain = (value: unknown): unknown => JSON.parse(JSON.stringify(value));
/** Any JSON values, and pairs that share much (the same few keys, small values), as versions do. */
const json = fc.jsonValue({ maxDepth: 3 });
const small = fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('x', 'y'), fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }));
const record = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f'), fc.oneof(small, fc.dictionary(fc.constantFrom('p', 'q', 'r'), small)));
const pairs = fc
  .oneof(fc.tuple(json, json), fc.tuple(record, record), fc.tuple(fc.array(small, { maxLength: 12 }), fc.array(small, { maxLength: 12 })))
  .map(([before, after]) => [plain(before), plain(after)] as const);

describe('diffJson', () => {
  it('prints JSON with a 2-space indent, keys in canonical order, empty containers on one line', () => {
    expect(linesOf({ b: [1, 'two', null], a: {}, c: { z: true, y: [] } })).toEqual([
      '{',
      '  "a": {},',
      '  "b": [',
      '    1,',
      '    "two",',
      '    null',
      '  ],',
      '  "c": {',
      '    "y": [],',
      '    "z": true',
      '  }',
      '}',
    ]);
    expect(linesOf('just a string')).toEqual(['"just a string"']);
    // UTF-16 code units, as RFC 8785 sorts: "10" before "9", "Z" before "a".
    expect(linesOf({ 9: 0, 10: 0, a: 0, Z: 0 })).toEqual(['{', '  "10": 0,', '  "9": 0,', '  "Z": 0,', '  "a": 0', '}']);
  });

  it('identical values: every line the same', () => {
    const value = { id: 'did:dkms:x', service: [{ id: '#a', type: 'T', serviceEndpoint: 'https://a.example/' }], n: [1, 2, 3] };
    const lines = diffJson(value, structuredClone(value));
    expect(lines.length).toBeGreaterThan(5);
    expect(lines.every((l) => l.op === 'same')).toBe(true);
  });

  it('key order never shows as a change', () => {
    const before = { a: 1, b: { x: [1, { p: 1, q: 2 }], y: 'y' }, c: null };
    const after = { c: null, b: { y: 'y', x: [1, { q: 2, p: 1 }] }, a: 1 };
    expect(diffJson(before, after).every((l) => l.op === 'same')).toBe(true);
  });

  it('a changed value: its line removed, then the new one added, the rest the same', () => {
    expect(diffJson({ a: 1, b: 2 }, { b: 2, a: 3 })).toEqual([
      { op: 'same', text: '{' },
      { op: 'removed', text: '  "a": 1,' },
      { op: 'added', text: '  "a": 3,' },
      { op: 'same', text: '  "b": 2' },
      { op: 'same', text: '}' },
    ]);
  });

  it("property: same+removed lines are before's lines, same+added are after's, the same lines a longest common subsequence", () => {
    fc.assert(
      fc.property(pairs, ([before, after]) => {
        const lines = diffJson(before, after);
        const a = linesOf(before);
        const b = linesOf(after);
        expect(text(lines, 'same', 'removed')).toEqual(a);
        expect(text(lines, 'same', 'added')).toEqual(b);
        expect(text(lines, 'same').length).toBe(lcsLength(a, b));
        // The lines are JSON: each side, put together, is its value again.
        expect(canonicalJson(JSON.parse(text(lines, 'same', 'added').join('\n')))).toBe(canonicalJson(after));
        expect(canonicalJson(JSON.parse(text(lines, 'same', 'removed').join('\n')))).toBe(canonicalJson(before));
        // Within each run of changes, removed lines come first.
        expect(lines.some((l, i) => l.op === 'removed' && lines[i - 1]?.op === 'added')).toBe(false);
      }),
      { numRuns: 500 },
    );
  });

  it(`bounded: past ${MAX_DIFF_LINES} differing lines on a side, they are all removed, then all added`, () => {
    const n = MAX_DIFF_LINES;
    const range = (count: number) => Array.from({ length: count }, (_, i) => i);
    // The same array but for its first and last elements: n differing lines on each side, the others between them equal.
    const near = (count: number) => range(count).map((i) => (i === 0 || i === count - 1 ? -i - 1 : i));

    const matched = diffJson(range(n), near(n));
    expect(text(matched, 'same')).toHaveLength(n);
    expect(text(matched, 'removed')).toEqual(['  0,', `  ${n - 1}`]);

    const over = diffJson(range(n + 1), near(n + 1));
    expect(over.map((l) => l.op)).toEqual(['same', ...Array(n + 1).fill('removed'), ...Array(n + 1).fill('added'), 'same']);
    expect(text(over, 'removed')).toEqual(linesOf(range(n + 1)).slice(1, -1));
    expect(text(over, 'added')).toEqual(linesOf(near(n + 1)).slice(1, -1));

    // Lines equal at both ends are not counted: a long document with one change is matched.
    const long = { a: range(2 * n), b: 'before', c: range(2 * n) };
    const one = diffJson(long, { ...long, b: 'after' });
    expect(one.filter((l) => l.op !== 'same')).toEqual([
      { op: 'removed', text: '  "b": "before",' },
      { op: 'added', text: '  "b": "after",' },
    ]);
  });

  it('refuses what is not JSON, as canonical JSON does', () => {
    expect(codeOf(() => diffJson(undefined, 1))).toBe('BAD_INPUT');
    expect(codeOf(() => diffJson(1, Number.NaN))).toBe('BAD_INPUT');
    expect(codeOf(() => diffJson({ a: () => 1 }, {}))).toBe('BAD_INPUT');
  });
});
