/**
 * Bundles the compiled CLI (dist/src/cli/main.js, from `tsc`) into dist/cli/, which bin/dkms.js
 * runs. Node loads ES modules one file at a time, and a command's few hundred files (zod alone
 * is over a hundred) cost more to load than most commands cost to run; one entry chunk, plus a
 * chunk per `await import()` boundary the commands keep, loads in a fraction of that. The library
 * entry points (`dkms`, `dkms/wallet`, …) stay the unbundled modules under dist/src/.
 *
 * Left outside the bundle, loaded from node_modules as they are: native addons (Argon2, SQLite,
 * PKCS#11), and the servers' stacks that load files of their own at run time (etcd's gRPC and
 * its protocol files, fastify and its logger, PostgreSQL's driver).
 */
import { rmSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { build } from 'rolldown';

const EXTERNAL_PACKAGES = ['argon2', 'better-sqlite3', 'pkcs11js', 'etcd3', 'fastify', '@fastify/ajv-compiler', '@fastify/rate-limit', 'pg'];
const OUT = 'dist/cli';

function isExternal(id) {
  if (id.startsWith('node:') || builtinModules.includes(id)) return true;
  return EXTERNAL_PACKAGES.some((name) => id === name || id.startsWith(`${name}/`));
}

rmSync(OUT, { recursive: true, force: true });
await build({
  input: { main: 'dist/src/cli/main.js', 'session-client': 'dist/src/cli/session-client.js', 'session-process': 'dist/src/cli/session-process.js' },
  platform: 'node',
  external: isExternal,
  logLevel: 'warn',
  onLog(level, log) {
    // A warning here is a bundle that may not behave as the modules do: the build fails on it.
    throw new Error(`bundling the CLI: ${level}: ${log.message}`);
  },
  output: { dir: OUT, format: 'esm', entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js' },
});
