/**
 * DIDComm Messaging v2 envelopes (`dkms/didcomm`): anoncrypt, authcrypt, signed messages,
 * forward routing. Pure functions over keys: an {@link AgreementKey} may be a wallet key (it
 * only has to agree) or one held in memory ({@link memoryAgreementKey}).
 *
 * @example
 * ```ts
 * import { authcrypt, decrypt, messageBytes, newMessage, parseMessage } from 'dkms/didcomm';
 *
 * const envelope = authcrypt(messageBytes(newMessage('https://didcomm.org/basicmessage/2.0/message', { content: 'hi' })), alice, [bob]);
 * const opened = decrypt(envelope, [bobKey]);
 * const message = parseMessage(opened.plaintext);
 * ```
 * @module dkms/didcomm
 */
export * from './keys.js';
export * from './jwe.js';
export * from './ecdh.js';
export * from './encrypt.js';
export * from './decrypt.js';
export * from './jws.js';
export * from './message.js';
export * from './forward.js';
export type { ContentEncryption } from '../crypto/index.js';
