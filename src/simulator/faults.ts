/**
 * Seeded fault injection: the same seed and the same sequence of requests give the same
 * faults, so a flaky-looking failure in a test can be replayed.
 *
 * State: the generator (seeded from `seed`) and the requests left in a 429 burst.
 * Each request that reaches processing either continues a burst (no draw) or takes
 * exactly one draw, mapped onto consecutive bands: 500, 503, burst start, hang, drop,
 * then none. `configure` with a new seed, and `reset`, restart the generator and end
 * any burst; a patch without a seed keeps the sequence going.
 */
import type { FaultOptions } from './options.js';
import { mulberry32 } from './prng.js';

export type FaultKind = 'error500' | 'error503' | 'burst429' | 'hang' | 'drop';

export class FaultInjector {
  private next: () => number;
  private burstLeft = 0;

  constructor(private options: FaultOptions) {
    this.next = mulberry32(options.seed);
  }

  configure(options: FaultOptions): void {
    const reseed = options.seed !== this.options.seed;
    this.options = options;
    if (reseed) this.reset();
  }

  reset(): void {
    this.next = mulberry32(this.options.seed);
    this.burstLeft = 0;
  }

  /** The fault for the next request, if any. */
  draw(): FaultKind | undefined {
    if (this.burstLeft > 0) {
      this.burstLeft--;
      return 'burst429';
    }
    const o = this.options;
    const bands: readonly [FaultKind, number][] = [
      ['error500', o.error500Rate],
      ['error503', o.error503Rate],
      ['burst429', o.burst429Rate],
      ['hang', o.hangRate],
      ['drop', o.dropRate],
    ];
    if (bands.every(([, r]) => r === 0)) return undefined;
    const u = this.next();
    let edge = 0;
    for (const [kind, r] of bands) {
      edge += r;
      if (u < edge) {
        if (kind === 'burst429') this.burstLeft = o.burst429Length - 1;
        return kind;
      }
    }
    return undefined;
  }
}
