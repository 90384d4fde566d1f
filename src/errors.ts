/**
 * The one error class of dkms. Every failure a caller can act on carries a stable `code`;
 * the CLI maps codes to exit statuses, HTTP to problem+json statuses. Each code is documented
 * in docs/errors.md. Messages are one line and never contain secrets.
 */

interface CodeInfo {
  /** Process exit status the CLI uses for this code. */
  readonly exit: number;
  /** HTTP status the servers use for this code. */
  readonly http: number;
}

/** Registry of every error code: the single source the CLI, servers and docs follow. */
export const ERROR_CODES = {
  BAD_INPUT: { exit: 2, http: 400 },
  IO_ERROR: { exit: 5, http: 500 },
  FILE_EXISTS: { exit: 6, http: 409 },
  INTERNAL: { exit: 70, http: 500 },
  SIGNATURE_INVALID: { exit: 1, http: 400 },
  WALLET_NOT_FOUND: { exit: 10, http: 404 },
  WALLET_EXISTS: { exit: 11, http: 409 },
  WALLET_BAD_PASSPHRASE: { exit: 12, http: 401 },
  WALLET_TAMPERED: { exit: 13, http: 500 },
  WALLET_BUSY: { exit: 14, http: 503 },
  WALLET_CLOSED: { exit: 15, http: 500 },
  WALLET_UNSUPPORTED: { exit: 16, http: 500 },
  EXPORT_BAD_FORMAT: { exit: 17, http: 400 },
  SESSION_ACTIVE: { exit: 18, http: 409 },
  SESSION_LOST: { exit: 19, http: 503 },
  SESSION_PROTOCOL: { exit: 25, http: 400 },
  HSM_UNAVAILABLE: { exit: 26, http: 500 },
  HSM_TOKEN_NOT_FOUND: { exit: 27, http: 404 },
  HSM_PIN_WRONG: { exit: 28, http: 401 },
  HSM_KEY_NOT_FOUND: { exit: 29, http: 404 },
  HSM_FAILED: { exit: 7, http: 500 },
  AUDIT_UNAVAILABLE: { exit: 3, http: 503 },
  AUDIT_TAMPERED: { exit: 4, http: 500 },
  WALLET_ROLLED_BACK: { exit: 8, http: 409 },
  CUSTODY_REQUIRED: { exit: 9, http: 403 },
  ITEM_NOT_FOUND: { exit: 20, http: 404 },
  ITEM_EXISTS: { exit: 21, http: 409 },
  KEY_NOT_FOUND: { exit: 22, http: 404 },
  KEY_EXISTS: { exit: 23, http: 409 },
  KEY_WRONG_TYPE: { exit: 24, http: 400 },
  EVENT_MALFORMED: { exit: 30, http: 400 },
  EVENT_TOO_LARGE: { exit: 31, http: 413 },
  EVENT_BAD_SIGNATURE: { exit: 32, http: 400 },
  EVENT_UNAUTHORIZED: { exit: 33, http: 403 },
  EVENT_THRESHOLD: { exit: 34, http: 403 },
  EVENT_REPLAY: { exit: 35, http: 409 },
  EVENT_FORK: { exit: 36, http: 409 },
  EVENT_STALE_SEQ: { exit: 37, http: 409 },
  EVENT_SEQ_GAP: { exit: 38, http: 409 },
  EVENT_BAD_PREV: { exit: 39, http: 409 },
  EVENT_INVALID: { exit: 40, http: 422 },
  EVENT_LOCKOUT: { exit: 41, http: 422 },
  EVENT_RECOVERY_KEY_REUSED: { exit: 42, http: 403 },
  SUBJECT_NOT_FOUND: { exit: 43, http: 404 },
  SUBJECT_DEACTIVATED: { exit: 44, http: 410 },
  POLICY_NOT_FOUND: { exit: 45, http: 404 },
  NOT_FOUND: { exit: 46, http: 404 },
  RATE_LIMITED: { exit: 47, http: 429 },
  DASHBOARD_HOST_REFUSED: { exit: 49, http: 403 },
  // Exit statuses 1 to 125 are all taken. 126 and 127 tell a shell that a command could not be
  // run, and 128+n that it died of signal n (n up to 64, SIGRTMAX on Linux; 130 is dkms's own
  // "cancelled"): the codes that came after take statuses from 193 on, up to 254.
  CONSOLE_LOGIN_REQUIRED: { exit: 193, http: 401 },
  CONSOLE_REQUEST_REFUSED: { exit: 194, http: 403 },
  CONSOLE_UNAVAILABLE: { exit: 195, http: 409 },
  LEDGER_STORE_UNAVAILABLE: { exit: 48, http: 503 },
  LEDGER_UNREACHABLE: { exit: 50, http: 502 },
  LEDGER_BAD_RESPONSE: { exit: 51, http: 502 },
  LEDGER_BAD_HEAD: { exit: 52, http: 502 },
  LEDGER_INCONSISTENT: { exit: 53, http: 502 },
  LEDGER_BAD_PROOF: { exit: 54, http: 502 },
  LEDGER_BAD_CHAIN: { exit: 55, http: 502 },
  LEDGER_STORE_DAMAGED: { exit: 56, http: 500 },
  LEDGER_BUSY: { exit: 57, http: 503 },
  ADDRESS_IN_USE: { exit: 58, http: 500 },
  LEDGER_CONFLICT: { exit: 59, http: 503 },
  ENVELOPE_MALFORMED: { exit: 60, http: 400 },
  ENVELOPE_UNSUPPORTED: { exit: 61, http: 400 },
  ENVELOPE_NOT_FOR_US: { exit: 62, http: 400 },
  ENVELOPE_TAMPERED: { exit: 63, http: 400 },
  ENVELOPE_UNKNOWN_SENDER: { exit: 64, http: 403 },
  ENVELOPE_BAD_SIGNATURE: { exit: 65, http: 400 },
  MESSAGE_MALFORMED: { exit: 66, http: 400 },
  MESSAGE_REPLAYED: { exit: 67, http: 409 },
  MESSAGE_EXPIRED: { exit: 68, http: 410 },
  ENVELOPE_TOO_LARGE: { exit: 69, http: 413 },
  AGENCY_UNREACHABLE: { exit: 71, http: 502 },
  AGENCY_BAD_RESPONSE: { exit: 72, http: 502 },
  REQUEST_UNAUTHORIZED: { exit: 73, http: 401 },
  MAILBOX_FULL: { exit: 74, http: 507 },
  CLOUD_AGENT_NOT_FOUND: { exit: 75, http: 404 },
  AGENCY_BUSY: { exit: 76, http: 503 },
  AGENCY_STORE_DAMAGED: { exit: 77, http: 500 },
  AGENT_NOT_INITIALIZED: { exit: 78, http: 404 },
  AGENT_EXISTS: { exit: 79, http: 409 },
  NO_CLOUD_AGENT: { exit: 80, http: 409 },
  INVITATION_MALFORMED: { exit: 81, http: 400 },
  INVITATION_EXPIRED: { exit: 82, http: 410 },
  INVITATION_USED: { exit: 83, http: 409 },
  PASSCODE_WRONG: { exit: 84, http: 403 },
  PAIRING_TIMEOUT: { exit: 85, http: 504 },
  PAIRING_DECLINED: { exit: 86, http: 403 },
  CONNECTION_NOT_FOUND: { exit: 87, http: 404 },
  CONNECTION_EVENT_UNAUTHORIZED: { exit: 88, http: 403 },
  CONNECTION_EVENT_INVALID: { exit: 89, http: 422 },
  CONNECTION_DELETED: { exit: 90, http: 410 },
  APPROVAL_NOT_FOUND: { exit: 91, http: 404 },
  APPROVAL_TIMEOUT: { exit: 92, http: 504 },
  AGENT_NOT_FOUND: { exit: 93, http: 404 },
  MNEMONIC_UNKNOWN_WORD: { exit: 94, http: 400 },
  MNEMONIC_CHECKSUM: { exit: 95, http: 400 },
  PAPER_MALFORMED: { exit: 96, http: 400 },
  RECOVERY_NOT_SET_UP: { exit: 97, http: 409 },
  BACKUP_NOT_FOUND: { exit: 98, http: 404 },
  BACKUP_UNAUTHORIZED: { exit: 99, http: 401 },
  BACKUP_UNREADABLE: { exit: 100, http: 422 },
  RECOVERY_KEY_NOT_COMMITTED: { exit: 101, http: 403 },
  RECOVERY_PENDING: { exit: 102, http: 409 },
  RECOVERY_DELAY: { exit: 103, http: 409 },
  SHARE_MALFORMED: { exit: 104, http: 400 },
  SHARE_FOREIGN: { exit: 105, http: 422 },
  SHARE_BAD_SIGNATURE: { exit: 106, http: 422 },
  SHARES_INSUFFICIENT: { exit: 107, http: 409 },
  TRUSTEES_TOO_FEW: { exit: 108, http: 400 },
  TRUSTEE_NOT_FOUND: { exit: 109, http: 404 },
  RECOVERY_REQUEST_NOT_FOUND: { exit: 110, http: 404 },
  CHALLENGE_WRONG: { exit: 111, http: 403 },
  RECOVERY_RATE_LIMITED: { exit: 112, http: 429 },
  TRUSTEE_CHANGE_INCOMPLETE: { exit: 113, http: 409 },
  BACKUP_QUOTA: { exit: 114, http: 507 },
  LEDGER_INCOMPLETE: { exit: 115, http: 502 },
  LEDGER_STALE: { exit: 116, http: 502 },
  LEDGER_BAD_MAP_PROOF: { exit: 117, http: 502 },
  LEDGER_UNWITNESSED: { exit: 118, http: 502 },
  WITNESS_REFUSED: { exit: 119, http: 409 },
  REQUEST_REPLAYED: { exit: 120, http: 409 },
  REQUEST_TIME_SKEW: { exit: 121, http: 401 },
  MAILBOX_NOT_FOUND: { exit: 122, http: 404 },
  AGENCY_KEY_MISMATCH: { exit: 123, http: 500 },
  AGENCY_STORE_UNAVAILABLE: { exit: 124, http: 503 },
  AGENT_REMOVED: { exit: 125, http: 403 },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DkmsError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DkmsError';
    this.code = code;
  }

  get exitStatus(): number {
    return ERROR_CODES[this.code].exit;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }
}

export function isDkmsError(e: unknown, code?: ErrorCode): e is DkmsError {
  return e instanceof DkmsError && (code === undefined || e.code === code);
}

/** Shorthand for the most common failure: input a caller can fix. */
export function badInput(message: string): DkmsError {
  return new DkmsError('BAD_INPUT', message);
}
