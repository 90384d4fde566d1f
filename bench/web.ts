/**
 * Web dashboard benchmark (docs/dashboard.md):
 *
 * 1. web.bundle: the bytes a browser downloads for each page of the build in dist/web (its
 *    HTML, every script chunk it loads, its styles), raw and gzip-compressed, from Vite's manifest.
 * 2. web.explorer-first-page: with Debian's Chromium (skipped, and said, when there is none), the
 *    time from navigation to the explorer's first page verified (html[data-verify-state] no longer
 *    "verifying": the self-test, the head's signature, a page of 25 events each proven included and
 *    its signatures checked, all by WebCrypto) on a node of 1,000 events, cold (a new browser
 *    context each time: nothing cached, nothing pinned), median of 11. Limit, in the same browser
 *    and the same seconds: a navigation to a small document of the same server (/ui/config.json) plus
 *    the same two API answers fetched and parsed, without verifying. ratio = measured / limit.
 * 3. web.explorer-did-page: the same for a DID page whose chain (the DID's and its policy's) holds
 *    50 events, every one replayed and checked from inception.
 * The bound is the first page under 1 s on loopback.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { chromium, type Browser } from 'playwright-core';
import { ed25519Generate, memorySigner, type Signer } from '../src/crypto/index.js';
import { didCreate, nextEvent, policyCreate, signEvent } from '../src/ledger/build.js';
import type { Did, LedgerEvent, PolicyAddress } from '../src/ledger/events.js';
import { LedgerNode } from '../src/ledger/node.js';
import { SqliteLogStore } from '../src/ledger/sqlite-store.js';
import { recoveryKeyDigest } from '../src/policy/authority.js';
import { ALL_FLAGS, FLAGS } from '../src/policy/flags.js';
import { buildLedgerServer } from '../src/server/ledger-api.js';
import { loadWebAssets } from '../src/server/web-assets.js';
import { median, report, round } from './report.js';

const WEB = fileURLToPath(new URL('../web', import.meta.url));
const RUNS = 11;

function signer(): Signer {
  const pair = ed25519Generate();
  return memorySigner(pair.privateKey, pair.publicKey);
}

interface ManifestChunk {
  readonly file: string;
  readonly css?: readonly string[];
  readonly imports?: readonly string[];
  readonly isEntry?: boolean;
}

/** Each page's files: its HTML, its entry chunk and every chunk it imports, their styles. */
function bundleSizes(): void {
  const manifest = JSON.parse(readFileSync(join(WEB, '.vite', 'manifest.json'), 'utf8')) as Record<string, ManifestChunk>;
  for (const [source, entry] of Object.entries(manifest)) {
    if (entry.isEntry !== true) continue;
    const files = new Set<string>([source]);
    const visit = (chunk: ManifestChunk) => {
      files.add(chunk.file);
      for (const css of chunk.css ?? []) files.add(css);
      for (const imported of chunk.imports ?? []) {
        const inner = manifest[imported];
        if (inner !== undefined && !files.has(inner.file)) visit(inner);
      }
    };
    visit(entry);
    let js = 0;
    let css = 0;
    let html = 0;
    let gzip = 0;
    for (const file of files) {
      const body = readFileSync(join(WEB, file));
      gzip += gzipSync(body, { level: 9 }).length;
      if (file.endsWith('.js')) js += body.length;
      else if (file.endsWith('.css')) css += body.length;
      else html += body.length;
    }
    report({
      bench: 'web.bundle',
      page: source,
      files: files.size,
      js_bytes: js,
      css_bytes: css,
      html_bytes: html,
      total_bytes: js + css + html,
      gzip_bytes: gzip,
    });
  }
}

function chromiumPath(): string | undefined {
  const chosen = process.env['DKMS_TEST_CHROMIUM'];
  if (chosen !== undefined && chosen !== '') return chosen;
  const found = (process.env['PATH'] ?? '').split(delimiter).map((dir) => join(dir, 'chromium'));
  return found.find((path) => existsSync(path) && spawnSync(path, ['--version'], { stdio: 'ignore' }).status === 0);
}

