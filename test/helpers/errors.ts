import { expect } from 'vitest';
import { DkmsError, type ErrorCode } from '../../src/errors.js';

/** Asserts that `fn` throws a DkmsError with `code`, and returns it. */
export function expectCode(fn: () => unknown, code: ErrorCode): DkmsError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DkmsError);
    expect((e as DkmsError).code).toBe(code);
    return e as DkmsError;
  }
  throw new Error(`expected ${code}, but nothing was thrown`);
}

export async function expectCodeAsync(promise: Promise<unknown>, code: ErrorCode): Promise<DkmsError> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(DkmsError);
    expect((e as DkmsError).code).toBe(code);
    return e as DkmsError;
  }
  throw new Error(`expected ${code}, but the promise resolved`);
}

/** The code `fn` throws, or 'ok' if it returns. Anything but a DkmsError is rethrown. */
export function codeOrOk(fn: () => unknown): ErrorCode | 'ok' {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (!(e instanceof DkmsError)) throw e;
    return e.code;
  }
}
