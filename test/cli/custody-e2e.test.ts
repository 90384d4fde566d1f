/**
 * Shared control as its users meet it (docs/custodians.md), through the real `dkms` processes:
 * custodians make cards in their own data directories; the operator puts the wallet under 3 of 5
 * (unseal mode) or a master key under 2 of 3 (approval mode). Every threshold boundary, a
 * tampered approval, one for another request, one from a removed custodian, a request used
 * twice, an older wallet copy, a master key past its hourly limit, an audit log edited or
 * unwritable: each gives its own code and changes nothing. The audit log records each use and
 * each refusal.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Wallet, passphraseSecret, rawSecret, type WalletSecret } from '../../src/wallet/index.js';
import { DKMS_BIN, endSessions, expectExit, expectOk, json, runNode } from '../helpers/cli.js';
import { startLedger } from '../helpers/lying.js';
import { tempDir } from '../helpers/tmp.js';

const PASSPHRASE = 'the custody test passphrase';
const sessions: number[] = [];
afterEach(() => endSessions(sessions, 'SIGKILL'));

/** An operator's data directory and `n` custodians' (their wallets opened by raw key files: no Argon2 to wait for), each with a card. */
async function ceremony(names: readonly string[]) {
  const dir = tempDir('dkms-custody-');
  const run = (args: readonly string[], env: Record<string, string> = {}) => runNode([DKMS_BIN, ...args], env, undefined, dir);
  const operator = (args: readonly string[]) => run(['--home', 'op', ...args], { DKMS_PASSPHRASE: PASSPHRASE });
  writeFileSync(join(dir, 'custodian.key'), Buffer.alloc(32, 7));
  const custodian = (name: string, args: readonly string[]) => run(['--home', name, '--key-file', 'custodian.key', ...args]);
  // The wallets are made in process (`wallet create` is tested elsewhere): a process fewer each.
  const made = async (home: string, secret: WalletSecret) => {
    mkdirSync(join(dir, home), { mode: 0o700 });
    (await Wallet.create(join(dir, home, 'wallet.db'), secret, { kdfTier: 'interactive' })).close();
  };
  await made('op', passphraseSecret(PASSPHRASE));
  await Promise.all(
    names.map(async (name) => {
      await made(name, rawSecret(new Uint8Array(32).fill(7)));
      expectOk(await custodian(name, ['custodian', 'key', '--name', name, '--out', `${name}.card`]));
    }),
  );
  /** Has each named custodian approve the request in `request`; the approval files' names. */
  const approve = async (request: string, who: readonly string[], tag = request) =>
    Promise.all(
      who.map(async (name) => {
        const out = `${name}-${tag}.approval`;
        expectOk(await custodian(name, ['custodian', 'approve', '--request', request, '--out', out, '--yes']));
        return out;
      }),
    );
  const walletBytes = () => readFileSync(join(dir, 'op', 'wallet.db'));
  return { dir, run, operator, custodian, approve, walletBytes, cards: names.map((n) => `${n}.card`) };
}

