/**
 * One identity: a policy (its agents and flags, rules, recovery commitment and any pending
 * recovery) or a DID (its controller, services, and every version of its document, with a diff
 * between any two), and the timeline of every event that made it so. All of it computed here
 * from the chain the ledger client verified from inception, never the server's summary.
 */
import type { LedgerClient, ResolvedDidRecord, ResolvedPolicy } from '../../src/ledger/client.js';
import type { Did, PolicyAddress } from '../../src/ledger/events.js';
import type { PolicyRecord } from '../../src/ledger/state.js';
import { FLAGS, hasFlag } from '../../src/policy/flags.js';
import type { StateStep } from '../../src/ledger/verified-cache.js';
import { h, type Child } from '../shared/dom.js';
import { duration, flagsText, short, when } from '../shared/format.js';
import { badge } from '../shared/status.js';
import { didVersions, type DidVersion } from './did-versions.js';
import { diffJson } from './diff.js';
import { subjectHref } from './links.js';
import { agentGraph, agentLanes } from './pictures.js';
import { agentLanes as lanesOf, timelineOf, type Change, type TimelineEntry } from './timeline.js';

function changeText(change: Change): Child {
  switch (change.kind) {
    case 'policy-created':
      return `policy created with ${change.agents} agent${change.agents === 1 ? '' : 's'}`;
    case 'agent-added':
      return ['agent ', h('code', { title: change.key }, short(change.key)), ` added: ${flagsText(change.flags)}`];
    case 'agent-removed':
      return ['agent ', h('code', { title: change.key }, short(change.key)), ' removed'];
    case 'flags-changed':
      return ['agent ', h('code', { title: change.key }, short(change.key)), `: ${flagsText(change.from)} → ${flagsText(change.to)}`];
    case 'kx-changed':
      return [
        'agent ',
        h('code', { title: change.key }, short(change.key)),
        `: key-agreement key ${change.from === undefined ? 'none' : short(change.from)} → ${change.to === undefined ? 'none' : short(change.to)}`,
      ];
    case 'rules-changed':
      return `signatures needed: ${rulesText(change.from)} → ${rulesText(change.to)}`;
    case 'recovery-committed':
      return `recovery committed: ${change.threshold} of ${change.digests} recovery keys${change.delaySeconds > 0 ? `, waiting ${duration(change.delaySeconds)}` : ', taking effect at once'}`;
    case 'recovery-pending':
      return `recovery started by ${change.revealed} recovery key${change.revealed === 1 ? '' : 's'}: it can be cancelled until ${when(change.until)}`;
    case 'recovery-cancelled':
      return 'pending recovery cancelled';
    case 'recovery-completed':
      return 'pending recovery completed';
    case 'did-created':
      return ['DID created, controlled by ', h('a', { href: subjectHref(change.controller) }, short(change.controller, 16))];
    case 'services-changed':
      return `services: ${[...change.added.map((id) => `+${id}`), ...change.removed.map((id) => `−${id}`), ...change.changed.map((id) => `~${id}`)].join(' ') || 'unchanged'}`;
    case 'did-deactivated':
      return 'DID deactivated for good';
  }
}

function rulesText(rules: { grant: number; revoke: number; rules: number; did: number }): string {
  return `grant ${rules.grant}, revoke ${rules.revoke}, rules ${rules.rules}, DID ${rules.did}`;
}

function timelineList(entries: readonly TimelineEntry[]): HTMLElement {
  return h(
    'ol',
    { class: 'timeline', reversed: true },
    [...entries].reverse().map((entry) =>
      h(
        'li',
        { 'data-gseq': entry.gseq, 'data-type': entry.type },
        h(
          'div',
          { class: 'timeline-head' },
          h('a', { href: `/ui/event/${entry.gseq}` }, `#${entry.gseq}`),
          ' ',
          h('code', {}, entry.type),
          ' ',
          h('time', { datetime: entry.time }, when(entry.time)),
          ' ',
          badge(true, `event ${entry.gseq}`),
        ),
        h(
          'ul',
          { class: 'changes' },
          entry.changes.map((c) => h('li', {}, changeText(c))),
        ),
        h(
          'p',
          { class: 'signers small' },
          entry.signers.length === 0 ? 'no signatures' : ['signed by ', entry.signers.map((k, i) => [i > 0 ? ', ' : '', h('code', { title: k }, short(k))])],
        ),
      ),
    ),
  );
}

function policyFacts(record: PolicyRecord): HTMLElement {
  const { policy } = record;
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'agents-title' },
    h('h2', { id: 'agents-title' }, 'Agents now'),
    h(
      'table',
      {},
      h('caption', { class: 'visually-hidden' }, 'The policy’s agents and their flags'),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Signing key'), h('th', { scope: 'col' }, 'Flags'), h('th', { scope: 'col' }, 'Key agreement'))),
      h(
        'tbody',
        {},
        policy.agents.map((a) =>
          h(
            'tr',
            {},
            h('td', {}, h('code', { class: 'hash' }, a.key)),
            h('td', {}, flagsText(a.flags)),
            h('td', {}, a.kx === undefined ? '—' : h('code', { title: a.kx }, short(a.kx))),
          ),
        ),
      ),
    ),
    agentGraph(record.subject, policy.agents),
    h(
      'dl',
      { class: 'facts' },
      h('dt', {}, 'Signatures needed'),
      h('dd', {}, rulesText(policy.rules)),
      h('dt', {}, 'Recovery'),
      h(
        'dd',
        {},
        `${policy.recovery.threshold} of ${policy.recovery.digests.length} committed recovery keys`,
        policy.recovery.delay ? `, then a wait of ${duration(policy.recovery.delay)} during which ADMIN agents may cancel` : ', taking effect at once',
      ),
      h('dt', {}, 'Recovery keys used'),
      h('dd', {}, String(policy.revealed.length)),
      h('dt', {}, 'Pending recovery'),
      h(
        'dd',
        { 'data-field': 'pending' },
        policy.pending === undefined ? 'none' : `started ${when(policy.pending.since)}; completes from ${when(policy.pending.until)} unless cancelled`,
      ),
      h('dt', {}, 'Events'),
      h('dd', {}, `${record.seq + 1}, the latest at ${when(record.updated.time)}`),
    ),
  );
}

