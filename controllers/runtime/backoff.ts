export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
  /**
   * Fraction of each delay that is randomised away: 0.5 gives delays in [d/2, d]. Replicas that
   * lost the API server together then do not come back in lock step, and the cap still holds.
   */
  jitter?: number;
  /** [0, 1); injected so tests get exact delays. */
  random?: () => number;
}

/** Exponential backoff with jitter and a cap: `initial · factor^n`, shortened at random. */
export class Backoff {
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempts = 0;

  constructor(options: BackoffOptions) {
    this.#initialMs = options.initialMs;
    this.#maxMs = options.maxMs;
    this.#factor = options.factor ?? 2;
    this.#jitter = options.jitter ?? 0.5;
    this.#random = options.random ?? Math.random;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempts;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const exponent = Math.min(this.#attempts, 64);
    this.#attempts++;
    const ceiling = Math.min(this.#maxMs, this.#initialMs * this.#factor ** exponent);
    return Math.round(ceiling * (1 - this.#jitter * this.#random()));
  }

  reset(): void {
    this.#attempts = 0;
  }
}
