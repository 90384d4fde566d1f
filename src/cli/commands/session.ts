/** `dkms unlock` and `dkms lock`: the unlock session that keeps the wallet open for the commands that follow. */
import { Command, InvalidArgumentError, Option } from 'commander';

/** The idle time a session locks after, unless `--idle` says otherwise. */
export const DEFAULT_IDLE = '15m';

const UNIT_SECONDS = { s: 1, m: 60, h: 3600 } as const;

/** A duration: a whole number with a unit, s, m or h (minutes without one), from 1 s to 24 h; in seconds. */
export function parseIdle(value: string): number {
  const match = /^([0-9]{1,6})([smh]?)$/.exec(value.trim());
  const seconds = match === null ? NaN : Number(match[1]) * UNIT_SECONDS[(match[2] || 'm') as keyof typeof UNIT_SECONDS];
  if (!(seconds >= 1 && seconds <= 86_400))
    throw new InvalidArgumentError('must be a duration from 1s to 24h, such as 90s, 15m or 2h (minutes without a unit)');
  return seconds;
}

export function unlockCommand(): Command {
  return new Command('unlock')
    .description('unlock the wallet once for the commands that follow: a session process keeps it open until `dkms lock` or its idle time')
    .addOption(
      new Option('--idle <duration>', 'lock after this long with no command: 90s, 15m, 2h (minutes without a unit)')
        .argParser(parseIdle)
        .default(parseIdle(DEFAULT_IDLE), DEFAULT_IDLE),
    )
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
      await unlock(Context.of(cmd), opts.idle);
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
