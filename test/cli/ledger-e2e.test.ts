import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { DKMS_BIN, dkms, json, owner } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { startEtcdCluster, type EtcdCluster } from '../helpers/etcd.js';

const running: ChildProcess[] = [];
afterEach(() => {
  for (const child of running.splice(0)) child.kill('SIGKILL');
});

/** Starts `dkms up` on a free port and resolves with its ledger URL once it listens. */
function up(
  home: string,
  args: readonly string[] = ['up', '--ledger-port', '0', '--agency-port', '0'],
): Promise<{ url: string; child: ChildProcess; stopped: Promise<{ code: number | null; stdout: string }> }> {
  const child = spawn(process.execPath, [DKMS_BIN, ...args, '--json'], {
    env: { PATH: process.env['PATH'] ?? '', DKMS_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(child);
  let stdout = '';
  let stderr = '';
  const stopped = new Promise<{ code: number | null; stdout: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout })));
  return new Promise((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line !== undefined) resolve({ url: (JSON.parse(line) as { ledger: string }).ledger, child, stopped });
    });
    child.on('close', (code) => reject(new Error(`dkms up exited with ${String(code)}: ${stderr}`)));
  });
}

let cluster: EtcdCluster | undefined;
beforeAll(async () => {
  cluster = await startEtcdCluster();
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

/** The same scenario on the embedded store, and on etcd with a second node serving the same log. */
const BACKENDS = [
  { name: 'embedded SQLite', etcd: false },
  { name: 'etcd', etcd: true },
];

// Each scenario takes up to about 25 s on two busy cores; the bound leaves four times that.
describe.each(BACKENDS)('ledger end to end, through real processes: $name', { timeout: 100_000 }, ({ etcd }) => {
  it('creates a policy and a DID from the CLI, resolves them, grants and revokes, and verifies signatures around the revocation', async () => {
    const nodeHome = tempDir();
    const store = etcd ? ['--ledger-store', cluster?.url ?? ''] : [];
    const { url, child, stopped } = await up(nodeHome, ['up', '--ledger-port', '0', '--agency-port', '0', ...store]);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const alice = tempDir();
    const owned = owner(alice, { DKMS_LEDGER: url }, { session: true });
    const { env, run } = owned;

    await run(['wallet', 'create']);
    await run(['key', 'create', '--type', 'ed25519', '--name', 'laptop']);
    await run(['key', 'create', '--type', 'x25519', '--name', 'laptop-kx']);
    await run(['key', 'create', '--type', 'ed25519', '--name', 'recovery']);
    const phone = String((await run(['key', 'create', '--type', 'ed25519', '--name', 'phone']))['publicKey']);

    const policy = String((await run(['policy', 'create', '--key', 'laptop', '--kx', 'laptop-kx', '--recovery-key', 'recovery']))['subject']);
    expect(policy).toMatch(/^policy:/);
    const did = String(
      (await run(['did', 'create', '--policy', policy, '--key', 'laptop', '--service', '#agency,DIDCommMessaging,http://127.0.0.1:8421/']))['subject'],
    );
    expect(did).toMatch(/^did:dkms:/);

    const resolved = await run(['did', 'resolve', did]);
    const document = resolved['didDocument'] as {
      verificationMethod: { publicKeyMultibase: string }[];
      keyAgreement: string[];
      service: { serviceEndpoint: string }[];
    };
    expect(document.verificationMethod.map((m) => m.publicKeyMultibase)).not.toContain(phone);
    expect(document.keyAgreement).toHaveLength(1);
    expect(document.service[0]?.serviceEndpoint).toBe('http://127.0.0.1:8421/');

    await run(['policy', 'grant', '--policy', policy, '--agent', phone, '--flags', 'PROVE', '--key', 'laptop']);
    const afterGrant = await run(['did', 'resolve', did]);
    expect((afterGrant['didDocument'] as typeof document).verificationMethod.map((m) => m.publicKeyMultibase)).toContain(phone);
    // Given a key-agreement key, then other flags without --kx: the phone keeps its key.
    const phoneKx = String((await run(['key', 'create', '--type', 'x25519', '--name', 'phone-kx']))['publicKey']);
    await run(['policy', 'grant', '--policy', policy, '--agent', phone, '--kx', phoneKx, '--flags', 'PROVE', '--key', 'laptop']);
    await run(['policy', 'grant', '--policy', policy, '--agent', phone, '--flags', 'PROVE,PROVE_GRANT', '--key', 'laptop']);
    expect(((await run(['did', 'resolve', did]))['didDocument'] as typeof document).keyAgreement).toHaveLength(2);

    const file = join(alice, 'contract.txt');
    writeFileSync(file, 'signed by the phone');
    const signature = String((await run(['key', 'sign', '--name', 'phone', '--in', file]))['signature']);
    const verifyArgs = ['verify', '--did', did, '--signer', phone, '--signature', signature, '--in', file];
    expect((await dkms(verifyArgs, env)).code).toBe(0);
    const beforeRevocation = new Date().toISOString();

    await run(['policy', 'revoke', '--policy', policy, '--agent', phone, '--key', 'laptop']);
    const after = await dkms(verifyArgs, env);
    expect(after.code).toBe(ERROR_CODES.SIGNATURE_INVALID.exit);
    expect(after.stderr).toMatch(/^dkms: SIGNATURE_INVALID: REVOKED: /);
    // A signature made before the revocation still verifies as of its time.
    expect((await dkms([...verifyArgs, '--time', beforeRevocation], env)).code).toBe(0);

    // The revoked phone can no longer act for Alice.
    const refused = await owned.dkms(['policy', 'grant', '--policy', policy, '--agent', phone, '--flags', 'PROVE', '--key', 'phone']);
    expect(refused.code).toBe(ERROR_CODES.EVENT_UNAUTHORIZED.exit);

    const status = await run(['ledger', 'status']);
    expect(status).toMatchObject({ size: 6, verified: true });
    if (etcd) {
      // A second node over the same cluster serves the same log under its own key.
      const second = await up(tempDir(), ['ledger', 'serve', '--port', '0', '--store', cluster?.url ?? '']);
      const other = json(await dkms(['ledger', 'status', '--json'], { ...env, DKMS_LEDGER: second.url, DKMS_HOME: tempDir() }));
      expect(other).toMatchObject({ size: 6, root: status['root'], verified: true });
      expect(other['key']).not.toBe(status['key']);
      // A second signer on a head comes from witnesses (witness.test.ts): a quorum without witness keys is refused.
      const three = await dkms(['ledger', 'status', '--quorum', '2', '--trust', String(status['key']), '--json'], { ...env, DKMS_HOME: tempDir() });
      expect(three.code).toBe(ERROR_CODES.BAD_INPUT.exit);
      second.child.kill('SIGINT');
      expect((await second.stopped).code).toBe(0);
    }

    child.kill('SIGINT');
    const exit = await stopped;
    expect(exit.code).toBe(0);

    // With the node stopped, the store audits clean and reindexing reproduces the state.
    const storeFlag = etcd ? ['--store', cluster?.url ?? ''] : [];
    const audit = await dkms(['ledger', 'verify', ...storeFlag, '--json'], { DKMS_HOME: nodeHome });
    expect(json(audit)).toEqual({ events: 6, problems: [], ok: true });
    const reindex = await dkms(['ledger', 'reindex', ...storeFlag, '--json'], { DKMS_HOME: nodeHome });
    expect(json(reindex)).toEqual({ events: 6, subjects: 2, differences: [] });
  });
});

describe('ledger end to end, through real processes', { timeout: 60_000 }, () => {
  it('collects m-of-n signatures: one agent writes the event, another co-signs and submits it', async () => {
    const { url } = await up(tempDir());
    const laptop = owner(tempDir(), { DKMS_LEDGER: url }, { session: true });
    const phone = owner(tempDir(), { DKMS_LEDGER: url }, { session: true });
    for (const who of [laptop, phone]) await who.run(['wallet', 'create']);
    await laptop.run(['key', 'create', '--type', 'ed25519', '--name', 'laptop']);
    await laptop.run(['key', 'create', '--type', 'ed25519', '--name', 'recovery']);
    const phoneKey = String((await phone.run(['key', 'create', '--type', 'ed25519', '--name', 'phone']))['publicKey']);
    const policy = String((await laptop.run(['policy', 'create', '--key', 'laptop', '--recovery-key', 'recovery']))['subject']);
    await laptop.run(['policy', 'grant', '--policy', policy, '--agent', phoneKey, '--flags', 'ADMIN', '--key', 'laptop']);
    await laptop.run(['policy', 'rules', '--policy', policy, '--set', 'grant=2,revoke=2', '--key', 'laptop']);

    const newcomer = String((await laptop.run(['key', 'create', '--type', 'ed25519', '--name', 'tablet']))['publicKey']);
    const alone = await laptop.dkms(['policy', 'grant', '--policy', policy, '--agent', newcomer, '--flags', 'PROVE', '--key', 'laptop']);
    expect(alone.code).toBe(ERROR_CODES.EVENT_THRESHOLD.exit);

    const file = join(laptop.home, 'grant.json');
    const written = await laptop.run(['policy', 'grant', '--policy', policy, '--agent', newcomer, '--flags', 'PROVE', '--key', 'laptop', '--out', file]);
    expect(written).toMatchObject({ out: file, type: 'policy.grant', signatures: 1 });
    const accepted = await phone.run(['ledger', 'submit', '--in', file, '--key', 'phone']);
    expect(accepted).toMatchObject({ subject: policy, seq: 3 });
    const shown = await phone.run(['policy', 'show', '--policy', policy]);
    expect((shown['policy'] as { agents: { key: string }[] }).agents.map((a) => a.key)).toContain(newcomer);
  });

  it('reports an unreachable ledger, and a second node on the same data directory', async () => {
    const home = tempDir();
    const down = await dkms(['ledger', 'status'], { DKMS_HOME: home, DKMS_LEDGER: 'http://127.0.0.1:9' });
    expect(down.code).toBe(ERROR_CODES.LEDGER_UNREACHABLE.exit);

    const { url } = await up(home);
    const port = new URL(url).port;
    const second = await dkms(['ledger', 'serve', '--port', '0'], { DKMS_HOME: home });
    expect(second.code).toBe(ERROR_CODES.LEDGER_BUSY.exit);
    // A busy port is refused before anything is made in the data directory, naming the option to change.
    const fresh = join(tempDir(), 'home');
    const samePort = await dkms(['ledger', 'serve', '--port', port], { DKMS_HOME: fresh });
    expect(samePort.code).toBe(ERROR_CODES.ADDRESS_IN_USE.exit);
    expect(samePort.stderr).toBe(`dkms: ADDRESS_IN_USE: 127.0.0.1:${port} is already in use: choose another --port\n`);
    for (const [args, flag] of [
      [['up', '--ledger-port', port, '--agency-port', '0'], '--ledger-port'],
      [['up', '--ledger-port', '0', '--agency-port', port], '--agency-port'],
      [['agency', 'serve', '--port', port], '--port'],
    ] as const) {
      const busy = await dkms([...args, '--json'], { DKMS_HOME: fresh, DKMS_LEDGER: url });
      expect(busy.code, busy.stderr).toBe(ERROR_CODES.ADDRESS_IN_USE.exit);
      expect(JSON.parse(busy.stdout)).toEqual({ error: { code: 'ADDRESS_IN_USE', message: `127.0.0.1:${port} is already in use: choose another ${flag}` } });
    }
    expect(existsSync(fresh)).toBe(false);
  });
});
