/** The live tree head: size, roots, time and age, the node's key, and each witness's cosignature checked here. */
import { verifyCosignature, bareHead, type ServedHead } from '../../src/ledger/head.js';
import { settle } from '../../src/crypto/index.js';
import { h } from '../shared/dom.js';
import { age, short, when } from '../shared/format.js';
import { badge } from '../shared/status.js';
import type { Pins } from '../shared/trust.js';

/** How each cosignature stands: valid and by a trusted witness, valid but by a key not trusted here, or invalid. */
async function cosignatureRows(head: ServedHead, pins: Pins): Promise<HTMLElement[]> {
  const rows: HTMLElement[] = [];
  for (const cosignature of head.cosignatures ?? []) {
    const valid = await settle(() => verifyCosignature(bareHead(head), cosignature));
    const trusted = pins.witnessKeys.includes(cosignature.key);
    rows.push(
      h(
        'tr',
        {},
        h('td', {}, h('code', { title: cosignature.key }, short(cosignature.key))),
        h('td', {}, h('time', { datetime: cosignature.time }, when(cosignature.time))),
        h('td', {}, badge(valid, 'cosignature'), ' ', valid ? (trusted ? 'trusted witness' : 'witness not trusted here') : 'invalid signature'),
      ),
    );
  }
  return rows;
}

export async function headView(head: ServedHead, pins: Pins): Promise<HTMLElement> {
  const ageText = h('span', { class: 'age', 'data-time': head.time }, age(head.time));
  const cosignatures = await cosignatureRows(head, pins);
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'head-title' },
    h('h2', { id: 'head-title' }, 'Tree head ', badge(true, 'tree head')),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Events'),
      h('dd', { 'data-field': 'size' }, String(head.size)),
      h('dt', {}, 'Signed'),
      h('dd', {}, h('time', { datetime: head.time }, when(head.time)), ' (', ageText, ')'),
      h('dt', {}, 'Log root'),
      h('dd', {}, h('code', { class: 'hash' }, head.root)),
      h('dt', {}, 'Map root'),
      h('dd', {}, h('code', { class: 'hash' }, head.map)),
      h('dt', {}, 'Node key'),
      h('dd', {}, h('code', { class: 'hash' }, head.key), pins.firstUse || pins.nodeKeys.length === 0 ? ' (trusted on first use)' : ' (pinned)'),
    ),
    cosignatures.length === 0
      ? h('p', { class: 'muted' }, 'No witness has cosigned this head.')
      : h(
          'table',
          {},
          h('caption', {}, 'Witness cosignatures'),
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Witness'), h('th', { scope: 'col' }, 'Time'), h('th', { scope: 'col' }, 'Check'))),
          h('tbody', {}, cosignatures),
        ),
  );
}

/** Keeps every `.age` element's text current. */
export function tickAges(): void {
  setInterval(() => {
    for (const element of document.querySelectorAll<HTMLElement>('.age[data-time]')) element.textContent = age(element.dataset.time ?? '');
  }, 1000);
}
