import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { LIMITER_TUNING, SharedRateLimiter, accountId, limiterKey } from '../../src/rate-limit.js';
import type { LimiterTuning, RateLimits } from '../../src/rate-limit.js';
import { startCli } from '../support/pipeline.js';

/** Largest number of times in any window of `windowMs` (closed on the right, as the simulator counts). */
function maxInWindow(times: number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let best = 0;
  let lo = 0;
  for (let hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi]! - sorted[lo]! >= windowMs) lo++;
    best = Math.max(best, hi - lo + 1);
  }
  return best;
}

describe('the shared rate limiter in Redis (reservations)', () => {
  let redis: Redis;
  let other: Redis;
  // a key (and so an account) of this test run alone
  const apiKey = `sk-test-rl-${randomUUID()}`;
  const owner = { apiKey, baseUrl: 'http://limiter.test' };
  // no warm start unless a test is about it: the others check the steady spacing from the first slot
  const limiter = (tuning: Partial<LimiterTuning> = {}, connection?: Redis): SharedRateLimiter =>
    new SharedRateLimiter(connection ?? redis, owner, { tuning: { warmMs: 0, ...tuning } });
  let models = 0;
  /** A model name of its own for each test: the state is per account and model. */
  const fresh = (): string => `m${++models}`;

  beforeAll(() => {
    const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    redis = new Redis(url, { maxRetriesPerRequest: null });
    other = new Redis(url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    const keys = await redis.keys(`mm-ingest:rl:${accountId(owner)}:*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await other.quit();
  });

  it('hands out request slots 1 / (RPM/60 x (1 - margin)) apart, in the order asked, one round trip each', async () => {
    const l = limiter();
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: null };
    const before = Number(
      /calls=(\d+)/.exec(
        (await redis.info('commandstats')).split('\n').find((x) => x.startsWith('cmdstat_evalsha')) ?? '',
      )?.[1] ?? 0,
    );
    const slots = [];
    for (let i = 0; i < 8; i++) slots.push(await l.reserve(model, limits, 1));
    const interval = 1000 / (10 * (1 - LIMITER_TUNING.marginStart));
    for (let i = 1; i < slots.length; i++) expect(slots[i]!.slotMs - slots[i - 1]!.slotMs).toBeCloseTo(interval, 2);
    // the first is due at once, the others later and later
    expect(slots[0]!.waitMs).toBe(0);
    expect(slots[7]!.waitMs).toBeGreaterThan(slots[1]!.waitMs);
    expect(slots.every((s) => s.learnedRpm === 600 && Math.abs(s.margin - LIMITER_TUNING.marginStart) < 1e-9)).toBe(
      true,
    );
    const after = Number(
      /calls=(\d+)/.exec(
        (await redis.info('commandstats')).split('\n').find((x) => x.startsWith('cmdstat_evalsha')) ?? '',
      )?.[1] ?? 0,
    );
    // one script call a reservation (other tests share this Redis: at least, not at most)
    expect(after - before).toBeGreaterThanOrEqual(8);
    expect((await l.state(model, limits))?.reservations).toBe(8);
  });

  it('spaces the slots of the first warmMs of an activity with the warm margin, and then with the margin', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: null };
    const l = limiter({ warmMs: 300, warmMargin: 0.2 });
    const warm = [];
    for (let i = 0; i < 3; i++) warm.push(await l.reserve(model, limits, 1));
    // 10 a second with a 20% margin: 125 ms apart, not 103
    expect(warm[1]!.slotMs - warm[0]!.slotMs).toBeCloseTo(125, 2);
    expect(warm[2]!.slotMs - warm[1]!.slotMs).toBeCloseTo(125, 2);
    await sleep(400);
    const a = await l.reserve(model, limits, 1);
    const b = await l.reserve(model, limits, 1);
    expect(b.slotMs - a.slotMs).toBeCloseTo(1000 / (10 * (1 - LIMITER_TUNING.marginStart)), 2);
  });

  it('shares one schedule between limiters on separate connections with the same key, whatever their queue prefix, and not with another key', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: null };
    const a = limiter();
    const b = limiter({}, other);
    const stranger = new SharedRateLimiter(redis, { apiKey: `${apiKey}-other`, baseUrl: owner.baseUrl });
    const first = await a.reserve(model, limits, 1);
    const second = await b.reserve(model, limits, 1);
    expect(second.slotMs - first.slotMs).toBeCloseTo(1000 / (10 * (1 - LIMITER_TUNING.marginStart)), 2);
    const elsewhere = await stranger.reserve(model, limits, 1);
    expect(elsewhere.waitMs).toBe(0);
    // the key holds a digest, never the API key
    expect(limiterKey(owner, model)).not.toContain(apiKey);
    expect(await redis.exists(limiterKey(owner, model))).toBe(1);
    await redis.del(limiterKey({ apiKey: `${apiKey}-other`, baseUrl: owner.baseUrl }, model));
  });

  it('lets no more than RPM/60 requests a second reach a simulator that enforces it, across limiters that sleep until their slots', async () => {
    // the simulator in a process of its own: arrival times are recorded by its event loop, not this one's
    const key = 'sk-test-rl-arrivals-0123456789';
    const sim = startCli(['simulate', '--port', '0', '--api-key', key, '--rpm', '1200', '--capture-requests', '100'], {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LOG_LEVEL: 'warn',
    });
    try {
      await sim.waitFor(/simulator listening on http:\/\/\S+/);
      const url = /simulator listening on (http:\/\/\S+)/.exec(sim.output())![1]!;
      const model = fresh();
      // arrivals carry this machine's network and scheduling jitter (tens of ms under load), so the
      // limiters start wider than 3%, as RATE_LIMIT_MARGIN lets a machine do whose requests reach
      // the provider unevenly: 20% leaves each second 187 ms of it
      const wide = { marginStart: 0.2, marginMin: 0.2 };
      const a = limiter(wide);
      const b = limiter(wide, other);
      const statuses: number[] = [];
      const take = async (l: SharedRateLimiter): Promise<void> => {
        for (let i = 0; i < 10; i++) {
          await l.acquire(model, { rpm: 1200, tpm: null }, 1);
          const answer = await fetch(`${url}/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            body: JSON.stringify({
              model: 'qwen3-vl-embedding',
              input: { contents: [{ text: 'ping' }] },
              parameters: { dimension: 256 },
            }),
          });
          statuses.push(answer.status);
          await answer.arrayBuffer();
        }
      };
      await Promise.all([take(a), take(b), take(a)]);
      const log = (await (await fetch(`${url}/_sim/requests`)).json()) as { requests: { at: string }[] };
      const arrivals = log.requests.map((r) => Date.parse(r.at));
      expect(arrivals).toHaveLength(30);
      // 1,200 RPM is 20 a second, which the simulator enforces with 429s
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(maxInWindow(arrivals, 1000)).toBeLessThanOrEqual(20);
    } finally {
      await sim.stop();
    }
  }, 60_000);

  it('paces tokens at TPM/60 x (1 - a third of the margin) a second, and a refund or debit moves the next slot by the tokens corrected', async () => {
    const model = fresh();
    // requests small against the minute's margin (970 tokens of TPM x margin / 3 = 5,000)
    const limits: RateLimits = { rpm: null, tpm: 600_000 };
    const l = limiter();
    // tokens a second: the token margin is a third of the request margin
    const rho = (600_000 / 60) * (1 - LIMITER_TUNING.marginStart * LIMITER_TUNING.tokenMarginShare);
    const r1 = await l.reserve(model, limits, 970);
    const r2 = await l.reserve(model, limits, 970);
    const r3 = await l.reserve(model, limits, 970);
    // from the third on, each request waits for the tokens before it: 970 / rho seconds apart
    expect(r3.slotMs - r2.slotMs).toBeCloseTo((970 / rho) * 1000, 2);
    expect(r2.slotMs).toBeGreaterThan(r1.slotMs);
    // the third cost 485 tokens, not 970: a refund, carried by the next reservation
    await l.settle(model, r3.ticket, 485);
    expect((await l.state(model, limits))?.tokens).toBe(970 * 3);
    const r4 = await l.reserve(model, limits, 970);
    expect(r4.slotMs - r3.slotMs).toBeCloseTo((485 / rho) * 1000, 2);
    expect((await l.state(model, limits))?.tokens).toBe(970 * 3 - 485 + 970);
    // the fourth cost 1,455: a debit, sent within the flush delay when no reservation comes
    await l.settle(model, r4.ticket, 1455);
    await l.flush();
    expect((await l.state(model, limits))?.tokens).toBe(970 * 3 - 485 + 1455);
    const r5 = await l.reserve(model, limits, 970);
    expect(r5.slotMs - r4.slotMs).toBeCloseTo((1455 / rho) * 1000, 2);
  });

  it('lets requests bigger than the minute margin go once the schedule drains while every 61 s of starts stays within TPM', async () => {
    const model = fresh();
    // 1,024-token videos under 2,500 TPM: the minute's margin is 2,500 x mt tokens, far less than one
    const limits: RateLimits = { rpm: null, tpm: 2500 };
    const l = limiter();
    const mt = LIMITER_TUNING.marginStart * LIMITER_TUNING.tokenMarginShare;
    const rho = (2500 / 60) * (1 - mt);
    const slots: number[] = [];
    for (let i = 0; i < 6; i++) slots.push((await l.reserve(model, limits, 1024)).slotMs);
    const [a, b, c] = slots as [number, number, number];
    // the second goes once the first's tokens have drained (two fit in a minute)...
    expect(b - a).toBeCloseTo((1024 / rho) * 1000, 0);
    // ...the third only once the first has left the minute, counted in whole seconds (61 s)
    expect(c - a).toBeGreaterThan(60_000);
    expect(c - a).toBeLessThanOrEqual(62_000);
    // no 60 s (closed on the right, as the provider counts) holds more than 2 x 1,024 tokens
    expect(maxInWindow(slots, 60_000)).toBe(2);
    // and the rate is two videos a minute and a second: 2,014 TPM of the 2,500, not half of it
    expect((slots[5]! - a) / 1000).toBeLessThan(2.5 * 61 + 1);

    // estimated at 1,300, two do not fit in a minute; the first used 1,024, and its refund
    // reaches its second of the log, so the second request fits beside it
    const other = fresh();
    const first = await l.reserve(other, limits, 1300);
    await l.settle(other, first.ticket, 1024);
    const second = await l.reserve(other, limits, 1300);
    expect(second.slotMs - first.slotMs).toBeCloseTo((1024 / rho) * 1000, 0);
    const log = await redis.hget(limiterKey(owner, other), 'q');
    expect(log).toBe(`${Math.floor(first.slotMs / 1000)}:1024,${Math.floor(second.slotMs / 1000)}:1300`);
  });

  it('drains the tokens scheduled ahead at a newly told TPM, not at the one they were paced at', async () => {
    const model = fresh();
    const l = limiter();
    const slow: RateLimits = { rpm: null, tpm: 1000 };
    // two 900-token requests at 1,000 TPM: the second's slot and the schedule's end are a minute and more ahead
    await l.reserve(model, slow, 900);
    const held = await l.reserve(model, slow, 900);
    expect(held.waitMs).toBeGreaterThan(40_000);
    // told 200 times the TPM (a raised quota), the 1,800 tokens ahead drain in 200 times less
    const raised = await l.reserve(model, { rpm: null, tpm: 200_000 }, 900);
    const mt = LIMITER_TUNING.marginStart * LIMITER_TUNING.tokenMarginShare;
    const aheadMs = ((2 * 900) / ((200_000 / 60) * (1 - mt))) * 1000;
    expect(raised.waitMs).toBeLessThan(aheadMs + 1000);
    // and told the old TPM again, the schedule is back at its old pace: the next waits about as long as the held one did
    const again = await l.reserve(model, slow, 900);
    expect(again.waitMs).toBeGreaterThan(held.waitMs);
  });

  it('widens the margin after a 429 at the believed rate, ignores 429s of earlier reservations, and narrows it again while none come', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: null };
    const l = limiter({ marginNarrowEveryMs: 300 });
    const widened = LIMITER_TUNING.marginStart + LIMITER_TUNING.marginWiden;
    const a = await l.reserve(model, limits, 1);
    const b = await l.reserve(model, limits, 1);
    await l.throttled(model, a.ticket);
    let s = await l.state(model, limits);
    expect(s?.margin).toBeCloseTo(widened, 4);
    expect(s?.learnedRpm).toBe(600);
    // b was reserved before the margin widened: its 429 is the same event, not a second one
    await l.throttled(model, b.ticket);
    s = await l.state(model, limits);
    expect(s?.margin).toBeCloseTo(widened, 4);
    expect(s?.learnedRpm).toBe(600);
    const c = await l.reserve(model, limits, 1);
    expect(c.margin).toBeCloseTo(widened, 4);
    await sleep(700);
    // two narrowing periods have passed: half a point each, never below the start
    const d = await l.reserve(model, limits, 1);
    expect(d.margin).toBeGreaterThanOrEqual(LIMITER_TUNING.marginMin);
    expect(d.margin).toBeLessThanOrEqual(0.04 + 1e-9);
    await sleep(700);
    expect((await l.reserve(model, limits, 1)).margin).toBeCloseTo(LIMITER_TUNING.marginMin, 4);
  });

  it('lowers the shared rate to what was accepted when 429s keep coming (AIMD), at most by half, probes back up and never above the believed rate', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 6000, tpm: null };
    const l = limiter({ probeHoldMs: 400, probeEveryMs: 200, probeStep: 0.1 });
    const other2 = limiter({ probeHoldMs: 400, probeEveryMs: 200, probeStep: 0.1 }, other);
    // 10 requests answered within the first second: the provider accepted 10 a second
    for (let i = 0; i < 10; i++) await l.settle(model, (await l.reserve(model, limits, 1)).ticket, 1);
    // the first two 429s (fewer than 3 in the minute) are taken for our own margin
    await l.throttled(model, (await l.reserve(model, limits, 1)).ticket);
    await other2.throttled(model, (await other2.reserve(model, limits, 1)).ticket);
    expect((await l.state(model, limits))?.learnedRpm).toBe(6000);
    expect((await l.state(model, limits))?.margin).toBeCloseTo(
      LIMITER_TUNING.marginStart + 2 * LIMITER_TUNING.marginWiden,
      4,
    );
    // a third, with 3 of 13 answers refused (over 20%): the quota
    const t2 = await other2.reserve(model, limits, 1);
    await other2.throttled(model, t2.ticket);
    const s = await l.state(model, limits);
    // 10 accepted over (at least) one second is 600 RPM, under half of 6,000: halved, not more
    expect(s?.learnedRpm).toBeCloseTo(3000, 1);
    // every limiter on the key paces at the learned rate
    const n1 = await l.reserve(model, limits, 1);
    const n2 = await other2.reserve(model, limits, 1);
    expect(n1.learnedRpm).toBeCloseTo(3000, 1);
    expect(n2.slotMs - n1.slotMs).toBeCloseTo(1000 / (50 * (1 - n1.margin)), 2);
    // a 429 of a request reserved before the decrease changes nothing more
    await l.throttled(model, t2.ticket);
    expect((await l.state(model, limits))?.learnedRpm).toBeCloseTo(3000, 1);
    // after the hold, +10% of the believed rate each period, up to the believed rate and no further
    await sleep(1300);
    const up = await l.reserve(model, limits, 1);
    expect(up.learnedRpm).toBeGreaterThan(3000);
    await sleep(1500);
    expect((await l.reserve(model, limits, 1)).learnedRpm).toBe(6000);
    // a lower configured rate caps what was learned
    expect((await l.reserve(model, { rpm: 1200, tpm: null }, 1)).learnedRpm).toBe(1200);
  }, 20_000);

  it('takes the decrease from the successes of the last minute when they are above half', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 1200, tpm: null };
    const l = limiter();
    for (let i = 0; i < 14; i++) await l.settle(model, (await l.reserve(model, limits, 1)).ticket, 1);
    // three taken for the margin (fewer than 20% of the answers), the fourth for the quota
    for (let i = 0; i < 4; i++) await l.throttled(model, (await l.reserve(model, limits, 1)).ticket);
    const learned = (await l.state(model, limits))?.learnedRpm ?? 0;
    // 14 accepted within the first second or so: 840 RPM (less if this took longer than a second)
    expect(learned).toBeLessThanOrEqual(840 + 1e-6);
    expect(learned).toBeGreaterThanOrEqual(600);
  });

  it('takes a single 429 for the quota once the provider has accepted clearly less than the pace while slots queued ahead', async () => {
    const limits: RateLimits = { rpm: 600, tpm: null };
    const run = async (oks: number, queued: number): Promise<{ learnedRpm?: number; margin?: number } | undefined> => {
      const model = fresh();
      const l = limiter({ quotaUnderMs: 1000 });
      const first = await l.reserve(model, limits, 1);
      for (let i = 0; i < oks; i++) await l.settle(model, first.ticket, 1);
      await l.flush();
      // over a second of activity: `oks` accepted against a pace of 9.75 a second; then
      // `queued` reservations, the 429 on the last
      await sleep(1100);
      let last = first;
      for (let i = 0; i < queued; i++) last = await l.reserve(model, limits, 1);
      await l.throttled(model, last.ticket);
      return l.state(model, limits);
    };
    // 3 accepted in about a second, with slots queued: under 95% of the pace, so one 429
    // lowers the rate (to at least half)
    const under = await run(3, 4);
    expect(under?.learnedRpm).toBeLessThan(600);
    expect(under?.learnedRpm).toBeGreaterThanOrEqual(300);
    expect(under?.margin).toBeCloseTo(LIMITER_TUNING.marginStart, 6);
    const widened = LIMITER_TUNING.marginStart + LIMITER_TUNING.marginWiden;
    // 11 accepted in about a second: at the pace, so one 429 is our own margin
    const at = await run(11, 4);
    expect(at?.learnedRpm).toBe(600);
    expect(at?.margin).toBeCloseTo(widened, 6);
    // few accepted but nothing queued (the workers send less than the pace): the margin too
    const idle = await run(3, 1);
    expect(idle?.learnedRpm).toBe(600);
    expect(idle?.margin).toBeCloseTo(widened, 6);
  });

  it('takes a few 429s among many answers for its own margin, not for a lower quota', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 6000, tpm: null };
    const l = limiter();
    for (let i = 0; i < 100; i++) await l.settle(model, (await l.reserve(model, limits, 1)).ticket, 1);
    for (let i = 0; i < 4; i++) await l.throttled(model, (await l.reserve(model, limits, 1)).ticket);
    const s = await l.state(model, limits);
    // 4 of 104 answers: under 20%, so four widenings and the believed rate kept
    expect(s?.learnedRpm).toBe(6000);
    expect(s?.margin).toBeCloseTo(LIMITER_TUNING.marginStart + 4 * LIMITER_TUNING.marginWiden, 4);
  });

  it('leaves a slot unused and takes another when the worker wakes up too late for it', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: null };
    let late = 0;
    const l = new SharedRateLimiter(redis, owner, { tuning: { warmMs: 0 }, onLate: () => void late++ });
    // the next slot is 100 ms away (one reservation ahead of it)
    await l.reserve(model, limits, 1);
    // a busy event loop: 150 ms of synchronous work while the acquire sleeps
    setTimeout(() => {
      const until = performance.now() + 150;
      while (performance.now() < until);
    }, 20);
    await l.acquire(model, limits, 1);
    expect(late).toBe(1);
    const s = await l.state(model, limits);
    expect(s?.reservations).toBe(3);
    // the unused slot's token was refunded with the reservation that replaced it
    expect(s?.tokens).toBe(2);
  });

  it('gives up a slot paced at a rate that has fallen while it waited, and takes one at the new pace', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 240, tpm: null };
    let repaced = 0;
    // every 429 is taken for the quota (none for the margin), halving the rate at most; no
    // late wake-up on a loaded machine takes a slot of its own
    const l = new SharedRateLimiter(redis, owner, {
      tuning: { quotaRefused: 1, quotaShare: 0, warmMs: 0, lateShare: 1000 },
      onRepaced: () => void repaced++,
    });
    const first = await l.reserve(model, limits, 1);
    // four waiters at 4 a second: about 250, 500, 750 and 1,000 ms away
    const waiting = [1, 2, 3, 4].map(() => l.acquire(model, limits, 1));
    await sleep(20);
    // a 429 while they wait: the rate falls to half (nothing was accepted yet)
    await l.throttled(model, first.ticket);
    const after = await l.state(model, limits);
    expect(after?.learnedRpm).toBeCloseTo(120, 6);
    const tickets = (await Promise.all(waiting)).map((a) => a.ticket ?? '');
    // each went out on a slot of the new epoch, so none at the old pace
    const newEpoch = Number(tickets[0]?.split(':')[0]);
    expect(newEpoch).toBeGreaterThan(Number(first.ticket.split(':')[0]));
    expect(tickets.every((t) => Number(t.split(':')[0]) === newEpoch)).toBe(true);
    expect(repaced).toBe(4);
    // 1 + 4 reservations, then 4 more at the new pace: the next slot is 4 new spacings on
    const next = await l.reserve(model, limits, 1);
    expect(next.learnedRpm).toBeCloseTo(120, 6);
    expect((await l.state(model, limits))?.reservations).toBe(10);
  });

  it('with a lead, resolves that long before the slot with the slot and its tolerance; late() gives it back and takes the next', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 60, tpm: null };
    let late = 0;
    const l = new SharedRateLimiter(redis, owner, { tuning: { warmMs: 0 }, onLate: () => void late++ });
    await l.reserve(model, limits, 1);
    const a = await l.acquire(model, limits, 1, undefined, { leadMs: 300 });
    const resolvedAt = performance.now();
    expect(a.slot).toBeDefined();
    // resolved ahead of the slot (by about the lead), and told how late the slot may be used
    expect(a.slot!.dueAt).toBeGreaterThan(resolvedAt);
    const m = LIMITER_TUNING.marginStart;
    expect(a.slot!.toleranceMs).toBeCloseTo((LIMITER_TUNING.lateShare * 1000 * m) / (1 - m), 6);
    // the sender found it could not make the slot: nobody reserved after it, so the slot
    // is taken back and handed out again, counted as a late wake-up
    const b = await a.late!();
    expect(late).toBe(1);
    expect(Math.abs(b.slot!.dueAt - a.slot!.dueAt)).toBeLessThan(5);
    await l.flush();
    const s = await l.state(model, limits);
    expect(s?.reservations).toBe(3);
    expect(s?.tokens).toBe(2);
    // without a lead: no slot, resolved at the slot itself
    expect((await l.acquire(fresh(), limits, 1)).slot).toBeUndefined();
  });

  it('takes a given-back slot back only when nobody reserved after it', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 60, tpm: null };
    const l = limiter();
    const spacing = 1000 / (1 * (1 - LIMITER_TUNING.marginStart));
    await l.reserve(model, limits, 1);
    const b = await l.reserve(model, limits, 1);
    // nobody after b: its slot goes to the next request
    expect(await l.release(model, limits, b)).toBe(true);
    const c = await l.reserve(model, limits, 1);
    expect(c.slotMs).toBeCloseTo(b.slotMs, 3);
    // d has e behind it: its slot stays a gap, the next request comes after e
    const d = await l.reserve(model, limits, 1);
    const e = await l.reserve(model, limits, 1);
    expect(await l.release(model, limits, d)).toBe(false);
    const f = await l.reserve(model, limits, 1);
    expect(f.slotMs).toBeCloseTo(e.slotMs + spacing, 3);
    // a reservation given back with the next one (a late wake-up) likewise keeps its place
    const g = await l.reserve(model, limits, 1, f);
    expect(g.slotMs).toBeCloseTo(f.slotMs, 3);
    // the given-back tokens (b, d and f) were refunded: 7 reserved, 4 kept
    await l.flush();
    expect((await l.state(model, limits))?.tokens).toBe(4);
  });

  it('gives back a slot the token schedule held back: the next request waits for the tokens before it, not for that slot', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 600, tpm: 1000 };
    const l = limiter();
    const mt = LIMITER_TUNING.marginStart * LIMITER_TUNING.tokenMarginShare;
    const perToken = 1000 / ((1000 / 60) * (1 - mt));
    const tolMin = (60_000 * mt) / (1 - mt);
    const a = await l.reserve(model, limits, 900);
    // b waits for a's 900 tokens to drain (54 s), then for a to leave the minute (61 s in whole seconds)
    const b = await l.reserve(model, limits, 900);
    expect(b.slotMs - a.slotMs).toBeGreaterThan(900 * perToken);
    expect(b.slotMs - a.slotMs).toBeGreaterThan(60_000);
    const log = (): Promise<string | null> => redis.hget(limiterKey(owner, model), 'q');
    expect(await log()).toBe(`${Math.floor(a.slotMs / 1000)}:900,${Math.floor(b.slotMs / 1000)}:900`);
    expect(await l.release(model, limits, b)).toBe(true);
    // b's tokens left the token log of the seconds of starts
    expect(await log()).toBe(`${Math.floor(a.slotMs / 1000)}:900`);
    // with b given back, a 10-token request (itself more than the minute's margin of 8) waits for a's
    // tokens to drain (54.5 s after a), not for b's slot
    const c = await l.reserve(model, limits, 10);
    expect(tolMin).toBeLessThan(10 * perToken);
    expect(c.slotMs - a.slotMs).toBeCloseTo(900 * perToken, -1);
    expect(c.slotMs).toBeLessThan(b.slotMs - 5000);
  });

  it('gives back the slot of an acquire aborted while it waits', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 60, tpm: null };
    const l = limiter();
    const first = await l.reserve(model, limits, 1);
    const stop = new AbortController();
    // the acquire's slot is a second away; the worker stops meanwhile
    const waiting = l.acquire(model, limits, 3, stop.signal);
    setTimeout(() => stop.abort(new Error('worker stopping')), 50);
    await expect(waiting).rejects.toThrow('worker stopping');
    const next = await l.reserve(model, limits, 1);
    expect(next.slotMs).toBeCloseTo(first.slotMs + 1000 / (1 - LIMITER_TUNING.marginStart), 3);
    await l.flush();
    expect((await l.state(model, limits))?.tokens).toBe(2);
  });

  it('widens the margin when more than a tenth of a window of reservations replace slots woken up too late for', async () => {
    const limits: RateLimits = { rpm: 6000, tpm: null };
    const tuning = { lateWindowMs: 100, lateMinReservations: 5 };
    const run = async (lateOnes: number): Promise<number | undefined> => {
      const model = fresh();
      const l = limiter(tuning);
      let last = await l.reserve(model, limits, 1);
      for (let i = 0; i < 9; i++) last = await l.reserve(model, limits, 1, i < lateOnes ? last : undefined);
      // the window closes with the first reservation after it
      await sleep(150);
      await l.reserve(model, limits, 1);
      return (await l.state(model, limits))?.margin;
    };
    // 2 late of 11: widened by one step; 1 of 11: not
    expect(await run(2)).toBeCloseTo(LIMITER_TUNING.marginStart + LIMITER_TUNING.marginWiden, 6);
    expect(await run(1)).toBeCloseTo(LIMITER_TUNING.marginStart, 6);
  });

  it('holds every limiter on the key until a Retry-After has passed', async () => {
    const model = fresh();
    const limits: RateLimits = { rpm: 6000, tpm: null };
    const a = limiter();
    const b = limiter({}, other);
    const t = await a.reserve(model, limits, 1);
    await a.throttled(model, t.ticket, 800);
    const next = await b.reserve(model, limits, 1);
    expect(next.waitMs).toBeGreaterThanOrEqual(700);
  });
});
