/** Telling the owner's other agents that the set of agents changed; each re-reads the ledger. */
import type { Handlers } from './edge-agent.js';

export const AGENTS_CHANGED = 'urn:dkms:agents/1.0/changed';

export const notificationHandlers: Handlers = {
  [AGENTS_CHANGED]: {
    from: 'agent',
    // The message is only a hint: what the agents are is read, verified, from the ledger.
    async handle(agent) {
      const view = await agent.refreshAgents();
      return { summary: `the owner's agents changed (${view.agents.length} now)`, data: { agentsChanged: view.agents.length } };
    },
  },
};
