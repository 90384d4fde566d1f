/** One log record: the event as signed, where it sits, and its inclusion proof drawn and checked here. */
import { fromBase64url, settle } from '../../src/crypto/index.js';
import type { LedgerClient } from '../../src/ledger/client.js';
import { subjectOf } from '../../src/ledger/events.js';
import { rootBytes } from '../../src/ledger/head.js';
import { verifyInclusion, type InclusionStep } from '../../src/ledger/merkle.js';
import { recordLeaf } from '../../src/ledger/replay.js';
import { h } from '../shared/dom.js';
import { short, when } from '../shared/format.js';
import { badge } from '../shared/status.js';
import { subjectHref } from './links.js';
import { merkleProof } from './pictures.js';

export async function eventView(client: LedgerClient, gseq: number): Promise<HTMLElement[]> {
  const page = await client.log(gseq, gseq + 1);
  const record = page.records[0];
  if (record === undefined) return [h('h1', {}, `Event #${gseq}`), h('p', {}, `The log has ${page.head.size} events: there is no event #${gseq} yet.`)];
  const proof = (page.proofs[0] ?? []).map((p) => fromBase64url(p));
  // Drawn from the same computation that checks it (the client checked it already; this is the picture).
  const { leaf, steps, included } = await settle(() => {
    const path: InclusionStep[] = [];
    const leafHash = recordLeaf(record);
    const ok = verifyInclusion(leafHash, gseq, page.head.size, proof, rootBytes(page.head), (step) => path.push(step));
    return { leaf: leafHash, steps: path, included: ok };
  });
  const subject = await settle(() => subjectOf(record.event));
  return [
    h('h1', {}, `Event #${gseq} `, badge(included, `event ${gseq}`)),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Type'),
      h('dd', {}, h('code', {}, record.event.type)),
      h('dt', {}, 'Subject'),
      h('dd', {}, h('a', { href: subjectHref(subject) }, h('code', {}, subject)), ` seq ${record.event.seq}`),
      h('dt', {}, 'Accepted'),
      h('dd', {}, h('time', { datetime: record.time }, when(record.time))),
      h('dt', {}, 'Signatures'),
      h(
        'dd',
        {},
        record.event.sigs.length === 0 ? 'none' : record.event.sigs.map((sig, i) => [i > 0 ? ', ' : '', h('code', { title: sig.kid }, short(sig.kid))]),
        ' — each checked here',
      ),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'proof-title' },
      h('h2', { id: 'proof-title' }, 'Inclusion proof'),
      h(
        'p',
        {},
        `This event is leaf ${gseq} of the ${page.head.size}-event log whose root the node signed. From the event’s leaf hash and the ${proof.length} hashes of the proof, this page computes the root again: it ${included ? 'equals' : 'does not equal'} the signed root.`,
      ),
      h('div', { class: 'picture-frame' }, merkleProof(gseq, leaf, steps, page.head.root, included)),
    ),
    h('details', { open: true }, h('summary', {}, 'The event as signed'), h('pre', { class: 'json' }, JSON.stringify(record.event, null, 2))),
  ];
}
