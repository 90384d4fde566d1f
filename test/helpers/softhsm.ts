/**
 * A SoftHSM2 token of the test's own: its store in a temporary directory named by SOFTHSM2_CONF
 * (set for this process and inherited by the children it starts), initialised with
 * softhsm2-util. Several tokens may live in one store.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';
export const TOKEN_PIN = '4321-test';
export const SO_PIN = 'so-pin-5678';

/** Sets up a token store for the suite; call it where the suite is declared. Returns the config path, for children. */
export function softhsmSuite(dirs: () => string, labels: readonly string[]): () => string {
  let conf = '';
  let saved: string | undefined;
  beforeAll(() => {
    const dir = dirs();
    conf = join(dir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    saved = process.env['SOFTHSM2_CONF'];
    process.env['SOFTHSM2_CONF'] = conf;
    for (const label of labels) initToken(label);
  });
  afterAll(() => {
    if (saved === undefined) delete process.env['SOFTHSM2_CONF'];
    else process.env['SOFTHSM2_CONF'] = saved;
  });
  return () => conf;
}

/** Makes a token in the suite's store (it must not exist yet). */
export function initToken(label: string, pin = TOKEN_PIN): void {
  const made = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', SO_PIN], { encoding: 'utf8' });
  expect(made.status, made.stderr).toBe(0);
}

/**
 * Destroys the objects labelled `object` in token `token` with the raw PKCS#11 binding (a reset
 * token, a key removed by an administrator). No Pkcs11Token may be open in this process.
 */
export async function destroyTokenObjects(token: string, object: string, pin = TOKEN_PIN): Promise<number> {
  const b = (await import('pkcs11js')).default;
  const p11 = new b.PKCS11();
  p11.load(SOFTHSM_MODULE);
  p11.C_Initialize();
  try {
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token);
    if (slot === undefined) throw new Error(`no token ${token}`);
    const session = p11.C_OpenSession(slot, b.CKF_SERIAL_SESSION | b.CKF_RW_SESSION);
    p11.C_Login(session, b.CKU_USER, pin);
    p11.C_FindObjectsInit(session, [{ type: b.CKA_LABEL, value: object }]);
    const found = p11.C_FindObjects(session, 100);
    p11.C_FindObjectsFinal(session);
    for (const handle of found) p11.C_DestroyObject(session, handle);
    p11.C_Logout(session);
    p11.C_CloseSession(session);
    return found.length;
  } finally {
    p11.C_Finalize();
    p11.close();
  }
}
