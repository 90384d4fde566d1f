/**
 * Pairing another edge agent (docs/agents.md). The existing agent makes a one-time
 * invitation, shown as a QR code, and a short passcode shown beside it. The new agent answers
 * through the owner's cloud agent, authcrypted to the inviting agent, with its keys, a proof
 * that it holds its signing key, and the passcode. The inviting agent checks the invitation
 * (known, unused, unexpired, at most three wrong passcodes), the owner confirms, and it grants
 * the new agent on the ledger and sends it, encrypted, what it needs: the policy, the cloud
 * agent, and the link secret. The new agent believes the grant only once the ledger shows it.
 */
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { canonicalBytes, decodePublicKey, ed25519Verify, fromBase64url, randomBytes, randomId, readU32be, sha256, toBase64url, utf8 } from '../crypto/index.js';
import { DkmsError, ERROR_CODES, isDkmsError, type ErrorCode } from '../errors.js';
import { nextEvent, signEvent } from '../ledger/build.js';
import type { LedgerEvent } from '../ledger/events.js';
import type { PolicyRecord } from '../ledger/state.js';
import { requiredToGrant } from '../policy/authority.js';
import { flagNames, hasFlag } from '../policy/flags.js';
import { CATEGORIES, CloudSchema, type Profile } from './agent-store.js';
import { AgencyClient } from '../agency/agency-client.js';
import { messageId, newMessage, type Message } from '../didcomm/index.js';
import type { EdgeAgent, Handler, Handlers, ReceiveEntry } from './edge-agent.js';
import { encodeInvitationText, decodeInvitationText } from './invitation-text.js';
import { AGENTS_CHANGED } from './notifications.js';
import { DEFAULT_PAIRING_TTL_SECONDS } from './defaults.js';

export { DEFAULT_PAIRING_TTL_SECONDS } from './defaults.js';

export const PAIRING = 'urn:dkms:pairing/1.0';
export const PAIRING_RESPONSE = `${PAIRING}/response`;
export const PAIRING_WELCOME = `${PAIRING}/welcome`;
export const PAIRING_REFUSED = `${PAIRING}/refused`;
export const INVITATION_SCHEME = 'dkms-pair:';
export const MAX_PASSCODE_ATTEMPTS = 3;

const MultibaseKey = z.string().regex(/^z[1-9A-HJ-NP-Za-km-z]{40,60}$/);

export const InvitationSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  policy: z.string().max(100),
  agency: z.string().url().max(2048),
  ledger: z.string().url().max(2048),
  inviter: z.strictObject({ key: MultibaseKey, kx: MultibaseKey }),
  cloud: z.strictObject({ endpoint: z.string().url().max(2048), routingKey: z.string().max(300) }),
  expires: z
    .string()
    .max(40)
    .refine((v) => !Number.isNaN(Date.parse(v)), 'expires must be a date'),
});
export type Invitation = z.infer<typeof InvitationSchema>;

const PendingSchema = z.object({
  id: z.string(),
  digest: z.string(),
  flags: z.number().int(),
  label: z.string().max(64),
  expires: z.string(),
  attempts: z.number().int(),
  used: z.boolean(),
  candidate: z.object({ key: z.string(), kx: z.string(), label: z.string() }).optional(),
  /**
   * Set when the owner confirms: the grant exactly as signed (null when the ledger already
   * showed it) and the welcome's message id. A pairing that stops after the confirmation (the
   * ledger or the agency out of reach, the process killed) is finished from them by
   * `completePairing` called again: the same grant submitted again (EVENT_REPLAY means the
   * ledger took it), the welcome sent again under the same id, so the new device takes it once.
   */
  grant: z.unknown().optional(),
  welcome: z.string().optional(),
  /** Every step of a confirmed pairing is done. */
  done: z.boolean().optional(),
});
type Pending = z.infer<typeof PendingSchema>;
type Confirmed = Pending & { candidate: NonNullable<Pending['candidate']>; welcome: string };

/**
 * The new device's side: the invitation it answered, kept until a refusal (and after the
 * welcome), so that `agent accept` run again waits instead of answering twice.
 */
const AnsweredSchema = z.object({ invitation: z.string(), policy: z.string(), label: z.string() });
const ANSWERED = 'pairing-answered';

/** Races lost to another writer of the policy: the grant never landed, and is signed again over the new head. */
const RACES = new Set(['EVENT_STALE_SEQ', 'EVENT_BAD_PREV', 'EVENT_FORK']);

