/**
 * The shared rate limiter's client: every worker process on every machine that uses the
 * same API key reserves a send time here before each API request, so that together they
 * stay under the model's requests per second (RPM / 60), requests per minute and tokens
 * per minute, as close under them as is safe.
 *
 * Reservations, not polling (virtual scheduling, the GCRA of ATM networks): one Lua script
 * (rate-limit-scripts.ts, which also describes the adaptive margin, the learned rate and
 * the warm start) hands each request the next free slot on Redis's clock; the worker
 * sleeps locally until it. One round trip a request, O(1) work in Redis, slots in the
 * order asked. Here, around that wait:
 * - the slot is placed on this process's clock, never early (rate-limit-clock.ts);
 * - a wake-up later than half the slot's slack gives the slot back and takes another,
 *   rather than crowd the requests after it into a provider second;
 * - a slot handed out before the learned rate fell (429s from other requests meanwhile)
 *   is given back and one taken at the new pace, rather than sent to be refused;
 * - with `leadMs`, the wait ends that long before the slot and a sender of its own waits
 *   out the rest (send-thread.ts), with `late()` for when it could not make it;
 * - token estimates are corrected with the answer's `usage`, carried by the next
 *   reservation (or within a second), so settling costs no round trip;
 * - a 429 is reported (`throttled`): the script widens the margin or lowers the rate.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { RedisClock, lateToleranceMs } from './rate-limit-clock.js';
import { SCRIPTS } from './rate-limit-scripts.js';
import type { Script } from './rate-limit-scripts.js';
import { LIMITER_TUNING, tuningArgs } from './rate-limit-tuning.js';
import type { LimiterTuning } from './rate-limit-tuning.js';
import { limiterKey } from './rate-limit-types.js';
import type { LimiterState, QuotaOwner, Reservation, SharedLimiterOptions } from './rate-limit-types.js';
import type { Acquired, RateLimits, RequestGate } from './request-gate.js';

export { LIMITER_TUNING } from './rate-limit-tuning.js';
export { accountId, limiterKey } from './rate-limit-types.js';
export { OPEN_GATE } from './request-gate.js';
export type { Acquired, RateLimits, RequestGate } from './request-gate.js';
export type { LimiterTuning } from './rate-limit-tuning.js';
export type { LimiterState, QuotaOwner, Reservation, SharedLimiterOptions } from './rate-limit-types.js';

interface Pending {
  tokens: number;
  oks: number;
  /** The token corrections by the second their requests were reserved to start in (the token log's). */
  bySecond: Map<number, number>;
}

