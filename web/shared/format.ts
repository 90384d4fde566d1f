/** How values are written on the pages. */
import { flagNames } from '../../src/policy/flags.js';

/** A key or hash shortened for reading, the whole kept for the title and copying. */
export function short(text: string, keep = 10): string {
  return text.length <= keep * 2 + 1 ? text : `${text.slice(0, keep)}…${text.slice(-6)}`;
}

export function flagsText(flags: number | readonly string[]): string {
  const names = typeof flags === 'number' ? flagNames(flags) : flags;
  return names.length === 0 ? 'no flags' : names.join(', ');
}

/** "12 s ago", "3 min ago", "2 h ago", "5 days ago" (or "in …" for a time ahead). */
export function age(time: string, now = Date.now()): string {
  const ms = now - Date.parse(time);
  const s = Math.round(Math.abs(ms) / 1000);
  const text = s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 129_600 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} days`;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

/** An ISO time as the reader's local date and time. */
export function when(time: string): string {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? time : date.toLocaleString();
}

export function duration(seconds: number): string {
  if (seconds % 86_400 === 0 && seconds > 0) return `${seconds / 86_400} day${seconds === 86_400 ? '' : 's'}`;
  if (seconds % 3600 === 0 && seconds > 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0 && seconds > 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
