/**
 * Recovery through trustees, after the owner lost every device (docs/recovery.md). The new
 * device makes a recovery request (its fresh agent keys) and shows a challenge: six words
 * computed from the whole request (66 bits of SHA-256 over its id, keys, label and expiry). The
 * owner hands the request text to each trustee by any channel and reads the six words to them,
 * by voice or in person; the trustee's agent computes the words from the request it received.
 * A request substituted on the way has other keys, so its words differ (matching them would
 * take about 2^66 tries), and the text holds nothing secret to grind. The trustee links the
 * request to the owner it holds shares for and enters the words; only then does its agent
 * release the shares, encrypted to the new device's key and delivered through the owner's cloud
 * agent. Wrong answers are recorded, three of them refuse the request, and requests are rate
 * limited.
 */
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { canonicalBytes, encodePublicKey, randomBytes, sha256, toBase58btc, utf8 } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import type { PolicyAddress } from '../ledger/events.js';

import { connections, findConnection, peerState, type ConnectionRecord } from '../agent/connections.js';
import { didKeyPublicKey, newMessage } from '../didcomm/index.js';
import { AgencyClient } from '../agency/agency-client.js';
import type { EdgeAgent, Handler, Handlers, ReceiveEntry } from '../agent/edge-agent.js';
import { decodeInvitationText, encodeInvitationText } from '../agent/invitation-text.js';
import { provisionKeys } from '../agent/provision.js';
import { RECOVERY_PROTOCOL, heldShares } from './trustees.js';
import { combineShares, parseShare, type RecoveryShare } from './shares.js';
import { LabelSchema, MyRequestSchema, RecoveryRequestSchema, type HeldShares, type MyRequest, type RecoveryRequest } from './state.js';
import { RECOVERY_CATEGORIES } from './categories.js';

export const RELEASE = `${RECOVERY_PROTOCOL}/release`;
export const REQUEST_SCHEME = 'dkms-recovery-request:';
export const MAX_CHALLENGE_ATTEMPTS = 3;
/** Requests a trustee's agent takes per hour, from anyone: enough for a real owner, too few to grind. */
export const REQUESTS_PER_HOUR = 5;
export const DEFAULT_REQUEST_TTL_SECONDS = 7 * 24 * 3600;

const MultibaseKey = z.string().regex(/^z[1-9A-HJ-NP-Za-km-z]{40,60}$/);
const RequestTextSchema = z.strictObject({
  v: z.literal(2),
  id: z.string().regex(/^[1-9A-HJ-NP-Za-km-z]{10,30}$/),
  key: MultibaseKey,
  kx: MultibaseKey,
  label: LabelSchema,
  expires: z
    .string()
    .max(40)
    .refine((v) => !Number.isNaN(Date.parse(v)), 'expires must be a date'),
});
type RequestText = z.infer<typeof RequestTextSchema>;

export const CHALLENGE_WORDS = 6;

