/**
 * Child process of the bench-runner cases in shutdown.test.ts: runs one made-up benchmark through
 * the compiled bench runner (dist/bench/runner.js), short limits so that the cases end quickly.
 * Usage: node bench-runner-child.mjs <passes | fails | stalls>
 *
 *   passes   ends, leaving nothing behind
 *   fails    leaves a listening server behind, then throws
 *   stalls   blocks the main thread for good (as a native deadlock would)
 */
import { createServer } from 'node:http';
import { runBenches } from '../../dist/bench/runner.js';

const BENCHES = {
  passes: async () => {
    process.stdout.write('{"bench":"passes"}\n');
  },
  fails: async () => {
    await new Promise((resolve) => createServer().listen(0, '127.0.0.1', resolve));
    throw new Error('the bench failed on purpose');
  },
  stalls: async () => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  },
};

await runBenches(BENCHES, process.argv.slice(2), { stallMs: 1000, lingerMs: 1000 });
