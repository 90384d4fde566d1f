/** `dkms unlock` and `dkms lock`: the unlock session that keeps the wallet open for the commands that follow. */
import { Command, InvalidArgumentError } from 'commander';

/** The idle time a session locks after, unless `--idle` says otherwise. */
export const DEFAULT_IDLE_MINUTES = 15;

function parseMinutes(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1440) throw new InvalidArgumentError('must be a whole number of minutes from 1 to 1440');
  return n;
}

export function unlockCommand(): Command {
  return new Command('unlock')
    .description('unlock the wallet once for the commands that follow: a session process keeps it open until `dkms lock` or its idle time')
    .option('--idle <minutes>', 'lock after this many minutes with no command', parseMinutes, DEFAULT_IDLE_MINUTES)
    .addHelpText(
      'after',
      `
The session is a process of yours that listens on a socket in the data directory (session.sock,
mode 0600: no other user can open it). Commands run in it with your terminal, so none pays for
unlocking again; private keys never leave it. Without a session every command unlocks by itself.
The session writes a line about each start and lock to session.log in the data directory.`,
    )
    .action(async (opts: { idle: number }, cmd: Command) => {
      const [{ Context }, { unlock }] = await Promise.all([import('../context.js'), import('../session-start.js')]);
      await unlock(Context.of(cmd), opts.idle * 60);
    });
}

export function lockCommand(): Command {
  return new Command('lock')
    .description("lock the wallet now: end the data directory's unlock session (its running commands end too)")
    .action(async (_opts: unknown, cmd: Command) => {
      const [{ Context }, { lock }] = await Promise.all([import('../context.js'), import('../session-start.js')]);
      await lock(Context.of(cmd));
    });
}
