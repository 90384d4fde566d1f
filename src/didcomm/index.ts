/** DIDComm Messaging v2 envelopes: anoncrypt, authcrypt, signed messages, forward routing. */
export * from './keys.js';
export * from './jwe.js';
export * from './ecdh.js';
export * from './encrypt.js';
export * from './decrypt.js';
export * from './jws.js';
export * from './message.js';
export * from './forward.js';