export class SharedRateLimiter implements RequestGate {
  readonly adaptive = true;
  private readonly tuning: LimiterTuning;
  private readonly flushAfterMs: number;
  private readonly pending = new Map<string, Pending>();
  /** The limits last used for each model (a settlement flush needs them). */
  private readonly limitsOf = new Map<string, RateLimits>();
  private timer: NodeJS.Timeout | undefined;
  private readonly clock = new RedisClock();
  /** The learned rate (RPM) of the latest reply for each model: a waiter paced faster gives its slot back. */
  private readonly rateSeen = new Map<string, number>();

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
    opts: { readonly leadMs?: number } = {},
  ): Promise<Acquired> {
    if (limits.rpm === null && limits.tpm === null) return { waitedMs: 0 };
    signal?.throwIfAborted();
    return this.waitForSlot(model, limits, tokens, signal, opts.leadMs ?? 0, performance.now());
  }

  /** Reserves and waits until the slot (or `leadMs` before it); `late` slots were given up so far. */
  private async waitForSlot(
    model: string,
    limits: RateLimits,
    tokens: number,
    signal: AbortSignal | undefined,
    leadMs: number,
    started: number,
    giveBack?: Reservation,
    late = 0,
  ): Promise<Acquired> {
    let wasLate = giveBack !== undefined;
    for (let repaced = 0; ;) {
      const r = await this.reserve(model, limits, tokens, giveBack, wasLate);
      // never before the slot: its local time plus what the clock estimate may be off by
      const due = this.clock.dueAt(r.slotMs, performance.now());
      const waitMs = due - leadMs - performance.now();
      try {
        if (waitMs >= 1) await sleep(waitMs, undefined, signal ? { signal } : {});
        signal?.throwIfAborted();
      } catch (err) {
        // an aborted wait (the worker stops): the slot goes back if nobody reserved after it
        await this.release(model, limits, r).catch(() => undefined);
        throw signal?.aborted ? signal.reason : err;
      }
      // the rate fell while this waited (429s said the account gets less): a slot handed
      // out at the old pace would be refused too, so it is given back and one taken at
      // the new pace (a few times at most: each takes the latest rate)
      if (this.slowedSince(model, r) && repaced < this.tuning.lateRetries) {
        repaced++;
        this.opts.onRepaced?.(model);
        giveBack = r;
        wasLate = false;
        continue;
      }
      // woken too late (a busy event loop): sent now, it would crowd the N-th slot after
      // it into the provider's second (rate-limit-clock.ts); the slot is given back
      // instead (taken back only if nobody reserved after it) and a new one taken
      const toleranceMs = late >= this.tuning.lateRetries ? Infinity : lateToleranceMs(r.margin, this.tuning.lateShare);
      if (performance.now() - due <= toleranceMs) {
        const acquired = { waitedMs: performance.now() - started, ticket: r.ticket };
        if (leadMs <= 0) return acquired;
        // the sender waits out the lead itself, and may find it could not send in time
        const next = (): Promise<Acquired> => {
          this.opts.onLate?.(model);
          return this.waitForSlot(model, limits, tokens, signal, leadMs, started, r, late + 1);
        };
        return { ...acquired, slot: { dueAt: due, toleranceMs }, late: next };
      }
      late++;
      this.opts.onLate?.(model);
      giveBack = r;
      wasLate = true;
    }
  }

  /** True when a reply since `r` showed a learned rate below the one `r` was paced at (a decrease). */
  private slowedSince(model: string, r: Reservation): boolean {
    const seen = this.rateSeen.get(model);
    return seen !== undefined && seen > 0 && seen < r.learnedRpm * (1 - 1e-6);
  }

  /**
   * Reserves the next send time for a request of `tokens` (estimated) tokens, without
   * waiting for it: `waitMs` from Redis's now, `slotMs` in Redis's clock. `giveBack`, a
   * reservation of this limiter's that will not be used: its slot is taken back first if
   * nobody reserved after it, and its tokens are refunded.
   */
  async reserve(
    model: string,
    limits: RateLimits,
    tokens: number,
    giveBack?: Reservation,
    late = giveBack !== undefined,
  ): Promise<Reservation> {
    this.limitsOf.set(model, limits);
    if (giveBack) this.pendingOf(model).tokens -= giveBack.tokens;
    const reserved = Math.max(0, Math.round(tokens));
    const sentAt = performance.now();
    const t = this.tuning;
    const back = [giveBack?.end ?? '', giveBack?.requestSlotMs ?? 0, late ? 1 : 0];
    const tuning = [t.lateWiden, t.lateWindowMs, t.lateMinReservations, t.warmMs, t.warmMargin];
    const reply = await this.run(SCRIPTS.reserve, model, limits, [
      reserved,
      ...back,
      ...tuning,
      giveBack?.tokenWaitMs ?? 0,
      giveBack?.slotMs ?? 0,
      giveBack?.tokens ?? 0,
    ]);
    type Reply = [string, number, string, string, string, string, string, string];
    const [wait, epoch, rate, margin, slot, end, requestSlot, tokenWait] = reply as Reply;
    this.clock.sample(sentAt, performance.now(), Number(slot) - Number(wait));
    const learnedRpm = Number(rate) * 60;
    this.rateSeen.set(model, learnedRpm);
    this.opts.onState?.(model, { learnedRpm, margin: Number(margin) });
    return {
      waitMs: Number(wait),
      slotMs: Number(slot),
      epoch,
      ticket: `${epoch}:${reserved}:${Math.floor(Number(slot) / 1000)}`,
      learnedRpm,
      margin: Number(margin),
      tokens: reserved,
      end,
      requestSlotMs: Number(requestSlot),
      tokenWaitMs: Number(tokenWait),
    };
  }

  /**
   * Gives back a reservation that will not be used: its tokens are refunded, and its slot
   * is taken back if nobody reserved after it (a slot with later ones behind it stays a gap:
   * theirs cannot move without telling every waiter). True if the slot was taken back.
   */
  async release(model: string, limits: RateLimits, r: Reservation): Promise<boolean> {
    this.pendingOf(model).tokens -= r.tokens;
    return (
      (await this.run(SCRIPTS.release, model, limits, [r.end, r.requestSlotMs, r.tokenWaitMs, r.slotMs, r.tokens])) ===
      1
    );
  }

  settle(model: string, ticket: string, tokens: number): Promise<void> {
    // the ticket: epoch, tokens reserved, the second of the slot
    const [, reservedText, secondText] = ticket.split(':');
    const reserved = Number(reservedText);
    const p = this.pendingOf(model);
    const delta = Math.max(0, Math.round(tokens)) - (Number.isFinite(reserved) ? reserved : 0);
    p.tokens += delta;
    const second = Number(secondText);
    if (delta !== 0 && Number.isInteger(second)) p.bySecond.set(second, (p.bySecond.get(second) ?? 0) + delta);
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
      this.tuning.quotaUnderMs,
      this.tuning.quotaUnder,
    ])) as [number, string, string];
    this.rateSeen.set(model, Number(rate) * 60);
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
    const p = this.pending.get(model) ?? { tokens: 0, oks: 0, bySecond: new Map<number, number>() };
    this.pending.set(model, p);
    return p;
  }

  /** Runs a limiter script with this model's limits, carrying (and clearing) its pending settlements. */
  private async run(
    s: Script,
    model: string,
    limits: RateLimits,
    extra: readonly (number | string)[],
  ): Promise<unknown> {
    const p = this.pending.get(model);
    this.pending.delete(model);
    if (this.pending.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const args = [
      limits.rpm === null ? 0 : limits.rpm / 60,
      limits.tpm === null ? 0 : limits.tpm / 60,
      // the sum, then each second's share: "sum|second:delta,..." (rate-limit-token-log.ts)
      p ? `${p.tokens}|${[...p.bySecond].map(([sec, d]) => `${sec}:${d}`).join(',')}` : '0|',
      p?.oks ?? 0,
      ...tuningArgs(this.tuning),
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
        for (const [sec, d] of p.bySecond) q.bySecond.set(sec, (q.bySecond.get(sec) ?? 0) + d);
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
