/**
 * The audit log of master-key use (custody/audit.ts) as a wallet relies on it: records survive a
 * reopen and verify, signed by the wallet's key; any edit, removal, reordering, duplication or
 * insertion of a record is AUDIT_TAMPERED naming its line, and so is a cut tail when the head
 * is known and a record torn by a crash; a log that cannot be written is AUDIT_UNAVAILABLE with
 * the head unmoved and the file as it was; a second writer's records are taken in, anything
 * else is refused. Disk faults (ENOSPC, a short write, a failed fsync) are injected into node:fs.
 */
import fc from 'fast-check';
import fs, { mkdirSync, readFileSync, renameSync, rmdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AuditLog, AUDIT_LOG_FILE, AUDIT_OPS, verifyAuditLog, type AuditHead, type AuditRecord } from '../../src/custody/audit.js';
import {
  canonicalBytes,
  canonicalJson,
  ed25519Generate,
  ed25519Verify,
  fromBase64url,
  memorySigner,
  sha256,
  toBase64url,
  type Signer,
} from '../../src/crypto/index.js';
import { expectCode } from '../helpers/errors.js';
import { tempDir } from '../helpers/tmp.js';

type Fault = 'ENOSPC' | 'short write' | 'EIO on fsync';

/** Makes the next writes or fsyncs of the log fail as a full or failing disk would (the module calls them through the fs object). */
function injectFault(fault: Fault): void {
  const realWrite = fs.writeSync.bind(fs) as (fd: number, data: Uint8Array) => number;
  const realFsync = fs.fsyncSync.bind(fs);
  vi.spyOn(fs, 'writeSync').mockImplementation(((fd: number, data: Uint8Array) => {
    if (fault === 'ENOSPC') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    if (fault === 'short write') return realWrite(fd, data.subarray(0, data.length >> 1));
    return realWrite(fd, data);
  }) as typeof fs.writeSync);
  vi.spyOn(fs, 'fsyncSync').mockImplementation((fd: number) => {
    if (fault === 'EIO on fsync') throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
    realFsync(fd);
  });
}

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

function newSigner(): Signer {
  const { privateKey, publicKey } = ed25519Generate();
  return memorySigner(privateKey, publicKey);
}

/** A record as the module comment defines it, computed here independently: what an attacker with `signer` can make. */
function forge(body: Omit<AuditRecord, 'hash' | 'sig' | 'key'>, signer: Signer): string {
  const unsigned = { ...body, key: signer.multikey };
  const hash = toBase64url(sha256(canonicalBytes(unsigned)));
  const sig = toBase64url(signer.sign(canonicalBytes({ type: 'dkms.audit-record.v1', hash })));
  return canonicalJson({ ...unsigned, hash, sig });
}

const linesOf = (path: string): string[] => readFileSync(path, 'utf8').split('\n').slice(0, -1);
const writeLines = (path: string, lines: readonly string[]): void => writeFileSync(path, lines.map((l) => `${l}\n`).join(''));
const recordAt = (path: string, line: number): AuditRecord => JSON.parse(linesOf(path)[line - 1] ?? 'null') as AuditRecord;

/** A log of five records: audit-start, then sign done, sign refused, export done, rekey started. */
function fiveRecords() {
  const path = join(tempDir(), AUDIT_LOG_FILE);
  const signer = newSigner();
  const log = AuditLog.open(path, signer);
  log.append('sign', 'done', { key: 'main' });
  log.append('sign', 'refused', { key: 'main', reason: 'custodians did not approve' });
  log.append('export', 'done', { to: 'backup' });
  log.append('rekey', 'started', { keys: 3, hsm: false });
  return { path, signer, log, head: log.head() };
}

function expectTampered(path: string, signer: Signer, line: number, what: RegExp, head?: AuditHead): void {
  const options = { key: signer.multikey, head };
  for (const check of [() => verifyAuditLog(path, options), () => AuditLog.open(path, signer, options)]) {
    const e = expectCode(check, 'AUDIT_TAMPERED');
    expect(e.message).toContain(`at line ${line}: `);
    expect(e.message).toMatch(what);
  }
}

