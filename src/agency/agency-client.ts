/** An edge agent's HTTP client for an agency: every call but `post` is signed by the agent's key. */
import type { z } from 'zod';
import { fromBase64url, toBase64url } from '../crypto/index.js';
import { DkmsError, ERROR_CODES, type ErrorCode } from '../errors.js';
import { exchange, fetchExchange } from '../http.js';
import type { Jwe } from '../didcomm/index.js';
import {
  AcknowledgedSchema,
  BackupDataSchema,
  BackupIndexSchema,
  BackupVersionSchema,
  CloudAgentInfoSchema,
  DeletedSchema,
  GuestAllowanceSchema,
  PickupSchema,
  SponsorsSchema,
} from './api-schemas.js';
import { ProblemCodeSchema as ProblemSchema } from '../ledger/api-schemas.js';
import { signRequest } from './request-auth.js';
import type { Signer } from '../crypto/index.js';

export { CloudAgentInfoSchema };
export type CloudAgentDescription = z.infer<typeof CloudAgentInfoSchema>;
export type BackupVersion = z.infer<typeof BackupVersionSchema>;
export type BackupIndex = z.infer<typeof BackupIndexSchema>;

export interface PickedUp {
  readonly id: string;
  readonly received: string;
  readonly envelope: unknown;
}

export interface AgencyClientOptions {
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  /** Ends requests in flight (a long poll included), and refuses new ones, once aborted: a cancelled command's. */
  readonly signal?: AbortSignal;
}

/** The largest answer accepted from an agency: a lying one must not make a client buffer without end. */
export const MAX_AGENCY_ANSWER_BYTES = 64 * 2 ** 20;

interface Request {
  readonly method: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** One request out, the answer's status and text back (or a rejection when there was none). */
type Send = (url: string, request: Request, timeoutMs: number) => Promise<{ status: number; body: string }>;

const tooLarge = () => new DkmsError('AGENCY_BAD_RESPONSE', `the agency's answer is larger than ${MAX_AGENCY_ANSWER_BYTES / 2 ** 20} MiB`);

/** node:http(s) (src/http.ts) unless given a fetch (a test's, or an in-process server's). */
const sendOf =
  (options: AgencyClientOptions): Send =>
  (url, request, timeoutMs) => {
    const bounds = { ...request, timeoutMs, maxBytes: MAX_AGENCY_ANSWER_BYTES, tooLarge, ...(options.signal === undefined ? {} : { signal: options.signal }) };
    return options.fetch === undefined ? exchange(url, bounds) : fetchExchange(options.fetch, url, bounds);
  };

/** Sends a request and maps failures to dkms codes: AGENCY_UNREACHABLE, the agency's own code, or AGENCY_BAD_RESPONSE. */
async function call(send: Send, url: string, request: Request, timeoutMs: number): Promise<unknown> {
  let answer: { status: number; body: string };
  try {
    answer = await send(url, request, timeoutMs);
  } catch (e) {
    if (e instanceof DkmsError) throw e;
    throw new DkmsError('AGENCY_UNREACHABLE', `cannot reach the agency at ${new URL(url).origin}: ${e instanceof Error ? e.message : String(e)}`);
  }
  let payload: unknown;
  try {
    payload = JSON.parse(answer.body);
  } catch {
    throw new DkmsError('AGENCY_BAD_RESPONSE', `the agency answered ${request.method} ${new URL(url).pathname} with status ${answer.status} and no JSON`);
  }
  if (answer.status < 200 || answer.status > 299) {
    const problem = ProblemSchema.safeParse(payload);
    if (problem.success && Object.hasOwn(ERROR_CODES, problem.data.code)) throw new DkmsError(problem.data.code as ErrorCode, problem.data.detail);
    throw new DkmsError('AGENCY_BAD_RESPONSE', `the agency answered ${request.method} ${new URL(url).pathname} with status ${answer.status}`);
  }
  return payload;
}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new DkmsError('AGENCY_BAD_RESPONSE', `the agency's ${what} is malformed`);
  return parsed.data;
}

/** Posts an envelope to a DIDComm endpoint (any agency's inbound); no signature, it is the envelope that speaks. */
export async function postEnvelope(endpoint: string, envelope: Jwe, options: AgencyClientOptions = {}): Promise<void> {
  await call(
    sendOf(options),
    endpoint,
    { method: 'POST', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: JSON.stringify(envelope) },
    options.timeoutMs ?? 10_000,
  );
}

