#!/usr/bin/env node
/**
 * Some tests run real servers from Debian's packages: etcd 3.4 (`etcd`, `etcdctl`) for the
 * ledger's etcd backend, PostgreSQL (`initdb`, `pg_ctl`) for the shared agency store, `ss`
 * (iproute2) to watch a test's connections, tmux to drive a terminal, SoftHSM2 (`softhsm2-util`)
 * for the PKCS#11 tests, and Chromium for the browser tests. If any
 * is missing and this runs as root on a system with apt-get, installs them; otherwise says how,
 * and fails: those tests are never skipped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const works = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
/** initdb is on PATH, or in Debian's /usr/lib/postgresql/<version>/bin. */
const hasInitdb = () =>
  works('sh', ['-c', 'command -v initdb']) ||
  (existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb'))));

const needs = [
  { packages: ['etcd-server', 'etcd-client'], what: 'etcd 3.4', installed: () => works('etcd', ['--version']) && works('etcdctl', ['version']) },
  { packages: ['postgresql'], what: 'PostgreSQL', installed: hasInitdb },
  // test/cli/shutdown.test.ts sees the agent's held long poll with `ss`.
  { packages: ['iproute2'], what: 'ss (iproute2)', installed: () => works('ss', ['-V']) },
  // test/cli/terminal.test.ts types at the prompts (and presses Ctrl-C) in a tmux pane.
  { packages: ['tmux'], what: 'tmux', installed: () => works('tmux', ['-V']) },
  // test/hsm/ makes its own tokens in SoftHSM2, a PKCS#11 token in software.
  { packages: ['softhsm2'], what: 'SoftHSM2', installed: () => works('softhsm2-util', ['--version']) },
  // test/web/ opens the dashboard in a real browser (test/helpers/browser.ts drives it with
  // playwright-core, which downloads none): Debian's chromium, or the one DKMS_TEST_CHROMIUM names.
  { packages: ['chromium'], what: 'Chromium', installed: () => works(process.env.DKMS_TEST_CHROMIUM || 'chromium', ['--version']) },
];
const missing = needs.filter((n) => !n.installed());
if (missing.length === 0) process.exit(0);

const packages = missing.flatMap((n) => n.packages);
const HOW = `the tests need ${missing.map((n) => n.what).join(' and ')}: install with \`apt-get install -y ${packages.join(' ')}\` (as root), then run the tests again`;
const root = typeof process.getuid === 'function' && process.getuid() === 0;
if (!root || !works('apt-get', ['--version'])) {
  process.stderr.write(`${HOW}\n`);
  process.exit(1);
}
process.stderr.write(`installing ${packages.join(', ')} with apt-get…\n`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [
  ['update', '-qq'],
  ['install', '-y', '-qq', '--no-install-recommends', ...packages],
]) {
  const run = spawnSync('apt-get', args, { stdio: 'inherit', env });
  if (run.status !== 0) {
    process.stderr.write(`apt-get ${args.join(' ')} failed: ${HOW}\n`);
    process.exit(1);
  }
}
const still = missing.filter((n) => !n.installed());
if (still.length > 0) {
  process.stderr.write(`${still.map((n) => n.what).join(' and ')} still missing after apt-get: ${HOW}\n`);
  process.exit(1);
}
