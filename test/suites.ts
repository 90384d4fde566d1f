/**
 * Which test files form the fast unit suite, and the order in which the full suite starts its
 * slowest files. Read by vitest.config.ts and vitest.unit.config.ts.
 */

/**
 * Pure and property tests: no server, no child process, no socket (test/setup/no-io.ts makes
 * each of them fail at once in this suite). In-process stores on temporary files are allowed.
 * `npm run test:unit` runs these alone.
 */
export const UNIT_TESTS: readonly string[] = [
  'test/agency/agency-store.test.ts',
  'test/agency/request-auth.test.ts',
  'test/agent/agent-store.test.ts',
  'test/agent/categories.test.ts',
  'test/agent/standing.test.ts',
  'test/base/files.test.ts',
  'test/agent/connection-log.test.ts',
  'test/cli/session-client.test.ts',
  'test/hsm/uri.test.ts',
  'test/base/*.test.ts',
  'test/crypto/*.test.ts',
  'test/custody/audit.test.ts',
  'test/custody/custodians.test.ts',
  'test/didcomm/*.test.ts',
  'test/docs/*.test.ts',
  'test/ledger/derived.test.ts',
  'test/ledger/lifecycle.test.ts',
  'test/ledger/map-versions.test.ts',
  'test/ledger/map.test.ts',
  'test/ledger/merkle.test.ts',
  'test/ledger/node-key.test.ts',
  'test/ledger/validate.test.ts',
  'test/policy/*.test.ts',
  'test/recovery/backup.test.ts',
  'test/recovery/paper.test.ts',
  'test/recovery/shares.test.ts',
  'test/server/console-sessions.test.ts',
  'test/server/problem.test.ts',
  'test/server/web-assets.test.ts',
  'test/web/did-versions.test.ts',
  'test/web/diff.test.ts',
  'test/web/palette.test.ts',
  'test/web/timeline.test.ts',
];

/**
 * The slowest files, slowest first (measured on two cores). The full suite starts them first,
 * then the rest, longest known first: with the long files early, the two workers end together
 * instead of one finishing a three-minute file alone. Matched on the end of the path, so a
 * file moved to another folder keeps its place.
 */
export const SLOWEST_FIRST: readonly string[] = [
  // Niced, beside CPU hogs of its own: it takes what the other worker leaves, so it starts first.
  'cli/bench-load.test.ts',
  'cli/recovery-e2e.test.ts',
  'server/shutdown.test.ts',
  'wallet/crash.test.ts',
  'recovery/review-regressions.test.ts',
  'cli/session.test.ts',
  'ledger/crash.test.ts',
  'cli/agents-e2e.test.ts',
  'ledger/etcd-faults.test.ts',
  'cli/ledger-e2e.test.ts',
  'cli/custody-e2e.test.ts',
  'cli/trustee-change-e2e.test.ts',
  'web/explorer.test.ts',
  'web/console.test.ts',
  'recovery/social.test.ts',
  'server/agency-api.test.ts',
  'agency-crash.test.ts',
  'crypto/codecs.test.ts',
  'agency-backups.test.ts',
  'ledger/validate.test.ts',
  'cli/resume-e2e.test.ts',
  'cli/readme-tour.test.ts',
  'cli/hsm-e2e.test.ts',
  'cli/interrupt-e2e.test.ts',
  'cli/wallet-cli.test.ts',
  'recovery/restore-resume.test.ts',
  'server/agency-abuse.test.ts',
  'agency-follow.test.ts',
  'recovery/setup-resume.test.ts',
  'cli/approvals-e2e.test.ts',
  'cli/key-cli.test.ts',
  'pg-agency-store.test.ts',
  'package/pack.test.ts',
];

/** The place of `file` in SLOWEST_FIRST, or undefined for a file not in it. */
export function slowRank(file: string): number | undefined {
  const normalized = file.replaceAll('\\', '/');
  const rank = SLOWEST_FIRST.findIndex((end) => normalized.endsWith(`/${end}`));
  return rank === -1 ? undefined : rank;
}
