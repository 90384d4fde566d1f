/** `dkms connection …`: pairwise relationships with other owners. */
import { Command } from 'commander';
import type { ConnectionRecord } from '../../agent/connections.js';
import { parsePositive } from '../options.js';
import { showReceived } from './agent.js';
import { DEFAULT_CONNECTION_TTL_SECONDS } from '../../agent/defaults.js';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [lib, { ALL_HANDLERS }, { withAgent }, { Context }, { emit, table }] = await Promise.all([
    import('../../agent/connections.js'),
    import('../../recovery/protocols.js'),
    import('../agent-access.js'),
    import('../context.js'),
    import('../output.js'),
  ]);
  /** A connection as the commands show it. */
  function describe(c: ConnectionRecord) {
    const mine = lib.myState(c);
    const peer = lib.peerState(c);
    return {
      id: c.id,
      peer: c.peer,
      label: c.label,
      state: c.state,
      created: c.created,
      myKeys: mine.keys.length,
      mySeq: mine.seq,
      peerKeys: peer.keys.length,
      peerSeq: peer.seq,
      joined: c.mine !== undefined,
      flags: c.flags,
    };
  }
  return { ...lib, describe, ALL_HANDLERS, withAgent, Context, emit, table };
}

export function connectionCommand(): Command {
  const connection = new Command('connection').description('pairwise relationships with other owners');

  connection
    .command('invite')
    .description('make a one-time invitation for another owner to connect with you')
    .option('--label <name>', 'your name for the other owner', 'peer')
    .option('--ttl <seconds>', 'how long the invitation is valid', parsePositive, DEFAULT_CONNECTION_TTL_SECONDS)
    .action(async (opts: { label: string; ttl: number }, cmd: Command) => {
      const [{ Context, withAgent, inviteConnection, emit }, { qrCode }] = await Promise.all([load(), import('../../qr.js')]);
      const ctx = Context.of(cmd);
      const { text, invitation } = await withAgent(ctx, async (a) => inviteConnection(a, opts.label, opts.ttl));
      const qr = ctx.json ? '' : await (await qrCode()).toString(text, { type: 'terminal', small: true });
      emit(
        ctx,
        { invitation: text, expires: invitation.expires },
        () =>
          `${qr}\nGive this to the other owner, who runs:\n  dkms connection accept '${text}'\n(valid until ${invitation.expires}; the connection appears here once they accept and you run dkms message inbox)`,
      );
    });

  connection
    .command('accept')
    .description("accept another owner's invitation")
    .argument('<invitation>', 'the invitation text (dkms-connect:…)')
    .option('--label <name>', 'your name for the other owner (default: the name they gave)')
    .action(async (text: string, opts: { label?: string }, cmd: Command) => {
      const { Context, withAgent, acceptConnection, emit, describe } = await load();
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => acceptConnection(a, text, opts.label));
      emit(ctx, describe(record), () => `connected with '${record.label}' (${record.id})`);
    });

  connection
    .command('list')
    .description('your connections (handles waiting messages first)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { Context, withAgent, ALL_HANDLERS, connections, describe, emit, table } = await load();
      const ctx = Context.of(cmd);
      const list = await withAgent(ctx, async (a) => {
        if (a.profile.cloud !== undefined) showReceived(ctx, await a.receive(ALL_HANDLERS));
        return connections(a).map(describe);
      });
      emit(ctx, { connections: list }, () =>
        list.length === 0
          ? 'no connections'
          : table(
              list.map((c) => ({ ...c, flags: c.flags.length === 0 ? '' : `${c.flags.length} flagged` })),
              ['label', 'state', 'id', 'myKeys', 'peerKeys', 'flags'],
            ),
      );
    });

  connection
    .command('rotate')
    .description("replace this agent's keys for a connection; the other owner verifies and accepts the change")
    .argument('<connection>', 'connection id or label')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { Context, withAgent, rotateConnection, emit, describe, myState } = await load();
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => rotateConnection(a, ref));
      emit(ctx, describe(record), () => `rotated keys of '${record.label}' (now at seq ${myState(record).seq})`);
    });

  connection
    .command('delete')
    .description('end a connection for good (a final event tells the other owner)')
    .argument('<connection>', 'connection id or label')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const { Context, withAgent, deleteConnection, emit, describe } = await load();
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => deleteConnection(a, ref));
      emit(ctx, describe(record), () => `deleted connection '${record.label}'`);
    });

  return connection;
}
