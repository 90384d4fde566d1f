#!/usr/bin/env node
// The bundled CLI (scripts/bundle-cli.mjs): the same code as dist/src/cli/, in a few files. A
// command runs in the data directory's unlock session when there is one (`dkms unlock`), else here.
import { runThroughSession } from '../dist/cli/session-client.js';

const argv = process.argv.slice(2);
process.exitCode = (await runThroughSession(argv)) ?? (await (await import('../dist/cli/main.js')).main(argv));
