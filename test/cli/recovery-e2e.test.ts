/**
 * Recovery end to end, every step a real `dkms` process on loopback against `dkms up`:
 * 1. Alice (laptop, phone, cloud agent) sets up 3-of-5 social recovery and a paper wallet, loses
 *    every device and recovers on a new one through three trustees: her old agents are out, her
 *    public DID resolves to the new agent's keys, and Bob still talks with her.
 * 2. Another owner recovers from the 24 words alone (after the typos a person makes), and then
 *    again from the paper's QR code.
 * 3. An owner changes trustees and the process is killed between prepare and commit: the old
 *    trustees still recover her.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { background, killBackground, owner, type Json } from '../helpers/cli.js';
import { secretFile, suiteDirs, tempDir } from '../helpers/tmp.js';

type Owner = ReturnType<typeof owner>;

/**
 * One `dkms up` on free ports for the file (each test has owners of its own); the environment
 * every owner uses to reach it. Every other background command ends within its test.
 */
const lasting = suiteDirs();
let shared: { agency: string; env: Record<string, string> };
beforeAll(async () => {
  const server = background(['up', '--ledger-port', '0', '--agency-port', '0', '--json'], { DKMS_HOME: lasting() });
  const up = JSON.parse(await server.nextLine()) as { ledger: string; agency: string };
  shared = { agency: up.agency, env: { DKMS_LEDGER: up.ledger } };
});
afterAll(killBackground);
const services = () => shared;

async function newOwner(label: string, agency: string, env: Record<string, string>, extra: string[] = []): Promise<Owner & { init: Json }> {
  const o = owner(tempDir(), env);
  const init = await o.run(['agent', 'init', '--label', label, '--agency', agency, '--yes', ...extra]);
  return { ...o, init };
}

/** New owners, one per label, each on a device of its own: made at once, as people would. */
const newOwners = (labels: readonly string[], agency: string, env: Record<string, string>): Promise<{ o: Owner; name: string }[]> =>
  Promise.all(labels.map(async (name) => ({ o: await newOwner(name, agency, env), name })));

/**
 * `a` invites each of `others` to connect (one command at a time: one wallet), they accept at
 * once on their own devices, and `a` takes their answers in one inbox run. `a` calls each by its
 * name, and each calls `a` `nameOfA`.
 */
async function connectAll(a: Owner, others: readonly { o: Owner; name: string }[], nameOfA: string): Promise<void> {
  const invitations: string[] = [];
  for (const other of others) invitations.push(String((await a.run(['connection', 'invite', '--label', other.name]))['invitation']));
  await Promise.all(others.map((other, i) => other.o.run(['connection', 'accept', String(invitations[i]), '--label', nameOfA])));
  const inbox = await a.run(['message', 'inbox']);
  expect(inbox['refused']).toEqual([]);
}

/** Every JSON line a `--json` command printed. */
function lines(stdout: string): Json[] {
  return stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Json);
}

