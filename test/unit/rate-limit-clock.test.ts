import { describe, expect, it } from '@jest/globals';
import { RedisClock, lateToleranceMs, slotSlackMs } from '../../src/rate-limit-clock.js';
import { mulberry32 as random } from '../../src/simulator/prng.js';
import { RateLimiter } from '../../src/simulator/ratelimit.js';

describe("the shared limiter's timing arithmetic", () => {
  it("keeps the round trip with the smallest error bound as Redis's clock offset", () => {
    const c = new RedisClock(0);
    expect(c.estimate(0)).toBeUndefined();
    // 10 ms round trip that read Redis at 1,005: offset 1,000, give or take 5
    c.sample(0, 10, 1005);
    expect(c.estimate(10)).toEqual({ offsetMs: 1000, errorMs: 5 });
    // an answer that waited 200 ms in a busy event loop says little: kept out
    c.sample(100, 300, 1105);
    expect(c.estimate(300)).toEqual({ offsetMs: 1000, errorMs: 5 });
    // a faster one replaces it
    c.sample(400, 402, 1402);
    expect(c.estimate(402)).toEqual({ offsetMs: 1001, errorMs: 1 });
  });

  it("lets the kept estimate's bound grow with its age, so a later round trip replaces it", () => {
    const c = new RedisClock(1e-3);
    c.sample(0, 2, 1001);
    expect(c.errorAt(2)).toBeCloseTo(1, 9);
    expect(c.errorAt(10_002)).toBeCloseTo(11, 9);
    // 10 s later a 20 ms round trip (bound 10) is better than the old one's 11
    c.sample(10_000, 10_020, 11_013);
    expect(c.estimate(10_020)?.offsetMs).toBeCloseTo(1003, 9);
  });

  it('never places a slot before its time, wherever in the round trip Redis read its clock', () => {
    // Redis's clock is 1,000 ms ahead of ours; a round trip from 5 to 9 read it at local time u
    for (const u of [5, 6, 7, 8, 9]) {
      const c = new RedisClock(0);
      c.sample(5, 9, u + 1000);
      const slot = 50_000;
      // the local due time, in Redis's clock, is never before the slot, and at most the round trip after it
      const due = c.dueAt(slot, 9) + 1000;
      expect(due).toBeGreaterThanOrEqual(slot);
      expect(due).toBeLessThanOrEqual(slot + 4);
    }
  });

  it('lets a request use its slot up to half the slack of a second late: 15.5 ms at a 3% margin', () => {
    expect(slotSlackMs(0.03)).toBeCloseTo(30.93, 2);
    expect(lateToleranceMs(0.03, 0.5)).toBeCloseTo(15.46, 2);
    expect(lateToleranceMs(0.25, 0.5)).toBeCloseTo(166.67, 2);
    // no margin, no slack: a timer's own millisecond only
    expect(lateToleranceMs(0, 0.5)).toBe(2);
  });

  it("admits every request up to the slack late on the simulator's sliding window, and not one more", () => {
    const rpm = 300;
    const margin = 0.03;
    const rate = rpm / 60;
    const spacing = 1000 / (rate * (1 - margin));
    const slack = slotSlackMs(margin);
    const sim = new RateLimiter(() => ({ rpm, tpm: null }));
    const draw = random(15);
    // 3 minutes of slots, each request arriving anywhere from 0 to S after its own
    const arrivals = Array.from({ length: 873 }, (_, i) => i * spacing + draw() * (slack - 1e-6));
    arrivals.sort((a, b) => a - b);
    const refused = arrivals.filter((t) => sim.admit('m', 1, 1_000_000 + t) !== undefined);
    expect(refused).toEqual([]);
    // later than S: the request N slots after it, on time, is refused
    const strict = new RateLimiter(() => ({ rpm, tpm: null }));
    const late = Array.from({ length: 12 }, (_, i) => i * spacing + (i === 1 ? slack + 1 : 0));
    late.sort((a, b) => a - b);
    const out = late.map((t) => strict.admit('m', 1, 1_000_000 + t) !== undefined);
    expect(out.indexOf(true)).toBe(6);
  });
});
