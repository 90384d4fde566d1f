/**
 * Social recovery's trustee protocol (docs/recovery.md), over connections:
 *
 *   owner                                   trustee (another owner)
 *   trustee-offer {offer, owner}        →   kept until `trustee approve|deny`
 *                                       ←   trustee-answer {offer, accept, shareKey}
 *   share {offer, share}  (to shareKey) →   kept as prepared
 *                                       ←   share-ack {offer, set}
 *   commit {offer, set}                 →   the set becomes active, older sets are deleted
 *   trustee-end {offer}                 →   every share of that owner is deleted
 *
 * A change of trustees or threshold is two-phase: shares of the new secret are prepared with
 * every new trustee, and only once all have acknowledged does the owner commit (the ledger
 * commitment first, then the commit messages). Until then the trustees keep the old set active,
 * so a failure at any point leaves the old set working.
 */
import { z } from 'zod';
import { randomBytes, toBase58btc } from '../crypto/index.js';
import { DkmsError, isDkmsError } from '../errors.js';

import { active, byPeerKey, findConnection, myKey, peerState, sendToConnection } from '../agent/connections.js';
import { newMessage } from '../didcomm/index.js';
import type { EdgeAgent, Handler, Handlers } from '../agent/edge-agent.js';
import { parseShare, splitRecoverySecret, type RecoveryShare } from './shares.js';
import {
  HeldSharesSchema,
  LabelSchema,
  TrusteeOfferSchema,
  TrusteeSchema,
  readPrepared,
  trustees,
  type HeldShares,
  type PreparedChange,
  type Trustee,
} from './state.js';
import { RECOVERY_CATEGORIES } from './categories.js';

export const RECOVERY_PROTOCOL = 'urn:dkms:recovery/1.0';
export const TRUSTEE_OFFER = `${RECOVERY_PROTOCOL}/trustee-offer`;
export const TRUSTEE_ANSWER = `${RECOVERY_PROTOCOL}/trustee-answer`;
export const SHARE = `${RECOVERY_PROTOCOL}/share`;
export const SHARE_ACK = `${RECOVERY_PROTOCOL}/share-ack`;
export const SET_COMMIT = `${RECOVERY_PROTOCOL}/commit`;
export const TRUSTEE_END = `${RECOVERY_PROTOCOL}/trustee-end`;

const newId = () => toBase58btc(randomBytes(12));
const malformed = (what: string) => new DkmsError('MESSAGE_MALFORMED', `malformed ${what}`);

// ---- owner side ---------------------------------------------------------------------------

/** A trustee by id, connection id or label. */
export function findTrustee(agent: EdgeAgent, ref: string): Trustee {
  const all = trustees(agent);
  const found = all.find((t) => t.id === ref || t.connection === ref) ?? all.filter((t) => t.label === ref).at(0);
  if (found === undefined) throw new DkmsError('TRUSTEE_NOT_FOUND', `no trustee '${ref.slice(0, 80)}': \`dkms trustee list\``);
  return found;
}

/**
 * Offers the peers of connections to become trustees. Every one is checked before the first
 * offer is sent (an unknown or ended connection, one named twice, a peer who is a trustee
 * already), and each offer is recorded before it is sent: an offer not answered yet is sent
 * again under its id (the trustee's agent keeps the first), so that an invite that failed part
 * way is finished by running it again.
 */
export async function inviteTrustees(agent: EdgeAgent, refs: readonly string[]): Promise<Trustee[]> {
  const offers = refs.map((ref) => {
    const record = findConnection(agent, ref);
    active(record);
    const existing = trustees(agent).find((t) => t.connection === record.id && t.status !== 'declined');
    if (existing !== undefined && existing.status !== 'offered')
      throw new DkmsError('BAD_INPUT', `'${record.label}' is already a trustee (${existing.status})`);
    return {
      record,
      trustee: existing ?? { id: newId(), connection: record.id, label: record.label, status: 'offered' as const, offered: new Date().toISOString() },
    };
  });
  if (new Set(offers.map((o) => o.record.id)).size !== offers.length) throw new DkmsError('BAD_INPUT', 'a connection is named twice');
  const { label, policy } = agent.profile;
  for (const { record, trustee } of offers) {
    agent.store.write(RECOVERY_CATEGORIES.trustee, trustee.id, trustee);
    await sendToConnection(agent, record, newMessage(TRUSTEE_OFFER, { offer: trustee.id, owner: { label, policy } }));
  }
  return offers.map((o) => o.trustee);
}