describe('a log that is written and read back', () => {
  it('starts with audit-start naming its key, in a file only its owner can read', () => {
    const path = join(tempDir(), AUDIT_LOG_FILE);
    const signer = newSigner();
    const log = AuditLog.open(path, signer);
    expect(log.records()).toMatchObject([{ v: 1, seq: 1, op: 'audit-start', outcome: 'done', prev: 'A'.repeat(43), key: signer.multikey }]);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(AUDIT_OPS).toContain('audit-start');
  });

  it('keeps every record across a reopen, chained and signed as documented', () => {
    const { path, signer, head } = fiveRecords();
    const reopened = AuditLog.open(path, signer, { head });
    expect(reopened.head()).toEqual(head);
    expect(reopened.records().map((r) => [r.seq, r.op, r.outcome])).toEqual([
      [1, 'audit-start', 'done'],
      [2, 'sign', 'done'],
      [3, 'sign', 'refused'],
      [4, 'export', 'done'],
      [5, 'rekey', 'started'],
    ]);
    const records = reopened.records();
    for (const [i, r] of records.entries()) {
      const { hash, sig, ...body } = r;
      expect(hash).toBe(toBase64url(sha256(canonicalBytes(body))));
      expect(ed25519Verify(signer.publicKey, canonicalBytes({ type: 'dkms.audit-record.v1', hash }), fromBase64url(sig))).toBe(true);
      expect(r.prev).toBe(i === 0 ? 'A'.repeat(43) : records[i - 1]?.hash);
    }
    expect(records[4]?.detail).toEqual({ keys: 3, hsm: false });
    expect(linesOf(path)).toEqual(records.map((r) => canonicalJson(r)));
    const summary = verifyAuditLog(path, { key: signer.multikey, head });
    expect(summary).toEqual({ records: 5, head, key: signer.multikey, firstTime: records[0]?.time, lastTime: records[4]?.time });
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('is refused when opened with another key; a verifier learns the key from the log unless told one', () => {
    const { path, signer } = fiveRecords();
    const other = newSigner();
    expect(expectCode(() => AuditLog.open(path, other), 'AUDIT_TAMPERED').message).toMatch(/at line 1: signed by another key/);
    expectCode(() => verifyAuditLog(path, { key: other.multikey }), 'AUDIT_TAMPERED');
    expect(verifyAuditLog(path).key).toBe(signer.multikey);
  });

  it('refuses a bad op or detail with BAD_INPUT, and writes nothing', () => {
    const { path, log, head } = fiveRecords();
    const before = readFileSync(path);
    expectCode(() => log.append('Sign', 'done'), 'BAD_INPUT');
    expectCode(() => log.append('audit-start', 'done'), 'BAD_INPUT');
    expectCode(() => log.append('sign', 'done', { note: 'x'.repeat(501) }), 'BAD_INPUT');
    expectCode(() => log.append('sign', 'done', Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i]))), 'BAD_INPUT');
    expect(readFileSync(path)).toEqual(before);
    expect(log.head()).toEqual(head);
  });
});

