/** `dkms audit …`: the audit log of master-key use in the data directory (docs/custodians.md, "The audit log"). */
import { Command, InvalidArgumentError } from 'commander';
import type { MultibaseKey } from '../../crypto/index.js';

function parseHead(value: string): { seq: number; hash: string } {
  const match = /^([0-9]{1,15}):([A-Za-z0-9_-]{43})$/.exec(value.trim());
  if (match === null) throw new InvalidArgumentError('must be SEQ:HASH, as `dkms audit verify` printed it');
  return { seq: Number(match[1]), hash: match[2] as string };
}

export function auditCommand(): Command {
  const audit = new Command('audit').description('the hash-chained, signed log of every use and refused use of master keys');

  audit
    .command('verify')
    .description('check the audit log: every record signed, chained to the one before, none edited, removed or reordered')
    .option('--head <seq:hash>', 'a head noted earlier (from this command): the log must still hold it, so a cut tail is seen', parseHead)
    .option('--signer <key>', 'the key the log must be signed by (z6Mk…), as noted earlier')
    .action(async (opts: { head?: { seq: number; hash: string }; signer?: string }, cmd: Command) => {
      const [{ Context }, { verifyAuditLog, AUDIT_LOG_FILE }, { emit }, { join }, { existsSync }, { DkmsError }, { decodePublicKey }] = await Promise.all([
        import('../context.js'),
        import('../../custody/audit.js'),
        import('../output.js'),
        import('node:path'),
        import('node:fs'),
        import('../../errors.js'),
        import('../../crypto/index.js'),
      ]);
      const ctx = Context.of(cmd);
      const path = join(ctx.home, AUDIT_LOG_FILE);
      if (opts.signer !== undefined) decodePublicKey(opts.signer, 'ed25519');
      if (!existsSync(path)) {
        // A log begun here and then removed leaves its key: that is tampering, not an empty record.
        if (existsSync(join(ctx.home, 'audit.key')) || opts.head !== undefined)
          throw new DkmsError('AUDIT_TAMPERED', `the audit log ${path} is gone: its records were removed`);
        emit(ctx, { valid: true, path, records: 0 }, () => `no audit log in ${ctx.home}: no master-key operation was recorded here`);
        return;
      }
      const summary = verifyAuditLog(path, {
        ...(opts.head === undefined ? {} : { head: opts.head }),
        ...(opts.signer === undefined ? {} : { key: opts.signer as MultibaseKey }),
      });
      const head = `${summary.head.seq}:${summary.head.hash}`;
      emit(
        ctx,
        { valid: true, path, records: summary.records, head: summary.head, signer: summary.key, first: summary.firstTime, last: summary.lastTime },
        () =>
          [
            `valid: ${summary.records} records, each signed by ${summary.key} and chained to the one before`,
            `from ${summary.firstTime} to ${summary.lastTime}`,
            `head ${head}: note it elsewhere, and give it to --head next time to see a cut tail`,
          ].join('\n'),
      );
    });

  audit
    .command('show')
    .description('list the audit log, oldest first (checked first)')
    .option('--last <n>', 'only the last n records', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number from 1');
      return n;
    })
    .action(async (opts: { last?: number }, cmd: Command) => {
      const [{ Context }, { verifyAuditLog, AUDIT_LOG_FILE }, { emit, table }, { join }, { readFileSync, existsSync }, { DkmsError }] = await Promise.all([
        import('../context.js'),
        import('../../custody/audit.js'),
        import('../output.js'),
        import('node:path'),
        import('node:fs'),
        import('../../errors.js'),
      ]);
      const ctx = Context.of(cmd);
      const path = join(ctx.home, AUDIT_LOG_FILE);
      if (!existsSync(path)) {
        if (existsSync(join(ctx.home, 'audit.key'))) throw new DkmsError('AUDIT_TAMPERED', `the audit log ${path} is gone: its records were removed`);
        emit(ctx, { records: [] }, () => `no audit log in ${ctx.home}: no master-key operation was recorded here`);
        return;
      }
      verifyAuditLog(path);
      const records = readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as { seq: number; time: string; op: string; outcome: string; detail: Record<string, unknown> });
      const shown = opts.last === undefined ? records : records.slice(-opts.last);
      emit(ctx, { records: shown }, () =>
        table(
          shown.map((r) => ({
            seq: r.seq,
            time: r.time,
            op: r.op,
            outcome: r.outcome,
            detail: Object.entries(r.detail)
              .map(([k, v]) => `${k}=${String(v)}`)
              .join(' '),
          })),
          ['seq', 'time', 'op', 'outcome', 'detail'],
        ),
      );
    });

  return audit;
}
