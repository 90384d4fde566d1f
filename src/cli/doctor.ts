/**
 * `dkms doctor`: each check says ok, warn (works, but needs care) or fail (something will not
 * work), what it saw, and for each problem what to do. The checks run in order, and those that
 * need what an earlier one found missing are skipped. Nothing of the owner's is changed (the
 * ledger check writes nothing; the agent's checks refresh the ledger cache as every command does).
 */
import { existsSync, lstatSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { agentStanding, removedError } from '../agent/standing.js';
import { pendingApprovals } from '../agent/revocation.js';
import { DkmsError, type ErrorCode } from '../errors.js';
import { readSetup } from '../recovery/state.js';
import { withAgent } from './agent-access.js';
import type { Context } from './context.js';
import { configuredNodeKeys, ledgerClient, ledgerUrl } from './ledger-access.js';
import { Reported, emit } from './output.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface Check {
  readonly check: string;
  readonly status: CheckStatus;
  /** What was seen. */
  readonly detail: string;
  /** What to do about it (for warn and fail). */
  readonly fix?: string;
  /** The error code of a failure. */
  readonly code?: ErrorCode;
}

export interface DoctorOptions {
  /** A last backup older than this is a warning. */
  readonly backupAgeDays: number;
}

const ok = (check: string, detail: string): Check => ({ check, status: 'ok', detail });
const warn = (check: string, detail: string, fix: string): Check => ({ check, status: 'warn', detail, fix });
const fail = (check: string, code: ErrorCode, detail: string, fix: string): Check => ({ check, status: 'fail', detail, fix, code });
const skipped = (check: string, detail: string): Check => ({ check, status: 'skipped', detail });

const modeOf = (path: string): string => (statSync(path).mode & 0o777).toString(8).padStart(4, '0');

/** The data directory and the wallet file: there, private to this user. */
function filesChecks(ctx: Context): Check[] {
  if (!existsSync(ctx.home)) {
    return [
      fail(
        'data directory',
        'WALLET_NOT_FOUND',
        `${ctx.home} does not exist`,
        'run `dkms agent init` (a first device) or `dkms agent accept` (another one), or give --home',
      ),
    ];
  }
  const checks: Check[] = [];
  if (!statSync(ctx.home).isDirectory()) return [fail('data directory', 'IO_ERROR', `${ctx.home} is not a directory`, 'give --home a directory')];
  const dirMode = statSync(ctx.home).mode & 0o777;
  checks.push(
    (dirMode & 0o077) === 0
      ? ok('data directory', `${ctx.home} (mode ${modeOf(ctx.home)})`)
      : warn('data directory', `${ctx.home} can be read by others (mode ${modeOf(ctx.home)})`, `chmod 700 ${ctx.home}`),
  );
  if (!existsSync(ctx.walletPath)) {
    checks.push(fail('wallet', 'WALLET_NOT_FOUND', `no wallet in ${ctx.home}`, 'run `dkms agent init` (a first device) or `dkms agent accept` (another one)'));
    return checks;
  }
  const walletMode = statSync(ctx.walletPath).mode & 0o777;
  checks.push(
    (walletMode & 0o077) === 0
      ? ok('wallet file', `${ctx.walletPath} (mode ${modeOf(ctx.walletPath)})`)
      : warn('wallet file', `${ctx.walletPath} can be read by others (mode ${modeOf(ctx.walletPath)})`, `chmod 600 ${ctx.walletPath}`),
  );
  checks.push(sessionCheck(ctx));
  return checks;
}

/** Whether the wallet is unlocked for the commands that follow (docs/session.md). */
function sessionCheck(ctx: Context): Check {
  if (ctx.inSession) return ok('session', `unlocked: commands run in the unlock session (pid ${process.pid}) until \`dkms lock\` or its idle time`);
  const socket = join(ctx.home, 'session.sock');
  if (lstatSync(socket, { throwIfNoEntry: false }) === undefined)
    return ok('session', 'not unlocked: each command unlocks the wallet itself (`dkms unlock` unlocks it once)');
  return warn(
    'session',
    `${socket} is there, but this command did not run in a session (one that was killed leaves it; DKMS_SESSION=off ignores one)`,
    'run `dkms lock`: it locks a session that runs, or removes what a killed one left',
  );
}

function ledgerFix(code: ErrorCode | undefined): string {
  switch (code) {
    case 'LEDGER_UNREACHABLE':
      return 'start a local node with `dkms up`, or name a reachable one with --ledger or DKMS_LEDGER';
    case 'LEDGER_STALE':
      return "the node signs no new heads, or this machine's clock is off: check the node (`dkms ledger status` on its host) and the clock";
    default:
      return 'the node answered what a ledger node may not: do not rely on it, and tell its operator';
  }
}

/** The ledger this data directory uses: reachable, its head verified and fresh; and whether its key was configured. */
async function ledgerChecks(ctx: Context, url: string): Promise<Check[]> {
  try {
    // It starts from what this directory remembers (a pinned key, the last head) and writes nothing.
    const head = await ledgerClient(ctx, url, { remember: false }).head();
    const age = Math.max(0, Math.round((Date.now() - Date.parse(head.time)) / 1000));
    const checks = [ok('ledger', `${url}: head of ${head.size} events, signed ${age} s ago, verified`)];
    checks.push(
      configuredNodeKeys(ctx).includes(head.key)
        ? ok('ledger trust', `node key ${head.key}, as configured`)
        : warn(
            'ledger trust',
            `node key ${head.key} was trusted on first use: none is configured`,
            `check that key with the node's operator, then put it in ${join(ctx.home, 'trust.json')} as {"nodeKeys": ["${head.key}"]}`,
          ),
    );
    return checks;
  } catch (e) {
    if (!(e instanceof DkmsError)) throw e;
    return [fail('ledger', e.code, `${url}: ${e.code}: ${e.message}`, ledgerFix(e.code))];
  }
}

