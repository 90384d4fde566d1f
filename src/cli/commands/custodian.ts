/**
 * `dkms custodian …`: shared control of the wallet (docs/custodians.md). A custodian makes a card
 * (`key`) in their own data directory; the operator puts the wallet, or single master keys, under
 * m of n custodians (`init`); each use is a request the custodians approve (`request`,
 * `approve`), and the approvals unseal the wallet for one session (`unseal`, `seal`), sign once
 * with a master key (`key sign --approval`), or change the custodians (`rotate`).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Context } from '../context.js';
import type { SessionUnlock } from '../session-start.js';

const CUSTODIAN_SIGN = 'custodian-sign';
const CUSTODIAN_KX = 'custodian-kx';
/** Where a custodian's own wallet keeps its name, and the highest generation it saw of each wallet. */
const CUSTODIAN_CATEGORY = 'custodian';
const SEEN_CATEGORY = 'custodian-seen';

async function load() {
  const [custody, glue, { Context }, { emit, table }, files, crypto, errors] = await Promise.all([
    import('../../custody/index.js'),
    import('../custody.js'),
    import('../context.js'),
    import('../output.js'),
    import('../files.js'),
    import('../../crypto/index.js'),
    import('../../errors.js'),
  ]);
  return { ...custody, ...glue, Context, emit, table, ...files, ...crypto, ...errors };
}

function parseThreshold(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 255) throw new InvalidArgumentError('must be a whole number from 1 to 255');
  return n;
}

function parseTtl(value: string): number {
  const match = /^([0-9]{1,6})([smhd]?)$/.exec(value.trim());
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[(match?.[2] || 'm') as 's' | 'm' | 'h' | 'd'];
  const seconds = match === null ? NaN : Number(match[1]) * unit;
  if (!(seconds >= 60 && seconds <= 7 * 86_400)) throw new InvalidArgumentError('must be a duration from 1m to 7d, such as 30m, 2h or 1d');
  return seconds;
}

function parsePerHour(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) throw new InvalidArgumentError('must be a whole number from 1 to 1000000');
  return n;
}

/** Asks a yes/no question at the terminal; `--yes` answers it in advance, and without a terminal it must. */
async function confirm(ctx: Context, question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes === true) return true;
  if (!ctx.io.tty.stdin) throw (await load()).badInput(`${question.replace(/\?$/, '')}: confirm with --yes when not at a terminal`);
  return /^y(es)?$/i.test((await ctx.io.ask(`${question} [y/N] `, false)).trim());
}

async function readJson(ctx: Context, file: string, what: string): Promise<unknown> {
  return (await load()).readJsonFile(ctx, file, `${what} file`);
}

