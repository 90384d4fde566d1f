/**
 * Keys in a PKCS#11 token, against Debian's SoftHSM2 with a token of the test's own (its store in
 * a temporary directory, named by SOFTHSM2_CONF): an Ed25519 key made there signs inside it, and
 * node:crypto and the ledger accept its signatures; its private value can be neither read nor
 * wrapped out, as the token itself says when asked directly; a wrong PIN, an unknown token, a
 * module that is not there and an unknown key each give their own code.
 */
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { describe, expect, it } from 'vitest';
import { ed25519Verify, encodePublicKey, x25519Generate } from '../../src/crypto/index.js';
import { ALL_FLAGS } from '../../src/policy/flags.js';
import { Pkcs11Token } from '../../src/hsm/pkcs11.js';
import { nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { PolicyAddress } from '../../src/ledger/events.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { policyRecord } from '../helpers/events.js';
import { commitment, nodeSigner, openNode } from '../helpers/ledger.js';
import { SOFTHSM_MODULE, TOKEN_PIN, softhsmSuite } from '../helpers/softhsm.js';
import { suiteDirs } from '../helpers/tmp.js';

const MODULE = SOFTHSM_MODULE;
const TOKEN = 'dkms-test';
const PIN = TOKEN_PIN;

describe('keys in a PKCS#11 token (SoftHSM2)', () => {
  const dirs = suiteDirs('dkms-hsm-');

  softhsmSuite(dirs, [TOKEN]);

  const open = () => Pkcs11Token.open({ module: MODULE, token: TOKEN, pin: PIN });

  it('makes an Ed25519 key that signs inside the token; node:crypto verifies, and a later session finds it by label', async () => {
    const token = await open();
    let multikey: string;
    try {
      const signer = token.createEd25519('admin');
      multikey = signer.multikey;
      expect(multikey).toBe(encodePublicKey('ed25519', signer.publicKey));
      const message = new TextEncoder().encode('signed in the token');
      const signature = signer.sign(message);
      expect(signature).toHaveLength(64);
      expect(ed25519Verify(signer.publicKey, message, signature)).toBe(true);
      expect(ed25519Verify(signer.publicKey, new TextEncoder().encode('another message'), signature)).toBe(false);
      expect(
        (
          await expectCodeAsync(
            Promise.resolve().then(() => token.createEd25519('admin')),
            'KEY_EXISTS',
          )
        ).message,
      ).toContain("'admin'");
    } finally {
      token.close();
    }
    const later = await open();
    try {
      const again = later.signer('admin');
      expect(again.multikey).toBe(multikey);
      expect(later.keys().map((k) => k.label)).toEqual(['admin']);
      await expectCodeAsync(
        Promise.resolve().then(() => later.signer('nobody')),
        'HSM_KEY_NOT_FOUND',
      );
    } finally {
      later.close();
    }
  });

  it('keeps the private value in the token: reading it and wrapping it out are refused by the token itself', async () => {
    (await open()).close();
    const p11 = new pkcs11js.PKCS11();
    p11.load(MODULE);
    p11.C_Initialize();
    try {
      const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === TOKEN);
      expect(slot).toBeDefined();
      const session = p11.C_OpenSession(slot as Buffer, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      p11.C_Login(session, pkcs11js.CKU_USER, PIN);
      p11.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: 'admin' },
      ]);
      const [key] = p11.C_FindObjects(session, 2);
      p11.C_FindObjectsFinal(session);
      expect(key).toBeDefined();
      const flags = p11.C_GetAttributeValue(session, key as Buffer, [
        { type: pkcs11js.CKA_SENSITIVE },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      ]);
      expect(flags.map((f) => (f.value as Buffer)[0])).toEqual([1, 0, 1]);
      expect(() => p11.C_GetAttributeValue(session, key as Buffer, [{ type: pkcs11js.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
      const kek = p11.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
        { type: pkcs11js.CKA_TOKEN, value: false },
        { type: pkcs11js.CKA_WRAP, value: true },
      ]);
      expect(() => p11.C_WrapKey(session, { mechanism: pkcs11js.CKM_AES_KEY_WRAP_PAD }, kek, key as Buffer, Buffer.alloc(256))).toThrow(
        /CKR_KEY_UNEXTRACTABLE/,
      );
      p11.C_Logout(session);
      p11.C_CloseSession(session);
    } finally {
      p11.C_Finalize();
      p11.close();
    }
  });

  it("signs ledger events the ledger accepts: a policy whose first agent's key and recovery key never left the token, and its recovery", async () => {
    const token = await open();
    try {
      const admin = token.createEd25519('ledger-admin');
      const recovery = token.createEd25519('ledger-recovery');
      const node = await openNode(dirs(), nodeSigner());
      try {
        const kx = encodePublicKey('x25519', x25519Generate().publicKey);
        const event = signEvent(policyCreate([{ key: admin.multikey, kx, flags: ALL_FLAGS }], commitment([recovery])), [admin]);
        const receipt = await node.submit(event);
        expect(receipt.subject).toMatch(/^policy:/);
        expect(event.sigs[0]?.kid).toBe(admin.multikey);
        // The recovery key, also in the token, recovers the policy: a new commitment, the ledger accepts it.
        const next = token.createEd25519('ledger-recovery-2');
        const policy = receipt.subject as PolicyAddress;
        const recovered = await node.submit(
          signEvent(nextEvent('policy.recover', policy, await policyRecord(node, policy), { next: commitment([next]) }), [recovery]),
        );
        expect(recovered.seq).toBe(1);
        expect((await policyRecord(node, policy)).policy.recovery.digests).toEqual(commitment([next]).digests);
      } finally {
        await node.close();
      }
    } finally {
      token.close();
    }
  });

  it('seals with a non-extractable AES key in the token (AES-256-GCM): only that key and the same associated data open it', async () => {
    const token = await open();
    try {
      token.createAesKey('wallet-wrap');
      expect(token.hasAesKey('wallet-wrap')).toBe(true);
      expect(token.hasAesKey('other')).toBe(false);
      await expectCodeAsync(
        Promise.resolve().then(() => token.createAesKey('wallet-wrap')),
        'KEY_EXISTS',
      );
      token.createAesKey('another');
      const secret = new Uint8Array(32).fill(7);
      const aad = new TextEncoder().encode('wallet 1');
      const sealed = token.encrypt('wallet-wrap', secret, aad);
      expect(sealed).toHaveLength(12 + 32 + 16);
      // A fresh nonce each time.
      expect(Buffer.from(token.encrypt('wallet-wrap', secret, aad)).equals(Buffer.from(sealed))).toBe(false);
      expect(token.decrypt('wallet-wrap', sealed, aad)).toEqual(secret);
      const flipped = sealed.slice();
      flipped[20] = (flipped[20] as number) ^ 1;
      for (const [label, value, data] of [
        ['wallet-wrap', flipped, aad],
        ['wallet-wrap', sealed, new TextEncoder().encode('wallet 2')],
        ['another', sealed, aad],
      ] as const) {
        await expectCodeAsync(
          Promise.resolve().then(() => token.decrypt(label, value, data)),
          'HSM_FAILED',
        );
      }
      await expectCodeAsync(
        Promise.resolve().then(() => token.decrypt('missing', sealed, aad)),
        'HSM_KEY_NOT_FOUND',
      );
    } finally {
      token.close();
    }
  });

  it('keeps a counter in the token that a later session reads back', async () => {
    const token = await open();
    try {
      expect(token.counter('generation:w1')).toBeUndefined();
      token.setCounter('generation:w1', 1n);
      token.setCounter('generation:w1', 5n);
      token.setCounter('generation:w2', 2n ** 40n);
    } finally {
      token.close();
    }
    const later = await open();
    try {
      expect(later.counter('generation:w1')).toBe(5n);
      expect(later.counter('generation:w2')).toBe(2n ** 40n);
    } finally {
      later.close();
    }
  });

  it('opens a token twice in one process (the module is initialised once): closing one leaves the other signing', async () => {
    const first = await open();
    const second = await open();
    try {
      // Joining a token already logged in still needs its PIN.
      await expectCodeAsync(Pkcs11Token.open({ module: MODULE, token: TOKEN, pin: 'not-the-pin' }), 'HSM_PIN_WRONG');
      const signer = first.createEd25519('twice');
      first.close();
      const message = new TextEncoder().encode('after the other closed');
      expect(ed25519Verify(signer.publicKey, message, second.signer('twice').sign(message))).toBe(true);
      await expectCodeAsync(
        Promise.resolve().then(() => signer.sign(message)),
        'HSM_FAILED',
      );
    } finally {
      first.close();
      second.close();
    }
    // Everything closed: the module was finalised, and opens again.
    (await open()).close();
  });

  it('refuses a wrong PIN, an unknown token and a missing module, each with its code', async () => {
    await expectCodeAsync(Pkcs11Token.open({ module: MODULE, token: TOKEN, pin: 'not-the-pin' }), 'HSM_PIN_WRONG');
    await expectCodeAsync(Pkcs11Token.open({ module: MODULE, token: 'no-such-token', pin: PIN }), 'HSM_TOKEN_NOT_FOUND');
    await expectCodeAsync(Pkcs11Token.open({ module: join(dirs(), 'missing.so'), token: TOKEN, pin: PIN }), 'HSM_UNAVAILABLE');
    // The right PIN still works: the wrong one did not lock the token.
    (await open()).close();
  });
});
