/**
 * The shared rate limiter's tuning: the constants its scripts (rate-limit-scripts.ts) run
 * with, and their order as script arguments.
 */
/**
 * The controller's constants; the worker sets them from RATE_LIMIT_* (config-rate-limit.ts).
 * Margins are fractions of the learned rate; times are ms.
 */
export const LIMITER_TUNING = {
  marginStart: 0.025,
  marginMin: 0.025,
  marginMax: 0.25,
  marginWiden: 0.02,
  marginNarrow: 0.005,
  marginNarrowEveryMs: 30_000,
  /** Token margin / request margin: against a minute, arrival jitter is nothing; the estimate's error is left. */
  tokenMarginShare: 1 / 3,
  /** 429s in the last minute, and their share of the answers, from which the quota is taken to be lower than believed. */
  quotaRefused: 3,
  quotaShare: 0.2,
  /**
   * ...or, after `quotaUnderMs` of activity with slots queued ahead, the provider accepted
   * under `quotaUnder` of the pace: then any 429 is the quota (a per-minute quota below the
   * per-second one refuses a few requests a second once a minute has filled: too few for the share).
   */
  quotaUnderMs: 20_000,
  quotaUnder: 0.95,
  /** A request that wakes later than this share of its slot's slack after its slot takes a new one (at most `lateRetries` times). */
  lateShare: 0.5,
  lateRetries: 3,
  /**
   * More late wake-ups than this share of the reservations of a window of `lateWindowMs`
   * (of at least `lateMinReservations`) widen the margin by `marginWiden` (0: never): a
   * wider margin leaves a wider slack, so fewer slots go unused.
   */
  lateWiden: 0.1,
  /**
   * For `warmMs` from the start of an activity (after a minute without requests), slots are
   * spaced with at least `warmMargin`: new connections and starting processes delay the
   * first arrivals far more than a steady run's jitter (88 ms measured against 1.5 ms).
   */
  warmMs: 3000,
  warmMargin: 0.1,
  lateWindowMs: 10_000,
  lateMinReservations: 20,
  decreaseMin: 0.5,
  decreaseMax: 0.95,
  probeHoldMs: 60_000,
  probeEveryMs: 15_000,
  /** Fraction of the believed rate added at each probe. */
  probeStep: 0.01,
} as const;
export type LimiterTuning = { readonly [K in keyof typeof LIMITER_TUNING]: number };

/** The tuning as the scripts take it, ARGV[5..16]. */
export function tuningArgs(t: LimiterTuning): number[] {
  return [
    t.marginStart,
    t.marginMin,
    t.marginMax,
    t.marginWiden,
    t.marginNarrow,
    t.marginNarrowEveryMs,
    t.tokenMarginShare,
    t.decreaseMin,
    t.decreaseMax,
    t.probeHoldMs,
    t.probeEveryMs,
    t.probeStep,
  ];
}
