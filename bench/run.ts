/**
 * Benchmarks: `npm run bench` runs all, `npm run bench -- wallet` one. Each prints JSON lines,
 * every figure beside the raw limit measured in the same run. A run always ends (runner.ts):
 * a failed benchmark exits 1 with its error, and nothing left behind keeps the process alive.
 */
import { agentBench, relayBench } from './agent.js';
import { cliBench } from './cli.js';
import { etcdBench } from './etcd.js';
import { ledgerBench } from './ledger.js';
import { recoveryBench } from './recovery.js';
import { runBenches } from './runner.js';
import { walletBench } from './wallet.js';
import { webBench } from './web.js';

await runBenches(
  { wallet: walletBench, ledger: ledgerBench, agent: agentBench, relay: relayBench, etcd: etcdBench, recovery: recoveryBench, cli: cliBench, web: webBench },
  process.argv.slice(2),
);
