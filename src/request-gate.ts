/**
 * What the embed handler needs of a rate limiter (jobs/api-call.ts): a send time before
 * each request, and ways to report what came back. The shared limiter in Redis
 * (rate-limit.ts) is one; OPEN_GATE, which never waits, is another.
 */

export interface RateLimits {
  readonly rpm: number | null;
  readonly tpm: number | null;
}

/** A send time a gate gave. */
export interface Acquired {
  readonly waitedMs: number;
  /** Names the reservation, for `settle` and `throttled`. */
  readonly ticket?: string;
  /**
   * With `leadMs` (a sender that waits out the rest itself, send-thread.ts): the slot's
   * time (performance.now() ms), how late after it the request may still leave, and what
   * to do when it could not: give the slot back and take the next.
   */
  readonly slot?: { readonly dueAt: number; readonly toleranceMs: number };
  late?(): Promise<Acquired>;
}

/** What the embed handler needs: a send time, and ways to report what came back. */
export interface RequestGate {
  /**
   * Resolves at the time a request of `tokens` input tokens (an estimate) may be sent, or
   * `leadMs` before it with the slot to send at; rejects once `signal` aborts.
   */
  acquire(
    model: string,
    limits: RateLimits,
    tokens: number,
    signal?: AbortSignal,
    opts?: { readonly leadMs?: number },
  ): Promise<Acquired>;
  /** The request was answered: its tokens were `tokens` (from `usage`), not the estimate. */
  settle?(model: string, ticket: string, tokens: number): Promise<void>;
  /** The request was refused with 429 (`retryAfterMs` when the provider said how long to wait). */
  throttled(model: string, ticket: string | undefined, retryAfterMs?: number): Promise<void>;
  /** Sends what is waiting to be settled now. */
  flush?(): Promise<void>;
  /** True when a 429 lowers the shared pace itself, so a refused request may ask again at once. */
  readonly adaptive?: boolean;
}

/** A gate that never waits (rate limiting off, or unit tests). */
export const OPEN_GATE: RequestGate = {
  acquire: () => Promise.resolve({ waitedMs: 0 }),
  throttled: () => Promise.resolve(),
};
