#!/usr/bin/env node
/**
 * The etcd backend's tests need Debian's etcd 3.4 (`etcd` and `etcdctl`). If they are missing
 * and this runs as root on a system with apt-get, installs them; otherwise says how, and fails:
 * those tests are never skipped.
 */
import { spawnSync } from 'node:child_process';

const works = (cmd, args) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const installed = () => works('etcd', ['--version']) && works('etcdctl', ['version']);
if (installed()) process.exit(0);

const HOW = 'the etcd tests need etcd 3.4: install it with `apt-get install -y etcd-server etcd-client` (as root), then run the tests again';
const root = typeof process.getuid === 'function' && process.getuid() === 0;
if (!root || !works('apt-get', ['--version'])) {
  process.stderr.write(`${HOW}\n`);
  process.exit(1);
}
process.stderr.write('installing etcd-server and etcd-client with apt-get…\n');
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'etcd-server', 'etcd-client']]) {
  const run = spawnSync('apt-get', args, { stdio: 'inherit', env });
  if (run.status !== 0) {
    process.stderr.write(`apt-get ${args.join(' ')} failed: ${HOW}\n`);
    process.exit(1);
  }
}
if (!installed()) {
  process.stderr.write(`etcd is still missing after apt-get: ${HOW}\n`);
  process.exit(1);
}
