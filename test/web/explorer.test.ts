/**
 * The registry explorer in a real browser (Debian's Chromium): a ledger node on loopback with
 * an identity's history, the explorer served from the build in dist/web, pages opened as a user
 * would (keyboard included). Each page must end verified with no browser problem at all; through
 * a proxy that lies, the page must turn red with the reason and show nothing of the refused
 * answer. Screenshots go to artifacts/web/.
 */
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { didCreate, nextEvent, policyCreate, signEvent } from '../../src/ledger/build.js';
import type { Did, PolicyAddress, Subject } from '../../src/ledger/events.js';
import { bareHead, cosignHead, signHead, type ServedHead } from '../../src/ledger/head.js';
import type { LedgerNode } from '../../src/ledger/node.js';
import type { LogRecord } from '../../src/ledger/state.js';
import { ALL_FLAGS, FLAGS } from '../../src/policy/flags.js';
import { buildLedgerServer } from '../../src/server/ledger-api.js';
import { loadWebAssets } from '../../src/server/web-assets.js';
import { launchChromium, openPage, screenshot } from '../helpers/browser.js';
import { commitment, nodeSigner, openNode, testKey, type TestKey } from '../helpers/ledger.js';
import { clone, flipFirst, startProxy, type Lie } from '../helpers/lying.js';
import { suiteDirs } from '../helpers/tmp.js';

interface Answer {
  head: ServedHead;
  subjects: Record<string, { siblings: (string | null)[] }>;
  history: LogRecord[];
  proofs: string[][];
}

const dirs = suiteDirs('dkms-explorer-');
const signer = nodeSigner();
/** A witness whose cosignatures the node accepts and serves. */
const witness = testKey();
let node: LedgerNode;
let url: string;
let close: () => Promise<void>;
let browser: Browser;
let policy: PolicyAddress;
let did: Did;
let laptop: TestKey;
let tablet: TestKey;
let phone: TestKey;
/** A signed head of the log before its last event, kept to replay later. */
let olderHead: ServedHead;

async function latest(subject: Subject): Promise<{ seq: number; head: string }> {
  const record = await node.subject(subject);
  if (record === undefined) throw new Error(`${subject} missing`);
  return record;
}

beforeAll(async () => {
  const assets = await loadWebAssets(join(process.cwd(), 'dist', 'web'));
  if (assets === undefined) throw new Error('dist/web is not built: run npm run build');
  // Heads are published at once (no wait for the witness); its cosignature is added when a test asks.
  node = await openNode(dirs(), signer, { witnessKeys: [witness.multikey], witnessWaitMs: 0 });
  const app = buildLedgerServer(node, { web: { assets, config: { nodeKey: signer.multikey, witnessKeys: [], quorum: 1, console: false } } });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
  close = async () => {
    await app.close();
    await node.close();
  };
  laptop = testKey();
  tablet = testKey();
  phone = testKey();
  policy = (await node.submit(signEvent(policyCreate([laptop.agent(ALL_FLAGS)], commitment([testKey()])), [laptop]))).subject as PolicyAddress;
  did = (
    await node.submit(signEvent(didCreate(policy, [{ id: '#inbox', type: 'DIDCommMessaging', serviceEndpoint: 'https://agency.example/inbox' }]), [laptop]))
  ).subject as Did;
  await node.submit(signEvent(nextEvent('policy.grant', policy, await latest(policy), { agent: tablet.agent(FLAGS.PROVE) }), [laptop]));
  await node.submit(signEvent(nextEvent('did.update', did, await latest(did), { services: [] }), [laptop]));
  await node.submit(signEvent(nextEvent('policy.grant', policy, await latest(policy), { agent: phone.agent(FLAGS.PROVE | FLAGS.PROVE_REVOKE) }), [laptop]));
  olderHead = (await (await fetch(`${url}/v1/head`)).json()) as ServedHead;
  await node.submit(signEvent(nextEvent('policy.revoke', policy, await latest(policy), { key: tablet.multikey }), [laptop]));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await close?.();
});

const pinned = (path: string, base = url) => `${base}${path}#trust=${signer.multikey}`;

/** Waits for the page to finish verifying; its state. */
async function settled(page: Page): Promise<string> {
  await page.locator('html:not([data-verify-state="verifying"])').waitFor({ state: 'attached' });
  return (await page.getAttribute('html', 'data-verify-state')) ?? '';
}

const statusText = (page: Page) => page.locator('#verify-status').innerText();

