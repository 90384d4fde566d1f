/** `dkms policy …`: the owner's authorization policy on the ledger — which agents act for them, with which flags. */
import { Command, InvalidArgumentError } from 'commander';
import { badInput } from '../../errors.js';
import type { PolicyAddress } from '../../ledger/events.js';
import { ALL_FLAGS, flagNames, parseFlags } from '../../policy/flags.js';
import { RULE_NAMES, type Rules } from '../../policy/types.js';
// The module itself, not crypto/index.js: the key parser runs as options are parsed, and the
// index loads Argon2 and the rest of the crypto core.
import { decodePublicKey } from '../../crypto/encoding.js';
import type { PolicyRecord } from '../../ledger/state.js';
import type { Context } from '../context.js';
import { asOf, asOfOptions, parsePositive, signingOptions, type AsOf, type Signing } from '../options.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [{ nextEvent, policyCreate }, { recoveryKeyDigest }, { Context }, { signWith, submitOrWrite }, { emit }] = await Promise.all([
    import('../../ledger/build.js'),
    import('../../policy/authority.js'),
    import('../context.js'),
    import('../events-io.js'),
    import('../output.js'),
  ]);
  return { nextEvent, policyCreate, recoveryKeyDigest, Context, signWith, submitOrWrite, emit };
}

function parseRules(text: string): Partial<Rules> {
  const rules: Record<string, number> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0)) {
    const [name, value] = part.split('=');
    if (name === undefined || !(RULE_NAMES as readonly string[]).includes(name))
      throw new InvalidArgumentError(`unknown rule '${name ?? ''}' (use ${RULE_NAMES.join(', ')})`);
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`rule '${name}' needs a number of signatures from 1 to 64`);
    rules[name] = n;
  }
  return rules;
}

