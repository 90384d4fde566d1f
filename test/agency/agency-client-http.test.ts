/**
 * The agency client's own HTTP (src/http.ts over node:http): what it makes of each kind of
 * answer a server can give, a lying one included, and that it never loads the global fetch
 * (whose first use costs a CLI command a quarter of a second of CPU).
 */
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { AgencyClient, MAX_AGENCY_ANSWER_BYTES, postEnvelope } from '../../src/agency/agency-client.js';
import { DkmsError, type ErrorCode } from '../../src/errors.js';
import { exchange } from '../../src/http.js';
import { edgeAgent } from '../helpers/edge.js';
import { deadUrl, startServer, startSilentServer } from '../helpers/lying.js';

const CLOUD = {
  id: 'cloud-1',
  policy: 'policy:abc',
  key: 'z6MkKey',
  kx: 'z6LSKx',
  endpoint: 'http://127.0.0.1:8421/v1/inbound',
  routingKey: 'did:key:z6LS#z6LS',
  did: 'did:dkms:abc',
};

const json = (response: ServerResponse, status: number, body: unknown) => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
};

async function refusal(promise: Promise<unknown>): Promise<{ code: ErrorCode; message: string }> {
  try {
    await promise;
  } catch (e) {
    expect(e).toBeInstanceOf(DkmsError);
    return { code: (e as DkmsError).code, message: (e as DkmsError).message };
  }
  throw new Error('expected a refusal');
}

// The global fetch, made to fail loudly: nothing here may use it.
let savedFetch: PropertyDescriptor | undefined;
beforeEach(() => {
  savedFetch = Object.getOwnPropertyDescriptor(globalThis, 'fetch');
  Object.defineProperty(globalThis, 'fetch', {
    configurable: true,
    get: () => {
      throw new Error('the global fetch was used');
    },
  });
});
afterEach(() => {
  if (savedFetch !== undefined) Object.defineProperty(globalThis, 'fetch', savedFetch);
});

