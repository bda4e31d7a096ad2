/**
 * The shared rate limiter: every worker process on every machine that uses the same API
 * key reserves a send time here before each API request, so that together they stay under
 * the model's requests per second (RPM / 60), requests per minute and tokens per minute,
 * and as close under them as is safe.
 *
 * Reservations, not polling (virtual scheduling, the GCRA of ATM networks): one Lua script,
 * on Redis's clock, hands each request the next free slot and moves the schedule on; the
 * worker then sleeps locally until its slot. One round trip a request, O(1) work in Redis
 * (a handful of hash fields, no log of the minute's requests), slots in the order asked
 * (FIFO), and no crowd of waiters asking again and again.
 * - Requests: slots `1 / (rate x (1 - margin))` apart; `rate` starts at RPM / 60 and is
 *   what the limiter has learned of the account's real quota (below).
 * - Tokens: a second schedule at `TPM / 60 x (1 - margin)` tokens a second. A request
 *   waits until the tokens before it have drained, less a tolerance of what a second and a
 *   minute of the margin leave: in any minute at most TPM go out (a request bigger than the
 *   minute's margin waits for an empty schedule). The estimate reserved is corrected with
 *   the answer's `usage` (refund or debit), sent along with this worker's next
 *   reservation (or within a second when none comes), so settling costs no round trip.
 *
 * Adaptation, shared by every worker through the same hash:
 * - Margin: starts at 3%. A 429 when fewer than 3 came in the last minute, or fewer than 20%
 *   of the answers, is taken to be our own pacing too tight (the requests' arrival jitter
 *   ate the margin): the margin widens by 2 points (at most 25%); it narrows by half a
 *   point every 30 s without a widening, never below 3%. A worker that wakes up later than
 *   half the margin's slack after its slot (a busy event loop) leaves the slot unused and
 *   reserves another, rather than crowd the requests after it.
 * - Rate (AIMD): more 429s than that say the account gets less than we believe (its quota
 *   is shared by every key, workspace and application of the account). The rate falls to
 *   what the provider accepted in the last minute (successes per second over up to 60 s),
 *   at most to 95% and at least to 50% of what it was: a multiplicative decrease. After a
 *   minute without a 429 it probes up again by 1% of the believed rate every 15 s (additive
 *   increase), never above RPM / 60. Each change starts an epoch: the 429s of requests
 *   reserved before it (already in flight) change nothing more.
 * - Retry-After, when the provider sends one, holds every slot until then.
 *
 * State, one hash per account and model: `mm-ingest:rl:{account}:{model}` where `account`
 * is the first 16 hex digits of the SHA-256 of the API's base URL and the API key (never
 * the key). It does not depend on the queue prefix: deployments that use a key at one
 * endpoint share its quota, so they share the limiter; different keys (or regions) do not.
 * One key a script, so it works on Redis Cluster too.
 * Fields: tr, tt (next request slot and token schedule, ms of Redis time), r and ra
 * (learned rate, requests/s, and when it last changed), m and ma (margin and when it last
 * widened), ep (epoch), l429 (last 429), since (start of the current activity), n
 * (reservations), k (tokens reserved net of corrections), o0..o59 and x0..x59 (successes
 * and 429s in each second of the last minute, as "second:count"). The hash expires after 6 hours unused.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { DEFAULT_BASE_URL } from './api.js';

export interface RateLimits {
  readonly rpm: number | null;
  readonly tpm: number | null;
}

/** What the embed handler needs: a send time, and ways to report what came back. */
export interface RequestGate {
  /**
   * Resolves at the time a request of `tokens` input tokens (an estimate) may be sent; rejects
   * once `signal` aborts. The ticket names the reservation, for `settle` and `throttled`.
   */
  acquire(
    model: string,
    limits: RateLimits,
    tokens: number,
    signal?: AbortSignal,
  ): Promise<{ waitedMs: number; ticket?: string }>;
  /** The request was answered: its tokens were `tokens` (from `usage`), not the estimate. */
  settle?(model: string, ticket: string, tokens: number): Promise<void>;
  /** The request was refused with 429 (`retryAfterMs` when the provider said how long to wait). */
  throttled(model: string, ticket: string | undefined, retryAfterMs?: number): Promise<void>;
  /** Sends what is waiting to be settled now. */
  flush?(): Promise<void>;
  /** True when a 429 lowers the shared pace itself, so a refused request may ask again at once. */
  readonly adaptive?: boolean;
}

