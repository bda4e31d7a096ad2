/**
 * Scenario 8: pacing. How much of the paid request quota becomes indexed inputs, on a
 * bucket of short texts (20 a request, so every run is request-bound):
 * - `told`: the simulator's quota is the one the workers believe (MODEL_OVERRIDES), one
 *   worker process, then two on separate connections sharing it;
 * - `half`: the simulator's quota is half the believed one (the account's quota shared
 *   with other keys and applications), two worker processes: the limiter has to find it.
 * Each row's ceiling is computed from the simulator's quota: (RPM / 60) x 20 inputs/s.
 * The rate is the simulator's accepted inputs from the first accepted request plus the
 * warm-up to the last moment the queue still had a job waiting; 429s are counted by the
 * simulator over the whole run.
 *
 * The limiter's state is kept per account (a hash of the API key), not per queue prefix:
 * every row starts from a fresh state (`resetLimiter`), as a new account would.
 */
import type { BenchEnv } from '../lib/env.js';
import { newPrefix } from '../lib/env.js';
import { indexArgs, runIndex, startWorkers, waitRun } from '../lib/pipeline.js';
import type { ProcSampler } from '../lib/procs.js';
import { SimSeries, sum, throttles } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface PacingRow {
  label: string;
  workers: number;
  concurrency: number;
  believedRpm: number;
  quotaRpm: number;
  ceilingInputsPerS: number;
  inputsPerS: number;
  ratio: number;
  /** From the first accepted request (no warm-up) to the last backlog: convergence included. */
  wholeInputsPerS: number;
  wholeRatio: number;
  measuredS: number;
  accepted: number;
  throttled: number;
  throttledShare: number;
  limitViolations: number;
  objectsIndexed: number;
  objectsFailed: number;
  /** The limiter's learned rate at the end (requests per minute), when it reports one. */
  learnedRpm?: number;
  /** When the 429s came: seconds from the row's first request (the simulator's request log). */
  throttledAtS?: number[];
}

/** Seconds from the first embedding request of the simulator's log to each of its 429s. */
async function throttleTimes(env: BenchEnv): Promise<number[] | undefined> {
  const r = await fetch(`${env.simUrl}/_sim/requests`);
  if (!r.ok) return undefined;
  const { requests } = (await r.json()) as { requests: { at: string; path: string; answer?: { status: number } }[] };
  const api = requests.filter((q) => q.path.includes('multimodal-embedding'));
  const first = Math.min(...api.map((q) => Date.parse(q.at)));
  return api.filter((q) => q.answer?.status === 429).map((q) => Math.round((Date.parse(q.at) - first) / 100) / 10);
}

export interface PacingHooks {
  /** Forgets the limiter's shared state for the bench's key (each row starts afresh). */
  resetLimiter?: () => Promise<void>;
  /** The limiter's learned requests per minute for the model, if it has one. */
  learnedRpm?: () => Promise<number | undefined>;
}

async function simConfig(env: BenchEnv, patch: unknown): Promise<void> {
  const r = await fetch(`${env.simUrl}/_sim/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  });
  if (!r.ok) throw new Error(`simulator config refused: ${r.status} ${await r.text()}`);
  await r.arrayBuffer().catch(() => undefined);
}

async function row(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  id: string,
  label: string,
  workers: number,
  concurrency: number,
  quotaScale: number,
  hooks: PacingHooks,
  log: (s: string) => void,
): Promise<PacingRow> {
  const model = settings.requestModel;
  const spec = resolveModel(model, settings.modelOverrides);
  const believedRpm = spec.rpm ?? 0;
  const quotaRpm = Math.round(believedRpm * quotaScale);
  const prefix = newPrefix(`pacing-${id}`);
  // the whole bucket is queued before the workers start (no backpressure bound): the rate is that of a full queue
  const cliEnv = env.cliEnv(prefix, { WORKER_CONCURRENCY: String(concurrency), MAX_QUEUED_JOBS: '0' });
  await hooks.resetLimiter?.();
  await env.simReset();
  if (quotaScale !== 1)
    await simConfig(env, { rateLimits: { [model]: { rpm: quotaRpm, tpm: Math.round((spec.tpm ?? 0) * quotaScale) } } });
  try {
    const index = await runIndex(indexArgs(bucket, `pacing-${id}`, model), cliEnv, sampler);
    const series = new SimSeries(() => env.simStats(), env.redis, `${prefix}:embed:wait`);
    const w = await startWorkers(workers, cliEnv, sampler);
    const { run, doneAt } = await waitRun(env.redis, prefix, index.runId, 1800);
    await series.stop();
    const stats = await env.simStats();
    const learnedRpm = await hooks.learnedRpm?.();
    const throttledAtS = await throttleTimes(env);
    await w.stop();
    const first = series.firstActivity() ?? 0;
    const to = series.lastBacklog(1) ?? series.since(doneAt);
    const steady = series.rate('inputs', first + settings.steadyWarmupS, to);
    const whole = series.rate('inputs', Math.max(0, first - 0.5), to);
    const ceiling = (quotaRpm / 60) * 20;
    const throttled = sum(throttles(stats));
    const result: PacingRow = {
      label,
      workers,
      concurrency,
      believedRpm,
      quotaRpm,
      ceilingInputsPerS: ceiling,
      inputsPerS: steady.rate,
      ratio: steady.rate / ceiling,
      wholeInputsPerS: whole.rate,
      wholeRatio: whole.rate / ceiling,
      measuredS: steady.seconds,
      accepted: stats.accepted,
      throttled,
      throttledShare: throttled / Math.max(1, stats.accepted + throttled),
      limitViolations: stats.limitViolations,
      objectsIndexed: run.counters.objectsIndexed,
      objectsFailed: run.counters.objectsFailed,
      ...(learnedRpm === undefined ? {} : { learnedRpm }),
      ...(throttledAtS === undefined ? {} : { throttledAtS }),
    };
    log(
      `  pacing ${label}: ${result.inputsPerS.toFixed(1)} inputs/s of ${ceiling.toFixed(1)} (${(result.ratio * 100).toFixed(1)}%; whole run ${(result.wholeRatio * 100).toFixed(1)}%), ` +
        `${stats.accepted} requests, ${throttled} 429s (${(result.throttledShare * 100).toFixed(1)}%)${learnedRpm === undefined ? '' : `, learned ${learnedRpm.toFixed(0)} RPM`}` +
        (throttledAtS?.length ? ` (429s at ${throttledAtS.join(', ')} s)` : ''),
    );
    return result;
  } finally {
    if (quotaScale !== 1) await simConfig(env, { rateLimits: 'documented' });
    await hooks.resetLimiter?.();
  }
}

export async function pacingScenario(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  hooks: PacingHooks,
  log: (s: string) => void,
): Promise<PacingRow[]> {
  const slots = settings.workers * settings.concurrency;
  // PACING_ROWS=told1,told2,half (the default: all three) runs some of them only
  const rows = (process.env.PACING_ROWS ?? 'told1,told2,half').split(',');
  const out: PacingRow[] = [];
  const w = settings.workers;
  const c = settings.concurrency;
  if (rows.includes('told1'))
    out.push(await row(env, settings, sampler, bucket, 'told1', 'told, 1 process', 1, slots, 1, hooks, log));
  if (rows.includes('told2'))
    out.push(await row(env, settings, sampler, bucket, 'told2', `told, ${w} processes`, w, c, 1, hooks, log));
  if (rows.includes('half'))
    out.push(await row(env, settings, sampler, bucket, 'half', `half quota, ${w} processes`, w, c, 0.5, hooks, log));
  return out;
}