/** A node of `total` events: policies with grants, DIDs with updates; one DID whose chain holds `chain` events. */
async function populate(node: LedgerNode, total: number, chain: number): Promise<Did> {
  const owner = signer();
  const recovery = { digests: [recoveryKeyDigest(signer().multikey)], threshold: 1 };
  const policy = (await node.submit(signEvent(policyCreate([{ key: owner.multikey, flags: ALL_FLAGS }], recovery), [owner]))).subject as PolicyAddress;
  const did = (await node.submit(signEvent(didCreate(policy, []), [owner]))).subject as Did;
  let policyAt = { seq: 0, head: (await node.subject(policy))?.head ?? '' };
  let didAt = { seq: 0, head: (await node.subject(did))?.head ?? '' };
  for (let i = 2; i < chain; i++) {
    if (i % 2 === 0) {
      const receipt = await node.submit(
        signEvent(nextEvent('policy.grant', policy, policyAt, { agent: { key: signer().multikey, flags: FLAGS.PROVE } }), [owner]),
      );
      policyAt = { seq: policyAt.seq + 1, head: receipt.id };
    } else {
      const receipt = await node.submit(signEvent(nextEvent('did.update', did, didAt, { services: [] }), [owner]));
      didAt = { seq: didAt.seq + 1, head: receipt.id };
    }
  }
  // The rest: other owners, each a policy and a DID, submitted in batches.
  const others: LedgerEvent[] = [];
  while (chain + others.length < total) {
    const other = signer();
    const created = signEvent(policyCreate([{ key: other.multikey, flags: ALL_FLAGS }], recovery), [other]);
    others.push(created);
  }
  for (let at = 0; at < others.length; at += 200) await node.submitMany(others.slice(at, at + 200));
  return did;
}

/** Waits until the page has done verifying, whichever way it ended. */
const VERIFIED = 'html:not([data-verify-state="verifying"])';

async function timeCold(browser: Browser, url: string): Promise<number> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const start = performance.now();
    await page.goto(url);
    await page.locator(VERIFIED).waitFor({ state: 'attached' });
    return performance.now() - start;
  } finally {
    await context.close();
  }
}

export async function webBench(): Promise<void> {
  if (!existsSync(join(WEB, 'index.html'))) throw new Error('dist/web is not built: run npm run build');
  bundleSizes();
  const path = chromiumPath();
  if (path === undefined) {
    report({ bench: 'web.explorer-first-page', skipped: 'no chromium on PATH (apt-get install chromium, or set DKMS_TEST_CHROMIUM)' });
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dkms-bench-web-'));
  const nodeKey = signer();
  const node = await LedgerNode.open(SqliteLogStore.open(join(dir, 'ledger.db')), nodeKey);
  const assets = await loadWebAssets(WEB);
  if (assets === undefined) throw new Error('dist/web is not built');
  const app = buildLedgerServer(node, {
    rateLimitPerSecond: 0,
    web: { assets, config: { nodeKey: nodeKey.multikey, witnessKeys: [], quorum: 1, console: false } },
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launch({
    executablePath: path,
    headless: true,
    chromiumSandbox: process.getuid?.() !== 0,
    args: ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const chain = 50;
    const did = await populate(node, 1000, chain);
    const size = node.size;
    const trust = `#trust=${nodeKey.multikey}`;
    const pages: [string, string, string][] = [
      ['web.explorer-first-page', `${url}/ui/${trust}`, `/v1/log?from=${size - 25}&to=${size}&proofs=true`],
      ['web.explorer-did-page', `${url}/ui/did/${did}${trust}`, `/v1/dids/${did}`],
    ];
    for (const [bench, pageUrl, api] of pages) {
      // Once untimed: Chromium's own first start of a page kind.
      await timeCold(browser, pageUrl);
      const measured: number[] = [];
      const limits: number[] = [];
      let state = '';
      for (let i = 0; i < RUNS; i++) {
        measured.push(await timeCold(browser, pageUrl));
        const context = await browser.newContext();
        const page = await context.newPage();
        const start = performance.now();
        await page.goto(`${url}/ui/config.json`);
        await page.evaluate(`Promise.all(['/v1/head', ${JSON.stringify(api)}].map((u) => fetch(u).then((r) => r.json())))`);
        limits.push(performance.now() - start);
        if (i === 0) {
          const check = await context.newPage();
          await check.goto(pageUrl);
          await check.locator(VERIFIED).waitFor({ state: 'attached' });
          state = (await check.getAttribute('html', 'data-verify-state')) ?? '';
        }
        await context.close();
      }
      if (state !== 'verified') throw new Error(`${bench}: the page ended ${state}, not verified`);
      const ms = median(measured);
      const limit = median(limits);
      report({
        bench,
        events: size,
        ...(bench.endsWith('did-page') ? { chain } : {}),
        ms: round(ms, 1),
        limit_ms: round(limit, 1),
        ratio: round(ms / limit),
        bound_ms: 1000,
        runs: RUNS,
      });
    }
  } finally {
    await browser.close();
    await app.close();
    await node.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
