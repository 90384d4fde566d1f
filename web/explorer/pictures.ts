/**
 * Pictures (SVG, built element by element): a policy's agents and what each may do, the agents
 * over time, and the path of a Merkle inclusion proof. Each has a title and a description for
 * screen readers; the page also says the same in text or a table beside it.
 */
import type { Agent } from '../../src/policy/types.js';
import { toBase64url } from '../../src/crypto/index.js';
import type { InclusionStep } from '../../src/ledger/merkle.js';
import { s } from '../shared/dom.js';
import { flagsText, short } from '../shared/format.js';
import type { AgentLane } from './timeline.js';

let pictures = 0;

/** An <svg role="img"> labelled by its own title and description. */
function picture(width: number, height: number, title: string, description: string, ...children: SVGElement[]): SVGSVGElement {
  const id = `picture-${++pictures}`;
  return s(
    'svg',
    {
      class: 'picture',
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-labelledby': `${id}-title ${id}-desc`,
      preserveAspectRatio: 'xMinYMin meet',
    },
    s('title', { id: `${id}-title` }, title),
    s('desc', { id: `${id}-desc` }, description),
    ...children,
  );
}

const text = (x: number, y: number, content: string, attributes: Record<string, string | number> = {}) => s('text', { x, y, ...attributes }, content);

/** The policy in the middle, each agent around it, each edge labelled with the agent's flags. */
export function agentGraph(policy: string, agents: readonly Agent[]): SVGSVGElement {
  const width = 680;
  const rowHeight = 44;
  const height = Math.max(120, agents.length * rowHeight + 40);
  const center = { x: 120, y: height / 2 };
  const parts: SVGElement[] = [
    s('rect', { x: 10, y: center.y - 22, width: 220, height: 44, rx: 8, class: 'node node-policy' }),
    text(center.x, center.y - 3, 'policy', { 'text-anchor': 'middle', class: 'label' }),
    text(center.x, center.y + 13, short(policy, 12), { 'text-anchor': 'middle', class: 'mono small' }),
  ];
  agents.forEach((agent, i) => {
    const y = 20 + i * rowHeight + rowHeight / 2;
    const admin = (agent.flags & 1) !== 0;
    parts.push(
      s('line', { x1: 230, y1: center.y, x2: 330, y2: y, class: admin ? 'edge edge-admin' : 'edge' }),
      s('rect', { x: 330, y: y - 17, width: 340, height: 34, rx: 6, class: admin ? 'node node-admin' : 'node' }),
      text(340, y - 2, short(agent.key, 14), { class: 'mono small' }),
      text(340, y + 12, flagsText(agent.flags), { class: 'small' }),
    );
  });
  const description = agents.map((a) => `agent ${a.key}: ${flagsText(a.flags)}`).join('; ') || 'no agents';
  return picture(width, height, `The agents of ${policy}`, description, ...parts);
}

/**
 * One lane per agent, left to right in the policy's own event order (not to scale in time: a
 * bar starts at the event that added the agent or changed its flags, and ends where the next
 * change or its removal is).
 */
export function agentLanes(lanes: readonly AgentLane[], events: readonly number[]): SVGSVGElement {
  const left = 150;
  const width = 620;
  const laneHeight = 34;
  const height = lanes.length * laneHeight + 36;
  const step = events.length <= 1 ? 0 : (width - left - 20) / (events.length - 1);
  const xOf = (gseq: number | undefined) => (gseq === undefined ? width - 10 : left + Math.max(0, events.indexOf(gseq)) * step);
  const parts: SVGElement[] = events.map((gseq) =>
    s(
      'g',
      {},
      s('line', { x1: xOf(gseq), y1: 4, x2: xOf(gseq), y2: height - 24, class: 'tick' }),
      text(xOf(gseq), height - 8, `#${gseq}`, { 'text-anchor': 'middle', class: 'small' }),
    ),
  );
  lanes.forEach((lane, i) => {
    const y = 8 + i * laneHeight;
    parts.push(text(4, y + 18, short(lane.key, 8), { class: 'mono small' }));
    for (const period of lane.periods) {
      const x1 = xOf(period.fromGseq);
      const x2 = Math.max(x1 + 6, xOf(period.toGseq));
      const admin = period.flags.includes('ADMIN');
      parts.push(
        s('rect', { x: x1, y: y + 4, width: x2 - x1, height: laneHeight - 12, rx: 4, class: admin ? 'bar bar-admin' : 'bar' }),
        text(x1 + 4, y + 19, period.flags.length === 0 ? 'no flags' : period.flags.join(' '), { class: 'small bar-label' }),
      );
    }
  });
  const description = lanes
    .map(
      (lane) =>
        `${lane.key}: ${lane.periods.map((p) => `${flagsText(p.flags)} from event ${p.fromGseq}${p.toGseq === undefined ? ' to now' : ` to event ${p.toGseq}`}`).join(', ')}`,
    )
    .join('; ');
  return picture(width, height, 'Agents over time', description || 'no agents', ...parts);
}

/**
 * An inclusion proof drawn from the leaf (bottom) to the root (top): at each level the proof's
 * hash on its side, and the hash of the two, computed here; the top must be the signed root.
 */
export function merkleProof(gseq: number, leaf: Uint8Array, steps: readonly InclusionStep[], root: string, matches: boolean): SVGSVGElement {
  const rowHeight = 54;
  const width = 600;
  const height = (steps.length + 2) * rowHeight + 10;
  const box = (x: number, y: number, label: string, hash: string, kind: string) => [
    s('rect', { x, y, width: 250, height: 40, rx: 6, class: `node ${kind}` }),
    text(x + 8, y + 16, label, { class: 'small' }),
    text(x + 8, y + 32, short(hash, 14), { class: 'mono small' }),
  ];
  const parts: SVGElement[] = [];
  const yOf = (level: number) => height - 10 - (level + 1) * rowHeight;
  // The path up the left column, the proof's hashes in the right one (each says on which side it joins).
  parts.push(...box(20, yOf(0), `leaf: event #${gseq}`, toBase64url(leaf), 'node-leaf'));
  steps.forEach((step, i) => {
    const y = yOf(i + 1);
    const top = i === steps.length - 1;
    parts.push(
      s('line', { x1: 145, y1: yOf(i), x2: 145, y2: y + 40, class: 'edge' }),
      s('line', { x1: 330, y1: yOf(i) + 20, x2: 200, y2: y + 40, class: 'edge edge-sibling' }),
      ...box(330, yOf(i), `proof hash ${i + 1}, joins on the ${step.side}`, toBase64url(step.sibling), 'node-sibling'),
      ...box(20, y, top ? 'root, computed here' : `level ${i + 1}, computed here`, toBase64url(step.hash), top ? (matches ? 'node-root' : 'node-bad') : ''),
    );
  });
  if (steps.length === 0) parts.push(text(300, 40, 'a one-event log: the leaf is the root', { class: 'small' }));
  parts.push(text(330, 18, `signed root: ${short(root, 14)} ${matches ? '✓ equal' : '✗ different'}`, { class: 'small' }));
  return picture(
    width,
    height,
    `Inclusion proof of event ${gseq}`,
    `${steps.length} proof hashes from the leaf to the root; the computed root ${matches ? 'equals' : 'differs from'} the signed root ${root}`,
    ...parts,
  );
}