const ResponseBody = z.object({
  invitation: z.string().max(64),
  key: MultibaseKey,
  kx: MultibaseKey,
  label: z.string().min(1).max(64),
  passcode: z.string().max(32),
  pop: z.string().max(100),
});

const WelcomeBody = z.object({
  invitation: z.string().max(64),
  policy: z.string().max(100),
  did: z.string().max(100).optional(),
  ledger: z.string().url(),
  cloud: CloudSchema,
  linkSecret: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  flags: z.number().int(),
  inviterLabel: z.string().max(64),
  /** The name the owner chose for other owners to see, which every device of the owner uses. */
  name: z.string().max(64).optional(),
});

const RefusedBody = z.object({ invitation: z.string().max(64), code: z.string().max(64), reason: z.string().max(300) });

const passcodeDigest = (id: string, passcode: string) => toBase64url(sha256(utf8(`${id}\n${passcode.replace(/[^0-9]/g, '')}`)));
const popBytes = (id: string, key: string, kx: string) => canonicalBytes({ type: 'dkms-pairing-pop', invitation: id, key, kx });

/** Eight random digits, shown as 1234-5678. */
function newPasscode(): string {
  for (;;) {
    const n = readU32be(randomBytes(4), 0);
    if (n < 4_200_000_000) {
      const digits = String(n % 100_000_000).padStart(8, '0');
      return `${digits.slice(0, 4)}-${digits.slice(4)}`;
    }
  }
}

export function encodeInvitation(invitation: Invitation): string {
  return encodeInvitationText(INVITATION_SCHEME, invitation);
}

/** Parses invitation text (as scanned from the QR code or pasted); INVITATION_MALFORMED otherwise. */
export function parseInvitation(text: string): Invitation {
  return decodeInvitationText(text, INVITATION_SCHEME, InvitationSchema, 'pairing');
}

export interface CreatedInvitation {
  readonly invitation: Invitation;
  readonly text: string;
  readonly passcode: string;
}

/** Makes and remembers a one-time invitation for a new agent that will get `flags`. */
export function createInvitation(agent: EdgeAgent, options: { flags: number; label: string; ttlSeconds?: number }): CreatedInvitation {
  checkLabel(options.label);
  const profile = agent.profile;
  const cloud = agent.cloud();
  const id = randomId();
  const passcode = newPasscode();
  const expires = new Date(Date.now() + (options.ttlSeconds ?? DEFAULT_PAIRING_TTL_SECONDS) * 1000).toISOString();
  const invitation: Invitation = {
    v: 1,
    id,
    policy: profile.policy,
    agency: cloud.agency,
    ledger: profile.ledger,
    inviter: { key: profile.key, kx: profile.kx },
    cloud: { endpoint: cloud.endpoint, routingKey: cloud.routingKey },
    expires,
  };
  const pending: Pending = { id, digest: passcodeDigest(id, passcode), flags: options.flags, label: options.label, expires, attempts: 0, used: false };
  agent.store.write(CATEGORIES.invitation, id, pending);
  return { invitation, text: encodeInvitation(invitation), passcode };
}

/** A device's label as the other side will keep it (BAD_INPUT otherwise): checked before anything is written or sent. */
export function checkLabel(label: string): void {
  checkShortName(label, 'a device label');
}

/** BAD_INPUT unless `value` (`what`, for the message) is 1 to 64 characters, none of them control characters. */
function checkShortName(value: string, what: string): void {
  if (value.length === 0 || value.length > 64 || /\p{Cc}/u.test(value))
    throw new DkmsError('BAD_INPUT', `${what} is 1 to 64 characters, none of them control characters`);
}

/** A name for other owners to see (BAD_INPUT otherwise): 1 to 64 characters, none of them control characters. */
export function checkNameForPeers(name: string): void {
  checkShortName(name, 'a name');
}

/**
 * Chooses the name other owners see for this owner (in connection invitations and answers from
 * now on; devices paired from now on take it too). BAD_INPUT unless 1 to 64 characters, none of
 * them control characters.
 */
export function setNameForPeers(agent: EdgeAgent, name: string): Profile {
  checkNameForPeers(name);
  const profile: Profile = { ...agent.profile, name };
  agent.store.saveProfile(profile);
  return profile;
}

