// The one in-memory holder: reconcilers set what they observed, handlers and listeners read it.
// Every holder states when two values are the same (listeners hear only of real changes, since
// reconcilers set the same value on every sync) and may refuse a value before anyone sees it.

export interface HolderOptions<T> {
  /** Whether `next` is no change from `current`. */
  equal: (current: T, next: T) => boolean;
  /** Throws to refuse a value; the holder keeps the one it had and tells nobody. */
  validate?: (value: T) => void;
  /** What is stored for an accepted value, e.g. a frozen copy, so the caller's object stays its own. */
  copy?: (value: T) => T;
}

/** Same object (or primitive): for values that are replaced, never edited in place. */
export const sameValue = <T>(current: T, next: T): boolean => Object.is(current, next);

export class Holder<T> {
  #value: T;
  readonly #options: HolderOptions<T>;
  readonly #listeners = new Set<(value: T) => void>();

  constructor(initial: T, options: HolderOptions<T>) {
    this.#options = options;
    this.#value = options.copy ? options.copy(initial) : initial;
  }

  get(): T {
    return this.#value;
  }

  /** Validates, then stores and notifies when the value differs by the holder's rule. */
  set(value: T): void {
    this.#options.validate?.(value);
    if (this.#options.equal(this.#value, value)) return;
    this.#value = this.#options.copy ? this.#options.copy(value) : value;
    // A copy of the set: a listener may unsubscribe (or subscribe) while it is told.
    for (const listener of [...this.#listeners]) listener(this.#value);
  }

  /** Calls `listener` with every change from now on; returns the unsubscribe function. */
  onChange(listener: (value: T) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
