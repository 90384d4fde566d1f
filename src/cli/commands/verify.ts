/** `dkms verify`: was a signature made by an agent that held PROVE in an owner's policy at a given time? */
import { Command } from 'commander';
import { DkmsError, badInput } from '../../errors.js';
import type { Did, PolicyAddress } from '../../ledger/events.js';

export function verifyCommand(): Command {
  return new Command('verify')
    .description("check that a signature over a file was made by one of an owner's PROVE agents (exit 0 valid, 1 invalid)")
    .option('--did <did>', "the owner's DID")
    .option('--policy <address>', "or the owner's policy")
    .requiredOption('--signer <key>', "the signing agent's Ed25519 key (z6Mk…)")
    .requiredOption('--signature <sig>', 'the signature (base64url)')
    .requiredOption('--in <file>', "the signed file ('-' for standard input)")
    .option('--time <iso>', 'when the signature was made (default: now)')
    .action(async (opts: { did?: string; policy?: string; signer: string; signature: string; in: string; time?: string }, cmd: Command) => {
      // Loaded only when the command runs: a definition, `--help` included, loads none of it.
      const [{ fromBase64url }, { verifyAgentSignature }, { Context }, { readInput }, { ledgerClient }, { emit }] = await Promise.all([
        import('../../crypto/index.js'),
        import('../../policy/verify.js'),
        import('../context.js'),
        import('../files.js'),
        import('../ledger-access.js'),
        import('../output.js'),
      ]);
      const ctx = Context.of(cmd);
      if ((opts.did === undefined) === (opts.policy === undefined)) throw badInput('give exactly one of --did or --policy');
      const time = opts.time ?? new Date().toISOString();
      if (Number.isNaN(Date.parse(time))) throw badInput('--time must be an ISO 8601 date-time');
      const signature = fromBase64url(opts.signature, 'signature');
      if (signature.length !== 64) throw badInput(`signature must be 64 bytes, got ${signature.length}`);
      const client = ledgerClient(ctx, ctx.options.ledger);
      const history =
        opts.did !== undefined
          ? (await client.resolveDidRecord(opts.did as Did)).policyHistory
          : (await client.resolvePolicy(opts.policy as PolicyAddress)).policyHistory;
      const result = verifyAgentSignature(history, { key: opts.signer, message: readInput(ctx.io, opts.in), signature, time });
      if (!result.valid) {
        // Checked at now by default: a signature made before the revocation needs its own time.
        const hint = result.reason === 'REVOKED' && opts.time === undefined ? ' (a signature made before then verifies with --time <when it was made>)' : '';
        throw new DkmsError('SIGNATURE_INVALID', `${result.reason}: ${result.message}${hint}`);
      }
      emit(ctx, { valid: true, signer: opts.signer, time, asOf: result.asOf }, () => `valid: signed by ${opts.signer}, an agent holding PROVE at ${time}`);
    });
}
