/**
 * How agent commands reach their agent: the wallet in the data directory (created on first use
 * by `agent init` and `agent accept`), a verifying ledger client for the agent's ledger, and
 * the owner's consent for what needs it.
 */
import { existsSync, rmSync } from 'node:fs';
import { DEFAULT_KDF_TIER, type KdfTier } from '../crypto/index.js';
import { DkmsError, badInput } from '../errors.js';
import { backUpAfterChange } from '../recovery/auto-backup.js';
import { EdgeAgent } from '../agent/edge-agent.js';
import { AgentStore } from '../agent/agent-store.js';
import { agentStanding, removedError, type Standing } from '../agent/standing.js';
import { Wallet } from '../wallet/index.js';
import type { Context } from './context.js';
import { ledgerClient, rememberLedger } from './ledger-access.js';

/**
 * Opens the wallet (creating it when `create` and absent), runs `fn` with the agent, closes.
 * `keepCreated` says, when `fn` fails, whether a wallet this call created is worth keeping for
 * the command to resume; if not, it is removed, so that the failed command leaves no wallet.
 */
export async function withAgent<T>(
  ctx: Context,
  fn: (agent: EdgeAgent) => Promise<T>,
  options: {
    create?: boolean;
    kdfTier?: KdfTier;
    backup?: boolean;
    ledger?: string;
    keepCreated?: (agent: EdgeAgent) => boolean;
    /** Whether to refuse, AGENT_REMOVED, when the agent no longer acts for its owner (default true). */
    standing?: boolean;
    /** Runs on the wallet before the agent is made over it (keys made in a token before the agent's own are). */
    prepare?: (wallet: Wallet) => Promise<void>;
  } = {},
): Promise<T> {
  let wallet: Wallet;
  const creating = options.create === true && !existsSync(ctx.walletPath);
  let discard = false;
  if (creating) {
    const secret = await ctx.walletSecret(true);
    ctx.progress('Creating wallet…');
    wallet = await Wallet.create(ctx.walletPath, secret, { kdfTier: options.kdfTier ?? DEFAULT_KDF_TIER });
  } else {
    // The unlock session's wallet when the command runs there: open already, and never closed here.
    wallet = await ctx.openWallet();
  }
  // Cancelled (Ctrl-C) while nothing worth keeping is in a wallet this call made: it goes, as on a failure.
  const keepCreated = options.keepCreated;
  let made: EdgeAgent | undefined;
  const release =
    creating && keepCreated !== undefined
      ? ctx.io.onCancel(() => {
          if (made === undefined || !keepCreated(made)) {
            wallet.close();
            removeWalletFiles(ctx.walletPath);
          }
        })
      : () => undefined;
  try {
    await options.prepare?.(wallet);
    const store = new AgentStore(wallet);
    // The ledger the agent was set up with, unless the command names another.
    const ledgerFlag = options.ledger ?? ctx.options.ledger ?? (store.hasProfile() ? store.profile().ledger : undefined);
    // A cancelled command (Ctrl-C) ends its agency requests in flight: a long poll would wait on.
    const agent = new EdgeAgent(wallet, ledgerClient(ctx, ledgerFlag), { signal: ctx.io.signal });
    made = agent;
    // A device whose agent was revoked or recovered away says so first, and does nothing else.
    if (options.standing !== false && store.hasProfile()) await refuseIfRemoved(agent);
    const before = wallet.changes();
    let result: T;
    try {
      result = await fn(agent);
    } catch (e) {
      discard = creating && options.keepCreated !== undefined && !options.keepCreated(agent);
      throw e;
    }
    if (options.backup !== false && wallet.changes() !== before) await backUpChange(ctx, agent);
    // Other commands in this data directory (policy, did, verify) then use the agent's ledger.
    if (store.hasProfile()) rememberLedger(ctx, store.profile().ledger);
    return result;
  } finally {
    release();
    if (!ctx.inSession) wallet.close();
    if (discard) removeWalletFiles(ctx.walletPath);
  }
}

function removeWalletFiles(path: string): void {
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) rmSync(file, { force: true });
}

/**
 * AGENT_REMOVED when the owner's verified policy shows this agent revoked or recovered away. A
 * ledger that cannot be read now leaves the question to the command itself, which needs the
 * ledger too and says why it cannot go on.
 */
async function refuseIfRemoved(agent: EdgeAgent): Promise<void> {
  let standing: Standing;
  try {
    standing = await agentStanding(agent);
  } catch (e) {
    if (e instanceof DkmsError) return;
    throw e;
  }
  const removed = removedError(standing, agent.profile.key);
  if (removed !== undefined) throw removed;
}

/** The automatic backup rule (recovery/auto-backup.ts) after a command changed the wallet; a failure is a warning, not the command's. */
async function backUpChange(ctx: Context, agent: EdgeAgent): Promise<void> {
  const outcome = await backUpAfterChange(agent);
  // Standard error even with --json: standard output keeps its one JSON result.
  if (!outcome.stored && outcome.reason === 'failed') {
    ctx.io.err(`dkms: warning: the wallet changed but no backup was stored (${outcome.error.code}: ${outcome.error.message}); run \`dkms recovery backup\`\n`);
  }
}

/**
 * BAD_INPUT unless a question can be answered later in the command: `--yes`, or a terminal to
 * ask at. For commands that ask only after their first step, so that they are refused before it.
 */
export function checkConfirmable(ctx: Context, what: string, yes: boolean | undefined): void {
  if (yes !== true && !ctx.io.tty.stdin) throw badInput(`${what}: confirm with --yes when not at a terminal`);
}

/** Asks a yes/no question at the terminal; `yes` answers it in advance (scripts). */
export async function confirm(ctx: Context, question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes === true) return true;
  checkConfirmable(ctx, question.replace(/\?$/, ''), yes);
  const answer = await ctx.io.ask(`${question} [y/N] `, false);
  return /^y(es)?$/i.test(answer.trim());
}

/** Writes one JSON line now (for scripts following a long-running command), or text. */
export function announce(ctx: Context, fields: Record<string, unknown>, text: string): void {
  ctx.io.out(ctx.json ? `${JSON.stringify(fields)}\n` : `${text}\n`);
}
