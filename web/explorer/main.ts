/**
 * The registry explorer: public, read-only. Every page verifies what it shows in this browser
 * (src/ledger/client.ts built with WebCrypto underneath) against the pinned node key, and the
 * header says whether it did. Pages are plain addresses under /ui/ (the server answers each with
 * this app); a search is a GET form.
 */
import '../shared/zod-setup.js';
import type { LedgerClient } from '../../src/ledger/client.js';
import { DID_PREFIX, POLICY_PREFIX, type Did, type PolicyAddress } from '../../src/ledger/events.js';
import { byId, fill, h, type Child } from '../shared/dom.js';
import { openLedger } from '../shared/ledger.js';
import { fail, setState } from '../shared/status.js';
import { checkWebCrypto } from '../shared/self-test.js';
import { readPins, type Pins } from '../shared/trust.js';
import { eventView } from './event-view.js';
import { headView, tickAges } from './head-view.js';
import { logTable, pager } from './log-view.js';
import { subjectHref } from './links.js';
import { didView, policyView } from './subject-view.js';

const PAGE = 25;
const POLL_MS = 5000;

const main = byId('main');

function show(...children: Child[]): void {
  fill(main, ...children);
}

/** Where the page's state ends when all went well: green, or amber for a key trusted on first use. */
function verified(pins: Pins, client: LedgerClient): void {
  const firstUse = pins.nodeKeys.length === 0 || pins.firstUse || client.firstUseKey !== undefined;
  const head = client.lastHead;
  const detail = head === undefined ? '' : `head of ${head.size} events signed by ${head.key.slice(0, 12)}…`;
  setState(firstUse ? 'first-use' : 'verified', firstUse ? `${detail}; pin it with #trust=<node key> to be sure` : detail);
}

async function home(client: LedgerClient, pins: Pins): Promise<void> {
  let shown = -1;
  let headCard: HTMLElement | undefined;
  let logCard: HTMLElement | undefined;
  const render = async () => {
    const head = await client.head();
    if (head.size === shown) return;
    shown = head.size;
    const from = Math.max(0, head.size - PAGE);
    const page = await client.log(from, head.size);
    const nextHead = await headView(head, pins);
    const nextLog = h(
      'section',
      { class: 'card', 'aria-labelledby': 'log-title' },
      h('h2', { id: 'log-title' }, 'Latest events'),
      head.size === 0 ? h('p', {}, 'The log is empty.') : await logTable(page, `Events ${from} to ${head.size - 1}, newest first`),
      pager(from, head.size, head.size, PAGE),
    );
    // Later heads replace the two cards in place: the rest of the page (and the focus, outside them) stays.
    if (headCard === undefined || logCard === undefined) show(h('h1', {}, 'Registry'), nextHead, nextLog);
    else {
      headCard.replaceWith(nextHead);
      logCard.replaceWith(nextLog);
    }
    headCard = nextHead;
    logCard = nextLog;
    verified(pins, client);
  };
  await render();
  // The head is checked again every few seconds: a newer one must extend this one (the client checks consistency).
  const poll = async () => {
    try {
      await render();
      setTimeout(() => void poll(), POLL_MS);
    } catch (e) {
      show(fail(e));
    }
  };
  setTimeout(() => void poll(), POLL_MS);
}

async function logPage(client: LedgerClient, pins: Pins, from: number): Promise<void> {
  const page = await client.log(from, from + PAGE);
  show(
    h('h1', {}, 'Log'),
    page.records.length === 0
      ? h('p', {}, `The log has ${page.head.size} events.`)
      : await logTable(page, `Events ${from} to ${from + page.records.length - 1}`),
    pager(from, from + page.records.length, page.head.size, PAGE),
  );
  verified(pins, client);
}

/** A search goes to the subject's page, or says what a search needs. */
function search(query: string): void {
  const q = query.trim();
  if (q.startsWith(DID_PREFIX) || q.startsWith(POLICY_PREFIX)) {
    location.replace(subjectHref(q));
    return;
  }
  show(
    h('h1', {}, 'Search'),
    h('p', { role: 'alert' }, q === '' ? 'Enter a DID or a policy address.' : `“${q}” is neither a DID (did:dkms:…) nor a policy address (policy:…).`),
  );
  setState('verified', 'nothing to verify');
}

async function route(client: LedgerClient, pins: Pins): Promise<void> {
  const path = decodeURIComponent(location.pathname.replace(/^\/ui\/?/, ''));
  const params = new URLSearchParams(location.search);
  const [section = '', ...rest] = path.split('/');
  const value = rest.join('/');
  if (section === '' || section === 'index.html') return home(client, pins);
  if (section === 'search') return search(params.get('q') ?? '');
  if (section === 'log') return logPage(client, pins, Math.max(0, Number.parseInt(params.get('from') ?? '0', 10) || 0));
  if (section === 'event' && /^\d+$/.test(value)) {
    show(...(await eventView(client, Number(value))));
    return verified(pins, client);
  }
  if (section === 'did' && value.startsWith(DID_PREFIX)) {
    show(...(await didView(client, value as Did)));
    (byId('q') as HTMLInputElement).value = value;
    return verified(pins, client);
  }
  if (section === 'policy' && value.startsWith(POLICY_PREFIX)) {
    show(...(await policyView(client, value as PolicyAddress)));
    (byId('q') as HTMLInputElement).value = value;
    return verified(pins, client);
  }
  show(h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. ', h('a', { href: '/ui/' }, 'Back to the registry.')));
  setState('verified', 'nothing to verify');
}

async function start(): Promise<void> {
  setState('verifying');
  show(h('p', { class: 'muted' }, 'Verifying…'));
  const test = await checkWebCrypto();
  if (!test.ok) {
    show(fail(new Error(test.reason)));
    return;
  }
  let pins: Pins;
  try {
    pins = readPins();
  } catch (e) {
    show(fail(e));
    return;
  }
  const client = openLedger(pins);
  tickAges();
  try {
    await route(client, pins);
  } catch (e) {
    show(fail(e));
  }
}

void start();