export interface Reservation {
  readonly waitMs: number;
  readonly slotMs: number;
  readonly epoch: number;
  readonly ticket: string;
  readonly learnedRpm: number;
  readonly margin: number;
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

export const LIMITER_TUNING = {
  marginStart: 0.03,
  marginMin: 0.03,
  marginMax: 0.25,
  marginWiden: 0.02,
  marginNarrow: 0.005,
  marginNarrowEveryMs: 30_000,
  /** 429s in the last minute, and their share of the answers, from which the quota is taken to be lower than believed. */
  quotaRefused: 3,
  quotaShare: 0.2,
  /** A request that wakes later than this share of its slot's slack after its slot takes a new one (at most `lateRetries` times). */
  lateShare: 0.5,
  lateRetries: 3,
  decreaseMin: 0.5,
  decreaseMax: 0.95,
  probeHoldMs: 60_000,
  probeEveryMs: 15_000,
  /** Fraction of the believed rate added at each probe. */
  probeStep: 0.01,
} as const;
export type LimiterTuning = { readonly [K in keyof typeof LIMITER_TUNING]: number };

// Shared by the scripts: the clock, the state read with its lazy updates (margin
// narrowing, rate probing), the settlement of answered requests.
// ARGV[1] rps ceiling (0: no request limit), ARGV[2] tokens/s ceiling (0: none),
// ARGV[3] token correction (sum of usage - reserved), ARGV[4] successes to count,
// ARGV[5..16] tuning, then the script's own arguments from ARGV[17].
const PRELUDE = `
local key = KEYS[1]
-- numbers go to Redis as text with 14 digits; times in ms need more
local function n(x) return string.format('%.4f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local ceil, tps = tonumber(ARGV[1]), tonumber(ARGV[2])
local dtok, oks = tonumber(ARGV[3]), tonumber(ARGV[4])
local mStart, mMin, mMax, mWiden = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local mNarrow, mEvery = tonumber(ARGV[9]), tonumber(ARGV[10])
local decMin, decMax, pHold, pEvery, pStep = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
local ttl = 21600000
local f = redis.call('HMGET', key, 'tr', 'tt', 'r', 'ra', 'm', 'ma', 'ep', 'l429', 'since')
local tr, tt = tonumber(f[1]) or 0, tonumber(f[2]) or 0
local since = tonumber(f[9])
-- the span successes are counted over starts again after a minute without requests
if not since or math.max(tr, tt) < now - 60000 then since = now; redis.call('HSET', key, 'since', n(now)) end
local ep = tonumber(f[7]) or 0
local l429 = tonumber(f[8])
local m, ma = tonumber(f[5]) or mStart, tonumber(f[6]) or now
if m > mMin and now - ma >= mEvery then
  local steps = math.floor((now - ma) / mEvery)
  m = math.max(mMin, m - steps * mNarrow)
  ma = ma + steps * mEvery
  redis.call('HSET', key, 'm', n(m), 'ma', n(ma))
elseif not f[5] then
  redis.call('HSET', key, 'm', n(m), 'ma', n(ma))
end
local r, ra = tonumber(f[3]), tonumber(f[4]) or now
if ceil > 0 then
  if not r or r > ceil then r = ceil end
  if r < ceil and now - ra >= pHold + pEvery then
    local steps = math.floor((now - ra - pHold) / pEvery)
    r = math.min(ceil, r + steps * pStep * ceil)
    ra = ra + steps * pEvery
    redis.call('HSET', key, 'r', n(r), 'ra', n(ra))
  end
end
local function tokenRate() return tps * (1 - m) / 1000 end
if dtok ~= 0 then
  if tps > 0 then tt = tt + dtok / tokenRate(); redis.call('HSET', key, 'tt', n(tt)) end
  redis.call('HINCRBYFLOAT', key, 'k', n(dtok))
end
if oks > 0 then
  local sec = math.floor(now / 1000)
  local slot = 'o' .. (sec % 60)
  local cur = redis.call('HGET', key, slot)
  local n = 0
  if cur then
    local s, c = string.match(cur, '^(%d+):(%d+)$')
    if tonumber(s) == sec then n = tonumber(c) end
  end
  redis.call('HSET', key, slot, sec .. ':' .. (n + oks))
end
redis.call('PEXPIRE', key, ttl)
`;

// ARGV[17] tokens of this request (estimate). Returns {wait ms, epoch, rate, margin, slot (Redis ms)}.
const RESERVE = `${PRELUDE}
local tokens = tonumber(ARGV[17])
local slot = now
if ceil > 0 then slot = math.max(slot, tr) end
local cost = 0
if tps > 0 then
  local rho = tokenRate()
  cost = tokens / rho
  -- the tokens before this request must have drained, less a second's and (for a request
  -- that fits in it) a minute's share of the margin
  local tolSec = 1000 * m / (1 - m)
  local tolMin = 60000 * m / (1 - m)
  slot = math.max(slot, tt + math.max(-tolSec, math.min(cost, tolMin) - tolMin))
end
if ceil > 0 then redis.call('HSET', key, 'tr', n(slot + 1000 / (r * (1 - m)))) end
if tps > 0 then redis.call('HSET', key, 'tt', n(math.max(tt, slot) + cost)) end
redis.call('HINCRBY', key, 'n', 1)
redis.call('HINCRBYFLOAT', key, 'k', n(tokens))
return {n(slot - now), ep, n(r or 0), n(m), n(slot)}
`;

// Settlements only (no reservation came within the flush delay).
const SETTLE = `${PRELUDE}
return 1
`;

// A 429. ARGV[17] the refused reservation's epoch (-1: unknown), ARGV[18] Retry-After ms (0: none).
// Returns {what it did: 0 nothing (stale), 1 widened the margin, 2 lowered the rate, 3 held; rate; margin}.
const THROTTLED = `${PRELUDE}
local tepoch, hold = tonumber(ARGV[17]), tonumber(ARGV[18])
local minRefused, minShare = tonumber(ARGV[19]), tonumber(ARGV[20])
local sec = math.floor(now / 1000)
-- every 429 is evidence, counted per second like the successes (x0..x59)
local xslot = 'x' .. (sec % 60)
local xcur = redis.call('HGET', key, xslot)
local xn = 0
if xcur then
  local s, c = string.match(xcur, '^(%d+):(%d+)$')
  if tonumber(s) == sec then xn = tonumber(c) end
end
redis.call('HSET', key, xslot, sec .. ':' .. (xn + 1))
local did = 0
if hold > 0 then
  redis.call('HSET', key, 'tr', n(math.max(tr, now + hold)), 'tt', n(math.max(tt, now + hold)))
  did = 3
end
if tepoch >= 0 and tepoch < ep then return {did, n(r or 0), n(m)} end
redis.call('HSET', key, 'l429', n(now))
-- successes and 429s of the last minute
local function lastMinute(prefix)
  local fields = {}
  for i = 0, 59 do fields[#fields + 1] = prefix .. i end
  local vals = redis.call('HMGET', key, unpack(fields))
  local total = 0
  for i = 1, 60 do
    local v = vals[i]
    if v then
      local s, c = string.match(v, '^(%d+):(%d+)$')
      s = tonumber(s)
      if s and s > sec - 60 and s <= sec then total = total + tonumber(c) end
    end
  end
  return total
end
local oks, refused = lastMinute('o'), lastMinute('x')
-- a few 429s among many answers: our own pacing was too tight (arrival jitter ate the
-- margin); many: the account gets less than we believe
if ceil <= 0 or refused < minRefused or refused < minShare * (oks + refused) then
  m = math.min(mMax, m + mWiden)
  redis.call('HSET', key, 'm', n(m), 'ma', n(now), 'ep', ep + 1)
  return {1, n(r or 0), n(m)}
end
local span = math.max(1000, math.min(60000, now - since))
local observed = oks * 1000 / span
local nr = math.max(r * decMin, math.min(r * decMax, observed))
redis.call('HSET', key, 'r', n(nr), 'ra', n(now), 'ep', ep + 1)
return {2, n(nr), n(m)}
`;

const STATE = `
local f = redis.call('HMGET', KEYS[1], 'r', 'm', 'n', 'k', 'l429')
return f
`;

interface Script {
  readonly body: string;
  readonly sha: string;
}
const script = (body: string): Script => ({ body, sha: createHash('sha1').update(body).digest('hex') });
const SCRIPTS = {
  reserve: script(RESERVE),
  settle: script(SETTLE),
  throttled: script(THROTTLED),
  state: script(STATE),
};

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

export interface SharedLimiterOptions {
  /** How long settlements wait for a reservation to carry them. @defaultValue 1,000 ms (a busy worker reserves more often) */
  readonly flushAfterMs?: number;
  /** @defaultValue LIMITER_TUNING */
  readonly tuning?: Partial<LimiterTuning>;
  /** Called with every reservation's view of the learned rate and margin (metrics). */
  readonly onState?: (model: string, state: { learnedRpm: number; margin: number }) => void;
  /** Called when a request woke too late for its slot and took a new one. */
  readonly onLate?: (model: string) => void;
}

interface Pending {
  tokens: number;
  oks: number;
}

export class SharedRateLimiter implements RequestGate {
  readonly adaptive = true;
  private readonly tuning: LimiterTuning;
  private readonly flushAfterMs: number;
  private readonly pending = new Map<string, Pending>();
  /** The limits last used for each model (a settlement flush needs them). */
  private readonly limitsOf = new Map<string, RateLimits>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly owner: QuotaOwner,
    private readonly opts: SharedLimiterOptions = {},
  ) {
    if (!owner.apiKey) throw new Error('SharedRateLimiter needs the API key (its hash names the shared quota)');
    this.tuning = { ...LIMITER_TUNING, ...opts.tuning };
    if (this.tuning.marginMax < this.tuning.marginStart)
      this.tuning = { ...this.tuning, marginMax: this.tuning.marginStart };
    this.flushAfterMs = opts.flushAfterMs ?? 1000;
  }

