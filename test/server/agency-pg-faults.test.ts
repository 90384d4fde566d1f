/**
 * Faults under a stream of mail, with two agency processes (agency-pg-child.mjs, on the compiled
 * code in dist/) on one PostgreSQL database: senders post forward messages for the owner's agent
 * to either agency in turn while a consumer picks up and acknowledges through either. Midway,
 * one agency is killed with SIGKILL (and started again later), or PostgreSQL is stopped and
 * started again. A sender whose post fails sends the same envelope again to the next agency, a
 * few times; a consumer whose pickup or ack fails tries again later.
 *
 * Checked at the end, after the mailbox is drained through the agencies still running:
 * - every message the agencies acknowledged with 202 was picked up, under exactly one stored id;
 * - no message was stored twice (two ids for one message), none was invented;
 * - no stored id that the consumer acknowledged (200) ever came back.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgencyClient, type PickedUp } from '../../src/agency/agency-client.js';
import { EdgeAgent } from '../../src/agent/edge-agent.js';
import { anoncrypt, decrypt, recipientFromKid, wrapForward } from '../../src/didcomm/index.js';
import { initFirstAgent, registerCloudAgent } from '../../src/agent/provision.js';
import { fromUtf8, randomBytes, utf8 } from '../../src/crypto/index.js';
import { LedgerClient } from '../../src/ledger/client.js';
import { Wallet, rawSecret } from '../../src/wallet/index.js';
import { DistGuard } from '../helpers/dist-guard.js';
import { startLedger } from '../helpers/lying.js';
import { pgClusterForSuite } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const CHILD = join(fileURLToPath(new URL('.', import.meta.url)), 'agency-pg-child.mjs');
const SENDERS = 4;
/** Posts the surviving agency takes alone, once the other is killed, before the killed one comes back. */
const SURVIVOR_POSTS = 20;
const cluster = pgClusterForSuite();
const guard = new DistGuard(['agent', 'agency', 'didcomm', 'server', 'ledger', 'wallet', 'crypto']);
beforeAll(() => guard.start());

