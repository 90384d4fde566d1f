/**
 * A real three-member etcd cluster for tests (bench/etcd-cluster.ts), with data directories in a
 * temporary directory removed on stop. Without etcd installed it fails with how to install it:
 * these tests are never skipped.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { etcdInstalled, startEtcdCluster as start, type EtcdCluster } from '../../bench/etcd-cluster.js';

export type { EtcdCluster, EtcdMember } from '../../bench/etcd-cluster.js';

const INSTALL = 'etcd is not installed: run `apt-get install -y etcd-server etcd-client` (what .ci/run does)';

const running = new Set<EtcdCluster>();
process.once('exit', () => {
  for (const cluster of running) cluster.killAll();
});

export async function startEtcdCluster(): Promise<EtcdCluster> {
  if (!etcdInstalled()) throw new Error(INSTALL);
  const root = mkdtempSync(join(tmpdir(), 'dkms-etcd-'));
  const cluster = await start(root);
  running.add(cluster);
  return {
    ...cluster,
    async stop() {
      await cluster.stop();
      running.delete(cluster);
      rmSync(root, { recursive: true, force: true });
    },
  };
}
