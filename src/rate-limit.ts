/**
 * The global rate limiter: every worker process on every machine that shares the Redis
 * asks it before each API request, so together they stay under the model's requests per
 * second (RPM / 60), requests per minute and input tokens per minute.
 *
 * Why a sliding-window log and not a fixed-window library (rate-limiter-flexible, BullMQ's
 * job limiter): the provider counts requests in sliding windows, and a fixed window lets
 * twice its quota through across a window edge (its end and the next one's start), which
 * the provider refuses with 429. BullMQ's limiter also counts jobs, not requests or tokens.
 * So the admission is one Lua script over a sorted set of the last minute's requests.
 *
 * State in Redis, per model, under the queue prefix:
 * - `{p}:rl:{model}`      sorted set: one member per admitted request ("id:tokens"),
 *                          scored by admission time (Redis server time: one clock for all);
 * - `{p}:rl:{model}:hold` a key whose TTL holds every worker back after a 429.
 * Our windows are a little longer than the provider's (`slackMs`), so that requests that
 * leave a few milliseconds apart can't arrive inside one of its windows.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';

export interface RateLimits {
  readonly rpm: number | null;
  readonly tpm: number | null;
}

/** What the embed handler needs: permission to send, and a way to slow everyone down. */
export interface RequestGate {
  /**
   * Resolves when a request of `tokens` input tokens (an estimate) may be sent now, and
   * counts it; rejects once `signal` aborts. The ticket names what was counted.
   */
  acquire(model: string, limits: RateLimits, tokens: number, signal?: AbortSignal): Promise<{ waitedMs: number; ticket?: string }>;
  /** Corrects an admitted request's tokens to what the answer's usage says it cost. */
  settle?(model: string, ticket: string, tokens: number): Promise<void>;
  /** After a 429: every worker waits `ms` before its next request of this model. */
  penalize(model: string, ms: number): Promise<void>;
}

// KEYS: log, hold. ARGV: rps, rpm, tpm (0 = none), tokens, member id, second window ms, minute window ms.
// Returns 0 when admitted, else the milliseconds to wait before asking again.
const ADMIT = `
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then return hold end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rps, rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local secw, minw = tonumber(ARGV[6]), tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - minw)
local wait = 0
if rps > 0 then
  local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - secw, '+inf', 'WITHSCORES')
  local n = #recent / 2
  if n >= rps then
    local oldest = tonumber(recent[(n - rps) * 2 + 2])
    wait = math.max(wait, oldest + secw - now + 1)
  end
end
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count = #all / 2
if rpm > 0 and count >= rpm then
  wait = math.max(wait, tonumber(all[(count - rpm) * 2 + 2]) + minw - now + 1)
end
if tpm > 0 then
  if tokens > tpm then tokens = tpm end
  local sum = 0
  for i = 1, #all, 2 do sum = sum + tonumber(string.match(all[i], ':(%d+)$')) end
  local i = 1
  while sum + tokens > tpm and i <= #all do
    sum = sum - tonumber(string.match(all[i], ':(%d+)$'))
    wait = math.max(wait, tonumber(all[i + 1]) + minw - now + 1)
    i = i + 2
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. tokens)
redis.call('PEXPIRE', KEYS[1], minw * 2)
return 0`;

// KEYS: log. ARGV: the admitted member (id:tokens), the corrected member. Keeps its time.
const SETTLE = `
local at = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not at then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], at, ARGV[2])
return 1`;

const HOLD = `
local cur = redis.call('PTTL', KEYS[1])
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return 0`;

export interface SharedLimiterOptions {
  /**
   * Extra length of our windows over the provider's. @defaultValue 250 ms and 2 s (the minute
   * window's margin costs nothing while the per-second pace binds, and 3% when RPM does)
   * (a request can reach the provider 100+ ms after its admission on a busy machine, so
   * a 50 ms second-window slack let two requests arrive less than a second apart: 429)
   */
  readonly secondSlackMs?: number;
  readonly minuteSlackMs?: number;
  /** Fraction of the limits to use. @defaultValue 1 */
  readonly utilization?: number;
}


export class SharedRateLimiter implements RequestGate {
  private readonly secondWindow: number;
  private readonly minuteWindow: number;
  private readonly utilization: number;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly prefix: string,
    opts: SharedLimiterOptions = {},
  ) {
    this.secondWindow = 1000 + (opts.secondSlackMs ?? 250);
    this.minuteWindow = 60_000 + (opts.minuteSlackMs ?? 2000);
    this.utilization = opts.utilization ?? 1;
  }

  async acquire(model: string, limits: RateLimits, tokens: number, signal?: AbortSignal): Promise<{ waitedMs: number; ticket?: string }> {
    if (limits.rpm === null && limits.tpm === null) return { waitedMs: 0 };
    const rpm = limits.rpm === null ? 0 : Math.max(1, Math.floor(limits.rpm * this.utilization));
    // the provider's per-second limit is RPM/60 rounded up; ours must not exceed it
    const rps = limits.rpm === null ? 0 : Math.max(1, Math.floor(Math.ceil(limits.rpm / 60) * this.utilization));
    const tpm = limits.tpm === null ? 0 : Math.max(1, Math.floor(limits.tpm * this.utilization));
    const member = randomUUID();
    let waited = 0;
    for (;;) {
      signal?.throwIfAborted();
      const wait = Number(
        await this.redis.eval(ADMIT, 2, this.key(model), `${this.key(model)}:hold`, rps, rpm, tpm, Math.max(0, Math.round(tokens)), member, this.secondWindow, this.minuteWindow),
      );
      // the script stores `member:tokens`, tokens capped at the TPM
      if (wait <= 0) return { waitedMs: waited, ticket: `${member}:${tpm > 0 ? Math.min(Math.max(0, Math.round(tokens)), tpm) : Math.max(0, Math.round(tokens))}` };
      // ask again within a second at most (a penalty may be lifted, a window may empty
      // early), with a little random extra so waiting workers do not ask all at once
      const pause = Math.min(wait, 1000) + Math.floor(Math.random() * 15);
      waited += pause;
      await sleep(pause, undefined, signal ? { signal } : {});
    }
  }

  async settle(model: string, ticket: string, tokens: number): Promise<void> {
    const member = ticket.slice(0, ticket.lastIndexOf(':'));
    const corrected = `${member}:${Math.max(0, Math.round(tokens))}`;
    if (corrected !== ticket) await this.redis.eval(SETTLE, 1, this.key(model), ticket, corrected);
  }

  async penalize(model: string, ms: number): Promise<void> {
    await this.redis.eval(HOLD, 1, `${this.key(model)}:hold`, Math.max(1, Math.round(ms)));
  }

  private key(model: string): string {
    return `${this.prefix}:rl:${model}`;
  }
}

/** A gate that never waits (rate limiting off, or unit tests). */
export const OPEN_GATE: RequestGate = {
  acquire: () => Promise.resolve({ waitedMs: 0 }),
  penalize: () => Promise.resolve(),
};
