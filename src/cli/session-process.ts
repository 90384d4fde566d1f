/**
 * The unlock session's process, started by `dkms unlock` (session-start.ts) as
 * `node dist/cli/session-process.js HOME`, with the wallet's secret on its standard input.
 */
import { main } from './main.js';
import { serveSession } from './session-start.js';

const home = process.argv[2];
if (home === undefined || !home.startsWith('/')) {
  process.stderr.write('dkms: the session process is started by `dkms unlock`\n');
  process.exitCode = 2;
} else {
  await serveSession(home, main);
}