/** The six words both sides compute from a request: 66 bits of SHA-256 over all of it. */
export function requestChallenge(request: Omit<RequestText, 'v'>): string {
  const digest = sha256(
    canonicalBytes({
      v: 2,
      purpose: 'dkms/recovery-request/challenge',
      id: request.id,
      key: request.key,
      kx: request.kx,
      label: request.label,
      expires: request.expires,
    }),
  );
  const words: string[] = [];
  for (let i = 0; i < CHALLENGE_WORDS; i++) {
    // 11 bits per word, read from the digest big-endian.
    let index = 0;
    for (let bit = i * 11; bit < (i + 1) * 11; bit++) index = (index << 1) | (((digest[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1);
    words.push(wordlist[index] as string);
  }
  return words.join(' ');
}

/** What a trustee typed, compared as words: case, spacing and punctuation do not matter. */
const normalizeChallenge = (text: string) =>
  text
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter((w) => w.length > 0)
    .join(' ');

// ---- the new device -----------------------------------------------------------------------

/** Makes this device's recovery request: fresh agent keys, a request text and a challenge. */
export function createRecoveryRequest(
  agent: EdgeAgent,
  options: { agency: string; label: string; ttlSeconds?: number },
): { text: string; challenge: string; request: MyRequest } {
  const keys = provisionKeys(agent.wallet);
  const id = toBase58btc(randomBytes(12));
  const label = LabelSchema.parse(options.label);
  const expires = new Date(Date.now() + (options.ttlSeconds ?? DEFAULT_REQUEST_TTL_SECONDS) * 1000).toISOString();
  const body = { id, key: keys.key, kx: keys.kx, label, expires };
  const challenge = requestChallenge(body);
  const request: MyRequest = { id, challenge, agency: options.agency, label, created: new Date().toISOString(), expires };
  agent.store.write(RECOVERY_CATEGORIES.myRequest, 'current', request);
  return { text: encodeInvitationText(REQUEST_SCHEME, { v: 2, ...body }), challenge, request };
}

export function myRequest(agent: EdgeAgent): MyRequest | undefined {
  return agent.store.read(RECOVERY_CATEGORIES.myRequest, 'current', MyRequestSchema);
}

const ReleaseBody = z.object({ request: z.string().max(40), owner: LabelSchema, shares: z.array(z.unknown()).min(1).max(16) });

const releaseHandler: Handler = {
  from: 'any',
  async handle(agent, message) {
    const body = ReleaseBody.safeParse(message.body);
    if (!body.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed share release');
    const mine = myRequest(agent);
    if (mine === undefined || mine.id !== body.data.request)
      throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', 'shares released for a request this device did not make');
    const shares = body.data.shares.map(parseShare);
    // Filed by signer too: a share someone else signed with the same index cannot displace a real one.
    for (const share of shares) agent.store.write(RECOVERY_CATEGORIES.releasedShare, `${share.set}.${share.index}.${share.signer}`, share);
    return {
      summary: `a trustee released ${shares.length} share(s) for '${body.data.owner}'`,
      data: { released: shares.map((s) => ({ set: s.set, index: s.index, threshold: s.threshold })) },
    };
  },
};

/**
 * Picks up what trustees released to this device, through the agency named in its request (a
 * new device has no cloud agent of its own yet). A working agent passes every protocol's
 * handlers, so that its other mail is handled rather than refused.
 */
export async function collectReleases(agent: EdgeAgent, waitSeconds = 0, handlers: Handlers = requestHandlers): Promise<ReceiveEntry[]> {
  const request = myRequest(agent);
  if (request === undefined) throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', 'this device has made no recovery request: `dkms recovery request`');
  const agency = new AgencyClient(request.agency, agent.signingKey(), agent.options);
  const entries: ReceiveEntry[] = [];
  for (let wait = waitSeconds; ; wait = 0) {
    const batch = await agent.receiveAsGuest(handlers, { agency, waitSeconds: wait });
    entries.push(...batch);
    if (batch.length === 0) return entries;
  }
}

/** Forgets this device's request and every share released to it, once they have served: together they are R. */
export function forgetReleases(agent: EdgeAgent): void {
  agent.wallet.transaction(() => {
    for (const share of agent.wallet.find({ category: RECOVERY_CATEGORIES.releasedShare })) agent.wallet.delete(RECOVERY_CATEGORIES.releasedShare, share.name);
    agent.store.remove(RECOVERY_CATEGORIES.myRequest, 'current');
  });
}

export function releasedShares(agent: EdgeAgent): RecoveryShare[] {
  return agent.store.list(RECOVERY_CATEGORIES.releasedShare, z.unknown()).map((s) => parseShare(s.value));
}

/** How many shares of each set have arrived, and the threshold each needs. */
export function releaseProgress(agent: EdgeAgent): { set: string; have: number; threshold: number; total: number }[] {
  const sets = new Map<string, { set: string; have: number; threshold: number; total: number }>();
  for (const share of releasedShares(agent)) {
    const entry = sets.get(share.set) ?? { set: share.set, have: 0, threshold: share.threshold, total: share.total };
    sets.set(share.set, { ...entry, have: entry.have + 1 });
  }
  return [...sets.values()];
}

/** A secret rebuilt from released shares, and the owner its shares say it is of. */
export interface Rebuilt {
  readonly secret: Uint8Array;
  readonly policy: string;
  readonly owner: string;
}

/**
 * The secrets rebuilt from every set with enough good shares (a change in flight may leave two
 * sets). A share counts only if it was signed by an agent the owner's policy has had, as the
 * ledger shows: shares anyone else made, or signed, are left out rather than spoiling the set.
 */
export async function rebuiltSecrets(agent: EdgeAgent): Promise<Rebuilt[]> {
  // Shares of one split agree on set, owner and signer (the agent that split R); grouping by
  // all three keeps a share someone else sent, whenever it arrived, out of the honest group.
  const groups = new Map<string, RecoveryShare[]>();
  for (const share of releasedShares(agent)) {
    const key = JSON.stringify([share.set, share.hint.owner.policy, share.signer]);
    groups.set(key, [...(groups.get(key) ?? []), share]);
  }
  const agentsOf = new Map<string, Set<string>>();
  const rebuilt: Rebuilt[] = [];
  for (const shares of groups.values()) {
    const first = shares[0] as RecoveryShare;
    const { policy, label } = first.hint.owner;
    if (!agentsOf.has(policy)) agentsOf.set(policy, await agentsEver(agent, policy));
    if (!(agentsOf.get(policy) as Set<string>).has(first.signer)) continue;
    const byIndex = new Map(shares.map((s) => [s.index, s]));
    if (byIndex.size < first.threshold) continue;
    try {
      rebuilt.push({ secret: await combineShares([...byIndex.values()].slice(0, first.threshold)), policy, owner: label });
    } catch (e) {
      if (!isDkmsError(e)) throw e;
    }
  }
  return rebuilt;
}

/** Every agent key `policy` has ever had, from its verified history; none if it does not resolve. */
async function agentsEver(agent: EdgeAgent, policy: string): Promise<Set<string>> {
  try {
    const resolved = await agent.ledger.resolvePolicy(policy as PolicyAddress);
    return new Set(resolved.policyHistory.flatMap((entry) => entry.policy.agents.map((a) => a.key)));
  } catch (e) {
    if (isDkmsError(e)) return new Set();
    throw e;
  }
}

// ---- the trustee --------------------------------------------------------------------------

export function recoveryRequests(agent: EdgeAgent): RecoveryRequest[] {
  return agent.store.list(RECOVERY_CATEGORIES.recoveryRequest, RecoveryRequestSchema).map((r) => r.value);
}

/** Records a recovery request handed over out of band (rate limited: REQUESTS_PER_HOUR). */
export function addRecoveryRequest(agent: EdgeAgent, text: string, now = Date.now()): RecoveryRequest {
  const parsed = decodeInvitationText(text, REQUEST_SCHEME, RequestTextSchema, 'recovery request');
  const existing = agent.store.read(RECOVERY_CATEGORIES.recoveryRequest, parsed.id, RecoveryRequestSchema);
  if (existing !== undefined) return existing;
  if (Date.parse(parsed.expires) < now) throw new DkmsError('INVITATION_EXPIRED', 'the recovery request has expired: ask for a new one');
  const recent = recoveryRequests(agent).filter((r) => Date.parse(r.received) > now - 3600_000).length;
  if (recent >= REQUESTS_PER_HOUR)
    throw new DkmsError('RECOVERY_RATE_LIMITED', `this agent took ${recent} recovery requests in the last hour; try again later`);
  const { v: _v, ...body } = parsed;
  const request: RecoveryRequest = { ...body, received: new Date(now).toISOString(), attempts: 0, status: 'waiting', failures: [] };
  agent.store.write(RECOVERY_CATEGORIES.recoveryRequest, parsed.id, request);
  return request;
}

function findRequest(agent: EdgeAgent, id: string): RecoveryRequest {
  const request = agent.store.read(RECOVERY_CATEGORIES.recoveryRequest, id, RecoveryRequestSchema);
  if (request === undefined) throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', `no recovery request '${id.slice(0, 40)}': \`dkms trustee requests\``);
  if (request.status !== 'waiting') throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', `recovery request ${id} was already ${request.status}`);
  return request;
}

/** The owner a trustee means: by offer id, owner label or connection label. */
function findHeld(agent: EdgeAgent, ref: string): HeldShares {
  const all = heldShares(agent);
  const byId = all.find((h) => h.offer === ref || h.owner.policy === ref);
  if (byId !== undefined) return byId;
  const labels = new Map(connections(agent).map((c) => [c.id, c.label]));
  const byLabel = all.filter((h) => h.owner.label === ref || labels.get(h.connection) === ref);
  if (byLabel.length === 1) return byLabel[0] as HeldShares;
  if (byLabel.length > 1) throw new DkmsError('BAD_INPUT', `you hold shares for several owners called '${ref}': use the offer id from \`dkms trustee list\``);
  throw new DkmsError('TRUSTEE_NOT_FOUND', `you hold no shares for '${ref.slice(0, 80)}': \`dkms trustee list\``);
}

/**
 * Lets the owner's new device receive mail through the owner's cloud agent: the agency keeps
 * guest mail only for keys an agent of the owner, or a sponsor the owner named, allowed. The
 * owner named its trustees' connection keys when it set them up: this one signs with its own.
 */
async function allowNewDevice(agent: EdgeAgent, connection: ConnectionRecord, endpoint: { uri: string; routingKey: string }, deviceKey: string): Promise<void> {
  if (connection.mine === undefined) throw new DkmsError('CONNECTION_NOT_FOUND', 'this agent holds no keys of the connection with that owner');
  const cloudKx = didKeyPublicKey(endpoint.routingKey, 'x25519');
  if (cloudKx === undefined || !endpoint.uri.endsWith(INBOUND_PATH))
    throw new DkmsError('CONNECTION_NOT_FOUND', "the owner's endpoint is not an agency's cloud agent");
  const agency = new AgencyClient(endpoint.uri.slice(0, -INBOUND_PATH.length), agent.signingKey(connection.mine.sign), agent.options);
  try {
    await agency.allowGuest(encodePublicKey('x25519', cloudKx), deviceKey);
  } catch (e) {
    if (!isDkmsError(e, 'REQUEST_UNAUTHORIZED')) throw e;
    throw new DkmsError(
      'REQUEST_UNAUTHORIZED',
      "the owner's agency does not know this trustee: the owner set up its trustees with an older dkms, or changed them since; nothing was released",
    );
  }
}

const INBOUND_PATH = '/v1/inbound';

/**
 * Releases the shares held for `owner` to the new device of request `id`, once the challenge
 * the owner read out matches. A wrong answer is recorded; the third refuses the request.
 */
export async function approveRecoveryRequest(agent: EdgeAgent, id: string, owner: string, challenge: string, now = Date.now()): Promise<RecoveryRequest> {
  const request = findRequest(agent, id);
  const held = findHeld(agent, owner);
  if (Date.parse(request.expires) < now) throw new DkmsError('INVITATION_EXPIRED', 'the recovery request has expired: ask for a new one');
  const expected = Buffer.from(sha256(utf8(requestChallenge(request))));
  const given = Buffer.from(sha256(utf8(normalizeChallenge(challenge))));
  if (!timingSafeEqual(expected, given)) {
    const attempts = request.attempts + 1;
    const status = attempts >= MAX_CHALLENGE_ATTEMPTS ? 'refused' : 'waiting';
    agent.store.write(RECOVERY_CATEGORIES.recoveryRequest, id, {
      ...request,
      attempts,
      status,
      failures: [...request.failures, { at: new Date(now).toISOString(), owner: held.owner.label }],
    });
    const left = MAX_CHALLENGE_ATTEMPTS - attempts;
    throw new DkmsError(
      'CHALLENGE_WRONG',
      left > 0 ? `the challenge does not match (${left} attempt(s) left); the attempt is recorded` : 'the challenge does not match; the request is now refused',
    );
  }
  if (held.shares.length === 0) throw new DkmsError('TRUSTEE_NOT_FOUND', `you hold no share for '${held.owner.label}' yet`);
  const connection = findConnection(agent, held.connection);
  const endpoint = peerState(connection).endpoint;
  await allowNewDevice(agent, connection, endpoint, request.key);
  const message = newMessage(RELEASE, { request: id, owner: held.owner.label, shares: held.shares.map((s) => s.share) });
  await agent.sendToKey(
    message,
    agent.agreementKey(`trustee-${held.offer}-kx`),
    { key: request.key, kx: request.kx },
    { endpoint: endpoint.uri, routingKey: endpoint.routingKey },
  );
  const released: RecoveryRequest = { ...request, status: 'released', releasedFor: held.offer };
  agent.store.write(RECOVERY_CATEGORIES.recoveryRequest, id, released);
  return released;
}

export function denyRecoveryRequest(agent: EdgeAgent, id: string): RecoveryRequest {
  const request = findRequest(agent, id);
  const denied: RecoveryRequest = { ...request, status: 'denied' };
  agent.store.write(RECOVERY_CATEGORIES.recoveryRequest, id, denied);
  return denied;
}

export const requestHandlers: Handlers = { [RELEASE]: releaseHandler };
