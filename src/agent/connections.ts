/**
 * Connections: pairwise relationships between two owners (docs/agents.md). Each side has
 * its own identifier and key-event log (connection-log.ts) listing one key pair per agent of
 * that owner; both sides keep both logs. A connection starts with an out-of-band invitation
 * carrying the inviter's inception event; the invitee answers with its own. Each agent of an
 * owner holds its own pairwise keys: the agent that made the connection shares it with the
 * owner's other agents, which join by sending their keys, added to the log by a rotation.
 * Rotations and the final `conn.disable` are sent to the peer, which verifies them against the
 * keys it already knew; an event that does not verify is refused and the connection flagged.
 */
import { z } from 'zod';
import { randomBytes, randomId, toBase58btc, toBase64url, type Signer } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';
import { CATEGORIES, nameForPeers } from './agent-store.js';
import { decodeInvitationText, encodeInvitationText } from './invitation-text.js';
import { newMessage, type AgreementKey, type Message } from '../didcomm/index.js';
import type { EdgeAgent, Handler, Handlers, Sender } from './edge-agent.js';
import {
  applyConnEvent,
  connEventId,
  ConnEventSchema,
  replayConnLog,
  signConnEvent,
  type ConnEvent,
  type ConnKey,
  type ConnState,
  type Endpoint,
} from './connection-log.js';
import { DEFAULT_CONNECTION_TTL_SECONDS } from './defaults.js';

export { DEFAULT_CONNECTION_TTL_SECONDS } from './defaults.js';

export const CONNECTION = 'urn:dkms:connection/1.0';
export const CONNECTION_RESPONSE = `${CONNECTION}/response`;
export const CONNECTION_EVENTS = `${CONNECTION}/events`;
export const CONNECTION_SHARE = `${CONNECTION}/share`;
export const CONNECTION_JOIN = `${CONNECTION}/join`;
export const BASIC_MESSAGE = 'https://didcomm.org/basicmessage/2.0/message';
export const CONNECTION_SCHEME = 'dkms-connect:';

const KeyNames = z.object({ sign: z.string(), kx: z.string() });
const Member = z.object({ agent: z.string(), key: z.string() });
const Flag = z.object({ time: z.string(), code: z.string(), detail: z.string().max(300) });

export const ConnectionRecordSchema = z.object({
  id: z.string(),
  peer: z.string(),
  label: z.string().max(64),
  created: z.string(),
  state: z.enum(['active', 'deleted', 'deleted-by-peer']),
  myLog: z.array(ConnEventSchema),
  peerLog: z.array(ConnEventSchema),
  members: z.array(Member),
  mine: KeyNames.optional(),
  flags: z.array(Flag),
  /**
   * A rotation of this agent's keys, signed and kept before it is sent: the next rotation of
   * the connection sends this one again, as it is, and only then records it done. The peer
   * takes a repeated event once, while a second, different event at the same seq would look to
   * it like a fork; and the new keys made for it are the ones used, not left behind.
   */
  rotating: z.object({ event: ConnEventSchema, mine: KeyNames, members: z.array(Member) }).optional(),
});
export type ConnectionRecord = z.infer<typeof ConnectionRecordSchema>;

const ConnInvitationSchema = z.strictObject({
  v: z.literal(1),
  id: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  label: z.string().max(64),
  inception: ConnEventSchema,
  expires: z
    .string()
    .max(40)
    .refine((v) => !Number.isNaN(Date.parse(v)), 'expires must be a date'),
});
type ConnInvitation = z.infer<typeof ConnInvitationSchema>;
const PendingSchema = z.object({ id: z.string(), label: z.string(), inception: ConnEventSchema, mine: KeyNames, expires: z.string(), used: z.boolean() });

const invalid = (message: string) => new DkmsError('CONNECTION_EVENT_INVALID', message);

// ---- keys and records -------------------------------------------------------------------

/** A fresh pairwise key pair for one connection, in this agent's wallet. */
function newPairwiseKeys(agent: EdgeAgent): { names: z.infer<typeof KeyNames>; key: ConnKey } {
  const base = `conn-${toBase58btc(randomBytes(9))}`;
  const sign = agent.wallet.createKey(`${base}-sign`, 'ed25519');
  const kx = agent.wallet.createKey(`${base}-kx`, 'x25519');
  return { names: { sign: sign.name, kx: kx.name }, key: { key: sign.publicKey, kx: kx.publicKey } };
}

