/**
 * The automatic backup rule: after anything changed an agent's wallet, a new backup version is
 * stored at the owner's cloud agent — once recovery is set up and there is a cloud agent to keep
 * it. A failed backup does not undo the change: the caller reports it, and the next change (or
 * an explicit backup) tries again.
 */
import type { EdgeAgent } from '../agent/edge-agent.js';
import { isDkmsError, type DkmsError } from '../errors.js';
import { makeBackup } from './setup.js';
import { readSetup } from './state.js';
import { Turns } from '../agent/turns.js';

/** Backups of one wallet are made one at a time: versions follow each other, none is made from a state older than another's. */
const backups = new Turns();

export type AutoBackup =
  | { readonly stored: true; readonly version: number | undefined }
  | { readonly stored: false; readonly reason: 'not-set-up' }
  | { readonly stored: false; readonly reason: 'failed'; readonly error: DkmsError };

/** Stores a new backup version of `agent`'s wallet if the rule says so (call it after a change). Throws only what is not a DkmsError (a bug). */
export async function backUpAfterChange(agent: EdgeAgent): Promise<AutoBackup> {
  if (!agent.store.hasProfile() || agent.profile.cloud === undefined || readSetup(agent) === undefined) return { stored: false, reason: 'not-set-up' };
  try {
    const made = await backups.run(agent.wallet, () => makeBackup(agent));
    return { stored: true, version: made.version };
  } catch (e) {
    if (!isDkmsError(e)) throw e;
    return { stored: false, reason: 'failed', error: e };
  }
}
