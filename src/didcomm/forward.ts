/**
 * Routing Protocol 2.0 forward messages: an envelope for the final recipient, wrapped in an
 * anoncrypted `forward` to a mediator (the owner's cloud agent), whose body names `next`.
 */
import { DkmsError } from '../errors.js';
import { anoncrypt } from './encrypt.js';
import { parseJwe, type Jwe } from './jwe.js';
import type { PublicKeyRef } from './keys.js';
import { messageBytes, newMessage, type Message } from './message.js';

export const FORWARD_TYPE = 'https://didcomm.org/routing/2.0/forward';

/** The forward message itself (before encryption to the mediator). */
export function forwardMessage(inner: Jwe, next: string, expiresInSeconds = 7 * 24 * 3600): Message {
  const now = Math.floor(Date.now() / 1000);
  return newMessage(
    FORWARD_TYPE,
    { next },
    { expires_time: now + expiresInSeconds, attachments: [{ media_type: 'application/didcomm-encrypted+json', data: { json: inner } }] },
  );
}

/** Wraps `inner` for `next` in a forward encrypted to the mediator's key(s). */
export function wrapForward(inner: Jwe, next: string, mediator: readonly PublicKeyRef[]): Jwe {
  return anoncrypt(messageBytes(forwardMessage(inner, next)), mediator);
}

/** What a mediator needs from a decrypted forward: where it goes and the envelope to pass on. */
export function readForward(message: Message): { next: string; payload: Jwe } {
  if (message.type !== FORWARD_TYPE) throw new DkmsError('MESSAGE_MALFORMED', `expected a forward message, got '${message.type.slice(0, 100)}'`);
  const next = message.body['next'];
  if (typeof next !== 'string' || next.length === 0 || next.length > 512) throw new DkmsError('MESSAGE_MALFORMED', 'forward message has no usable body.next');
  const attachments = message.attachments ?? [];
  if (attachments.length !== 1) throw new DkmsError('MESSAGE_MALFORMED', 'a forward message carries exactly one attachment');
  const json = attachments[0]?.data.json;
  if (json === undefined) throw new DkmsError('MESSAGE_MALFORMED', 'the forwarded envelope must be attached as JSON');
  return { next, payload: parseJwe(json) };
}
