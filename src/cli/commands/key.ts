/** `dkms key …`: keys created and used inside the wallet; only public keys ever come out. */
import { Command, Option } from 'commander';
import { DkmsError, badInput } from '../../errors.js';
import type { KeyInfo } from '../../wallet/index.js';
import { KEY_TYPES } from '../../crypto/encoding.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [crypto, { Context }, { readInput }, { emit, table }] = await Promise.all([
    import('../../crypto/index.js'),
    import('../context.js'),
    import('../files.js'),
    import('../output.js'),
  ]);
  return { ...crypto, Context, readInput, emit, table };
}

const keyFields = (k: KeyInfo) => ({
  name: k.name,
  type: k.type,
  publicKey: k.publicKey,
  createdAt: k.createdAt,
  location: k.location.kind === 'token' ? `token:${k.location.token}` : k.location.kind,
  ...(k.location.kind === 'token' ? { token: { token: k.location.token, label: k.location.label, module: k.location.module } } : {}),
});

export function keyCommand(): Command {
  const key = new Command('key').description('signing and key-agreement keys held in the wallet');

  key
    .command('create')
    .description('create a key inside the wallet (or, with --hsm, inside a hardware token) and print its public key')
    .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).makeOptionMandatory())
    .requiredOption('--name <name>', 'a name for the key, unique in the wallet')
    .option(
      '--hsm [uri]',
      "make it in a PKCS#11 token, never extractable: the token of --token/--module, of a PKCS#11 URI (pkcs11:token=…;object=…?module-path=…), or the wallet's own",
    )
    .option('--token <label>', 'with --hsm: the token')
    .option('--module <path>', "with --hsm: the token's PKCS#11 module (else $DKMS_HSM_MODULE)")
    .option('--label <label>', "with --hsm: the key's label in the token (default: its name)")
    .action(async (opts: { type: KeyInfo['type']; name: string; hsm?: string | boolean; token?: string; module?: string; label?: string }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      if (opts.hsm === undefined) {
        if (opts.token !== undefined || opts.module !== undefined || opts.label !== undefined) throw badInput('--token, --module and --label go with --hsm');
        const created = await ctx.withWallet((w) => w.createKey(opts.name, opts.type));
        emit(ctx, keyFields(created), () => `Created ${created.type} key '${created.name}'\npublic key: ${created.publicKey}`);
        return;
      }
      if (opts.type !== 'ed25519') throw badInput('keys in a token are ed25519 signing keys');
      const [{ chooseToken }, { audited }] = await Promise.all([import('../token-choice.js'), import('../custody.js')]);
      const created = await ctx.withWallet(async (w) => {
        const choice = chooseToken(ctx, opts, w.info().protection.token);
        const label = opts.label ?? choice.label ?? opts.name;
        return audited(ctx, 'key-create', { name: opts.name, token: choice.token, label }, async () => {
          const token = await choice.ctx.openToken(choice.module, choice.token);
          return w.createTokenKey(opts.name, token, { module: choice.module, label });
        });
      });
      const where = created.location.kind === 'token' ? ` in token '${created.location.token}' (label '${created.location.label}')` : '';
      emit(ctx, keyFields(created), () => `Created ${created.type} key '${created.name}'${where}: it never leaves the token\npublic key: ${created.publicKey}`);
    });

  key
    .command('list')
    .description('list the keys in the wallet')
    .addOption(new Option('--type <type>', 'only keys of this type').choices(KEY_TYPES))
    .action(async (opts: { type?: KeyInfo['type'] }, cmd: Command) => {
      const { Context, emit, table } = await load();
      const ctx = Context.of(cmd);
      const keys = await ctx.withWallet((w) => w.listKeys(opts.type));
      emit(ctx, { keys: keys.map(keyFields) }, () =>
        keys.length === 0 ? 'No keys.' : table(keys.map(keyFields), ['name', 'type', 'location', 'publicKey', 'createdAt']),
      );
    });

  key
    .command('show')
    .description('show one key')
    .requiredOption('--name <name>', 'the key')
    .action(async (opts: { name: string }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      const found = await ctx.withWallet((w) => w.getKey(opts.name));
      emit(ctx, keyFields(found));
    });

  key
    .command('delete')
    .description('delete a key for good')
    .requiredOption('--name <name>', 'the key')
    .option('--yes', 'confirm: the key cannot be recovered except from an export')
    .action(async (opts: { name: string; yes?: boolean }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      if (opts.yes !== true) throw badInput(`deleting key '${opts.name}' is permanent: add --yes to confirm`);
      await ctx.withWallet((w) => {
        if (w.getKey(opts.name).location.kind === 'custody') {
          throw new DkmsError('CUSTODY_REQUIRED', `key '${opts.name}' is a master key under custodians: it is not deleted on one person's word`);
        }
        w.deleteKey(opts.name);
      });
      emit(ctx, { name: opts.name, deleted: true }, () => `Deleted key '${opts.name}'`);
    });

  key
    .command('sign')
    .description('sign a file with an Ed25519 key; prints the signature (base64url)')
    .requiredOption('--name <name>', 'the signing key')
    .requiredOption('--in <file>', "the file to sign ('-' for standard input)")
    .option('--approval <file...>', "a master key under custodians: their approvals of this use ('dkms custodian request --sign FILE --key NAME')")
    .action(async (opts: { name: string; in: string; approval?: string[] }, cmd: Command) => {
      const { Context, readInput, toBase64url, emit } = await load();
      const ctx = Context.of(cmd);
      const message = readInput(ctx.io, opts.in);
      let signed: { signature: Uint8Array; publicKey: string };
      if (opts.approval !== undefined) {
        const { signWithApprovals } = await import('../custody.js');
        const publicKey = (await ctx.withWallet((w) => w.getKey(opts.name))).publicKey;
        signed = { signature: await signWithApprovals(ctx, opts.name, message, opts.approval), publicKey };
      } else {
        signed = await ctx.withWallet(async (w) => {
          try {
            return { signature: w.sign(opts.name, message), publicKey: w.getKey(opts.name).publicKey };
          } catch (e) {
            // A master key tried without its custodians: the attempt is recorded.
            if (e instanceof DkmsError && e.code === 'CUSTODY_REQUIRED')
              throw (await import('../custody.js')).recordRefusal(ctx, 'sign', { key: opts.name }, e);
            throw e;
          }
        });
      }
      const signature = toBase64url(signed.signature);
      emit(ctx, { name: opts.name, publicKey: signed.publicKey, signature }, () => signature);
    });

  key
    .command('verify')
    .description('check an Ed25519 signature over a file (exit 0 valid, 1 invalid); needs no wallet')
    .requiredOption('--public-key <key>', "the signer's public key (z6Mk…)")
    .requiredOption('--signature <sig>', 'the signature (base64url)')
    .requiredOption('--in <file>', "the signed file ('-' for standard input)")
    .action(async (opts: { publicKey: string; signature: string; in: string }, cmd: Command) => {
      const { Context, decodePublicKey, fromBase64url, ed25519Verify, readInput, emit } = await load();
      const ctx = Context.of(cmd);
      const { publicKey } = decodePublicKey(opts.publicKey, 'ed25519');
      const signature = fromBase64url(opts.signature, 'signature');
      if (signature.length !== 64) throw badInput(`signature must be 64 bytes, got ${signature.length}`);
      if (!ed25519Verify(publicKey, readInput(ctx.io, opts.in), signature)) {
        throw new DkmsError('SIGNATURE_INVALID', 'the signature does not verify with this public key');
      }
      emit(ctx, { valid: true, publicKey: opts.publicKey }, () => 'valid');
    });

  return key;
}
