/**
 * A throwaway PostgreSQL server per test file (bench/pg-cluster.ts): started in `beforeAll`,
 * stopped and removed in `afterAll`, and killed if the process exits first. Without PostgreSQL
 * installed it fails with how to install it: these tests are never skipped.
 */
import { afterAll, beforeAll } from 'vitest';
import { startPgCluster, type PgCluster } from '../../bench/pg-cluster.js';

export type { PgCluster } from '../../bench/pg-cluster.js';

/** The file's server, once `beforeAll` has run: `cluster()` returns it. */
export function pgClusterForSuite(): () => PgCluster {
  let cluster: PgCluster | undefined;
  beforeAll(async () => {
    cluster = await startPgCluster({ durable: false });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (cluster === undefined) throw new Error('the PostgreSQL server is not started (use it inside tests)');
    return cluster;
  };
}