function versionsSection(versions: readonly DidVersion[]): HTMLElement {
  const output = h('div', { class: 'diff', 'aria-live': 'polite' });
  const options = (selected: number) =>
    versions.map((v) => h('option', { value: v.version, selected: v.version === selected }, `v${v.version} — #${v.gseq} ${v.cause.type}`));
  const from = h('select', { id: 'diff-from' }, options(Math.max(1, versions.length - 1)));
  const to = h('select', { id: 'diff-to' }, options(versions.length));
  const show = () => {
    const a = versions.find((v) => String(v.version) === from.value);
    const b = versions.find((v) => String(v.version) === to.value);
    output.replaceChildren(
      h(
        'pre',
        { class: 'diff-lines', tabindex: 0, 'aria-label': `Changes from version ${from.value} to version ${to.value}` },
        diffJson(a?.document ?? null, b?.document ?? null).map((line) =>
          h('span', { class: `diff-${line.op}` }, line.op === 'added' ? '+ ' : line.op === 'removed' ? '− ' : '  ', line.text, '\n'),
        ),
      ),
    );
  };
  from.addEventListener('change', show);
  to.addEventListener('change', show);
  show();
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'versions-title' },
    h('h2', { id: 'versions-title' }, `DID document: ${versions.length} version${versions.length === 1 ? '' : 's'}`),
    h(
      'ol',
      { class: 'versions' },
      versions.map((v) => h('li', {}, `v${v.version}: `, h('a', { href: `/ui/event/${v.gseq}` }, `#${v.gseq}`), ` ${v.cause.type} at ${when(v.time)}`)),
    ),
    h('div', { class: 'diff-pick' }, h('label', { for: 'diff-from' }, 'Compare '), from, h('label', { for: 'diff-to' }, ' with '), to),
    output,
    h('details', {}, h('summary', {}, 'Latest document'), h('pre', { class: 'json' }, JSON.stringify(versions.at(-1)?.document ?? null, null, 2))),
  );
}

function stepsOf(client: LedgerClient, subject: string): Readonly<Record<string, readonly StateStep[]>> {
  return client.cache.get(subject as PolicyAddress)?.steps ?? {};
}

function timelineSection(entries: readonly TimelineEntry[], lanes: Child): HTMLElement {
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'timeline-title' },
    h('h2', { id: 'timeline-title' }, `Timeline: ${entries.length} event${entries.length === 1 ? '' : 's'}`),
    lanes,
    timelineList(entries),
  );
}

export async function policyView(client: LedgerClient, address: PolicyAddress): Promise<HTMLElement[]> {
  const resolved: ResolvedPolicy = await client.resolvePolicy(address);
  const steps = stepsOf(client, address);
  const policySteps = steps[address] ?? [];
  const entries = timelineOf(resolved.history, steps);
  return [
    h('h1', {}, 'Policy ', h('code', { class: 'hash' }, address), ' ', badge(true, 'policy chain')),
    h(
      'p',
      { class: 'muted' },
      `Verified here from its first event: ${resolved.history.length} events, each signed by agents the policy allowed, under the head of ${resolved.head.size} events.`,
    ),
    policyFacts(resolved.record),
    timelineSection(
      entries,
      agentLanes(
        lanesOf(policySteps),
        policySteps.map((s) => s.gseq),
      ),
    ),
  ];
}

export async function didView(client: LedgerClient, did: Did): Promise<HTMLElement[]> {
  const resolved: ResolvedDidRecord = await client.resolveDidRecord(did);
  const steps = stepsOf(client, did);
  const entries = timelineOf(resolved.history, steps);
  const versions = didVersions(did, resolved.history, steps);
  const { record } = resolved;
  const policySteps = steps[record.controller] ?? [];
  return [
    h('h1', {}, 'DID ', h('code', { class: 'hash' }, did), ' ', badge(true, 'DID chain')),
    h(
      'p',
      { class: 'muted' },
      `Verified here from its first event, with its controlling policy’s chain: ${resolved.history.length} events under the head of ${resolved.head.size} events.`,
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'did-title' },
      h('h2', { id: 'did-title' }, 'State'),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Controller'),
        h('dd', {}, h('a', { href: subjectHref(record.controller) }, h('code', {}, record.controller))),
        h('dt', {}, 'Status'),
        h('dd', { 'data-field': 'status' }, record.deactivated ? 'deactivated' : 'active'),
        h('dt', {}, 'Services'),
        h(
          'dd',
          {},
          record.services.length === 0
            ? 'none'
            : h(
                'ul',
                {},
                record.services.map((svc) => h('li', {}, h('code', {}, svc.id), ` ${svc.type}: `, h('code', {}, svc.serviceEndpoint))),
              ),
        ),
        h('dt', {}, 'Keys that prove for it'),
        h('dd', {}, String(resolved.policy.policy.agents.filter((a) => hasFlag(a.flags, FLAGS.PROVE)).length)),
      ),
      agentGraph(record.controller, resolved.policy.policy.agents),
    ),
    versionsSection(versions),
    timelineSection(
      entries,
      agentLanes(
        lanesOf(policySteps),
        policySteps.map((s) => s.gseq),
      ),
    ),
  ];
}
