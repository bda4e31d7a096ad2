/**
 * The shared rate limiter alone (src/rate-limit.ts against the bench's Redis, no API,
 * no S3): as many waiters as the workers have job slots, each holding an admitted
 * "request" for the simulator's mean latency, then asking again. What it admits per
 * second is the most any pipeline built on it can send, whatever else it does: the
 * ceiling its pacing (1 / (RPM / 60 x (1 - margin))) leaves below the provider's RPM / 60.
 */
import type { Redis } from 'ioredis';
import { SharedRateLimiter } from '../../src/rate-limit.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';
import { BENCH_API_KEY } from '../lib/env.js';

export interface LimiterProbe {
  label: string;
  /** The margin the limiter paced with (its starting one: nothing is refused here). */
  margin: number;
  rpm: number;
  waiters: number;
  seconds: number;
  admitted: number;
  requestsPerS: number;
  ceilingRequestsPerS: number;
  ratio: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function probe(
  redis: Redis,
  label: string,
  rpm: number,
  tpm: number,
  waiters: number,
  holdMs: number,
  seconds: number,
): Promise<LimiterProbe> {
  // a model name of its own: the limiter's state is per account (the bench's key) and model
  const model = `probe-${label}-${Date.now()}`;
  const limiter = new SharedRateLimiter(redis, { apiKey: BENCH_API_KEY });
  const times: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: waiters }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        const { ticket } = await limiter.acquire(model, { rpm, tpm }, 300);
        times.push(performance.now());
        await sleep(holdMs);
        if (ticket !== undefined) await limiter.settle(model, ticket, 300);
      }
    }),
  );
  // from the first admission to the last one, the admissions before the last
  times.sort((a, b) => a - b);
  const first = times[0] ?? 0;
  const last = times[times.length - 1] ?? 0;
  const admitted = times.length - 1;
  const state = await limiter.state(model, { rpm, tpm });
  const span = (last - first) / 1000;
  const rps = span > 0 ? admitted / span : 0;
  return {
    label,
    margin: state?.margin ?? 0,
    rpm,
    waiters,
    seconds: span,
    admitted,
    requestsPerS: rps,
    ceilingRequestsPerS: rpm / 60,
    ratio: rps / (rpm / 60),
  };
}

export async function limiterProbes(
  redis: Redis,
  settings: Settings,
  log: (s: string) => void,
): Promise<LimiterProbe[]> {
  const spec = resolveModel(settings.requestModel, settings.modelOverrides);
  const rpm = spec.rpm ?? 60;
  const tpm = spec.tpm ?? 1_000_000;
  const hold = settings.latency.fixedMs + 20 * settings.latency.perInputMs + settings.latency.jitterMs / 2;
  const waiters = settings.workers * settings.concurrency;
  const out: LimiterProbe[] = [];
  for (const label of ['reservations']) {
    const r = await probe(redis, label, rpm, tpm, waiters, hold, settings.limiterProbeS);
    log(
      `  limiter ${label}: ${r.requestsPerS.toFixed(2)} requests/s of ${r.ceilingRequestsPerS.toFixed(2)} (${(r.ratio * 100).toFixed(1)}%)`,
    );
    out.push(r);
  }
  return out;
}
