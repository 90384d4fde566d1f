/**
 * A ledger client that remembers, in a JSON file, the last tree head it verified and the node
 * keys it trusts for each ledger URL, so that every run checks the ledger's consistency with the
 * runs before it (a rollback or fork between runs is detected).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../files.js';
import { badInput } from '../errors.js';
import { LedgerClient, type LedgerClientOptions } from './client.js';
import { SignedTreeHeadSchema, type SignedTreeHead } from './head.js';

const ClientState = z.record(z.string(), z.object({ lastHead: SignedTreeHeadSchema.optional(), trustedKeys: z.array(z.string()).optional() }));
type ClientState = z.infer<typeof ClientState>;

export function readJsonFile<T>(path: string, schema: z.ZodType<T>, fallback: T): T {
  if (!existsSync(path)) return fallback;
  try {
    return schema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    throw badInput(`${path} is not valid: fix or remove it`);
  }
}

/** A verifying client for `url` whose memory lives in `statePath`. */
export function persistentLedgerClient(statePath: string, url: string, options: Omit<LedgerClientOptions, 'url' | 'lastHead' | 'onHead'> = {}): LedgerClient {
  const state: ClientState = readJsonFile(statePath, ClientState, {});
  const mine = state[url] ?? {};
  const save = (head: SignedTreeHead) => {
    const trustedKeys = [...new Set([...(mine.trustedKeys ?? []), ...(options.trustedKeys ?? []), head.key])];
    state[url] = { lastHead: head, trustedKeys };
    mkdirSync(dirname(statePath), { recursive: true, mode: 0o700 });
    writeFileAtomic(statePath, new TextEncoder().encode(`${JSON.stringify(state, null, 2)}\n`));
  };
  const trustedKeys = [...(mine.trustedKeys ?? []), ...(options.trustedKeys ?? [])];
  return new LedgerClient({
    ...options,
    url,
    ...(trustedKeys.length === 0 ? {} : { trustedKeys }),
    ...(mine.lastHead === undefined ? {} : { lastHead: mine.lastHead }),
    onHead: save,
  });
}
