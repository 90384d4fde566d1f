/** `dkms connection …`: pairwise relationships with other owners. */
import { Command } from 'commander';
import {
  acceptConnection,
  connections,
  deleteConnection,
  DEFAULT_CONNECTION_TTL_SECONDS,
  inviteConnection,
  myState,
  peerState,
  rotateConnection,
  type ConnectionRecord,
} from '../../agent/connections.js';
import { ALL_HANDLERS } from '../../recovery/protocols.js';
import { withAgent } from '../agent-access.js';
import { Context } from '../context.js';
import { emit, table } from '../output.js';
import { parsePositive } from '../options.js';
import { showReceived } from './agent.js';
import { qrCode } from '../../qr.js';

function describe(c: ConnectionRecord) {
  const mine = myState(c);
  const peer = peerState(c);
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

export function connectionCommand(): Command {
  const connection = new Command('connection').description('pairwise relationships with other owners');

  connection
    .command('invite')
    .description('make a one-time invitation for another owner to connect with you')
    .option('--label <name>', 'your name for the other owner', 'peer')
    .option('--ttl <seconds>', 'how long the invitation is valid', parsePositive, DEFAULT_CONNECTION_TTL_SECONDS)
    .action(async (opts: { label: string; ttl: number }, cmd: Command) => {
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
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => acceptConnection(a, text, opts.label));
      emit(ctx, describe(record), () => `connected with '${record.label}' (${record.id})`);
    });

  connection
    .command('list')
    .description('your connections (handles waiting messages first)')
    .action(async (_opts: unknown, cmd: Command) => {
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
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => rotateConnection(a, ref));
      emit(ctx, describe(record), () => `rotated keys of '${record.label}' (now at seq ${myState(record).seq})`);
    });

  connection
    .command('delete')
    .description('end a connection for good (a final event tells the other owner)')
    .argument('<connection>', 'connection id or label')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const ctx = Context.of(cmd);
      const record = await withAgent(ctx, (a) => deleteConnection(a, ref));
      emit(ctx, describe(record), () => `deleted connection '${record.label}'`);
    });

  return connection;
}