/**
 * Whether this agent can finish a pairing that grants `flags`, checked against the ledger before
 * an invitation is made: it holds the flags a grant of them needs, and the policy's rules let
 * it grant alone (EVENT_UNAUTHORIZED, EVENT_THRESHOLD). Otherwise the new device would answer
 * and the owner confirm only for the ledger to refuse the grant at the end.
 */
export async function checkPairing(agent: EdgeAgent, flags: number): Promise<void> {
  const record = await agent.policy();
  const me = record.policy.agents.find((a) => a.key === agent.profile.key);
  const required = requiredToGrant(undefined, { key: '', flags });
  if (me === undefined || !hasFlag(me.flags, required)) {
    throw new DkmsError(
      'EVENT_UNAUTHORIZED',
      `this agent may not grant ${flagNames(flags).join(',') || 'no flags'} (that takes ${flagNames(required).join(',')}): pair from an agent that holds it`,
    );
  }
  if (record.policy.rules.grant > 1) {
    throw new DkmsError(
      'EVENT_THRESHOLD',
      `your rules need ${record.policy.rules.grant} signatures to grant, and pairing grants with this agent's alone: set grant=1 to pair, or grant the new device with \`dkms policy grant --out\` and co-signers`,
    );
  }
}

/**
 * Sends to the device being paired through this owner's cloud agent: its key is not routed
 * there (yet), so this agent first allows it a guest mailbox, which the agency keeps only for
 * keys an agent of the owner allowed.
 */
async function sendToCandidate(agent: EdgeAgent, message: Message, to: { key: string; kx: string }, allow = true): Promise<void> {
  const cloud = agent.cloud();
  if (allow) await agent.agency(cloud).allowGuest(cloud.kx, to.key);
  try {
    await agent.sendToKey(message, agent.agreementKey(), to, cloud);
  } catch (e) {
    // Not allowed, the key has no mailbox: the answer goes nowhere, as it should.
    if (allow || !isDkmsError(e, 'NOT_FOUND')) throw e;
  }
}

/**
 * Refuses a pairing answer, telling the device why. Only an answer that names one of this
 * agent's invitations (whose id only the invitation's holder knows) gets the device a guest
 * mailbox for it: anyone else's "answers" must not open mailboxes at the owner's cloud agent.
 */
async function refuse(
  agent: EdgeAgent,
  invitation: string,
  to: { key: string; kx: string },
  code: ErrorCode,
  reason: string,
  knownInvitation = true,
): Promise<never> {
  await sendToCandidate(agent, newMessage(PAIRING_REFUSED, { invitation, code, reason }), to, knownInvitation);
  throw new DkmsError(code, reason);
}

/**
 * The inviting agent's side: checks an answer to one of its invitations. Only the invitation
 * that `dkms agent pair` is waiting on (`waitingFor`) can go on to the owner's confirmation; a
 * valid answer to any other is refused, as the owner is not there to confirm it.
 */
const responseHandler = (waitingFor?: string): Handler => ({
  from: 'any',
  async handle(agent, message, sender) {
    const parsed = ResponseBody.safeParse(message.body);
    if (!parsed.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed pairing response');
    const body = parsed.data;
    if (body.kx !== sender.kx) throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'the pairing response was not encrypted by the key it offers');
    const to = { key: body.key, kx: body.kx };
    if (!ed25519Verify(decodePublicKey(body.key, 'ed25519').publicKey, popBytes(body.invitation, body.key, body.kx), fromBase64url(body.pop, 'pop'))) {
      return refuse(agent, body.invitation, to, 'ENVELOPE_BAD_SIGNATURE', 'the new agent did not prove it holds its signing key', false);
    }
    const pending = agent.store.read(CATEGORIES.invitation, body.invitation, PendingSchema);
    if (pending === undefined) return refuse(agent, body.invitation, to, 'INVITATION_MALFORMED', 'this agent made no such invitation', false);
    // The same device answering again (its first answer's receipt was lost) is the same request, checked again.
    if (pending.used || (pending.candidate !== undefined && pending.candidate.key !== body.key))
      return refuse(agent, body.invitation, to, 'INVITATION_USED', 'the invitation was already used');
    if (Date.parse(pending.expires) < Date.now())
      return refuse(agent, body.invitation, to, 'INVITATION_EXPIRED', 'the invitation has expired: ask for a new one');
    const given = fromBase64url(passcodeDigest(pending.id, body.passcode));
    if (!timingSafeEqual(given, fromBase64url(pending.digest))) {
      const attempts = pending.attempts + 1;
      agent.store.write(CATEGORIES.invitation, pending.id, { ...pending, attempts, used: attempts >= MAX_PASSCODE_ATTEMPTS });
      return refuse(
        agent,
        pending.id,
        to,
        'PASSCODE_WRONG',
        attempts >= MAX_PASSCODE_ATTEMPTS ? 'wrong passcode; the invitation is now void' : 'wrong passcode',
      );
    }
    if (pending.id !== waitingFor) {
      agent.store.write(CATEGORIES.invitation, pending.id, { ...pending, used: true });
      return refuse(agent, pending.id, to, 'PAIRING_TIMEOUT', 'the inviting agent was no longer waiting: ask for a new invitation');
    }
    agent.store.write(CATEGORIES.invitation, pending.id, { ...pending, candidate: { key: body.key, kx: body.kx, label: body.label } });
    return {
      summary: `pairing request from '${body.label}' (${body.key}) awaiting confirmation`,
      data: { pairing: { invitation: pending.id, key: body.key, kx: body.kx, label: body.label, flags: flagNames(pending.flags) } },
    };
  },
});

