/**
 * Scenarios 5 (scale), 4 (scan and enqueue) and 1 (request-bound throughput).
 *
 * For each size, on a bucket of short texts: a bare ListObjectsV2 loop over the bucket
 * (three times, median), then `mm-ingest index` with no worker running (scan and enqueue
 * rate, producer peak RSS, Redis memory per queued job), then the workers drain the queue
 * (wall time per object, worker peak RSS, CPU). The largest size's drain, with the whole
 * queue as backlog, is scenario 1's steady state.
 */
import { cpus } from 'node:os';
import type { BenchEnv } from '../lib/env.js';
import { newPrefix, usedMemory } from '../lib/env.js';
import { bareListing } from '../lib/fill.js';
import { cost, indexArgs, runIndex, startWorkers, waitRun } from '../lib/pipeline.js';
import type { ProcSampler } from '../lib/procs.js';
import { AdmissionLog, SimSeries, maxInWindow, sum, throttles } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface ScaleResult {
  objects: number;
  bucket: string;
  bareListing: { seconds: number; objectsPerS: number; runs: number[] };
  index: {
    wallS: number;
    scanS: number;
    objectsPerS: number;
    objectsPerSWall: number;
    jobs: number;
    ratioToBare: number;
    fullMode?: { scanS: number; objectsPerS: number; ratioToBare: number };
  };
  redis: {
    usedMemoryDelta: number;
    bytesPerJob: number;
    bytesPerObject: number;
    jobHashBytes: number;
    dedupKeyBytes: number;
    otherBytesPerJob: number;
  };
  producer: { peakRssMB: number; cpuS: number };
  workers: {
    count: number;
    concurrency: number;
    peakRssMB: number;
    cpuS: number;
    startupCpuS: number;
    readyS: number;
    rssMBAtQuarters: number[];
  };
  drain: {
    wallS: number;
    activeS: number;
    inputs: number;
    requests: number;
    inputsPerRequest: number;
    inputsPerS: number;
    steady: { from: number; to: number; inputsPerS: number; requestsPerS: number };
  };
  wallMsPerObject: number;
  cpuSPer1000Objects: number;
  cpuSPer1000ObjectsAfterStartup: number;
  throttled429: Record<string, number>;
  /** CPU seconds of the servers sharing the machine during the drain, and the machine's load then (all tracked processes / cores). */
  serversCpuS: Record<string, number>;
  machineLoad: number;
  runCounters: {
    retries: number;
    throttled: number;
    objectsIndexed: number;
    objectsFailed: number;
    requests: number;
    inputs: number;
  };
  limitViolations: number;
  /** Our limiter's admissions during the drain: the most in any 1 s (against RPM/60). */
  admissions: { total: number; maxIn1s: number; rps: number };
}

const MB = 1024 * 1024;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

/** Mean MEMORY USAGE of up to `limit` keys matching a pattern. */
async function meanKeyBytes(env: BenchEnv, pattern: string, exclude: RegExp, limit = 200): Promise<number> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await env.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    keys.push(...found.filter((k) => !exclude.test(k)));
  } while (cursor !== '0' && keys.length < limit);
  const sample = keys.slice(0, limit);
  if (sample.length === 0) return 0;
  let total = 0;
  for (const k of sample) total += Number((await env.redis.memory('USAGE', k, 'SAMPLES', '0')) ?? 0);
  return total / sample.length;
}

