/**
 * What `status`, `runs show` and the run report say of a model's pacing: the shared
 * limiter's learned rate and margin (rate-limit.ts), read from Redis.
 */
import type { Cluster, Redis } from 'ioredis';
import { SharedRateLimiter } from './rate-limit.js';
import type { RateLimits } from './request-gate.js';

/** What `status`, `runs show` and the run report say of a model's pacing. */
export interface PacingView {
  readonly model: string;
  readonly believedRpm: number;
  readonly learnedRpm: number;
  readonly margin: number;
  /** Requests a minute the limiter lets out: learned x (1 - margin). */
  readonly pacedRpm: number;
}

/**
 * The shared limiter's view of a model for the configured key and endpoint, or undefined
 * when there is none (rate limiting off, no key configured, no request yet, no RPM).
 */
export async function pacingView(
  redis: Redis | Cluster,
  config: { readonly apiKey?: string | undefined; readonly baseUrl: string; readonly rateLimit: string },
  model: string,
  limits: RateLimits,
): Promise<PacingView | undefined> {
  if (config.rateLimit !== 'shared' || !config.apiKey || limits.rpm === null) return undefined;
  const s = await new SharedRateLimiter(redis, { apiKey: config.apiKey, baseUrl: config.baseUrl }).state(model, limits);
  if (!s) return undefined;
  return {
    model,
    believedRpm: s.believedRpm,
    learnedRpm: s.learnedRpm,
    margin: s.margin,
    pacedRpm: s.learnedRpm * (1 - s.margin),
  };
}

/** One line: `pacing qwen3-vl-embedding at 145.5 RPM: learned 150 of the believed 300 RPM, margin 3.0%`. */
export function formatPacing(p: PacingView): string {
  const learned =
    p.learnedRpm < p.believedRpm - 1e-6
      ? `learned ${p.learnedRpm.toFixed(1)} of the believed ${p.believedRpm} RPM (429s showed less)`
      : `the believed ${p.believedRpm} RPM`;
  return `pacing ${p.model} at ${p.pacedRpm.toFixed(1)} RPM: ${learned}, margin ${(p.margin * 100).toFixed(1)}%`;
}