function parseFlagOption(value: string): number {
  try {
    return parseFlags(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function checkAgentKey(value: string, type: 'ed25519' | 'x25519' = 'ed25519'): string {
  decodePublicKey(value, type);
  return value;
}

/** The policy record, read from the ledger and verified from its inception. */
export async function verifiedPolicy(ctx: Context, address: string, at: AsOf = {}): Promise<PolicyRecord> {
  if (!address.startsWith('policy:')) throw badInput(`'${address}' is not a policy address (policy:…)`);
  const { ledgerClient } = await import('../ledger-access.js');
  return (await ledgerClient(ctx, ctx.options.ledger).resolvePolicy(address as PolicyAddress, at)).record;
}

export function describePolicy(record: PolicyRecord): string {
  const { policy } = record;
  return [
    `policy:   ${record.subject}`,
    `seq:      ${record.seq} (latest event ${record.head})`,
    `created:  ${record.created.time}`,
    `updated:  ${record.updated.time}`,
    `rules:    ${RULE_NAMES.map((r) => `${r}=${policy.rules[r]}`).join(' ')}`,
    `recovery: ${policy.recovery.threshold} of ${policy.recovery.digests.length} committed keys`,
    'agents:',
    ...policy.agents.map((a) => `  ${a.key}  ${flagNames(a.flags).join(',') || 'none'}${a.kx === undefined ? '' : `  kx ${a.kx}`}`),
  ].join('\n');
}

export function policyCommand(): Command {
  const policy = new Command('policy').description('your authorization policy on the ledger: agents, flags, rules');

  signingOptions(
    policy
      .command('create')
      .description('create a policy with the signing key(s) as its first agents, holding every flag')
      .option('--kx <name>', "X25519 wallet key published as the first agent's key-agreement key")
      .requiredOption('--recovery-key <name...>', 'Ed25519 wallet key(s) whose digests become the recovery commitment')
      .option('--recovery-threshold <n>', 'how many recovery keys must sign a recovery', parsePositive, 1)
      .option('--rules <list>', 'signatures needed per change, e.g. grant=2,revoke=1,rules=2,did=1', parseRules),
  ).action(async (opts: Signing & { kx?: string; recoveryKey: string[]; recoveryThreshold: number; rules?: Partial<Rules> }, cmd: Command) => {
    const { Context, signWith, recoveryKeyDigest, policyCreate, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    const event = await ctx.withWallet((w) => {
      const kx = opts.kx === undefined ? undefined : w.getKey(opts.kx);
      if (kx !== undefined && kx.type !== 'x25519') throw badInput(`--kx key '${opts.kx}' must be x25519`);
      const agents = opts.key.map((name, i) => ({
        key: w.getKey(name).publicKey,
        ...(i === 0 && kx !== undefined ? { kx: kx.publicKey } : {}),
        flags: ALL_FLAGS,
      }));
      const digests = opts.recoveryKey.map((name) => recoveryKeyDigest(w.getKey(name).publicKey));
      return signWith(w, policyCreate(agents, { digests, threshold: opts.recoveryThreshold }, opts.rules), opts.key);
    });
    await submitOrWrite(ctx, event, opts, (r) => `Created policy ${r.subject}`);
  });

  asOfOptions(policy.command('show').description('show a policy, verified from its inception').requiredOption('--policy <address>', 'the policy')).action(
    async (opts: AsOf & { policy: string }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      const record = await verifiedPolicy(ctx, opts.policy, asOf(opts));
      emit(ctx, { ...record }, () => describePolicy(record));
    },
  );

  signingOptions(
    policy
      .command('grant')
      .description('add an agent, or change its flags')
      .requiredOption('--policy <address>', 'the policy')
      .requiredOption('--agent <key>', "the agent's Ed25519 key (z6Mk…)", (v) => checkAgentKey(v))
      .option('--kx <key>', "the agent's X25519 key (z6LS…); an agent already in the policy keeps its own when this is left out", (v) =>
        checkAgentKey(v, 'x25519'),
      )
      .requiredOption('--flags <list>', 'e.g. PROVE, or ADMIN, or PROVE,PROVE_GRANT, or none', parseFlagOption),
  ).action(async (opts: Signing & { policy: string; agent: string; kx?: string; flags: number }, cmd: Command) => {
    const { Context, signWith, nextEvent, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    const record = await verifiedPolicy(ctx, opts.policy);
    // A grant replaces the agent's whole entry: changing an agent's flags must not take away the
    // key-agreement key it is messaged by (co-signature requests, notices).
    const kx = opts.kx ?? record.policy.agents.find((a) => a.key === opts.agent)?.kx;
    if (kx === undefined) ctx.io.err(`dkms: note: ${opts.agent} gets no key-agreement key (--kx): the owner's other agents cannot message it\n`);
    const agent = { key: opts.agent, ...(kx === undefined ? {} : { kx }), flags: opts.flags };
    const event = await ctx.withWallet((w) => signWith(w, nextEvent('policy.grant', record.subject, record, { agent }), opts.key));
    await submitOrWrite(ctx, event, opts, () => `Granted ${flagNames(opts.flags).join(',') || 'no flags'} to ${opts.agent}`);
  });

  signingOptions(
    policy
      .command('revoke')
      .description('remove an agent from the policy')
      .requiredOption('--policy <address>', 'the policy')
      .requiredOption('--agent <key>', "the agent's Ed25519 key (z6Mk…)", (v) => checkAgentKey(v)),
  ).action(async (opts: Signing & { policy: string; agent: string }, cmd: Command) => {
    const { Context, signWith, nextEvent, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    const record = await verifiedPolicy(ctx, opts.policy);
    const event = await ctx.withWallet((w) => signWith(w, nextEvent('policy.revoke', record.subject, record, { key: opts.agent }), opts.key));
    await submitOrWrite(ctx, event, opts, () => `Revoked ${opts.agent}`);
  });

  signingOptions(
    policy
      .command('rules')
      .description('change how many agents must sign each kind of change')
      .requiredOption('--policy <address>', 'the policy')
      .requiredOption('--set <list>', 'e.g. grant=2,revoke=2 (unnamed rules keep their value)', parseRules),
  ).action(async (opts: Signing & { policy: string; set: Partial<Rules> }, cmd: Command) => {
    const { Context, signWith, nextEvent, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    const record = await verifiedPolicy(ctx, opts.policy);
    const rules = { ...record.policy.rules, ...opts.set };
    const event = await ctx.withWallet((w) => signWith(w, nextEvent('policy.rules', record.subject, record, { rules }), opts.key));
    await submitOrWrite(ctx, event, opts, () => `Rules are now ${RULE_NAMES.map((r) => `${r}=${rules[r]}`).join(' ')}`);
  });

  return policy;
}
