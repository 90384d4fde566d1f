/**
 * Child process of the shared-store fault tests (agency-pg-faults.test.ts): one agency on the
 * compiled code in dist/, on a PostgreSQL store, until it is killed (or its parent goes away:
 * the parent holds our stdin open). Prints one line once listening:
 *
 *   ready <url>
 *
 * Usage: node agency-pg-child.mjs '{"home", "ledgerUrl", "trustedLedgerKeys", "store", "agencyKeyFile", "port"}'
 */
import { writeSync } from 'node:fs';
import { startAgency } from '../../dist/src/server/agency-service.js';

process.stdin.on('end', () => process.exit(3));
process.stdin.on('error', () => process.exit(3));
process.stdin.resume();

const config = JSON.parse(process.argv[2] ?? '{}');
const running = await startAgency(config.home, {
  ledgerUrl: config.ledgerUrl,
  trustedLedgerKeys: config.trustedLedgerKeys,
  store: config.store,
  agencyKeyFile: config.agencyKeyFile,
  port: config.port ?? 0,
  rateLimitPerSecond: 100_000,
  agentRequestsPerSecond: 100_000,
  followIntervalMs: 200,
  onFollowError: () => undefined,
});
writeSync(1, `ready ${running.url}\n`);
