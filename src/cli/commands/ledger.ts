/** `dkms ledger …`: run a ledger node, check it, audit and rebuild its state, submit events. */
import { Command } from 'commander';
import { DEFAULT_LEDGER_PORT } from '../../server/ports.js';
import type { Context } from '../context.js';
import { parseNonNegative, parsePort, parsePositive } from '../options.js';
import { DkmsError } from '../../errors.js';
import type { LedgerNode } from '../../ledger/node.js';
import { witnessCommand } from './witness.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [{ Context }, { emit }] = await Promise.all([import('../context.js'), import('../output.js')]);
  return { Context, emit };
}

/** Opens the node's store for an offline task (audit, reindex), runs it, and always closes. */
async function withStoppedNode(ctx: Context, store: string | undefined, fn: (node: LedgerNode) => Promise<void>): Promise<void> {
  const { openLedgerNode } = await import('../../server/ledger-service.js');
  const { node, closeIdentity } = await openLedgerNode(ctx.home, 0, store);
  try {
    await fn(node);
  } finally {
    await node.close();
    closeIdentity();
  }
}

/** The options of `ledger serve`. */
interface ServeOptions {
  host: string;
  port: number;
  rateLimit: number;
  store?: string;
  acceptWitness?: string[];
  headInterval: number;
  dashboard: boolean;
}

