/**
 * Setting up a first agent is several steps on the ledger (the policy, then the DID). Failed
 * at each of them, either before the ledger took the event or after it took it and the answer
 * was lost, running the set-up again finishes it with the same events: one policy and one DID
 * on the ledger, never a second policy, and an agent that holds them.
 */
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { initFirstAgent } from '../../src/agent/provision.js';
import { randomBytes } from '../../src/crypto/index.js';
import { LedgerClient } from '../../src/ledger/client.js';
import type { Did } from '../../src/ledger/events.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { expectCodeAsync } from '../helpers/errors.js';
import { startLedger, startProxy } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { resolveDid } from '../../src/did/resolve.js';

const STEPS = ['the policy', 'the DID'] as const;
const FAILURES = ['refused before the ledger took it', 'taken by the ledger, its answer lost'] as const;

describe("a first agent's set-up, failed at each step, finishes when run again", () => {
  for (const [index, step] of STEPS.entries()) {
    for (const failure of FAILURES) {
      it(`${step}: ${failure}`, async () => {
        const ledger = await startLedger(tempDir());
        const proxy = await startProxy(ledger.url);
        let posts = 0;
        let failing = true;
        const failsNow = (path: string): boolean => failing && path === '/v1/events' && posts === index;
        if (failure === 'refused before the ledger took it') {
          // Sent somewhere the ledger answers NOT_FOUND: the event never reaches it.
          proxy.forward = (path) => {
            const refused = failsNow(path);
            if (path === '/v1/events') posts++;
            return refused ? '/v1/not-the-events' : path;
          };
        } else {
          proxy.lie = ({ method, path }) => {
            if (method !== 'POST') return undefined;
            const lost = failsNow(path);
            if (path === '/v1/events') posts++;
            return lost ? { status: 502, raw: 'bad gateway' } : undefined;
          };
        }
        const wallet = await Wallet.create(join(tempDir(), 'wallet.db'), rawSecret(randomBytes(32)));
        onTestFinished(() => wallet.close());
        const agent = new EdgeAgent(wallet, new LedgerClient({ url: proxy.url, trustedKeys: [ledger.signer.multikey] }));
        const options = { label: 'laptop', ledgerUrl: proxy.url, did: { services: [] } };

        await expectCodeAsync(initFirstAgent(agent, options), failure === 'refused before the ledger took it' ? 'NOT_FOUND' : 'LEDGER_BAD_RESPONSE');
        expect(agent.store.hasProfile()).toBe(false);
        expect(ledger.node.size).toBe(failure === 'refused before the ledger took it' ? index : index + 1);

        failing = false;
        const profile = await initFirstAgent(agent, options);
        // One policy and one DID, whatever the first run left.
        expect(ledger.node.size).toBe(2);
        const policy = await agent.ledger.resolvePolicy(profile.policy as never);
        expect(policy.record.policy.agents.map((a) => a.key)).toEqual([profile.key]);
        expect(profile.did).toBeDefined();
        const did = await resolveDid(agent.ledger, profile.did as Did);
        expect(did.record.controller).toBe(profile.policy);
        // Done: a third run is refused, and changes nothing.
        await expectCodeAsync(initFirstAgent(agent, options), 'AGENT_EXISTS');
        expect(ledger.node.size).toBe(2);
      });
    }
  }

  it('refuses to finish a set-up against another ledger than the one it began with', async () => {
    const ledger = await startLedger(tempDir());
    const proxy = await startProxy(ledger.url, ({ method, path }) =>
      method === 'POST' && path === '/v1/events' ? { status: 502, raw: 'bad gateway' } : undefined,
    );
    const wallet = await Wallet.create(join(tempDir(), 'wallet.db'), rawSecret(randomBytes(32)));
    onTestFinished(() => wallet.close());
    const agent = new EdgeAgent(wallet, new LedgerClient({ url: proxy.url, trustedKeys: [ledger.signer.multikey] }));
    await expectCodeAsync(initFirstAgent(agent, { label: 'laptop', ledgerUrl: proxy.url }), 'LEDGER_BAD_RESPONSE');
    const other = await expectCodeAsync(initFirstAgent(agent, { label: 'laptop', ledgerUrl: ledger.url }), 'BAD_INPUT');
    expect(other.message).toContain(proxy.url);
    expect(ledger.node.size).toBe(1);
  });
});
