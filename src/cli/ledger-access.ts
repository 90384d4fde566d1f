/**
 * How the CLI reaches a ledger: the URL (flag, then DKMS_LEDGER, then the data directory's
 * config.json, then the local default) and the client's memory of the last verified tree head
 * and the node keys it trusts, kept in `ledger-client.json` so that every run checks the
 * ledger's consistency with the runs before it.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { badInput } from '../errors.js';
import type { LedgerClient } from '../ledger/client.js';
import { persistentLedgerClient, readJsonFile } from '../ledger/client-state.js';
import { DEFAULT_LEDGER_PORT } from '../server/ledger-service.js';
import type { Context } from './context.js';
import { writeFileAtomic } from '../files.js';

export const DEFAULT_LEDGER_URL = `http://127.0.0.1:${DEFAULT_LEDGER_PORT}`;

const Config = z
  .object({
    ledger: z.string().url().optional(),
    witnesses: z.array(z.string().url()).optional(),
    quorum: z.number().int().min(1).max(64).optional(),
    nodeKeys: z.array(z.string()).optional(),
  })
  .loose();

export function ledgerUrl(ctx: Context, flag: string | undefined): string {
  const config = readJsonFile(join(ctx.home, 'config.json'), Config, {});
  const url = flag ?? process.env['DKMS_LEDGER'] ?? config.ledger ?? DEFAULT_LEDGER_URL;
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw badInput(`ledger URL '${url}' must start with http:// or https://`);
  return url.replace(/\/+$/, '');
}

/** Records `url` as this data directory's ledger in config.json, unless one is set already. */
export function rememberLedger(ctx: Context, url: string): void {
  const path = join(ctx.home, 'config.json');
  const config = readJsonFile(path, Config, {});
  if (config.ledger !== undefined) return;
  writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify({ ...config, ledger: url }, null, 2)}\n`));
}

/** A verifying client for the chosen ledger, remembering what it verified in the data directory. */
export function ledgerClient(ctx: Context, flag: string | undefined): LedgerClient {
  const config = readJsonFile(join(ctx.home, 'config.json'), Config, {});
  const witnesses = ctx.options.witness ?? config.witnesses ?? [];
  const quorum = ctx.options.quorum ?? config.quorum;
  const nodeKeys = ctx.options.nodeKey ?? config.nodeKeys;
  return persistentLedgerClient(join(ctx.home, 'ledger-client.json'), ledgerUrl(ctx, flag), {
    ...(witnesses.length === 0 ? {} : { witnesses }),
    ...(quorum === undefined ? {} : { threshold: quorum }),
    ...(nodeKeys === undefined ? {} : { trustedKeys: nodeKeys }),
  });
}
