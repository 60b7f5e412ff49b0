// Requests whose synchronous work is heavy (a login's CEL expressions may read tens of thousands
// of values) take turns: a flood of them finishing their I/O at once would otherwise run back to
// back inside one event-loop phase, and every timer, health check and other request would wait
// for all of them. Steps that start within `sliceMs` of the turn's start run in that turn; the
// rest wait for the next event-loop iteration, after timers and I/O have had theirs.

export class Turns {
  readonly #sliceMs: number;
  readonly #waiting: (() => void)[] = [];
  #scheduled = false;

  constructor(sliceMs = 10) {
    this.#sliceMs = sliceMs;
  }

  /**
   * Resolves when the caller may run its step. The step must be the synchronous code right after
   * the `await`: the next step is released only once the microtask that resumes it has run.
   */
  take(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#turn());
      }
    });
  }

  #turn(): void {
    const began = performance.now();
    const step = (): void => {
      const next = this.#waiting.shift();
      if (!next) {
        this.#scheduled = false;
        return;
      }
      next();
      // Queued behind the continuation that `next()` just released, so this runs once that
      // step's synchronous part has.
      queueMicrotask(() => {
        if (performance.now() - began < this.#sliceMs) step();
        else setImmediate(() => this.#turn());
      });
    };
    step();
  }
}

/**
 * The process's one queue: a login's claim mapping, the reset of a stream answered unread. Steps
 * of every kind share each turn's slice, so together they stay within it.
 */
export const turns = new Turns();
