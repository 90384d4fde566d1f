/**
 * Child process of the bounded-shutdown tests (shutdown.test.ts). It runs one server on the
 * compiled code in dist/ (a ledger node on SQLite, an agency, or a witness) while the parent
 * loads it over loopback HTTP, and closes it when told. It never calls process.exit on the way
 * out: once close() has resolved it lets go of stdin and returns, so it exits only if nothing
 * (a timer, a socket, a server, a worker) is left to keep it alive. That is what the parent
 * checks. Commands come on stdin, one a line:
 *
 *   fault     make the server's store fail, hang or slow down from now on (config.fault: see store-faults.mjs)
 *   waiting   say how many long polls wait at the server now
 *   close     close the server
 *
 * It reports on stdout, one line each:
 *
 *   ready <url>               the server listens at <url>
 *   armed                     the fault is in place
 *   waiting <n>               n long polls wait at the server (a ledger's for a newer head, an agency's for mail)
 *   problem <code>            (a witness) a round failed, for another reason than the last one
 *   closed <ms>               close() resolved after <ms>
 *   close-failed <message>    close() rejected (the child still lets go and exits by itself, with status 1)
 *
 * and, should it still be alive STILL_ALIVE_MS after close() ended, what keeps it alive on
 * stderr (for the parent's failure message; an unref'd timer, which keeps nothing alive itself).
 * Usage:
 *
 *   node shutdown-child.mjs '<json config>'
 *
 * config: { server: 'ledger' | 'agency' | 'witness', home, fault?: a fault of that server,
 *           ledgerUrl?, trustedLedgerKeys? (agency), ledger?, nodeKey?, intervalMs? (witness),
 *           closeGraceMs? (the server's close grace; default the servers' own) }
 */
import { writeSync } from 'node:fs';
import { DkmsError } from '../../dist/src/errors.js';
import { injectFault } from '../helpers/store-faults.mjs';

const STILL_ALIVE_MS = 3000;

function say(line) {
  writeSync(1, `${line}\n`);
}

const config = JSON.parse(process.argv[2] ?? '{}');

/** The server's close grace, when the config sets one (else the servers' default). */
const grace = config.closeGraceMs === undefined ? {} : { closeGraceMs: config.closeGraceMs };

async function start() {
  if (config.server === 'ledger') {
    const { startLedger } = await import('../../dist/src/server/ledger-service.js');
    // One signature worker: the pool's threads must not outlive close() either.
    return startLedger(config.home, { port: 0, rateLimitPerSecond: 0, verifyThreads: 1, ...grace });
  }
  if (config.server === 'agency') {
    const { startAgency } = await import('../../dist/src/server/agency-service.js');
    return startAgency(config.home, {
      ledgerUrl: config.ledgerUrl,
      trustedLedgerKeys: config.trustedLedgerKeys,
      port: 0,
      rateLimitPerSecond: 1_000_000,
      agentRequestsPerSecond: 1_000_000,
      limits: { maxMessages: 1_000_000, maxBytes: 1024 * 1024 * 1024, maxSourceMessages: 1_000_000, maxSourceBytes: 1024 * 1024 * 1024 },
      onFollowError: () => undefined,
      ...grace,
    });
  }
  if (config.server === 'witness') {
    const { startWitness } = await import('../../dist/src/server/witness-service.js');
    return startWitness(config.home, {
      ledger: config.ledger,
      nodeKey: config.nodeKey,
      port: 0,
      rateLimitPerSecond: 1_000_000,
      intervalMs: config.intervalMs ?? 500,
      onProblem: (e) => say(`problem ${e.code}`),
      ...grace,
    });
  }
  throw new Error(`no such server: ${config.server}`);
}

const running = await start();
say(`ready ${running.url}`);

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  input += chunk;
  let newline;
  while ((newline = input.indexOf('\n')) !== -1) {
    const command = input.slice(0, newline);
    input = input.slice(newline + 1);
    void run(command);
  }
});
// The parent holds stdin open while it needs this child; if it goes away first, so does the child.
process.stdin.on('end', () => process.exit(3));

async function run(command) {
  try {
    if (command === 'fault') {
      await injectFault(config.server, config.fault, config.home);
      say('armed');
    } else if (command === 'waiting') {
      say(`waiting ${config.server === 'ledger' ? running.node.waiting : running.agency.waiting}`);
    } else if (command === 'close') {
      // From now on only close() and whatever it leaves behind may keep this process alive.
      process.stdin.removeAllListeners('end');
      process.stdin.destroy();
      const started = Date.now();
      try {
        await running.close();
        say(`closed ${Date.now() - started}`);
      } catch (e) {
        say(`close-failed ${e instanceof DkmsError ? `${e.code}: ` : ''}${e instanceof Error ? e.message : String(e)}`);
        process.exitCode = 1;
      }
      setTimeout(
        () => process.stderr.write(`still alive ${STILL_ALIVE_MS} ms after close, held by: ${process.getActiveResourcesInfo().join(', ')}\n`),
        STILL_ALIVE_MS,
      ).unref();
    }
  } catch (e) {
    process.stderr.write(`shutdown-child: ${command}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  }
}
