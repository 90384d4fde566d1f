/** `dkms recovery …`: set up recovery, back up, print the paper wallet, and recover on a new device. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { EdgeAgent } from '../../agent/edge-agent.js';
import { DkmsError, isDkmsError } from '../../errors.js';
import type { RestoreOutcome } from '../../recovery/restore.js';
import type { RecoveryKeys } from '../../recovery/secret.js';
import type { CommitOutcome } from '../../recovery/setup.js';
import { DEFAULT_AGENCY_PORT } from '../../server/ports.js';
import type { Context } from '../context.js';
import { parsePositive } from '../options.js';
import { showReceived, tierOption } from './agent.js';
import type { KdfTier } from '../../crypto/index.js';
import { PHRASE_ENV, recoverySecretInput, secretOptions, type SecretOptions } from '../recovery-input.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [
    { ALL_HANDLERS },
    { wipe },
    { writeFileAtomic },
    { encodePaperText, mnemonicFromSecret, paperHtml, paperQrPng, paperQrSvg, paperQrTerminal },
    { collectReleases, createRecoveryRequest, myRequest, rebuiltSecrets, releaseProgress },
    { cancelRecovery, completeRecovery, restoreFromSecret },
    { RecoveryKeys },
    { checkPrepare, commitRecovery, currentRecoverySigner, isCommitted, makeBackup, prepareRecovery },
    { readPrepared, readSetup, trustees },
    { missingAcks },
    { announce, checkConfirmable, confirm, withAgent },
    { Context },
    { checkHttpUrl, ledgerUrl },
    { checkWritable, readInput },
    { emit },
    { qrCode },
  ] = await Promise.all([
    import('../../recovery/protocols.js'),
    import('../../crypto/index.js'),
    import('../../files.js'),
    import('../../recovery/paper.js'),
    import('../../recovery/requests.js'),
    import('../../recovery/restore.js'),
    import('../../recovery/secret.js'),
    import('../../recovery/setup.js'),
    import('../../recovery/state.js'),
    import('../../recovery/trustees.js'),
    import('../agent-access.js'),
    import('../context.js'),
    import('../ledger-access.js'),
    import('../files.js'),
    import('../output.js'),
    import('../../qr.js'),
  ]);
  return {
    ALL_HANDLERS,
    wipe,
    writeFileAtomic,
    encodePaperText,
    mnemonicFromSecret,
    paperHtml,
    paperQrPng,
    paperQrSvg,
    paperQrTerminal,
    collectReleases,
    createRecoveryRequest,
    myRequest,
    rebuiltSecrets,
    releaseProgress,
    cancelRecovery,
    completeRecovery,
    restoreFromSecret,
    RecoveryKeys,
    checkPrepare,
    commitRecovery,
    currentRecoverySigner,
    isCommitted,
    makeBackup,
    prepareRecovery,
    readPrepared,
    readSetup,
    trustees,
    missingAcks,
    announce,
    checkConfirmable,
    confirm,
    withAgent,
    Context,
    checkHttpUrl,
    ledgerUrl,
    checkWritable,
    readInput,
    emit,
    qrCode,
  };
}

export const DEFAULT_AGENCY_URL = `http://127.0.0.1:${DEFAULT_AGENCY_PORT}`;

/** `90`, `90s`, `45m`, `48h`, `7d` → seconds. */
export function parseDuration(value: string): number {
  const match = /^(\d+)\s*([smhd]?)$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError('must be a duration like 3600, 90m, 48h or 7d');
  const seconds = Number(match[1]) * ({ '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] ?? ''] ?? 1);
  if (seconds > 365 * 86_400) throw new InvalidArgumentError('must be at most a year');
  return seconds;
}

interface PaperOptions {
  paperDir?: string;
  paperFormat: 'png' | 'svg';
}

function paperOptions(cmd: Command, dirHelp: string): Command {
  return cmd.option('--paper-dir <dir>', dirHelp).addOption(new Option('--paper-format <format>', 'image format').choices(['png', 'svg']).default('png'));
}

/**
 * The current recovery secret a change needs, as keys: from the paper wallet (phrase or QR), or
 * rebuilt from shares trustees released (`--from-trustees`); undefined when none was given.
 */
export async function currentSecret(ctx: Context, opts: SecretOptions & { fromTrustees?: boolean }): Promise<RecoveryKeys | undefined> {
  const { RecoveryKeys, wipe, withAgent } = await load();
  const current =
    opts.fromTrustees === true ? await withAgent(ctx, (a) => secretFromTrustees(ctx, a), { backup: false }) : await recoverySecretInput(ctx.io, opts);
  if (current === undefined) return undefined;
  try {
    return new RecoveryKeys(current.secret);
  } finally {
    wipe(current.secret);
  }
}

/** Options that give the current recovery secret for a change. */
export function currentSecretOptions(cmd: Command): Command {
  return secretOptions(cmd, 'when changing an existing setup, the current recovery secret').option(
    '--from-trustees',
    'rebuild the current secret from the shares your trustees released to `dkms recovery request`',
  );
}

/** Shows the paper wallet and, if asked, writes it as an image and a printable page (mode 0600). */
async function showPaper(ctx: Context, agent: EdgeAgent, secret: Uint8Array, options: PaperOptions): Promise<void> {
  const { announce, encodePaperText, mnemonicFromSecret, paperHtml, paperQrPng, paperQrSvg, paperQrTerminal, writeFileAtomic } = await load();
  const profile = agent.profile;
  const agency = profile.cloud?.agency ?? DEFAULT_AGENCY_URL;
  const text = encodePaperText({ secret, policy: profile.policy, agency, ledger: profile.ledger, label: profile.label });
  const mnemonic = mnemonicFromSecret(secret);
  const files: string[] = [];
  if (options.paperDir !== undefined) {
    mkdirSync(options.paperDir, { recursive: true, mode: 0o700 });
    const image = join(options.paperDir, `dkms-recovery-paper.${options.paperFormat}`);
    writeFileAtomic(image, options.paperFormat === 'png' ? await paperQrPng(text) : new TextEncoder().encode(await paperQrSvg(text)), 0o600);
    const page = join(options.paperDir, 'dkms-recovery-paper.html');
    writeFileAtomic(
      page,
      new TextEncoder().encode(
        await paperHtml({ text, mnemonic, policy: profile.policy, agency, ledger: profile.ledger, label: profile.label, created: new Date().toISOString() }),
      ),
      0o600,
    );
    files.push(image, page);
  }
  const paper = { mnemonic, policy: profile.policy, agency, files };
  if (ctx.json) {
    announce(ctx, { paper }, '');
  } else {
    const words = mnemonic.split(' ').map((w, i) => `${String(i + 1).padStart(2)}. ${w.padEnd(10)}`);
    const rows = Array.from({ length: 6 }, (_, r) => words.slice(r * 4, r * 4 + 4).join('  '));
    ctx.io.out(
      [
        'YOUR PAPER WALLET: write these 24 words down (or print the page), keep them offline, like cash.',
        'Anyone holding them can take over your identity; without them (or your trustees) you cannot recover.',
        '',
        await paperQrTerminal(text),
        ...rows,
        '',
        `agency: ${agency}`,
        `policy: ${profile.policy}`,
        ...(files.length === 0 ? [] : ['', `written: ${files.join(', ')}`, 'These files hold your recovery secret: print them, then delete them.']),
        '',
      ].join('\n'),
    );
  }
}

/** Receives until every trustee of the prepared change holds its share, or `seconds` pass. */
async function waitForTrustees(ctx: Context, agent: EdgeAgent, seconds: number): Promise<string[]> {
  const { ALL_HANDLERS, missingAcks, readPrepared } = await load();
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    ctx.io.signal.throwIfAborted();
    const prepared = readPrepared(agent);
    const missing = prepared === undefined ? [] : missingAcks(agent, prepared).map((t) => t.label);
    if (missing.length === 0 || Date.now() >= deadline) return missing;
    showReceived(ctx, await agent.receive(ALL_HANDLERS, { waitSeconds: Math.max(1, Math.min(10, Math.ceil((deadline - Date.now()) / 1000))) }));
  }
}

function describeCommit(outcome: CommitOutcome): string {
  if (outcome.state === 'pending') return `the change waits for its delay: run \`dkms recovery complete\` from ${outcome.until}`;
  const { setup, backup } = outcome;
  return [
    'recovery is set up',
    `  paper wallet: ${setup.offline ? 'yes' : 'no'}`,
    `  trustees:     ${setup.social === undefined ? 'none' : `${setup.social.threshold} of ${setup.social.trustees.length}`}`,
    `  delay:        ${setup.delay === 0 ? 'none' : `${setup.delay} s`}`,
    `  backup:       ${(backup?.version ?? setup.lastBackup?.version) === undefined ? 'not stored (no cloud agent)' : `version ${backup?.version ?? setup.lastBackup?.version} at your cloud agent`}`,
  ].join('\n');
}

function describeRestore(outcome: RestoreOutcome): string {
  if (outcome.state === 'pending') {
    return `recovery submitted; your policy has a delay: run \`dkms recovery complete\` from ${outcome.until} (your other agents may cancel it until then)`;
  }
  return [
    `recovered '${outcome.profile.label}' (${outcome.profile.policy}) onto this device`,
    `  ${outcome.backupVersion === 0 ? 'backup file' : `backup version ${outcome.backupVersion}`} made by agent ${outcome.backupBy}, ${outcome.items} items restored; every old agent was removed from your policy`,
    `  connections rotated: ${outcome.rotated.length}${outcome.unrotated.length === 0 ? '' : `; not rotated (no keys of them in the backup, or unreachable): ${outcome.unrotated.length}`}`,
    ...outcome.warnings.map((w) => `  warning: ${w}`),
    'Your paper wallet and trustees still work (the next recovery key is committed). If your recovery secret',
    'may have been seen by someone else, run `dkms recovery setup` now to make a new one.',
  ].join('\n');
}

export function recoveryCommand(): Command {
  const recovery = new Command('recovery').description('backups, paper wallet, trustees, and recovering on a new device');

  currentSecretOptions(
    paperOptions(
      recovery
        .command('setup')
        .description('make a new recovery secret: commit its key on the ledger, back up, and hand it out as a paper wallet and/or trustee shares')
        .option('--offline', 'a paper wallet: 24 words and a QR code')
        .option('--social', 'shares for your trustees (`dkms trustee invite` first)')
        .option('--both', 'a paper wallet and trustee shares (--offline --social)')
        .option('--trustee <trustee...>', 'which accepted trustees get shares (default: all)')
        .option('--threshold <m>', 'how many trustees it takes to recover (default: a majority)', parsePositive)
        .option('--insist', 'accept fewer than 3 trustees')
        .option('--delay <duration>', 'a recovery waits this long (e.g. 48h) and your ADMIN agents may cancel it meanwhile', parseDuration, 0)
        .option('--backup-file <file>', 'also write the encrypted backup to this file')
        .option('--wait <seconds>', 'how long to wait for trustees to hold their shares', parsePositive, 120),
      'also write the paper wallet there as an image and a printable HTML page',
    ),
  ).action(
    async (
      opts: SecretOptions &
        PaperOptions & {
          offline?: boolean;
          social?: boolean;
          both?: boolean;
          trustee?: string[];
          threshold?: number;
          insist?: boolean;
          delay: number;
          backupFile?: string;
          wait: number;
          fromTrustees?: boolean;
        },
      cmd: Command,
    ) => {
      const {
        Context,
        announce,
        checkPrepare,
        checkWritable,
        commitRecovery,
        currentRecoverySigner,
        emit,
        isCommitted,
        makeBackup,
        prepareRecovery,
        readPrepared,
        trustees,
        wipe,
        withAgent,
      } = await load();
      const ctx = Context.of(cmd);
      if (opts.both === true) Object.assign(opts, { offline: true, social: true });
      // Checked before the first step: what to make, and where its files will go.
      if (opts.offline !== true && opts.social !== true) throw new DkmsError('BAD_INPUT', 'choose --offline, --social or both');
      if (opts.paperDir !== undefined) checkWritable(opts.paperDir, '--paper-dir', 'dir');
      if (opts.backupFile !== undefined) checkWritable(opts.backupFile, '--backup-file', 'file');
      const current = await currentSecret(ctx, opts);
      try {
        const result = await withAgent(
          ctx,
          async (a) => {
            const commit = async () => {
              ctx.progress('Committing the new recovery key on the ledger and storing a backup under it…');
              const outcome = await commitRecovery(a, current);
              if (opts.backupFile !== undefined && outcome.state === 'committed') await makeBackup(a, { file: opts.backupFile, upload: false });
              return outcome;
            };
            // A change the ledger already commits to, whose last steps failed (an agency out of
            // reach, say), is finished: a new secret now would leave the committed one unfinished.
            const unfinished = readPrepared(a);
            if (unfinished !== undefined && (await isCommitted(a, unfinished))) {
              ctx.progress('Finishing the recovery change the ledger already commits to…');
              return commit();
            }
            let social: { trustees: string[]; threshold: number; insist: boolean } | undefined;
            if (opts.social === true) {
              const chosen =
                opts.trustee ??
                trustees(a)
                  .filter((t) => t.status === 'accepted')
                  .map((t) => t.id);
              social = { trustees: chosen, threshold: opts.threshold ?? Math.floor(chosen.length / 2) + 1, insist: opts.insist === true };
            }
            const options = { offline: opts.offline === true, ...(social === undefined ? {} : { social }), delay: opts.delay };
            // Refuse before anything is shown or sent if the change could not be prepared or committed.
            checkPrepare(a, options);
            currentRecoverySigner(a, (await a.policy()).policy, current);
            ctx.progress(social === undefined ? 'Making the new recovery secret…' : 'Making the new recovery secret and sending the trustees their shares…');
            const { secret, prepared } = await prepareRecovery(a, options, opts.offline === true ? (r) => showPaper(ctx, a, r, opts) : undefined);
            wipe(secret);
            if (social !== undefined) {
              announce(
                ctx,
                { state: 'prepared', set: prepared.set, trustees: prepared.trustees.length },
                `shares sent to ${prepared.trustees.length} trustee(s); waiting for them to hold their shares (they run \`dkms message inbox\`)…`,
              );
              const missing = await waitForTrustees(ctx, a, opts.wait);
              if (missing.length > 0) return { state: 'prepared' as const, missing };
            }
            return commit();
          },
          { backup: false },
        );
        if (result.state === 'prepared') {
          emit(
            ctx,
            result,
            () =>
              `still waiting for ${result.missing.join(', ')}; nothing changed yet (your old recovery still works).\nOnce they have run \`dkms message inbox\`, run \`dkms trustee commit\`${current === undefined ? '' : ' with your current recovery secret'}.`,
          );
        } else {
          emit(ctx, result, () => describeCommit(result));
        }
      } finally {
        current?.wipe();
      }
    },
  );

  recovery
    .command('backup')
    .description('make a new encrypted backup of this wallet now (at your cloud agent, and/or in a file)')
    .option('--file <file>', 'also write it to this file')
    .action(async (opts: { file?: string }, cmd: Command) => {
      const { Context, emit, makeBackup, withAgent } = await load();
      const ctx = Context.of(cmd);
      const outcome = await withAgent(ctx, (a) => makeBackup(a, opts.file === undefined ? {} : { file: opts.file }), { backup: false });
      emit(
        ctx,
        { ...outcome },
        () =>
          `backup stored${outcome.version === undefined ? '' : ` as version ${outcome.version} at your cloud agent`}${outcome.file === undefined ? '' : ` and in ${outcome.file}`} (${outcome.size} bytes, encrypted to your backup key)`,
      );
    });

  secretOptions(
    paperOptions(
      recovery.command('paper').description('show (and write) the paper wallet of your current recovery secret again'),
      'write it there as an image and a printable HTML page',
    ),
    'the recovery secret',
  ).action(async (opts: SecretOptions & PaperOptions, cmd: Command) => {
    const { Context, RecoveryKeys, readSetup, wipe, withAgent } = await load();
    const ctx = Context.of(cmd);
    const input = await recoverySecretInput(ctx.io, opts);
    if (input === undefined) throw new DkmsError('BAD_INPUT', 'dkms keeps no copy of your recovery secret: give it with --mnemonic or --qr');
    try {
      await withAgent(
        ctx,
        async (a) => {
          const setup = readSetup(a);
          const keys = new RecoveryKeys(input.secret);
          try {
            if (setup !== undefined && keys.backupKey !== setup.backupKey)
              throw new DkmsError('RECOVERY_NOT_SET_UP', 'that is not your current recovery secret');
          } finally {
            keys.wipe();
          }
          await showPaper(ctx, a, input.secret, opts);
        },
        { backup: false },
      );
    } finally {
      wipe(input.secret);
    }
  });

  recovery
    .command('request')
    .description(
      'ask your trustees for their shares: on a new device (creates its wallet and keys), or on a working one to change your recovery without the paper',
    )
    .option('--agency <url>', 'the agency that hosts your cloud agent', DEFAULT_AGENCY_URL)
    .option('--label <name>', 'who you are, as your trustees know you', 'me')
    .addOption(tierOption())
    .action(async (opts: { agency: string; label: string; kdfTier: KdfTier }, cmd: Command) => {
      const { Context, createRecoveryRequest, emit, qrCode, withAgent } = await load();
      const ctx = Context.of(cmd);
      const made = await withAgent(
        ctx,
        async (a) => {
          // An agent that still works asks for the current secret to change its recovery (trustees approve as for a recovery).
          const agency = a.hasProfile() ? (a.profile.cloud?.agency ?? opts.agency) : opts.agency;
          return createRecoveryRequest(a, { agency, label: a.hasProfile() && opts.label === 'me' ? a.profile.label : opts.label });
        },
        { create: true, backup: false, kdfTier: opts.kdfTier },
      );
      const qr = ctx.json ? '' : await (await qrCode()).toString(made.text, { type: 'terminal', small: true });
      emit(ctx, { request: made.text, challenge: made.challenge, id: made.request.id, expires: made.request.expires }, () =>
        [
          qr,
          'Give this request to each of your trustees (any channel):',
          `  ${made.text}`,
          '',
          `Then call or meet each one and read them this challenge: ${made.challenge}`,
          "They run: dkms trustee requests --add '<request>' and dkms trustee approve <id> --challenge <challenge>",
          'Then run here: dkms recovery restore --social',
        ].join('\n'),
      );
    });

  secretOptions(
    recovery
      .command('restore')
      .description("on a new device: recover everything from your paper wallet or from your trustees' shares")
      .option('--social', "from the shares your trustees released to this device's request")
      .option('--policy <address>', 'with --social, which owner to restore when shares of several arrived')
      .option('--yes', 'with --social, restore the owner the shares name without asking')
      .option('--agency <url>', 'the agency that keeps your backups (default: from the QR code, or the local one)')
      .option('--version <n>', 'an older backup version', parsePositive)
      .option('--backup-file <file>', "restore from this backup file (made with --backup-file) instead of the agency's")
      .option('--wait <seconds>', 'with --social, wait this long for shares to arrive', parseDuration, 0)
      .addOption(tierOption())
      .argument('[phrase...]', 'not accepted: the phrase never goes on the command line'),
    'recover',
  ).action(
    async (
      phrase: string[],
      opts: SecretOptions & {
        social?: boolean;
        policy?: string;
        yes?: boolean;
        agency?: string;
        version?: number;
        backupFile?: string;
        wait: number;
        kdfTier: KdfTier;
      },
      cmd: Command,
    ) => {
      const { Context, checkConfirmable, checkHttpUrl, emit, ledgerUrl, readInput, restoreFromSecret, wipe, withAgent } = await load();
      const ctx = Context.of(cmd);
      if (phrase.length > 0) {
        throw new DkmsError(
          'BAD_INPUT',
          `the recovery phrase is not taken from the command line, where others can read it: give --mnemonic alone and type it at the prompt, or use --mnemonic-file or ${PHRASE_ENV}`,
        );
      }
      if (opts.agency !== undefined) checkHttpUrl(opts.agency, '--agency');
      if (opts.social === true) checkConfirmable(ctx, 'restoring the owner the shares name', opts.yes);
      // Every input is read and checked before the wallet is created.
      const backup = opts.backupFile === undefined ? undefined : readInput(ctx.io, opts.backupFile);
      const input = await recoverySecretInput(ctx.io, opts);
      if (input === undefined && opts.social !== true) throw new DkmsError('BAD_INPUT', 'choose --mnemonic, --qr or --social');
      const ledger = ctx.options.ledger ?? input?.paper?.ledger;
      try {
        const outcome = await withAgent(
          ctx,
          async (a) => {
            if (input !== undefined) {
              const agency = opts.agency ?? input.paper?.agency ?? DEFAULT_AGENCY_URL;
              const policy = input.paper?.policy;
              return restoreFromSecret(a, input.secret, {
                agency,
                onProgress: (step) => ctx.progress(step),
                ...(opts.version === undefined ? {} : { version: opts.version }),
                ...(backup === undefined ? {} : { backup }),
                ...(policy === undefined ? {} : { policy }),
              });
            }
            return restoreSocial(ctx, a, opts);
          },
          // A restore that failed before it wrote its profile (which it does before the ledger hears
          // of it) has nothing worth keeping: the wallet it created is removed, and a new run starts
          // clean. From the profile on, the wallet is kept and the same command resumes the restore.
          {
            create: true,
            backup: false,
            kdfTier: opts.kdfTier,
            keepCreated: (a) => a.hasProfile(),
            ...(ledger === undefined ? {} : { ledger: ledgerUrl(ctx, ledger) }),
          },
        );
        emit(ctx, { ...outcome }, () => describeRestore(outcome));
      } finally {
        if (input !== undefined) wipe(input.secret);
      }
    },
  );

  recovery
    .command('status')
    .description('how recovery is set up, any change in progress, and any recovery pending on the ledger')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, emit, missingAcks, readPrepared, readSetup, withAgent } = await load();
      const ctx = Context.of(cmd);
      const status = await withAgent(
        ctx,
        async (a) => {
          const setup = readSetup(a);
          const prepared = readPrepared(a);
          const policy = (await a.policy()).policy;
          return {
            setUp: setup !== undefined,
            provisional: setup === undefined,
            ...(setup === undefined ? {} : { offline: setup.offline, social: setup.social ?? null, delay: setup.delay, lastBackup: setup.lastBackup ?? null }),
            prepared: prepared === undefined ? null : { set: prepared.set, missing: missingAcks(a, prepared).map((t) => t.label) },
            pending: policy.pending ?? null,
          };
        },
        { backup: false },
      );
      emit(ctx, status, () =>
        [
          status.setUp ? 'recovery is set up' : 'recovery is NOT set up: only a provisional key protects your identity; run `dkms recovery setup`',
          ...('offline' in status
            ? [
                `  paper wallet: ${status.offline ? 'yes' : 'no'}`,
                `  trustees: ${status.social === null ? 'none' : `${status.social?.threshold} of ${status.social?.trustees.length}`}`,
                `  delay: ${status.delay} s`,
                `  last backup: ${status.lastBackup === null ? 'never' : `version ${status.lastBackup?.version} at ${status.lastBackup?.at}`}`,
              ]
            : []),
          ...(status.prepared === null
            ? []
            : [`a change is prepared; waiting for: ${status.prepared.missing.join(', ') || 'nobody (run dkms trustee commit)'}`]),
          ...(status.pending === null
            ? []
            : [`a recovery is PENDING on the ledger until ${status.pending.until}: if it is not yours, run \`dkms recovery cancel\``]),
        ].join('\n'),
      );
    });

  recovery
    .command('complete')
    .description('complete a delayed recovery (or change) once its delay has passed on the ledger')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, completeRecovery, emit, withAgent } = await load();
      const ctx = Context.of(cmd);
      const outcome = await withAgent(ctx, (a) => completeRecovery(a), { backup: false });
      emit(ctx, { ...outcome }, () =>
        'finished' in outcome
          ? 'the recovery change is complete'
          : [`recovery complete; connections rotated: ${outcome.rotated.length}`, ...outcome.warnings.map((w) => `  warning: ${w}`)].join('\n'),
      );
    });

  recovery
    .command('cancel')
    .description("cancel a pending recovery you did not start (needs ADMIN; the policy's rules threshold applies)")
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, cancelRecovery, emit, withAgent } = await load();
      const ctx = Context.of(cmd);
      const outcome = await withAgent(ctx, (a) => cancelRecovery(a), { backup: false });
      emit(
        ctx,
        outcome,
        () =>
          `cancelled the recovery started at ${outcome.cancelled}. Someone holds your recovery secret: set up a new one (\`dkms recovery setup\`) as soon as you can.`,
      );
    });

  return recovery;
}

