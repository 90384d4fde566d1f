/**
 * Bounded shutdown of each server: a ledger node on SQLite, an agency and a witness, each run
 * in a child process on the compiled code in dist/ (shutdown-child.mjs), are closed while the
 * test loads them over loopback HTTP on keep-alive connections (requests in flight, long polls
 * held open); in the cases that say so, after a store failure injected into the child
 * (test/helpers/store-faults.mjs). Each time:
 * - the child exits by itself, within EXIT_BOUND_MS of being told to close: it never calls
 *   process.exit, so a timer, socket, server or worker left behind would keep it alive;
 * - a clean close exits 0, with close() resolved;
 * - every request the test had in flight ends (answered, or its connection failed), none hangs.
 * `dkms up` under SIGTERM is covered by test/cli/shutdown.test.ts.
 */
import { spawn } from 'node:child_process';
import { Agent as HttpAgent, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { flood, type Flood, type FloodRequest } from '../../bench/flood.js';
import { AgencyClient } from '../../src/agency/agency-client.js';
import { authcrypt, didKeyUrl, memoryAgreementKey, messageBytes, newMessage, wrapForward, type PublicKeyRef } from '../../src/didcomm/index.js';
import { signRequest } from '../../src/agency/request-auth.js';
import { decodePublicKey, x25519Generate } from '../../src/crypto/index.js';
import { policyCreate, signEvent } from '../../src/ledger/build.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { signHead } from '../../src/ledger/head.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { startAgency } from '../../src/server/agency-service.js';
import { openWitnessIdentity, witnessDir } from '../../src/server/witness-service.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { edgeAgent } from '../helpers/edge.js';
import { commitment, nodeSigner, testKey } from '../helpers/ledger.js';
import { startLedger, startSilentServer, type RunningLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'shutdown-child.mjs');

/**
 * How long a child may take to exit once told to close. A hang bound, not a speed figure: a
 * clean close takes well under a second; the slowest case here, a store call that never ends,
 * is given up on by the server after its close grace (HANG_GRACE_MS there; CLOSE_GRACE_MS, 5 s,
 * in every other case). The bound leaves room for a loaded two-core machine beyond that.
 */
const EXIT_BOUND_MS = 15_000;
/**
 * The close grace of a server whose store call never ends: shorter than the servers' default
 * (which the other cases keep), since nothing it waits for will end and the case proves only
 * that close gives up and exits.
 */
const HANG_GRACE_MS = 1_000;
/** How long the test's own requests may take to end once the child is gone (they fail at once). */
const SETTLE_BOUND_MS = 5_000;
/** How long to wait for the load (or a fault) to show in the answers. */
const LOAD_BOUND_MS = 20_000;
/** Long polls (of 30 s) waiting at the server when it is told to close. */
const POLLS = 8;
/** How long a load must go unanswered to count as held by a hung store call (it answers hundreds a second otherwise). */
const STALL_MS = 500;

const guard = new DistGuard(['.', 'agent', 'agency', 'didcomm', 'server', 'ledger', 'wallet', 'crypto', 'policy', 'did']);
beforeAll(() => guard.start());

/** Rejects with `what` unless `promise` settles within `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms${guard.changedNote()}`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `ready()` holds, checking every 20 ms, at most LOAD_BOUND_MS. */
async function until(ready: () => boolean, what: string): Promise<void> {
  await waitFor(what, ready, { timeoutMs: LOAD_BOUND_MS, intervalMs: 20 });
}

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly lines: readonly string[];
  readonly stderr: string;
}

interface Child {
  /** The next line (after those already taken) that matches `pattern`. */
  line(pattern: RegExp): Promise<string>;
  send(command: string): void;
  readonly exited: Promise<Exit>;
  describe(): string;
  /** SIGKILLs it, if still alive (a test that failed). */
  kill(): void;
}

const live = new Set<() => void>();
afterEach(() => {
  for (const kill of live) kill();
  live.clear();
});

