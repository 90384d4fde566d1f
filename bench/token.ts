/**
 * Signing in a hardware token (part of `npm run bench -- wallet`), against SoftHSM2 with a token
 * made for the run in a temporary directory. Three figures in the same run, on the same message
 * (64 bytes), each the median of ROUNDS rounds of SIGNS signatures:
 * - token: signatures through the library's Pkcs11Token signer (src/hsm/pkcs11.ts);
 * - raw: the same key signing through the PKCS#11 binding alone (C_SignInit + C_Sign), the raw
 *   limit of the token signer: ratio = token / raw;
 * - software: node:crypto Ed25519 with a key in memory, for scale.
 * Without SoftHSM2 (`softhsm2-util`) installed the figures are not taken, and the line says why.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import { ed25519Generate, memorySigner, randomBytes } from '../src/crypto/index.js';
import { Pkcs11Token } from '../src/hsm/pkcs11.js';
import { median, opsPerSecond, report, round } from './report.js';

const MODULE = '/usr/lib/softhsm/libsofthsm2.so';
const TOKEN = 'dkms-bench';
const PIN = 'bench-pin-1234';
const SIGNS = 2000;
const ROUNDS = 5;
/** CKM_EDDSA (PKCS#11 v3.0), which pkcs11js 2.1.7 does not name. */
const CKM_EDDSA = 0x1057;

/**
 * The same key as `label` signing through the binding alone, in a session of its own. The module
 * is already initialised in this process (by the token signer), so it is only loaded here.
 */
function rawSigner(label: string): { sign: (message: Buffer) => Buffer; close: () => void } {
  const p11 = new pkcs11js.PKCS11();
  p11.load(MODULE);
  try {
    p11.C_Initialize();
  } catch (e) {
    if (!(e instanceof Error && e.message.includes('CKR_CRYPTOKI_ALREADY_INITIALIZED'))) throw e;
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === TOKEN);
  if (slot === undefined) throw new Error(`token ${TOKEN} not found`);
  // The token's user is logged in already (by the token signer): the login holds for every session.
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  p11.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_LABEL, value: label },
  ]);
  const [key] = p11.C_FindObjects(session, 1);
  p11.C_FindObjectsFinal(session);
  if (key === undefined) throw new Error(`key ${label} not found`);
  const out = Buffer.alloc(64);
  return {
    sign: (message) => {
      p11.C_SignInit(session, { mechanism: CKM_EDDSA }, key);
      return p11.C_Sign(session, message, out);
    },
    close: () => p11.C_CloseSession(session),
  };
}

export async function tokenSigning(dir: string): Promise<void> {
  if (spawnSync('softhsm2-util', ['--version']).status !== 0) {
    report({ bench: 'wallet.token-sign', skipped: 'SoftHSM2 is not installed (apt-get install softhsm2)' });
    return;
  }
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${dir}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const saved = process.env['SOFTHSM2_CONF'];
  process.env['SOFTHSM2_CONF'] = conf;
  try {
    const made = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', TOKEN, '--pin', PIN, '--so-pin', 'bench-so-5678'], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`softhsm2-util --init-token: ${made.stderr}`);
    const token = await Pkcs11Token.open({ module: MODULE, token: TOKEN, pin: PIN });
    try {
      const signer = token.createEd25519('bench-key');
      const rawAgain = rawSigner('bench-key');
      const pair = ed25519Generate();
      const software = memorySigner(pair.privateKey, pair.publicKey);
      const message = randomBytes(64);
      const buffer = Buffer.from(message);
      const tokenRates: number[] = [];
      const rawRates: number[] = [];
      const softwareRates: number[] = [];
      // Interleaved rounds: each figure sees the machine in the same states.
      for (let r = 0; r < ROUNDS; r++) {
        tokenRates.push(opsPerSecond(SIGNS, () => signer.sign(message)));
        rawRates.push(opsPerSecond(SIGNS, () => rawAgain.sign(buffer)));
        softwareRates.push(opsPerSecond(SIGNS, () => software.sign(message)));
      }
      rawAgain.close();
      const tokenRate = median(tokenRates);
      const rawRate = median(rawRates);
      report({
        bench: 'wallet.token-sign',
        signs: SIGNS,
        rounds: ROUNDS,
        tokenSignsPerSec: round(tokenRate, 0),
        rawPkcs11SignsPerSec: round(rawRate, 0),
        ratio: round(tokenRate / rawRate),
        softwareSignsPerSec: round(median(softwareRates), 0),
      });
    } finally {
      token.close();
    }
  } finally {
    if (saved === undefined) delete process.env['SOFTHSM2_CONF'];
    else process.env['SOFTHSM2_CONF'] = saved;
  }
}
