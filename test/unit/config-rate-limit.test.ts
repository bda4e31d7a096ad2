import { describe, expect, it } from '@jest/globals';
import { Registry } from 'prom-client';
import { limiterTuning } from '../../src/config-rate-limit.js';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { LIMITER_TUNING } from '../../src/rate-limit.js';
import { createPrometheusMetrics } from '../../src/prometheus.js';

function refusal(env: NodeJS.ProcessEnv): string {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('loadConfig accepted it');
}

describe("the shared limiter's settings", () => {
  it("default to the limiter's own constants, and each variable sets its constant", () => {
    expect({ ...LIMITER_TUNING, ...limiterTuning(loadConfig({})) }).toEqual(LIMITER_TUNING);
    const t = limiterTuning(
      loadConfig({
        RATE_LIMIT_MARGIN: '0.05',
        RATE_LIMIT_MARGIN_MAX: '0.3',
        RATE_LIMIT_MARGIN_STEP: '0.01',
        RATE_LIMIT_MARGIN_NARROW: '0.002',
        RATE_LIMIT_MARGIN_NARROW_EVERY_MS: '10000',
        RATE_LIMIT_TOKEN_MARGIN_SHARE: '0.5',
        RATE_LIMIT_DECREASE_MIN: '0.6',
        RATE_LIMIT_DECREASE_MAX: '0.9',
        RATE_LIMIT_PROBE_STEP: '0.02',
        RATE_LIMIT_PROBE_EVERY_MS: '5000',
        RATE_LIMIT_LATE_WIDEN: '0.2',
        RATE_LIMIT_WARM_MS: '0',
        RATE_LIMIT_WARM_MARGIN: '0.2',
      }),
    );
    expect(t).toEqual({
      marginStart: 0.05,
      marginMin: 0.05,
      marginMax: 0.3,
      marginWiden: 0.01,
      marginNarrow: 0.002,
      marginNarrowEveryMs: 10_000,
      tokenMarginShare: 0.5,
      decreaseMin: 0.6,
      decreaseMax: 0.9,
      probeStep: 0.02,
      probeEveryMs: 5000,
      lateWiden: 0.2,
      warmMs: 0,
      warmMargin: 0.2,
    });
  });

  it('names the variable of a value out of range or at odds with another', () => {
    expect(refusal({ RATE_LIMIT_PROBE_STEP: '0' })).toMatch(/^RATE_LIMIT_PROBE_STEP: .*got "0"/);
    expect(refusal({ RATE_LIMIT_TOKEN_MARGIN_SHARE: '1.5' })).toMatch(/^RATE_LIMIT_TOKEN_MARGIN_SHARE: /);
    expect(refusal({ RATE_LIMIT_MARGIN_NARROW_EVERY_MS: 'soon' })).toMatch(/^RATE_LIMIT_MARGIN_NARROW_EVERY_MS: /);
    expect(refusal({ RATE_LIMIT_DECREASE_MIN: '0.9', RATE_LIMIT_DECREASE_MAX: '0.8' })).toBe(
      'RATE_LIMIT_DECREASE_MIN: must not be above RATE_LIMIT_DECREASE_MAX (0.8) (got 0.9)',
    );
    expect(refusal({ RATE_LIMIT_MARGIN: '0.2', RATE_LIMIT_MARGIN_MAX: '0.1' })).toBe(
      'RATE_LIMIT_MARGIN_MAX: must not be below RATE_LIMIT_MARGIN (0.2) (got 0.1)',
    );
  });
});

describe("the shared limiter's metrics", () => {
  it('counts late wake-ups per model in mm_ingest_rate_limit_late_wakes_total', async () => {
    const registry = new Registry();
    const metrics = createPrometheusMetrics(registry, { defaultMetrics: false });
    metrics.rateLimitLateWake?.('qwen3-vl-embedding');
    metrics.rateLimitLateWake?.('qwen3-vl-embedding');
    const text = await registry.metrics();
    expect(text).toContain('mm_ingest_rate_limit_late_wakes_total{model="qwen3-vl-embedding"} 2');
  });
});
