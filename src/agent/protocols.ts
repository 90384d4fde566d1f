/** Every protocol an edge agent speaks, by message type. */
import { approvalHandlers } from './revocation.js';
import { connectionHandlers } from './connections.js';
import type { Handlers } from './edge-agent.js';
import { notificationHandlers } from './notifications.js';
import { inviterHandlers } from './pairing.js';
import { requestHandlers } from '../recovery/requests.js';
import { trusteeHandlers } from '../recovery/trustees.js';

export const ALL_HANDLERS: Handlers = { ...notificationHandlers, ...connectionHandlers, ...approvalHandlers, ...inviterHandlers, ...trusteeHandlers, ...requestHandlers };