function signer(agent: EdgeAgent, names: z.infer<typeof KeyNames>): Signer {
  return agent.wallet.signer(names.sign);
}

function myEndpoint(agent: EdgeAgent): Endpoint {
  const cloud = agent.cloud();
  return { uri: cloud.endpoint, routingKey: cloud.routingKey, did: cloud.did };
}

export function connections(agent: EdgeAgent): ConnectionRecord[] {
  return agent.store.list(CATEGORIES.connection, ConnectionRecordSchema).map((r) => r.value);
}

/** A connection by its id (either side's), or by its label when that is unique. */
export function findConnection(agent: EdgeAgent, ref: string): ConnectionRecord {
  const all = connections(agent);
  const byId = all.find((c) => c.id === ref || c.peer === ref);
  if (byId !== undefined) return byId;
  const byLabel = all.filter((c) => c.label === ref);
  if (byLabel.length === 1) return byLabel[0] as ConnectionRecord;
  if (byLabel.length > 1) throw new DkmsError('BAD_INPUT', `several connections are labelled '${ref}': use the connection id`);
  throw new DkmsError('CONNECTION_NOT_FOUND', `no connection '${ref.slice(0, 80)}'`);
}

function save(agent: EdgeAgent, record: ConnectionRecord): void {
  agent.store.write(CATEGORIES.connection, record.id, record);
}

export const myState = (record: ConnectionRecord): ConnState => replayConnLog(record.myLog);
export const peerState = (record: ConnectionRecord): ConnState => replayConnLog(record.peerLog);

function flag(agent: EdgeAgent, record: ConnectionRecord, code: string, detail: string): void {
  save(agent, { ...record, flags: [...record.flags, { time: new Date().toISOString(), code, detail: detail.slice(0, 300) }] });
}

// ---- invitations --------------------------------------------------------------------------

export function encodeConnectionInvitation(invitation: ConnInvitation): string {
  return encodeInvitationText(CONNECTION_SCHEME, invitation);
}

export function parseConnectionInvitation(text: string): ConnInvitation {
  const invitation = decodeInvitationText(text, CONNECTION_SCHEME, ConnInvitationSchema, 'connection');
  try {
    applyConnEvent(undefined, invitation.inception);
  } catch {
    throw new DkmsError('INVITATION_MALFORMED', 'the connection invitation carries an invalid inception event');
  }
  return invitation;
}

/** A one-time invitation to connect, carrying this side's new identifier and keys. */
export function inviteConnection(agent: EdgeAgent, label: string, ttlSeconds = DEFAULT_CONNECTION_TTL_SECONDS): { text: string; invitation: ConnInvitation } {
  const { names, key } = newPairwiseKeys(agent);
  const inception = signConnEvent(
    { v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: toBase64url(randomBytes(16)), keys: [key], endpoint: myEndpoint(agent) },
    [signer(agent, names)],
  );
  const invitation: ConnInvitation = {
    v: 1,
    id: randomId(),
    label: nameForPeers(agent.profile),
    inception,
    expires: new Date(Date.now() + ttlSeconds * 1000).toISOString(),
  };
  agent.store.write(CATEGORIES.connectionInvitation, invitation.id, {
    id: invitation.id,
    label,
    inception,
    mine: names,
    expires: invitation.expires,
    used: false,
  });
  return { text: encodeConnectionInvitation(invitation), invitation };
}

