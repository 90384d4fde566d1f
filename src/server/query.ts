/**
 * Integer query parameters, read strictly. The servers' JSON-schema validator coerces query text
 * to numbers, and lets through what coerces to a number that is not a plain integer in range
 * (`Infinity`, `1e999`, `0x10`, ` 1`): such a value then reached the store. The route contracts
 * (`intText` in ledger/api-schemas.ts) take only a plainly written decimal integer (digits, a
 * leading minus where negatives are allowed, no exponent, fraction, sign, hex or spaces), and
 * `read` checks its range and turns it into a number: what a handler gets is always a safe
 * integer within bounds.
 */
import { DkmsError } from '../errors.js';
import { MINUS_ONE_INT_PATTERN, NON_NEGATIVE_INT_PATTERN } from '../ledger/api-schemas.js';

export interface IntParam {
  readonly name: string;
  /** The parameter's value in `query` (parsed by the server), undefined when absent; BAD_INPUT when out of range. */
  read(query: unknown): number | undefined;
}

/** An integer parameter in [min, max] (min is -1 or more). */
export function intParam(name: string, min: number, max = Number.MAX_SAFE_INTEGER): IntParam {
  if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || min < -1 || max < min) throw new RangeError(`bad bounds for query parameter ${name}`);
  const plain = new RegExp(min < 0 ? MINUS_ONE_INT_PATTERN : NON_NEGATIVE_INT_PATTERN);
  return {
    name,
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
