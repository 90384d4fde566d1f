/**
 * Benchmarks: `npm run bench` runs all, `npm run bench -- wallet` one. Each prints JSON lines,
 * every figure beside the raw limit measured in the same run.
 */
import { agentBench } from './agent.js';
import { etcdBench } from './etcd.js';
import { ledgerBench } from './ledger.js';
import { recoveryBench } from './recovery.js';
import { walletBench } from './wallet.js';

const BENCHES: Record<string, () => Promise<void>> = { wallet: walletBench, ledger: ledgerBench, agent: agentBench, etcd: etcdBench, recovery: recoveryBench };

const requested = process.argv.slice(2);
const unknown = requested.filter((name) => !Object.hasOwn(BENCHES, name));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark: ${unknown.join(', ')} (known: ${Object.keys(BENCHES).join(', ')})\n`);
  process.exit(2);
}
for (const name of requested.length > 0 ? requested : Object.keys(BENCHES)) {
  await BENCHES[name]?.();
}