/**
 * Completes a pairing the owner confirmed (or declined): grant on the ledger, the cloud agent
 * told to route to the new agent, the welcome (with the link secret) sent, the other agents told.
 * The confirmation, with the signed grant, is kept before anything is sent; a completion that
 * failed part way is finished by confirming it again (`unfinishedPairing` finds it), and the
 * new agent is never granted twice.
 */
export async function completePairing(agent: EdgeAgent, invitationId: string, confirmed: boolean): Promise<Paired> {
  const pending = agent.store.read(CATEGORIES.invitation, invitationId, PendingSchema);
  const candidate = pending?.candidate;
  if (confirmed && pending !== undefined && isUnfinished(pending)) return finishPairing(agent, pending);
  if (pending === undefined || candidate === undefined || pending.used)
    throw new DkmsError('INVITATION_MALFORMED', 'no pairing request is waiting for that invitation');
  if (!confirmed) {
    agent.store.write(CATEGORIES.invitation, pending.id, { ...pending, used: true });
    return refuse(agent, pending.id, candidate, 'PAIRING_DECLINED', 'the owner declined the pairing');
  }
  const record = await agent.policy();
  const grant = alreadyGranted(record, pending.flags, candidate) ? null : signGrant(agent, record, pending.flags, candidate);
  const confirmation: Confirmed = { ...pending, candidate, used: true, grant, welcome: messageId() };
  agent.store.write(CATEGORIES.invitation, pending.id, confirmation);
  return finishPairing(agent, confirmation);
}

export interface Paired {
  readonly key: string;
  readonly label: string;
  readonly flags: number;
}

const isUnfinished = (p: Pending): p is Confirmed => p.candidate !== undefined && p.welcome !== undefined && p.done !== true;

/** A pairing the owner confirmed that did not finish (the ledger or the agency failed it half way): `completePairing` finishes it. */
export function unfinishedPairing(agent: EdgeAgent): { readonly invitation: string; readonly label: string } | undefined {
  const unfinished = agent.store
    .list(CATEGORIES.invitation, PendingSchema)
    .map((p) => p.value)
    .find(isUnfinished);
  return unfinished === undefined ? undefined : { invitation: unfinished.id, label: unfinished.candidate.label };
}

const alreadyGranted = (record: PolicyRecord, flags: number, candidate: { key: string; kx: string }) =>
  record.policy.agents.some((a) => a.key === candidate.key && a.flags === flags && a.kx === candidate.kx);

const signGrant = (agent: EdgeAgent, record: PolicyRecord, flags: number, candidate: { key: string; kx: string }) =>
  signEvent(nextEvent('policy.grant', record.subject, record, { agent: { key: candidate.key, kx: candidate.kx, flags } }), [agent.signingKey()]);

/**
 * Submits the confirmed grant: EVENT_REPLAY means an earlier run got it onto the ledger. If
 * another change got in first, the grant never landed: it is signed again over the policy as
 * it is now (unless that already grants the same), kept, and submitted.
 */