/** Offers the peer of one connection to become a trustee (see `inviteTrustees`). */
export async function inviteTrustee(agent: EdgeAgent, connectionRef: string): Promise<Trustee> {
  return (await inviteTrustees(agent, [connectionRef]))[0] as Trustee;
}

/**
 * Phase one of a change: splits the new secret among `chosen` (accepted trustees) and sends
 * each its signed share, encrypted to the trustee's share key. Returns the prepared change, kept
 * in the wallet until commit or abort.
 */
export async function prepareShares(
  agent: EdgeAgent,
  secret: Uint8Array,
  options: { chosen: readonly Trustee[]; threshold: number; insist: boolean; next: PreparedChange['next']; delay: number; offline: boolean },
): Promise<PreparedChange> {
  for (const t of options.chosen) {
    if (t.status !== 'accepted' || t.shareKey === undefined) throw new DkmsError('TRUSTEE_NOT_FOUND', `'${t.label}' has not accepted to be a trustee yet`);
  }
  const { label, policy } = agent.profile;
  const signing = agent.signingKey();
  const shares = await splitRecoverySecret(secret, {
    threshold: options.threshold,
    trustees: options.chosen.map((t) => ({ id: t.id, label: t.label })),
    owner: { policy, label },
    signer: signing,
    insist: options.insist,
  });
  const set = (shares[0] as RecoveryShare).set;
  const prepared: PreparedChange = {
    v: 1,
    set,
    threshold: options.threshold,
    trustees: options.chosen.map((t) => ({ id: t.id, acked: false })),
    next: options.next,
    delay: options.delay,
    offline: options.offline,
    created: new Date().toISOString(),
  };
  // Saved before sending: an acknowledgement may come back before the last share goes out.
  agent.store.write(RECOVERY_CATEGORIES.recovery, 'prepared', prepared);
  try {
    for (const [i, trustee] of options.chosen.entries()) {
      const record = findConnection(agent, trustee.connection);
      await agent.sendToPeer(
        newMessage(SHARE, { offer: trustee.id, share: shares[i] }),
        myKey(agent, record),
        [trustee.shareKey as string],
        peerState(record).endpoint,
      );
    }
  } catch (e) {
    // A trustee that got no share never acknowledges one: the change could never be committed,
    // and R is not kept to send it again. Rolled back; the next setup prepares a new one.
    if (readPrepared(agent)?.set === set) agent.store.remove(RECOVERY_CATEGORIES.recovery, 'prepared');
    if (!isDkmsError(e)) throw e;
    throw new DkmsError(e.code, `${e.message}: nothing was changed, run the setup again (a paper shown for this attempt is void)`);
  }
  return prepared;
}

/** Who of a prepared change has not acknowledged its share yet. */
export function missingAcks(agent: EdgeAgent, prepared: PreparedChange): Trustee[] {
  return prepared.trustees.filter((t) => !t.acked).map((t) => findTrustee(agent, t.id));
}

/**
 * After the ledger commits the new secret: tells the new trustees to activate their shares and
 * the old trustees left out to delete theirs. Safe to run again.
 */
export async function finishTrusteeChange(agent: EdgeAgent, prepared: PreparedChange, previous: readonly string[]): Promise<void> {
  const chosen = new Set(prepared.trustees.map((t) => t.id));
  // Trustees already ended on an earlier run are gone: skipped, so that this can run again.
  const known = (id: string) => trustees(agent).find((t) => t.id === id);
  for (const id of chosen) {
    const trustee = known(id);
    if (trustee !== undefined)
      await sendToConnection(agent, findConnection(agent, trustee.connection), newMessage(SET_COMMIT, { offer: id, set: prepared.set }));
  }
  for (const id of previous.filter((p) => !chosen.has(p))) {
    const trustee = known(id);
    if (trustee !== undefined) await endTrustee(agent, trustee);
  }
}

