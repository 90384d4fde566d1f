#!/usr/bin/env node
// The bundled CLI (scripts/bundle-cli.mjs): the same code as dist/src/cli/, in a few files.
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
