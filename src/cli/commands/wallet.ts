/** `dkms wallet …`: create, inspect, rekey, export and import the encrypted wallet. */
import { Command, Option } from 'commander';
import type { WalletInfo } from '../../wallet/index.js';
import type { Context } from '../context.js';
import { DEFAULT_KDF_TIER } from '../../crypto/kdf-tiers.js';
import { parseKdfTier } from '../options.js';
import { badInput } from '../../errors.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [{ Wallet }, { Context }, { checkOutput, checkWritable, readInput, writeOutput }, { emit }, { getSecret }] = await Promise.all([
    import('../../wallet/index.js'),
    import('../context.js'),
    import('../files.js'),
    import('../output.js'),
    import('../secrets.js'),
  ]);
  return { Wallet, Context, checkOutput, checkWritable, readInput, writeOutput, emit, getSecret };
}

const tierOption = () =>
  new Option('--kdf-tier <tier>', 'Argon2id cost for a passphrase: interactive, moderate or sensitive').default(DEFAULT_KDF_TIER).argParser(parseKdfTier);

function describeProtection(info: WalletInfo): string {
  const factors: string[] = [];
  if (info.kdf !== undefined) {
    factors.push(info.kdf.alg === 'raw' ? 'raw key' : `${info.kdf.alg} (${info.kdf.tier ?? 'custom'}: ${info.kdf.memoryKiB} KiB, ${info.kdf.passes} passes)`);
  }
  const { token, custody } = info.protection;
  if (token !== undefined) factors.push(`token '${token.token}' (AES key '${token.key}')`);
  if (custody !== undefined && custody.mode === 'unseal') factors.push(`custodians (set ${custody.set}, epoch ${custody.epoch})`);
  return factors.join(' + ');
}

function describeInfo(info: WalletInfo): string {
  const kdf = describeProtection(info);
  const { custody, generation } = info.protection;
  return [
    `wallet:     ${info.path}`,
    `format:     ${info.format}`,
    `opened by:  ${kdf}`,
    ...(custody?.mode === 'approval' ? [`custodians: approve each use of its master keys (set ${custody.set}, epoch ${custody.epoch})`] : []),
    ...(generation === undefined ? [] : [`generation: ${generation}`]),
    `key version: ${info.keyVersion}`,
    `created:    ${info.createdAt}`,
    ...(info.rekeyedAt === undefined ? [] : [`rekeyed:    ${info.rekeyedAt}`]),
    `profiles:   ${info.profiles.join(', ')}`,
    `items:      ${info.items}`,
  ].join('\n');
}