describe('the registry explorer', () => {
  it('shows the live head and the newest events, each verified in the browser, and takes the pin out of the address', async () => {
    const { page, problems } = await openPage(browser, pinned('/ui/'));
    expect(await settled(page)).toBe('verified');
    expect(await statusText(page)).toContain('Verified in this browser');
    expect(await page.locator('[data-field="size"]').innerText()).toBe('6');
    const rows = page.locator('table.log tbody tr');
    expect(await rows.count()).toBe(6);
    expect(await page.locator('table.log tbody tr .badge-ok').count()).toBe(6);
    expect(await rows.first().getAttribute('data-gseq')).toBe('5');
    expect(await rows.first().innerText()).toContain('policy.revoke');
    expect(new URL(page.url()).hash).toBe('');
    await screenshot(page, 'explorer-head');
    expect(problems).toEqual([]);
  });

  it('finds a DID by keyboard and shows its timeline, agents, document versions and a diff, all verified', async () => {
    const { page, problems } = await openPage(browser, pinned('/ui/'));
    expect(await settled(page)).toBe('verified');
    // Skip link, brand, then the search field: reachable with Tab alone.
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    expect(await page.locator('#q:focus').count()).toBe(1);
    await page.keyboard.type(did);
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/ui/did/${encodeURIComponent(did)}`);
    expect(await settled(page)).toBe('verified');
    const entries = page.locator('ol.timeline > li');
    expect(await entries.evaluateAll((items) => items.map((li) => li.getAttribute('data-type')))).toEqual([
      'policy.revoke',
      'policy.grant',
      'did.update',
      'policy.grant',
      'did.create',
      'policy.create',
    ]);
    expect(await page.locator('ol.timeline .badge-ok').count()).toBe(6);
    const text = await page.locator('ol.timeline').innerText();
    expect(text).toContain(`${tablet.multikey.slice(0, 10)}`);
    expect(text).toMatch(/added: PROVE, PROVE_REVOKE/);
    expect(text).toMatch(/removed/);
    expect(text).toMatch(/services: −#inbox/);
    expect(await page.locator('[data-field="status"]').innerText()).toBe('active');
    // Versions: created (laptop), + tablet, services gone, + phone, − tablet.
    expect(await page.locator('ol.versions > li').count()).toBe(5);
    const diff = await page.locator('.diff-lines').innerText();
    expect(diff).toContain(`− `);
    expect(diff).toContain(tablet.multikey);
    expect(await page.locator('svg[role="img"]').count()).toBeGreaterThanOrEqual(2);
    await screenshot(page, 'explorer-did');
    expect(problems).toEqual([]);
  });

  it("draws an event's inclusion proof up to the signed root", async () => {
    const { page, problems } = await openPage(browser, pinned('/ui/event/2'));
    expect(await settled(page)).toBe('verified');
    expect(await page.locator('h1').innerText()).toContain('Event #2');
    expect(await page.locator('h1 .badge-ok').count()).toBe(1);
    const picture = page.locator('.picture-frame svg[role="img"]');
    expect(await picture.locator('title').textContent()).toBe('Inclusion proof of event 2');
    expect(await picture.locator('desc').textContent()).toContain('equals the signed root');
    await screenshot(page, 'explorer-proof');
    expect(problems).toEqual([]);
  });

  it("shows each witness's cosignature checked here, and meets a quorum of the node and a pinned witness", async () => {
    const head = bareHead(node.servedHead());
    node.addCosignature({ ...cosignHead(head, new Date().toISOString(), witness), size: head.size, root: head.root, map: head.map });
    const quorum = await openPage(browser, `${url}/ui/#trust=${signer.multikey}&witness=${witness.multikey}&quorum=2`);
    expect(await settled(quorum.page)).toBe('verified');
    const row = quorum.page.locator('#head-title ~ table tbody tr');
    expect(await row.count()).toBe(1);
    expect(await row.innerText()).toMatch(/verified\s+trusted witness/);
    expect(quorum.problems).toEqual([]);
    // Pinned without the witness, the same cosignature verifies but does not count.
    const alone = await openPage(browser, pinned('/ui/'));
    expect(await settled(alone.page)).toBe('verified');
    expect(await alone.page.locator('#head-title ~ table tbody tr').innerText()).toMatch(/verified\s+witness not trusted here/);
  });

  it('says when the node key was trusted on first use rather than pinned', async () => {
    const { page, problems } = await openPage(browser, `${url}/ui/policy/${policy}`);
    expect(await settled(page)).toBe('first-use');
    expect(await statusText(page)).toContain('trusted on first use');
    expect(problems).toEqual([]);
  });

  it('refuses a node signing with another key than the pinned one', async () => {
    const { page, problems } = await openPage(browser, `${url}/ui/#trust=${testKey().multikey}`);
    expect(await settled(page)).toBe('failed');
    expect(await statusText(page)).toContain('LEDGER_BAD_HEAD');
    expect(problems).toEqual([]);
  });

  it('fits a narrow screen without sideways scrolling', async () => {
    const { page, problems } = await openPage(browser, pinned(`/ui/did/${did}`), { width: 390, height: 844 });
    expect(await settled(page)).toBe('verified');
    expect(await page.evaluate('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await screenshot(page, 'explorer-narrow');
    expect(problems).toEqual([]);
  });
});

/** Rewrites successful subject reads only. */
const onReads =
  (alter: (body: Answer) => unknown): Lie =>
  ({ path, status, body }) =>
    status === 200 && /^\/v1\/(policies|dids)\//.test(path) ? { body: alter(clone(body as Answer)) } : undefined;

const LIES: [string, () => Lie, string][] = [
  [
    'an event whose time was changed',
    () =>
      onReads((body) => {
        const record = body.history[1] as { time: string };
        record.time = new Date(Date.parse(record.time) + 1000).toISOString();
        return body;
      }),
    'LEDGER_BAD_PROOF',
  ],
  [
    'the newest event withheld',
    () =>
      onReads((body) => {
        body.history.pop();
        body.proofs.pop();
        return body;
      }),
    'LEDGER_INCOMPLETE',
  ],
  [
    'a map proof with a flipped hash',
    () =>
      onReads((body) => {
        for (const proof of Object.values(body.subjects)) {
          const at = proof.siblings.findIndex((s) => s !== null);
          if (at >= 0) proof.siblings[at] = flipFirst(proof.siblings[at] as string);
        }
        return body;
      }),
    'LEDGER_BAD_MAP_PROOF',
  ],
  [
    'heads signed by a key of its own',
    () => {
      const other = testKey();
      return ({ path, status, body }) => {
        if (status !== 200 || !(path === '/v1/head' || /^\/v1\/(policies|dids)\//.test(path))) return undefined;
        const answer = clone(body) as Answer & ServedHead;
        return { body: path === '/v1/head' ? signHead(answer, other) : { ...answer, head: signHead(answer.head, other) } };
      };
    },
    'LEDGER_BAD_HEAD',
  ],
];

describe('the explorer behind a proxy that lies', () => {
  for (const [lie, make, code] of LIES) {
    it(`turns red for ${lie}: ${code}, and shows nothing of the answer`, async () => {
      const proxy = await startProxy(url, make());
      const { page, problems } = await openPage(browser, pinned(`/ui/did/${did}`, proxy.url));
      expect(await settled(page)).toBe('failed');
      expect(await statusText(page)).toContain(code);
      expect(await page.locator('[role="alert"]').innerText()).toContain(code);
      expect(await page.locator('ol.timeline').count()).toBe(0);
      if (code === 'LEDGER_BAD_PROOF') await screenshot(page, 'explorer-lie');
      expect(problems).toEqual([]);
    });
  }

  it('refuses a ledger that went back since the last visit (the head is kept between visits): LEDGER_INCONSISTENT', async () => {
    const proxy = await startProxy(url);
    const { page, problems } = await openPage(browser, pinned('/ui/', proxy.url));
    expect(await settled(page)).toBe('verified');
    // The proxy now shows the older head, validly signed by the node, on the next visit.
    proxy.lie = ({ path, status, body }) => {
      if (status !== 200) return undefined;
      if (path === '/v1/head') return { body: olderHead };
      if (path === '/v1/log') return { body: { ...(body as object), head: olderHead } };
      return undefined;
    };
    await page.goto(`${proxy.url}/ui/`);
    expect(await settled(page)).toBe('failed');
    expect(await statusText(page)).toContain('LEDGER_INCONSISTENT');
    expect(problems).toEqual([]);
  });
});

describe('the live registry page', () => {
  it('follows the ledger: a new event appears, verified, without reloading the page', async () => {
    const { page, problems } = await openPage(browser, pinned('/ui/'));
    expect(await settled(page)).toBe('verified');
    const size = Number(await page.locator('[data-field="size"]').innerText());
    await node.submit(signEvent(nextEvent('did.update', did, await latest(did), { services: [] }), [laptop]));
    const row = page.locator(`table.log tbody tr[data-gseq="${size}"]`);
    await row.waitFor();
    expect(await row.innerText()).toContain('did.update');
    expect(await row.locator('.badge-ok').count()).toBe(1);
    expect(await page.locator('[data-field="size"]').innerText()).toBe(String(size + 1));
    expect(await page.getAttribute('html', 'data-verify-state')).toBe('verified');
    expect(problems).toEqual([]);
  });
});