describe('the agency client over node:http', () => {
  const client = (url: string, timeoutMs = 10_000) => new AgencyClient(url, edgeAgent().signer, { timeoutMs });

  it('reads an answer, signs its requests, and maps a problem to its code', async () => {
    const seen: { method?: string; url?: string; signed: boolean; body: string }[] = [];
    const url = await startServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        seen.push({ method: request.method, url: request.url, signed: typeof request.headers['x-dkms-signature'] === 'string', body });
        if (request.url === '/v1/cloud-agents/cloud-1') json(response, 200, CLOUD);
        else json(response, 404, { type: 'about:blank', title: 'Not Found', status: 404, code: 'CLOUD_AGENT_NOT_FOUND', detail: 'no cloud agent here' });
      });
    });
    expect(await client(url).describe('cloud-1')).toEqual(CLOUD);
    expect(await refusal(client(url).register('policy:abc'))).toEqual({ code: 'CLOUD_AGENT_NOT_FOUND', message: 'no cloud agent here' });
    // The description is public; registering is signed by the agent's key.
    expect(seen.map(({ method, url: path, signed, body }) => ({ method, path, signed, body }))).toEqual([
      { method: 'GET', path: '/v1/cloud-agents/cloud-1', signed: false, body: '' },
      { method: 'POST', path: '/v1/cloud-agents', signed: true, body: JSON.stringify({ policy: 'policy:abc' }) },
    ]);
  });

  it('refuses what is not an answer: no JSON, an unknown problem, a malformed description', async () => {
    const url = await startServer((request, response) => {
      if (request.url?.endsWith('/text') === true) {
        response.writeHead(200, { 'content-type': 'text/plain' });
        response.end('hello');
      } else if (request.url?.endsWith('/odd') === true) json(response, 500, { code: 'NOT_A_DKMS_CODE' });
      else json(response, 200, { ...CLOUD, endpoint: 'not a url' });
    });
    expect(await refusal(client(url).describe('text'))).toMatchObject({
      code: 'AGENCY_BAD_RESPONSE',
      message: expect.stringMatching(/status 200 and no JSON/) as string,
    });
    expect(await refusal(client(url).describe('odd'))).toMatchObject({ code: 'AGENCY_BAD_RESPONSE', message: expect.stringMatching(/status 500$/) as string });
    expect((await refusal(client(url).describe('bad'))).code).toBe('AGENCY_BAD_RESPONSE');
  });

  it('refuses an answer over its limit, announced or streamed, without buffering it', async () => {
    const url = await startServer((request, response) => {
      if (request.url?.endsWith('/announced') === true) {
        response.writeHead(200, { 'content-type': 'application/json', 'content-length': String(MAX_AGENCY_ANSWER_BYTES + 1) });
        response.write('{');
        return;
      }
      // Streamed with no length, for as long as the client reads.
      response.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(1024 * 1024, 0x20);
      const more = () => {
        while (!response.destroyed && response.write(chunk));
        if (!response.destroyed) response.once('drain', more);
      };
      response.on('close', () => response.destroy());
      more();
    });
    for (const id of ['announced', 'streamed']) {
      expect(await refusal(client(url).describe(id))).toEqual({ code: 'AGENCY_BAD_RESPONSE', message: "the agency's answer is larger than 64 MiB" });
    }
  });

  it('says the agency is unreachable when nothing listens, or nothing answers in time', async () => {
    const dead = await deadUrl();
    const refused = await refusal(client(dead).describe('cloud-1'));
    expect(refused.code).toBe('AGENCY_UNREACHABLE');
    expect(refused.message).toMatch(/^cannot reach the agency at http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);
    const silent = await startSilentServer();
    expect(await refusal(client(silent, 300).describe('cloud-1'))).toEqual({
      code: 'AGENCY_UNREACHABLE',
      message: `cannot reach the agency at ${new URL(silent).origin}: no answer within 300 ms`,
    });
    // A DIDComm post to any agency goes the same way.
    expect((await refusal(postEnvelope(`${dead}/v1/inbound`, { protected: 'x', recipients: [], iv: 'x', ciphertext: 'x', tag: 'x' }))).code).toBe(
      'AGENCY_UNREACHABLE',
    );
  });

  it("ends a long poll in flight when its signal aborts (a cancelled command's), and sends nothing after", async () => {
    let asked = 0;
    const url = await startServer(() => {
      asked += 1;
      // Never answers: a long poll waiting for mail.
    });
    const controller = new AbortController();
    const polling = new AgencyClient(url, edgeAgent().signer, { signal: controller.signal });
    const pending = refusal(polling.pickup(100, 30));
    await vi.waitFor(() => expect(asked).toBe(1));
    controller.abort(new Error('cancelled'));
    expect(await pending).toEqual({ code: 'AGENCY_UNREACHABLE', message: `cannot reach the agency at ${new URL(url).origin}: cancelled` });
    expect((await refusal(polling.describe('cloud-1'))).code).toBe('AGENCY_UNREACHABLE');
    expect(asked).toBe(1);
  });
});

describe('exchange (src/http.ts)', () => {
  const tooLarge = () => new Error('too large');

  it('reaches an IPv6 loopback address, and sends the body with its length', async () => {
    const server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => json(response, 201, { length: request.headers['content-length'], body }));
    });
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    expect(await exchange(`http://[::1]:${port}/echo`, { method: 'POST', body: 'héllo', timeoutMs: 5_000, maxBytes: 1024, tooLarge })).toEqual({
      status: 201,
      body: JSON.stringify({ length: '6', body: 'héllo' }),
    });
  });

  it('ends early when its signal aborts, with the signal reason', async () => {
    const silent = await startSilentServer();
    const controller = new AbortController();
    const pending = exchange(silent, { method: 'GET', timeoutMs: 10_000, maxBytes: 1024, tooLarge, signal: controller.signal });
    controller.abort(new Error('stop now'));
    await expect(pending).rejects.toThrow('stop now');
    await expect(
      exchange(silent, { method: 'GET', timeoutMs: 10_000, maxBytes: 1024, tooLarge, signal: AbortSignal.abort(new Error('before')) }),
    ).rejects.toThrow('before');
  });

  it('refuses a scheme other than http and https', async () => {
    await expect(exchange('ftp://127.0.0.1/x', { method: 'GET', timeoutMs: 1_000, maxBytes: 1024, tooLarge })).rejects.toThrow('ftp: is not http or https');
  });
});
