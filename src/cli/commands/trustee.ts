/** `dkms trustee …`: your trustees (social recovery), and your part as someone else's trustee. */
import { Command, Option } from 'commander';
import type { EdgeAgent } from '../../agent/edge-agent.js';
import { DkmsError } from '../../errors.js';
import type { Context } from '../context.js';
import type { SecretOptions } from '../recovery-input.js';
import { showReceived } from './agent.js';
import { currentSecret, currentSecretOptions } from './recovery.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [
    { ALL_HANDLERS },
    { addRecoveryRequest, approveRecoveryRequest, denyRecoveryRequest, recoveryRequests },
    { abortRecoveryChange, commitRecovery },
    { readPrepared, readSetup, trustees },
    { answerOffer, heldShares, inviteTrustees, missingAcks, trusteeOffers },
    { withAgent },
    { Context },
    { emit, table },
    { getShortSecret, refuseSecretArgument },
  ] = await Promise.all([
    import('../../recovery/protocols.js'),
    import('../../recovery/requests.js'),
    import('../../recovery/setup.js'),
    import('../../recovery/state.js'),
    import('../../recovery/trustees.js'),
    import('../agent-access.js'),
    import('../context.js'),
    import('../output.js'),
    import('../secrets.js'),
  ]);
  return {
    ALL_HANDLERS,
    addRecoveryRequest,
    approveRecoveryRequest,
    denyRecoveryRequest,
    recoveryRequests,
    abortRecoveryChange,
    commitRecovery,
    readPrepared,
    readSetup,
    trustees,
    answerOffer,
    heldShares,
    inviteTrustees,
    missingAcks,
    trusteeOffers,
    withAgent,
    Context,
    emit,
    table,
    getShortSecret,
    refuseSecretArgument,
  };
}

/** Handles waiting messages first, so lists show what trustees and owners have sent. */
async function receiveFirst(ctx: Context, agent: EdgeAgent): Promise<void> {
  const { ALL_HANDLERS } = await load();
  if (agent.profile.cloud !== undefined) showReceived(ctx, await agent.receive(ALL_HANDLERS));
}