interface Child {
  readonly url: string;
  readonly process: ChildProcess;
  /** Set the moment it is killed: the balancer (`pick`) sends it nothing more, as a health check would. */
  readonly dead: boolean;
  kill(): Promise<void>;
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

function startChild(config: object): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the agency child did not start: ${err}`));
    }, 30_000);
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const ready = /^ready (\S+)$/m.exec(out);
      if (ready?.[1] === undefined) return;
      clearTimeout(timer);
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      const handle = {
        url: ready[1],
        process: child,
        dead: false,
        kill: async () => {
          handle.dead = true;
          child.kill('SIGKILL');
          await exited;
          children.delete(child);
        },
      };
      resolve(handle);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      // After "ready", an exit nobody asked for is a crash: said on the test's output.
      if (signal !== 'SIGKILL') process.stderr.write(`agency child exited (${String(code)}): ${err}\n`);
      reject(new Error(`the agency child exited (${String(code)}): ${err}`));
    });
  });
}

/** Everything both tests share: a ledger, a database, the owner's agent, and a way to start agencies on them. */
async function setup() {
  const ledger = await startLedger(tempDir());
  const store = await cluster().createDatabase();
  const agencyKeyFile = join(tempDir('dkms-agency-key-'), 'agency.key');
  const config = (home: string) => ({ home, ledgerUrl: ledger.url, trustedLedgerKeys: [ledger.signer.multikey], store, agencyKeyFile });
  const homes = [tempDir(), tempDir()];
  const agencies = [await startChild(config(homes[0] as string)), await startChild(config(homes[1] as string))];
  const wallet = await Wallet.create(join(tempDir(), 'wallet.db'), rawSecret(randomBytes(32)));
  const laptop = new EdgeAgent(wallet, new LedgerClient({ url: ledger.url, trustedKeys: [ledger.signer.multikey] }));
  await initFirstAgent(laptop, { label: 'laptop', ledgerUrl: ledger.url });
  await registerCloudAgent(laptop, (agencies[0] as Child).url, 0);
  const restart = async (i: number) => {
    agencies[i] = await startChild(config(homes[i] as string));
  };
  return { agencies, laptop, restart, close: () => wallet.close() };
}

/** How the stream is going, for a fault to wait on: posts acknowledged (202), and posts whose sender gave up on them. */
interface Progress {
  acknowledged(): number;
  gaveUp(): number;
}

/** The stream: senders and a consumer, against whichever agencies are up; `fault` runs midway. */
async function stream(agencies: Child[], laptop: EdgeAgent, fault: (progress: Progress) => Promise<void>, count = 240) {
  const cloud = laptop.cloud();
  const routing = [recipientFromKid(cloud.routingKey)];
  const me = [recipientFromKid(laptop.agreementKey().kid)];
  const acknowledged = new Set<string>();
  let gaveUp = 0;
  const progress: Progress = { acknowledged: () => acknowledged.size, gaveUp: () => gaveUp };
  let next = 0;
  let turn = 0;
  /** The next live agency in turn. */
  const pick = (): Child => {
    const live = agencies.filter((a) => !a.dead);
    return live[turn++ % live.length] as Child;
  };

  const sender = async () => {
    while (next < count) {
      const n = next++;
      const envelope = JSON.stringify(wrapForward(anoncrypt(utf8(`message ${n}`), me), cloud.did, routing));
      // A post that fails is sent again, the same envelope, to the next agency: if the first one
      // was stored after all (its agency died before answering), the store keeps it once.
      let posted = false;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          const answer = await fetch(`${pick().url}/v1/inbound`, {
            method: 'POST',
            headers: { 'content-type': 'application/didcomm-encrypted+json' },
            body: envelope,
            signal: AbortSignal.timeout(20_000),
          });
          if (answer.status === 202) {
            acknowledged.add(`message ${n}`);
            posted = true;
            break;
          }
          expect(answer.status).toBe(503);
        } catch (e) {
          // The agency died under the request: not acknowledged.
          if (!(e instanceof TypeError)) throw e;
        }
        // The sender's pause before it sends again (its retry policy, part of the load): not a wait for a condition.
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
      if (!posted) gaveUp++;
      if (n === count / 2) await fault(progress);
    }
  };

  /** Stored id → message; what came back after its ack; messages seen under two ids. */
  const stored = new Map<string, string>();
  const acked = new Set<string>();
  const problems: string[] = [];
  const take = (picked: readonly PickedUp[]) => {
    for (const m of picked) {
      if (acked.has(m.id)) problems.push(`stored id ${m.id} came back after it was acknowledged`);
      const text = fromUtf8(decrypt(m.envelope, [laptop.agreementKey()]).plaintext);
      const before = stored.get(m.id);
      if (before !== undefined && before !== text) problems.push(`stored id ${m.id} changed from ${before} to ${text}`);
      stored.set(m.id, text);
    }
  };
  const consumeOnce = async (): Promise<number> => {
    const client = new AgencyClient(pick().url, laptop.signingKey(), { timeoutMs: 20_000 });
    const picked = await client.pickup(50);
    take(picked);
    if (picked.length > 0) {
      const ids = picked.map((m) => m.id);
      await new AgencyClient(pick().url, laptop.signingKey(), { timeoutMs: 20_000 }).ack(ids);
      for (const id of ids) acked.add(id);
    }
    return picked.length;
  };
  let sending = true;
  const consumer = async () => {
    while (sending) {
      await consumeOnce().catch(() => undefined);
      // The consumer's pace between two pickups (how this client polls, part of the load): not a wait for a condition.
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const consuming = consumer();
  await Promise.all(Array.from({ length: SENDERS }, sender));
  sending = false;
  await consuming;
  // Drain through whatever is up now.
  for (let empty = 0, rounds = 0; empty < 2 && rounds < 200; rounds++) {
    const n = await consumeOnce().catch(() => -1);
    empty = n === 0 ? empty + 1 : 0;
  }

  const idsOf = new Map<string, string[]>();
  for (const [id, text] of stored) idsOf.set(text, [...(idsOf.get(text) ?? []), id]);
  for (const [text, ids] of idsOf) if (ids.length > 1) problems.push(`${text} was stored ${ids.length} times (${ids.join(', ')})`);
  for (const text of acknowledged) if (!idsOf.has(text)) problems.push(`${text} was acknowledged (202) and never picked up`);
  for (const text of idsOf.keys()) if (!/^message \d+$/.test(text)) problems.push(`an unknown message: ${text}`);
  return { acknowledged: acknowledged.size, stored: idsOf.size, problems };
}

describe('two agencies on one PostgreSQL database, under faults', () => {
  it('loses and duplicates nothing acknowledged when one agency is killed with SIGKILL mid-stream', async () => {
    const { agencies, laptop, restart, close } = await setup();
    try {
      const result = await stream(agencies, laptop, async (progress) => {
        await (agencies[0] as Child).kill();
        // The survivor carries on alone for a while, then the killed one comes back.
        const before = progress.acknowledged();
        await waitFor(`${SURVIVOR_POSTS} posts acknowledged by the surviving agency alone`, () => progress.acknowledged() >= before + SURVIVOR_POSTS);
        await restart(0);
      });
      expect(result.problems).toEqual([]);
      // Every post got through, the ones in flight at the agency killed on a second attempt.
      expect(result.acknowledged).toBe(240);
    } finally {
      close();
    }
  });

  it('loses and duplicates nothing acknowledged when PostgreSQL stops and starts again mid-stream', async () => {
    const { agencies, laptop, close } = await setup();
    try {
      const result = await stream(agencies, laptop, async (progress) => {
        await cluster().halt('immediate');
        // The outage lasts until it has outlasted a sender's attempts: one gave up on its post.
        const before = progress.gaveUp();
        await waitFor('a sender to give up on a post while PostgreSQL is down', () => progress.gaveUp() > before);
        await cluster().resume();
      });
      expect(result.problems).toEqual([]);
      // The outage outlasts a sender's attempts (three, 300 ms apart): some posts were never acknowledged.
      expect(result.acknowledged).toBeGreaterThan(120);
      // Both agencies work after the restart: a message through each is picked up through the other.
      const cloud = laptop.cloud();
      for (const [via, from] of [
        [0, 1],
        [1, 0],
      ] as const) {
        const envelope = wrapForward(anoncrypt(utf8(`after ${via}`), [recipientFromKid(laptop.agreementKey().kid)]), cloud.did, [
          recipientFromKid(cloud.routingKey),
        ]);
        const posted = await fetch(`${(agencies[via] as Child).url}/v1/inbound`, {
          method: 'POST',
          headers: { 'content-type': 'application/didcomm-encrypted+json' },
          body: JSON.stringify(envelope),
        });
        expect(posted.status).toBe(202);
        const picked = await new AgencyClient((agencies[from] as Child).url, laptop.signingKey()).pickup(10);
        expect(picked.map((m) => fromUtf8(decrypt(m.envelope, [laptop.agreementKey()]).plaintext))).toEqual([`after ${via}`]);
        await new AgencyClient((agencies[from] as Child).url, laptop.signingKey()).ack(picked.map((m) => m.id));
      }
    } finally {
      close();
    }
  });
});
