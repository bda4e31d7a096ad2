/**
 * Time series of what the simulator accepted (polled from `GET /_sim/stats`) and of the
 * queue's backlog, and the rates computed from them.
 *
 * Rates are taken from the simulator's side (what the API accepted), so they count only
 * work the provider did and are the same for our pipeline and for the peers.
 */
import type { Redis } from 'ioredis';
import type { SimulatorStats } from '../../src/simulator/stats.js';

export interface Sample {
  /** Seconds since the series started. */
  readonly t: number;
  readonly accepted: number;
  readonly inputs: number;
  readonly tokens: number;
  readonly textTokens: number;
  readonly imageTokens: number;
  /** Jobs waiting in the queue (when a queue was given), else -1. */
  readonly waiting: number;
}

export class SimSeries {
  readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();
  private busy = false;

  constructor(
    private readonly stats: () => Promise<SimulatorStats>,
    private readonly redis?: Redis,
    private readonly waitKey?: string,
    intervalMs = 500,
  ) {
    this.timer = setInterval(() => void this.poll(), intervalMs);
    void this.poll();
  }

  /** performance.now() of a sample time. */
  at(t: number): number {
    return this.t0 + t * 1000;
  }

  /** Seconds since the series started, for a performance.now() value. */
  since(now: number): number {
    return (now - this.t0) / 1000;
  }

  async poll(): Promise<Sample | undefined> {
    if (this.busy) return undefined;
    this.busy = true;
    try {
      const [s, waiting] = await Promise.all([
        this.stats(),
        this.redis && this.waitKey ? this.redis.llen(this.waitKey) : Promise.resolve(-1),
      ]);
      const sample: Sample = {
        t: (performance.now() - this.t0) / 1000,
        accepted: s.accepted,
        inputs: s.inputs,
        tokens: s.textTokens + s.imageTokens,
        textTokens: s.textTokens,
        imageTokens: s.imageTokens,
        waiting,
      };
      this.samples.push(sample);
      return sample;
    } catch {
      return undefined;
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    while (this.busy) await new Promise((r) => setTimeout(r, 20));
    await this.poll();
  }

  /** Time of the first sample where `field` is above its first value (the first accepted request). */
  firstActivity(field: keyof Omit<Sample, 't' | 'waiting'> = 'accepted'): number | undefined {
    const start = this.samples[0]?.[field] ?? 0;
    return this.samples.find((s) => s[field] > start)?.t;
  }

  /** The sample at or just after `t` (the last one if none). */
  sampleAt(t: number): Sample | undefined {
    return this.samples.find((s) => s.t >= t) ?? this.samples[this.samples.length - 1];
  }

  /** Mean rate of `field` per second between two times (samples nearest at or after them). */
  rate(
    field: keyof Omit<Sample, 't' | 'waiting'>,
    from: number,
    to: number,
  ): { rate: number; seconds: number; amount: number } {
    const a = this.sampleAt(from);
    const b = this.sampleAt(to);
    if (!a || !b || b.t <= a.t) return { rate: 0, seconds: 0, amount: 0 };
    return { rate: (b[field] - a[field]) / (b.t - a.t), seconds: b.t - a.t, amount: b[field] - a[field] };
  }

  /**
   * Mean over every window of `windowS` seconds (stepping by one sample) lying inside
   * [from, to] of the amount of `field` in the window, divided by the window: a rate
   * measured over whole windows of the provider's quota, as a sliding limit allows it.
   */
  windowedRate(
    field: keyof Omit<Sample, 't' | 'waiting'>,
    windowS: number,
    from: number,
    to: number,
  ): { rate: number; windows: number } {
    const rates: number[] = [];
    for (const a of this.samples) {
      if (a.t < from || a.t + windowS > to) continue;
      const b = this.sampleAt(a.t + windowS);
      if (!b || b.t - a.t < windowS - 1e-9) continue;
      // b is the first sample at or after a.t + windowS: scale to the exact window
      rates.push((b[field] - a[field]) / (b.t - a.t));
    }
    return { rate: rates.length ? rates.reduce((x, y) => x + y, 0) / rates.length : 0, windows: rates.length };
  }

  /** The last time the queue still had at least `min` waiting jobs (for the end of a saturated period). */
  lastBacklog(min: number): number | undefined {
    for (let i = this.samples.length - 1; i >= 0; i--) {
      const s = this.samples[i];
      if (s && s.waiting >= min) return s.t;
    }
    return undefined;
  }
}

/** Throttling refusals (429) in a stats snapshot, by code. */
export function throttles(s: SimulatorStats): Record<string, number> {
  return Object.fromEntries(Object.entries(s.refusals).filter(([code]) => code.startsWith('Throttling')));
}

export const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/**
 * The admissions of our shared limiter, read from its sorted set in Redis (member
 * "id:tokens", score = admission time in Redis's clock) every 300 ms: what we sent and
 * when, to compare with what the provider's windows allow.
 */
export class AdmissionLog {
  private readonly seen = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {
    this.timer = setInterval(() => void this.poll(), 300);
  }

  private async poll(): Promise<void> {
    try {
      const r = await this.redis.zrange(this.key, 0, '-1', 'WITHSCORES');
      for (let i = 0; i + 1 < r.length; i += 2) this.seen.set(r[i] ?? '', Number(r[i + 1]));
    } catch {
      // the next poll reads the set again
    }
  }

  /** Admissions in time order: [time ms, tokens]. */
  async stop(): Promise<[number, number][]> {
    clearInterval(this.timer);
    await this.poll();
    return [...this.seen]
      .map(([member, t]): [number, number] => [t, Number(/:(\d+)$/.exec(member)?.[1] ?? 0)])
      .sort((a, b) => a[0] - b[0]);
  }
}

/** Most admissions, and most tokens, inside any window of `ms` milliseconds. */
export function maxInWindow(admissions: readonly [number, number][], ms: number): { requests: number; tokens: number } {
  let requests = 0;
  let tokens = 0;
  let head = 0;
  let sumTokens = 0;
  for (let i = 0; i < admissions.length; i++) {
    const [t, k] = admissions[i] ?? [0, 0];
    sumTokens += k;
    while ((admissions[head]?.[0] ?? 0) <= t - ms) sumTokens -= admissions[head++]?.[1] ?? 0;
    requests = Math.max(requests, i - head + 1);
    tokens = Math.max(tokens, sumTokens);
  }
  return { requests, tokens };
}
