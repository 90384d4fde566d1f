/**
 * Child process of the wallet crash trials (crash.test.ts). It opens a wallet and runs one
 * kind of write in a loop until the parent SIGKILLs it, reporting on stdout, one line each:
 *
 *   ready          the wallet is open; the loop starts now
 *   ack <n>        rekey mode: the n-th rekey returned (the wallet now opens with secrets[(current + n) % 2])
 *   ack <name>     put mode: the put of item <name> returned
 *
 * Lines are written with writeSync, so a line is in the pipe before the next operation starts.
 * Plain JS on the compiled wallet (dist), so that it starts fast. Usage:
 *
 *   node crash-child.mjs '<json config>'
 *
 * config: { mode: 'rekey', path, secrets: [spec, spec], current: 0 | 1, kdfTier? } (custody specs: custodian rotations)
 *       | { mode: 'put', path, secret: spec, category, start }
 * spec:   { kind: 'raw', hex } | { kind: 'passphrase', passphrase } | { kind: 'custody', hex }
 */
import { createHash } from 'node:crypto';
import { Wallet, passphraseSecret, rawSecret } from '../../dist/src/wallet/index.js';
import { dieWithParent, say } from '../helpers/child-io.mjs';

/** Deterministic item of put mode; crash.test.ts computes the same. */
function itemName(index) {
  return `item-${String(index).padStart(6, '0')}`;
}

function itemValue(index) {
  const name = itemName(index);
  // 32 bytes to about 6 KB, so that some values span several database pages.
  const length = 32 + ((index * 997) % 6000);
  const blocks = [];
  for (let i = 0; blocks.length * 32 < length; i++) blocks.push(createHash('sha256').update(`${name}:${i}`).digest());
  return new Uint8Array(Buffer.concat(blocks).subarray(0, length));
}

function itemTags(index) {
  return { index: String(index), parity: index % 2 === 0 ? 'even' : 'odd' };
}

function toSecret(spec) {
  if (spec.kind === 'custody') return { custody: new Uint8Array(Buffer.from(spec.hex, 'hex')) };
  if (spec.kind === 'raw') return rawSecret(new Uint8Array(Buffer.from(spec.hex, 'hex')));
  return passphraseSecret(spec.passphrase);
}

async function rekeyLoop(config) {
  const secrets = config.secrets.map(toSecret);
  const wallet = await Wallet.open(config.path, secrets[config.current]);
  say('ready');
  for (let n = 1; ; n++) {
    const [was, next] = [secrets[(config.current + n - 1) % 2], secrets[(config.current + n) % 2]];
    if ('custody' in next) {
      // A wallet its custodians unseal is "rekeyed" by moving it to a new custody set and secret.
      const epoch = wallet.custody().epoch + 1;
      const factor = { set: `crash-trial-set-${epoch}`, epoch, mode: 'unseal', document: JSON.stringify({ epoch }) };
      await wallet.rotateCustody(was.custody, { factor, secret: next.custody });
    } else {
      await wallet.rekey(next, { kdfTier: config.kdfTier });
    }
    say(`ack ${n}`);
  }
}

async function putLoop(config) {
  const wallet = await Wallet.open(config.path, toSecret(config.secret));
  say('ready');
  for (let i = config.start; ; i++) {
    wallet.put(config.category, itemName(i), itemValue(i), itemTags(i));
    say(`ack ${itemName(i)}`);
    // Let stdin's end be noticed, should the parent go away without killing us.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

dieWithParent();

const config = JSON.parse(process.argv[2] ?? '{}');
const loops = { rekey: rekeyLoop, put: putLoop };
const loop = loops[config.mode];
if (loop === undefined) {
  process.stderr.write(`crash-child: unknown mode ${String(config.mode)}\n`);
  process.exit(2);
}
try {
  await loop(config);
} catch (e) {
  process.stderr.write(`crash-child: ${e?.code ?? ''} ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
}