  async acquire(
    model: string,
    limits: RateLimits,
    tokens: number,
    signal?: AbortSignal,
  ): Promise<{ waitedMs: number; ticket?: string }> {
    if (limits.rpm === null && limits.tpm === null) return { waitedMs: 0 };
    signal?.throwIfAborted();
    const started = performance.now();
    for (let late = 0; ; late++) {
      const asked = performance.now();
      const r = await this.reserve(model, limits, tokens);
      // the slot was set in the middle of the round trip: that is when Redis's "now" was
      const due = (asked + performance.now()) / 2 + r.waitMs;
      const waitMs = due - performance.now();
      if (waitMs >= 1) await sleep(waitMs, undefined, signal ? { signal } : {});
      // woken too late (a busy event loop): sent now, it would crowd the slots after it
      // into the provider's second; the slot is left unused and a new one taken instead
      const slackMs = (1000 * r.margin) / (1 - r.margin);
      if (performance.now() - due <= Math.max(2, slackMs * this.tuning.lateShare) || late >= this.tuning.lateRetries) {
        return { waitedMs: performance.now() - started, ticket: r.ticket };
      }
      this.opts.onLate?.(model);
      // its tokens were not sent: refunded by the next reservation (the request slot stays a gap)
      this.pendingOf(model).tokens -= Math.max(0, Math.round(tokens));
      signal?.throwIfAborted();
    }
  }