export async function scaleSize(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  servers: Readonly<Record<string, number>>,
  bucket: string,
  n: number,
  log: (s: string) => void,
  probeFullMode = false,
): Promise<ScaleResult> {
  const serverCpu = (): Record<string, number> =>
    Object.fromEntries(Object.entries(servers).map(([name, pid]) => [name, sampler.reading(pid).cpu]));
  const model = settings.requestModel;
  const listings: number[] = [];
  for (let i = 0; i < 3; i++) {
    const l = await bareListing(env.s3client, bucket);
    if (l.keys !== n) throw new Error(`bucket ${bucket} lists ${l.keys} objects, expected ${n}`);
    listings.push(l.seconds);
  }
  const bare = median(listings);

  const prefix = newPrefix(`scale${n}`);
  // the scan and enqueue are measured with no worker running: no backpressure bound, or it would wait for one
  const cliEnv = env.cliEnv(prefix, { WORKER_CONCURRENCY: String(settings.concurrency), MAX_QUEUED_JOBS: '0' });
  const before = await usedMemory(env.redis);
  const index = await runIndex(indexArgs(bucket, `scale-${n}`, model), cliEnv, sampler);
  const after = await usedMemory(env.redis);
  const jobHash = await meanKeyBytes(env, `${prefix}:embed:${index.runId}.*`, /:(logs|lock)$/);
  const dedup = await meanKeyBytes(env, `${prefix}:embed:de:*`, /^$/);
  const delta = after - before;
  // the same scan with --mode full (no lookup of existing points per page), queued under
  // a prefix of its own that no worker serves: how much of the scan the incremental lookup costs
  let fullMode: ScaleResult['index']['fullMode'];
  if (probeFullMode) {
    const full = await runIndex(
      indexArgs(bucket, `scale-${n}-full`, model, ['--mode', 'full']),
      env.cliEnv(newPrefix(`full${n}`), { MAX_QUEUED_JOBS: '0' }),
      sampler,
    );
    fullMode = { scanS: full.scanS, objectsPerS: n / full.scanS, ratioToBare: bare / full.scanS };
  }
  log(
    `  ${n} objects: listing ${(n / bare).toFixed(0)}/s, index ${(n / index.scanS).toFixed(0)}/s (${index.jobs} jobs), Redis ${(delta / index.jobs).toFixed(0)} B/job`,
  );

  await env.simReset();
  const series = new SimSeries(() => env.simStats(), env.redis, `${prefix}:embed:wait`);
  const admissions = new AdmissionLog(env.redis, `${prefix}:rl:${model}`);
  sampler.sample();
  const serversBefore = serverCpu();
  const drainStart = performance.now();
  const workers = await startWorkers(settings.workers, cliEnv, sampler);
  const { run, doneAt } = await waitRun(env.redis, prefix, index.runId, 1800);
  await series.stop();
  const admitted = await admissions.stop();
  const stats = await env.simStats();
  sampler.sample();
  const serversAfter = serverCpu();
  const workersAtEnd = cost(sampler, workers.processes).cpu;
  await workers.stop();
  sampler.sample();

  const serversCpuS = Object.fromEntries(
    Object.entries(serversAfter).map(([name, cpu]) => [name, cpu - (serversBefore[name] ?? 0)]),
  );
  const producer = cost(sampler, [index.process]);
  const w = cost(sampler, workers.processes);
  // VmRSS of the largest worker at 25, 50, 75 and 100% of its life: growth or a plateau
  const biggest = workers.processes.map((p) => sampler.reading(p.pid)).sort((a, b) => b.hwm - a.hwm)[0];
  const rssSeries = biggest?.rss ?? [];
  const rssMBAtQuarters = [0.25, 0.5, 0.75, 1].map(
    (q) => (rssSeries[Math.min(rssSeries.length - 1, Math.floor(q * (rssSeries.length - 1)))]?.[1] ?? 0) / MB,
  );
  const first = series.firstActivity() ?? 0;
  const steadyFrom = first + settings.steadyWarmupS;
  const steadyTo = series.lastBacklog(1) ?? series.since(doneAt);
  const steadyInputs = series.rate('inputs', steadyFrom, steadyTo);
  const steadyRequests = series.rate('accepted', steadyFrom, steadyTo);
  const drainWall = (doneAt - drainStart) / 1000;
  const activeS = series.since(doneAt) - first;
  const th = throttles(stats);
  log(
    `  ${n} objects: drained in ${drainWall.toFixed(1)} s, ${steadyInputs.rate.toFixed(1)} inputs/s steady, ${(stats.inputs / Math.max(1, stats.accepted)).toFixed(2)} inputs/request, 429s ${sum(th)}`,
  );
  return {
    objects: n,
    bucket,
    bareListing: { seconds: bare, objectsPerS: n / bare, runs: listings },
    index: {
      wallS: index.wallS,
      scanS: index.scanS,
      objectsPerS: n / index.scanS,
      objectsPerSWall: n / index.wallS,
      jobs: index.jobs,
      ratioToBare: bare / index.scanS,
      ...(fullMode ? { fullMode } : {}),
    },
    redis: {
      usedMemoryDelta: delta,
      bytesPerJob: delta / index.jobs,
      bytesPerObject: delta / n,
      jobHashBytes: jobHash,
      dedupKeyBytes: dedup,
      otherBytesPerJob: delta / index.jobs - jobHash - dedup,
    },
    producer: { peakRssMB: producer.hwm / MB, cpuS: producer.cpu },
    workers: {
      count: settings.workers,
      concurrency: settings.concurrency,
      peakRssMB: w.hwm / MB,
      cpuS: w.cpu,
      startupCpuS: workers.startupCpu,
      readyS: workers.readyS,
      rssMBAtQuarters,
    },
    drain: {
      wallS: drainWall,
      activeS,
      inputs: stats.inputs,
      requests: stats.accepted,
      inputsPerRequest: stats.inputs / Math.max(1, stats.accepted),
      inputsPerS: stats.inputs / Math.max(1e-9, activeS),
      steady: { from: steadyFrom, to: steadyTo, inputsPerS: steadyInputs.rate, requestsPerS: steadyRequests.rate },
    },
    wallMsPerObject: ((index.wallS + drainWall) * 1000) / n,
    cpuSPer1000Objects: ((producer.cpu + w.cpu) / n) * 1000,
    cpuSPer1000ObjectsAfterStartup: ((producer.cpu + w.cpu - workers.startupCpu) / n) * 1000,
    throttled429: th,
    serversCpuS,
    machineLoad: (Object.values(serversCpuS).reduce((a, b) => a + b, 0) + workersAtEnd) / (drainWall * cpus().length),
    runCounters: {
      retries: run.counters.retries,
      throttled: run.counters.throttled,
      objectsIndexed: run.counters.objectsIndexed,
      objectsFailed: run.counters.objectsFailed,
      requests: run.counters.requests,
      inputs: run.counters.inputs,
    },
    limitViolations: stats.limitViolations,
    admissions: {
      total: admitted.length,
      maxIn1s: maxInWindow(admitted, 1000).requests,
      rps: Math.ceil((resolveModel(model, settings.modelOverrides).rpm ?? 0) / 60),
    },
  };
}
