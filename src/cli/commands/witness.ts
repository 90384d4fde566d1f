/** `dkms ledger witness`: follow a ledger node and cosign its heads (docs/witness.md), or show the witness's state. */
import { join } from 'node:path';
import { Command } from 'commander';
import { badInput } from '../../errors.js';
import type { Evidence } from '../../ledger/witness.js';
import { DEFAULT_WITNESS_PORT } from '../../server/ports.js';
import type { Context } from '../context.js';
import { parsePort, parsePositive } from '../options.js';

/** The witness's directory in a data directory (the service's `witnessDir`). */
const WITNESS_DIR = 'witness';

interface WitnessOptions {
  host: string;
  port: number;
  interval: number;
  show?: boolean;
}

/** The witness's key, created before its first run if need be, so that nodes can be told to accept it. */
async function witnessKey(dir: string): Promise<string> {
  const { openWitnessIdentity } = await import('../../server/witness-service.js');
  const identity = await openWitnessIdentity(dir);
  identity.close();
  return identity.multikey;
}

/** Prints the witness's key, the node it follows, its last cosigned head and its evidence. */
async function show(ctx: Context): Promise<void> {
  const [{ describeEvidence, readWitnessState }, { emit }] = await Promise.all([import('../../ledger/witness.js'), import('../output.js')]);
  const dir = join(ctx.home, WITNESS_DIR);
  const state = readWitnessState(dir);
  const result = { key: state?.key ?? (await witnessKey(dir)), node: state?.node ?? null, last: state?.last ?? null, evidence: state?.evidence ?? [] };
  const { last, evidence } = result;
  emit(ctx, result, () =>
    [
      `witness key: ${result.key}`,
      `node:        ${result.node ?? '- (not started yet)'}`,
      `cosigned:    ${last === null ? '-' : `${last.size} events, root ${last.root} (signed by the node at ${last.time})`}`,
      ...(evidence.length === 0 ? ['evidence:    none'] : evidence.map((e) => `EVIDENCE:    ${e.kind} found at ${e.at}: ${describeEvidence(e)}`)),
    ].join('\n'),
  );
}

function nodeKeyOf(ctx: Context): string {
  const keys = [...new Set([...(ctx.options.nodeKey ?? []), ...(ctx.options.trust ?? [])])];
  if (keys.length !== 1) throw badInput('a witness follows one node: give its key with --node-key KEY (dkms ledger status shows it)');
  return keys[0] ?? '';
}

export function witnessCommand(): Command {
  return new Command('witness')
    .description(
      'witness a ledger node, given by the global --ledger URL and --node-key KEY: cosign each head that extends the last one (and is not older than the global --max-head-age), report a node caught equivocating, rolling back or forking; until Ctrl-C',
    )
    .option('--host <host>', "address to serve the witness's API on", '127.0.0.1')
    .option('--port <port>', "port of the witness's API", parsePort, DEFAULT_WITNESS_PORT)
    .option('--interval <ms>', "poll the node's head this often, in milliseconds", parsePositive, 500)
    .option('--show', "print the witness's key, the node it follows, its last cosigned head and its evidence, and exit")
    .action(async (opts: WitnessOptions, cmd: Command) => {
      // Loaded only when the command runs: a definition, `--help` included, loads none of it.
      const { Context } = await import('../context.js');
      const ctx = Context.of(cmd);
      if (opts.show === true) return show(ctx);
      const [{ ledgerUrl }, { describeEvidence, WITNESS_STATE_FILE }, { checkPortFree, serveUntilStopped }] = await Promise.all([
        import('../ledger-access.js'),
        import('../../ledger/witness.js'),
        import('../serve.js'),
      ]);
      await checkPortFree(opts.host, opts.port, '--port');
      const ledger = ledgerUrl(ctx, ctx.options.ledger);
      const statePath = join(ctx.home, WITNESS_DIR, WITNESS_STATE_FILE);
      // The server code is loaded only when a witness runs.
      const { startWitness } = await import('../../server/witness-service.js');
      const running = await startWitness(ctx.home, {
        ledger,
        nodeKey: nodeKeyOf(ctx),
        host: opts.host,
        port: opts.port,
        intervalMs: opts.interval,
        ...(ctx.options.maxHeadAge === undefined ? {} : { maxHeadAgeMs: ctx.options.maxHeadAge * 1000 }),
        onEvidence: (e: Evidence) => ctx.io.err(`dkms: WITNESS_REFUSED: ${e.kind}: ${describeEvidence(e)}; evidence kept in ${statePath}\n`),
        onProblem: (e) => ctx.io.err(`dkms: witness: ${e.code}: ${e.message}\n`),
      });
      const { key, node } = running.witness;
      await serveUntilStopped(
        ctx,
        [running],
        { witness: running.url, key, node, ledger, home: ctx.home },
        `witness listening on ${running.url}\nwitness key ${key}\nfollowing node ${node} at ${ledger}\nstop with Ctrl-C`,
      );
    });
}