  /**
   * Reserves the next send time for a request of `tokens` (estimated) tokens, without
   * waiting for it: `waitMs` from Redis's now, `slotMs` in Redis's clock.
   */
  async reserve(model: string, limits: RateLimits, tokens: number): Promise<Reservation> {
    this.limitsOf.set(model, limits);
    const reserved = Math.max(0, Math.round(tokens));
    const [wait, epoch, rate, margin, slot] = (await this.run(SCRIPTS.reserve, model, limits, [reserved])) as [
      string,
      number,
      string,
      string,
      string,
    ];
    const learnedRpm = Number(rate) * 60;
    this.opts.onState?.(model, { learnedRpm, margin: Number(margin) });
    return {
      waitMs: Number(wait),
      slotMs: Number(slot),
      epoch,
      ticket: `${epoch}:${reserved}`,
      learnedRpm,
      margin: Number(margin),
    };
  }

  settle(model: string, ticket: string, tokens: number): Promise<void> {
    const reserved = Number(ticket.slice(ticket.indexOf(':') + 1));
    const p = this.pendingOf(model);
    p.tokens += Math.max(0, Math.round(tokens)) - (Number.isFinite(reserved) ? reserved : 0);
    p.oks += 1;
    this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), this.flushAfterMs).unref();
    return Promise.resolve();
  }

  async throttled(model: string, ticket: string | undefined, retryAfterMs?: number): Promise<void> {
    const limits = this.limitsOf.get(model);
    if (!limits) return;
    const epoch = ticket === undefined ? -1 : Number(ticket.slice(0, ticket.indexOf(':')));
    const [, rate, margin] = (await this.run(SCRIPTS.throttled, model, limits, [
      Number.isFinite(epoch) ? epoch : -1,
      Math.max(0, Math.round(retryAfterMs ?? 0)),
      this.tuning.quotaRefused,
      this.tuning.quotaShare,
    ])) as [number, string, string];
    this.opts.onState?.(model, { learnedRpm: Number(rate) * 60, margin: Number(margin) });
  }

  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const models = [...this.pending.keys()];
    await Promise.all(
      models.map(async (model) => {
        const limits = this.limitsOf.get(model);
        if (limits) await this.run(SCRIPTS.settle, model, limits, []);
      }),
    );
  }

  /** The learned rate, margin and counts of a model's limiter (`status`, the run report, tests). */
  async state(model: string, limits: RateLimits): Promise<LimiterState | undefined> {
    const [r, m, n, k, l429] = (await this.evalScript(SCRIPTS.state, limiterKey(this.owner, model), [])) as (
      string | null
    )[];
    if (n === null || n === undefined) return undefined;
    const believedRpm = limits.rpm ?? 0;
    return {
      believedRpm,
      learnedRpm: r === null || r === undefined ? believedRpm : Math.min(believedRpm, Number(r) * 60),
      margin: m === null || m === undefined ? this.tuning.marginStart : Number(m),
      reservations: Number(n),
      tokens: Number(k ?? 0),
      ...(l429 ? { last429At: Number(l429) } : {}),
    };
  }

  private pendingOf(model: string): Pending {
    let p = this.pending.get(model);
    if (!p) {
      p = { tokens: 0, oks: 0 };
      this.pending.set(model, p);
    }
    return p;
  }

  /** Runs a limiter script with this model's limits, carrying (and clearing) its pending settlements. */
  private async run(s: Script, model: string, limits: RateLimits, extra: readonly number[]): Promise<unknown> {
    const p = this.pending.get(model);
    this.pending.delete(model);
    if (this.pending.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const t = this.tuning;
    const args = [
      limits.rpm === null ? 0 : limits.rpm / 60,
      limits.tpm === null ? 0 : limits.tpm / 60,
      p?.tokens ?? 0,
      p?.oks ?? 0,
      t.marginStart,
      t.marginMin,
      t.marginMax,
      t.marginWiden,
      t.marginNarrow,
      t.marginNarrowEveryMs,
      0,
      t.decreaseMin,
      t.decreaseMax,
      t.probeHoldMs,
      t.probeEveryMs,
      t.probeStep,
      ...extra,
    ];
    try {
      return await this.evalScript(s, limiterKey(this.owner, model), args);
    } catch (err) {
      // not counted: put the settlements back for the next call
      if (p) {
        const q = this.pendingOf(model);
        q.tokens += p.tokens;
        q.oks += p.oks;
      }
      throw err;
    }
  }

  private async evalScript(s: Script, key: string, args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await this.redis.evalsha(s.sha, 1, key, ...args);
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
      return this.redis.eval(s.body, 1, key, ...args);
    }
  }
}

/** A gate that never waits (rate limiting off, or unit tests). */
export const OPEN_GATE: RequestGate = {
  acquire: () => Promise.resolve({ waitedMs: 0 }),
  throttled: () => Promise.resolve(),
};

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
