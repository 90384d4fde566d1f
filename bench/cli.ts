/**
 * CLI benchmark (`npm run bench -- cli`): what a person waits for, and what it costs, per
 * command. The raw limit, measured in the same run the same way: starting Node and doing nothing,
 * `node -e 0`, run just before each run of a command (paired, so that both see the machine in the
 * same state). Each command runs RUNS times as its own process (bin/dkms.js, as a user runs it),
 * first with no unlock session (every wallet command unlocks the wallet: Argon2id at the default
 * tier), then in an unlock session (`dkms unlock`). Reported for each: the median wall time, the
 * mean CPU of the `dkms` process (user + system, from the kernel's count of waited-for children),
 * and with a session the mean CPU the session spent running it, read from the session process;
 * each beside `node -e 0`'s (ratio = measured / node -e 0).
 *
 * The owner is real: `dkms up` (a ledger and an agency on loopback), Alice with a DID and a cloud
 * agent, Bob, and a connection between them; the commands are `--help`, `key sign` (a 1 KiB
 * file), `did resolve` (Alice's DID, verified from its inception) and `message send` (to Bob).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, report, round } from './report.js';

const RUNS = 11;
const DKMS = fileURLToPath(new URL('../../bin/dkms.js', import.meta.url));
const PASSPHRASE = 'the cli benchmark passphrase';
/** Clock ticks a second of /proc's CPU counts (USER_HZ: 100 on Linux everywhere it runs). */
const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds from /proc/<pid>/stat: the process's own (utime + stime) and its waited-for children's (cutime + cstime). */
function cpuOf(pid: number | 'self'): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  // Fields from the state (field 3): utime is field 14, stime 15, cutime 16, cstime 17.
  const at = (n: number) => fields[n - 3] ?? NaN;
  return { own: (at(14) + at(15)) / TICKS, children: (at(16) + at(17)) / TICKS };
}

interface Measured {
  wallMs: number;
  cpuMs: number;
  sessionCpuMs?: number;
}

/** One run of `node args`: its wall time and CPU (the child's, from the kernel's count of waited-for children). */
function runOnce(args: readonly string[], env: Record<string, string>): { wallMs: number; cpuMs: number } {
  const before = cpuOf('self').children;
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8' });
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return { wallMs, cpuMs: (cpuOf('self').children - before) * 1000 };
}

/**
 * Runs `args` RUNS times (after one untimed run), each run paired with a `node -e 0` just before
 * it, so that both figures see the machine in the same state; medians of wall time, means of CPU.
 */
function measure(args: readonly string[], env: Record<string, string>, session?: number): { command: Measured; node: Measured } {
  runOnce(args, env);
  const command: { wallMs: number; cpuMs: number }[] = [];
  const node: { wallMs: number; cpuMs: number }[] = [];
  const sessionBefore = session === undefined ? 0 : cpuOf(session).own;
  for (let i = 0; i < RUNS; i++) {
    node.push(runOnce(['-e', '0'], {}));
    command.push(runOnce(args, env));
  }
  const sessionCpuMs = session === undefined ? undefined : ((cpuOf(session).own - sessionBefore) / RUNS) * 1000;
  const summary = (runs: { wallMs: number; cpuMs: number }[]): Measured => ({
    wallMs: median(runs.map((r) => r.wallMs)),
    cpuMs: runs.reduce((sum, r) => sum + r.cpuMs, 0) / runs.length,
  });
  return { command: { ...summary(command), ...(sessionCpuMs === undefined ? {} : { sessionCpuMs }) }, node: summary(node) };
}

function dkms(args: readonly string[], env: Record<string, string>): Record<string, unknown> {
  const result = spawnSync(process.execPath, [DKMS, ...args, '--json'], { env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`dkms ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

export async function cliBench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-cli-'));
  const up = spawn(process.execPath, [DKMS, 'up', '--ledger-port', '0', '--agency-port', '0', '--json'], {
    env: { PATH: process.env['PATH'] ?? '', DKMS_HOME: join(dir, 'services') },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let session: number | undefined;
  try {
    const services = await new Promise<{ ledger: string; agency: string }>((resolve, reject) => {
      let out = '';
      up.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0] ?? '') as { ledger: string; agency: string });
      });
      up.once('exit', (code) => reject(new Error(`dkms up exited ${code}`)));
    });
    const alice = { DKMS_HOME: join(dir, 'alice'), DKMS_LEDGER: services.ledger, DKMS_PASSPHRASE: PASSPHRASE };
    const bob = { DKMS_HOME: join(dir, 'bob'), DKMS_LEDGER: services.ledger, DKMS_PASSPHRASE: PASSPHRASE };
    const made = dkms(['agent', 'init', '--label', 'laptop', '--did', '--agency', services.agency, '--yes'], alice);
    dkms(['agent', 'init', '--label', 'bob', '--agency', services.agency, '--yes'], bob);
    const invitation = dkms(['connection', 'invite', '--label', 'bob'], alice);
    dkms(['connection', 'accept', String(invitation['invitation']), '--label', 'alice'], bob);
    // Alice's side of the connection is made when she reads Bob's answer.
    dkms(['message', 'inbox'], alice);
    const keys = dkms(['key', 'list'], alice)['keys'] as { name: string; type: string }[];
    const signing = keys.find((k) => k.type === 'ed25519')?.name;
    if (signing === undefined) throw new Error('alice has no signing key');
    const file = join(dir, 'file.bin');
    writeFileSync(file, Buffer.alloc(1024, 7));

    const commands: [string, string[]][] = [
      ['--help', ['--help']],
      ['key sign', ['key', 'sign', '--name', signing, '--in', file]],
      ['did resolve', ['did', 'resolve', String(made['did'])]],
      ['message send', ['message', 'send', 'bob', 'a benchmark message']],
    ];
    const line = (command: string, withSession: boolean, { command: m, node }: { command: Measured; node: Measured }) =>
      report({
        bench: 'cli',
        command,
        session: withSession,
        wallMs: round(m.wallMs, 1),
        cpuMs: round(m.cpuMs, 1),
        ...(m.sessionCpuMs === undefined ? {} : { sessionCpuMs: round(m.sessionCpuMs, 1) }),
        nodeWallMs: round(node.wallMs, 1),
        nodeCpuMs: round(node.cpuMs, 1),
        ratioWall: round(m.wallMs / node.wallMs),
        ratioCpu: round((m.cpuMs + (m.sessionCpuMs ?? 0)) / node.cpuMs),
        runs: RUNS,
      });
    for (const [command, args] of commands) line(command, false, measure([DKMS, ...args], alice));
    session = Number(dkms(['unlock'], alice)['pid']);
    for (const [command, args] of commands) {
      // --help never goes to the session: the same process, measured again beside the others.
      line(command, true, measure([DKMS, ...args], { ...alice, DKMS_PASSPHRASE: '' }, command === '--help' ? undefined : session));
    }
    dkms(['lock'], alice);
    session = undefined;
  } finally {
    if (session !== undefined) process.kill(session, 'SIGKILL');
    up.kill('SIGTERM');
    await new Promise((resolve) => up.once('exit', resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}