function spawnChild(config: object): Child {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const kill = () => child.kill('SIGKILL');
  live.add(kill);
  const lines: string[] = [];
  let pending = '';
  let stderr = '';
  let taken = 0;
  const waiting = new Set<() => void>();
  child.stdin.on('error', () => undefined);
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      lines.push(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
    }
    for (const wake of waiting) wake();
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => {
      live.delete(kill);
      for (const wake of waiting) wake();
      resolve({ code, signal, lines, stderr });
    }),
  );
  const describe = () => `child exit ${String(child.exitCode)}; stdout: ${lines.join(' | ')}; stderr: ${stderr.trim().slice(-2000) || '(none)'}`;
  const line = async (pattern: RegExp): Promise<string> => {
    const look = async (): Promise<string> => {
      for (;;) {
        while (taken < lines.length) {
          const next = lines[taken++] as string;
          if (pattern.test(next)) return next;
        }
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the child ended before a line matching ${pattern} (${describe()})`);
        await new Promise<void>((wake) => {
          const once = () => {
            waiting.delete(once);
            wake();
          };
          waiting.add(once);
        });
      }
    };
    return within(look(), LOAD_BOUND_MS, `a line matching ${pattern} from the child (${describe()})`);
  };
  return { line, send: (command) => child.stdin.write(`${command}\n`), exited, describe, kill };
}

/** `requests` sent `inFlight` at a time on keep-alive connections from 127.0.0.1, until stopped. */
function load(base: string, next: (i: number) => FloodRequest, inFlight: number): Flood {
  return flood(base, next, inFlight, ['127.0.0.1']);
}

/** What became of each long poll: its status, or its connection's error code; undefined while it waits. */
type PollOutcome = number | string | undefined;

interface LongPolls {
  readonly outcomes: readonly PollOutcome[];
  /** Settles once every poll has its outcome. */
  readonly ended: Promise<unknown>;
  /** Closes the connections (until then they are kept alive, idle once answered). */
  close(): void;
}

/**
 * POLLS long polls of `path`, one on each of POLLS kept-alive connections, sent once. Answered,
 * each connection stays open and idle, as a client's pool keeps it, until `close`: the server
 * must not wait for its client to close it (fastify alone would, for its keep-alive timeout of 72 s).
 */
function longPolls(base: string, path: string, headers: () => Record<string, string>): LongPolls {
  const outcomes: PollOutcome[] = Array.from({ length: POLLS }, () => undefined);
  const agent = new HttpAgent({ keepAlive: true, maxSockets: POLLS });
  const ended = Promise.all(
    outcomes.map(
      (_, i) =>
        new Promise<void>((resolve) => {
          const req = request(`${base}${path}`, { headers: headers(), agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(void (outcomes[i] = res.statusCode ?? 0)));
            res.on('error', (e: NodeJS.ErrnoException) => resolve(void (outcomes[i] = e.code ?? e.message)));
          });
          req.on('error', (e: NodeJS.ErrnoException) => resolve(void (outcomes[i] = e.code ?? e.message)));
          req.end();
        }),
    ),
  );
  return { outcomes, ended, close: () => agent.destroy() };
}

interface Sent {
  /** Its status, or its connection's error code; undefined while it waits. */
  readonly outcome: PollOutcome;
  /** Whether the server has taken the request: it answered its `expect: 100-continue` with 100 Continue, as it began handling it. */
  readonly taken: boolean;
  readonly ended: Promise<unknown>;
  /** Closes its connection (kept alive until then). */
  close(): void;
}

/**
 * Sends one request on a kept-alive connection of its own, which stays open once answered until
 * `close`. It says `expect: 100-continue`: Node's server answers 100 Continue as it hands the
 * request to its handler, which tells the test that the request is in the server's hands.
 */
function send(base: string, made: FloodRequest): Sent {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const sent = { outcome: undefined as PollOutcome, taken: false, ended: Promise.resolve() as Promise<unknown>, close: () => agent.destroy() };
  sent.ended = new Promise<void>((resolve) => {
    const headers = { ...made.headers, expect: '100-continue' };
    const req = request(`${base}${made.path}`, { method: made.method, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(void (sent.outcome = res.statusCode ?? 0)));
      res.on('error', (e: NodeJS.ErrnoException) => resolve(void (sent.outcome = e.code ?? e.message)));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(void (sent.outcome = e.code ?? e.message)));
    req.on('continue', () => (sent.taken = true));
    req.end(made.body);
  });
  return sent;
}

const count = (f: Flood, ok: (status: number) => boolean): number => [...f.statuses].reduce((n, [status, times]) => (ok(status) ? n + times : n), 0);
const answered = (f: Flood): number => count(f, (status) => status > 0);

interface Scenario {
  /** The child's config. */
  readonly config: object;
  /** Long polls held at the server through the close (path, and the headers of each). */
  readonly longPoll?: { readonly path: string; readonly headers: () => Record<string, string> };
  /** The load, started once the child listens at `url`. */
  load(url: string): Record<string, Flood>;
  /** Whether the load has been flowing long enough to close under it. */
  loaded(floods: Record<string, Flood>): boolean;
  /** With a fault: whether its effect shows. */
  faulted?(floods: Record<string, Flood>): boolean;
  /** With a fault: a line the child says once its effect shows. */
  readonly faultLine?: RegExp;
  /**
   * A request sent alone on a kept-alive connection just before the close, which the (slowed)
   * store holds through it: it must be answered, and its connection, idle from then on, must not
   * keep the server open.
   */
  straggler?(): FloodRequest;
}

interface Outcome {
  readonly exit: Exit;
  readonly floods: Record<string, Flood>;
  /** The long polls' outcomes: as they were when the child was told to close, and at the end. */
  readonly pollsBefore: readonly PollOutcome[];
  readonly polls: readonly PollOutcome[];
  /** The straggler's outcome (when before the close, it was still waiting). */
  readonly straggler: PollOutcome;
}

/** `scenario` with its server closing within `graceMs` instead of the default grace. */
function withGrace(scenario: Scenario, graceMs: number): Scenario {
  return { ...scenario, config: { ...scenario.config, closeGraceMs: graceMs } };
}

/**
 * Runs the child, loads it, injects the fault if the config names one, closes it under load and
 * waits (bounded) for it to exit and for every request in flight to end.
 */
async function closeUnderLoad(scenario: Scenario): Promise<Outcome> {
  const child = spawnChild(scenario.config);
  const url = (await child.line(/^ready /)).split(' ')[1] as string;
  const floods = scenario.load(url);
  const polls = scenario.longPoll === undefined ? undefined : longPolls(url, scenario.longPoll.path, scenario.longPoll.headers);
  let straggler: Sent | undefined;
  try {
    await until(() => scenario.loaded(floods), `the load on ${url} (${child.describe()})`);
    if (scenario.faulted !== undefined) {
      child.send('fault');
      await child.line(/^armed$/);
      const faulted = scenario.faulted;
      await until(() => faulted(floods), `the fault's effect (${child.describe()})`);
      if (scenario.faultLine !== undefined) await child.line(scenario.faultLine);
    }
    if (scenario.straggler !== undefined) {
      const made = scenario.straggler();
      const sent = send(url, made);
      straggler = sent;
      // Until the server has taken it: from then on it is in flight, held by the store (slowed by a second) through the close.
      await waitFor(`the straggler taken by the server (${child.describe()})`, () => {
        if (sent.outcome !== undefined) throw new Error(`the straggler was answered before the close: ${sent.outcome}`);
        return sent.taken;
      });
    }
    // The long polls sent at the start must be waiting at the server, not still on their way to it.
    if (polls !== undefined) await pollsWaiting(child, `the long polls at ${url} (${child.describe()})`);
    const pollsBefore = [...(polls?.outcomes ?? [])];
    child.send('close');
    const exit = await within(child.exited, EXIT_BOUND_MS, `the child's exit after close under load (${child.describe()})`);
    return { exit, floods, pollsBefore, polls: polls?.outcomes ?? [], straggler: straggler?.outcome };
  } finally {
    // After a failure, the child must not hold the load's requests (and the test) any longer.
    child.kill();
    // Every request in flight at the close was answered or failed: none is left waiting.
    try {
      await within(
        Promise.all([...Object.values(floods).map((f) => f.stop()), polls?.ended, straggler?.ended]),
        SETTLE_BOUND_MS,
        'the end of the requests in flight',
      );
    } finally {
      polls?.close();
      straggler?.close();
    }
  }
}

