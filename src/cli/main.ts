/** The `dkms` command: parses arguments, runs one command, maps errors to one line and an exit status. */
import { resolve } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { DkmsError, ERROR_CODES } from '../errors.js';
import { setRunPlace, type RunPlace } from './run-place.js';
import { processIo, type CommandIo } from './io.js';
import { version } from './version.js';
import { Reported } from './output.js';
import { agencyCommand } from './commands/agency.js';
import { agentCommand } from './commands/agent.js';
import { connectionCommand } from './commands/connection.js';
import { didCommand } from './commands/did.js';
import { doctorCommand } from './commands/doctor.js';
import { custodianCommand } from './commands/custodian.js';
import { auditCommand } from './commands/audit.js';
import { keyCommand } from './commands/key.js';
import { ledgerCommand } from './commands/ledger.js';
import { messageCommand } from './commands/message.js';
import { policyCommand } from './commands/policy.js';
import { recoveryCommand } from './commands/recovery.js';
import { lockCommand, unlockCommand } from './commands/session.js';
import { trusteeCommand } from './commands/trustee.js';
import { upCommand } from './commands/up.js';
import { verifyCommand } from './commands/verify.js';
import { walletCommand } from './commands/wallet.js';

/** Commander's own error lines are replaced by ours (`dkms: CODE: message`); help still prints, to the command's terminal. */
function outputTo(io: CommandIo) {
  return { outputError: () => undefined, writeOut: (text: string) => io.out(text), writeErr: (text: string) => io.err(text) };
}

function parseQuorum(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError('must be a number of signers from 1 to 64');
  return n;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 86_400) throw new InvalidArgumentError('must be a whole number of seconds from 1 to 86400');
  return n;
}

export function buildProgram(io: CommandIo = processIo()): Command {
  const quietErrors = outputTo(io);
  const program = new Command('dkms')
    .description('decentralized key management: your keys on your devices, your policy on a ledger, your recovery in your hands')
    .version(version())
    .option('--home <dir>', 'data directory (default: $DKMS_HOME, else ~/.dkms)')
    .option('--json', 'print one JSON object instead of text')
    .option('--passphrase-file <file>', 'file whose first line is the wallet passphrase (else $DKMS_PASSPHRASE, else a prompt)')
    .option('--key-file <file>', 'file holding the raw 32-byte key that opens the wallet, instead of a passphrase')
    .option('--pin-file <file>', "file whose first line is the PIN of the wallet's token (else $DKMS_HSM_PIN, else a prompt)")
    .option('--ledger <url>', `ledger node to use (default: $DKMS_LEDGER, else config.json's "ledger", else the local node)`)
    .option('--trust <key...>', 'ledger node keys to trust (trust.json "nodeKeys"; default: the first seen, said on stderr)')
    .option('--node-key <key...>', 'the same as --trust')
    .option('--witness-key <key...>', 'witness keys whose cosignatures count towards --quorum (trust.json "witnessKeys")')
    .option(
      '--quorum <k>',
      'accept a tree head only when k trusted signers signed it: the node and k-1 witnesses (trust.json "quorum"; default 1)',
      (v: string) => parseQuorum(v),
    )
    .option('--max-head-age <seconds>', 'refuse tree heads older than this (trust.json "maxHeadAgeSeconds"; default 60)', (v: string) => parseSeconds(v))
    .exitOverride()
    .configureOutput(quietErrors);
  program.addCommand(upCommand());
  program.addCommand(walletCommand());
  program.addCommand(keyCommand());
  program.addCommand(ledgerCommand());
  program.addCommand(policyCommand());
  program.addCommand(didCommand());
  program.addCommand(verifyCommand());
  program.addCommand(agentCommand());
  program.addCommand(agencyCommand());
  program.addCommand(connectionCommand());
  program.addCommand(recoveryCommand());
  program.addCommand(trusteeCommand());
  program.addCommand(messageCommand());
  program.addCommand(custodianCommand());
  program.addCommand(auditCommand());
  program.addCommand(doctorCommand());
  program.addCommand(unlockCommand());
  program.addCommand(lockCommand());
  for (const sub of program.commands) {
    sub.exitOverride().configureOutput(quietErrors);
    for (const leaf of sub.commands) leaf.exitOverride().configureOutput(quietErrors);
  }
  if (io.cwd !== process.cwd()) resolvePathsFrom(program, io.cwd);
  return program;
}

/**
 * Makes every file and directory an option names (`<file>`, `<dir>`, `<file...>`) absolute from `cwd`: for a
 * command the unlock session runs for a client in another working directory ('-', standard
 * input, stays as it is).
 */
function resolvePathsFrom(command: Command, cwd: string): void {
  for (const option of command.options) {
    if (!/<(file|dir)(\.\.\.)?>/.test(option.flags)) continue;
    const parse = option.parseArg;
    option.argParser((value: string, previous: unknown) => {
      const path = value === '-' ? value : resolve(cwd, value);
      if (parse !== undefined) return parse(path, previous);
      // A variadic option (`<file...>`) with a parser of its own gathers its values itself.
      return option.variadic ? [...(Array.isArray(previous) ? (previous as string[]) : []), path] : path;
    });
  }
  for (const sub of command.commands) resolvePathsFrom(sub, cwd);
}

/** The error as the user sees it: a code, a one-line message, an exit status. */
function describe(e: unknown): DkmsError {
  if (e instanceof DkmsError) return e;
  if (e instanceof CommanderError) {
    // One line, the suggestion kept: "unknown command 'lst' (Did you mean list?)".
    const lines = e.message
      .replace(/^error: /, '')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '');
    let message = lines.join(' ') || 'bad arguments';
    // An id that begins with '-' (ids are base64url: a peer's may) reads as an option unless it comes after '--'.
    const unknown = e.code === 'commander.unknownOption' ? /unknown option '(-[^-][^']{7,})'/.exec(message)?.[1] : undefined;
    if (unknown !== undefined) message += ` (an argument that begins with '-', such as an id, goes after '--': … -- ${unknown})`;
    return new DkmsError('BAD_INPUT', message);
  }
  const message = e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e);
  return new DkmsError('INTERNAL', `unexpected error: ${message}`, { cause: e });
}

/**
 * Runs one `dkms` command and returns its exit status: in this process, with its own terminal,
 * unless `place` says where (the unlock session, for a client: session-server.ts).
 */
export async function main(argv: readonly string[], place: RunPlace = { io: processIo() }): Promise<number> {
  const { io } = place;
  const program = buildProgram(io);
  setRunPlace(program, place);
  const json = argv.includes('--json');
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e) {
    // --help and --version end by "throwing" success; a bare command group shows its help.
    if (e instanceof CommanderError && (e.code === 'commander.helpDisplayed' || e.code === 'commander.version')) return 0;
    if (e instanceof CommanderError && e.code === 'commander.help') return ERROR_CODES.BAD_INPUT.exit;
    if (e instanceof Reported) return ERROR_CODES[e.code].exit;
    const error = describe(e);
    io.err(`dkms: ${error.code}: ${error.message}\n`);
    if (io.env['DKMS_DEBUG'] === '1' && e instanceof Error) io.err(`${e.stack ?? ''}\n`);
    if (json) io.out(`${JSON.stringify({ error: { code: error.code, message: error.message } })}\n`);
    return ERROR_CODES[error.code].exit;
  }
}
