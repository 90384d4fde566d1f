/**
 * The console's calls to its server (docs/dashboard.md, "Owner console API"): JSON in and out,
 * the session cookie sent by the browser (HttpOnly: this code never sees it), and the CSRF token
 * the login answered in the `X-DKMS-CSRF` header of every call. The token lives in this tab's
 * sessionStorage only: a new tab logs in again.
 */
import { DkmsError, ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import type { ConsoleActionAnswer, ConsoleBackupMade, ConsoleLogin, ConsoleRecoveryCancelled, ConsoleRevocation } from '../../src/server/console-types.js';

const CSRF = 'dkms.console.csrf';
const BASE = '/ui/console/api';

export const hasLogin = (): boolean => sessionStorage.getItem(CSRF) !== null;

/** An answer's problem as a DkmsError (its code when it is one of ours). */
async function problemOf(response: Response): Promise<DkmsError> {
  let body: { code?: unknown; detail?: unknown } = {};
  try {
    body = (await response.json()) as typeof body;
  } catch {
    // Not JSON: the status says enough.
  }
  const code = typeof body.code === 'string' && Object.hasOwn(ERROR_CODES, body.code) ? (body.code as ErrorCode) : 'INTERNAL';
  return new DkmsError(code, typeof body.detail === 'string' ? body.detail : `the console answered ${response.status}`);
}

async function call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const csrf = sessionStorage.getItem(CSRF);
  if (csrf !== null) headers['x-dkms-csrf'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    cache: 'no-store',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!response.ok) {
    const problem = await problemOf(response);
    if ((problem.code as string) === 'CONSOLE_LOGIN_REQUIRED') sessionStorage.removeItem(CSRF);
    throw problem;
  }
  return response.status === 204 ? (undefined as T) : ((await response.json()) as T);
}

export async function login(passphrase: string): Promise<ConsoleLogin> {
  sessionStorage.removeItem(CSRF);
  const answer = await call<ConsoleLogin>('POST', '/session', { passphrase });
  sessionStorage.setItem(CSRF, answer.csrf);
  return answer;
}

export async function logout(): Promise<void> {
  try {
    await call<undefined>('DELETE', '/session');
  } finally {
    sessionStorage.removeItem(CSRF);
  }
}

export const overview = <T>(): Promise<T> => call<T>('GET', '/overview');
export const revokeAgent = (key: string): Promise<ConsoleActionAnswer<ConsoleRevocation>> => call('POST', '/agents/revoke', { key });
export const backUp = (): Promise<ConsoleActionAnswer<ConsoleBackupMade>> => call('POST', '/backups', {});
export const cancelRecovery = (): Promise<ConsoleActionAnswer<ConsoleRecoveryCancelled>> => call('POST', '/recovery/cancel', {});