/** Waits (checking every 20 ms, at most LOAD_BOUND_MS) until the child says POLLS long polls wait at its server. */
async function pollsWaiting(child: Child, what: string): Promise<void> {
  let waiting = 0;
  const check = async () => {
    child.send('waiting');
    waiting = Number((await child.line(/^waiting \d+$/)).split(' ')[1]);
    return waiting >= POLLS;
  };
  try {
    await waitFor(`${POLLS} long polls waiting at the server`, check, { timeoutMs: LOAD_BOUND_MS, intervalMs: 20 });
  } catch (e) {
    throw new Error(`${what}: ${waiting} of ${POLLS} waiting (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
}

/**
 * Whether the load `name` has had no answer for STALL_MS (a store call that never ends holds its
 * requests): a predicate for Scenario.faulted, called every 20 ms.
 */
function stalled(name: string): (floods: Record<string, Flood>) => boolean {
  let seen = -1;
  let since = 0;
  return (floods) => {
    const now = answered(floods[name] as Flood);
    if (now !== seen) {
      seen = now;
      since = Date.now();
    }
    return Date.now() - since >= STALL_MS;
  };
}

/** A clean close: close() resolved, the child exited 0 by itself, and it never reported being held alive. */
function expectClean(outcome: Outcome): void {
  const { exit } = outcome;
  const said = `exit ${String(exit.code)} ${String(exit.signal)}; stdout: ${exit.lines.join(' | ')}; stderr: ${exit.stderr}`;
  expect(
    exit.lines.some((l) => /^closed \d+$/.test(l)),
    said,
  ).toBe(true);
  expect(exit.code, said).toBe(0);
  expect(exit.stderr, said).not.toMatch(/still alive/);
}

/** A clean close that held the hung store call for the whole grace (HANG_GRACE_MS) before giving up on it. */
function expectGaveUpAfterGrace(outcome: Outcome): void {
  expectClean(outcome);
  const closed = outcome.exit.lines.find((l) => /^closed \d+$/.test(l)) as string;
  expect(Number(closed.split(' ')[1]), 'how long close() took, in ms').toBeGreaterThanOrEqual(HANG_GRACE_MS);
}

/** The long polls were all waiting when the close came, and the close answered them (not cut them off). */
function expectPollsAnswered(outcome: Outcome): void {
  expect(outcome.pollsBefore, 'the long polls before the close').toEqual(Array.from({ length: POLLS }, () => undefined));
  expect(outcome.polls, 'the long polls after the close').toEqual(Array.from({ length: POLLS }, () => 200));
}

// ---- ledger ----------------------------------------------------------------------------------

/** A valid event nobody submitted before: a new policy with a fresh key. */
function newPolicyEvent(): string {
  const key = testKey();
  return JSON.stringify(signEvent(policyCreate([key.agent(ALL_FLAGS)], commitment([testKey()])), [key]));
}

function ledgerScenario(fault?: string): Scenario {
  return {
    config: { server: 'ledger', home: tempDir(), ...(fault === undefined ? {} : { fault }) },
    load: (url) => ({
      // Valid events, so that batches are being validated and written when the close comes.
      submits: load(url, () => ({ method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json' }, body: newPolicyEvent() }), 16),
      reads: load(url, () => ({ method: 'GET', path: '/v1/head', headers: {} }), 4),
    }),
    // For a head the node will never reach: they wait their 30 s unless the close ends them.
    longPoll: { path: '/v1/head/next?after=1000000&wait=30000', headers: () => ({}) },
    loaded: (f) => count(f['submits'] as Flood, (s) => s === 201) >= 50 && answered(f['reads'] as Flood) >= 10,
    // Submissions refused by the store's failure.
    ...(fault === undefined ? {} : { faulted: (f: Record<string, Flood>) => count(f['submits'] as Flood, (s) => s >= 500) >= 10 }),
  };
}

describe('a ledger node closes in bounded time', () => {
  it('under load: batches in flight, long polls held, connections kept alive', async () => {
    const outcome = await closeUnderLoad(ledgerScenario());
    expectClean(outcome);
    expectPollsAnswered(outcome);
  });

  it.each([
    ['write', 'every append refused by the store'],
    ['sync', 'appends written but never made durable (the node stops taking events)'],
  ])('after a store failure (%s: %s), under load', async (fault) => {
    expectClean(await closeUnderLoad(ledgerScenario(fault)));
  });

  it('with a slow store: a submission in flight at the close is answered, and its idle connection does not hold the node open', async () => {
    const scenario = ledgerScenario('slow');
    const outcome = await closeUnderLoad({
      ...scenario,
      faulted: () => true,
      straggler: () => ({ method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json' }, body: newPolicyEvent() }),
    });
    expectClean(outcome);
    expect(outcome.straggler).toBe(201);
  });

  it('with an append that never ends: close gives up on it after its grace, and exits', async () => {
    // The hung batch holds its submitters: the fault shows as submissions no longer answered.
    expectGaveUpAfterGrace(await closeUnderLoad(withGrace({ ...ledgerScenario('hang'), faulted: stalled('submits') }, HANG_GRACE_MS)));
  });
});

// ---- agency ----------------------------------------------------------------------------------

interface AgencySetup {
  readonly home: string;
  readonly ledger: RunningLedger;
  /** Builds a forward message for agent a (fresh each time). */
  forward(): string;
  /** Signed headers of a long poll of agent b, whose mailbox stays empty. */
  poll(path: string): Record<string, string>;
}

/** A ledger with an owner's policy (agents a and b), and its cloud agent registered in `home`. */
async function agencySetup(): Promise<AgencySetup> {
  const ledger = await startLedger(tempDir());
  const a = edgeAgent();
  const b = edgeAgent();
  const create = signEvent(policyCreate([a.agent(ALL_FLAGS), b.agent(FLAGS.PROVE)], commitment([testKey()])), [a, b]);
  const policy = (await new LedgerClient({ url: ledger.url }).submit(create)).subject;
  const home = tempDir();
  const first = await startAgency(home, { ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.signer.multikey], port: 0 });
  let cloud;
  try {
    cloud = await new AgencyClient(first.url, a.signer).register(policy);
  } finally {
    await first.close();
  }
  const mediator: PublicKeyRef[] = [{ kid: cloud.routingKey, publicKey: decodePublicKey(cloud.kx, 'x25519').publicKey }];
  const to: PublicKeyRef[] = [{ kid: a.agreement.kid, publicKey: a.agreement.publicKey }];
  const forward = () => {
    const pair = x25519Generate();
    const from = memoryAgreementKey(didKeyUrl('x25519', pair.publicKey), pair.privateKey, pair.publicKey);
    return JSON.stringify(wrapForward(authcrypt(messageBytes(newMessage('https://example.org/test/1.0/note', { n: 1 })), from, to), a.didKey, mediator));
  };
  return { home, ledger, forward, poll: (path) => signRequest(b.signer, 'GET', path) };
}

function agencyScenario(setup: AgencySetup, fault?: string): Scenario {
  const POLL = '/v1/mailbox?limit=1&wait=30';
  return {
    config: {
      server: 'agency',
      home: setup.home,
      ledgerUrl: setup.ledger.url,
      trustedLedgerKeys: [setup.ledger.signer.multikey],
      ...(fault === undefined ? {} : { fault }),
    },
    load: (url) => ({
      // Deliveries, so that group commits are in flight when the close comes.
      inbound: load(
        url,
        () => ({ method: 'POST', path: '/v1/inbound', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: setup.forward() }),
        16,
      ),
      health: load(url, () => ({ method: 'GET', path: '/v1/health', headers: {} }), 2),
    }),
    // Of an agent with no mail: they wait their 30 s unless the close ends them.
    longPoll: { path: POLL, headers: () => setup.poll(POLL) },
    loaded: (f) => count(f['inbound'] as Flood, (s) => s === 202) >= 50 && answered(f['health'] as Flood) >= 5,
    // Deliveries refused by the store's failure.
    ...(fault === undefined ? {} : { faulted: (f: Record<string, Flood>) => count(f['inbound'] as Flood, (s) => s >= 500) >= 10 }),
  };
}

describe('an agency closes in bounded time', () => {
  it('under load: deliveries in flight, long polls held, connections kept alive', async () => {
    const setup = await agencySetup();
    const outcome = await closeUnderLoad(agencyScenario(setup));
    expectClean(outcome);
    expectPollsAnswered(outcome);
  });

  it('after a store failure (every group commit of deliveries fails), under load', async () => {
    expectClean(await closeUnderLoad(agencyScenario(await agencySetup(), 'deliver')));
  });

  it('with a slow store: a delivery in flight at the close is answered, and its idle connection does not hold the agency open', async () => {
    const setup = await agencySetup();
    const outcome = await closeUnderLoad({
      ...agencyScenario(setup, 'slow'),
      faulted: () => true,
      straggler: () => ({ method: 'POST', path: '/v1/inbound', headers: { 'content-type': 'application/didcomm-encrypted+json' }, body: setup.forward() }),
    });
    expectClean(outcome);
    expect(outcome.straggler).toBe(202);
  });

  it('with a group commit that never ends: close gives up on it after its grace, and exits', async () => {
    // The hung commit holds the deliveries: the fault shows as deliveries no longer answered.
    expectGaveUpAfterGrace(await closeUnderLoad(withGrace({ ...agencyScenario(await agencySetup(), 'hang'), faulted: stalled('inbound') }, HANG_GRACE_MS)));
  });
});

// ---- witness ---------------------------------------------------------------------------------

describe('a witness closes in bounded time', () => {
  /** A node that accepts the witness of `home` (its key made here first), with events arriving. */
  async function followed(home: string): Promise<{ ledger: RunningLedger; stop: () => void }> {
    const identity = await openWitnessIdentity(witnessDir(home));
    const key = identity.multikey;
    identity.close();
    const ledger = await startLedger(tempDir(), { node: { witnessKeys: [key] } });
    // New heads keep coming, so that the witness keeps checking, cosigning and saving.
    const timer = setInterval(() => void ledger.node.submit(JSON.parse(newPolicyEvent())).catch(() => undefined), 50);
    return { ledger, stop: () => clearInterval(timer) };
  }

  function witnessScenario(home: string, ledgerUrl: string, nodeKey: string, report: () => string, fault?: string): Scenario {
    return {
      // A long interval: each round waits at the node up to 15 s for a newer head, so a long poll is out when the close comes.
      config: { server: 'witness', home, ledger: ledgerUrl, nodeKey, intervalMs: 30_000, ...(fault === undefined ? {} : { fault }) },
      load: (url) => ({
        state: load(url, () => ({ method: 'GET', path: '/v1/witness', headers: {} }), 4),
        // Heads reported by clients: each may need a consistency proof from the node.
        reports: load(url, () => ({ method: 'POST', path: '/v1/heads', headers: { 'content-type': 'application/json' }, body: report() }), 8),
      }),
      loaded: (f) => answered(f['state'] as Flood) >= 20 && answered(f['reports'] as Flood) >= 20,
      // The witness met a new head with its state file gone bad, and could not remember it.
      ...(fault === undefined ? {} : { faulted: () => true, faultLine: /^problem IO_ERROR$/ }),
    };
  }

  it.each([[undefined], ['state']])('under load, following a node (fault: %s)', async (fault) => {
    const home = tempDir();
    const { ledger, stop } = await followed(home);
    try {
      expectClean(await closeUnderLoad(witnessScenario(home, ledger.url, ledger.signer.multikey, () => JSON.stringify(ledger.node.latestHead()), fault)));
    } finally {
      stop();
    }
  });

  it('under load, following a node that never answers', async () => {
    const silent = await startSilentServer();
    const signer = nodeSigner();
    // Heads of the node's key that clients report: the witness has nothing to compare them with yet.
    const head = () => JSON.stringify(signHead({ size: 0, root: 'x'.repeat(43), map: 'x'.repeat(43), time: new Date().toISOString() }, signer));
    expectClean(await closeUnderLoad(witnessScenario(tempDir(), silent, signer.multikey, head)));
  });
});
