/**
 * A ledger client that remembers, in JSON files, the last tree head it verified and the node
 * keys it trusts for each ledger URL, so that every run checks the ledger's consistency with the
 * runs before it (a rollback or fork between runs is detected), and, optionally, what it has
 * verified, so that a later run reads only what changed.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../files.js';
import { badInput } from '../errors.js';
import { LedgerClient, type LedgerClientOptions } from './client.js';
import { SignedTreeHeadSchema, type SignedTreeHead } from './head.js';
import { VerifiedCache } from './verified-cache.js';

// Heads of an older format (without a map root) are dropped: the client starts afresh for that URL.
const ClientState = z.record(z.string(), z.object({ lastHead: z.unknown().optional(), trustedKeys: z.array(z.string()).optional() }));
type ClientState = z.infer<typeof ClientState>;

export function readJsonFile<T>(path: string, schema: z.ZodType<T>, fallback: T): T {
  if (!existsSync(path)) return fallback;
  try {
    return schema.parse(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    throw badInput(`${path} is not valid: fix or remove it`);
  }
}

function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileAtomic(path, new TextEncoder().encode(`${JSON.stringify(value)}\n`));
}

/** Verified reads kept on disk per ledger URL, at most this many. */
const PERSISTED_READS = 256;

/**
 * A verifying client for `url` whose memory lives in `statePath` (heads and pinned keys) and,
 * when given, `cachePath` (verified reads). With `readOnly`, it starts from that memory but
 * writes nothing back (a check that must change nothing, such as `dkms doctor`).
 */
export function persistentLedgerClient(
  statePath: string,
  url: string,
  options: Omit<LedgerClientOptions, 'url' | 'lastHead' | 'onHead' | 'cache'> & { cachePath?: string; readOnly?: boolean } = {},
): LedgerClient {
  const state: ClientState = readJsonFile(statePath, ClientState, {});
  const mine = state[url] ?? {};
  const lastHead = SignedTreeHeadSchema.safeParse(mine.lastHead);
  // Keys configured now are the only ones trusted; a key pinned on first use counts only while
  // none is configured (so taking a key out of the configuration takes it out of trust).
  const configured = options.trustedKeys ?? [];
  const trustedKeys = configured.length > 0 ? [...configured] : (mine.trustedKeys ?? []);
  const save = (head: SignedTreeHead) => {
    if (options.readOnly === true) return;
    state[url] = { lastHead: head, trustedKeys: trustedKeys.length > 0 ? trustedKeys : [head.key] };
    writeJson(statePath, state);
  };
  const { cachePath, readOnly: _readOnly, ...rest } = options;
  let cache: VerifiedCache | undefined;
  if (cachePath !== undefined) {
    const all = readJsonFile(cachePath, z.record(z.string(), z.unknown()), {});
    cache = VerifiedCache.fromJSON(all[url], PERSISTED_READS);
    const persisted = cache;
    persisted.onChange = () => writeJson(cachePath, { ...all, [url]: persisted.toJSON() });
  }
  return new LedgerClient({
    ...rest,
    url,
    ...(trustedKeys.length === 0 ? {} : { trustedKeys }),
    ...(lastHead.success ? { lastHead: lastHead.data } : {}),
    ...(cache === undefined ? {} : { cache }),
    onHead: save,
  });
}
