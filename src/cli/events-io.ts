/** Signing events with wallet keys, and submitting them or writing them for co-signers. */
import type { Signer } from '../crypto/index.js';
import { addSignatures, signEvent } from '../ledger/build.js';
import { parseEvent, type LedgerEvent, type UnsignedEvent } from '../ledger/events.js';
import type { Receipt } from '../ledger/node.js';
import type { Wallet } from '../wallet/index.js';
import { badInput } from '../errors.js';
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
  if (options.out !== undefined) {
    writeOutput(options.out, new TextEncoder().encode(`${JSON.stringify(event, null, 2)}\n`), { force: options.force === true, mode: 0o644 });
    emit(
      ctx,
      { out: options.out, type: event.type, signatures: event.sigs.length },
      () =>
        `Wrote the ${event.type} event with ${event.sigs.length} signature(s) to ${options.out}; co-sign and submit it with 'dkms ledger submit --in ${options.out} --key NAME'`,
    );
    return;
  }
  const receipt = await ledgerClient(ctx, ctx.options.ledger).submit(event);
  emit(ctx, { ...receipt }, () => describe(receipt));
}

/** Signs a new event with wallet keys. */
export function signWith(wallet: Wallet, event: UnsignedEvent, keys: readonly string[]): LedgerEvent {
  return signEvent(event, walletSigners(wallet, keys));
}

/** Reads an event written by `--out`, adding signatures by the named wallet keys. */
export function readEventFile(io: CommandIo, path: string): LedgerEvent {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(readInput(io, path)));
  } catch {
    throw badInput(`${path} is not JSON`);
  }
  return parseEvent(raw);
}

export function cosign(wallet: Wallet, event: LedgerEvent, keys: readonly string[]): LedgerEvent {
  return keys.length === 0 ? event : addSignatures(event, walletSigners(wallet, keys));
}
