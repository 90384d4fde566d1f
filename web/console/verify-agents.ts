/**
 * The console's agents, checked in this browser against the ledger: the CLI in the unlock
 * session read them (verified there), and the page reads the policy again with the explorer's
 * own verifying client and WebCrypto, and compares. The node key comes from the pins this
 * origin keeps (the explorer's `#trust=`); without one, from the console's own server, which the
 * owner trusts already with the passphrase.
 */
import { flagNames } from '../../src/policy/flags.js';
import type { ConsoleAgent } from '../../src/server/console-types.js';
import { openLedger } from '../shared/ledger.js';
import { checkWebCrypto } from '../shared/self-test.js';
import { reasonOf } from '../shared/status.js';
import { readPins } from '../shared/trust.js';

export type AgentsCheck = { readonly ok: true; readonly size: number } | { readonly ok: false; readonly reason: string };

const describe = (agents: readonly { key: string; flags: string }[]) =>
  agents
    .map((a) => `${a.key}:${a.flags}`)
    .sort()
    .join(' ');

export async function verifyAgents(policy: string, agents: readonly ConsoleAgent[]): Promise<AgentsCheck> {
  const test = await checkWebCrypto();
  if (!test.ok) return { ok: false, reason: test.reason };
  try {
    let pins = readPins();
    if (pins.nodeKeys.length === 0) {
      const config = (await (await fetch('/ui/config.json', { cache: 'no-store' })).json()) as { nodeKey?: unknown };
      if (typeof config.nodeKey === 'string') pins = { ...pins, nodeKeys: [config.nodeKey] };
    }
    const resolved = await openLedger(pins).resolvePolicy(policy as `policy:${string}`);
    const onLedger = resolved.record.policy.agents.map((a) => ({ key: a.key, flags: flagNames(a.flags).join(',') || 'none' }));
    if (describe(onLedger) !== describe(agents)) return { ok: false, reason: 'the agents the ledger proves are not the ones listed here' };
    return { ok: true, size: resolved.head.size };
  } catch (e) {
    const { code, message } = reasonOf(e);
    return { ok: false, reason: `${code}: ${message}` };
  }
}
