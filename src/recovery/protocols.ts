/**
 * Every protocol an edge agent speaks, by message type: the agents' own (agent/) and recovery's
 * (recovery/), put together at the top of the domain, so that agent/ never imports recovery/.
 * Programs (the CLI, a library user) pass ALL_HANDLERS to EdgeAgent.receive.
 */
import { approvalHandlers } from '../agent/revocation.js';
import { CONNECTION_EVENTS, connectionHandlers } from '../agent/connections.js';
import type { Handler, Handlers } from '../agent/edge-agent.js';
import { isDkmsError } from '../errors.js';
import { notificationHandlers } from '../agent/notifications.js';
import { inviterHandlers } from '../agent/pairing.js';
import { requestHandlers } from './requests.js';
import { refreshSponsors } from './setup.js';
import { trusteeHandlers } from './trustees.js';

/**
 * A trustee's connection keys rotated: the owner's cloud agent must know the new ones as
 * sponsors (recovery/setup.ts), or the trustee could not let the owner's new device have its
 * shares. A failure to tell the agency is reported in the summary; the next setup or rotation
 * tells it again.
 */
const connectionEvents: Handler = {
  from: 'any',
  async handle(agent, message, sender) {
    const handled = await (connectionHandlers[CONNECTION_EVENTS] as Handler).handle(agent, message, sender);
    const id = (handled.data?.['connectionEvents'] as { id?: unknown } | undefined)?.id;
    if (typeof id !== 'string') return handled;
    try {
      await refreshSponsors(agent, id);
      return handled;
    } catch (e) {
      return {
        ...handled,
        summary: `${handled.summary} (the agency was not told of the trustee's new keys: ${isDkmsError(e) ? e.code : String(e)}; run \`dkms recovery setup\` again if this persists)`,
      };
    }
  },
};

export const ALL_HANDLERS: Handlers = {
  ...notificationHandlers,
  ...connectionHandlers,
  [CONNECTION_EVENTS]: connectionEvents,
  ...approvalHandlers,
  ...inviterHandlers,
  ...trusteeHandlers,
  ...requestHandlers,
};
