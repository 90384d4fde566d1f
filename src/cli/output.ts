/** Command results: one JSON object with --json, readable lines otherwise. */
import type { ErrorCode } from '../errors.js';
import type { Context } from './context.js';

/**
 * Thrown by a command that has printed its whole result, problems included (`dkms doctor`), to
 * end with the exit status of `code` and print nothing more.
 */
export class Reported extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode) {
    super(`reported: ${code}`);
    this.code = code;
  }
}

export type Fields = Record<string, unknown>;

function humanValue(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Prints `result` as JSON, or as `label: value` lines, or through `human` when given. */
export function emit(ctx: Context, result: Fields, human?: (result: Fields) => string): void {
  if (ctx.json) {
    const trust = ctx.firstUseKey === undefined ? {} : { ledgerTrust: { firstUse: true, nodeKey: ctx.firstUseKey } };
    ctx.io.out(`${JSON.stringify({ ...result, ...trust })}\n`);
    return;
  }
  const text = human
    ? human(result)
    : Object.entries(result)
        .map(([k, v]) => `${k}: ${humanValue(v)}`)
        .join('\n');
  if (text.length > 0) ctx.io.out(`${text}\n`);
}

/** A table of rows with fixed columns, for lists. */
export function table(rows: readonly Fields[], columns: readonly string[]): string {
  const cells = [columns.map((c) => c.toUpperCase()), ...rows.map((r) => columns.map((c) => humanValue(r[c])))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  return cells.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}