/** Accepts another owner's invitation: our own identifier and keys, sent back through their cloud agent. */
export async function acceptConnection(agent: EdgeAgent, text: string, label?: string): Promise<ConnectionRecord> {
  const invitation = parseConnectionInvitation(text);
  if (Date.parse(invitation.expires) < Date.now()) throw new DkmsError('INVITATION_EXPIRED', 'the connection invitation has expired: ask for a new one');
  const peer = applyConnEvent(undefined, invitation.inception);
  if (connections(agent).some((c) => c.peer === peer.id)) throw new DkmsError('INVITATION_USED', 'you already accepted this invitation');
  const { names, key } = newPairwiseKeys(agent);
  const inception = signConnEvent(
    { v: 1, type: 'conn.inception', seq: 0, prev: null, nonce: toBase64url(randomBytes(16)), keys: [key], endpoint: myEndpoint(agent) },
    [signer(agent, names)],
  );
  const mine = applyConnEvent(undefined, inception);
  const record: ConnectionRecord = {
    id: mine.id,
    peer: peer.id,
    label: label ?? invitation.label,
    created: new Date().toISOString(),
    state: 'active',
    myLog: [inception],
    peerLog: [invitation.inception],
    members: [{ agent: agent.profile.key, key: key.key }],
    mine: names,
    flags: [],
  };
  await agent.sendToPeer(
    newMessage(CONNECTION_RESPONSE, { invitation: invitation.id, inception, label: nameForPeers(agent.profile) }),
    agent.agreementKey(names.kx),
    peer.keys.map((k) => k.kx),
    peer.endpoint,
  );
  save(agent, record);
  await shareConnection(agent, record);
  return record;
}

// ---- sending ------------------------------------------------------------------------------

export function myKey(agent: EdgeAgent, record: ConnectionRecord): AgreementKey {
  if (record.mine === undefined) throw new DkmsError('CONNECTION_NOT_FOUND', 'this agent has not joined the connection yet (its keys are on the way)');
  return agent.agreementKey(record.mine.kx);
}

export function active(record: ConnectionRecord): void {
  if (record.state !== 'active')
    throw new DkmsError('CONNECTION_DELETED', `the connection '${record.label}' was deleted${record.state === 'deleted-by-peer' ? ' by the other side' : ''}`);
}

export async function sendToConnection(agent: EdgeAgent, record: ConnectionRecord, message: Message): Promise<void> {
  const peer = peerState(record);
  await agent.sendToPeer(
    message,
    myKey(agent, record),
    peer.keys.map((k) => k.kx),
    peer.endpoint,
  );
}

/**
 * Sends a text message on a connection, and keeps it in this agent's wallet once the peer's
 * agency accepted it (`sentMessages`; other agents of the owner do not get a copy).
 */
export async function sendText(agent: EdgeAgent, ref: string, content: string): Promise<Message> {
  const record = findConnection(agent, ref);
  active(record);
  const message = newMessage(BASIC_MESSAGE, { content });
  await sendToConnection(agent, record, message);
  keepText(agent, record, message, content, 'out');
  return message;
}

/** Appends events to our side's log, tells the peer, and tells our other agents. */
async function appendMine(
  agent: EdgeAgent,
  record: ConnectionRecord,
  events: readonly ConnEvent[],
  changes: Partial<ConnectionRecord> = {},
): Promise<ConnectionRecord> {
  let state = myState(record);
  for (const event of events) state = applyConnEvent(state, event);
  const next = { ...record, ...changes, myLog: [...record.myLog, ...events] };
  await agent.sendToPeer(
    newMessage(CONNECTION_EVENTS, { id: record.id, events }),
    myKey(agent, record),
    peerState(record).keys.map((k) => k.kx),
    peerState(record).endpoint,
  );
  save(agent, next);
  await shareConnection(agent, next);
  return next;
}

/** Replaces this agent's pairwise keys (and drops keys of agents no longer the owner's). `ref`: an id or label, or the record itself. */
export async function rotateConnection(agent: EdgeAgent, ref: string | ConnectionRecord, dropAgents: readonly string[] = []): Promise<ConnectionRecord> {
  const record = typeof ref === 'string' ? findConnection(agent, ref) : ref;
  active(record);
  const old = record.mine;
  if (old === undefined) throw new DkmsError('CONNECTION_NOT_FOUND', 'this agent holds no keys of that connection');
  const { rotating: begun, ...rest } = record;
  const rotating = begun ?? beginRotation(agent, record, old, dropAgents);
  // The peer learns of the rotation through our old key, which it still trusts.
  return appendMine(agent, rest, [rotating.event], { members: rotating.members, mine: rotating.mine });
}