describe('a changed log', () => {
  it('names an edited record (refused made done)', () => {
    const { path, signer } = fiveRecords();
    const lines = linesOf(path);
    lines[2] = (lines[2] ?? '').replace('"outcome":"refused"', '"outcome":"done"');
    writeLines(path, lines);
    expectTampered(path, signer, 3, /the hash does not match the record/);
  });

  it('names a record an attacker re-signed with a key of their own', () => {
    const { path, signer } = fiveRecords();
    const attacker = newSigner();
    const lines = linesOf(path);
    lines[2] = forge({ ...recordAt(path, 3), outcome: 'done' }, attacker);
    writeLines(path, lines);
    expectTampered(path, signer, 3, /signed by another key/);
    const forged = JSON.parse(lines[2] ?? '') as AuditRecord;
    lines[2] = canonicalJson({ ...forged, key: signer.multikey });
    writeLines(path, lines);
    expectTampered(path, signer, 3, /the hash does not match/);
  });

  it('is refused whole when an attacker rewrote every record with their own key', () => {
    const { path, signer } = fiveRecords();
    const attacker = newSigner();
    let prev = 'A'.repeat(43);
    const forged = linesOf(path).map((line) => {
      const { hash: _hash, sig: _sig, key: _key, ...body } = JSON.parse(line) as AuditRecord;
      const record = forge({ ...body, prev, outcome: 'done' }, attacker);
      prev = (JSON.parse(record) as AuditRecord).hash;
      return record;
    });
    writeLines(path, forged);
    expect(verifyAuditLog(path).key).toBe(attacker.multikey);
    expectTampered(path, signer, 1, /signed by another key/);
  });

  it('names a removed, a swapped, a repeated and an inserted record', () => {
    const { path, signer } = fiveRecords();
    const lines = linesOf(path);
    const [l1, l2, l3, l4, l5] = lines as [string, string, string, string, string];
    writeLines(path, [l1, l2, l4, l5]);
    expectTampered(path, signer, 3, /seq is 4 where 3 belongs/);
    writeLines(path, [l1, l2, l4, l3, l5]);
    expectTampered(path, signer, 3, /seq is 4 where 3 belongs/);
    writeLines(path, [l1, l2, l3, l3, l4, l5]);
    expectTampered(path, signer, 4, /seq is 3 where 4 belongs/);
    const inserted = forge({ ...recordAt(path, 3), op: 'unseal', outcome: 'done', detail: {} }, newSigner());
    writeLines(path, [l1, l2, inserted, l3, l4, l5]);
    expectTampered(path, signer, 3, /signed by another key/);
    const renumbered = JSON.parse(l4) as AuditRecord;
    writeLines(path, [l1, l2, l3, canonicalJson({ ...renumbered, seq: 5 })]);
    expectTampered(path, signer, 4, /seq is 5 where 4 belongs/);
  });

  it('names a tail cut off when the caller knows the head, and passes without it', () => {
    const { path, signer, head } = fiveRecords();
    writeLines(path, linesOf(path).slice(0, 3));
    expect(verifyAuditLog(path, { key: signer.multikey }).records).toBe(3);
    expectTampered(path, signer, 4, /records after 3 were removed \(record 5 was written\)/, head);
    writeFileSync(path, '');
    expectTampered(path, signer, 1, /the log is empty/);
  });

  it('knows a removed log from a new one by the head', () => {
    const { path, signer, head } = fiveRecords();
    renameSync(path, `${path}.moved`);
    expectTampered(path, signer, 1, /the log is gone \(record 5 was written to it\)/, head);
    expectCode(() => verifyAuditLog(path), 'AUDIT_UNAVAILABLE');
  });

  it('names a record torn by a crash, and does not drop it', () => {
    const { path, signer } = fiveRecords();
    const size = statSync(path).size;
    truncateSync(path, size - 1);
    expectTampered(path, signer, 5, /the last record is incomplete \(a crash while writing\?\)/);
    const lines = linesOf(path);
    truncateSync(path, size - 40);
    expectTampered(path, signer, 5, /the last record is incomplete/);
    writeLines(path, [...lines.slice(0, 4), (lines[4] ?? '').slice(0, 40)]);
    expectTampered(path, signer, 5, /not a JSON record/);
  });

  it('is refused after any one byte changes', () => {
    const { path, signer } = fiveRecords();
    const original = readFileSync(path);
    fc.assert(
      fc.property(fc.nat(original.length - 1), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const changed = Buffer.from(original);
        changed[at] = (changed[at] ?? 0) ^ xor;
        writeFileSync(path, changed);
        expectCode(() => verifyAuditLog(path, { key: signer.multikey }), 'AUDIT_TAMPERED');
      }),
      { numRuns: 300 },
    );
  });
});

describe('a log that cannot be written', () => {
  it('stops the caller when audit.log was replaced by a directory, and works again once restored', () => {
    const { path, log, head } = fiveRecords();
    renameSync(path, `${path}.saved`);
    mkdirSync(path);
    expect(expectCode(() => log.append('sign', 'done'), 'AUDIT_UNAVAILABLE').message).toBe(`cannot write the audit log ${path}: EISDIR`);
    expect(log.head()).toEqual(head);
    rmdirSync(path);
    expect(expectCode(() => log.append('sign', 'done'), 'AUDIT_UNAVAILABLE').message).toMatch(/ENOENT$/);
    renameSync(`${path}.saved`, path);
    expect(log.append('sign', 'done').seq).toBe(6);
    expect(verifyAuditLog(path, { head: log.head() }).records).toBe(6);
  });

  it('cannot be made under a file or in a missing directory', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'file'), '');
    expect(expectCode(() => AuditLog.open(join(dir, 'file', AUDIT_LOG_FILE), newSigner()), 'AUDIT_UNAVAILABLE').message).toMatch(/ENOTDIR$/);
    expect(expectCode(() => AuditLog.open(join(dir, 'missing', AUDIT_LOG_FILE), newSigner()), 'AUDIT_UNAVAILABLE').message).toMatch(/ENOENT$/);
  });

  it.each(['ENOSPC', 'short write', 'EIO on fsync'] as const)(
    'leaves the file and the head as they were on %s, and appends once the disk recovers',
    (fault) => {
      const { path, log, head } = fiveRecords();
      const before = readFileSync(path);
      injectFault(fault);
      const e = expectCode(() => log.append('unseal', 'done'), 'AUDIT_UNAVAILABLE');
      expect(e.message).toBe(`cannot write the audit log ${path}: ${fault === 'EIO on fsync' ? 'EIO' : fault}`);
      vi.restoreAllMocks();
      expect(readFileSync(path)).toEqual(before);
      expect(log.head()).toEqual(head);
      expect(log.append('unseal', 'done').seq).toBe(6);
      expect(verifyAuditLog(path, { head: log.head() }).records).toBe(6);
    },
  );
});

