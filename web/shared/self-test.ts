/**
 * Before a page verifies anything, it checks that this browser's WebCrypto can: SHA-256 on the
 * FIPS 180-2 "abc" vector, Ed25519 on RFC 8032's first test vector (valid, and refused with one
 * bit flipped). A browser without `crypto.subtle` (a page opened over plain HTTP at another
 * address than loopback is not a secure context) or without Ed25519 gets the reason, never a
 * page that looks verified.
 */
import { ed25519Verify, fromHex, settle, sha256, toHex, utf8 } from '../../src/crypto/index.js';

const ABC_SHA256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const RFC8032_KEY = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
const RFC8032_SIG = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';

export type SelfTest = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export async function checkWebCrypto(): Promise<SelfTest> {
  if (typeof crypto === 'undefined' || crypto.subtle === undefined) {
    return { ok: false, reason: 'this page has no WebCrypto (crypto.subtle): open it at 127.0.0.1 or localhost, or over HTTPS' };
  }
  try {
    if (toHex(await settle(() => sha256(utf8('abc')))) !== ABC_SHA256) return { ok: false, reason: "this browser's SHA-256 gives a wrong answer" };
    const key = fromHex(RFC8032_KEY);
    const signature = fromHex(RFC8032_SIG);
    if (!(await settle(() => ed25519Verify(key, new Uint8Array(0), signature))))
      return { ok: false, reason: "this browser's Ed25519 refuses a valid signature" };
    signature[0] = (signature[0] ?? 0) ^ 1;
    if (await settle(() => ed25519Verify(key, new Uint8Array(0), signature))) return { ok: false, reason: "this browser's Ed25519 accepts a forged signature" };
  } catch (e) {
    return { ok: false, reason: `this browser cannot verify Ed25519 signatures with WebCrypto (${e instanceof Error ? e.message : String(e)})` };
  }
  return { ok: true };
}
