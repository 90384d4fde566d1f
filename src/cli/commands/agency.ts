/** `dkms agency serve`: host owners' cloud agents. */
import { Command } from 'commander';
import { DEFAULT_AGENCY_PORT } from '../../server/ports.js';
import { Context } from '../context.js';
import { ledgerUrl } from '../ledger-access.js';
import { emit } from '../output.js';
import { parsePort, parsePositive } from '../options.js';
import { untilStopped } from './ledger.js';
import { checkAgentKey } from './policy.js';

export function agencyCommand(): Command {
  const agency = new Command('agency').description("an agency: hosts owners' cloud agents and their mailboxes");

  agency
    .command('serve')
    .description('run an agency on embedded storage in the data directory until Ctrl-C')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', parsePort, DEFAULT_AGENCY_PORT)
    .option('--public-url <url>', 'the URL agents should use, if not the one listened on')
    .option('--rate-limit <n>', 'requests per second allowed from one address', parsePositive, 200)
    .option('--agent-rate-limit <n>', 'signed requests per second allowed from one agent', parsePositive, 50)
    .option('--ledger-key <key...>', 'ledger node key(s) to trust (default: the first one seen, remembered)', (v: string, acc: string[] = []) => [...acc, checkAgentKey(v)])
    .action(async (opts: { host: string; port: number; publicUrl?: string; rateLimit: number; agentRateLimit: number; ledgerKey?: string[] }, cmd: Command) => {
      const ctx = Context.of(cmd);
      // The server code is loaded only by the commands that run a server.
      const { startAgency } = await import('../../server/agency-service.js');
      const running = await startAgency(ctx.home, {
        host: opts.host,
        port: opts.port,
        ledgerUrl: ledgerUrl(ctx, ctx.options.ledger),
        rateLimitPerSecond: opts.rateLimit,
        agentRequestsPerSecond: opts.agentRateLimit,
        ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
        ...(opts.ledgerKey === undefined ? {} : { trustedLedgerKeys: opts.ledgerKey }),
      });
      emit(ctx, { agency: running.url, home: ctx.home }, () => `agency listening on ${running.url}\nstop with Ctrl-C`);
      await untilStopped();
      await running.close();
      if (!ctx.json) process.stdout.write('stopped\n');
    });

  return agency;
}