async function grantOnce(agent: EdgeAgent, pending: Confirmed): Promise<void> {
  const grant = pending.grant as LedgerEvent | null | undefined;
  if (grant === null || grant === undefined) return;
  try {
    await agent.ledger.submit(grant);
  } catch (e) {
    if (isDkmsError(e, 'EVENT_REPLAY')) return;
    if (!isDkmsError(e) || !RACES.has(e.code)) throw e;
    const record = await agent.policy();
    if (alreadyGranted(record, pending.flags, pending.candidate)) return;
    const again = signGrant(agent, record, pending.flags, pending.candidate);
    agent.store.write(CATEGORIES.invitation, pending.id, { ...pending, grant: again });
    await agent.ledger.submit(again);
  }
}

/**
 * A grant the ledger refuses for good (this agent lost the flags it takes, the rules now need
 * more signatures…) can never finish: the pairing is dropped, the new device told why, so that
 * the next `dkms agent pair` starts afresh instead of trying it again.
 */
async function grantOrDrop(agent: EdgeAgent, pending: Confirmed): Promise<void> {
  try {
    await grantOnce(agent, pending);
  } catch (e) {
    if (!isDkmsError(e) || !e.code.startsWith('EVENT_')) throw e;
    const { grant: _grant, welcome: _welcome, ...rest } = pending;
    agent.store.write(CATEGORIES.invitation, pending.id, rest satisfies Pending);
    await refuse(agent, pending.id, pending.candidate, e.code, `the ledger refused the grant: ${e.message}`.slice(0, 300));
  }
}

/** The steps after the confirmation, each safe to run again: grant, sync, welcome, the other agents told. */
async function finishPairing(agent: EdgeAgent, pending: Confirmed): Promise<Paired> {
  const { candidate } = pending;
  await grantOrDrop(agent, pending);
  const cloud = agent.cloud();
  await agent.agency(cloud).sync(cloud.id);
  const profile: Profile = agent.profile;
  const linkSecret = agent.store.linkSecret();
  if (linkSecret === undefined) throw new DkmsError('AGENT_NOT_INITIALIZED', 'this agent has no link secret to share');
  const welcome = newMessage(
    PAIRING_WELCOME,
    {
      invitation: pending.id,
      policy: profile.policy,
      ...(profile.did === undefined ? {} : { did: profile.did }),
      ledger: profile.ledger,
      cloud,
      linkSecret: toBase64url(linkSecret),
      flags: pending.flags,
      inviterLabel: profile.label,
      ...(profile.name === undefined ? {} : { name: profile.name }),
    },
    { id: pending.welcome },
  );
  await sendToCandidate(agent, welcome, candidate);
  await agent.refreshAgents();
  agent.labelAgent(candidate.key, candidate.label);
  await agent.notifyAgents(newMessage(AGENTS_CHANGED, { policy: profile.policy, added: [candidate.key] }), (a) => a.key !== candidate.key);
  const { grant: _grant, welcome: _welcome, ...rest } = pending;
  agent.store.write(CATEGORIES.invitation, pending.id, { ...rest, done: true } satisfies Pending);
  return { key: candidate.key, label: candidate.label, flags: pending.flags };
}

/** Answers to invitations when no pairing is being waited on: all are refused. */
export const inviterHandlers: Handlers = { [PAIRING_RESPONSE]: responseHandler() };

/** While `dkms agent pair` waits on `invitationId`. */
export function waitingHandlers(invitationId: string): Handlers {
  return { [PAIRING_RESPONSE]: responseHandler(invitationId) };
}

/** The new agent's side: answers an invitation, then waits for the welcome or a refusal. */
export async function answerInvitation(
  agent: EdgeAgent,
  invitation: Invitation,
  passcode: string,
  label: string,
  keys: { key: string; kx: string },
): Promise<void> {
  if (Date.parse(invitation.expires) < Date.now()) throw new DkmsError('INVITATION_EXPIRED', 'the invitation has expired: ask for a new one');
  const pop = toBase64url(agent.signingKey().sign(popBytes(invitation.id, keys.key, keys.kx)));
  const response = newMessage(PAIRING_RESPONSE, { invitation: invitation.id, key: keys.key, kx: keys.kx, label, passcode, pop });
  await agent.sendToKey(response, agent.agreementKey(), invitation.inviter, invitation.cloud);
  agent.store.write(CATEGORIES.agent, ANSWERED, { invitation: invitation.id, policy: invitation.policy, label } satisfies z.infer<typeof AnsweredSchema>);
}

