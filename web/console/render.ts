/** Any JSON the CLI answered, shown as a reader would want it: objects as facts, lists of objects as tables. */
import { h, type Child } from '../shared/dom.js';

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function label(key: string): string {
  const words = key.replace(/([a-z])([A-Z])/g, '$1 $2').replace(/[_-]/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1).toLowerCase();
}

function scalar(value: unknown): Child {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, '—');
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'string' && /^z6M|^policy:|^did:dkms:/.test(value)) return h('code', {}, value);
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  return h('code', {}, JSON.stringify(value));
}

/** `value` as nested facts and tables, `depth` levels deep before falling back to compact JSON. */
export function jsonView(value: unknown, depth = 0): Child {
  if (Array.isArray(value)) {
    if (value.length === 0) return h('span', { class: 'muted' }, 'none');
    if (value.every(isObject)) {
      const columns = [...new Set(value.flatMap((row) => Object.keys(row)))];
      return h(
        'table',
        {},
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            columns.map((c) => h('th', { scope: 'col' }, label(c))),
          ),
        ),
        h(
          'tbody',
          {},
          value.map((row) =>
            h(
              'tr',
              {},
              columns.map((c) => h('td', {}, depth < 2 && (isObject(row[c]) || Array.isArray(row[c])) ? jsonView(row[c], depth + 1) : scalar(row[c]))),
            ),
          ),
        ),
      );
    }
    return value.map((item, i) => [i > 0 ? ', ' : '', scalar(item)]);
  }
  if (isObject(value)) {
    if (depth > 2) return scalar(value);
    const entries = Object.entries(value);
    if (entries.length === 0) return h('span', { class: 'muted' }, 'nothing');
    return h(
      'dl',
      { class: 'facts' },
      entries.map(([key, inner]) => [h('dt', {}, label(key)), h('dd', {}, jsonView(inner, depth + 1))]),
    );
  }
  return scalar(value);
}