/** The current recovery secret, rebuilt from shares trustees released to this agent's request. */
export async function secretFromTrustees(ctx: Context, agent: EdgeAgent): Promise<{ secret: Uint8Array }> {
  const { ALL_HANDLERS, RecoveryKeys, collectReleases, myRequest, rebuiltSecrets, releaseProgress, wipe } = await load();
  if (myRequest(agent) === undefined) throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', 'ask your trustees first: `dkms recovery request`');
  showReceived(ctx, await collectReleases(agent, 0, ALL_HANDLERS));
  const record = await agent.policy();
  for (const { secret, policy } of await rebuiltSecrets(agent)) {
    const keys = new RecoveryKeys(secret);
    try {
      if (policy === record.subject) {
        keys.committedSigner(record.policy.recovery);
        return { secret };
      }
      wipe(secret);
    } catch (e) {
      if (!isDkmsError(e, 'RECOVERY_KEY_NOT_COMMITTED')) throw e;
      wipe(secret);
    } finally {
      keys.wipe();
    }
  }
  const progress = releaseProgress(agent).map((p) => `${p.have} of ${p.threshold} needed`);
  throw new DkmsError('SHARES_INSUFFICIENT', `not enough shares of your current secret yet (${progress.join('; ') || 'none received'})`);
}

