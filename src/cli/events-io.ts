/** Signing events with wallet keys, and submitting them or writing them for co-signers. */
import { ed25519Generate, encodePublicKey, toBase64url, type Signer } from '../crypto/index.js';
import { addSignatures, signEvent } from '../ledger/build.js';
import { parseEvent, type LedgerEvent, type UnsignedEvent } from '../ledger/events.js';
import type { Receipt } from '../ledger/node.js';
import type { Wallet } from '../wallet/index.js';
import { DkmsError, badInput } from '../errors.js';
import type { Context } from './context.js';
import type { CommandIo } from './io.js';
import { readInput, writeOutput } from './files.js';
import { ledgerClient } from './ledger-access.js';
import { emit } from './output.js';

/** Signers for the named wallet keys (Ed25519). */
export function walletSigners(wallet: Wallet, names: readonly string[]): Signer[] {
  if (names.length === 0) throw badInput('name at least one signing key with --key');
  return names.map((name) => {
    const { type } = wallet.getKey(name);
    if (type !== 'ed25519') throw badInput(`key '${name}' is ${type}; events are signed with ed25519 keys`);
    return wallet.signer(name);
  });
}

export interface SubmitOptions {
  readonly out?: string;
  readonly force?: boolean;
}

/** Submits a signed event, or writes it to `--out` for other agents to co-sign. */
export async function submitOrWrite(ctx: Context, event: LedgerEvent, options: SubmitOptions, describe: (receipt: Receipt) => string): Promise<void> {
  const master = awaitingCustodians.get(event);
  if (master !== undefined && options.out === undefined) {
    const { recordRefusal } = await import('./custody.js');
    throw recordRefusal(
      ctx,
      'sign',
      { key: master[0] ?? '', event: event.type },
      new DkmsError(
        'CUSTODY_REQUIRED',
        `key '${master.join("', '")}' is under custodians: write the event with --out FILE, then 'dkms custodian request --event FILE --key ${master[0] ?? ''}', then 'dkms ledger submit --in FILE --key ${master[0] ?? ''} --approval …'`,
      ),
    );
  }
  if (options.out !== undefined) {
    writeOutput(options.out, new TextEncoder().encode(`${JSON.stringify(event, null, 2)}\n`), { force: options.force === true, mode: 0o644 });
    const next =
      master === undefined
        ? `co-sign and submit it with 'dkms ledger submit --in ${options.out} --key NAME'`
        : `master key '${master[0] ?? ''}' signs it with its custodians' approval: 'dkms custodian request --event ${options.out} --key ${master[0] ?? ''}', then 'dkms ledger submit --in ${options.out} --key ${master[0] ?? ''} --approval …'`;
    emit(
      ctx,
      { out: options.out, type: event.type, signatures: event.sigs.length, ...(master === undefined ? {} : { awaitingCustodians: master }) },
      () => `Wrote the ${event.type} event with ${event.sigs.length} signature(s) to ${options.out}; ${next}`,
    );
    return;
  }
  if (event.sigs.length === 0) throw badInput('the event has no signature yet: co-sign it with --key (and --approval for a master key)');
  const receipt = await ledgerClient(ctx, ctx.options.ledger).submit(event);
  emit(ctx, { ...receipt }, () => describe(receipt));
}

/** Events signed here leaving out master keys under custodians: which keys, to say so (submitOrWrite). */
const awaitingCustodians = new WeakMap<LedgerEvent, readonly string[]>();

/**
 * Signs a new event with wallet keys. A master key under custodians does not sign here: the event
 * is signed by the others (perhaps none: a draft), for `--out`, and the custodians approve that
 * key's signature of it (`dkms custodian request --event`, then `ledger submit --approval`).
 */
export function signWith(wallet: Wallet, event: UnsignedEvent, keys: readonly string[]): LedgerEvent {
  if (keys.length === 0) throw badInput('name at least one signing key with --key');
  const master = keys.filter((name) => wallet.getKey(name).location.kind === 'custody');
  const held = keys.filter((name) => !master.includes(name));
  const signed = held.length === 0 ? ({ ...event, sigs: [] } as unknown as LedgerEvent) : signEvent(event, walletSigners(wallet, held));
  if (master.length > 0) awaitingCustodians.set(signed, master);
  return signed;
}

/** Reads an event written by `--out`, adding signatures by the named wallet keys. */
export function readEventFile(io: CommandIo, path: string): LedgerEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(readInput(io, path)));
  } catch {
    throw badInput(`${path} is not JSON`);
  }
  // A draft (no signature yet, its only signer a master key under custodians) is checked as an
  // event in every other field.
  if (typeof raw === 'object' && raw !== null && Array.isArray((raw as { sigs?: unknown }).sigs) && (raw as { sigs: unknown[] }).sigs.length === 0) {
    const placeholder = { kid: encodePublicKey('ed25519', ed25519Generate().publicKey), sig: toBase64url(new Uint8Array(64)) };
    return { ...parseEvent({ ...raw, sigs: [placeholder] }), sigs: [] } as unknown as LedgerEvent;
  }
  return parseEvent(raw);
}

export function cosign(wallet: Wallet, event: LedgerEvent, keys: readonly string[]): LedgerEvent {
  return keys.length === 0 ? event : addSignatures(event, walletSigners(wallet, keys));
}
