/**
 * Per-model sliding windows of admitted requests, enforcing requests per minute,
 * requests per second (RPM/60, rounded up, at least 1) and input tokens per minute.
 * A request is counted at the time it arrived; requests are admitted when their contents
 * have been checked, so not always in the order they arrived: each is filed at its time,
 * and one that arrived earlier than requests already admitted counts them too.
 *
 * State: for each model, the admitted requests of the last 60 s (time and tokens, in
 * arrival order) and their token sum. `admit` drops what has left the window, then
 * either records the request (admitted) or records nothing (refused: a refused request
 * does not use quota). `reset` empties every window. Tokens are limited per minute
 * only: a per-second token limit would refuse any single large request.
 */
import type { RateLimit } from './options.js';
import { ALLOCATION_QUOTA, RATE_QUOTA } from './refusals.js';
import type { Refusal } from './refusals.js';

const MINUTE_MS = 60_000;
const SECOND_MS = 1_000;

interface Window {
  times: number[];
  tokens: number[];
  /** Index of the oldest entry still in the window (entries before it are expired). */
  head: number;
  tokenSum: number;
}

export class RateLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(private limitsOf: (model: string) => RateLimit) {}

  /** New limits apply from the next request; the windows are kept. */
  setLimits(limitsOf: (model: string) => RateLimit): void {
    this.limitsOf = limitsOf;
  }

  reset(): void {
    this.windows.clear();
  }

  /** Admits (and records) a request of `tokens` input tokens that arrived at `now`, or says why not. */
  admit(model: string, tokens: number, now: number): Refusal | undefined {
    const { rpm, tpm } = this.limitsOf(model);
    if (rpm === null && tpm === null) return undefined;
    const w = this.window(model, now);
    const inWindow = w.times.length - w.head;
    if (rpm !== null) {
      if (inWindow + 1 > rpm) return RATE_QUOTA;
      const rps = Math.max(1, Math.ceil(rpm / 60));
      let lastSecond = 0;
      for (let i = w.times.length - 1; i >= w.head && (w.times[i] ?? 0) > now - SECOND_MS; i--) lastSecond++;
      if (lastSecond + 1 > rps) return RATE_QUOTA;
    }
    if (tpm !== null && w.tokenSum + tokens > tpm) return ALLOCATION_QUOTA;
    // filed in time order (nearly always at the end)
    let at = w.times.length;
    while (at > w.head && (w.times[at - 1] ?? 0) > now) at--;
    w.times.splice(at, 0, now);
    w.tokens.splice(at, 0, tokens);
    w.tokenSum += tokens;
    return undefined;
  }

  private window(model: string, now: number): Window {
    let w = this.windows.get(model);
    if (!w) {
      w = { times: [], tokens: [], head: 0, tokenSum: 0 };
      this.windows.set(model, w);
    }
    while (w.head < w.times.length && (w.times[w.head] ?? 0) <= now - MINUTE_MS) {
      w.tokenSum -= w.tokens[w.head] ?? 0;
      w.head++;
    }
    // Compact now and then so the arrays do not grow without bound.
    if (w.head > 1024 && w.head * 2 > w.times.length) {
      w.times = w.times.slice(w.head);
      w.tokens = w.tokens.slice(w.head);
      w.head = 0;
    }
    return w;
  }
}
