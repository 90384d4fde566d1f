/** Running a server from the CLI until the process is asked to stop, then closing it cleanly. */
import { Context } from './context.js';
import { emit } from './output.js';

/** Resolves when the process is asked to stop (Ctrl-C or SIGTERM). */
export function untilStopped(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(signal);
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
}

/** Serves until stopped, then shuts down cleanly: no request is cut off mid-commit. */
export async function serveUntilStopped(
  ctx: Context,
  services: readonly { close(): Promise<void> }[],
  fields: Record<string, unknown>,
  describe: string,
): Promise<void> {
  // Listening for the signals before saying we are up: a stop asked the moment the line is read
  // must not find the default action (an exit without closing) still in place.
  const stopped = untilStopped();
  emit(ctx, fields, () => describe);
  await stopped;
  // Every service is closed even when one fails to close: one left open would keep the process
  // running after the failure is reported. The first failure is then the command's.
  const failures: unknown[] = [];
  for (const service of services) {
    try {
      await service.close();
    } catch (e) {
      failures.push(e);
    }
  }
  if (failures.length > 0) throw failures[0];
  if (!ctx.json) process.stdout.write('stopped\n');
}