/** Tells a trustee it holds nothing for us any more, and forgets it. */
export async function endTrustee(agent: EdgeAgent, trustee: Trustee): Promise<void> {
  const record = findConnection(agent, trustee.connection);
  if (record.state === 'active') await sendToConnection(agent, record, newMessage(TRUSTEE_END, { offer: trustee.id }));
  agent.store.remove(RECOVERY_CATEGORIES.trustee, trustee.id);
}

const AnswerBody = z.object({ offer: z.string().max(40), accept: z.boolean(), shareKey: z.string().max(64).optional() });
const AckBody = z.object({ offer: z.string().max(40), set: z.string().max(40) });

/** The trustee record an incoming message from a connection speaks about. */
function trusteeFrom(agent: EdgeAgent, offer: string, senderKx: string): Trustee {
  const record = byPeerKey(agent, senderKx);
  const trustee = agent.store.read(RECOVERY_CATEGORIES.trustee, offer, TrusteeSchema);
  if (trustee === undefined || trustee.connection !== record.id) throw new DkmsError('TRUSTEE_NOT_FOUND', 'no such trustee offer to this connection');
  return trustee;
}

const answerHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = AnswerBody.safeParse(message.body);
    if (!body.success || (body.data.accept && body.data.shareKey === undefined)) throw malformed('trustee answer');
    const trustee = trusteeFrom(agent, body.data.offer, sender.kx);
    const next: Trustee = body.data.accept ? { ...trustee, status: 'accepted', shareKey: body.data.shareKey } : { ...trustee, status: 'declined' };
    agent.store.write(RECOVERY_CATEGORIES.trustee, trustee.id, next);
    return {
      summary: `'${trustee.label}' ${body.data.accept ? 'accepted' : 'declined'} to be a trustee`,
      data: { trustee: { id: trustee.id, status: next.status } },
    };
  },
};

const ackHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = AckBody.safeParse(message.body);
    if (!body.success) throw malformed('share acknowledgement');
    const trustee = trusteeFrom(agent, body.data.offer, sender.kx);
    const prepared = readPrepared(agent);
    if (prepared === undefined || prepared.set !== body.data.set) return { summary: `'${trustee.label}' acknowledged a share of a change no longer prepared` };
    const next = { ...prepared, trustees: prepared.trustees.map((t) => (t.id === trustee.id ? { ...t, acked: true } : t)) };
    agent.store.write(RECOVERY_CATEGORIES.recovery, 'prepared', next);
    return { summary: `'${trustee.label}' holds its share`, data: { acked: { trustee: trustee.id, set: prepared.set } } };
  },
};

// ---- trustee side -------------------------------------------------------------------------

const OfferBody = z.object({ offer: z.string().max(40), owner: z.object({ label: LabelSchema, policy: z.string().max(100) }) });
const ShareBody = z.object({ offer: z.string().max(40), share: z.unknown() });
const OfferRef = z.object({ offer: z.string().max(40), set: z.string().max(40).optional() });

export function heldShares(agent: EdgeAgent): HeldShares[] {
  return agent.store.list(RECOVERY_CATEGORIES.heldShare, HeldSharesSchema).map((h) => h.value);
}

export function trusteeOffers(agent: EdgeAgent) {
  return agent.store.list(RECOVERY_CATEGORIES.trusteeOffer, TrusteeOfferSchema).map((o) => o.value);
}

/** Answers an offer: on accept, a share-encryption key for this owner is made in this wallet. */
export async function answerOffer(agent: EdgeAgent, offerId: string, accept: boolean): Promise<{ offer: string; accepted: boolean }> {
  const offer = agent.store.read(RECOVERY_CATEGORIES.trusteeOffer, offerId, TrusteeOfferSchema);
  if (offer === undefined) throw new DkmsError('TRUSTEE_NOT_FOUND', `no trustee offer '${offerId.slice(0, 40)}': \`dkms trustee requests\``);
  if (offer.status !== 'waiting') throw new DkmsError('BAD_INPUT', `that offer was already ${offer.status}`);
  const record = findConnection(agent, offer.connection);
  active(record);
  let shareKey: string | undefined;
  if (accept) {
    // Made once: an answer that failed to send is simply sent again with the same key.
    const name = `trustee-${offer.id}-kx`;
    shareKey = (agent.wallet.listKeys('x25519').find((k) => k.name === name) ?? agent.wallet.createKey(name, 'x25519')).publicKey;
    const held: HeldShares = { offer: offer.id, connection: offer.connection, owner: offer.owner, shareKey, shares: [] };
    agent.store.write(RECOVERY_CATEGORIES.heldShare, offer.id, held);
  }
  await sendToConnection(agent, record, newMessage(TRUSTEE_ANSWER, { offer: offer.id, accept, ...(shareKey === undefined ? {} : { shareKey }) }));
  agent.store.write(RECOVERY_CATEGORIES.trusteeOffer, offer.id, { ...offer, status: accept ? 'accepted' : 'declined' });
  return { offer: offer.id, accepted: accept };
}

