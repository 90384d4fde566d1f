/** `dkms agent …`: this device's agent — set it up, pair another, register a cloud agent, revoke. */
import { existsSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { KdfTier } from '../../crypto/index.js';
import { DkmsError, badInput } from '../../errors.js';
import { flagNames, parseFlags } from '../../policy/flags.js';
import type { EdgeAgent, ReceiveEntry } from '../../agent/edge-agent.js';
import type { RevocationOutcome } from '../../agent/revocation.js';
import type { Context } from '../context.js';
import { parseNonNegative, parsePositive } from '../options.js';
import { DEFAULT_PAIRING_TTL_SECONDS } from '../../agent/defaults.js';
import { DEFAULT_KDF_TIER } from '../../crypto/kdf-tiers.js';
import { parseKdfTier } from '../options.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [
    pairing,
    { initFirstAgent, provisionKeys, registerCloudAgent },
    revocation,
    { ALL_HANDLERS },
    access,
    { Context },
    secrets,
    ledger,
    output,
    qr,
    { nameForPeers },
  ] = await Promise.all([
    import('../../agent/pairing.js'),
    import('../../agent/provision.js'),
    import('../../agent/revocation.js'),
    import('../../recovery/protocols.js'),
    import('../agent-access.js'),
    import('../context.js'),
    import('../secrets.js'),
    import('../ledger-access.js'),
    import('../output.js'),
    import('../../qr.js'),
    import('../../agent/agent-store.js'),
  ]);
  return {
    ...pairing,
    nameForPeers,
    initFirstAgent,
    provisionKeys,
    registerCloudAgent,
    ...revocation,
    ALL_HANDLERS,
    ...access,
    Context,
    ...secrets,
    ...ledger,
    ...output,
    ...qr,
  };
}