describe('a log changed between two appends', () => {
  it("takes in another writer's records, each writer's next record continuing the chain", () => {
    const { path, signer, log } = fiveRecords();
    const second = AuditLog.open(path, signer);
    second.append('custody-rotate', 'done');
    second.append('sign', 'done');
    expect(log.append('seal', 'done')).toMatchObject({ seq: 8, prev: second.head().hash });
    expect(second.append('sign', 'refused').seq).toBe(9);
    expect(log.append('seal', 'done').seq).toBe(10);
    expect(second.append('unseal', 'done').seq).toBe(11);
    expect(
      second
        .records()
        .slice(0, 10)
        .map((r) => r.hash),
    ).toEqual(log.records().map((r) => r.hash));
    expect(verifyAuditLog(path, { key: signer.multikey, head: log.head() }).records).toBe(11);
    expect(verifyAuditLog(path, { key: signer.multikey, head: second.head() }).records).toBe(11);
  });

  it('refuses to append after its last record was cut', () => {
    const { path, log } = fiveRecords();
    truncateSync(path, statSync(path).size - 1);
    const cut = readFileSync(path);
    expect(expectCode(() => log.append('sign', 'done'), 'AUDIT_TAMPERED').message).toMatch(/at line 5: the log was cut/);
    expect(readFileSync(path)).toEqual(cut);
  });

  it('refuses to append after its last record was changed in place', () => {
    const { path, log } = fiveRecords();
    const lines = linesOf(path);
    writeLines(path, [...lines.slice(0, 4), (lines[4] ?? '').replace('"started"', '"refused"')]);
    expect(statSync(path).size).toBe(lines.join('\n').length + 1);
    expect(expectCode(() => log.append('sign', 'done'), 'AUDIT_TAMPERED').message).toMatch(/at line 5: the record changed after it was written/);
  });

  it("refuses to append after a record that is not its key's was added, and adds nothing", () => {
    const { path, log, head } = fiveRecords();
    const extra = forge({ ...recordAt(path, 5), seq: 6, prev: head.hash, op: 'export' }, newSigner());
    writeFileSync(path, `${extra}\n`, { flag: 'a' });
    const grown = readFileSync(path);
    expect(expectCode(() => log.append('sign', 'done'), 'AUDIT_TAMPERED').message).toMatch(/at line 6: signed by another key/);
    expect(readFileSync(path)).toEqual(grown);
    expect(log.head()).toEqual(head);
  });
});

describe('countSince', () => {
  it('counts only the given ops, outcome and time window, also after a reopen', () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const path = join(tempDir(), AUDIT_LOG_FILE);
    const signer = newSigner();
    vi.setSystemTime(new Date('2030-01-01T10:00:00.000Z'));
    const log = AuditLog.open(path, signer);
    log.append('sign', 'done');
    log.append('export', 'done');
    vi.setSystemTime(new Date('2030-01-01T11:00:00.000Z'));
    log.append('sign', 'done');
    log.append('sign', 'refused');
    log.append('unseal', 'done');
    const ten = new Date('2030-01-01T10:00:00.000Z');
    const eleven = new Date('2030-01-01T11:00:00.000Z');
    expect(log.countSince(['sign'], ten)).toBe(2);
    expect(log.countSince(['sign', 'export'], ten)).toBe(3);
    expect(log.countSince(['sign'], eleven)).toBe(1);
    expect(log.countSince(['sign'], ten, 'refused')).toBe(1);
    expect(log.countSince(['sign'], new Date('2030-01-01T11:00:00.001Z'))).toBe(0);
    expect(AuditLog.open(path, signer).countSince(['sign', 'export', 'unseal'], eleven)).toBe(2);
  });
});
