/** `dkms did …`: public DIDs controlled by a policy, and their resolution with full verification. */
import { Command, InvalidArgumentError } from 'commander';
import { badInput } from '../../errors.js';
import type { Did, Service } from '../../ledger/events.js';
import { asOf, asOfOptions, signingOptions, type AsOf, type Signing } from '../options.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [{ didCreate, nextEvent }, { Context }, { signWith, submitOrWrite }, { ledgerClient }, { emit }] = await Promise.all([
    import('../../ledger/build.js'),
    import('../context.js'),
    import('../events-io.js'),
    import('../ledger-access.js'),
    import('../output.js'),
  ]);
  return { didCreate, nextEvent, Context, signWith, submitOrWrite, ledgerClient, emit };
}

/** `#id,type,url` → a service entry. */
function parseService(value: string, previous: Service[] = []): Service[] {
  const first = value.indexOf(',');
  const second = value.indexOf(',', first + 1);
  if (first < 0 || second < 0) throw new InvalidArgumentError("a service is '#id,type,url', e.g. '#agency,DIDCommMessaging,https://agency.example/'");
  return [...previous, { id: value.slice(0, first), type: value.slice(first + 1, second), serviceEndpoint: value.slice(second + 1) }];
}

function checkDid(value: string): Did {
  if (!value.startsWith('did:dkms:')) throw badInput(`'${value}' is not a did:dkms DID`);
  return value as Did;
}

const ADMIN_KEYS = 'wallet key(s) of ADMIN agents to sign with';

export function didCommand(): Command {
  const did = new Command('did').description("public DIDs: their keys are your policy's PROVE agents");

  signingOptions(
    did
      .command('create')
      .description('create a public DID controlled by a policy')
      .requiredOption('--policy <address>', 'the controlling policy')
      .option('--service <#id,type,url>', 'a service endpoint (repeatable)', parseService),
    ADMIN_KEYS,
  ).action(async (opts: Signing & { policy: string; service?: Service[] }, cmd: Command) => {
    const { Context, signWith, didCreate, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    if (!opts.policy.startsWith('policy:')) throw badInput(`'${opts.policy}' is not a policy address (policy:…)`);
    const event = await ctx.withWallet((w) => signWith(w, didCreate(opts.policy as `policy:${string}`, opts.service ?? []), opts.key));
    await submitOrWrite(ctx, event, opts, (r) => `Created ${r.subject}`);
  });

  signingOptions(
    did
      .command('update')
      .description("replace a DID's services")
      .requiredOption('--did <did>', 'the DID')
      .option('--service <#id,type,url>', 'a service endpoint (repeatable; none removes them all)', parseService),
    ADMIN_KEYS,
  ).action(async (opts: Signing & { did: string; service?: Service[] }, cmd: Command) => {
    const { Context, ledgerClient, signWith, nextEvent, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    const { record } = await ledgerClient(ctx, ctx.options.ledger).resolveDidRecord(checkDid(opts.did));
    const event = await ctx.withWallet((w) => signWith(w, nextEvent('did.update', record.subject, record, { services: opts.service ?? [] }), opts.key));
    await submitOrWrite(ctx, event, opts, () => `Updated ${opts.did}`);
  });

  signingOptions(
    did
      .command('deactivate')
      .description('end a DID for good')
      .requiredOption('--did <did>', 'the DID')
      .option('--yes', 'confirm: a deactivated DID can never be used again'),
    ADMIN_KEYS,
  ).action(async (opts: Signing & { did: string; yes?: boolean }, cmd: Command) => {
    const { Context, ledgerClient, signWith, nextEvent, submitOrWrite } = await load();
    const ctx = Context.of(cmd);
    if (opts.yes !== true) throw badInput(`deactivating ${opts.did} is permanent: add --yes to confirm`);
    const { record } = await ledgerClient(ctx, ctx.options.ledger).resolveDidRecord(checkDid(opts.did));
    const event = await ctx.withWallet((w) => signWith(w, nextEvent('did.deactivate', record.subject, record, {}), opts.key));
    await submitOrWrite(ctx, event, opts, () => `Deactivated ${opts.did}`);
  });

  asOfOptions(
    did.command('resolve').description('resolve a DID to its document, verifying its chain and its policy from inception').argument('<did>', 'the DID'),
  ).action(async (didArg: string, opts: AsOf, cmd: Command) => {
    const [{ Context }, { ledgerClient }, { emit }, { resolveDid }] = await Promise.all([
      import('../context.js'),
      import('../ledger-access.js'),
      import('../output.js'),
      import('../../did/resolve.js'),
    ]);
    const ctx = Context.of(cmd);
    const resolved = await resolveDid(ledgerClient(ctx, ctx.options.ledger), checkDid(didArg), asOf(opts));
    emit(
      ctx,
      {
        didDocument: resolved.didDocument,
        didDocumentMetadata: resolved.didDocumentMetadata,
        verified: { events: resolved.history.length, headSize: resolved.head.size },
      },
      () => JSON.stringify({ didDocument: resolved.didDocument, didDocumentMetadata: resolved.didDocumentMetadata }, null, 2),
    );
  });

  return did;
}
