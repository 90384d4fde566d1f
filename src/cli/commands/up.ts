/** `dkms up`: the main job — a local ledger node and an agency on embedded storage in the data directory. */
import { Command } from 'commander';
import { DEFAULT_AGENCY_PORT, DEFAULT_LEDGER_PORT } from '../../server/ports.js';
import { parseNonNegative, parsePort } from '../options.js';

/** The options of `dkms up`. */
interface UpOptions {
  host: string;
  ledgerPort: number;
  agencyPort: number;
  ledgerStore?: string;
  rateLimit: number;
  acceptWitness?: string[];
  dashboard: boolean;
  console: boolean;
}

export function upCommand(): Command {
  return new Command('up')
    .description('run a local ledger node and agency on 127.0.0.1 with embedded storage, until Ctrl-C')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--ledger-port <port>', 'ledger node port', parsePort, DEFAULT_LEDGER_PORT)
    .option('--agency-port <port>', 'agency port', parsePort, DEFAULT_AGENCY_PORT)
    .option('--ledger-store <url>', 'where the log lives: sqlite (default) or etcd://host:port,…')
    .option('--rate-limit <n>', 'ledger requests per second allowed from one client address (0: no limit)', parseNonNegative, 200)
    .option('--accept-witness <key...>', 'witness keys whose cosignatures the ledger node accepts and serves')
    .option('--no-dashboard', 'serve the ledger API alone, without the web dashboard under /ui/')
    .option('--no-console', 'serve the dashboard without the owner console (which logs in with the wallet passphrase; on loopback only)')
    .action(async (opts: UpOptions, cmd: Command) => {
      // The server code (and the rest) is loaded only when the command runs.
      const [
        { Context },
        { checkPortFree, serveUntilStopped },
        { startLedger },
        { startAgency },
        { CONSOLE_OFF_NOT_LOOPBACK, consoleUrl, explorerUrl, loadDashboard, offersConsole },
      ] = await Promise.all([
        import('../context.js'),
        import('../serve.js'),
        import('../../server/ledger-service.js'),
        import('../../server/agency-service.js'),
        import('../dashboard.js'),
      ]);
      const ctx = Context.of(cmd);
      // Both ports before anything is made in the data directory.
      await checkPortFree(opts.host, opts.ledgerPort, '--ledger-port');
      await checkPortFree(opts.host, opts.agencyPort, '--agency-port');
      const assets = opts.dashboard ? await loadDashboard(ctx) : undefined;
      const withConsole = assets !== undefined && opts.console && offersConsole(assets, opts.host);
      if (assets !== undefined && opts.console && !withConsole && assets.has('/ui/console/index.html')) ctx.io.err(CONSOLE_OFF_NOT_LOOPBACK);
      const backend = withConsole ? new (await import('../console-backend.js')).SessionConsole(ctx.home) : undefined;
      const ledger = await startLedger(ctx.home, {
        host: opts.host,
        port: opts.ledgerPort,
        rateLimitPerSecond: opts.rateLimit,
        ...(opts.ledgerStore === undefined ? {} : { store: opts.ledgerStore }),
        ...(opts.acceptWitness === undefined ? {} : { witnessKeys: opts.acceptWitness }),
        ...(assets === undefined ? {} : { web: { assets, ...(backend === undefined ? {} : { console: { backend } }) } }),
      });
      const explorer = assets === undefined ? undefined : explorerUrl(opts.host, ledger.url, ledger.node.key);
      const consoleAddress = backend === undefined ? null : consoleUrl(opts.host, ledger.url);
      let agency;
      try {
        agency = await startAgency(ctx.home, { host: opts.host, port: opts.agencyPort, ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.node.key] });
      } catch (e) {
        await ledger.close();
        throw e;
      }
      await serveUntilStopped(
        ctx,
        [agency, ledger],
        {
          ledger: ledger.url,
          key: ledger.node.key,
          agency: agency.url,
          home: ctx.home,
          ...(explorer === undefined ? {} : { explorer }),
          console: consoleAddress,
        },
        [
          `dkms is up (data in ${ctx.home})`,
          `ledger node: ${ledger.url}  (node key ${ledger.node.key})`,
          `agency:      ${agency.url}`,
          ...(explorer === undefined ? [] : [`explorer:    ${explorer}`]),
          ...(consoleAddress === null ? [] : [`console:     ${consoleAddress}`]),
          'stop with Ctrl-C',
        ].join('\n'),
      );
    });
}
