/**
 * The shared rate limiter's settings (part of config.ts's table): whether it runs, and the
 * constants of its margin and of its learned rate (rate-limit-scripts.ts LIMITER_TUNING),
 * with their defaults. README's table of variables says what each does.
 */
import { z } from 'zod';
import { LIMITER_TUNING } from './rate-limit-tuning.js';
import type { LimiterTuning } from './rate-limit-tuning.js';

const fraction = (max: number, dflt: number) => z.coerce.number().min(0).max(max).default(dflt);
const share = (dflt: number) => z.coerce.number().gt(0).max(1).default(dflt);
const ms = (dflt: number) => z.coerce.number().int().min(100).default(dflt);

export const RATE_LIMIT_SETTINGS = {
  /** `shared`: every worker paces its requests through the limiter in Redis; `off`: none. @defaultValue shared */
  rateLimit: { env: 'RATE_LIMIT', flag: 'rateLimit', schema: z.enum(['shared', 'off']).default('shared') },
  /**
   * The shared limiter's starting (and narrowest) margin under the learned rate: 0.025 leaves
   * a 1 s window 26 ms for the requests' arrival jitter. @defaultValue 0.025
   */
  rateLimitMargin: { env: 'RATE_LIMIT_MARGIN', schema: fraction(0.5, LIMITER_TUNING.marginStart) },
  /** Widest margin the 429s can widen it to (at least RATE_LIMIT_MARGIN). @defaultValue 0.25 */
  rateLimitMarginMax: { env: 'RATE_LIMIT_MARGIN_MAX', schema: fraction(0.9, LIMITER_TUNING.marginMax) },
  /** How much one 429 of our own pacing widens the margin. @defaultValue 0.02 */
  rateLimitMarginStep: { env: 'RATE_LIMIT_MARGIN_STEP', schema: fraction(0.5, LIMITER_TUNING.marginWiden) },
  /** How much the margin narrows every RATE_LIMIT_MARGIN_NARROW_EVERY_MS without a widening. @defaultValue 0.005 */
  rateLimitMarginNarrow: { env: 'RATE_LIMIT_MARGIN_NARROW', schema: fraction(0.5, LIMITER_TUNING.marginNarrow) },
  /** @defaultValue 30000 */
  rateLimitMarginNarrowEveryMs: {
    env: 'RATE_LIMIT_MARGIN_NARROW_EVERY_MS',
    schema: ms(LIMITER_TUNING.marginNarrowEveryMs),
  },
  /**
   * The token schedule's margin as a share of the request margin (tokens are counted per
   * minute, so arrival jitter does not eat into it): 1/3 paces tokens 0.83% under TPM while
   * requests keep 2.5%. @defaultValue 0.3333
   */
  rateLimitTokenMarginShare: {
    env: 'RATE_LIMIT_TOKEN_MARGIN_SHARE',
    schema: share(LIMITER_TUNING.tokenMarginShare),
  },
  /** The learned rate's decrease on 429s is clamped to this share of it at least... @defaultValue 0.5 */
  rateLimitDecreaseMin: { env: 'RATE_LIMIT_DECREASE_MIN', schema: share(LIMITER_TUNING.decreaseMin) },
  /** ...and at most this share. @defaultValue 0.95 */
  rateLimitDecreaseMax: { env: 'RATE_LIMIT_DECREASE_MAX', schema: share(LIMITER_TUNING.decreaseMax) },
  /** Share of the believed rate each probe adds back. @defaultValue 0.01 */
  rateLimitProbeStep: { env: 'RATE_LIMIT_PROBE_STEP', schema: share(LIMITER_TUNING.probeStep) },
  /**
   * Share of late wake-ups (requests that woke up too late for their slot) among 10 s of
   * reservations above which the margin widens; 0: never. @defaultValue 0.1
   */
  rateLimitLateWiden: { env: 'RATE_LIMIT_LATE_WIDEN', schema: fraction(1, LIMITER_TUNING.lateWiden) },
  /** How long the warm start lasts from the first request after a minute without any; 0: none. @defaultValue 3000 */
  rateLimitWarmMs: { env: 'RATE_LIMIT_WARM_MS', schema: z.coerce.number().int().min(0).default(LIMITER_TUNING.warmMs) },
  /**
   * The least margin of the warm start's request slots (new connections and starting
   * processes delay the first arrivals). @defaultValue 0.1
   */
  rateLimitWarmMargin: { env: 'RATE_LIMIT_WARM_MARGIN', schema: fraction(0.5, LIMITER_TUNING.warmMargin) },
  /** Time between two probes (after a minute without a 429). @defaultValue 15000 */
  rateLimitProbeEveryMs: { env: 'RATE_LIMIT_PROBE_EVERY_MS', schema: ms(LIMITER_TUNING.probeEveryMs) },
};

export type RateLimitConfig = {
  readonly [K in keyof typeof RATE_LIMIT_SETTINGS]: z.output<(typeof RATE_LIMIT_SETTINGS)[K]['schema']>;
};

/** Settings that only make sense together: the variable at fault and the problem, or undefined. */
export function rateLimitConflict(c: RateLimitConfig): [setting: string, problem: string] | undefined {
  if (c.rateLimitDecreaseMin > c.rateLimitDecreaseMax)
    return [
      'RATE_LIMIT_DECREASE_MIN',
      `must not be above RATE_LIMIT_DECREASE_MAX (${c.rateLimitDecreaseMax}) (got ${c.rateLimitDecreaseMin})`,
    ];
  if (c.rateLimitMarginMax < c.rateLimitMargin)
    return [
      'RATE_LIMIT_MARGIN_MAX',
      `must not be below RATE_LIMIT_MARGIN (${c.rateLimitMargin}) (got ${c.rateLimitMarginMax})`,
    ];
  return undefined;
}

/** The limiter's tuning from the settings. */
export function limiterTuning(c: RateLimitConfig): Partial<LimiterTuning> {
  return {
    marginStart: c.rateLimitMargin,
    marginMin: c.rateLimitMargin,
    marginMax: c.rateLimitMarginMax,
    marginWiden: c.rateLimitMarginStep,
    marginNarrow: c.rateLimitMarginNarrow,
    marginNarrowEveryMs: c.rateLimitMarginNarrowEveryMs,
    tokenMarginShare: c.rateLimitTokenMarginShare,
    decreaseMin: c.rateLimitDecreaseMin,
    decreaseMax: c.rateLimitDecreaseMax,
    probeStep: c.rateLimitProbeStep,
    probeEveryMs: c.rateLimitProbeEveryMs,
    lateWiden: c.rateLimitLateWiden,
    warmMs: c.rateLimitWarmMs,
    warmMargin: c.rateLimitWarmMargin,
  };
}
