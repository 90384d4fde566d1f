/**
 * The steps of the recovery end-to-end tests (test/cli/recovery-*.test.ts and
 * trustee-change-e2e.test.ts), every one a real `dkms` process of an owner, against one `dkms up`
 * per test file.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { background, killBackground, owner, type Json } from './cli.js';
import { secretFile, suiteDirs, tempDir } from './tmp.js';

export type Owner = ReturnType<typeof owner>;

/**
 * One `dkms up` on free ports for the calling test file (each test has owners of its own): call
 * where the file's tests are declared; the function it returns gives the agency and the
 * environment every owner uses to reach it. Every other background command ends within its test.
 */
export function upForFile(): () => { agency: string; ledger: string; key: string; env: Record<string, string> } {
  const lasting = suiteDirs();
  let shared: { agency: string; ledger: string; key: string; env: Record<string, string> } | undefined;
  beforeAll(async () => {
    const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: lasting() });
    const up = JSON.parse(await server.nextLine()) as { ledger: string; agency: string; key: string };
    shared = { agency: up.agency, ledger: up.ledger, key: up.key, env: { DKMS_LEDGER: up.ledger } };
  });
  afterAll(killBackground);
  return () => {
    if (shared === undefined) throw new Error('`dkms up` has not started (upForFile runs in beforeAll)');
    return shared;
  };
}

export async function newOwner(
  label: string,
  agency: string,
  env: Record<string, string>,
  extra: string[] = [],
  options: { session?: boolean } = {},
): Promise<Owner & { init: Json }> {
  const o = owner(tempDir(), env, options);
  const init = await o.run(['agent', 'init', '--label', label, '--agency', agency, '--yes', ...extra]);
  return { ...o, init };
}

/** New owners, one per label, each on a device of its own: made at once, as people would. */
export const newOwners = (
  labels: readonly string[],
  agency: string,
  env: Record<string, string>,
  options: { session?: boolean } = {},
): Promise<{ o: Owner; name: string }[]> => Promise.all(labels.map(async (name) => ({ o: await newOwner(name, agency, env, [], options), name })));

/**
 * `a` invites each of `others` to connect (one command at a time: one wallet), they accept at
 * once on their own devices, and `a` takes their answers in one inbox run. `a` calls each by its
 * name, and each calls `a` `nameOfA`.
 */
export async function connectAll(a: Owner, others: readonly { o: Owner; name: string }[], nameOfA: string): Promise<void> {
  const invitations: string[] = [];
  for (const other of others) invitations.push(String((await a.run(['connection', 'invite', '--label', other.name]))['invitation']));
  await Promise.all(others.map((other, i) => other.o.run(['connection', 'accept', String(invitations[i]), '--label', nameOfA])));
  const inbox = await a.run(['message', 'inbox']);
  expect(inbox['refused']).toEqual([]);
}

/** Every JSON line a `--json` command printed. */
export function lines(stdout: string): Json[] {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Json);
}

/** Makes each of `people` a trustee of `alice` (offer, approve, answer received). */
export async function makeTrustees(alice: Owner, people: readonly { o: Owner; name: string }[]): Promise<void> {
  await alice.run(['trustee', 'invite', ...people.map((p) => p.name)]);
  // Each trustee answers on a device of its own: all at once, as people would.
  await Promise.all(
    people.map(async (p) => {
      const offers = (await p.o.run(['trustee', 'requests']))['offers'] as { id: string }[];
      expect(offers).toHaveLength(1);
      await p.o.run(['trustee', 'approve', String(offers[0]?.id)]);
    }),
  );
  const listed = (await alice.run(['trustee', 'list']))['trustees'] as { label: string; status: string }[];
  expect(listed.filter((t) => people.some((p) => p.name === t.label)).map((t) => t.status)).toEqual(people.map(() => 'accepted'));
}

/**
 * Runs `recovery setup` in the background until it has sent the shares, lets the trustees pick
 * theirs up, and returns what it printed once it commits.
 */
export async function setupWithTrustees(alice: Owner, args: string[], trustees: readonly Owner[], env: Record<string, string> = {}): Promise<Json[]> {
  const setup = alice.background(['recovery', 'setup', ...args, '--wait', '50', '--json'], env);
  for (;;) {
    const line = JSON.parse(await setup.nextLine()) as Json;
    if (line['state'] === 'prepared') break;
  }
  await Promise.all(trustees.map((t) => t.run(['message', 'inbox'])));
  const done = await setup.done;
  expect(done.code, done.stderr).toBe(0);
  return lines(done.stdout);
}

/** A new device asks `helpers` for their shares and recovers. */
export async function recoverSocially(
  agency: string,
  env: Record<string, string>,
  helpers: readonly Owner[],
  label = 'alice',
): Promise<{ device: Owner; outcome: Json }> {
  const device = owner(tempDir(), env);
  const request = await device.run(['recovery', 'request', '--agency', agency, '--label', `${label} (new phone)`]);
  expect(String(request['request'])).toMatch(/^dkms-recovery-request:/);
  expect(String(request['challenge'])).toMatch(/^([a-z]+ ){5}[a-z]+$/);
  await Promise.all(
    helpers.map(async (t) => {
      const listed = (await t.run(['trustee', 'requests', '--add', String(request['request'])]))['requests'] as { id: string; status: string }[];
      expect(listed.find((r) => r.id === request['id'])?.status).toBe('waiting');
      await t.run(['trustee', 'approve', String(request['id']), '--owner', label, '--challenge-file', secretFile(String(request['challenge']))]);
    }),
  );
  // The owner confirms whose identity the shares rebuild (a script says so with --yes).
  expect((await device.fails(['recovery', 'restore', '--social'])).code).toBe('BAD_INPUT');
  const outcome = await device.run(['recovery', 'restore', '--social', '--wait', '5', '--yes']);
  return { device, outcome };
}

export const agentKeys = async (o: Owner, policy: string) =>
  ((await o.run(['policy', 'show', '--policy', policy]))['policy'] as { agents: { key: string }[] }).agents.map((a) => a.key).sort();