/** Whose backups a locator names at an agency, and their versions (no signature needed). */
export async function fetchBackupIndex(agencyUrl: string, locator: string, options: AgencyClientOptions = {}): Promise<BackupIndex> {
  const url = `${agencyUrl.replace(/\/+$/, '')}/v1/backups/${encodeURIComponent(locator)}`;
  return parse(BackupIndexSchema, await call(sendOf(options), url, { method: 'GET' }, options.timeoutMs ?? 10_000), 'backup index');
}

export class AgencyClient {
  readonly url: string;
  readonly #signer: Signer;
  readonly #send: Send;
  readonly #timeoutMs: number;

  constructor(url: string, signer: Signer, options: AgencyClientOptions = {}) {
    this.url = url.replace(/\/+$/, '');
    this.#signer = signer;
    this.#send = sendOf(options);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async #signed(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, extraTimeoutMs = 0): Promise<unknown> {
    const headers: Record<string, string> = signRequest(this.#signer, method, path, body);
    if (body !== undefined) headers['content-type'] = 'application/json';
    return call(
      this.#send,
      `${this.url}${path}`,
      { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) },
      this.#timeoutMs + extraTimeoutMs,
    );
  }

  /** Asks the agency to provision (or return) the cloud agent of `policy`. */
  async register(policy: string): Promise<CloudAgentDescription> {
    return parse(CloudAgentInfoSchema, await this.#signed('POST', '/v1/cloud-agents', { policy }), 'cloud agent description');
  }

  async describe(id: string): Promise<CloudAgentDescription> {
    return parse(
      CloudAgentInfoSchema,
      await call(this.#send, `${this.url}/v1/cloud-agents/${encodeURIComponent(id)}`, { method: 'GET' }, this.#timeoutMs),
      'cloud agent description',
    );
  }

  /** Has the cloud agent re-read the owner's policy, so it routes to exactly the current agents. */
  async sync(id: string): Promise<void> {
    await this.#signed('POST', `/v1/cloud-agents/${encodeURIComponent(id)}/sync`, {});
  }

  /** Waiting messages; with `waitSeconds`, the agency holds the request until one arrives. */
  async pickup(limit = 100, waitSeconds = 0): Promise<PickedUp[]> {
    const answer = await this.#signed('GET', `/v1/mailbox?limit=${limit}&wait=${waitSeconds}`, undefined, waitSeconds * 1000);
    return parse(PickupSchema, answer, 'mailbox listing').messages as PickedUp[];
  }

  /** Stores a new backup version (already encrypted to the backup key) with the owner's cloud agent. */
  async putBackup(cloudId: string, locator: string, data: Uint8Array): Promise<BackupVersion> {
    const answer = await this.#signed('POST', `/v1/cloud-agents/${encodeURIComponent(cloudId)}/backups`, { locator, data: toBase64url(data) }, 30_000);
    return parse(BackupVersionSchema, answer, 'backup receipt');
  }

  async deleteBackups(cloudId: string, locator: string): Promise<number> {
    const answer = await this.#signed('DELETE', `/v1/cloud-agents/${encodeURIComponent(cloudId)}/backups/${encodeURIComponent(locator)}`);
    return parse(DeletedSchema, answer, 'deletion receipt').deleted;
  }

  /** One backup's bytes; this client's signer must be a committed recovery key. */
  async getBackup(locator: string, version?: number): Promise<{ version: number; created: string; data: Uint8Array }> {
    const query = version === undefined ? '' : `?version=${version}`;
    const answer = parse(BackupDataSchema, await this.#signed('GET', `/v1/backups/${encodeURIComponent(locator)}/data${query}`, undefined, 30_000), 'backup');
    return { version: answer.version, created: answer.created, data: fromBase64url(answer.data, 'backup') };
  }

  /**
   * Lets the cloud agent whose key-agreement key is `cloudKx` take guest mail for `key` for a
   * day (this client's signer must be an agent of its owner, or a sponsor the owner named).
   */
  async allowGuest(cloudKx: string, key: string): Promise<{ key: string; allowed: string; expires: string }> {
    const answer = await this.#signed('POST', '/v1/guests', { cloud: cloudKx, key });
    return parse(GuestAllowanceSchema, answer, 'guest allowance');
  }

  /** Names the keys besides the owner's agents that may allow guests at cloud agent `cloudId` (replacing those named before). */
  async setSponsors(cloudId: string, keys: readonly string[]): Promise<number> {
    const answer = await this.#signed('PUT', `/v1/cloud-agents/${encodeURIComponent(cloudId)}/sponsors`, { keys });
    return parse(SponsorsSchema, answer, 'sponsors receipt').sponsors;
  }

  async ack(ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const answer = await this.#signed('POST', '/v1/mailbox/ack', { ids });
    return parse(AcknowledgedSchema, answer, 'acknowledgement').acknowledged;
  }
}