export function ledgerCommand(): Command {
  const ledger = new Command('ledger').description('the ledger node: serve it, check it, audit it');

  ledger
    .command('serve')
    .description('run a ledger node on embedded storage in the data directory until Ctrl-C')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', parsePort, DEFAULT_LEDGER_PORT)
    .option('--rate-limit <n>', 'requests per second allowed from one client (0: no limit)', parseNonNegative, 200)
    .option('--store <url>', 'where the log lives: sqlite (the data directory, default) or etcd://host:port,host:port,… (shared by several nodes)')
    .option('--accept-witness <key...>', 'witness keys whose cosignatures this node accepts and serves with its heads')
    .option('--head-interval <seconds>', 'sign the head again at least this often, even when idle', parsePositive, 5)
    .option('--no-dashboard', 'serve the API alone, without the web explorer under /ui/')
    .action(async (opts: ServeOptions, cmd: Command) => {
      // The server code is loaded only by the commands that run a server.
      const [{ Context }, { checkPortFree, serveUntilStopped }, { startLedger }, { explorerUrl, loadDashboard }] = await Promise.all([
        import('../context.js'),
        import('../serve.js'),
        import('../../server/ledger-service.js'),
        import('../dashboard.js'),
      ]);
      const ctx = Context.of(cmd);
      await checkPortFree(opts.host, opts.port, '--port');
      const assets = opts.dashboard ? await loadDashboard(ctx) : undefined;
      const running = await startLedger(ctx.home, {
        host: opts.host,
        port: opts.port,
        rateLimitPerSecond: opts.rateLimit,
        headIntervalMs: opts.headInterval * 1000,
        ...(opts.store === undefined ? {} : { store: opts.store }),
        ...(opts.acceptWitness === undefined ? {} : { witnessKeys: opts.acceptWitness }),
        // The explorer alone: the owner console is `dkms up`'s.
        ...(assets === undefined ? {} : { web: { assets } }),
      });
      const explorer = assets === undefined ? undefined : explorerUrl(opts.host, running.url, running.node.key);
      await serveUntilStopped(
        ctx,
        [running],
        { ledger: running.url, key: running.node.key, home: ctx.home, ...(explorer === undefined ? {} : { explorer }) },
        [
          `ledger node listening on ${running.url}`,
          `node key ${running.node.key}`,
          ...(explorer === undefined ? [] : [`explorer: ${explorer}`]),
          'stop with Ctrl-C',
        ].join('\n'),
      );
    });

  ledger
    .command('status')
    .description("the ledger's verified tree head (size, roots, time, node key, witnesses' cosignatures)")
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ Context, emit }, { ledgerClient }] = await Promise.all([load(), import('../ledger-access.js')]);
      const ctx = Context.of(cmd);
      const client = ledgerClient(ctx, ctx.options.ledger);
      const head = await client.head();
      const cosignatures = (head.cosignatures ?? []).map((c) => ({ key: c.key, time: c.time }));
      emit(ctx, { ledger: client.url, size: head.size, root: head.root, map: head.map, time: head.time, key: head.key, cosignatures, verified: true }, () =>
        [
          `ledger:   ${client.url}`,
          `events:   ${head.size}`,
          `root:     ${head.root}`,
          `map root: ${head.map}`,
          `time:     ${head.time}`,
          `node key: ${head.key}`,
          ...cosignatures.map((c) => `witness:  ${c.key} (cosigned ${c.time})`),
          'head signature, age and consistency verified',
        ].join('\n'),
      );
    });

  ledger
    .command('verify')
    .description('audit the ledger store: every chain, signature and authority step, every leaf, the Merkle root, the stored state (the node must be stopped)')
    .option('--store <url>', 'sqlite (the data directory, default) or etcd://host:port,…')
    .action(async (opts: { store?: string }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      await withStoppedNode(ctx, opts.store, async (node) => {
        // A large store takes a while: what is done is said about once a second, at a terminal.
        let said = Date.now();
        const onProgress = (verified: number, total: number) => {
          if (Date.now() - said < 1000 || verified === total) return;
          said = Date.now();
          ctx.progress(`verified ${verified} of ${total} events…`);
        };
        const { events, problems } = await node.verify({ onProgress });
        emit(ctx, { events, problems, ok: problems.length === 0 }, () =>
          problems.length === 0 ? `ledger verified: ${events} events, no problems` : problems.join('\n'),
        );
        if (problems.length > 0) throw new DkmsError('LEDGER_STORE_DAMAGED', `${problems.length} problem(s) found in ${events} events`);
      });
    });

  ledger
    .command('reindex')
    .description('rebuild the state from the log alone and replace the stored state (every node must be stopped)')
    .option('--store <url>', 'sqlite (the data directory, default) or etcd://host:port,…')
    .action(async (opts: { store?: string }, cmd: Command) => {
      const { Context, emit } = await load();
      const ctx = Context.of(cmd);
      await withStoppedNode(ctx, opts.store, async (node) => {
        const { events, subjects, differences } = await node.reindex(true);
        emit(
          ctx,
          { events, subjects, differences },
          () =>
            `rebuilt ${subjects} subjects from ${events} events; ${differences.length === 0 ? 'the stored state was identical' : `corrected ${differences.length}: ${differences.join(', ')}`}`,
        );
      });
    });

  ledger
    .command('submit')
    .description('add signatures by local keys to an event file (from --out) and submit it')
    .requiredOption('--in <file>', 'the event, as written by --out')
    .option('--key <name...>', 'wallet keys to co-sign with')
    .option('--approval <file...>', "with one --key under custodians: their approvals of this event ('dkms custodian request --event FILE --key NAME')")
    .option('--out <file>', 'write the co-signed event instead of submitting it')
    .option('--force', 'with --out, replace the file')
    .action(async (opts: { in: string; key?: string[]; approval?: string[]; out?: string; force?: boolean }, cmd: Command) => {
      const [{ Context }, { cosign, readEventFile, submitOrWrite }] = await Promise.all([load(), import('../events-io.js')]);
      const ctx = Context.of(cmd);
      let event = readEventFile(ctx.io, opts.in);
      if (opts.approval !== undefined) {
        const [{ signWithApprovals }, { signingBytes }, { toBase64url }, { badInput }] = await Promise.all([
          import('../custody.js'),
          import('../../ledger/events.js'),
          import('../../crypto/index.js'),
          import('../../errors.js'),
        ]);
        const [name, ...others] = opts.key ?? [];
        if (name === undefined || others.length > 0) throw badInput('--approval signs with one master key: give it alone with --key');
        const publicKey = (await ctx.withWallet((w) => w.getKey(name))).publicKey;
        const draft = event;
        await signWithApprovals(ctx, name, signingBytes(draft), opts.approval, async (sig) => {
          const signed = { ...draft, sigs: [...draft.sigs, { kid: publicKey, sig: toBase64url(sig) }] };
          await submitOrWrite(ctx, signed, opts, (r) => `accepted ${signed.type} for ${r.subject} (seq ${r.seq}, log position ${r.gseq})`);
        });
        return;
      }
      if ((opts.key ?? []).length > 0) event = await ctx.withWallet((w) => cosign(w, event, opts.key ?? []));
      await submitOrWrite(ctx, event, opts, (r) => `accepted ${event.type} for ${r.subject} (seq ${r.seq}, log position ${r.gseq})`);
    });

  ledger.addCommand(witnessCommand());
  return ledger;
}