export function custodianCommand(): Command {
  const custodian = new Command('custodian').description('shared control: put the wallet or its master keys under m of n custodians');

  custodian
    .command('key')
    .description("on a custodian's own machine: make (or show) this custodian's keys and print the card the operator needs")
    .requiredOption('--name <name>', "the custodian's name in the set (letters, digits, . _ -)")
    .option('--out <file>', 'write the card to this file')
    .option('--force', 'with --out, replace the file')
    .action(async (opts: { name: string; out?: string; force?: boolean }, cmd: Command) => {
      const { Context, emit, makeCustodianCard, writeOutput, checkOutput, utf8, fromUtf8, badInput } = await load();
      const ctx = Context.of(cmd);
      if (opts.out !== undefined) checkOutput(opts.out, opts.force === true);
      const card = await ctx.withWallet((w) => {
        const names = new Set(w.listKeys().map((k) => k.name));
        const known = w.find({ category: CUSTODIAN_CATEGORY }).find((i) => i.name === 'name');
        if (known !== undefined && fromUtf8(known.value) !== opts.name) {
          throw badInput(`this data directory's custodian is '${fromUtf8(known.value)}', not '${opts.name}'`);
        }
        w.transaction(() => {
          if (!names.has(CUSTODIAN_SIGN)) w.createKey(CUSTODIAN_SIGN, 'ed25519');
          if (!names.has(CUSTODIAN_KX)) w.createKey(CUSTODIAN_KX, 'x25519');
          if (known === undefined) w.put(CUSTODIAN_CATEGORY, 'name', utf8(opts.name));
        });
        return makeCustodianCard(opts.name, w.signer(CUSTODIAN_SIGN), w.agreementKey(CUSTODIAN_KX));
      });
      const text = `${JSON.stringify(card, null, 2)}\n`;
      if (opts.out !== undefined) writeOutput(opts.out, utf8(text), { force: opts.force === true, mode: 0o644 });
      emit(ctx, { card, ...(opts.out === undefined ? {} : { out: opts.out }) }, () =>
        opts.out === undefined ? text.trimEnd() : `Wrote the card of custodian '${opts.name}' to ${opts.out}: give it to the operator`,
      );
    });

  custodian
    .command('init')
    .description('put the wallet (unseal mode) or master keys (approval mode) under m of n custodians')
    .option('--card <file...>', "the custodians' cards (from 'dkms custodian key'), one file each")
    .requiredOption('--threshold <m>', 'how many custodians must approve', parseThreshold)
    .addOption(
      new Option('--mode <mode>', 'unseal: the wallet opens only when m custodians unseal it; approval: each use of a master key needs m approvals')
        .choices(['unseal', 'approval'])
        .makeOptionMandatory(),
    )
    .option('--key <name...>', 'approval mode: the wallet keys that become master keys (Ed25519, held in the wallet)')
    .option('--keep-passphrase', 'unseal mode: the passphrase stays needed too (default: the custodians replace it)')
    .option('--per-hour <n>', 'at most n uses of the master key an hour', parsePerHour)
    .option('--allow-single', 'allow a threshold of 1 with several custodians (each could then act alone)')
    .action(
      async (
        opts: {
          card?: string[];
          threshold: number;
          mode: 'unseal' | 'approval';
          key?: string[];
          keepPassphrase?: boolean;
          perHour?: number;
          allowSingle?: boolean;
        },
        cmd: Command,
      ) => {
        const { Context, emit, splitCustody, parseCustodianCard, factorOf, audited, setDigest, badInput, wipe } = await load();
        const ctx = Context.of(cmd);
        const files = opts.card ?? [];
        if (files.length === 0) throw badInput("give each custodian's card with --card FILE");
        if (opts.mode === 'approval' && (opts.key ?? []).length === 0) throw badInput('approval mode needs the master keys: --key NAME');
        if (opts.mode === 'unseal' && opts.key !== undefined) throw badInput('--key goes with approval mode: in unseal mode the whole wallet is under custody');
        const cards = await Promise.all(files.map(async (f) => parseCustodianCard(await readJson(ctx, f, 'custodian card'))));
        const { set, secret } = await splitCustody({
          threshold: opts.threshold,
          mode: opts.mode,
          custodians: cards,
          ...(opts.perHour === undefined ? {} : { limits: { perHour: opts.perHour } }),
          ...(opts.allowSingle === true ? { allowSingle: true } : {}),
        });
        try {
          await audited(ctx, 'custody-init', { set: set.id, mode: set.mode, threshold: set.threshold, custodians: set.custodians.length }, () =>
            ctx.withWallet(async (w) => {
              if (w.custody() !== undefined) throw badInput("the wallet is under custodians already: change them with 'dkms custodian rotate'");
              for (const name of opts.key ?? []) {
                const key = w.getKey(name);
                if (key.type !== 'ed25519' || key.location.kind !== 'wallet') throw badInput(`key '${name}' is not an Ed25519 key held in the wallet`);
              }
              ctx.progress('Re-wrapping wallet keys…');
              await w.protect({
                custody: { factor: factorOf(set), secret },
                ...(opts.mode === 'unseal' && opts.keepPassphrase !== true ? { secret: null } : {}),
              });
              for (const name of opts.key ?? []) w.sealKeyUnderCustody(name, secret);
            }),
          );
        } finally {
          wipe(secret);
        }
        emit(
          ctx,
          {
            set: set.id,
            epoch: set.epoch,
            mode: set.mode,
            threshold: set.threshold,
            custodians: set.custodians.map((c) => c.name),
            keys: opts.key ?? [],
            digest: setDigest(set),
          },
          () =>
            [
              `The wallet is under ${set.threshold} of ${set.custodians.length} custodians (${set.custodians.map((c) => c.name).join(', ')}), ${set.mode} mode.`,
              opts.mode === 'unseal'
                ? "It opens only when they unseal it: 'dkms custodian request --unseal', then 'dkms custodian unseal --approval …'."
                : `Keys ${(opts.key ?? []).join(', ')} sign only with their approvals: 'dkms custodian request --sign FILE --key NAME'.`,
            ].join('\n'),
        );
      },
    );

  custodian
    .command('request')
    .description('ask the custodians: to unseal the wallet, to sign once with a master key, or to change the custodians')
    .option('--unseal', 'unseal mode: open the wallet for one session')
    .option('--sign <file>', 'approval mode: sign this file once with the master key --key')
    .option('--event <file>', "approval mode: co-sign this ledger event (written by a command's --out) once with the master key --key")
    .option('--key <name>', 'with --sign or --event: the master key')
    .option('--export', "approval mode: export the wallet once ('wallet export --approval …')")
    .option('--rekey', "approval mode: change the wallet's passphrase once ('wallet rekey --approval …')")
    .option('--rotate', 'change the custodians (with --add-card, --remove, --threshold, --per-hour); a new secret is split')
    .option('--add-card <file...>', 'with --rotate: custodians to add')
    .option('--remove <name...>', 'with --rotate: custodians to remove')
    .option('--threshold <m>', 'with --rotate: the new threshold', parseThreshold)
    .option('--per-hour <n>', 'with --rotate: the new limit of master-key uses an hour', parsePerHour)
    .option('--allow-single', 'with --rotate: allow a threshold of 1 with several custodians')
    .addOption(new Option('--ttl <duration>', 'how long the custodians have to approve: 30m, 2h, 1d').argParser(parseTtl).default(3600, '1h'))
    .option('--out <file>', 'write the request here (else print it)')
    .option('--force', 'with --out, replace the file')
    .action(
      async (
        opts: {
          unseal?: boolean;
          sign?: string;
          event?: string;
          key?: string;
          rotate?: boolean;
          export?: boolean;
          rekey?: boolean;
          addCard?: string[];
          remove?: string[];
          threshold?: number;
          perHour?: number;
          allowSingle?: boolean;
          ttl: number;
          out?: string;
          force?: boolean;
        },
        cmd: Command,
      ) => {
        const {
          Context,
          emit,
          custodySetOf,
          newCustodyRequest,
          keepPending,
          fingerprint,
          checkOutput,
          writeOutput,
          readInput,
          sha256,
          toBase64url,
          utf8,
          canonicalBytes,
          parseCustodianCard,
          resplitCustody,
          badInput,
          wipe,
        } = await load();
        const ctx = Context.of(cmd);
        const chosen = [
          opts.unseal === true,
          opts.sign !== undefined,
          opts.event !== undefined,
          opts.rotate === true,
          opts.export === true,
          opts.rekey === true,
        ].filter(Boolean).length;
        if (chosen !== 1)
          throw badInput('say what the request is for: --unseal, --sign FILE --key NAME, --event FILE --key NAME, --export, --rekey or --rotate');
        if ((opts.sign === undefined && opts.event === undefined) !== (opts.key === undefined))
          throw badInput('--key NAME goes with --sign FILE or --event FILE');
        if (opts.rotate !== true && (opts.addCard ?? opts.remove ?? opts.threshold ?? opts.perHour) !== undefined)
          throw badInput('--add-card, --remove, --threshold and --per-hour go with --rotate');
        if (opts.out !== undefined) checkOutput(opts.out, opts.force === true);
        const { set, protection } = await custodySetOf(ctx);
        const wallet = protection.id ?? 'wallet';
        let operation;
        let change: unknown;
        if (opts.export === true || opts.rekey === true) {
          const kind = opts.export === true ? ('export' as const) : ('rekey' as const);
          const { walletOperationDigest } = await import('../custody.js');
          operation = {
            kind,
            digest: walletOperationDigest(kind, wallet, protection.generation ?? 0),
            summary: `${kind} the wallet ${wallet} (generation ${protection.generation ?? 0})`,
          };
        } else if (opts.event !== undefined) {
          const [{ readEventFile }, { signingBytes, subjectOf }] = await Promise.all([import('../events-io.js'), import('../../ledger/events.js')]);
          const event = readEventFile(ctx.io, opts.event);
          const body = JSON.stringify({ ...event, sigs: undefined });
          operation = {
            kind: 'sign' as const,
            key: opts.key,
            digest: toBase64url(sha256(signingBytes(event))),
            summary: `co-sign ledger event ${event.type} for ${subjectOf(event)} with master key '${opts.key}': ${body}`.slice(0, 500),
          };
        } else if (opts.sign !== undefined) {
          const message = readInput(ctx.io, opts.sign);
          operation = {
            kind: 'sign' as const,
            key: opts.key,
            digest: toBase64url(sha256(message)),
            summary: `sign ${message.length} bytes (${opts.sign}) with master key '${opts.key}'`,
          };
        } else if (opts.rotate === true) {
          const add = await Promise.all((opts.addCard ?? []).map(async (f) => parseCustodianCard(await readJson(ctx, f, 'custodian card'))));
          change = {
            ...(add.length === 0 ? {} : { add }),
            ...(opts.remove === undefined ? {} : { remove: opts.remove }),
            ...(opts.threshold === undefined ? {} : { threshold: opts.threshold }),
            ...(opts.perHour === undefined ? {} : { limits: { perHour: opts.perHour } }),
            ...(opts.allowSingle === true ? { allowSingle: true } : {}),
          };
          if (Object.keys(change as object).length === 0) throw badInput('--rotate needs a change: --add-card, --remove, --threshold or --per-hour');
          for (const card of add)
            if (set.custodians.some((c) => c.name === card.name || c.sign === card.sign)) throw badInput(`custodian '${card.name}' is in the set already`);
          // The change is tried now, so that one the rotation would refuse is refused before anyone approves it.
          const trial = await resplitCustody(set, { ...(change as object), ...(opts.allowSingle === true ? { allowSingle: true } : {}) });
          wipe(trial.secret);
          const next = trial.set;
          const summary = [
            `change the custodians to ${next.threshold} of ${next.custodians.length}: ${next.custodians.map((c) => c.name).join(', ')}`,
            ...(add.length === 0 ? [] : [`adds ${add.map((c) => `${c.name} (${c.sign})`).join(', ')}`]),
            ...(opts.remove === undefined ? [] : [`removes ${opts.remove.join(', ')}`]),
            ...(opts.perHour === undefined ? [] : [`limit ${opts.perHour} master-key uses an hour`]),
          ].join('; ');
          if (summary.length > 500) throw badInput('the change is too long to show the custodians in one request: make it in steps');
          operation = { kind: 'rotate' as const, digest: toBase64url(sha256(canonicalBytes(change))), summary };
        }
        const { request, replyKey } = newCustodyRequest(set, {
          wallet,
          generation: protection.generation ?? 0,
          purpose: opts.unseal === true ? 'unseal' : 'operation',
          ...(operation === undefined ? {} : { operation }),
          ttlSeconds: opts.ttl,
        });
        try {
          keepPending(ctx, request, replyKey.privateKey, change);
        } finally {
          wipe(replyKey.privateKey);
        }
        const text = `${JSON.stringify(request, null, 2)}\n`;
        if (opts.out !== undefined) writeOutput(opts.out, utf8(text), { force: opts.force === true, mode: 0o644 });
        const print = fingerprint(request);
        emit(ctx, { request, fingerprint: print, ...(opts.out === undefined ? {} : { out: opts.out }) }, () =>
          [
            ...(opts.out === undefined ? [text.trimEnd()] : [`Wrote the request to ${opts.out}.`]),
            `Fingerprint ${print}: read it to each custodian, who sees the same on approving.`,
            `It needs ${set.threshold} of ${set.custodians.length} custodians by ${request.expires}.`,
          ].join('\n'),
        );
      },
    );

  custodian
    .command('approve')
    .description("on a custodian's machine: read a request, and if you agree, write your approval for the operator")
    .requiredOption('--request <file>', 'the request')
    .requiredOption('--out <file>', 'where to write the approval')
    .option('--force', 'replace the file')
    .option('--yes', 'approve without asking (scripts)')
    .action(async (opts: { request: string; out: string; force?: boolean; yes?: boolean }, cmd: Command) => {
      const {
        Context,
        emit,
        approveCustodyRequest,
        parseCustodyRequest,
        describeCustodyRequest,
        fingerprint,
        checkOutput,
        writeOutput,
        utf8,
        fromUtf8,
        DkmsError,
        badInput,
      } = await load();
      const ctx = Context.of(cmd);
      checkOutput(opts.out, opts.force === true);
      const request = parseCustodyRequest(await readJson(ctx, opts.request, 'custody request'));
      const approval = await ctx.withWallet(async (w) => {
        const named = w.find({ category: CUSTODIAN_CATEGORY }).find((i) => i.name === 'name');
        if (named === undefined) throw badInput("this data directory is no custodian's: make the custodian's keys with 'dkms custodian key --name NAME'");
        const name = fromUtf8(named.value);
        const seenItem = w.find({ category: SEEN_CATEGORY }).find((i) => i.name === request.wallet);
        const seen = seenItem === undefined ? undefined : Number(fromUtf8(seenItem.value));
        ctx.io.err(`${describeCustodyRequest(request)}\nFingerprint: ${fingerprint(request)} (ask the operator to read theirs)\n`);
        const made = approveCustodyRequest(request, {
          name,
          signer: w.signer(CUSTODIAN_SIGN),
          agreementKey: w.agreementKey(CUSTODIAN_KX),
          ...(seen === undefined ? {} : { minGeneration: seen }),
        });
        if (!(await confirm(ctx, `Approve as custodian '${name}'?`, opts.yes))) throw new DkmsError('PAIRING_DECLINED', 'not approved: nothing was written');
        // The highest generation of this wallet seen: an older copy put back is refused next time.
        if (seen === undefined || request.generation > seen) {
          if (seenItem === undefined) w.put(SEEN_CATEGORY, request.wallet, utf8(String(request.generation)));
          else w.update(SEEN_CATEGORY, request.wallet, { value: utf8(String(request.generation)) });
        }
        return made;
      });
      writeOutput(opts.out, utf8(`${JSON.stringify(approval, null, 2)}\n`), { force: opts.force === true, mode: 0o644 });
      emit(
        ctx,
        { approved: true, custodian: approval.custodian, request: request.id, out: opts.out },
        () => `Approved request ${request.id}: give ${opts.out} to the operator`,
      );
    });

  custodian
    .command('unseal')
    .description('unseal mode: open the wallet for one session with the approvals of m custodians; it seals again on `dkms custodian seal` or when idle')
    .requiredOption('--approval <file...>', "the custodians' approvals, one file each")
    .addOption(new Option('--idle <duration>', 'seal after this long with no command: 90s, 15m, 2h').default('15m'))
    .action(async (opts: { approval: string[]; idle: string }, cmd: Command) => {
      const { Context, emit, custodySetOf, readApprovals, pendingFor, combinePending, usePending, audited, checkRate, DkmsError, wipe } = await load();
      const [{ parseIdle }, { startSession, sessionRunning }] = await Promise.all([import('./session.js'), import('../session-start.js')]);
      const ctx = Context.of(cmd);
      const idleSeconds = parseIdle(opts.idle);
      if (await sessionRunning(ctx)) throw new DkmsError('SESSION_ACTIVE', "the wallet is unsealed already: 'dkms custodian seal' seals it");
      const { set } = await custodySetOf(ctx);
      if (set.mode !== 'unseal')
        throw new DkmsError('CUSTODY_REQUIRED', 'the custodians approve each use of the master keys here (approval mode): there is nothing to unseal');
      const approvals = readApprovals(ctx, opts.approval);
      const pending = pendingFor(ctx, approvals);
      if (pending.request.purpose !== 'unseal') throw new DkmsError('CUSTODY_REQUIRED', `request ${pending.request.id} is not for unsealing`);
      const pid = await audited(ctx, 'unseal', { request: pending.request.id, approvals: approvals.length }, async () => {
        checkRate(ctx, set, ['unseal']);
        const secret = await combinePending(pending, set, approvals);
        try {
          const { Wallet } = await import('../../wallet/index.js');
          const unlock = await ctx.unlockOf(Wallet, secret);
          ctx.progress('Opening wallet…');
          const started = await startSession(ctx, unlock as SessionUnlock, idleSeconds);
          // Used once the session is up: a start that failed (a wrong passphrase) may be tried again.
          usePending(pending);
          return started;
        } finally {
          wipe(secret);
        }
      });
      const locksAt = new Date(Date.now() + idleSeconds * 1000).toISOString();
      emit(
        ctx,
        { unsealed: true, pid, locksAt, idleSeconds },
        () => `Unsealed: session pid ${pid}, seals at ${locksAt} unless a command runs; 'dkms custodian seal' seals now`,
      );
    });

  custodian
    .command('seal')
    .description('seal the wallet now: end the unsealed session')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, auditLog } = await load();
      const { lock, sessionRunning } = await import('../session-start.js');
      const ctx = Context.of(cmd);
      if (await sessionRunning(ctx)) auditLog(ctx).append('seal', 'done', {});
      await lock(ctx);
    });

  custodian
    .command('rotate')
    .description('change the custodians with the approvals of m of the current ones: a new secret is split, and the old shares open nothing')
    .requiredOption('--approval <file...>', "the current custodians' approvals of the rotate request")
    .action(async (opts: { approval: string[] }, cmd: Command) => {
      const {
        Context,
        emit,
        custodySetOf,
        readApprovals,
        pendingFor,
        combinePending,
        usePending,
        audited,
        resplitCustody,
        factorOf,
        sha256,
        canonicalBytes,
        toBase64url,
        DkmsError,
        wipe,
      } = await load();
      const ctx = Context.of(cmd);
      const { set } = await custodySetOf(ctx);
      const approvals = readApprovals(ctx, opts.approval);
      const pending = pendingFor(ctx, approvals);
      const op = pending.request.operation;
      if (op?.kind !== 'rotate' || pending.change === undefined) throw new DkmsError('CUSTODY_REQUIRED', `request ${pending.request.id} is not a rotation`);
      if (toBase64url(sha256(canonicalBytes(pending.change))) !== op.digest)
        throw new DkmsError('CUSTODY_REQUIRED', 'the kept change differs from the one the custodians approved');
      const next = await audited(ctx, 'custody-rotate', { request: pending.request.id, from: set.id }, async () => {
        const oldSecret = await combinePending(pending, set, approvals);
        const made = await resplitCustody(set, pending.change as Parameters<typeof resplitCustody>[1]);
        try {
          await ctx.withWallet((w) => w.rotateCustody(oldSecret, { factor: factorOf(made.set), secret: made.secret }), oldSecret);
          usePending(pending);
        } finally {
          wipe(oldSecret, made.secret);
        }
        return made.set;
      });
      emit(
        ctx,
        { set: next.id, epoch: next.epoch, threshold: next.threshold, custodians: next.custodians.map((c) => c.name) },
        () =>
          `The wallet is now under ${next.threshold} of ${next.custodians.length} custodians (${next.custodians.map((c) => c.name).join(', ')}), epoch ${next.epoch}: the old shares open nothing.`,
      );
    });

  custodian
    .command('status')
    .description('show the custodians, their threshold and mode, and the requests waiting here (needs no secret)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, emit, custodySetOf, setDigest, pendingRequests } = await load();
      const ctx = Context.of(cmd);
      const { set } = await custodySetOf(ctx);
      const pending = pendingRequests(ctx).map((r) => ({ id: r.id, purpose: r.operation?.kind ?? r.purpose, expires: r.expires }));
      const fields = {
        pending,
        set: set.id,
        epoch: set.epoch,
        mode: set.mode,
        threshold: set.threshold,
        custodians: set.custodians.map((c) => ({ name: c.name, sign: c.sign, kx: c.kx })),
        ...(set.limits?.perHour === undefined ? {} : { perHour: set.limits.perHour }),
        digest: setDigest(set),
      };
      emit(ctx, fields, () =>
        [
          `custody set ${set.id}, epoch ${set.epoch}, ${set.mode} mode`,
          `threshold:  ${set.threshold} of ${set.custodians.length}`,
          ...(set.limits?.perHour === undefined ? [] : [`limit:      ${set.limits.perHour} master-key uses an hour`]),
          'custodians:',
          ...set.custodians.map((c) => `  ${c.name}  ${c.sign}`),
          pending.length === 0 ? 'no requests waiting' : 'requests waiting:',
          ...pending.map((r) => `  ${r.id}  ${r.purpose}  until ${r.expires}`),
        ].join('\n'),
      );
    });

  return custodian;
}
