/**
 * Response delay: fixed + per input + uniform jitter in [0, jitterMs).
 *
 * State: a generator of its own, seeded from the fault seed but a separate stream, so
 * turning jitter on or off never changes which requests get faults. `reset` restarts it.
 */
import type { LatencyOptions } from './options.js';
import { mulberry32 } from './prng.js';

const STREAM = 0x6a177e5;

export class Latency {
  private next: () => number;

  constructor(
    private options: LatencyOptions,
    private seed: number,
  ) {
    this.next = mulberry32(seed ^ STREAM);
  }

  configure(options: LatencyOptions, seed: number): void {
    this.options = options;
    if (seed !== this.seed) {
      this.seed = seed;
      this.reset();
    }
  }

  reset(): void {
    this.next = mulberry32(this.seed ^ STREAM);
  }

  /** Milliseconds to hold a response of `inputs` elements. */
  delayMs(inputs: number): number {
    const { fixedMs, perInputMs, jitterMs } = this.options;
    const jitter = jitterMs > 0 ? this.next() * jitterMs : 0;
    return fixedMs + perInputMs * inputs + jitter;
  }
}
