/**
 * A real three-member etcd cluster on 127.0.0.1, for the etcd benchmark and the tests: its own
 * data directories, free ports below the ephemeral range, fast elections (heartbeat 50 ms,
 * election timeout 500 ms), every member stopped by its PID.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dir: string;
  process: ChildProcess | undefined;
}

export interface EtcdCluster {
  readonly endpoints: readonly string[];
  readonly members: readonly EtcdMember[];
  /** The `etcd://host:port,…` form the CLI takes. */
  readonly url: string;
  /** SIGKILLs member `i` and waits until it is gone. */
  kill(i: number): Promise<void>;
  /** Starts member `i` again on its data directory and waits until the cluster is healthy. */
  restart(i: number): Promise<void>;
  /** The index of the current leader, or -1. */
  leader(): Promise<number>;
  /** SIGKILLs every member by PID; synchronous, so that exit handlers can call it. */
  killAll(): void;
  /** SIGKILLs every member and waits until each is gone. */
  stop(): Promise<void>;
}

/** Whether Debian's etcd-server and etcd-client are installed. */
export function etcdInstalled(): boolean {
  const works = (cmd: string, args: string[]) => {
    const probe = spawnSync(cmd, args, { stdio: 'ignore' });
    return probe.error === undefined && probe.status === 0;
  };
  return works('etcd', ['--version']) && works('etcdctl', ['version']);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Six free ports below the ephemeral range (which starts at 32768). */
async function freePorts(): Promise<number[]> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 1_200) * 10;
    const ports = [0, 1, 2, 3, 4, 5].map((i) => base + i);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return ports;
  }
  throw new Error('no six free ports for an etcd cluster');
}

function startMember(member: EtcdMember, cluster: string, token: string, state: 'new' | 'existing'): ChildProcess {
  mkdirSync(member.dir, { recursive: true, mode: 0o700 });
  // etcd refuses to start when an ETCD_* variable repeats a flag.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD_')));
  return spawn(
    'etcd',
    [
      '--name',
      member.name,
      '--data-dir',
      member.dir,
      '--listen-client-urls',
      member.clientUrl,
      '--advertise-client-urls',
      member.clientUrl,
      '--listen-peer-urls',
      member.peerUrl,
      '--initial-advertise-peer-urls',
      member.peerUrl,
      '--initial-cluster',
      cluster,
      '--initial-cluster-token',
      token,
      '--initial-cluster-state',
      state,
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      '--snapshot-count',
      '10000',
      '--logger',
      'zap',
      '--log-level',
      'error',
    ],
    { env, stdio: ['ignore', 'ignore', 'ignore'] },
  );
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

async function healthy(endpoints: readonly string[], timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const probe = spawnSync('etcdctl', ['--endpoints', endpoints.join(','), '--dial-timeout', '300ms', '--command-timeout', '700ms', 'endpoint', 'health'], {
      encoding: 'utf8',
    });
    if (probe.status === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the etcd cluster at ${endpoints.join(',')} did not become healthy`);
}

/** Starts three members with their data directories under `root`; resolves once healthy. */
export async function startEtcdCluster(root: string): Promise<EtcdCluster> {
  const ports = await freePorts();
  const members: EtcdMember[] = [0, 1, 2].map((i) => ({
    name: `m${i}`,
    clientUrl: `http://127.0.0.1:${ports[i] ?? 0}`,
    peerUrl: `http://127.0.0.1:${ports[i + 3] ?? 0}`,
    dir: join(root, `m${i}`),
    process: undefined,
  }));
  const initial = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  const token = `dkms-${process.pid}-${ports[0] ?? 0}`;
  const launch = (member: EtcdMember, state: 'new' | 'existing') => {
    member.process = startMember(member, initial, token, state);
  };
  const killAll = () => {
    for (const member of members) if (member.process?.exitCode === null && member.process.signalCode === null) member.process.kill('SIGKILL');
  };
  for (const member of members) launch(member, 'new');
  const endpoints = members.map((m) => m.clientUrl);
  try {
    await healthy(endpoints);
  } catch (e) {
    killAll();
    throw e;
  }
  return {
    endpoints,
    members,
    url: `etcd://${endpoints.map((e) => e.replace('http://', '')).join(',')}`,
    killAll,
    async kill(i) {
      const child = members[i]?.process;
      if (child === undefined) return;
      child.kill('SIGKILL');
      await exited(child);
    },
    async restart(i) {
      const member = members[i];
      if (member !== undefined) launch(member, 'existing');
      await healthy(endpoints);
    },
    async leader() {
      // Member ids are 64-bit: compare them as the strings the client gives, not as numbers.
      for (const [i, endpoint] of endpoints.entries()) {
        const client = new Etcd3({ hosts: endpoint, defaultCallOptions: { deadline: Date.now() + 1000 } });
        try {
          const status = await client.maintenance.status();
          if (String(status.leader) === String(status.header.member_id)) return i;
        } catch {
          // A dead member is not the leader.
        } finally {
          client.close();
        }
      }
      return -1;
    },
    async stop() {
      for (const member of members) {
        const child = member.process;
        if (child === undefined) continue;
        child.kill('SIGKILL');
        await exited(child);
      }
    },
  };
}