export function trusteeCommand(): Command {
  const trustee = new Command('trustee').description('social recovery: your trustees, and the shares you keep for others');

  trustee
    .command('invite')
    .description('ask the other owner of a connection to be one of your trustees')
    .argument('<connection...>', 'connection ids or labels')
    .action(async (refs: string[], _opts: unknown, cmd: Command) => {
      const { Context, emit, inviteTrustees, withAgent } = await load();
      const ctx = Context.of(cmd);
      const invited = await withAgent(ctx, (a) => inviteTrustees(a, refs));
      emit(
        ctx,
        { trustees: invited },
        () => `asked ${invited.map((t) => `'${t.label}'`).join(', ')}; their answers arrive with \`dkms trustee list\` or \`dkms message inbox\``,
      );
    });

  trustee
    .command('list')
    .description('your trustees, and the shares you hold for other owners')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, emit, heldShares, missingAcks, readPrepared, readSetup, table, trustees, withAgent } = await load();
      const ctx = Context.of(cmd);
      const view = await withAgent(ctx, async (a) => {
        await receiveFirst(ctx, a);
        const setup = readSetup(a);
        const prepared = readPrepared(a);
        const current = new Set(setup?.social?.trustees ?? []);
        return {
          trustees: trustees(a).map((t) => ({ id: t.id, label: t.label, status: t.status, holdsShare: current.has(t.id), connection: t.connection })),
          threshold: setup?.social?.threshold ?? null,
          prepared: prepared === undefined ? null : { set: prepared.set, missing: missingAcks(a, prepared).map((t) => t.label) },
          holding: heldShares(a).map((h) => ({
            offer: h.offer,
            owner: h.owner.label,
            policy: h.owner.policy,
            shares: h.shares.map((s) => s.state).join(',') || 'none yet',
          })),
        };
      });
      emit(ctx, view, () =>
        [
          view.trustees.length === 0
            ? 'you have no trustees: `dkms trustee invite <connection>`'
            : table(view.trustees, ['label', 'status', 'holdsShare', 'id']),
          ...(view.threshold === null ? [] : [`recovery needs ${view.threshold} of them`]),
          ...(view.prepared === null ? [] : [`a change is prepared; waiting for: ${view.prepared.missing.join(', ') || 'nobody: run dkms trustee commit'}`]),
          '',
          view.holding.length === 0 ? 'you hold no shares for others' : `you hold shares for:\n${table(view.holding, ['owner', 'shares', 'offer'])}`,
        ].join('\n'),
      );
    });

  trustee
    .command('requests')
    .description('offers to become a trustee, and recovery requests from owners you keep shares for')
    .option('--add <request>', 'record a recovery request an owner handed you (dkms-recovery-request:…)')
    .action(async (opts: { add?: string }, cmd: Command) => {
      const { Context, addRecoveryRequest, emit, recoveryRequests, table, trusteeOffers, withAgent } = await load();
      const ctx = Context.of(cmd);
      const view = await withAgent(ctx, async (a) => {
        await receiveFirst(ctx, a);
        if (opts.add !== undefined) addRecoveryRequest(a, opts.add);
        return {
          offers: trusteeOffers(a)
            .filter((o) => o.status === 'waiting')
            .map((o) => ({ id: o.id, owner: o.owner.label, received: o.received })),
          requests: recoveryRequests(a).map((r) => ({
            id: r.id,
            label: r.label,
            status: r.status,
            wrongAnswers: r.failures.length,
            received: r.received,
            expires: r.expires,
          })),
        };
      });
      emit(ctx, view, () =>
        [
          view.offers.length === 0
            ? 'no trustee offers waiting'
            : `asked to be a trustee (dkms trustee approve|deny <id>):\n${table(view.offers, ['owner', 'id', 'received'])}`,
          '',
          view.requests.length === 0
            ? 'no recovery requests'
            : `recovery requests (call the owner; dkms trustee approve <id> --owner <name>, then type what they read):\n${table(view.requests, ['label', 'status', 'wrongAnswers', 'id', 'expires'])}`,
        ].join('\n'),
      );
    });

  trustee
    .command('approve')
    .description('accept an offer to be a trustee, or release your shares to a recovery request once the owner read you its challenge')
    .argument('<id>', 'offer or request id (`dkms trustee requests`)')
    .option('--owner <name>', 'for a request: which owner it is (label or offer id), if you keep shares for several')
    .option(
      '--challenge-file <file>',
      'for a request: a file whose first line is the challenge the owner read to you (else $DKMS_CHALLENGE, else asked at the terminal)',
    )
    .addOption(new Option('--challenge <code>').hideHelp())
    .action(async (id: string, opts: { owner?: string; challenge?: string; challengeFile?: string }, cmd: Command) => {
      const { Context, answerOffer, approveRecoveryRequest, emit, getShortSecret, heldShares, refuseSecretArgument, trusteeOffers, withAgent } = await load();
      const ctx = Context.of(cmd);
      const source = { file: opts.challengeFile, fileFlag: '--challenge-file', env: 'DKMS_CHALLENGE', prompt: 'Challenge the owner read to you' };
      refuseSecretArgument(opts.challenge, '--challenge', source);
      const outcome = await withAgent(ctx, async (a) => {
        if (trusteeOffers(a).some((o) => o.id === id)) return { offer: await answerOffer(a, id, true) };
        const holding = heldShares(a);
        const owner = opts.owner ?? (holding.length === 1 ? holding[0]?.offer : undefined);
        if (owner === undefined) throw new DkmsError('BAD_INPUT', 'say which owner this is with --owner (`dkms trustee list`)');
        const challenge = await getShortSecret(ctx.io, source);
        return { request: await approveRecoveryRequest(a, id, owner, challenge) };
      });
      emit(ctx, outcome, () => ('offer' in outcome ? 'you are now a trustee; the owner will send your share' : `released your shares to request ${id}`));
    });

  trustee
    .command('deny')
    .description('decline an offer to be a trustee, or refuse a recovery request')
    .argument('<id>', 'offer or request id')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const { Context, answerOffer, denyRecoveryRequest, emit, trusteeOffers, withAgent } = await load();
      const ctx = Context.of(cmd);
      const outcome = await withAgent(ctx, async (a) =>
        trusteeOffers(a).some((o) => o.id === id) ? { offer: await answerOffer(a, id, false) } : { request: denyRecoveryRequest(a, id) },
      );
      emit(ctx, outcome, () => ('offer' in outcome ? 'declined' : `refused recovery request ${id}`));
    });

  currentSecretOptions(trustee.command('commit').description('finish a prepared change of trustees once every new trustee holds its share')).action(
    async (opts: SecretOptions & { fromTrustees?: boolean }, cmd: Command) => {
      const { Context, commitRecovery, emit, withAgent } = await load();
      const ctx = Context.of(cmd);
      const keys = await currentSecret(ctx, opts);
      try {
        const outcome = await withAgent(
          ctx,
          async (a) => {
            await receiveFirst(ctx, a);
            return commitRecovery(a, keys);
          },
          { backup: false },
        );
        emit(ctx, { ...outcome }, () =>
          outcome.state === 'pending'
            ? `the change waits for its delay: \`dkms recovery complete\` from ${outcome.until}`
            : 'the change is committed: the new trustees hold the only working shares',
        );
      } finally {
        keys?.wipe();
      }
    },
  );

  trustee
    .command('abort')
    .description('drop a prepared change of trustees (the current ones keep working)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, abortRecoveryChange, emit, withAgent } = await load();
      const ctx = Context.of(cmd);
      const dropped = await withAgent(ctx, (a) => abortRecoveryChange(a), { backup: false });
      emit(ctx, { aborted: dropped.set }, () => 'dropped the prepared change; your current recovery is unchanged');
    });

  return trustee;
}
