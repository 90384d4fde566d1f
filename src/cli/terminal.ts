/**
 * Questions at the terminal: a line typed without echo (secrets) or with it (yes/no). Node's own
 * modules only: the session client (session-client.ts) asks with these too, and loads nothing else.
 */

/** Rejected with this when the person pressed Ctrl-C at the question. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted at the terminal');
    this.name = 'Interrupted';
  }
}

/** Reads a line from the terminal without echoing it. */
export function askHidden(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    // Echo goes off before the prompt shows, so nothing typed after it is ever echoed.
    input.setRawMode(true);
    output.write(`${question}: `);
    input.resume();
    input.setEncoding('utf8');
    const done = (error?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.removeListener('data', onData);
      output.write('\n');
      if (error) reject(error);
      else resolve(answer);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Interrupted());
        if (ch === '\u007f' || ch === '\b') answer = answer.slice(0, -1);
        else if (ch >= ' ') answer += ch;
      }
    };
    input.on('data', onData);
  });
}

/** Reads a line from the terminal, echoed as typed. */
export async function askLine(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  // Loaded when a question is asked: the session client, which loads this module, mostly asks none.
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input, output });
  try {
    // Ctrl-C at the question reaches readline, not the process: it cancels as the signal would.
    return await new Promise<string>((resolve, reject) => {
      rl.once('SIGINT', () => reject(new Interrupted()));
      rl.question(question).then(resolve, reject);
    });
  } finally {
    rl.close();
  }
}
