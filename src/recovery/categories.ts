/**
 * The records recovery keeps in an agent's wallet (registered with the agent store, which keeps
 * them). The names keep their first form, so wallets made before stay readable.
 */
import { registerCategories } from '../agent/agent-store.js';

export const RECOVERY_CATEGORIES = registerCategories('recovery', {
  /** Owner side: the setup, a prepared change, and this owner's trustees. */
  recovery: 'agent.recovery',
  trustee: 'agent.trustee',
  /** Trustee side: offers received, shares held for other owners, their recovery requests. */
  trusteeOffer: 'agent.trustee-offer',
  heldShare: 'agent.held-share',
  recoveryRequest: 'agent.recovery-request',
  /** New-device side: this device's own recovery request and the shares released to it. */
  myRequest: 'agent.my-recovery-request',
  releasedShare: 'agent.released-share',
});
