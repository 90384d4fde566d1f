/** `dkms message …`: send text to a connection, and pick up and handle what arrived. */
import { Command, InvalidArgumentError } from 'commander';

/** What the actions need, loaded when one runs (a definition, `--help` included, loads none of it). */
async function load() {
  const [{ inbox, sendText, sentMessages }, { ALL_HANDLERS }, { withAgent }, { Context }, { emit }] = await Promise.all([
    import('../../agent/connections.js'),
    import('../../recovery/protocols.js'),
    import('../agent-access.js'),
    import('../context.js'),
    import('../output.js'),
  ]);
  return { inbox, sendText, sentMessages, ALL_HANDLERS, withAgent, Context, emit };
}

function parseWait(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 30) throw new InvalidArgumentError('must be 0-30 seconds');
  return n;
}

export function messageCommand(): Command {
  const message = new Command('message').description('messages with your connections, through your cloud agent');

  message
    .command('send')
    .description('send a text message to a connection')
    .argument('<connection>', 'connection id or label')
    .argument('<text...>', 'the message')
    .action(async (ref: string, words: string[], _opts: unknown, cmd: Command) => {
      const { Context, withAgent, sendText, emit } = await load();
      const ctx = Context.of(cmd);
      const sent = await withAgent(ctx, (a) => sendText(a, ref, words.join(' ')));
      emit(ctx, { id: sent.id, sent: true }, () => `sent (${sent.id})`);
    });

  message
    .command('inbox')
    .description('pick up waiting messages, handle them (rotations, approvals, …) and show text messages')
    .option('--wait <seconds>', 'wait up to this long for the first message (0-30)', parseWait, 0)
    .option('--all', 'show every stored text message, received and sent by this device, not only new ones')
    .action(async (opts: { wait: number; all?: boolean }, cmd: Command) => {
      const { Context, withAgent, ALL_HANDLERS, inbox, sentMessages, emit } = await load();
      const ctx = Context.of(cmd);
      const { entries, stored } = await withAgent(ctx, async (a) => {
        const got = [];
        let batch = await a.receive(ALL_HANDLERS, { waitSeconds: opts.wait });
        while (batch.length > 0) {
          got.push(...batch);
          batch = await a.receive(ALL_HANDLERS);
        }
        // Both directions for --all, in the order they happened (each one's `sent` time).
        const history =
          opts.all === true ? [...inbox(a), ...sentMessages(a)].sort((x, y) => x.sent - y.sent || x.received.localeCompare(y.received)) : inbox(a);
        return { entries: got, stored: history };
      });
      const fresh = entries.flatMap((e) => (e.data?.['message'] === undefined ? [] : [e.data['message'] as { id: string }]));
      const shown = opts.all === true ? stored : stored.filter((m) => fresh.some((f) => f.id === m.id));
      emit(
        ctx,
        {
          received: entries.length,
          handled: entries.filter((e) => e.outcome === 'handled'),
          refused: entries.filter((e) => e.outcome === 'refused'),
          messages: shown,
        },
        () =>
          [
            ...entries
              .filter((e) => e.outcome !== 'ignored' && e.data?.['message'] === undefined)
              .map((e) => (e.outcome === 'handled' ? `* ${e.detail}` : `! refused ${e.type}: ${e.code ?? ''}: ${e.detail}`)),
            // When it was sent (as its sender's agent says; authenticated with the message), not when it reached this device.
            ...shown.map(
              (m) => `[${m.sent > 0 ? new Date(m.sent * 1000).toISOString() : m.received}] ${m.direction === 'out' ? `to ${m.label}` : m.label}: ${m.content}`,
            ),
            ...(entries.length === 0 && shown.length === 0 ? ['no new messages'] : []),
          ].join('\n'),
      );
    });

  return message;
}
