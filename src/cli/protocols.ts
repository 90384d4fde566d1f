/**
 * Every protocol an edge agent speaks, by message type: the agents' own (agent/) and recovery's
 * (recovery/), put together here where the program is assembled, so that neither layer imports
 * the one above it.
 */
import { approvalHandlers } from '../agent/revocation.js';
import { connectionHandlers } from '../agent/connections.js';
import type { Handlers } from '../agent/edge-agent.js';
import { notificationHandlers } from '../agent/notifications.js';
import { inviterHandlers } from '../agent/pairing.js';
import { requestHandlers } from '../recovery/requests.js';
import { trusteeHandlers } from '../recovery/trustees.js';

export const ALL_HANDLERS: Handlers = { ...notificationHandlers, ...connectionHandlers, ...approvalHandlers, ...inviterHandlers, ...trusteeHandlers, ...requestHandlers };
