/** `dkms doctor`: checks this data directory and what it relies on, and says what to do about each problem. */
import { Command, InvalidArgumentError } from 'commander';

function parseDays(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw new InvalidArgumentError('must be a whole number of days from 1 to 3650');
  return n;
}

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check the data directory and its permissions, the ledger (reachable, head fresh), the agency, this agent, recovery, backups and pending approvals; say what to do about each problem',
    )
    .option('--backup-age <days>', 'warn when the last backup is older than this', parseDays, 7)
    .addHelpText('after', "\nExit status: 0 when nothing failed (warnings included), else the status of the first failed check's error code (docs/errors.md).")
    .action(async (opts: { backupAge: number }, cmd: Command) => {
      const [{ Context }, { runDoctor }] = await Promise.all([import('../context.js'), import('../doctor.js')]);
      await runDoctor(Context.of(cmd), { backupAgeDays: opts.backupAge });
    });
}
