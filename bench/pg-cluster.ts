/**
 * A throwaway PostgreSQL server for the benches and tests: initdb in a temporary directory, a
 * private port on loopback, trust authentication (nothing else can reach it), removed on stop.
 * PostgreSQL refuses to run as root: as root, it runs as a system user made for it. A server
 * still running when the process exits, or gets SIGINT or SIGTERM (a bench interrupted), is
 * stopped and removed then.
 */
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const PG_USER = 'dkms-pg';
export const PG_INSTALL = 'PostgreSQL is not installed: run `apt-get install -y postgresql` (what .ci/run does)';

/** The directory holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<version>/bin (newest). */
export function postgresBin(): string | undefined {
  const which = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' });
  const onPath = which.status === 0 ? which.stdout.trim() : '';
  if (onPath !== '') return join(onPath, '..');
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** The uid and gid to run PostgreSQL as: ours, or (as root) a system user made for it. */
function runAs(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const id = (flag: string) => spawnSync('id', [flag, PG_USER], { encoding: 'utf8' });
  if (id('-u').status !== 0) {
    const made = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', PG_USER], { encoding: 'utf8' });
    if (made.status !== 0 && id('-u').status !== 0) throw new Error(`cannot create the system user ${PG_USER} to run PostgreSQL as: ${made.stderr.trim()}`);
  }
  return { uid: Number(id('-u').stdout.trim()), gid: Number(id('-g').stdout.trim()) };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

function run(cmd: string, args: string[], options: SpawnOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${String(code)}: ${output.trim().slice(-2000)}`)),
    );
  });
}

/** The servers this process started and has not stopped: stopped, and their data removed, if it exits or is told to first. */
const live = new Map<string, () => void>();

function stopLiveSync(): void {
  for (const stop of [...live.values()]) stop();
}

function onSignal(signal: NodeJS.Signals): void {
  stopLiveSync();
  // Then the signal does what it would have done without this handler (unless others handle it).
  process.off(signal, onSignal);
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

/** Stops the live servers when the process exits, or is interrupted or terminated, before stopping them itself. */
function guardLive(root: string, stop: () => void): void {
  if (live.size === 0) {
    process.on('exit', stopLiveSync);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.set(root, stop);
}

function unguard(root: string): void {
  live.delete(root);
  if (live.size === 0) {
    process.off('exit', stopLiveSync);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export interface PgCluster {
  readonly port: number;
  /** Its directory (data, socket, log): removed on stop. */
  readonly root: string;
  /** The URL of database `name` (default: the maintenance database). */
  url(name?: string): string;
  /** A new empty database; its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server (immediately: like a crash, for `mode` 'immediate', after a checkpoint) and keeps its data. */
  halt(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
  /** Stops it and removes its data. */
  stop(): Promise<void>;
}

export interface PgClusterOptions {
  /**
   * Whether commits and checkpoints reach the disk (fsync, the default: benchmarks measure the
   * real cost). Tests pass false: they stop and kill processes, never the machine, so what a
   * process wrote survives them either way, and the suite does not wait on the disk.
   */
  readonly durable?: boolean;
}

export async function startPgCluster(cluster: PgClusterOptions = {}): Promise<PgCluster> {
  const bin = postgresBin();
  if (bin === undefined) throw new Error(PG_INSTALL);
  const user = runAs();
  const root = mkdtempSync(join(tmpdir(), 'dkms-pg-'));
  if (user !== undefined) chownSync(root, user.uid, user.gid);
  const data = join(root, 'data');
  const options: SpawnOptions = { env: { ...process.env, LC_ALL: 'C' }, ...(user ?? {}), cwd: root };
  await run(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], options).catch((e: unknown) => {
    rmSync(root, { recursive: true, force: true });
    throw e;
  });
  const port = await freePort();
  const durability = cluster.durable === false ? ' -c fsync=off' : '';
  const settings = `-p ${port} -k ${root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=64MB${durability}`;
  const ctl = (args: string[]) => run(join(bin, 'pg_ctl'), ['-D', data, ...args], options);
  const start = () => ctl(['-o', settings, '-l', join(root, 'server.log'), '-w', '-t', '60', 'start']);
  guardLive(root, () => {
    live.delete(root);
    spawnSync(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { ...options, stdio: 'ignore' });
    rmSync(root, { recursive: true, force: true });
  });
  try {
    await start();
  } catch (e) {
    await ctl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
    unguard(root);
    rmSync(root, { recursive: true, force: true });
    throw e;
  }
  let databases = 0;
  const url = (name = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${name}`;
  let stopped = false;
  return {
    port,
    root,
    url,
    async createDatabase() {
      const name = `dkms_${process.pid}_${++databases}`;
      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return url(name);
    },
    async halt(mode = 'fast') {
      // CREATE DATABASE writes the whole template to the WAL (PostgreSQL 15+): without a
      // checkpoint first, the restart after an immediate stop replays every database made since
      // the last one, seconds each on a loaded machine. The stop itself is still a crash.
      if (mode === 'immediate') {
        const client = new pg.Client({ connectionString: url() });
        await client.connect();
        try {
          await client.query('CHECKPOINT');
        } finally {
          await client.end();
        }
      }
      await ctl(['-m', mode, '-w', 'stop']);
    },
    resume: start,
    async stop() {
      if (stopped) return;
      stopped = true;
      await ctl(['-m', 'immediate', '-w', 'stop']).catch(() => undefined);
      unguard(root);
      rmSync(root, { recursive: true, force: true });
    },
  };
}
