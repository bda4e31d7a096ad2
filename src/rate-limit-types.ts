/** The shared rate limiter's types (rate-limit.ts): a reservation, its options, its state, and whose quota it is. */
import { createHash } from 'node:crypto';
import { DEFAULT_BASE_URL } from './api.js';
import type { LimiterTuning } from './rate-limit-tuning.js';

export interface Reservation {
  readonly waitMs: number;
  readonly slotMs: number;
  readonly epoch: number;
  readonly ticket: string;
  readonly learnedRpm: number;
  readonly margin: number;
  /** Tokens reserved (the estimate, rounded). */
  readonly tokens: number;
  /** The request schedule's end this reservation left (Redis's text of it): a give-back checks it is still so. */
  readonly end: string;
  /** The request schedule's slot, before any wait for the token schedule: a give-back hands this one back. */
  readonly requestSlotMs: number;
  /** How long the slot waited for the token schedule past its end: a give-back takes it off the schedule. */
  readonly tokenWaitMs: number;
}

/** What the limiter believes of one model's quota now. */
export interface LimiterState {
  /** Requests per minute it paces at before the margin (the learned rate x 60). */
  readonly learnedRpm: number;
  /** The believed (configured or documented) requests per minute: the learned rate's ceiling. */
  readonly believedRpm: number;
  readonly margin: number;
  /** Reservations made so far, and the tokens they hold after corrections. */
  readonly reservations: number;
  readonly tokens: number;
  readonly last429At?: number;
}

export interface SharedLimiterOptions {
  /** How long settlements wait for a reservation to carry them. @defaultValue 1,000 ms (a busy worker reserves more often) */
  readonly flushAfterMs?: number;
  /** @defaultValue LIMITER_TUNING */
  readonly tuning?: Partial<LimiterTuning>;
  /** Called with every reservation's view of the learned rate and margin (metrics). */
  readonly onState?: (model: string, state: { learnedRpm: number; margin: number }) => void;
  /** Called when a request woke too late for its slot and took a new one. */
  readonly onLate?: (model: string) => void;
  /** Called when a request's slot was paced faster than the rate learned since, and it took a new one. */
  readonly onRepaced?: (model: string) => void;
}

/** Whose quota: the API key, at the endpoint it is used with (a region's quota is its own). */
export interface QuotaOwner {
  readonly apiKey: string;
  /** The API's base URL. @defaultValue DEFAULT_BASE_URL (api.ts) */
  readonly baseUrl?: string;
}

/** The account part of the limiter's keys: a digest of the endpoint and the API key, never the key. */
export function accountId(owner: QuotaOwner): string {
  const base = (owner.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  return createHash('sha256').update(`${base}\n${owner.apiKey}`).digest('hex').slice(0, 16);
}

/** The limiter's hash for an account and a model. */
export function limiterKey(owner: QuotaOwner, model: string): string {
  return `mm-ingest:rl:${accountId(owner)}:${model}`;
}
