/**
 * The timing arithmetic of the shared limiter's client (rate-limit.ts): where a slot given
 * in Redis's clock falls on this process's clock, and how late a request may still use it.
 *
 * Redis's clock to ours (NTP's idea): a round trip sent at local time t0 and answered at
 * t1 read Redis's clock as R somewhere in between, so Redis - local = R - (t0 + t1) / 2,
 * give or take (t1 - t0) / 2. On a busy event loop an answer can wait in the socket long
 * after it came, which makes that round trip's estimate wrong by as much: the estimate
 * kept is the one with the smallest error bound, its bound growing with age (the clocks
 * drift apart), so a fast round trip wins and a later one replaces it once it is better.
 * A slot is then waited for until its local time plus the bound: never before the slot.
 *
 * How late a slot may still be used. Slots are s = 1000 / (rate x (1 - margin)) ms apart,
 * so N = rate consecutive slots span N x s = 1000 + S ms, S = 1000 x margin / (1 - margin)
 * (26 ms at 2.5%, 31 ms at 3%). The provider counts at most N requests in any 1 s (the simulator: a
 * sliding window, src/simulator/ratelimit.ts). Request i arriving d_i >= 0 after its slot
 * and request i + N arriving d_{i+N} >= 0 after its own are 1000 + S + d_{i+N} - d_i >=
 * 1000 apart whenever d_i <= S: a request up to S late crowds no later request that is on
 * time or late itself, and no earlier one. The client keeps `share` of S for its own
 * lateness (waking up) and leaves the rest for the way to the provider.
 */

export interface ClockEstimate {
  /** Redis's clock minus the local one (ms). */
  readonly offsetMs: number;
  /** How far off the offset may be (ms), now. */
  readonly errorMs: number;
}

export class RedisClock {
  private best: { offset: number; error: number; at: number } | undefined;

  /** @param driftPerMs how fast two clocks may drift apart (ms per ms): 1e-4, far more than real clocks do. */
  constructor(private readonly driftPerMs = 1e-4) {}

  /** A round trip sent at `sentAt` and answered at `receivedAt` (local ms) that read Redis's clock as `redisMs`. */
  sample(sentAt: number, receivedAt: number, redisMs: number): void {
    const error = Math.max(0, receivedAt - sentAt) / 2;
    const offset = redisMs - (sentAt + receivedAt) / 2;
    if (!this.best || error <= this.errorAt(receivedAt)) this.best = { offset, error, at: receivedAt };
  }

  /** The error bound of the kept estimate at local time `now` (Infinity before any sample). */
  errorAt(now: number): number {
    return this.best ? this.best.error + this.driftPerMs * Math.max(0, now - this.best.at) : Infinity;
  }

  estimate(now: number): ClockEstimate | undefined {
    return this.best ? { offsetMs: this.best.offset, errorMs: this.errorAt(now) } : undefined;
  }

  /** The local time to wait for so as not to be before `redisMs` (a slot), given the estimate at `now`. */
  dueAt(redisMs: number, now: number): number {
    if (!this.best) throw new Error('RedisClock.dueAt before any sample');
    return redisMs - this.best.offset + this.errorAt(now);
  }
}

/** S: how much later than its slot a request can arrive without crowding the others (ms; above). */
export function slotSlackMs(margin: number): number {
  return margin >= 1 ? Infinity : (1000 * Math.max(0, margin)) / (1 - margin);
}

/**
 * How late (ms) a request may wake after its slot and still be sent: `share` of the
 * slack S, at least `floorMs` (a timer fires a millisecond or so late even when idle).
 */
export function lateToleranceMs(margin: number, share: number, floorMs = 2): number {
  return Math.max(floorMs, share * slotSlackMs(margin));
}
