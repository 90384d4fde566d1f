// The CLI as tsc compiled it, one module a file (bin/dkms.js runs the bundle of the same code):
// test/cli/lazy-load.test.ts checks which of these modules a run loads.
import { main } from '../../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