function flagsOption(value: string): number {
  try {
    return parseFlags(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** An option taking agent flags, whose default help shows by name ("PROVE", "none"), not as the number it parses to. */
function flagsFlag(flags: string, description: string, defaultNames: string): Option {
  return new Option(flags, description).argParser(flagsOption).default(parseFlags(defaultNames), defaultNames);
}

export const tierOption = () => new Option('--kdf-tier <tier>', 'Argon2id cost if a new wallet is created').default(DEFAULT_KDF_TIER).argParser(parseKdfTier);

/** Checks the agency URL and asks the owner's consent to register a cloud agent there (flags none unless chosen): before anything is written. */
async function consentToRegister(ctx: Context, agencyUrl: string, flags: number, yes: boolean | undefined): Promise<void> {
  const { checkHttpUrl, confirm } = await load();
  checkHttpUrl(agencyUrl, '--agency');
  const what = flags === 0 ? 'no flags (a relay and mailbox only)' : flagNames(flags).join(',');
  if (!(await confirm(ctx, `Register a cloud agent at ${agencyUrl} with ${what}?`, yes)))
    throw new DkmsError('PAIRING_DECLINED', 'cloud agent registration cancelled');
}

/** Registers the cloud agent, the owner having consented (consentToRegister). */
async function register(ctx: Context, agent: EdgeAgent, agencyUrl: string, flags: number) {
  const { registerCloudAgent } = await load();
  ctx.progress('Registering the cloud agent…');
  return registerCloudAgent(agent, agencyUrl, flags);
}

/** Shows what a receive loop did, one line per message, on stderr (stdout stays for results). */
export function showReceived(ctx: Context, entries: readonly ReceiveEntry[]): void {
  if (ctx.json) return;
  for (const e of entries) {
    if (e.outcome === 'ignored') continue;
    ctx.io.err(e.outcome === 'handled' ? `  ${e.detail}\n` : `  refused ${e.type}: ${e.code ?? ''}: ${e.detail}\n`);
  }
}

/** What `agent accept` reports once this device is an agent of the invitation's policy. */
async function paired(agent: EdgeAgent) {
  const { label, policy, key } = agent.profile;
  return { label, policy, key, flags: flagNames((await agent.refreshAgents()).agents.find((x) => x.key === key)?.flags ?? 0) };
}

export function agentCommand(): Command {
  const agent = new Command('agent').description("this device's agent: set up, pair devices, cloud agent, revoke");

  agent
    .command('init')
    .description('set up the first agent of a new identity: keys, link secret, your policy on the ledger (this agent holds every flag)')
    .option('--label <name>', 'a name for this device', 'laptop')
    .option('--did', 'also create a public DID controlled by your policy')
    .option('--agency <url>', 'register a cloud agent at this agency')
    .addOption(flagsFlag('--cloud-flags <flags>', 'flags for the cloud agent', 'none'))
    .option('--yes', 'consent to the cloud agent registration without asking')
    .option('--hsm [uri]', "make this agent's signing key (which holds every flag) in a PKCS#11 token, never extractable: a PKCS#11 URI, or --token/--module")
    .option('--token <label>', 'with --hsm: the token')
    .option('--module <path>', "with --hsm: the token's PKCS#11 module (else $DKMS_HSM_MODULE)")
    .addOption(tierOption())
    .action(
      async (
        opts: {
          label: string;
          did?: boolean;
          agency?: string;
          cloudFlags: number;
          yes?: boolean;
          kdfTier: KdfTier;
          hsm?: string | boolean;
          token?: string;
          module?: string;
        },
        cmd: Command,
      ) => {
        const { Context, ledgerUrl, withAgent, initFirstAgent, emit } = await load();
        const ctx = Context.of(cmd);
        // Everything is checked, and consent given, before the first thing is written anywhere.
        const ledger = ledgerUrl(ctx, ctx.options.ledger);
        if (opts.hsm === undefined && (opts.token !== undefined || opts.module !== undefined)) throw badInput('--token and --module go with --hsm');
        const inToken = opts.hsm === undefined ? undefined : (await import('../token-choice.js')).chooseToken(ctx, opts);
        if (opts.agency !== undefined) await consentToRegister(ctx, opts.agency, opts.cloudFlags, opts.yes);
        const result = await withAgent(
          ctx,
          async (a) => {
            // A set-up that stopped after the policy was made, before the cloud agent was: only that is left.
            const have = a.hasProfile() ? a.profile : undefined;
            const onlyRegistration =
              have !== undefined && opts.agency !== undefined && have.cloud === undefined && (opts.did !== true || have.did !== undefined);
            if (!onlyRegistration) ctx.progress('Creating your policy on the ledger…');
            const profile = onlyRegistration
              ? have
              : await initFirstAgent(a, { label: opts.label, ledgerUrl: ledger, ...(opts.did === true ? { did: { services: [] } } : {}) });
            const cloud = opts.agency === undefined ? undefined : await register(ctx, a, opts.agency, opts.cloudFlags);
            return { label: profile.label, policy: profile.policy, did: profile.did, key: profile.key, kx: profile.kx, cloud };
          },
          {
            create: true,
            kdfTier: opts.kdfTier,
            // The agent's signing key made in the token first: provisioning then uses it as the agent's key.
            ...(inToken === undefined
              ? {}
              : {
                  prepare: async (w) => {
                    const { AGENT_SIGN_KEY } = await import('../../agent/agent-store.js');
                    if (w.listKeys().some((k) => k.name === AGENT_SIGN_KEY)) return;
                    const { audited } = await import('../custody.js');
                    const label = inToken.label ?? `${AGENT_SIGN_KEY}-${opts.label}`;
                    await audited(ctx, 'key-create', { name: AGENT_SIGN_KEY, token: inToken.token, label }, async () => {
                      const token = await inToken.ctx.openToken(inToken.module, inToken.token);
                      w.createTokenKey(AGENT_SIGN_KEY, token, { module: inToken.module, label });
                    });
                  },
                }),
          },
        );
        emit(ctx, result, () =>
          [
            `agent '${result.label}' ready`,
            `policy:  ${result.policy}`,
            ...(result.did === undefined ? [] : [`did:     ${result.did}`]),
            `key:     ${result.key}`,
            ...(result.cloud === undefined
              ? ['no cloud agent yet: dkms agent register --agency <url>']
              : [`cloud:   ${result.cloud.id} at ${result.cloud.agency}`]),
            'recovery: a provisional recovery key is in this wallet; set up real recovery as soon as you can',
          ].join('\n'),
        );
      },
    );

  agent
    .command('register')
    .description('register your cloud agent at an agency and grant it on the ledger')
    .requiredOption('--agency <url>', 'the agency')
    .addOption(flagsFlag('--flags <flags>', 'flags for the cloud agent', 'none'))
    .option('--yes', 'consent without asking')
    .action(async (opts: { agency: string; flags: number; yes?: boolean }, cmd: Command) => {
      const { Context, withAgent, emit } = await load();
      const ctx = Context.of(cmd);
      await consentToRegister(ctx, opts.agency, opts.flags, opts.yes);
      const cloud = await withAgent(ctx, (a) => register(ctx, a, opts.agency, opts.flags));
      emit(ctx, { ...cloud }, () => `cloud agent ${cloud.id} at ${cloud.agency}\nkey ${cloud.key}\nendpoint ${cloud.endpoint}`);
    });

  agent
    .command('name')
    .description("show, or choose, the name other owners see for you (in connection invitations and answers; default: this device's label)")
    .argument('[name]', 'the new name, 1 to 64 characters')
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      const { Context, withAgent, emit, checkNameForPeers, nameForPeers, setNameForPeers } = await load();
      const ctx = Context.of(cmd);
      // Checked before the wallet is opened.
      if (name !== undefined) checkNameForPeers(name);
      const profile = await withAgent(ctx, async (a) => (name === undefined ? a.profile : setNameForPeers(a, name)));
      const shown = nameForPeers(profile);
      emit(ctx, { name: shown, chosen: profile.name !== undefined, label: profile.label }, () =>
        name === undefined
          ? `other owners see you as '${shown}'${profile.name === undefined ? " (this device's label: choose a name with `dkms agent name NAME`)" : ''}`
          : `other owners will see you as '${shown}' in connections made from now on (and devices you pair from now on use it too)`,
      );
    });

  agent
    .command('list')
    .description("the owner's agents, as the ledger says now (verified)")
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, withAgent, emit, table } = await load();
      const ctx = Context.of(cmd);
      const { view, me } = await withAgent(ctx, async (a) => ({ view: await a.refreshAgents(), me: a.profile.key }));
      const rows = view.agents.map((x) => ({
        key: x.key,
        label: x.label ?? '',
        flags: flagNames(x.flags).join(',') || 'none',
        kx: x.kx ?? '',
        me: x.key === me,
      }));
      // A revoked or recovered-away agent never gets here (AGENT_REMOVED); one not listed yet is mid-pairing or mid-restore.
      const listed = rows.some((r) => r.me);
      emit(ctx, { policy: view.policy, agents: rows, listed }, () =>
        [
          table(
            rows.map((r) => ({ ...r, me: r.me ? '*' : '' })),
            ['me', 'label', 'flags', 'key'],
          ),
          ...(listed ? [] : ["this agent is not in the owner's policy yet: finish its pairing (dkms agent accept) or its restore (dkms recovery restore)"]),
        ].join('\n'),
      );
    });

  agent
    .command('pair')
    .description('pair another device: shows a one-time invitation (QR code) and passcode, then waits for it to answer')
    .addOption(flagsFlag('--flags <flags>', 'flags the new agent gets', 'PROVE'))
    .option('--label <name>', 'a name for the new device', 'device')
    .option('--ttl <seconds>', 'how long the invitation is valid', parsePositive, DEFAULT_PAIRING_TTL_SECONDS)
    .option('--yes', 'grant without asking once the new device answers')
    .action(async (opts: { flags: number; label: string; ttl: number; yes?: boolean }, cmd: Command) => {
      const {
        Context,
        checkLabel,
        checkConfirmable,
        withAgent,
        unfinishedPairing,
        completePairing,
        checkPairing,
        createInvitation,
        qrCode,
        announce,
        ALL_HANDLERS,
        waitingHandlers,
        confirm,
        emit,
      } = await load();
      const ctx = Context.of(cmd);
      checkLabel(opts.label);
      checkConfirmable(ctx, 'granting the new device once it answers', opts.yes);
      const result = await withAgent(ctx, async (a) => {
        // A pairing the owner confirmed that failed half way (ledger or agency out of reach) is finished first, as it was confirmed.
        const unfinished = unfinishedPairing(a);
        if (unfinished !== undefined) {
          ctx.progress(`Finishing the pairing of '${unfinished.label}' you confirmed before…`);
          return completePairing(a, unfinished.invitation, true);
        }
        await checkPairing(a, opts.flags);
        const created = createInvitation(a, { flags: opts.flags, label: opts.label, ttlSeconds: opts.ttl });
        const qr = await (await qrCode()).toString(created.text, { type: 'terminal', small: true });
        announce(
          ctx,
          { invitation: created.text, passcode: created.passcode, expires: created.invitation.expires },
          `${qr}\nOn the new device run (it asks for the passcode):\n  dkms agent accept '${created.text}'\n\npasscode: ${created.passcode}   (valid until ${created.invitation.expires})\nwaiting for the new device…`,
        );
        const deadline = Date.parse(created.invitation.expires);
        while (Date.now() < deadline) {
          ctx.io.signal.throwIfAborted();
          const entries = await a.receive(
            { ...ALL_HANDLERS, ...waitingHandlers(created.invitation.id) },
            { waitSeconds: Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000))) },
          );
          showReceived(ctx, entries);
          const request = entries
            .map((e) => e.data?.['pairing'] as { invitation: string; key: string; label: string } | undefined)
            .find((p) => p?.invitation === created.invitation.id);
          if (request === undefined) continue;
          const yes = await confirm(ctx, `Grant ${flagNames(opts.flags).join(',') || 'no flags'} to '${request.label}' (${request.key})?`, opts.yes);
          ctx.progress(yes ? 'Granting on the ledger…' : 'Declining…');
          if (!yes) {
            await completePairing(a, created.invitation.id, false).catch(() => undefined);
            throw new DkmsError('PAIRING_DECLINED', 'you declined the pairing');
          }
          return completePairing(a, created.invitation.id, true);
        }
        throw new DkmsError('PAIRING_TIMEOUT', 'the invitation expired before a new device answered');
      });
      emit(
        ctx,
        { paired: result.key, label: result.label, flags: flagNames(result.flags) },
        () => `paired '${result.label}' (${result.key}) with ${flagNames(result.flags).join(',') || 'no flags'}`,
      );
    });

  agent
    .command('accept')
    .description('on a new device: answer a pairing invitation from your existing agent')
    .argument('<invitation>', 'the invitation text (dkms-pair:…), as shown or scanned')
    .option('--passcode-file <file>', 'a file whose first line is the passcode shown beside the invitation (else $DKMS_PASSCODE, else asked at the terminal)')
    .addOption(new Option('--passcode <code>').hideHelp())
    .option('--label <name>', 'a name for this device', 'device')
    .option('--wait <seconds>', 'how long to wait for the owner to confirm', parsePositive, 300)
    .addOption(tierOption())
    .action(async (text: string, opts: { passcode?: string; passcodeFile?: string; label: string; wait: number; kdfTier: KdfTier }, cmd: Command) => {
      const {
        Context,
        refuseSecretArgument,
        checkLabel,
        parseInvitation,
        getShortSecret,
        withAgent,
        answeredWith,
        answerInvitation,
        provisionKeys,
        awaitWelcome,
        emit,
      } = await load();
      const ctx = Context.of(cmd);
      const source = { file: opts.passcodeFile, fileFlag: '--passcode-file', env: 'DKMS_PASSCODE', prompt: 'Passcode shown beside the invitation' };
      refuseSecretArgument(opts.passcode, '--passcode', source);
      checkLabel(opts.label);
      const invitation = parseInvitation(text);
      const askPasscode = async (): Promise<string> => {
        if (Date.parse(invitation.expires) < Date.now()) throw new DkmsError('INVITATION_EXPIRED', 'the invitation has expired: ask for a new one');
        return getShortSecret(ctx.io, source);
      };
      // A new device is checked before its wallet is created; one that already answered this
      // invitation (an accept run again after a timeout) only waits for the welcome.
      let passcode = existsSync(ctx.walletPath) ? undefined : await askPasscode();
      const ctxWithLedger = ctx.with({ ledger: ctx.options.ledger ?? invitation.ledger });
      const result = await withAgent(
        ctxWithLedger,
        async (a) => {
          const answered = answeredWith(a, invitation);
          if (a.hasProfile()) {
            if (answered === undefined || a.profile.policy !== invitation.policy)
              throw new DkmsError('AGENT_EXISTS', `this data directory already holds agent '${a.profile.label}'`);
            return paired(a);
          }
          const label = answered ?? opts.label;
          if (answered === undefined) {
            passcode ??= await askPasscode();
            await answerInvitation(a, invitation, passcode, label, provisionKeys(a));
          }
          ctx.progress('Waiting for your other device to confirm…');
          await awaitWelcome(a, invitation, label, Date.now() + opts.wait * 1000);
          return paired(a);
        },
        { create: true, kdfTier: opts.kdfTier },
      );
      emit(ctx, result, () => `paired: agent '${result.label}' of ${result.policy} with ${result.flags.join(',') || 'no flags'}`);
    });

  agent
    .command('revoke')
    .description('remove an agent from your policy (co-signers are asked when your rules need several)')
    .argument('<agent>', "the agent's key (z6Mk…) or label")
    .option('--wait <seconds>', 'how long to wait for co-signers (0: ask them and answer at once; the request completes when they sign)', parseNonNegative, 120)
    .action(async (ref: string, opts: { wait: number }, cmd: Command) => {
      const { Context, withAgent, resolveAgent, revokeAgent, ALL_HANDLERS, emit } = await load();
      const ctx = Context.of(cmd);
      const outcome: RevocationOutcome = await withAgent(ctx, async (a) => {
        const target = await resolveAgent(a, ref);
        if (target.key === a.profile.key) throw new DkmsError('BAD_INPUT', 'an agent cannot revoke itself here: revoke it from another agent');
        const first = await revokeAgent(a, target.key);
        if (first.state === 'revoked' || opts.wait === 0) return first;
        ctx.progress(`Asked co-signers: ${first.signatures} of ${first.needed} signatures; waiting…`);
        const deadline = Date.now() + opts.wait * 1000;
        while (Date.now() < deadline) {
          ctx.io.signal.throwIfAborted();
          const entries = await a.receive(ALL_HANDLERS, { waitSeconds: Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000))) });
          showReceived(ctx, entries);
          const done = entries.map((e) => e.data?.['revoked'] as RevocationOutcome | undefined).find((r) => r?.target === target.key);
          if (done !== undefined) return done;
        }
        throw new DkmsError(
          'APPROVAL_TIMEOUT',
          `not enough co-signers answered in time; request ${first.requestId ?? ''} stays open and completes when they do (dkms message inbox)`,
        );
      });
      emit(ctx, { ...outcome }, () =>
        outcome.state === 'waiting'
          ? `asked co-signers to revoke ${outcome.target} (${outcome.signatures} of ${outcome.needed} signatures): request ${outcome.requestId ?? ''} completes when they sign (dkms message inbox)`
          : `revoked ${outcome.target} (${outcome.signatures} of ${outcome.needed} signatures)${outcome.rotated?.length ? `; rotated ${outcome.rotated.length} connection(s)` : ''}`,
      );
    });

  agent
    .command('approvals')
    .description('requests from your other agents waiting for this agent to co-sign')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, withAgent, ALL_HANDLERS, pendingApprovals, emit, table } = await load();
      const ctx = Context.of(cmd);
      const list = await withAgent(ctx, async (a) => {
        showReceived(ctx, await a.receive(ALL_HANDLERS));
        return pendingApprovals(a);
      });
      const rows = list.map((x) => ({ id: x.id, from: x.fromLabel ?? x.from, reason: x.reason, received: x.received }));
      emit(ctx, { approvals: rows }, () => (rows.length === 0 ? 'no approvals waiting' : table(rows, ['id', 'from', 'received', 'reason'])));
    });

  for (const [name, approve] of [
    ['approve', true],
    ['deny', false],
  ] as const) {
    agent
      .command(name)
      .description(approve ? 'co-sign a request from another of your agents' : 'decline a request from another of your agents')
      .argument('<id>', 'the request id (dkms agent approvals)')
      .option('--yes', 'do not ask')
      .action(async (id: string, opts: { yes?: boolean }, cmd: Command) => {
        const { Context, withAgent, pendingApprovals, confirm, answerApproval, emit } = await load();
        const ctx = Context.of(cmd);
        const approval = await withAgent(ctx, async (a) => {
          const found = pendingApprovals(a).find((x) => x.id === id);
          if (found === undefined) throw new DkmsError('APPROVAL_NOT_FOUND', `no approval request '${id.slice(0, 40)}'`);
          if (approve && !(await confirm(ctx, `Co-sign: ${found.reason}?`, opts.yes))) throw new DkmsError('PAIRING_DECLINED', 'not co-signed');
          return answerApproval(a, id, approve);
        });
        emit(ctx, { id, approved: approve, reason: approval.reason }, () => `${approve ? 'co-signed' : 'declined'}: ${approval.reason}`);
      });
  }

  return agent;
}
