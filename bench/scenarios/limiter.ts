/**
 * The shared rate limiter alone (src/rate-limit.ts against the bench's Redis, no API,
 * no S3): as many waiters as the workers have job slots, each holding an admitted
 * "request" for the simulator's mean latency, then asking again. What it admits per
 * second is the most any pipeline built on it can send, whatever else it does: the
 * ceiling its windows leave below the provider's RPM / 60.
 */
import type { Redis } from 'ioredis';
import { SharedRateLimiter } from '../../src/rate-limit.js';
import type { SharedLimiterOptions } from '../../src/rate-limit.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface LimiterProbe {
  label: string;
  secondSlackMs: number | 'default';
  rpm: number;
  waiters: number;
  seconds: number;
  admitted: number;
  requestsPerS: number;
  ceilingRequestsPerS: number;
  ratio: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function probe(redis: Redis, label: string, opts: SharedLimiterOptions, rpm: number, tpm: number, waiters: number, holdMs: number, seconds: number): Promise<LimiterProbe> {
  const limiter = new SharedRateLimiter(redis, `bench-limiter-${label}-${Date.now()}`, opts);
  const times: number[] = [];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: waiters }, async () => {
      while (performance.now() - t0 < seconds * 1000) {
        await limiter.acquire('probe', { rpm, tpm }, 300);
        times.push(performance.now());
        await sleep(holdMs);
      }
    }),
  );
  // The limiter admits in bursts (all the slots a window frees at once), so the rate is
  // taken over whole bursts: from the first burst's start to the last one's start, the
  // admissions before the last burst (a gap of over 50 ms starts a burst).
  times.sort((a, b) => a - b);
  const starts = times.filter((t, i) => i === 0 || t - (times[i - 1] ?? 0) > 50);
  const first = starts[0] ?? 0;
  const last = starts[starts.length - 1] ?? 0;
  const admitted = times.filter((t) => t < last).length;
  const span = (last - first) / 1000;
  const rps = span > 0 ? admitted / span : 0;
  return {
    label,
    secondSlackMs: opts.secondSlackMs ?? 'default',
    rpm,
    waiters,
    seconds: span,
    admitted,
    requestsPerS: rps,
    ceilingRequestsPerS: rpm / 60,
    ratio: rps / (rpm / 60),
  };
}

export async function limiterProbes(redis: Redis, settings: Settings, log: (s: string) => void): Promise<LimiterProbe[]> {
  const spec = resolveModel(settings.requestModel, settings.modelOverrides);
  const rpm = spec.rpm ?? 60;
  const tpm = spec.tpm ?? 1_000_000;
  const hold = settings.latency.fixedMs + 20 * settings.latency.perInputMs + settings.latency.jitterMs / 2;
  const waiters = settings.workers * settings.concurrency;
  const out: LimiterProbe[] = [];
  for (const [label, opts] of [['as-built', {}], ['slack-50ms', { secondSlackMs: 50 }]] as const) {
    const r = await probe(redis, label, opts, rpm, tpm, waiters, hold, settings.limiterProbeS);
    log(`  limiter ${label}: ${r.requestsPerS.toFixed(2)} requests/s of ${r.ceilingRequestsPerS.toFixed(2)} (${(r.ratio * 100).toFixed(1)}%)`);
    out.push(r);
  }
  return out;
}