/**
 * The label this device answered `invitation` with, if it did and heard no refusal: then
 * `agent accept` run again (after a timeout, say, while the inviting agent finished late) only
 * waits for the welcome, which waits at the agency; it does not answer a second time.
 */
export function answeredWith(agent: EdgeAgent, invitation: Invitation): string | undefined {
  const answered = agent.store.read(CATEGORIES.agent, ANSWERED, AnsweredSchema);
  return answered?.invitation === invitation.id && answered.policy === invitation.policy ? answered.label : undefined;
}

function invitee(invitation: Invitation, label: string): Handlers {
  const fromInviter = (kx: string) => {
    if (kx !== invitation.inviter.kx) throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'only the inviting agent may answer a pairing');
  };
  return {
    [PAIRING_WELCOME]: {
      from: 'any',
      async handle(agent, message: Message, sender) {
        fromInviter(sender.kx);
        const parsed = WelcomeBody.safeParse(message.body);
        if (!parsed.success || parsed.data.invitation !== invitation.id || parsed.data.policy !== invitation.policy)
          throw new DkmsError('MESSAGE_MALFORMED', 'malformed pairing welcome');
        const body = parsed.data;
        const own = agent.wallet.getKey('agent-sign').publicKey;
        const record = (await agent.ledger.resolvePolicy(body.policy as never)).record;
        const granted = record.policy.agents.find((a) => a.key === own);
        if (granted === undefined) throw new DkmsError('PAIRING_DECLINED', "the ledger does not show this agent in the owner's policy");
        // Written together, and the agents taken from the policy just read: a device that has a
        // profile is paired whole (and `agent accept` run again says so).
        agent.wallet.transaction(() => {
          agent.store.saveLinkSecret(fromBase64url(body.linkSecret, 'link secret'));
          agent.store.saveProfile({
            v: 1,
            label,
            ...(body.name === undefined ? {} : { name: body.name }),
            policy: body.policy,
            ...(body.did === undefined ? {} : { did: body.did }),
            ledger: body.ledger,
            key: own,
            kx: agent.wallet.getKey('agent-kx').publicKey,
            cloud: body.cloud,
            created: new Date().toISOString(),
          });
        });
        await agent.refreshAgents(record);
        agent.labelAgent(own, label);
        agent.labelAgent(invitation.inviter.key, body.inviterLabel);
        return { summary: `paired with ${body.policy} as '${label}'`, data: { paired: { policy: body.policy, flags: flagNames(granted.flags) } } };
      },
    },
    [PAIRING_REFUSED]: {
      from: 'any',
      async handle(_agent, message, sender) {
        fromInviter(sender.kx);
        const parsed = RefusedBody.safeParse(message.body);
        if (!parsed.success || parsed.data.invitation !== invitation.id) throw new DkmsError('MESSAGE_MALFORMED', 'malformed pairing refusal');
        const code = Object.hasOwn(ERROR_CODES, parsed.data.code) ? (parsed.data.code as ErrorCode) : 'PAIRING_DECLINED';
        return { summary: parsed.data.reason, data: { refused: { code, reason: parsed.data.reason } } };
      },
    },
  };
}

/**
 * Waits for the inviter's answer, polling the new agent's (guest) mailbox at the owner's agency
 * until `deadline`. Resolves when paired; throws the refusal's code, or PAIRING_TIMEOUT.
 */
export async function awaitWelcome(agent: EdgeAgent, invitation: Invitation, label: string, deadline: number): Promise<ReceiveEntry> {
  const agency = new AgencyClient(invitation.agency, agent.signingKey(), agent.options);
  const handlers = invitee(invitation, label);
  while (Date.now() < deadline) {
    const wait = Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000)));
    for (const entry of await agent.receiveAsGuest(handlers, { waitSeconds: wait, agency })) {
      const refused = entry.data?.['refused'] as { code: ErrorCode; reason: string } | undefined;
      if (refused !== undefined) {
        // Refused: a new answer (the right passcode, or another invitation) is needed, not a wait.
        agent.store.remove(CATEGORIES.agent, ANSWERED);
        throw new DkmsError(refused.code, `the inviting agent refused: ${refused.reason}`);
      }
      if (entry.data?.['paired'] !== undefined) return entry;
    }
  }
  throw new DkmsError('PAIRING_TIMEOUT', 'no answer from the inviting agent: is `dkms agent pair` still running there, and was the passcode right?');
}
