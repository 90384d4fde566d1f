/** The event stream: log records, each proven included under the verified head and its signatures checked. */
import { settle } from '../../src/crypto/index.js';
import type { VerifiedLogPage } from '../../src/ledger/client.js';
import { subjectOf } from '../../src/ledger/events.js';
import { h } from '../shared/dom.js';
import { short, when } from '../shared/format.js';
import { badge } from '../shared/status.js';
import { subjectHref } from './links.js';

/** A table of the page's records, newest first. */
export async function logTable(page: VerifiedLogPage, caption: string): Promise<HTMLElement> {
  const subjects = await settle(() => page.records.map((r) => subjectOf(r.event)));
  const rows = page.records
    .map((record, i) => {
      const subject = subjects[i] ?? '';
      return h(
        'tr',
        { 'data-gseq': record.gseq },
        h('td', {}, h('a', { href: `/ui/event/${record.gseq}` }, `#${record.gseq}`)),
        h('td', {}, h('time', { datetime: record.time }, when(record.time))),
        h('td', {}, h('code', {}, record.event.type)),
        h('td', {}, h('a', { href: subjectHref(subject), title: subject }, short(subject, 18)), ` seq ${record.event.seq}`),
        h('td', {}, String(record.event.sigs.length)),
        h('td', {}, badge(true, `event ${record.gseq}`)),
      );
    })
    .reverse();
  return h(
    'table',
    { class: 'log' },
    h('caption', {}, caption),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Event'),
        h('th', { scope: 'col' }, 'Time'),
        h('th', { scope: 'col' }, 'Type'),
        h('th', { scope: 'col' }, 'Subject'),
        h('th', { scope: 'col' }, 'Signatures'),
        h('th', { scope: 'col' }, 'Check'),
      ),
    ),
    h('tbody', {}, rows),
  );
}

/** Links to the newer and older pages of `size` records around [from, to). */
export function pager(from: number, to: number, size: number, pageSize: number): HTMLElement {
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Log pages' },
    to < size ? h('a', { href: `/ui/log?from=${Math.min(to, Math.max(0, size - pageSize))}` }, '← newer') : null,
    from > 0 ? h('a', { href: `/ui/log?from=${Math.max(0, from - pageSize)}` }, 'older →') : null,
  );
}
