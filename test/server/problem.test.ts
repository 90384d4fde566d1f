/**
 * Problem details (server/problem.ts): a failure on the server's side reaches the client as its
 * code alone, never its message (which may name the server's files); the operator gets the
 * message. Failures of the client's request keep their message.
 */
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { DkmsError } from '../../src/errors.js';
import { installProblemHandlers } from '../../src/server/problem.js';

describe('problem details', () => {
  it("tells the client a server failure's code and not its message, and the operator the message", async () => {
    const reported: string[] = [];
    const app = Fastify();
    installProblemHandlers(
      app,
      () => 'BAD_INPUT',
      'EVENT_TOO_LARGE',
      (error, where) => reported.push(`${where} ${error.message}`),
    );
    app.get('/store', async () => {
      throw new DkmsError('AGENCY_STORE_DAMAGED', 'agency store /srv/private/agency.db: file is not a database');
    });
    app.get('/bug', async () => {
      throw new TypeError('cannot read x of undefined at /srv/private/app.js:10');
    });
    app.get('/client', async () => {
      throw new DkmsError('MAILBOX_FULL', 'the mailbox of z6Mk… is full');
    });
    app.get('/upstream', async () => {
      throw new DkmsError('LEDGER_UNREACHABLE', 'cannot reach the ledger at http://127.0.0.1:1');
    });
    for (const [path, status, code] of [
      ['/store', 500, 'AGENCY_STORE_DAMAGED'],
      ['/bug', 500, 'INTERNAL'],
    ] as const) {
      const answer = await app.inject({ method: 'GET', url: path });
      const body = answer.json<{ code: string; detail: string }>();
      expect({ status: answer.statusCode, code: body.code }).toEqual({ status, code });
      expect(body.detail).not.toMatch(/srv|private|database|undefined/);
      expect(body.detail).toMatch(code);
    }
    expect(reported).toEqual([
      'GET /store agency store /srv/private/agency.db: file is not a database',
      'GET /bug cannot read x of undefined at /srv/private/app.js:10',
    ]);
    // A refusal of the client's own request, and an upstream failure, keep their message.
    expect((await app.inject({ method: 'GET', url: '/client' })).json()).toMatchObject({ code: 'MAILBOX_FULL', detail: 'the mailbox of z6Mk… is full' });
    expect((await app.inject({ method: 'GET', url: '/upstream' })).json()).toMatchObject({
      code: 'LEDGER_UNREACHABLE',
      detail: 'cannot reach the ledger at http://127.0.0.1:1',
    });
    expect(reported).toHaveLength(2);
    await app.close();
  });
});
