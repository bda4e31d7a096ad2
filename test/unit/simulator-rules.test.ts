import { describe, it, expect } from '@jest/globals';
import { FaultInjector } from '../../src/simulator/faults.js';
import type { FaultKind } from '../../src/simulator/faults.js';
import { DEFAULT_FAULTS, DEFAULT_VIDEO_TOKEN_RULE } from '../../src/simulator/options.js';
import type { RateLimit } from '../../src/simulator/options.js';
import { RateLimiter } from '../../src/simulator/ratelimit.js';
import { mp4DurationSeconds, videoSeconds, videoTokens } from '../../src/simulator/usage.js';

const limiter = (limit: RateLimit): RateLimiter => new RateLimiter(() => limit);

describe('the simulator rate limiter', () => {
  it('admits up to RPM/60 requests in one second and refuses the next', () => {
    const l = limiter({ rpm: 120, tpm: null });
    expect(l.admit('m', 1, 0)).toBeUndefined();
    expect(l.admit('m', 1, 10)).toBeUndefined();
    expect(l.admit('m', 1, 20)?.code).toBe('Throttling.RateQuota');
    expect(l.admit('m', 1, 1_001)).toBeUndefined();
  });

  it('counts requests at their arrival, also when one that arrived earlier is admitted after later ones', () => {
    const l = limiter({ rpm: 120, tpm: null });
    expect(l.admit('m', 1, 500)).toBeUndefined();
    expect(l.admit('m', 1, 600)).toBeUndefined();
    // arrived at 450 (its contents took longer to check): the two after it share its second
    expect(l.admit('m', 1, 450)?.code).toBe('Throttling.RateQuota');
    // filed in time order: at 1,550 only the one of 600 is within the second
    expect(l.admit('m', 1, 1_550)).toBeUndefined();
    expect(l.admit('m', 1, 1_560)?.code).toBe('Throttling.RateQuota');
  });

  it('refuses over RPM within a sliding minute and admits again once the oldest leaves', () => {
    const l = limiter({ rpm: 3, tpm: null });
    for (const t of [0, 2_000, 4_000]) expect(l.admit('m', 1, t)).toBeUndefined();
    expect(l.admit('m', 1, 59_999)?.code).toBe('Throttling.RateQuota');
    expect(l.admit('m', 1, 60_000)).toBeUndefined();
  });

  it('refuses over TPM without charging the refused request', () => {
    const l = limiter({ rpm: null, tpm: 100 });
    expect(l.admit('m', 60, 0)).toBeUndefined();
    expect(l.admit('m', 60, 1)?.code).toBe('Throttling.AllocationQuota');
    expect(l.admit('m', 40, 2)).toBeUndefined();
    expect(l.admit('m', 1, 3)?.code).toBe('Throttling.AllocationQuota');
    expect(l.admit('m', 100, 60_003)).toBeUndefined();
  });

  it('keeps separate windows per model and forgets them on reset', () => {
    const l = limiter({ rpm: 1, tpm: null });
    expect(l.admit('a', 1, 0)).toBeUndefined();
    expect(l.admit('b', 1, 0)).toBeUndefined();
    expect(l.admit('a', 1, 5)).toBeDefined();
    l.reset();
    expect(l.admit('a', 1, 6)).toBeUndefined();
  });
});

describe('the simulator fault injector', () => {
  const sequence = (f: FaultInjector, n: number): (FaultKind | undefined)[] =>
    Array.from({ length: n }, () => f.draw());

  it('draws nothing when every rate is zero', () => {
    expect(sequence(new FaultInjector(DEFAULT_FAULTS), 50).every((k) => k === undefined)).toBe(true);
  });

  it('repeats its sequence for the same seed and differs for another', () => {
    const opts = { ...DEFAULT_FAULTS, seed: 11, error500Rate: 0.2, error503Rate: 0.2, hangRate: 0.1, dropRate: 0.1 };
    const a = sequence(new FaultInjector(opts), 200);
    expect(sequence(new FaultInjector(opts), 200)).toEqual(a);
    expect(sequence(new FaultInjector({ ...opts, seed: 12 }), 200)).not.toEqual(a);
    const share = (k: FaultKind): number => a.filter((x) => x === k).length / a.length;
    expect(share('error500')).toBeGreaterThan(0.1);
    expect(share('error500')).toBeLessThan(0.3);
  });

  it('answers a started burst for burst429Length requests in all', () => {
    const f = new FaultInjector({ ...DEFAULT_FAULTS, burst429Rate: 1, burst429Length: 4 });
    f.configure({ ...DEFAULT_FAULTS, burst429Rate: 1, burst429Length: 4 });
    expect(f.draw()).toBe('burst429');
    f.configure({ ...DEFAULT_FAULTS, burst429Length: 4 });
    expect(sequence(f, 4)).toEqual(['burst429', 'burst429', 'burst429', undefined]);
  });
});

describe('the simulator video token rule', () => {
  const mvhd = (timescale: number, duration: number): Uint8Array => {
    const payload = Buffer.alloc(100);
    payload.writeUInt32BE(timescale, 12);
    payload.writeUInt32BE(duration, 16);
    const mvhdBox = Buffer.concat([Buffer.from([0, 0, 0, 108]), Buffer.from('mvhd'), payload]);
    const moov = Buffer.concat([Buffer.from([0, 0, 0, 116]), Buffer.from('moov'), mvhdBox]);
    const ftyp = Buffer.concat([Buffer.from([0, 0, 0, 16]), Buffer.from('ftypisom'), Buffer.from([0, 0, 2, 0])]);
    return Buffer.concat([ftyp, moov]);
  };

  it('reads the duration of an mp4 from its mvhd box', () => {
    expect(mp4DurationSeconds(mvhd(600, 4_500))).toBe(7.5);
    expect(mp4DurationSeconds(Buffer.from('not an mp4 at all'))).toBeUndefined();
  });

  it('falls back to one second per 256 KiB when the file has no duration', () => {
    expect(videoSeconds(new Uint8Array(262_145), DEFAULT_VIDEO_TOKEN_RULE)).toBe(2);
  });

  it('counts at least one frame, at most 64, of 256 tokens each', () => {
    expect(videoTokens(10, 0, DEFAULT_VIDEO_TOKEN_RULE)).toBe(256);
    expect(videoTokens(10, 0.5, DEFAULT_VIDEO_TOKEN_RULE)).toBe(5 * 256);
    expect(videoTokens(1_000, 1, DEFAULT_VIDEO_TOKEN_RULE)).toBe(64 * 256);
  });
});
