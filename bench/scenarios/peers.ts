/**
 * Scenario 6: the same bucket, the same quota, in the same run: our pipeline end to end
 * (workers up, then `mm-ingest index`, timed from its "scanning" line to the run's end),
 * then (a) the sequential one-object-per-request script and (b) LangChain.js's indexing
 * API, each a child process timed from its own start (after its imports), each after the
 * simulator's stats and rate windows are reset.
 */
import type { BenchEnv } from '../lib/env.js';
import { newPrefix } from '../lib/env.js';
import { cost, startIndex, startWorkers, waitRun, indexArgs } from '../lib/pipeline.js';
import { spawnNode } from '../lib/procs.js';
import type { ProcSampler } from '../lib/procs.js';
import { AdmissionLog, maxInWindow, sum, throttles } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface PeerResult {
  name: string;
  objects: number;
  seconds: number;
  objectsPerS: number;
  /** Ours / this peer. */
  oursRatio: number;
  requests: number;
  inputsPerRequest: number;
  throttled429: Record<string, number>;
  cpuS: number;
  peakRssMB: number;
  note: string;
  /** Ours only: the most requests our limiter admitted in any 1 s, and RPM/60. */
  admissions?: { maxIn1s: number; rps: number };
}

const MB = 1024 * 1024;

async function runPeer(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  name: string,
  script: string,
  bucket: string,
  extra: NodeJS.ProcessEnv,
): Promise<Omit<PeerResult, 'oursRatio'>> {
  await env.simReset();
  const spec = resolveModel(settings.requestModel, settings.modelOverrides);
  const p = spawnNode(
    script,
    [],
    env.cliEnv(newPrefix(name), {
      PEER_BUCKET: bucket,
      PEER_COLLECTION: `peer-${name}`,
      PEER_MODEL: spec.name,
      PEER_DIMENSION: String(spec.defaultDimension),
      ...extra,
    }),
  );
  sampler.track(p.pid);
  const code = await p.exited;
  const line = /^RESULT (.*)$/m.exec(p.output());
  if (code !== 0 || !line) throw new Error(`peer ${name} failed (${code}):\n${p.output().slice(-3000)}`);
  const r = JSON.parse(line[1] ?? '{}') as {
    objects: number;
    seconds: number;
    objectsPerS: number;
    stoppedEarly?: boolean;
    listed: number;
  };
  const stats = await env.simStats();
  const c = cost(sampler, [p]);
  return {
    name,
    objects: r.objects,
    seconds: r.seconds,
    objectsPerS: r.objectsPerS,
    requests: stats.accepted,
    inputsPerRequest: stats.inputs / Math.max(1, stats.accepted),
    throttled429: throttles(stats),
    cpuS: c.cpu,
    peakRssMB: c.hwm / MB,
    note: r.stoppedEarly
      ? `stopped after ${r.seconds.toFixed(0)} s (${r.objects} of ${r.listed} objects)`
      : `all ${r.listed} objects`,
  };
}

export async function peersScenario(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  n: number,
  log: (s: string) => void,
): Promise<PeerResult[]> {
  const prefix = newPrefix('ours');
  const cliEnv = env.cliEnv(prefix, { WORKER_CONCURRENCY: String(settings.concurrency) });
  const workers = await startWorkers(settings.workers, cliEnv, sampler);
  await env.simReset();
  const admissions = new AdmissionLog(env.redis, `${prefix}:rl:${settings.requestModel}`);
  const started = await startIndex(indexArgs(bucket, 'peers-ours', settings.requestModel), cliEnv, sampler);
  const { run, doneAt } = await waitRun(env.redis, prefix, started.runId, 1800);
  const stats = await env.simStats();
  const admitted = await admissions.stop();
  await started.process.exited;
  await workers.stop();
  const t0 = started.process.lineTime(/: scanning s3:/) ?? started.spawnedAt;
  const oursSeconds = (doneAt - t0) / 1000;
  const oursCost = cost(sampler, [started.process, ...workers.processes]);
  const ours: PeerResult = {
    name: 'ours (mm-ingest index + 2 workers)',
    objects: run.counters.objectsIndexed,
    seconds: oursSeconds,
    objectsPerS: run.counters.objectsIndexed / oursSeconds,
    oursRatio: 1,
    requests: stats.accepted,
    inputsPerRequest: stats.inputs / Math.max(1, stats.accepted),
    throttled429: throttles(stats),
    cpuS: oursCost.cpu,
    peakRssMB: oursCost.hwm / MB,
    note: `all ${n} objects; ${(n / ((doneAt - started.spawnedAt) / 1000)).toFixed(1)} objects/s counting the index process's start-up`,
    admissions: {
      maxIn1s: maxInWindow(admitted, 1000).requests,
      rps: Math.ceil((resolveModel(settings.requestModel, settings.modelOverrides).rpm ?? 0) / 60),
    },
  };
  log(`  ours: ${ours.objectsPerS.toFixed(1)} objects/s, 429s ${sum(ours.throttled429)}`);

  const lc = settings.langchain;
  const langchain = await runPeer(env, settings, sampler, 'langchain', 'bench/peers/langchain.ts', bucket, {
    PEER_OPTIONS: JSON.stringify({
      batchSize: lc.batchSize,
      textsPerRequest: lc.textsPerRequest,
      maxConcurrency: lc.maxConcurrency,
      maxRetries: lc.maxRetries,
      fetchConcurrency: lc.fetchConcurrency,
    }),
  });
  log(`  LangChain.js: ${langchain.objectsPerS.toFixed(1)} objects/s, 429s ${sum(langchain.throttled429)}`);
  const sequential = await runPeer(env, settings, sampler, 'sequential', 'bench/peers/sequential.ts', bucket, {
    PEER_MAX_SECONDS: String(settings.sequentialSeconds),
  });
  log(`  sequential: ${sequential.objectsPerS.toFixed(1)} objects/s, 429s ${sum(sequential.throttled429)}`);
  return [
    ours,
    { ...langchain, oursRatio: ours.objectsPerS / langchain.objectsPerS },
    { ...sequential, oursRatio: ours.objectsPerS / sequential.objectsPerS },
  ];
}
