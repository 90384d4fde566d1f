/**
 * The relay bench's senders in a process of their own, so that their HTTP client does not share
 * the agency's event loop (it still shares the machine's cores): `sendFromChild` writes the
 * requests to a file, starts this file (compiled, in dist/bench/) on it, and says "go" once the
 * child has read it. The child posts them `inFlight` at a time over keep-alive connections and
 * answers with one JSON line: how many got 202, the other statuses, and the seconds it took.
 */
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface SendResult {
  readonly accepted: number;
  readonly failed: Record<string, number>;
  readonly seconds: number;
}

const SELF = fileURLToPath(import.meta.url);

export async function sendFromChild(file: string, requests: readonly { url: string; body: string }[], inFlight: number): Promise<SendResult> {
  writeFileSync(file, JSON.stringify(requests));
  const child = spawn(process.execPath, [SELF, file, String(inFlight)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout });
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    for await (const line of lines) {
      if (line === 'ready') child.stdin.write('go\n');
      else return JSON.parse(line) as SendResult;
    }
    throw new Error(`the senders' process ended with ${String(await exited)} and no result`);
  } finally {
    child.stdin.end();
    child.kill();
    rmSync(file, { force: true });
  }
}

function post(url: string, body: string, agent: HttpAgent): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: 'POST', agent, headers: { 'content-type': 'application/didcomm-encrypted+json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(-1));
      },
    );
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

async function main(file: string, inFlight: number): Promise<void> {
  const requests = JSON.parse(readFileSync(file, 'utf8')) as { url: string; body: string }[];
  const agent = new HttpAgent({ keepAlive: true, maxSockets: inFlight });
  process.stdout.write('ready\n');
  const input = createInterface({ input: process.stdin });
  for await (const line of input) if (line === 'go') break;
  let next = 0;
  let accepted = 0;
  const failed: Record<string, number> = {};
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < requests.length) {
        const item = requests[next++] as { url: string; body: string };
        const status = await post(item.url, item.body, agent);
        if (status === 202) accepted += 1;
        else failed[String(status)] = (failed[String(status)] ?? 0) + 1;
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  agent.destroy();
  process.stdout.write(`${JSON.stringify({ accepted, failed, seconds })}\n`);
  process.exit(0);
}

if (process.argv[1] === SELF && process.argv[2] !== undefined) await main(process.argv[2], Number(process.argv[3] ?? 32));