/** A rotation of this agent's keys in `record`, signed with its `old` ones and kept in the record before anything is sent. */
function beginRotation(
  agent: EdgeAgent,
  record: ConnectionRecord,
  old: z.infer<typeof KeyNames>,
  dropAgents: readonly string[],
): NonNullable<ConnectionRecord['rotating']> {
  const current = myState(record);
  const { names, key } = newPairwiseKeys(agent);
  const oldKey = agent.wallet.getKey(old.sign).publicKey;
  const dropped = new Set(record.members.filter((m) => dropAgents.includes(m.agent)).map((m) => m.key));
  const keys = [...current.keys.filter((k) => k.key !== oldKey && !dropped.has(k.key)), key];
  const event = signConnEvent({ v: 1, type: 'conn.rotate', id: record.id, seq: current.seq + 1, prev: current.head, keys, endpoint: myEndpoint(agent) }, [
    signer(agent, old),
  ]);
  const members = [...record.members.filter((m) => m.key !== oldKey && !dropped.has(m.key)), { agent: agent.profile.key, key: key.key }];
  const rotating = { event, mine: names, members };
  save(agent, { ...record, rotating });
  return rotating;
}

/** Ends a connection for good: a final disable event, sent to the peer. */
export async function deleteConnection(agent: EdgeAgent, ref: string): Promise<ConnectionRecord> {
  const record = findConnection(agent, ref);
  if (record.state === 'deleted') throw new DkmsError('CONNECTION_DELETED', `the connection '${record.label}' is already deleted`);
  const current = myState(record);
  const mine = record.mine;
  if (mine === undefined) throw new DkmsError('CONNECTION_NOT_FOUND', 'this agent holds no keys of that connection');
  const event = signConnEvent({ v: 1, type: 'conn.disable', id: record.id, seq: current.seq + 1, prev: current.head }, [signer(agent, mine)]);
  if (record.state === 'active') return appendMine(agent, record, [event], { state: 'deleted' });
  const next = { ...record, state: 'deleted' as const, myLog: [...record.myLog, event] };
  save(agent, next);
  return next;
}

/** Tells the owner's other agents about a connection (they join with their own keys). */
async function shareConnection(agent: EdgeAgent, record: ConnectionRecord): Promise<void> {
  const { mine: _mine, flags: _flags, rotating: _rotating, ...shared } = record;
  await agent.notifyAgents(newMessage(CONNECTION_SHARE, { connection: shared }), (a) => a.kx !== undefined && a.key !== agent.profile.cloud?.key);
}

// ---- receiving ----------------------------------------------------------------------------

/** The connection whose peer currently holds `kx`. */
export function byPeerKey(agent: EdgeAgent, kx: string): ConnectionRecord {
  for (const record of connections(agent)) {
    if (peerState(record).keys.some((k) => k.kx === kx)) return record;
  }
  throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'the sender is not the current key of any connection');
}

/** Extends `log` with `events`, skipping ones it already has; throws on the first that does not verify. */
function extend(log: readonly ConnEvent[], events: readonly unknown[]): ConnEvent[] {
  let state = replayConnLog(log);
  const out = [...log];
  for (const raw of events) {
    const parsed = ConnEventSchema.safeParse(raw);
    if (!parsed.success) throw invalid('malformed connection event');
    const event = parsed.data;
    const known = out[event.seq];
    if (known !== undefined && event.seq <= state.seq) {
      if (connEventId(known) !== connEventId(event)) throw invalid(`a different event at seq ${event.seq} (a fork)`);
      continue;
    }
    state = applyConnEvent(state, event);
    out.push(event);
  }
  return out;
}

const ResponseBody = z.object({ invitation: z.string().max(64), inception: ConnEventSchema, label: z.string().max(64) });
const EventsBody = z.object({ id: z.string().max(80), events: z.array(z.unknown()).min(1).max(64) });
const ShareBody = z.object({ connection: ConnectionRecordSchema.omit({ mine: true, flags: true, rotating: true }) });
const JoinBody = z.object({ id: z.string().max(80), key: z.object({ key: z.string(), kx: z.string() }) });

const responseHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const parsed = ResponseBody.safeParse(message.body);
    if (!parsed.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed connection response');
    const body = parsed.data;
    const pending = agent.store.read(CATEGORIES.connectionInvitation, body.invitation, PendingSchema);
    if (pending === undefined) throw new DkmsError('INVITATION_MALFORMED', 'this agent made no such connection invitation');
    if (pending.used) throw new DkmsError('INVITATION_USED', 'the connection invitation was already used');
    if (Date.parse(pending.expires) < Date.now()) throw new DkmsError('INVITATION_EXPIRED', 'the connection invitation has expired');
    const peer = applyConnEvent(undefined, body.inception);
    if (!peer.keys.some((k) => k.kx === sender.kx))
      throw new DkmsError('ENVELOPE_UNKNOWN_SENDER', 'the response was not encrypted by a key of the identifier it offers');
    const mine = applyConnEvent(undefined, pending.inception);
    const record: ConnectionRecord = {
      id: mine.id,
      peer: peer.id,
      label: pending.label,
      created: new Date().toISOString(),
      state: 'active',
      myLog: [pending.inception],
      peerLog: [body.inception],
      members: [{ agent: agent.profile.key, key: agent.wallet.getKey(pending.mine.sign).publicKey }],
      mine: pending.mine,
      flags: [],
    };
    agent.store.write(CATEGORIES.connectionInvitation, pending.id, { ...pending, used: true });
    save(agent, record);
    await shareConnection(agent, record);
    return { summary: `connected with '${pending.label}' (${body.label})`, data: { connection: { id: record.id, peer: record.peer, label: record.label } } };
  },
};

/** Rotation and disable events from a peer, verified against the keys it had before. */
const eventsHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender: Sender) {
    const parsed = EventsBody.safeParse(message.body);
    if (!parsed.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed connection events');
    const record = byPeerKey(agent, sender.kx);
    if (record.peer !== parsed.data.id) throw new DkmsError('CONNECTION_EVENT_INVALID', "the events are for another identifier than the sender's");
    let peerLog: ConnEvent[];
    try {
      peerLog = extend(record.peerLog, parsed.data.events);
    } catch (e) {
      if (isDkmsError(e)) flag(agent, record, e.code, e.message);
      throw e;
    }
    const disabled = replayConnLog(peerLog).disabled;
    const next: ConnectionRecord = { ...record, peerLog, ...(disabled && record.state === 'active' ? { state: 'deleted-by-peer' as const } : {}) };
    save(agent, next);
    await shareConnection(agent, next);
    return {
      summary: disabled ? `'${record.label}' deleted the connection` : `'${record.label}' rotated its keys`,
      data: { connectionEvents: { id: record.id, seq: replayConnLog(peerLog).seq, disabled } },
    };
  },
};

const textHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const record = byPeerKey(agent, sender.kx);
    active(record);
    const content = message.body['content'];
    if (typeof content !== 'string' || content.length > 65_536) throw new DkmsError('MESSAGE_MALFORMED', 'a basic message needs a text `content`');
    const entry = keepText(agent, record, message, content, 'in');
    return { summary: `${record.label}: ${content}`, data: { message: entry } };
  },
};

/** Another agent of the owner shared a connection (new, or with a longer log): join or update. */
const shareHandler: Handler = {
  from: 'agent',
  async handle(agent, message, sender) {
    const parsed = ShareBody.safeParse(message.body);
    if (!parsed.success) throw new DkmsError('MESSAGE_MALFORMED', 'malformed connection share');
    const shared = parsed.data.connection;
    const myLog = replayConnLog(shared.myLog);
    replayConnLog(shared.peerLog);
    if (myLog.id !== shared.id) throw invalid('the shared log is not the connection it names');
    const have = connections(agent).find((c) => c.id === shared.id);
    if (have !== undefined) {
      const next = {
        ...have,
        myLog: extend(have.myLog, shared.myLog.slice(have.myLog.length)),
        peerLog: extend(have.peerLog, shared.peerLog.slice(have.peerLog.length)),
        members: shared.members,
        state: shared.state === 'active' ? have.state : shared.state,
      };
      save(agent, next);
      return { summary: `connection '${have.label}' updated`, data: { shared: shared.id } };
    }
    if (shared.state !== 'active') return { summary: 'a deleted connection was shared; nothing to join' };
    const { names, key } = newPairwiseKeys(agent);
    save(agent, { ...shared, mine: names, flags: [] });
    if (sender.agent !== undefined) await agent.sendToAgents(newMessage(CONNECTION_JOIN, { id: shared.id, key }), [sender.agent]);
    return { summary: `joining connection '${shared.label}'`, data: { shared: shared.id } };
  },
};

