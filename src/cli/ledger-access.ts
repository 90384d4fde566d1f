/**
 * How the CLI reaches a ledger: the URL (flag, then DKMS_LEDGER, then the data directory's
 * config.json, then the local default); whom it trusts (flags, then `trust.json` in the data
 * directory, else the first node key seen, which it says on stderr); and the client's memory of
 * the last verified tree head (`ledger-client.json`) and of what it verified (`ledger-cache.json`),
 * so that every run checks the ledger's consistency with the runs before it and reads only what
 * changed.
 */
import { join } from 'node:path';
import { z } from 'zod';
import { badInput } from '../errors.js';
import type { LedgerClient } from '../ledger/client.js';
import { persistentLedgerClient, readJsonFile } from '../ledger/client-state.js';
import { DEFAULT_LEDGER_PORT } from '../server/ports.js';
import type { Context } from './context.js';
import { writeFileAtomic } from '../files.js';

export const DEFAULT_LEDGER_URL = `http://127.0.0.1:${DEFAULT_LEDGER_PORT}`;

const Config = z
  .object({
    ledger: z.string().url().optional(),
    quorum: z.number().int().min(1).max(64).optional(),
    nodeKeys: z.array(z.string()).optional(),
  })
  .loose();

/** `trust.json`: the ledger node and witness keys this data directory trusts, and what it requires. */
export const TrustFile = z.strictObject({
  nodeKeys: z.array(z.string().max(64)).max(64).optional(),
  witnessKeys: z.array(z.string().max(64)).max(64).optional(),
  quorum: z.number().int().min(1).max(64).optional(),
  maxHeadAgeSeconds: z.number().int().min(1).max(86_400).optional(),
});

export function ledgerUrl(ctx: Context, flag: string | undefined): string {
  const config = readJsonFile(join(ctx.home, 'config.json'), Config, {});
  const fromEnv = ctx.io.env['DKMS_LEDGER'];
  const url = flag ?? (fromEnv === undefined || fromEnv === '' ? undefined : fromEnv) ?? config.ledger ?? DEFAULT_LEDGER_URL;
  checkHttpUrl(url, 'ledger URL');
  return url.replace(/\/+$/, '');
}

/** BAD_INPUT unless `url` is an http(s) URL; `what` names it in the message ("ledger URL", "--agency"). */
export function checkHttpUrl(url: string, what: string): void {
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw badInput(`${what} '${url.slice(0, 100)}' must start with http:// or https://`);
}

/** Records `url` as this data directory's ledger in config.json, unless one is set already. */
export function rememberLedger(ctx: Context, url: string): void {
  const path = join(ctx.home, 'config.json');
  const config = readJsonFile(path, Config, {});
  if (config.ledger !== undefined) return;
  writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify({ ...config, ledger: url }, null, 2)}\n`));
}

/** The ledger node keys given to trust: the flags, else trust.json, else config.json (none: trust on first use). */
export function configuredNodeKeys(ctx: Context): readonly string[] {
  return nodeKeysOf(ctx, readJsonFile(join(ctx.home, 'trust.json'), TrustFile, {}), readJsonFile(join(ctx.home, 'config.json'), Config, {}));
}

function nodeKeysOf(ctx: Context, trust: z.infer<typeof TrustFile>, config: z.infer<typeof Config>): readonly string[] {
  const nodeKeys = [...(ctx.options.trust ?? []), ...(ctx.options.nodeKey ?? [])];
  return nodeKeys.length > 0 ? nodeKeys : (trust.nodeKeys ?? config.nodeKeys ?? []);
}

/**
 * A verifying client for the chosen ledger, remembering what it verified in the data directory;
 * with `remember: false`, one that writes nothing there (it still trusts what was remembered).
 */
export function ledgerClient(ctx: Context, flag: string | undefined, options: { remember?: boolean } = {}): LedgerClient {
  const config = readJsonFile(join(ctx.home, 'config.json'), Config, {});
  const trust = readJsonFile(join(ctx.home, 'trust.json'), TrustFile, {});
  const trustedKeys = nodeKeysOf(ctx, trust, config);
  const witnessKeys = ctx.options.witnessKey ?? trust.witnessKeys;
  const quorum = ctx.options.quorum ?? trust.quorum ?? config.quorum;
  const maxAge = ctx.options.maxHeadAge ?? trust.maxHeadAgeSeconds;
  return persistentLedgerClient(join(ctx.home, 'ledger-client.json'), ledgerUrl(ctx, flag), {
    ...(options.remember === false ? { readOnly: true } : { cachePath: join(ctx.home, 'ledger-cache.json') }),
    ...(trustedKeys.length === 0 ? {} : { trustedKeys }),
    ...(witnessKeys === undefined ? {} : { witnessKeys }),
    ...(quorum === undefined ? {} : { quorum }),
    ...(maxAge === undefined ? {} : { maxHeadAgeMs: maxAge * 1000 }),
    onFirstUse: (key) => ctx.trustedOnFirstUse(key),
    // A cancelled command (Ctrl-C) ends its requests in flight: in the unlock session it would otherwise wait on.
    signal: ctx.io.signal,
  });
}
