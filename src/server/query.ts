/**
 * Integer query parameters, read strictly. The servers' JSON-schema validator coerces query text
 * to numbers, and lets through what coerces to a number that is not a plain integer in range
 * (`Infinity`, `1e999`, `0x10`, ` 1`): such a value then reached the store. Here the schema
 * takes only a plainly written decimal integer (digits, a leading minus where negatives are
 * allowed, no exponent, fraction, sign, hex or spaces), and `read` checks its range and turns
 * it into a number: what a handler gets is always a safe integer within bounds.
 */
import { DkmsError } from '../errors.js';

export interface IntParam {
  readonly name: string;
  /** The JSON schema of the parameter as text. */
  readonly schema: { readonly type: 'string'; readonly pattern: string; readonly maxLength: number };
  /** The parameter's value in `query` (parsed by the server), undefined when absent; BAD_INPUT when out of range. */
  read(query: unknown): number | undefined;
}

/** An integer parameter in [min, max] (min is -1 or more). */
export function intParam(name: string, min: number, max = Number.MAX_SAFE_INTEGER): IntParam {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < -1 || max < min) throw new RangeError(`bad bounds for query parameter ${name}`);
  const pattern = min < 0 ? '^(-1|0|[1-9][0-9]{0,15})$' : '^(0|[1-9][0-9]{0,15})$';
  const plain = new RegExp(pattern);
  return {
    name,
    schema: { type: 'string', pattern, maxLength: 17 },
    read(query) {
      const text = (query as Record<string, unknown> | undefined)?.[name];
      if (text === undefined) return undefined;
      const value = typeof text === 'string' && plain.test(text) ? Number(text) : Number.NaN;
      if (!Number.isSafeInteger(value) || value < min || value > max) {
        const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
        throw new DkmsError('BAD_INPUT', `query parameter ${name} must be an integer ${range}`);
      }
      return value;
    },
  };
}

/** The schema of a query string made of these parameters (and `others`, already schemas), nothing else. */
export function queryOf(params: readonly IntParam[], others: Record<string, unknown> = {}, required: readonly string[] = []) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { ...Object.fromEntries(params.map((p) => [p.name, p.schema])), ...others },
    ...(required.length > 0 ? { required } : {}),
  } as const;
}