/** Another agent of the owner asks to be added to a connection this agent holds keys of. */
const joinHandler: Handler = {
  from: 'agent',
  async handle(agent, message, sender) {
    const parsed = JoinBody.safeParse(message.body);
    if (!parsed.success || sender.agent === undefined) throw new DkmsError('MESSAGE_MALFORMED', 'malformed connection join');
    const record = findConnection(agent, parsed.data.id);
    active(record);
    const mine = record.mine;
    if (mine === undefined) throw new DkmsError('CONNECTION_NOT_FOUND', 'this agent holds no keys of that connection');
    const current = myState(record);
    const joining = sender.agent.key;
    const members = [...record.members.filter((m) => m.agent !== joining), { agent: joining, key: parsed.data.key.key }];
    const keys = [...current.keys.filter((k) => !record.members.some((m) => m.agent === joining && m.key === k.key)), parsed.data.key];
    const event = signConnEvent({ v: 1, type: 'conn.rotate', id: record.id, seq: current.seq + 1, prev: current.head, keys }, [signer(agent, mine)]);
    await appendMine(agent, record, [event], { members });
    return { summary: `agent ${joining} joined connection '${record.label}'`, data: { joined: record.id } };
  },
};

export const connectionHandlers: Handlers = {
  [CONNECTION_RESPONSE]: responseHandler,
  [CONNECTION_EVENTS]: eventsHandler,
  [CONNECTION_SHARE]: shareHandler,
  [CONNECTION_JOIN]: joinHandler,
  [BASIC_MESSAGE]: textHandler,
};

/** After an agent is revoked: every connection drops its keys, and this agent rotates its own. */
export async function dropAgentFromConnections(agent: EdgeAgent, revoked: string): Promise<string[]> {
  const rotated: string[] = [];
  for (const record of connections(agent)) {
    if (record.state !== 'active' || record.mine === undefined) continue;
    if (!record.members.some((m) => m.agent === revoked)) continue;
    await rotateConnection(agent, record, [revoked]);
    rotated.push(record.id);
  }
  return rotated;
}

/**
 * A text message kept in the wallet: `direction` 'in' for one received (`received`: when it
 * arrived), 'out' for one this agent sent (`received`: when the peer's agency accepted it);
 * `sent` is the message's created_time (seconds).
 */
export interface TextEntry {
  readonly id: string;
  readonly connection: string;
  readonly label: string;
  readonly content: string;
  readonly sent: number;
  readonly received: string;
  readonly direction: 'in' | 'out';
}

/** Stores a text message received on, or sent on, `record`'s connection; returns what was stored. */
function keepText(agent: EdgeAgent, record: ConnectionRecord, message: Message, content: string, direction: TextEntry['direction']): TextEntry {
  const entry: TextEntry = {
    id: message.id,
    connection: record.id,
    label: record.label,
    content,
    sent: message.created_time ?? 0,
    received: new Date().toISOString(),
    direction,
  };
  agent.store.write(CATEGORIES.inbox, textEntryName(entry), entry, { connection: record.id });
  return entry;
}

/**
 * The wallet name of a text entry: by direction, so that a peer, who sees the ids of the messages
 * sent to it and may give its own messages any id, cannot overwrite what this agent sent.
 */
function textEntryName(entry: TextEntry): string {
  return `${entry.direction}:${entry.id}`;
}

// Entries written before sent messages were kept have no direction: they were all received.
const TextEntrySchema = z.object({
  id: z.string(),
  connection: z.string(),
  label: z.string(),
  content: z.string(),
  sent: z.number(),
  received: z.string(),
  direction: z.enum(['in', 'out']).default('in'),
});

function textEntries(agent: EdgeAgent, direction: TextEntry['direction']): TextEntry[] {
  return agent.store
    .list(CATEGORIES.inbox, TextEntrySchema)
    .map((e) => e.value)
    .filter((e) => e.direction === direction)
    .sort((a, b) => a.received.localeCompare(b.received));
}

/** The text messages this agent received, oldest first. */
export function inbox(agent: EdgeAgent): TextEntry[] {
  return textEntries(agent, 'in');
}

/** The text messages this agent sent (`sendText`), oldest first. */
export function sentMessages(agent: EdgeAgent): TextEntry[] {
  return textEntries(agent, 'out');
}