/** The held shares an incoming message from the owner's connection speaks about. */
function heldFrom(agent: EdgeAgent, offer: string, senderKx: string): HeldShares {
  const record = byPeerKey(agent, senderKx);
  const held = agent.store.read(RECOVERY_CATEGORIES.heldShare, offer, HeldSharesSchema);
  if (held === undefined || held.connection !== record.id) throw new DkmsError('TRUSTEE_NOT_FOUND', 'this agent holds no shares for that offer');
  return held;
}

const offerHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = OfferBody.safeParse(message.body);
    if (!body.success) throw malformed('trustee offer');
    const record = byPeerKey(agent, sender.kx);
    if (agent.store.has(RECOVERY_CATEGORIES.trusteeOffer, body.data.offer)) return { summary: 'a trustee offer already received' };
    agent.store.write(RECOVERY_CATEGORIES.trusteeOffer, body.data.offer, {
      id: body.data.offer,
      connection: record.id,
      owner: body.data.owner,
      received: new Date().toISOString(),
      status: 'waiting',
    });
    return {
      summary: `'${record.label}' asks you to be a recovery trustee: \`dkms trustee approve ${body.data.offer}\` or \`dkms trustee deny ${body.data.offer}\``,
      data: { offer: body.data.offer },
    };
  },
};

const shareHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = ShareBody.safeParse(message.body);
    if (!body.success) throw malformed('share');
    const held = heldFrom(agent, body.data.offer, sender.kx);
    const share = parseShare(body.data.share);
    if (share.hint.owner.policy !== held.owner.policy)
      throw new DkmsError('SHARE_FOREIGN', 'the share names another owner than the one this trustee agreed to');
    const others = held.shares.filter((s) => s.set !== share.set);
    agent.store.write(RECOVERY_CATEGORIES.heldShare, held.offer, {
      ...held,
      shares: [...others, { set: share.set, state: 'prepared', share, received: new Date().toISOString() }],
    });
    await sendToConnection(agent, findConnection(agent, held.connection), newMessage(SHARE_ACK, { offer: held.offer, set: share.set }));
    return { summary: `holding a recovery share for '${held.owner.label}' (${share.threshold} of ${share.total}; prepared)` };
  },
};

const commitHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = OfferRef.safeParse(message.body);
    if (!body.success || body.data.set === undefined) throw malformed('share commit');
    const held = heldFrom(agent, body.data.offer, sender.kx);
    const kept = held.shares.filter((s) => s.set === body.data.set);
    if (kept.length === 0) throw new DkmsError('TRUSTEE_NOT_FOUND', 'no share of that set is held here');
    agent.store.write(RECOVERY_CATEGORIES.heldShare, held.offer, { ...held, shares: kept.map((s) => ({ ...s, state: 'active' as const })) });
    return { summary: `the recovery share for '${held.owner.label}' is now active; older ones were deleted` };
  },
};

const endHandler: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const body = OfferRef.safeParse(message.body);
    if (!body.success) throw malformed('trustee end');
    const held = heldFrom(agent, body.data.offer, sender.kx);
    agent.store.remove(RECOVERY_CATEGORIES.heldShare, held.offer);
    agent.wallet.deleteKey(`trustee-${held.offer}-kx`);
    return { summary: `'${held.owner.label}' no longer needs you as a trustee; its shares were deleted` };
  },
};

export const trusteeHandlers: Handlers = {
  [TRUSTEE_OFFER]: offerHandler,
  [TRUSTEE_ANSWER]: answerHandler,
  [SHARE]: shareHandler,
  [SHARE_ACK]: ackHandler,
  [SET_COMMIT]: commitHandler,
  [TRUSTEE_END]: endHandler,
};
