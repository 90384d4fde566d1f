/**
 * A line diff of two JSON values, for the explorer's "what changed between two versions": both
 * are pretty-printed the same way (2-space indent, object keys in canonical order, RFC 8785's
 * sort by UTF-16 code units), so that the order a value's keys came in never shows as a change,
 * and the lines are matched by a longest common subsequence.
 *
 * The LCS is Hirschberg's: quadratic time in the lines that differ, linear space. Lines equal at
 * both ends are matched first, as any LCS may match them.
 */
import { canonicalJson } from '../../src/crypto/index.js';

export interface DiffLine {
  readonly op: 'same' | 'added' | 'removed';
  readonly text: string;
}

/**
 * Beyond this many lines on either side, once the lines equal at both ends are set aside, the
 * rest is not matched: it is shown as all removed, then all added. It bounds the work at
 * 5,000 × 5,000 line comparisons (DID documents are far smaller: 64 agents, 32 services).
 */
export const MAX_DIFF_LINES = 5000;

/** `value` pretty-printed as JSON, a line per element, keys in canonical order. */
function print(value: unknown, indent: string, prefix: string, suffix: string, out: string[]): void {
  if (Array.isArray(value) && value.length > 0) {
    out.push(`${indent}${prefix}[`);
    value.forEach((item, i) => print(item, `${indent}  `, '', i < value.length - 1 ? ',' : '', out));
    out.push(`${indent}]${suffix}`);
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    const keys = Object.keys(value).sort();
    out.push(`${indent}${prefix}{`);
    keys.forEach((key, i) => print((value as Record<string, unknown>)[key], `${indent}  `, `${JSON.stringify(key)}: `, i < keys.length - 1 ? ',' : '', out));
    out.push(`${indent}}${suffix}`);
  } else {
    out.push(`${indent}${prefix}${JSON.stringify(value)}${suffix}`);
  }
}

/** The lines of `value` as JSON; anything canonical JSON refuses is refused here too. */
function linesOf(value: unknown): string[] {
  const out: string[] = [];
  print(JSON.parse(canonicalJson(value)), '', '', '', out);
  return out;
}

/** LCS lengths of `a` against every prefix of `b` (or, reversed, every suffix): the last row of the table, in linear space. */
function lcsRow(a: Int32Array, b: Int32Array, reversed: boolean): Int32Array {
  let row = new Int32Array(b.length + 1);
  let next = new Int32Array(b.length + 1);
  for (let i = 0; i < a.length; i++) {
    const x = reversed ? a[a.length - 1 - i] : a[i];
    for (let j = 0; j < b.length; j++) {
      const y = reversed ? b[b.length - 1 - j] : b[j];
      next[j + 1] = x === y ? (row[j] ?? 0) + 1 : Math.max(row[j + 1] ?? 0, next[j] ?? 0);
    }
    [row, next] = [next, row];
  }
  return row;
}

/** Hirschberg: an LCS of `a` and `b` as operations, with indices into them. */
function align(a: Int32Array, aAt: number, b: Int32Array, bAt: number, out: [DiffLine['op'], number][]): void {
  if (a.length === 0 || b.length === 0) {
    for (let i = 0; i < a.length; i++) out.push(['removed', aAt + i]);
    for (let j = 0; j < b.length; j++) out.push(['added', bAt + j]);
    return;
  }
  if (a.length === 1) {
    const match = b.indexOf(a[0] ?? -1);
    if (match === -1) out.push(['removed', aAt]);
    for (let j = 0; j < b.length; j++) out.push(j === match ? ['same', aAt] : ['added', bAt + j]);
    return;
  }
  const half = a.length >> 1;
  const top = lcsRow(a.subarray(0, half), b, false);
  const bottom = lcsRow(a.subarray(half), b, true);
  let split = 0;
  let best = -1;
  for (let k = 0; k <= b.length; k++) {
    const total = (top[k] ?? 0) + (bottom[b.length - k] ?? 0);
    if (total > best) [best, split] = [total, k];
  }
  align(a.subarray(0, half), aAt, b.subarray(0, split), bAt, out);
  align(a.subarray(half), aAt + half, b.subarray(split), bAt + split, out);
}

/** Within each run of changed lines, the removed ones first: how a reader expects a hunk. */
function hunks(lines: DiffLine[]): DiffLine[] {
  const out: DiffLine[] = [];
  let added: DiffLine[] = [];
  for (const line of lines) {
    if (line.op === 'added') added.push(line);
    else if (line.op === 'removed') out.push(line);
    else {
      out.push(...added, line);
      added = [];
    }
  }
  return [...out, ...added];
}

/**
 * A line diff of `before` and `after` pretty-printed as JSON (2-space indent, keys in canonical
 * order, so that key order never shows as a change): the lines of an LCS are `same`, the others
 * `removed` (only in `before`) or `added` (only in `after`), removed before added in each run.
 * The `same` and `removed` lines, in order, are `before`'s lines; the `same` and `added` ones
 * are `after`'s. Bounded: when, set apart the lines equal at both ends, either side has more
 * than {@link MAX_DIFF_LINES} lines, those are not matched but shown all removed, then all added.
 *
 * @throws DkmsError `BAD_INPUT` when either value is not JSON (as `canonicalJson`: undefined, a
 *   function, a non-finite number, a lone surrogate, nesting deeper than 64).
 * @example
 *   diffJson({ a: 1, b: 2 }, { b: 2, a: 3 });
 *   // [{op: 'same', text: '{'}, {op: 'removed', text: '  "a": 1,'}, {op: 'added', text: '  "a": 3,'},
 *   //  {op: 'same', text: '  "b": 2'}, {op: 'same', text: '}'}]
 */
export function diffJson(before: unknown, after: unknown): DiffLine[] {
  const a = linesOf(before);
  const b = linesOf(after);
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const aMid = a.slice(head, a.length - tail);
  const bMid = b.slice(head, b.length - tail);
  const same = (lines: string[]) => lines.map((text): DiffLine => ({ op: 'same', text }));
  let middle: DiffLine[];
  if (aMid.length > MAX_DIFF_LINES || bMid.length > MAX_DIFF_LINES) {
    middle = [...aMid.map((text): DiffLine => ({ op: 'removed', text })), ...bMid.map((text): DiffLine => ({ op: 'added', text }))];
  } else {
    // Lines as numbers: each comparison in the quadratic part is then one integer compare.
    const ids = new Map<string, number>();
    const idOf = (line: string): number => {
      const known = ids.get(line);
      if (known !== undefined) return known;
      ids.set(line, ids.size);
      return ids.size - 1;
    };
    const idsOf = (lines: string[]) => Int32Array.from(lines, idOf);
    const ops: [DiffLine['op'], number][] = [];
    align(idsOf(aMid), 0, idsOf(bMid), 0, ops);
    middle = hunks(ops.map(([op, i]) => ({ op, text: (op === 'added' ? bMid[i] : aMid[i]) ?? '' })));
  }
  return [...same(a.slice(0, head)), ...middle, ...same(a.slice(a.length - tail))];
}
