/**
 * Scenario 2: long texts (3,000 to 5,000 tokens each) on a model whose tokens per minute
 * bind before its requests per minute (tongyi-embedding-vision-plus: 1,024 tokens a
 * request, 200,000 TPM, 600 RPM, so at most 195 full requests a minute).
 *
 * Workers are started first, then `index` queues more tokens than the run can send in
 * `tokenRunS`; the rate is the mean over every 60-second window inside the run of the
 * tokens the API accepted, against TPM / 60 (a sliding per-minute quota lets a whole
 * minute's tokens through in a burst, so only whole windows are comparable). The
 * workers are then stopped with the backlog still queued.
 */
import type { BenchEnv } from '../lib/env.js';
import { newPrefix } from '../lib/env.js';
import { cost, indexArgs, runIndex, runState, startWorkers } from '../lib/pipeline.js';
import type { ProcSampler } from '../lib/procs.js';
import { AdmissionLog, SimSeries, maxInWindow, sum, throttles } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface TokenResult {
  model: string;
  texts: number;
  tpm: number;
  rpm: number;
  ceilingTokensPerS: number;
  tokensPerS: number;
  windows: number;
  ratio: number;
  wholeRunTokensPerS: number;
  measuredS: number;
  requests: number;
  tokensPerRequest: number;
  requestTokenCap: number;
  backlogAtStop: number;
  throttled429: Record<string, number>;
  runCounters: { retries: number; throttled: number; requests: number };
  workersCpuS: number;
  limitViolations: number;
  /** Our limiter's admissions: the most requests in any 1 s (against RPM/60) and tokens in any 60 s (against TPM), and the tokens it counted. */
  admissions: { total: number; maxIn1s: number; maxTokensIn60s: number; rps: number; tokens: number };
  /** Seconds from SIGTERM to exit of each worker (DRAIN_TIMEOUT_MS 2000; killed at stopGraceS). */
  workerExitAfterSigtermS: number[];
  stopGraceS: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function tokenBound(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  texts: number,
  log: (s: string) => void,
): Promise<TokenResult> {
  const spec = resolveModel(settings.tokenModel, settings.modelOverrides);
  const tpm = spec.tpm ?? 0;
  const prefix = newPrefix('tokens');
  const cliEnv = env.cliEnv(prefix, { WORKER_CONCURRENCY: String(settings.concurrency), DRAIN_TIMEOUT_MS: '2000' });
  await env.simReset();
  const series = new SimSeries(() => env.simStats(), env.redis, `${prefix}:embed:wait`);
  const admissions = new AdmissionLog(env.redis, `${prefix}:rl:${spec.name}`);
  // the workers start while the bucket is scanned: the measurement starts at the first accepted request
  const [workers, index] = await Promise.all([
    startWorkers(settings.workers, cliEnv, sampler),
    runIndex(indexArgs(bucket, 'long-texts', settings.tokenModel), cliEnv, sampler),
  ]);
  let first: number | undefined;
  for (;;) {
    first ??= series.firstActivity();
    const last = series.samples[series.samples.length - 1];
    if (first !== undefined && last && last.t >= first + settings.tokenRunS) break;
    if (last && last.t > 600) throw new Error('scenario 2 saw no accepted request');
    await sleep(250);
  }
  await series.stop();
  const admitted = await admissions.stop();
  const stats = await env.simStats();
  const backlog = await env.redis.llen(`${prefix}:embed:wait`);
  // SIGTERM with DRAIN_TIMEOUT_MS=2000: how long the workers take to exit while their jobs
  // wait at the limiter for the next minute's tokens (SIGKILL after the grace period)
  const exitS = await Promise.all(
    workers.processes.map(async (p) => {
      const t = performance.now();
      p.child.kill('SIGTERM');
      const timer = setTimeout(() => p.child.kill('SIGKILL'), settings.stopGraceS * 1000);
      await p.exited;
      clearTimeout(timer);
      return (performance.now() - t) / 1000;
    }),
  );
  const run = await runState(env.redis, prefix, index.runId);
  const from = Math.max(0, (first ?? 0) - 0.5);
  const to = from + settings.tokenRunS;
  const windowed = series.windowedRate('tokens', settings.tokenWindowS, from, to);
  const whole = series.rate('tokens', from, to);
  if (backlog === 0) log('  warning: the queue emptied before the end of scenario 2: its rate is a lower bound');
  const th = throttles(stats);
  const result: TokenResult = {
    model: spec.name,
    texts,
    tpm,
    rpm: spec.rpm ?? 0,
    ceilingTokensPerS: tpm / 60,
    tokensPerS: windowed.rate,
    windows: windowed.windows,
    ratio: windowed.rate / (tpm / 60),
    wholeRunTokensPerS: whole.rate,
    measuredS: to - from,
    requests: stats.accepted,
    tokensPerRequest: (stats.textTokens + stats.imageTokens) / Math.max(1, stats.accepted),
    requestTokenCap: spec.textLimitScope === 'per-request' ? spec.textTokenLimit : Infinity,
    backlogAtStop: backlog,
    throttled429: th,
    runCounters: {
      retries: run?.counters.retries ?? 0,
      throttled: run?.counters.throttled ?? 0,
      requests: run?.counters.requests ?? 0,
    },
    workersCpuS: cost(sampler, workers.processes).cpu,
    limitViolations: stats.limitViolations,
    workerExitAfterSigtermS: exitS,
    stopGraceS: settings.stopGraceS,
    admissions: {
      total: admitted.length,
      maxIn1s: maxInWindow(admitted, 1000).requests,
      maxTokensIn60s: maxInWindow(admitted, 60_000).tokens,
      rps: Math.ceil((spec.rpm ?? 0) / 60),
      tokens: admitted.reduce((a, [, k]) => a + k, 0),
    },
  };
  log(
    `  ${result.tokensPerS.toFixed(0)} tokens/s over ${windowed.windows} windows of ${settings.tokenWindowS} s (ceiling ${result.ceilingTokensPerS.toFixed(0)}), ${result.tokensPerRequest.toFixed(0)} tokens/request, 429s ${sum(th)}`,
  );
  return result;
}
