/** A scheduled callback that can be cancelled; cancelling twice or after it fired is harmless. */
export interface Timer {
  cancel(): void;
}

/**
 * Time as the runtime sees it. Everything that waits or stamps a time takes a Clock so that
 * tests can drive it with a FakeClock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Runs `callback` once after `delayMs` (negative delays count as 0). */
  setTimeout(callback: () => void, delayMs: number): Timer;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout(callback, delayMs) {
    const handle = setTimeout(callback, Math.max(0, delayMs));
    return { cancel: () => clearTimeout(handle) };
  },
};

/**
 * Waits `delayMs` on `clock`. Resolves `true` when the time passed and `false` as soon as
 * `signal` aborts, so loops can check the signal instead of catching an abort error.
 */
export function sleep(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      timer.cancel();
      resolve(false);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, delayMs);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolves once `signal` aborts (at once if it already has). */
export function whenAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** Kubernetes' `metav1.Time` wire format: RFC 3339 in UTC with second precision. */
export function rfc3339(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** Kubernetes' `metav1.MicroTime` wire format (Lease times): six fractional digits are required. */
export function rfc3339Micro(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}000Z`;
}

interface FakeTimer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/**
 * A clock that only moves when a test moves it. Timers fire in due-time order (ties in the
 * order they were scheduled), including timers scheduled by callbacks that fire on the way.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Set<FakeTimer>();

  constructor(startMs = Date.UTC(2026, 0, 2, 3, 4, 5)) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, delayMs: number): Timer {
    const timer: FakeTimer = { at: this.#now + Math.max(0, delayMs), seq: this.#seq++, callback };
    this.#timers.add(timer);
    return { cancel: () => this.#timers.delete(timer) };
  }

  /** Number of timers still waiting to fire. */
  pending(): number {
    return this.#timers.size;
  }

  /** Due time of the earliest waiting timer, if any. */
  nextDue(): number | undefined {
    return this.#earliest()?.at;
  }

  /** Moves time forward by `ms`, synchronously firing every timer that falls due. */
  step(ms: number): void {
    const target = this.#now + ms;
    for (let timer = this.#due(target); timer; timer = this.#due(target)) this.#fire(timer);
    this.#now = target;
  }

  /**
   * Like `step`, but lets promise chains and I/O callbacks settle before and after every
   * timer, so async code awaiting the clock makes progress the way it would in real time.
   */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (let timer = this.#due(target); timer; timer = this.#due(target)) {
      this.#fire(timer);
      await settle();
    }
    this.#now = target;
    await settle();
  }

  #fire(timer: FakeTimer): void {
    this.#timers.delete(timer);
    this.#now = timer.at;
    timer.callback();
  }

  #due(target: number): FakeTimer | undefined {
    const timer = this.#earliest();
    return timer && timer.at <= target ? timer : undefined;
  }

  #earliest(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers) {
      if (!best || t.at < best.at || (t.at === best.at && t.seq < best.seq)) best = t;
    }
    return best;
  }
}

/** Lets pending promise reactions and already-queued I/O callbacks run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