/** Makes each of `people` a trustee of `alice` (offer, approve, answer received). */
async function makeTrustees(alice: Owner, people: readonly { o: Owner; name: string }[]): Promise<void> {
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
async function setupWithTrustees(alice: Owner, args: string[], trustees: readonly Owner[], env: Record<string, string> = {}): Promise<Json[]> {
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
async function recoverSocially(
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

const agentKeys = async (o: Owner, policy: string) =>
  ((await o.run(['policy', 'show', '--policy', policy]))['policy'] as { agents: { key: string }[] }).agents.map((a) => a.key).sort();

describe('recovery end to end, through real processes', () => {
  it('3-of-5 trustees and a paper wallet; every device lost; recovered through three trustees', { timeout: 240_000 }, async () => {
    const { agency, env } = services();
    const laptop = await newOwner('alice', agency, env, ['--did']);
    const policy = String(laptop.init['policy']);
    const did = String(laptop.init['did']);
    const cloudKey = String((laptop.init['cloud'] as Json)['key']);

    // Her phone, paired.
    const phone = owner(tempDir(), env);
    const pairing = laptop.background(['agent', 'pair', '--label', 'phone', '--flags', 'PROVE', '--yes', '--json']);
    const invitation = JSON.parse(await pairing.nextLine()) as { invitation: string; passcode: string };
    await phone.run(['agent', 'accept', invitation.invitation, '--passcode-file', secretFile(invitation.passcode), '--label', 'phone', '--wait', '30']);
    expect((await pairing.done).code).toBe(0);

    // Five trustees and Bob, each connected with Alice.
    const [people, bob] = await Promise.all([
      newOwners(['trustee1', 'trustee2', 'trustee3', 'trustee4', 'trustee5'], agency, env),
      newOwner('bob', agency, env),
    ]);
    await connectAll(laptop, [...people, { o: bob, name: 'bob' }], 'alice');
    await phone.run(['message', 'inbox']);
    await laptop.run(['message', 'inbox']);
    await makeTrustees(laptop, people);

    // Recovery setup: paper wallet (words, PNG, printable page) and 3-of-5 shares.
    const paperDir = join(tempDir(), 'paper');
    const printed = await setupWithTrustees(
      laptop,
      ['--offline', '--social', '--threshold', '3', '--paper-dir', paperDir],
      people.map((p) => p.o),
    );
    const paper = printed.find((l) => l['paper'] !== undefined)?.['paper'] as { mnemonic: string; files: string[] };
    expect(paper.mnemonic.split(' ')).toHaveLength(24);
    expect(paper.files).toHaveLength(2);
    expect(readFileSync(join(paperDir, 'dkms-recovery-paper.html'), 'utf8')).toContain(paper.mnemonic.split(' ')[23]);
    expect(printed.at(-1)).toMatchObject({ state: 'committed', setup: { offline: true, social: { threshold: 3 } } });
    const status = await laptop.run(['recovery', 'status']);
    expect(status).toMatchObject({ setUp: true, offline: true });
    for (const holding of await Promise.all(people.map((p) => p.o.run(['trustee', 'list']))))
      expect((holding['holding'] as Json[])[0]).toMatchObject({ owner: 'alice', shares: 'active' });

    // A message from Bob before the loss; the wallet changed, so a new backup version is stored.
    await bob.run(['message', 'send', 'alice', 'see you']);
    await laptop.run(['message', 'inbox']);
    const backedUp = (await laptop.run(['recovery', 'status']))['lastBackup'] as { version: number };
    expect(backedUp.version).toBeGreaterThan(1);

    // Every device is lost. A new phone recovers through trustees 1, 2 and 3.
    const { device, outcome } = await recoverSocially(
      agency,
      env,
      people.slice(0, 3).map((p) => p.o),
    );
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy, label: 'alice', did } });
    const newKey = String((outcome['profile'] as Json)['key']);
    expect(await agentKeys(device, policy)).toEqual([newKey, cloudKey].sort());

    // The old laptop and phone are out: their changes are refused.
    for (const old of [laptop, phone]) {
      const refused = await old.fails(['policy', 'grant', '--policy', policy, '--agent', newKey, '--flags', 'PROVE', '--key', 'agent-sign']);
      expect(refused.code).toBe('EVENT_UNAUTHORIZED');
    }
    // Her public DID now lists the new agent's keys only.
    const document = (await device.run(['did', 'resolve', did]))['didDocument'] as { verificationMethod: { publicKeyMultibase: string }[] };
    const methods = document.verificationMethod.map((m) => m.publicKeyMultibase);
    expect(methods).toContain(newKey);
    expect(methods).not.toContain(String(laptop.init['key']));

    // Bob accepts the rotation and the conversation goes on, both ways.
    const bobInbox = await bob.run(['message', 'inbox']);
    expect(bobInbox['refused']).toEqual([]);
    await bob.run(['message', 'send', 'alice', 'welcome', 'back']);
    expect(((await device.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['welcome back']);
    await device.run(['message', 'send', 'bob', 'thanks']);
    expect(((await bob.run(['message', 'inbox']))['messages'] as Json[]).map((m) => m['content'])).toEqual(['thanks']);
    // The message received before the loss came back with the backup.
    expect(((await device.run(['message', 'inbox', '--all']))['messages'] as Json[]).map((m) => m['content'])).toContain('see you');
  });

  it('recovers from the 24 words alone, then again from the paper QR code', { timeout: 120_000 }, async () => {
    const { agency, env } = services();
    const first = await newOwner('carol', agency, env);
    const policy = String(first.init['policy']);
    const paperDir = join(tempDir(), 'paper');
    const setup = await first.dkms(['recovery', 'setup', '--offline', '--paper-dir', paperDir, '--json']);
    expect(setup.code, setup.stderr).toBe(0);
    const printed = lines(setup.stdout);
    const words = String((printed[0]?.['paper'] as Json)['mnemonic']).split(' ');
    expect(printed.at(-1)).toMatchObject({ state: 'committed' });
    // A second setup needs the current secret, and is refused before anything changes.
    expect((await first.fails(['recovery', 'setup', '--offline'])).code).toBe('BAD_INPUT');
    expect((await first.fails(['recovery', 'setup'])).code).toBe('BAD_INPUT');
    expect((await first.run(['recovery', 'status']))['prepared']).toBeNull();

    // A new device; the owner types the words with mistakes first.
    const second = owner(tempDir(), env);
    const restore = (phrase: string) => second.dkms(['recovery', 'restore', '--mnemonic', '--agency', agency, '--json'], { DKMS_RECOVERY_PHRASE: phrase });
    const typo = [...words];
    typo[6] = 'zzzz';
    const unknown = await restore(typo.join(' '));
    expect(JSON.parse(unknown.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'MNEMONIC_UNKNOWN_WORD' } });
    expect(unknown.stderr).toContain('word 7');
    const swapped = [...words];
    [swapped[0], swapped[1]] = [swapped[1] as string, swapped[0] as string];
    if (swapped[0] !== swapped[1]) {
      const checksum = await restore(swapped.join(' '));
      expect(JSON.parse(checksum.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'MNEMONIC_CHECKSUM' } });
    }
    // Words on the command line are refused (other users could read them in the process list).
    const onCommandLine = await second.dkms(['recovery', 'restore', '--mnemonic', ...words, '--json']);
    expect(JSON.parse(onCommandLine.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ error: { code: 'BAD_INPUT' } });
    expect(onCommandLine.stderr).not.toContain(words.slice(0, 3).join(' '));
    const recovered = await restore(words.join('  ').toUpperCase());
    expect(recovered.code, recovered.stderr).toBe(0);
    const outcome = lines(recovered.stdout).at(-1) as Json;
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy, label: 'carol' } });
    const secondKey = String((outcome['profile'] as Json)['key']);
    expect(await agentKeys(second, policy)).toContain(secondKey);
    expect(await agentKeys(second, policy)).not.toContain(String(first.init['key']));

    // The same paper works again (the next recovery key was committed): a third device, from the QR.
    const third = owner(tempDir(), env);
    const fromQr = await third.run(['recovery', 'restore', '--qr', join(paperDir, 'dkms-recovery-paper.png')]);
    expect(fromQr).toMatchObject({ state: 'recovered', profile: { policy } });
    const keys = await agentKeys(third, policy);
    expect(keys).toContain(String((fromQr['profile'] as Json)['key']));
    expect(keys).not.toContain(secondKey);
  });

  it('a trustee change killed between prepare and commit leaves the old trustees working', { timeout: 180_000 }, async () => {
    const { agency, env } = services();
    const alice = await newOwner('alice', agency, env);
    const policy = String(alice.init['policy']);
    const people = await newOwners(['trustee1', 'trustee2', 'trustee3', 'trustee4'], agency, env);
    await connectAll(alice, people, 'alice');
    await makeTrustees(alice, people.slice(0, 3));
    const printed = await setupWithTrustees(
      alice,
      ['--offline', '--social', '--threshold', '2', '--trustee', 'trustee1', 'trustee2', 'trustee3'],
      people.slice(0, 3).map((p) => p.o),
    );
    const phrase = String((printed[0]?.['paper'] as Json)['mnemonic']);
    await makeTrustees(alice, people.slice(3));

    // The change: trustees 2, 3 and 4, 2 of 3, with a new secret. Killed once the shares are out.
    const change = alice.background(
      ['recovery', 'setup', '--social', '--trustee', 'trustee2', 'trustee3', 'trustee4', '--threshold', '2', '--mnemonic', '--wait', '50', '--json'],
      { DKMS_RECOVERY_PHRASE: phrase },
    );
    expect(JSON.parse(await change.nextLine())).toMatchObject({ state: 'prepared' });
    await people[1]?.o.run(['message', 'inbox']);
    change.kill();
    await change.done;
    expect(((await people[1]?.o.run(['trustee', 'list']))?.['holding'] as Json[])[0]).toMatchObject({ shares: 'active,prepared' });
    expect((await alice.run(['recovery', 'status']))['prepared']).not.toBeNull();

    // Alice loses her device now: trustees 1 and 2 (of the old set) recover her.
    const { device, outcome } = await recoverSocially(agency, env, [people[0]?.o as Owner, people[1]?.o as Owner]);
    expect(outcome).toMatchObject({ state: 'recovered', profile: { policy } });
    expect(await agentKeys(device, policy)).toContain(String((outcome['profile'] as Json)['key']));
  });
});
