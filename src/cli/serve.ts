/** Running a server from the CLI until the process is asked to stop, then closing it cleanly. */
import { createServer } from 'node:net';
import { DkmsError } from '../errors.js';
import { Context } from './context.js';
import { emit } from './output.js';
import { takeOverInterrupt } from './io.js';

/**
 * ADDRESS_IN_USE, naming the option that chooses another (`flag`), unless `host:port` can be
 * listened on: checked before a server command creates anything in the data directory, so a
 * busy port leaves nothing behind (a port taken between this check and the server's own listen
 * is still refused there). Port 0 (any free port) needs no check.
 */
export async function checkPortFree(host: string, port: number, flag: string): Promise<void> {
  if (port === 0) return;
  const server = createServer();
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen({ host, port, exclusive: true }, () => resolve(undefined));
  });
  if (error === undefined) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return;
  }
  if (error.code === 'EADDRINUSE') throw new DkmsError('ADDRESS_IN_USE', `${host}:${port} is already in use: choose another ${flag}`);
  throw new DkmsError('BAD_INPUT', `cannot listen on ${host}:${port} (${error.code ?? error.message}): check --host and ${flag}`);
}

/** Resolves when the process is asked to stop (Ctrl-C or SIGTERM). */
export function untilStopped(): Promise<string> {
  takeOverInterrupt();
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
  if (!ctx.json) ctx.io.out('stopped\n');
}