/**
 * Collects released shares and recovers from a set that rebuilds a committed secret. The owner
 * the shares name is shown and confirmed first: shares can only prove they were signed by that
 * owner's agent, and several owners' sets must not be mixed up.
 */
async function restoreSocial(
  ctx: Context,
  agent: EdgeAgent,
  opts: { wait: number; version?: number; policy?: string; yes?: boolean },
): Promise<RestoreOutcome> {
  const { collectReleases, confirm, myRequest, rebuiltSecrets, releaseProgress, restoreFromSecret, wipe } = await load();
  const request = myRequest(agent);
  if (request === undefined) throw new DkmsError('RECOVERY_REQUEST_NOT_FOUND', 'this device has made no recovery request: run `dkms recovery request` first');
  showReceived(ctx, await collectReleases(agent, opts.wait));
  const all = await rebuiltSecrets(agent);
  const candidates = opts.policy === undefined ? all : all.filter((r) => r.policy === opts.policy);
  const owners = [...new Set(candidates.map((r) => r.policy))];
  try {
    if (owners.length > 1) {
      throw new DkmsError(
        'BAD_INPUT',
        `shares of several owners arrived (${candidates.map((r) => `'${r.owner}' ${r.policy}`).join(', ')}): choose with --policy`,
      );
    }
    const first = candidates[0];
    if (first === undefined) {
      const progress = releaseProgress(agent).map((p) => `${p.have} of ${p.threshold} needed`);
      throw new DkmsError(
        'SHARES_INSUFFICIENT',
        `not enough shares yet (${progress.join('; ') || 'none received'}); run this again once more trustees approve`,
      );
    }
    if (!(await confirm(ctx, `Restore '${first.owner}' (${first.policy}) onto this device?`, opts.yes)))
      throw new DkmsError('BAD_INPUT', 'you declined the restore');
    let lastError: unknown;
    for (const { secret, policy } of candidates) {
      try {
        return await restoreFromSecret(agent, secret, {
          agency: request.agency,
          policy,
          onProgress: (step) => ctx.progress(step),
          ...(opts.version === undefined ? {} : { version: opts.version }),
        });
      } catch (e) {
        if (!isDkmsError(e) || !['RECOVERY_KEY_NOT_COMMITTED', 'BACKUP_NOT_FOUND'].includes(e.code)) throw e;
        lastError = e;
      }
    }
    throw lastError;
  } finally {
    for (const r of all) wipe(r.secret);
  }
}