export function walletCommand(): Command {
  const wallet = new Command('wallet').description('the encrypted wallet that holds your keys');

  wallet
    .command('create')
    .description('create a new wallet in the data directory')
    .addOption(tierOption())
    .action(async (opts: { kdfTier: ReturnType<typeof parseKdfTier> }, cmd: Command) => {
      const { Wallet, Context, emit } = await load();
      const ctx = Context.of(cmd);
      const secret = await ctx.walletSecret(true);
      ctx.progress('Creating wallet…');
      const created = await Wallet.create(ctx.walletPath, secret, { kdfTier: opts.kdfTier });
      const info = created.info();
      created.close();
      emit(ctx, { ...info }, () => `Created wallet ${info.path}`);
    });

  wallet
    .command('info')
    .description('show how the wallet is protected and what it holds (needs no passphrase)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Wallet, Context, emit } = await load();
      const ctx = Context.of(cmd);
      // The unlock session holds the wallet (and its file's lock): it answers from the open wallet.
      const info = ctx.inSession ? await ctx.withWallet((w) => w.info()) : Wallet.inspect(ctx.walletPath);
      emit(ctx, { ...info }, () => describeInfo(info));
    });

  wallet
    .command('rekey')
    .description('replace the passphrase or raw key that opens the wallet')
    .option('--new-passphrase-file <file>', 'file whose first line is the new passphrase')
    .option('--new-key-file <file>', 'file holding a new raw 32-byte key')
    .option('--approval <file...>', "a wallet whose custodians approve each rekey: their approvals ('dkms custodian request --rekey')")
    .addOption(tierOption())
    .action(async (opts: { newPassphraseFile?: string; newKeyFile?: string; approval?: string[]; kdfTier: ReturnType<typeof parseKdfTier> }, cmd: Command) => {
      const { Context, emit, getSecret } = await load();
      const { underCustody } = await import('../custody.js');
      const ctx = Context.of(cmd);
      const newSecret = () =>
        getSecret(ctx.io, {
          file: opts.newPassphraseFile,
          keyFile: opts.newKeyFile,
          env: 'DKMS_NEW_PASSPHRASE',
          prompt: 'New wallet passphrase',
          fileFlag: '--new-passphrase-file',
          confirm: true,
        });
      // With custodians' approvals, the new secret is asked for first: a typo does not use them up.
      const early = opts.approval === undefined ? undefined : await newSecret();
      await underCustody(ctx, 'rekey', opts.approval, () =>
        ctx.withWallet(async (w) => {
          const next = early ?? (await newSecret());
          ctx.progress('Re-wrapping wallet keys…');
          await w.rekey(next, { kdfTier: opts.kdfTier });
          const info = w.info();
          emit(ctx, { path: info.path, keyVersion: info.keyVersion, kdf: info.kdf, rekeyedAt: info.rekeyedAt }, () => `Rekeyed wallet ${info.path}`);
        }),
      );
    });

  wallet
    .command('bind-token')
    .description('bind the wallet to a PKCS#11 token: from now on it opens only with the token (and its PIN) present')
    .option('--hsm <uri>', 'the token as a PKCS#11 URI (pkcs11:token=…?module-path=…)')
    .option('--token <label>', 'the token')
    .option('--module <path>', "the token's PKCS#11 module (else $DKMS_HSM_MODULE)")
    .option('--key <label>', "label of the token's AES key that seals the wallet's part (made if the token has none)", 'dkms-wallet')
    .option('--drop-passphrase', 'open with the token alone, without the passphrase')
    .action(async (opts: { hsm?: string; token?: string; module?: string; key: string; dropPassphrase?: boolean }, cmd: Command) => {
      const { Context, emit } = await load();
      const { chooseToken } = await import('../token-choice.js');
      const ctx = Context.of(cmd);
      const { audited } = await import('../custody.js');
      const choice = chooseToken(ctx, opts);
      const info = await audited(ctx, 'bind-token', { token: choice.token, key: opts.key, passphrase: opts.dropPassphrase !== true }, () =>
        ctx.withWallet(async (w) => {
          const token = await choice.ctx.openToken(choice.module, choice.token);
          ctx.progress('Re-wrapping wallet keys…');
          await w.protect({ token: { token, module: choice.module, key: opts.key }, ...(opts.dropPassphrase === true ? { secret: null } : {}) });
          return w.info();
        }),
      );
      emit(ctx, { ...info }, () => `Bound wallet ${info.path} to token '${choice.token}': it opens with ${describeProtection(info)}`);
    });

  wallet
    .command('unbind-token')
    .description('unbind the wallet from its token: it opens with its passphrase alone again')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      const { audited } = await import('../custody.js');
      const info = await audited(ctx, 'unbind-token', {}, () =>
        ctx.withWallet(async (w) => {
          const current = w.info();
          if (current.protection.token === undefined) throw badInput('the wallet is not bound to a token');
          if (current.kdf === undefined)
            throw badInput('the wallet has no passphrase to open it without the token: give it one with `dkms wallet rekey` first');
          await w.protect({ token: null });
          return w.info();
        }),
      );
      emit(ctx, { ...info }, () => `Unbound wallet ${info.path} from its token: it opens with ${describeProtection(info)}`);
    });

  const exportSecret = async (ctx: Context, opts: { exportPassphraseFile?: string; exportKeyFile?: string }, confirm: boolean) =>
    (await load()).getSecret(ctx.io, {
      file: opts.exportPassphraseFile,
      keyFile: opts.exportKeyFile,
      env: 'DKMS_EXPORT_PASSPHRASE',
      prompt: 'Export passphrase',
      fileFlag: '--export-passphrase-file',
      confirm,
    });

  wallet
    .command('export')
    .description('write the whole wallet to one encrypted file')
    .requiredOption('--out <file>', 'where to write the export')
    .option('--export-passphrase-file <file>', 'file whose first line is the passphrase protecting the export')
    .option('--export-key-file <file>', 'file holding a raw 32-byte key protecting the export')
    .option('--force', 'replace the file if it exists')
    .option('--approval <file...>', "a wallet whose custodians approve each export: their approvals ('dkms custodian request --export')")
    .addOption(tierOption())
    .action(
      async (
        opts: {
          out: string;
          force?: boolean;
          exportPassphraseFile?: string;
          exportKeyFile?: string;
          approval?: string[];
          kdfTier: ReturnType<typeof parseKdfTier>;
        },
        cmd: Command,
      ) => {
        const { Context, checkOutput, checkWritable, writeOutput, emit } = await load();
        const { underCustody } = await import('../custody.js');
        const ctx = Context.of(cmd);
        // What the export needs besides the wallet (where it goes, its passphrase) is checked
        // before the wallet is unlocked, which can take seconds of Argon2.
        checkOutput(opts.out, opts.force === true);
        checkWritable(opts.out, '--out', 'file');
        const secret = await exportSecret(ctx, opts, true);
        await underCustody(ctx, 'export', opts.approval, () =>
          ctx.withWallet(async (w) => {
            ctx.progress('Encrypting export…');
            const bytes = await w.export(secret, { kdfTier: opts.kdfTier });
            writeOutput(opts.out, bytes, { force: opts.force === true });
            emit(ctx, { out: opts.out, bytes: bytes.length, items: w.info().items }, () => `Exported wallet to ${opts.out}`);
          }),
        );
      },
    );

  wallet
    .command('import')
    .description('create the wallet from an export file')
    .requiredOption('--in <file>', 'the export file')
    .option('--export-passphrase-file <file>', 'file whose first line is the passphrase protecting the export')
    .option('--export-key-file <file>', 'file holding the raw 32-byte key protecting the export')
    .addOption(tierOption())
    .action(async (opts: { in: string; exportPassphraseFile?: string; exportKeyFile?: string; kdfTier: ReturnType<typeof parseKdfTier> }, cmd: Command) => {
      const { Wallet, Context, readInput, emit } = await load();
      const ctx = Context.of(cmd);
      const bytes = readInput(ctx.io, opts.in);
      const exported = await exportSecret(ctx, opts, false);
      const secret = await ctx.walletSecret(true);
      ctx.progress('Decrypting export…');
      const imported = await Wallet.import(ctx.walletPath, bytes, exported, secret, { kdfTier: opts.kdfTier });
      const info = imported.info();
      imported.close();
      emit(ctx, { ...info }, () => `Imported ${info.items} items into ${info.path}`);
    });

  return wallet;
}
