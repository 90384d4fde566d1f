/**
 * The dashboard as a browser gets it (docs/dashboard.md, "Serving"): a real Chromium opens a
 * page served by a real ledger node on loopback. Its module script runs under the dashboard's
 * Content-Security-Policy, reads /ui/config.json and the node's API from the same origin, and
 * meets no problem at all; an inline script, and a string written into an HTML sink, are
 * refused, and the browser says so.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { policyCreate, signEvent } from '../../src/ledger/build.js';
import { ALL_FLAGS } from '../../src/policy/flags.js';
import { buildLedgerServer } from '../../src/server/ledger-api.js';
import { loadWebAssets } from '../../src/server/web-assets.js';
import { launchChromium, openPage, screenshot } from '../helpers/browser.js';
import { commitment, openNode, testKey } from '../helpers/ledger.js';
import { tempDir } from '../helpers/tmp.js';

/** A file name as Vite gives it: the name, and a hash of the content. */
const hashed = (name: string, body: string, ext: string) => `${name}-${createHash('sha256').update(body).digest('hex').slice(0, 8)}.${ext}`;

const APP = `const [config, health] = await Promise.all([
  fetch('/ui/config.json').then((r) => r.json()),
  fetch('/v1/health').then((r) => r.json()),
]);
document.getElementById('key').textContent = config.nodeKey;
document.getElementById('size').textContent = String(health.size);
document.body.dataset.ready = 'yes';
`;
const STYLE = 'body { font-family: sans-serif; margin: 2rem; } #key { font-family: monospace; }\n';
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#246"/></svg>\n';
/** A script that writes a string into an HTML sink: Trusted Types with no policy refuse it. */
const SINK = `document.body.dataset.tried = 'yes';
document.getElementById('out').innerHTML = '<b>written</b>';
`;

/** The page's head: its icon and style, so that the browser fetches nothing the build lacks. */
const head = (files: { style: string; icon: string }, title: string) =>
  `<meta charset="utf-8"><title>${title}</title><link rel="icon" href="/ui/${files.icon}" type="image/svg+xml"><link rel="stylesheet" href="/ui/assets/${files.style}">`;

/** A build in a temporary directory, laid out as Vite lays out dist/web/. */
function writeBuild(): string {
  const dir = tempDir('dkms-web-');
  mkdirSync(join(dir, 'assets'));
  const files = { app: hashed('app', APP, 'js'), style: hashed('app', STYLE, 'css'), icon: 'favicon.svg', sink: hashed('sink', SINK, 'js') };
  writeFileSync(join(dir, 'assets', files.app), APP);
  writeFileSync(join(dir, 'assets', files.style), STYLE);
  writeFileSync(join(dir, 'assets', files.sink), SINK);
  writeFileSync(join(dir, files.icon), ICON);
  writeFileSync(
    join(dir, 'index.html'),
    `<!doctype html><html lang="en"><head>${head(files, 'dkms')}<script type="module" src="/ui/assets/${files.app}"></script></head>` +
      '<body><h1>dkms</h1><p>node key <span id="key">…</span></p><p>events <span id="size">…</span></p></body></html>\n',
  );
  writeFileSync(
    join(dir, 'inline.html'),
    `<!doctype html><html lang="en"><head>${head(files, 'inline')}</head><body><p id="out">untouched</p>` +
      "<script>document.getElementById('out').textContent = 'inline script ran';</script></body></html>\n",
  );
  writeFileSync(
    join(dir, 'sink.html'),
    `<!doctype html><html lang="en"><head>${head(files, 'sink')}<script type="module" src="/ui/assets/${files.sink}"></script></head>` +
      '<body><p id="out">untouched</p></body></html>\n',
  );
  return dir;
}

/** A ledger node holding one policy, serving the build on 127.0.0.1; closed when the test ends. */
async function serve(): Promise<{ url: string; key: string; size: number }> {
  const assets = await loadWebAssets(writeBuild());
  if (assets === undefined) throw new Error('the test build has no index.html');
  const node = await openNode(tempDir());
  const owner = testKey();
  await node.submit(signEvent(policyCreate([owner.agent(ALL_FLAGS)], commitment([testKey()])), [owner]));
  const app = buildLedgerServer(node, { web: { assets, config: { nodeKey: node.key, witnessKeys: [], quorum: 1, console: false } } });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  onTestFinished(async () => {
    await app.close();
    await node.close();
  });
  return { url, key: node.key, size: node.size };
}

let browser: Browser;

/** The page at `url`, its browser context closed when the test ends. */
async function open(url: string): Promise<{ page: Page; problems: string[] }> {
  const opened = await openPage(browser, url);
  onTestFinished(() => opened.page.context().close());
  return opened;
}

beforeAll(async () => {
  browser = await launchChromium();
});
afterAll(async () => {
  await browser.close();
});

describe('the dashboard in a real browser', () => {
  it('runs its module script under the CSP: config.json and the API from the same origin, written into the page, with no problem', async () => {
    const { url, key, size } = await serve();
    expect(size).toBe(1);
    const { page, problems } = await open(`${url}/ui/`);
    await page.waitForSelector('body[data-ready="yes"]');
    expect(await page.textContent('#key')).toBe(key);
    expect(await page.textContent('#size')).toBe(String(size));
    expect(problems).toEqual([]);
    const shot = await screenshot(page, 'serving');
    expect(shot).toMatch(/artifacts\/web\/serving\.png$/);

    // A route of the page's own is the same page, and works the same.
    const routed = await open(`${url}/ui/policy/some-policy`);
    await routed.page.waitForSelector('body[data-ready="yes"]');
    expect(await routed.page.textContent('#key')).toBe(key);
    expect(routed.problems).toEqual([]);
  });

  it('refuses an inline script, and the harness reports the violation', async () => {
    const { url } = await serve();
    const { page, problems } = await open(`${url}/ui/inline.html`);
    expect(await page.textContent('#out')).toBe('untouched');
    expect(problems.some((p) => /^CSP violation: script-src-elem blocked inline/.test(p))).toBe(true);
    // Chromium logs the refusal too; nothing else went wrong.
    expect(problems.filter((p) => !/^CSP violation: |^console error: .*Content Security Policy/.test(p))).toEqual([]);
  });

  it('refuses a string written into an HTML sink (Trusted Types with no policy)', async () => {
    const { url } = await serve();
    const { page, problems } = await open(`${url}/ui/sink.html`);
    await page.waitForSelector('body[data-tried="yes"]');
    expect(await page.textContent('#out')).toBe('untouched');
    expect(problems.some((p) => /^CSP violation: require-trusted-types-for blocked trusted-types-sink/.test(p))).toBe(true);
    expect(problems.some((p) => /^uncaught: .*TrustedHTML/.test(p))).toBe(true);
  });
});
