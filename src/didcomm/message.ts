/**
 * DIDComm v2 plaintext messages (section 2.3): the JSON every envelope carries. Headers we do
 * not know are kept (the spec allows extensions) but sizes are bounded. What the spec requires
 * is checked: `typ`, when present, is the plaintext media type; an attachment's data gives
 * access to its content (base64, json or links), and links come with the content's hash.
 */
import { z } from 'zod';
import { canonicalBytes, fromUtf8, randomId } from '../crypto/index.js';
import { DkmsError } from '../errors.js';
import { PLAIN_TYP } from './jwe.js';

const Uri = z.string().min(1).max(512);
const Time = z
  .number()
  .int()
  .min(0)
  .max(2 ** 40);

export const AttachmentSchema = z.object({
  id: z.string().max(128).optional(),
  description: z.string().max(1024).optional(),
  media_type: z.string().max(128).optional(),
  format: z.string().max(256).optional(),
  data: z
    .object({
      json: z.unknown().optional(),
      base64: z.string().max(4_000_000).optional(),
      jws: z.unknown().optional(),
      hash: z.string().min(1).max(256).optional(),
      links: z.array(z.string().min(1).max(2048)).min(1).max(16).optional(),
    })
    .refine(
      (data) => data.json !== undefined || data.base64 !== undefined || data.links !== undefined,
      'attachment data carries no content (base64, json or links)',
    )
    .refine((data) => data.links === undefined || data.hash !== undefined, { message: 'attachment links need the hash of the content', path: ['hash'] }),
});

export const MessageSchema = z.looseObject({
  id: z.string().min(1).max(128),
  type: Uri,
  typ: z.literal(PLAIN_TYP, { error: `typ must be '${PLAIN_TYP}'` }).optional(),
  from: Uri.optional(),
  to: z.array(Uri).max(100).optional(),
  thid: z.string().max(128).optional(),
  pthid: z.string().max(128).optional(),
  created_time: Time.optional(),
  expires_time: Time.optional(),
  body: z.record(z.string(), z.unknown()),
  attachments: z.array(AttachmentSchema).max(64).optional(),
});
export type Message = z.infer<typeof MessageSchema>;
export type Attachment = z.infer<typeof AttachmentSchema>;

/** A new message id: 128 random bits. */
export function messageId(): string {
  return randomId();
}

/** Builds a message with a fresh id and the current time. */
export function newMessage(type: string, body: Record<string, unknown>, extra: Partial<Omit<Message, 'type' | 'body'>> = {}): Message {
  return { id: messageId(), typ: PLAIN_TYP, type, created_time: Math.floor(Date.now() / 1000), body, ...extra };
}

/** Parses message bytes; MESSAGE_MALFORMED with the first problem otherwise. */
export function parseMessage(bytes: Uint8Array): Message {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    throw new DkmsError('MESSAGE_MALFORMED', 'the message is not JSON');
  }
  const parsed = MessageSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new DkmsError('MESSAGE_MALFORMED', `bad message: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim());
  }
  return parsed.data;
}

export function messageBytes(message: Message): Uint8Array {
  return canonicalBytes(message);
}
