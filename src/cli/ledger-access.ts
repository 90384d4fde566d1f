/**
 * How the CLI reaches a ledger: the URL (flag, then DKMS_LEDGER, then the data directory's
 * config.json, then the local default) and the client's memory of the last verified tree head
 * and the node keys it trusts, kept in `ledger-client.json` so that every run checks the
 * ledger's consistency with the runs before it.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { badInput } from '../errors.js';
import { LedgerClient } from '../ledger/client.js';
import { SignedTreeHeadSchema, type SignedTreeHead } from '../ledger/head.js';
import { DEFAULT_LEDGER_PORT } from '../server/ledger-service.js';
import type { Context } from './context.js';
import { writeOutput } from './files.js';

export const DEFAULT_LEDGER_URL = `http://127.0.0.1:${DEFAULT_LEDGER_PORT}`;

const Config = z.object({ ledger: z.string().url().optional() }).loose();
const ClientState = z.record(z.string(), z.object({ lastHead: SignedTreeHeadSchema.optional(), trustedKeys: z.array(z.string()).optional() }));
type ClientState = z.infer<typeof ClientState>;

function readJson<T>(path: string, schema: z.ZodType<T>, fallback: T): T {
  if (!existsSync(path)) return fallback;
  try {
    return schema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    throw badInput(`${path} is not valid: fix or remove it`);
  }
}

export function ledgerUrl(ctx: Context, flag: string | undefined): string {
  const config = readJson(join(ctx.home, 'config.json'), Config, {});
  const url = flag ?? process.env['DKMS_LEDGER'] ?? config.ledger ?? DEFAULT_LEDGER_URL;
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw badInput(`ledger URL '${url}' must start with http:// or https://`);
  return url.replace(/\/+$/, '');
}

/** A verifying client for the chosen ledger, remembering what it verified in the data directory. */
export function ledgerClient(ctx: Context, flag: string | undefined): LedgerClient {
  const url = ledgerUrl(ctx, flag);
  const path = join(ctx.home, 'ledger-client.json');
  const state: ClientState = readJson(path, ClientState, {});
  const mine = state[url] ?? {};
  const save = (head: SignedTreeHead) => {
    const trustedKeys = [...new Set([...(mine.trustedKeys ?? []), head.key])];
    state[url] = { lastHead: head, trustedKeys };
    mkdirSync(ctx.home, { recursive: true, mode: 0o700 });
    writeOutput(path, new TextEncoder().encode(`${JSON.stringify(state, null, 2)}\n`), { force: true });
  };
  return new LedgerClient({
    url,
    ...(mine.trustedKeys === undefined ? {} : { trustedKeys: mine.trustedKeys }),
    ...(mine.lastHead === undefined ? {} : { lastHead: mine.lastHead }),
    onHead: save,
  });
}
