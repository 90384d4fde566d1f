/** Where a run of `dkms` takes place: its terminal and, in the unlock session, the session's open wallet. */
import type { Command } from 'commander';
import type { Wallet } from '../wallet/index.js';
import type { CommandIo } from './io.js';

export interface RunPlace {
  readonly io: CommandIo;
  /** The wallet the unlock session holds open, and its data directory. */
  readonly session?: { readonly home: string; readonly wallet: Wallet };
}

const places = new WeakMap<Command, RunPlace>();

/** Makes `place` the one every command of `program` runs in (main.ts, per run). */
export function setRunPlace(program: Command, place: RunPlace): void {
  places.set(program, place);
}

/** The place the program `command` belongs to runs in. */
export function placeOf(command: Command): RunPlace {
  let root = command;
  while (root.parent !== null) root = root.parent;
  const place = places.get(root);
  if (place === undefined) throw new Error('a command ran outside main(): no terminal to run in');
  return place;
}
