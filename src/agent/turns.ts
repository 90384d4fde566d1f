/**
 * Work on one wallet that must not interleave when several agent objects share it (the unlock
 * session runs commands side by side, each with its own EdgeAgent over the session's wallet):
 * each kind of work takes turns per wallet, in the order it was asked for.
 */
export class Turns {
  readonly #last = new WeakMap<object, Promise<unknown>>();

  /** Runs `fn` once every earlier call for `wallet` has settled; its result. */
  run<T>(wallet: object, fn: () => Promise<T>): Promise<T> {
    const before = this.#last.get(wallet) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    this.#last.set(
      wallet,
      mine.catch(() => undefined),
    );
    return mine;
  }
}

/**
 * The agency item ids a wallet's agents handled lately, so that a pickup made while another agent
 * object was handling the same items (both picked them up before either acknowledged them)
 * does not handle them twice. Bounded: the oldest ids are forgotten first.
 */
export class RecentIds {
  readonly #ids = new WeakMap<object, Set<string>>();
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  has(wallet: object, id: string): boolean {
    return this.#ids.get(wallet)?.has(id) === true;
  }

  add(wallet: object, id: string): void {
    let ids = this.#ids.get(wallet);
    if (ids === undefined) this.#ids.set(wallet, (ids = new Set()));
    ids.add(id);
    if (ids.size > this.#limit) ids.delete(ids.values().next().value as string);
  }
}
