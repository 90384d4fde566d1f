/**
 * The wallet's key hierarchy as a picture: what opens it (the master level: the passphrase, and a
 * token or custodians when bound to them), the store key derived from those, and the keys it
 * holds, by name and where each lives. Public facts only: no key material reaches the browser.
 */
import { s } from '../shared/dom.js';

export interface WalletKeyFact {
  readonly name: string;
  readonly type: string;
  readonly location: string;
}

const text = (x: number, y: number, content: string, cls = 'small') => s('text', { x, y, class: cls }, content);

export function keyHierarchy(factors: readonly string[], keys: readonly WalletKeyFact[]): SVGSVGElement {
  const rowHeight = 40;
  const rows = Math.max(factors.length, keys.length, 1);
  const height = rows * rowHeight + 50;
  const width = 720;
  const middle = height / 2;
  const parts: SVGElement[] = [
    text(10, 16, 'master: what opens it', 'label'),
    text(250, 16, 'key-encrypting', 'label'),
    text(480, 16, 'data: keys held', 'label'),
  ];
  factors.forEach((factor, i) => {
    const y = 30 + i * rowHeight;
    parts.push(
      s('rect', { x: 10, y, width: 200, height: 30, rx: 6, class: 'node node-policy' }),
      text(20, y + 20, factor),
      s('line', { x1: 210, y1: y + 15, x2: 250, y2: middle, class: 'edge' }),
    );
  });
  parts.push(
    s('rect', { x: 250, y: middle - 20, width: 190, height: 40, rx: 6, class: 'node node-admin' }),
    text(260, middle - 3, 'wallet store key'),
    text(260, middle + 12, 'encrypts every item'),
  );
  keys.forEach((key, i) => {
    const y = 30 + i * rowHeight;
    parts.push(
      s('line', { x1: 440, y1: middle, x2: 480, y2: y + 15, class: 'edge' }),
      s('rect', { x: 480, y, width: 230, height: 30, rx: 6, class: 'node' }),
      text(490, y + 13, `${key.name} (${key.type})`),
      text(490, y + 26, key.location),
    );
  });
  const description = `opened by ${factors.join(' and ') || 'nothing recorded'}; the store key protects ${keys.length} keys: ${keys.map((k) => `${k.name} (${k.type}, ${k.location})`).join(', ')}`;
  return s(
    'svg',
    { class: 'picture', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-labelledby': 'hierarchy-title hierarchy-desc' },
    s('title', { id: 'hierarchy-title' }, 'The wallet’s key hierarchy'),
    s('desc', { id: 'hierarchy-desc' }, description),
    ...parts,
  );
}
