/**
 * What every crash child (the *-child.mjs scripts the crash tests kill) shares: a line on stdout
 * written with writeSync, so it is in the pipe before the next step starts, and no life beyond
 * the parent's.
 */
import { writeSync } from 'node:fs';

export function say(line) {
  writeSync(1, `${line}\n`);
}

export function fail(message) {
  throw new Error(message);
}

/** Exits (status 3) once the parent is gone: it holds our stdin open until it is done with us. */
export function dieWithParent() {
  process.stdin.on('end', () => process.exit(3));
  process.stdin.on('error', () => process.exit(3));
  process.stdin.resume();
}
