/**
 * Setup of the unit suite (vitest.unit.config.ts): a unit test that starts a process, opens a
 * socket or listens fails at once with what it tried, so that a test needing servers or
 * processes is moved out of UNIT_TESTS rather than slowing the fast suite down.
 */
import childProcess from 'node:child_process';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';

function refuse(what: string): never {
  throw new Error(`a unit test may not ${what}: move the file out of UNIT_TESTS (test/suites.ts)`);
}

for (const name of ['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork'] as const) {
  Object.defineProperty(childProcess, name, { value: () => refuse(`start a process (child_process.${name})`), configurable: true, writable: true });
}
syncBuiltinESMExports();
net.Socket.prototype.connect = () => refuse('open a socket');
net.Server.prototype.listen = () => refuse('listen on a port');
