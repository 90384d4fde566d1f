/**
 * A real browser for the web tests: Debian's Chromium (no browser download), driven by
 * playwright-core. A page opened here reports every problem it meets (console errors, uncaught
 * exceptions, failed and refused requests, Content-Security-Policy violations), and tests
 * assert that there were none: nothing is ignored, a missing favicon included.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Flags for a quiet, headless browser that reaches nothing but the servers a test opens. */
const FLAGS = ['--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The Chromium to run: $DKMS_TEST_CHROMIUM, else `chromium` on PATH (Debian's, which .ci/run installs). */
export function chromiumPath(): string {
  const chosen = process.env['DKMS_TEST_CHROMIUM'];
  if (chosen !== undefined && chosen !== '') {
    if (!executable(chosen)) throw new Error(`DKMS_TEST_CHROMIUM is ${chosen}, which is not an executable file`);
    return chosen;
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir !== '' && executable(join(dir, 'chromium'))) return join(dir, 'chromium');
  }
  throw new Error(
    "the browser tests need Chromium and found no `chromium` on PATH: install Debian's (`apt-get install chromium`, which `node scripts/ensure-services.mjs` does as root) or set DKMS_TEST_CHROMIUM to a Chromium executable",
  );
}

/** What `path --version` says (Debian's launcher script also writes a harmless `[: …: unexpected operator` on stderr, not read here). */
function versionOf(path: string): string {
  const run = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return run.stdout.trim() || `unknown version (${run.error?.message ?? `exit ${String(run.status)}`})`;
}

const playwrightVersion = (): string => (createRequire(import.meta.url)('playwright-core/package.json') as { version: string }).version;

/**
 * A headless Chromium. Its sandbox is kept, except as root, where Chromium refuses to start
 * with one. A failure to start names the Chromium and playwright-core versions, which must
 * speak the same DevTools protocol.
 */
export async function launchChromium(): Promise<Browser> {
  const path = chromiumPath();
  try {
    return await chromium.launch({ executablePath: path, headless: true, chromiumSandbox: process.getuid?.() !== 0, args: FLAGS });
  } catch (e) {
    throw new Error(`cannot start ${path} (${versionOf(path)}) with playwright-core ${playwrightVersion()}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Run in every page before its own scripts (as text: the tests are compiled without the DOM's
 * types): reports each Content-Security-Policy violation through the binding.
 */
const REPORT_VIOLATIONS = `document.addEventListener('securitypolicyviolation', (e) =>
  window.__dkmsViolation(e.effectiveDirective + ' blocked ' + (e.blockedURI || '(inline)') + ' in ' + (e.sourceFile || e.documentURI) + ':' + e.lineNumber));`;

/**
 * Opens `url` in a fresh browser context (no storage shared with other pages), and collects its
 * problems from before its first script runs: console errors, uncaught exceptions, requests that
 * failed or were refused (a 404 is one), and Content-Security-Policy violations (each also
 * logged by Chromium as a console error: the `securitypolicyviolation` event says which
 * directive).
 */
export async function openPage(browser: Browser, url: string, viewport = { width: 1280, height: 800 }): Promise<{ page: Page; problems: string[] }> {
  const problems: string[] = [];
  const context = await browser.newContext({ viewport });
  await context.exposeBinding('__dkmsViolation', (_source, text: string) => problems.push(`CSP violation: ${text}`));
  await context.addInitScript({ content: REPORT_VIOLATIONS });
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'assert') problems.push(`console ${message.type()}: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('crash', () => problems.push('the page crashed'));
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText ?? 'unknown'}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
  });
  await page.goto(url);
  return { page, problems };
}

/** Saves what `page` shows, the whole page, as artifacts/web/<name>.png at the repository's root; returns the path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(name)) throw new Error(`a screenshot's name is lower-case letters, digits and dashes: ${name}`);
  const dir = join(ROOT, 'artifacts', 'web');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