describe('custodians', () => {
  it('unseal mode, 3 of 5: m−1 approvals refused, m unseal for one session, tampered or foreign approvals refused, a request used once, rotation that shuts out a removed custodian, an older wallet copy refused by a custodian', async () => {
    const c = await ceremony(['c1', 'c2', 'c3', 'c4', 'c5']);
    expectOk(await c.operator(['key', 'create', '--type', 'ed25519', '--name', 'k1']));
    const init = json<{ threshold: number; custodians: string[]; mode: string }>(
      expectOk(await c.operator(['--json', 'custodian', 'init', '--threshold', '3', '--mode', 'unseal', '--card', ...c.cards])),
    );
    expect(init).toMatchObject({ threshold: 3, mode: 'unseal', custodians: ['c1', 'c2', 'c3', 'c4', 'c5'] });
    const info = json<{ kdf?: unknown; protection: { passphrase: boolean; custody: { mode: string } } }>(
      expectOk(await c.operator(['--json', 'wallet', 'info'])),
    );
    expect(info.protection).toMatchObject({ passphrase: false, custody: { mode: 'unseal' } });

    // Sealed: no command opens it, not even with the old passphrase.
    const sealed = c.walletBytes();
    const old = join(c.dir, 'old-wallet.db');
    copyFileSync(join(c.dir, 'op', 'wallet.db'), old);
    expectExit(await c.operator(['key', 'list']), 'CUSTODY_REQUIRED');

    expectOk(await c.operator(['custodian', 'request', '--unseal', '--out', 'req1.json']));
    const [a1, a2, a3] = await c.approve('req1.json', ['c1', 'c2', 'c3']);
    const two = await c.operator(['custodian', 'unseal', '--approval', a1 as string, a2 as string]);
    expectExit(two, 'SHARES_INSUFFICIENT');
    expect(two.stderr).toContain('2 of 3');

    // c3's approval with its sealed share altered: refused as tampered, naming c3.
    const approval = JSON.parse(readFileSync(join(c.dir, a3 as string), 'utf8')) as { share: { ciphertext: string } };
    const flipped = approval.share.ciphertext.startsWith('A') ? `B${approval.share.ciphertext.slice(1)}` : `A${approval.share.ciphertext.slice(1)}`;
    writeFileSync(join(c.dir, 'tampered.approval'), JSON.stringify({ ...approval, share: { ...approval.share, ciphertext: flipped } }));
    const tampered = await c.operator(['custodian', 'unseal', '--approval', a1 as string, a2 as string, 'tampered.approval']);
    expectExit(tampered, 'SHARE_BAD_SIGNATURE');
    expect(tampered.stderr).toContain("'c3'");
    // c4's approval of another request does not count for this one.
    expectOk(await c.operator(['custodian', 'request', '--unseal', '--out', 'req2.json']));
    const [other] = await c.approve('req2.json', ['c4']);
    expectExit(await c.operator(['custodian', 'unseal', '--approval', a1 as string, a2 as string, other as string]), 'SHARE_FOREIGN');
    expect(c.walletBytes()).toEqual(sealed);

    const unsealed = json<{ pid: number }>(
      expectOk(await c.operator(['--json', 'custodian', 'unseal', '--approval', a1 as string, a2 as string, a3 as string])),
    );
    sessions.push(unsealed.pid);
    expect(json<{ keys: { name: string }[] }>(expectOk(await c.operator(['--json', 'key', 'list']))).keys.map((k) => k.name)).toEqual(['k1']);
    expectOk(await c.operator(['key', 'create', '--type', 'ed25519', '--name', 'made-later']));
    expectOk(await c.operator(['custodian', 'seal']));
    expectExit(await c.operator(['key', 'list']), 'CUSTODY_REQUIRED');
    // The same approvals again: their request was used up.
    expectExit(await c.operator(['custodian', 'unseal', '--approval', a1 as string, a2 as string, a3 as string]), 'APPROVAL_NOT_FOUND');

    // Rotation: c5 out, threshold 2. It needs 3 of the current custodians.
    expectOk(await c.operator(['custodian', 'request', '--rotate', '--remove', 'c5', '--threshold', '2', '--out', 'rot.json']));
    const rot = await c.approve('rot.json', ['c2', 'c4', 'c5']);
    expectExit(await c.operator(['custodian', 'rotate', '--approval', rot[0] as string, rot[1] as string]), 'SHARES_INSUFFICIENT');
    const rotated = json<{ threshold: number; custodians: string[] }>(expectOk(await c.operator(['--json', 'custodian', 'rotate', '--approval', ...rot])));
    expect(rotated).toMatchObject({ threshold: 2, custodians: ['c1', 'c2', 'c3', 'c4'] });

    expectOk(await c.operator(['custodian', 'request', '--unseal', '--out', 'req3.json']));
    // The removed custodian has no share in the new set; its approval of the earlier request does not count.
    expectExit(await c.custodian('c5', ['custodian', 'approve', '--request', 'req3.json', '--out', 'c5-req3.approval', '--yes']), 'SHARE_FOREIGN');
    const [b1] = await c.approve('req3.json', ['c1']);
    expectExit(await c.operator(['custodian', 'unseal', '--approval', b1 as string, other as string]), 'SHARE_FOREIGN');
    const [b2] = await c.approve('req3.json', ['c2']);
    sessions.push(json<{ pid: number }>(expectOk(await c.operator(['--json', 'custodian', 'unseal', '--approval', b1 as string, b2 as string]))).pid);
    expectOk(await c.operator(['custodian', 'seal']));

    // Every use and refusal is in the audit log, which checks; an edited record does not.
    const verified = json<{ valid: boolean; records: number }>(expectOk(await c.operator(['--json', 'audit', 'verify'])));
    expect(verified.valid).toBe(true);
    const shown = json<{ records: { op: string; outcome: string; detail: Record<string, unknown> }[] }>(
      expectOk(await c.operator(['--json', 'audit', 'show'])),
    );
    const outcomes = shown.records.filter((r) => r.outcome !== 'started').map((r) => `${r.op}:${r.outcome}:${String(r.detail['code'] ?? '')}`);
    expect(outcomes).toEqual([
      'audit-start:done:',
      'custody-init:done:',
      'unseal:refused:SHARES_INSUFFICIENT',
      'unseal:refused:SHARE_BAD_SIGNATURE',
      'unseal:refused:SHARE_FOREIGN',
      'unseal:done:',
      'seal:done:',
      'custody-rotate:refused:SHARES_INSUFFICIENT',
      'custody-rotate:done:',
      'unseal:refused:SHARE_FOREIGN',
      'unseal:done:',
      'seal:done:',
    ]);
    const log = join(c.dir, 'op', 'audit.log');
    const lines = readFileSync(log, 'utf8').split('\n');
    const edited = lines.map((line) => line.replace('"outcome":"refused"', '"outcome":"done"'));
    writeFileSync(log, edited.join('\n'));
    const bad = await c.operator(['audit', 'verify']);
    expectExit(bad, 'AUDIT_TAMPERED');
    expect(bad.stderr).toMatch(/line \d+/);
    writeFileSync(log, lines.join('\n'));

    // An audit log that cannot be written: the unseal does not run.
    expectOk(await c.operator(['custodian', 'request', '--unseal', '--out', 'req4.json']));
    const d = await c.approve('req4.json', ['c1', 'c3']);
    rmSync(log);
    mkdirSync(log);
    const unwritable = await c.operator(['custodian', 'unseal', '--approval', ...d]);
    expectExit(unwritable, 'AUDIT_UNAVAILABLE');
    expectExit(await c.operator(['key', 'list']), 'CUSTODY_REQUIRED');

    // The copy from before 'made-later' put back: its generation is older than c1 approved since.
    copyFileSync(old, join(c.dir, 'op', 'wallet.db'));
    expectOk(await c.operator(['custodian', 'request', '--unseal', '--out', 'old.json']));
    expectExit(await c.custodian('c1', ['custodian', 'approve', '--request', 'old.json', '--out', 'c1-old.approval', '--yes']), 'WALLET_ROLLED_BACK');
  });

  it('approval mode, 2 of 3: a master key signs once per approved request, only what was approved, within its hourly limit', async () => {
    const c = await ceremony(['c1', 'c2', 'c3']);
    const created = json<{ publicKey: string }>(expectOk(await c.operator(['--json', 'key', 'create', '--type', 'ed25519', '--name', 'master'])));
    expectOk(await c.operator(['key', 'create', '--type', 'ed25519', '--name', 'daily']));
    expectOk(await c.operator(['key', 'create', '--type', 'ed25519', '--name', 'recovery']));
    expectOk(await c.operator(['custodian', 'init', '--threshold', '2', '--mode', 'approval', '--key', 'master', '--per-hour', '2', '--card', ...c.cards]));
    // The passphrase opens the everyday keys: one unlock serves the operator's commands that follow.
    sessions.push(json<{ pid: number }>(expectOk(await c.operator(['--json', 'unlock']))).pid);
    const keys = json<{ keys: { name: string; location: string }[] }>(expectOk(await c.operator(['--json', 'key', 'list']))).keys;
    expect(keys.map((k) => `${k.name}:${k.location}`)).toEqual(['master:custody', 'daily:wallet', 'recovery:wallet']);

    writeFileSync(join(c.dir, 'doc.txt'), 'the document the custodians approved');
    writeFileSync(join(c.dir, 'other.txt'), 'another document');
    // The everyday key signs with the passphrase; the master key not without approvals.
    expectOk(await c.operator(['key', 'sign', '--name', 'daily', '--in', 'doc.txt']));
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt']), 'CUSTODY_REQUIRED');
    expectExit(await c.operator(['custodian', 'request', '--unseal']), 'BAD_INPUT');

    expectOk(await c.operator(['custodian', 'request', '--sign', 'doc.txt', '--key', 'master', '--out', 'sign1.json']));
    const [s1, s2] = await c.approve('sign1.json', ['c1', 'c3']);
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', s1 as string]), 'SHARES_INSUFFICIENT');
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'other.txt', '--approval', s1 as string, s2 as string]), 'CUSTODY_REQUIRED');
    const signed = json<{ signature: string }>(
      expectOk(await c.operator(['--json', 'key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', s1 as string, s2 as string])),
    );
    expectOk(await c.run(['key', 'verify', '--public-key', created.publicKey, '--signature', signed.signature, '--in', 'doc.txt']));
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', s1 as string, s2 as string]), 'APPROVAL_NOT_FOUND');

    // An export, too, only with their approvals of exactly it.
    writeFileSync(join(c.dir, 'export-pass'), 'an export passphrase\n');
    const exporting = ['wallet', 'export', '--out', 'w.export', '--export-passphrase-file', 'export-pass', '--kdf-tier', 'interactive'];
    expectExit(await c.operator(exporting), 'CUSTODY_REQUIRED');
    expectOk(await c.operator(['custodian', 'request', '--export', '--out', 'exp.json']));
    expectOk(await c.operator([...exporting, '--approval', ...(await c.approve('exp.json', ['c2', 'c3']))]));

    // A policy whose only agent is the master key: the event is written unsigned, the custodians
    // approve the master key's signature of exactly it, and the ledger accepts it.
    const ledger = await startLedger(tempDir());
    const trust = ['--ledger', ledger.url, '--trust', ledger.signer.multikey];
    const creating = ['policy', 'create', '--key', 'master', '--recovery-key', 'recovery'];
    expectExit(await c.operator([...creating, ...trust]), 'CUSTODY_REQUIRED');
    const draft = json<{ signatures: number }>(expectOk(await c.operator(['--json', ...creating, '--out', 'create.json', ...trust])));
    expect(draft.signatures).toBe(0);
    expectOk(await c.operator(['custodian', 'request', '--event', 'create.json', '--key', 'master', '--out', 'ev.json']));
    const ev = await c.approve('ev.json', ['c1', 'c2']);
    // The ledger out of reach: the approvals are not used up, and sign again once it is back.
    const unreachable = ['--ledger', 'http://127.0.0.1:9', '--trust', ledger.signer.multikey];
    expectExit(await c.operator(['ledger', 'submit', '--in', 'create.json', '--key', 'master', '--approval', ...ev, ...unreachable]), 'LEDGER_UNREACHABLE');
    const created2 = json<{ subject: string }>(
      expectOk(await c.operator(['--json', 'ledger', 'submit', '--in', 'create.json', '--key', 'master', '--approval', ...ev, ...trust])),
    );
    const shown = json<{ policy: { agents: { key: string }[] } }>(
      expectOk(await c.operator(['--json', 'policy', 'show', '--policy', created2.subject, ...trust])),
    );
    expect(shown.policy.agents.map((a) => a.key)).toEqual([created.publicKey]);

    // A third use within the hour is past the set's limit of two: refused and recorded.
    expectOk(await c.operator(['custodian', 'request', '--sign', 'doc.txt', '--key', 'master', '--out', 'sign2.json']));
    const again = await c.approve('sign2.json', ['c2', 'c3']);
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', ...again]), 'RATE_LIMITED');
    const records = json<{ records: { op: string; outcome: string; detail: Record<string, unknown> }[] }>(
      expectOk(await c.operator(['--json', 'audit', 'show'])),
    ).records;
    expect(records.filter((r) => r.op === 'sign' && r.outcome !== 'started').map((r) => `${r.outcome}:${String(r.detail['code'] ?? '')}`)).toEqual([
      'refused:CUSTODY_REQUIRED',
      'refused:SHARES_INSUFFICIENT',
      'refused:CUSTODY_REQUIRED',
      'done:',
      'refused:APPROVAL_NOT_FOUND',
      'refused:CUSTODY_REQUIRED',
      'refused:LEDGER_UNREACHABLE',
      'done:',
      'refused:RATE_LIMITED',
    ]);

    // The refused request still waits; a master key is not deleted on one person's word; a
    // rotation the set would refuse is refused before anyone is asked; a missing file is said so.
    const status = json<{ pending: { purpose: string }[] }>(expectOk(await c.operator(['--json', 'custodian', 'status'])));
    expect(status.pending.map((p) => p.purpose)).toEqual(['sign']);
    expectExit(await c.operator(['key', 'delete', '--name', 'master', '--yes']), 'CUSTODY_REQUIRED');
    expectExit(await c.operator(['custodian', 'request', '--rotate', '--remove', 'nobody']), 'BAD_INPUT');
    expectExit(await c.operator(['custodian', 'request', '--rotate', '--threshold', '4']), 'BAD_INPUT');
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', 'no-such.approval']), 'IO_ERROR');

    // The audit log removed (its key left): no master-key use goes on, and verify says why.
    rmSync(join(c.dir, 'op', 'audit.log'));
    expectExit(await c.operator(['audit', 'verify']), 'AUDIT_TAMPERED');
    expectExit(await c.operator(['key', 'sign', '--name', 'master', '--in', 'doc.txt', '--approval', ...again]), 'AUDIT_TAMPERED');
  });
});