/** What needs the wallet open: this agent's standing, its agency, recovery, backups, approvals. */
async function agentChecks(ctx: Context, options: DoctorOptions, ledgerOk: boolean): Promise<Check[]> {
  return withAgent(
    ctx,
    async (agent) => {
      if (!agent.hasProfile()) {
        return [warn('agent', 'this wallet has no agent', 'run `dkms agent init` (a first device) or `dkms agent accept` (another one)')];
      }
      const checks: Check[] = [];
      const profile = agent.profile;
      if (!ledgerOk) {
        checks.push(skipped('agent', 'needs the ledger'));
      } else {
        const standing = await agentStanding(agent);
        const removed = removedError(standing, profile.key);
        if (removed !== undefined) {
          checks.push(
            fail('agent', 'AGENT_REMOVED', removed.message, "use one of the owner's current devices, or pair this one again from a fresh data directory"),
          );
          return checks;
        }
        checks.push(
          standing.status === 'active'
            ? ok('agent', `'${profile.label}' (${profile.key}), an agent of ${profile.policy}`)
            : warn(
                'agent',
                `'${profile.label}' is not in the owner's policy yet`,
                'finish its pairing (`dkms agent accept`) or its restore (`dkms recovery restore`)',
              ),
        );
      }
      let cloud;
      try {
        cloud = agent.cloud();
      } catch {
        cloud = undefined;
      }
      if (cloud === undefined) {
        checks.push(warn('agency', 'no cloud agent: nobody can send this owner messages', 'run `dkms agent register --agency URL`'));
      } else {
        try {
          await agent.agency(cloud).describe(cloud.id);
          checks.push(ok('agency', `${cloud.agency}: cloud agent ${cloud.id} is there`));
        } catch (e) {
          if (!(e instanceof DkmsError)) throw e;
          checks.push(
            fail('agency', e.code, `${cloud.agency}: ${e.code}: ${e.message}`, 'start the agency (`dkms up` runs one), or check its address with its operator'),
          );
        }
      }
      const setup = readSetup(agent);
      if (setup === undefined) {
        checks.push(warn('recovery', 'not set up: only a provisional key protects this identity', 'run `dkms recovery setup`'));
      } else {
        checks.push(
          ok(
            'recovery',
            [setup.offline ? 'paper wallet' : '', setup.social ? `${setup.social.threshold} of ${setup.social.trustees.length} trustees` : '']
              .filter((s) => s !== '')
              .join(', ') || 'set up',
          ),
        );
      }
      if (ledgerOk) {
        const pending = (await agent.policy()).policy.pending;
        if (pending !== undefined) {
          checks.push(
            fail(
              'pending recovery',
              'RECOVERY_PENDING',
              `a recovery of this policy is pending on the ledger until ${pending.until}`,
              'if it is not yours, run `dkms recovery cancel` before then',
            ),
          );
        }
      }
      const last = setup?.lastBackup;
      if (setup !== undefined) {
        if (last === undefined) checks.push(warn('backup', 'no backup stored yet', 'run `dkms recovery backup`'));
        else {
          const days = (Date.now() - Date.parse(last.at)) / 86_400_000;
          checks.push(
            days > options.backupAgeDays
              ? warn('backup', `the last backup (version ${last.version}) is ${Math.floor(days)} days old`, 'run `dkms recovery backup`')
              : ok('backup', `version ${last.version}, stored ${last.at}`),
          );
        }
      }
      const approvals = pendingApprovals(agent);
      checks.push(
        approvals.length === 0
          ? ok('approvals', 'none waiting')
          : warn(
              'approvals',
              `${approvals.length} approval request(s) waiting for this device`,
              'see them with `dkms agent approvals`, answer with `dkms agent approve <id>` or `deny`',
            ),
      );
      return checks;
    },
    { standing: false, backup: false },
  );
}

/** Runs every check, prints them, and ends with the first failure's exit status (0 when none failed). */
export async function runDoctor(ctx: Context, options: DoctorOptions): Promise<void> {
  const checks = filesChecks(ctx);
  const url = ledgerUrl(ctx, ctx.options.ledger);
  const ledger = await ledgerChecks(ctx, url);
  checks.push(...ledger);
  const ledgerOk = ledger[0]?.status === 'ok';
  if (existsSync(ctx.walletPath)) {
    try {
      checks.push(...(await agentChecks(ctx, options, ledgerOk)));
    } catch (e) {
      if (!(e instanceof DkmsError)) throw e;
      checks.push(fail('wallet', e.code, `${e.code}: ${e.message}`, 'give the secret that opens it (--passphrase-file, --key-file or DKMS_PASSPHRASE)'));
    }
  }
  const failed = checks.find((c) => c.status === 'fail');
  emit(ctx, { ok: failed === undefined, checks }, () =>
    checks
      .map(
        (c) =>
          `${{ ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skipped: 'skip' }[c.status]}  ${c.check}: ${c.detail}${c.fix === undefined ? '' : `\n        → ${c.fix}`}`,
      )
      .join('\n'),
  );
  if (failed?.code !== undefined) throw new Reported(failed.code);
}
