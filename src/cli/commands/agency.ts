/** `dkms agency serve`: host owners' cloud agents. */
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_AGENCY_PORT } from '../../server/ports.js';
import { DEFAULT_LIMITS } from '../../agency/agency-store.js';
import { DkmsError } from '../../errors.js';
import { parsePort, parsePositive } from '../options.js';
import { checkAgentKey } from './policy.js';

const MIB = 1024 * 1024;

interface ServeOptions {
  readonly host: string;
  readonly port: number;
  readonly publicUrl?: string;
  readonly rateLimit: number;
  readonly agentRateLimit: number;
  readonly ledgerKey?: string[];
  readonly store?: string;
  readonly agencyKeyFile?: string;
  readonly mailboxMessages: number;
  readonly mailboxMib: number;
  readonly senderMessages: number;
  readonly senderMib: number;
  readonly guestMessages: number;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//;

/** A store URL given on the command line: PostgreSQL, and with no password (argv is visible to every user of the machine). */
function checkStoreArgument(value: string): string {
  if (!POSTGRES_URL.test(value)) throw new DkmsError('BAD_INPUT', '--store must be a postgres:// URL');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new DkmsError('BAD_INPUT', '--store is not a valid URL');
  }
  if (url.password !== '' || url.searchParams.has('password') || url.searchParams.has('sslpassword')) {
    throw new DkmsError(
      'BAD_INPUT',
      'put no password in --store (every user of this machine can read the command line): use PGPASSWORD, ~/.pgpass, or DKMS_AGENCY_STORE',
    );
  }
  return value;
}

/** DKMS_AGENCY_STORE, which may carry a password (the environment is private to the process). */
function storeFromEnvironment(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const value = env['DKMS_AGENCY_STORE'];
  if (value === undefined || value === '') return undefined;
  if (!POSTGRES_URL.test(value)) throw new DkmsError('BAD_INPUT', 'DKMS_AGENCY_STORE must be a postgres:// URL');
  return value;
}

/** What a PostgreSQL URL names, for output: user, host, port and database, never a password or any other parameter. */
function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `postgres://${parsed.username === '' ? '' : `${parsed.username}@`}${parsed.host}${parsed.pathname}`;
  } catch {
    return 'postgres://…';
  }
}

/** A limit given on the command line: a positive integer the stores can hold (PostgreSQL's INTEGER). */
function parseLimit(value: string): number {
  const n = parsePositive(value);
  if (n > 2 ** 31 - 1) throw new InvalidArgumentError('must be at most 2147483647');
  return n;
}

/** A size in MiB on the command line: at most 1 TiB. */
function parseMib(value: string): number {
  const n = parsePositive(value);
  if (n > 1024 * 1024) throw new InvalidArgumentError('must be at most 1048576 (1 TiB)');
  return n;
}

export function agencyCommand(): Command {
  const agency = new Command('agency').description("an agency: hosts owners' cloud agents and their mailboxes");

  agency
    .command('serve')
    .description('run an agency until Ctrl-C, on embedded storage in the data directory or on a PostgreSQL database shared with other agencies')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on', parsePort, DEFAULT_AGENCY_PORT)
    .option('--public-url <url>', 'the URL agents should use, if not the one listened on')
    .option('--rate-limit <n>', 'requests per second allowed from one address', parsePositive, 200)
    .option('--agent-rate-limit <n>', 'signed requests per second allowed from one agent', parsePositive, 50)
    .option('--ledger-key <key...>', 'ledger node key(s) to trust (default: the first one seen, remembered)', (v: string, acc: string[] = []) => [
      ...acc,
      checkAgentKey(v),
    ])
    .option(
      '--store <url>',
      'a PostgreSQL database to share with other agencies, postgres://user@host:port/db (default: $DKMS_AGENCY_STORE, else embedded storage); the password from PGPASSWORD or ~/.pgpass, never here',
      checkStoreArgument,
    )
    .option(
      '--agency-key-file <path>',
      "with --store: the agency key sealing cloud agents' keys, the same file for every agency on the database (default: agency/agency.key in the data directory, made on first use)",
    )
    .option('--mailbox-messages <n>', "messages one agent's mailbox holds", parseLimit, DEFAULT_LIMITS.maxMessages)
    .option('--mailbox-mib <n>', "MiB one agent's mailbox holds", parseMib, DEFAULT_LIMITS.maxBytes / MIB)
    .option('--sender-messages <n>', 'messages one sender (client address) may have waiting in one mailbox', parseLimit, DEFAULT_LIMITS.maxSourceMessages)
    .option('--sender-mib <n>', 'MiB one sender may have waiting in one mailbox', parseMib, DEFAULT_LIMITS.maxSourceBytes / MIB)
    .option('--guest-messages <n>', 'messages a guest mailbox (a device being paired or recovered) holds', parseLimit, DEFAULT_LIMITS.maxGuestMessages)
    .addHelpText('after', '\nSeveral agencies on one PostgreSQL database: see docs/operations.md.')
    .action(async (opts: ServeOptions, cmd: Command) => {
      // The server code (and the rest) is loaded only when the command runs.
      const [{ Context }, { ledgerUrl }, { emit }, { checkPortFree, untilStopped }] = await Promise.all([
        import('../context.js'),
        import('../ledger-access.js'),
        import('../output.js'),
        import('../serve.js'),
      ]);
      const ctx = Context.of(cmd);
      await checkPortFree(opts.host, opts.port, '--port');
      const store = opts.store ?? storeFromEnvironment(ctx.io.env);
      const { startAgency } = await import('../../server/agency-service.js');
      const running = await startAgency(ctx.home, {
        host: opts.host,
        port: opts.port,
        ledgerUrl: ledgerUrl(ctx, ctx.options.ledger),
        rateLimitPerSecond: opts.rateLimit,
        limits: {
          maxMessages: opts.mailboxMessages,
          maxBytes: opts.mailboxMib * MIB,
          maxSourceMessages: opts.senderMessages,
          maxSourceBytes: opts.senderMib * MIB,
          maxGuestMessages: opts.guestMessages,
        },
        agentRequestsPerSecond: opts.agentRateLimit,
        ...(opts.publicUrl === undefined ? {} : { publicUrl: opts.publicUrl }),
        ...(opts.ledgerKey === undefined ? {} : { trustedLedgerKeys: opts.ledgerKey }),
        ...(store === undefined ? {} : { store }),
        ...(opts.agencyKeyFile === undefined ? {} : { agencyKeyFile: opts.agencyKeyFile }),
      });
      const where = store === undefined ? 'embedded storage' : redactedUrl(store);
      // Listening for the stop before saying it is up: a stop right after the line still closes.
      const stopped = untilStopped();
      emit(ctx, { agency: running.url, home: ctx.home, store: where }, () => `agency listening on ${running.url} (store: ${where})\nstop with Ctrl-C`);
      await stopped;
      await running.close();
      if (!ctx.json) ctx.io.out('stopped\n');
    });

  return agency;
}
