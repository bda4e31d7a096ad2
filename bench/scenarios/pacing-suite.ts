/**
 * Scenario 8 and the figures issue 15 asks for, in one place for `npm run bench` and
 * `npm run bench:pacing`: the pacing rows (pacing.ts), the token-bound row (scenario 2,
 * tokens.ts) and the limiter's cost in Redis (limiter-cost.ts), and their table.
 */
import type { BenchEnv } from '../lib/env.js';
import type { ProcSampler } from '../lib/procs.js';
import { sum } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import { SharedRateLimiter, limiterKey } from '../../src/rate-limit.js';
import { BENCH_API_KEY } from '../lib/env.js';
import type { Settings } from '../settings.js';
import { limiterCost } from './limiter-cost.js';
import type { LimiterCost } from './limiter-cost.js';
import { pacingScenario } from './pacing.js';
import type { PacingHooks, PacingRow } from './pacing.js';
import { tokenBound } from './tokens.js';
import type { TokenResult } from './tokens.js';

export interface PacingResults {
  pacing: PacingRow[];
  tokens: TokenResult;
  cost: LimiterCost[];
}

export async function runPacing(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  longBucket: string,
  log: (s: string) => void,
  tokens?: TokenResult,
): Promise<PacingResults> {
  // the workers' limiter: the bench's key at the simulator's URL
  const owner = { apiKey: BENCH_API_KEY, baseUrl: env.simUrl };
  const spec = resolveModel(settings.requestModel, settings.modelOverrides);
  const hooks: PacingHooks = {
    resetLimiter: async () => void (await env.redis.del(limiterKey(owner, spec.name))),
    learnedRpm: async () =>
      (await new SharedRateLimiter(env.redis, owner).state(spec.name, { rpm: spec.rpm, tpm: spec.tpm }))?.learnedRpm,
  };
  // twice the job slots at 3,000 RPM: the limiter binds (the waiters could ask 110 times a second)
  const hold = settings.latency.fixedMs + 20 * settings.latency.perInputMs + settings.latency.jitterMs / 2;
  const cost = [
    await limiterCost(
      env.redis,
      'reservations',
      new SharedRateLimiter(env.redis, { apiKey: BENCH_API_KEY, baseUrl: `bench-cost-${Date.now()}` }),
      2 * settings.workers * settings.concurrency,
      hold,
      1000,
      3000,
    ),
  ];
  for (const c of cost)
    log(
      `  limiter cost (${c.limiter}): ${c.roundTripsPer1000.toFixed(0)} round trips and ${c.redisCpuMsPer1000.toFixed(0)} ms of Redis CPU per 1,000 requests`,
    );
  const pacing = await pacingScenario(env, settings, sampler, bucket, hooks, log);
  const t = tokens ?? (await tokenBound(env, settings, sampler, longBucket, settings.longTexts, log));
  return { pacing, tokens: t, cost };
}

const f = (x: number, d = 1): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : String(x);
const pct = (x: number): string => `${f(x * 100, 1)}%`;

export function pacingMarkdown(r: PacingResults): string {
  const rows = r.pacing.map((p) => {
    const half = p.quotaRpm !== p.believedRpm;
    const target = half ? '>= 90%, 429s <= 3% of >= 300 requests' : '>= 97%, 0 429s';
    const met = half
      ? p.ratio >= 0.9 && p.throttledShare <= 0.03 && p.accepted + p.throttled >= 300
      : p.ratio >= 0.97 && p.throttled === 0;
    return [
      p.label,
      `${p.believedRpm} / ${p.quotaRpm}`,
      `${f(p.ceilingInputsPerS)} = (${p.quotaRpm} RPM / 60) x 20`,
      f(p.inputsPerS),
      pct(p.ratio),
      pct(p.wholeRatio),
      String(p.accepted),
      `${p.throttled} (${pct(p.throttledShare)})`,
      p.learnedRpm === undefined ? '-' : f(p.learnedRpm, 0),
      `${target}: ${met ? 'met' : '**missed**'}`,
    ];
  });
  const t = r.tokens;
  const th = sum(t.throttled429);
  rows.push([
    `token-bound (${t.model}), ${t.windows} windows of 60 s`,
    '-',
    `${f(t.ceilingTokensPerS)} tokens/s = ${t.tpm.toLocaleString('en-US')} TPM / 60`,
    f(t.tokensPerS),
    pct(t.ratio),
    pct(t.wholeRunTokensPerS / t.ceilingTokensPerS),
    String(t.requests),
    String(th),
    '-',
    `>= 97%: ${t.ratio >= 0.97 ? 'met' : '**missed**'}`,
  ]);
  const header = [
    'row',
    'RPM believed / quota',
    'ceiling',
    'measured',
    'ratio',
    'whole run',
    'requests',
    '429s',
    'learned RPM',
    'target',
  ];
  const table = (h: string[], body: string[][]): string =>
    [`| ${h.join(' | ')} |`, `|${h.map(() => '---').join('|')}|`, ...body.map((x) => `| ${x.join(' | ')} |`)].join(
      '\n',
    );
  const cost = table(
    [
      'limiter',
      'requests',
      'waiters',
      'RPM',
      'round trips / 1,000 requests',
      'Redis CPU ms / 1,000 requests',
      'admitted/s',
    ],
    r.cost.map((c) => [
      c.limiter,
      String(c.requests),
      String(c.waiters),
      String(c.rpm),
      f(c.roundTripsPer1000, 0),
      f(c.redisCpuMsPer1000, 1),
      f(c.admittedPerS, 1),
    ]),
  );
  return `${table(header, rows)}\n\nThe limiter in Redis alone:\n\n${cost}`;
}
