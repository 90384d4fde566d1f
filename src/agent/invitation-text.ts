/** Out-of-band invitations as text (and QR codes): a scheme prefix, then base64url canonical JSON. */
import type { z } from 'zod';
import { canonicalBytes, fromBase64url, fromUtf8, toBase64url } from '../crypto/index.js';
import { DkmsError } from '../errors.js';

export function encodeInvitationText(scheme: string, invitation: unknown): string {
  return `${scheme}${toBase64url(canonicalBytes(invitation))}`;
}

/** Parses invitation text as pasted or scanned; INVITATION_MALFORMED, naming the `kind`, otherwise. */
export function decodeInvitationText<T>(text: string, scheme: string, schema: z.ZodType<T>, kind: string): T {
  const trimmed = text.trim();
  if (!trimmed.startsWith(scheme)) throw new DkmsError('INVITATION_MALFORMED', `a ${kind} invitation starts with '${scheme}'`);
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(fromBase64url(trimmed.slice(scheme.length), 'invitation')));
  } catch {
    throw new DkmsError('INVITATION_MALFORMED', `the ${kind} invitation is damaged (was it copied whole?)`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new DkmsError('INVITATION_MALFORMED', `the ${kind} invitation is not one dkms understands`);
  return parsed.data;
}
