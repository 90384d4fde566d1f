/**
 * The dashboard's colours meet WCAG 2.2 AA: every pair of text and background its stylesheet
 * uses has a contrast ratio of at least 4.5:1 (3:1 for the focus ring and borders that mark a
 * state, which are not text). Read from web/style.css's variables, so a colour changed there is
 * checked here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const css = readFileSync(new URL('../../web/style.css', import.meta.url), 'utf8');
const variables = new Map([...css.matchAll(/--([a-z-]+):\s*(#[0-9a-f]{6})\s*;/gi)].map((m) => [m[1] as string, (m[2] as string).toLowerCase()]));

function colour(name: string): string {
  const value = variables.get(name);
  if (value === undefined) throw new Error(`web/style.css has no --${name}`);
  return value;
}

/** WCAG relative luminance of #rrggbb. */
function luminance(hex: string): number {
  const channel = (i: number) => {
    const c = Number.parseInt(hex.slice(1 + 2 * i, 3 + 2 * i), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
}

function contrast(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}

/** [foreground, background, minimum] as the stylesheet pairs them. */
const PAIRS: [string, string, number][] = [
  ['text', 'background', 4.5],
  ['text', 'panel', 4.5],
  ['muted', 'background', 4.5],
  ['muted', 'panel', 4.5],
  ['link', 'background', 4.5],
  ['link', 'panel', 4.5],
  ['ok-text', 'ok-background', 4.5],
  ['bad-text', 'bad-background', 4.5],
  ['warn-text', 'warn-background', 4.5],
  ['accent-text', 'accent', 4.5],
  ['accent-text', 'bad-text', 4.5],
  ['accent', 'background', 4.5],
  ['diff-added', 'panel', 4.5],
  ['diff-removed', 'panel', 4.5],
  ['focus', 'background', 3],
  ['focus', 'panel', 3],
];

describe("the dashboard's palette", () => {
  it('computes contrast as WCAG does (black on white is 21:1, a colour on itself 1:1)', () => {
    expect(contrast('#000000', '#ffffff')).toBeCloseTo(21, 5);
    expect(contrast('#777777', '#777777')).toBe(1);
    // #767676 on white is the lightest grey that passes AA, at 4.54:1.
    expect(contrast('#767676', '#ffffff')).toBeCloseTo(4.54, 2);
  });

  for (const [foreground, background, minimum] of PAIRS) {
    it(`--${foreground} on --${background} reaches ${minimum}:1`, () => {
      expect(contrast(colour(foreground), colour(background))).toBeGreaterThanOrEqual(minimum);
    });
  }
});
