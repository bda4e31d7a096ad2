/**
 * Our pipeline as a user runs it: `mm-ingest index` and `mm-ingest worker` processes of
 * the real CLI, watched through /proc and through the run record in Redis.
 */
import type { Redis } from 'ioredis';
import { RunStore, isFinished } from '../../src/runs.js';
import type { RunState } from '../../src/runs.js';
import { spawnCli } from './procs.js';
import type { NodeProcess, ProcSampler } from './procs.js';

export interface IndexRun {
  readonly runId: string;
  readonly process: NodeProcess;
  readonly exitCode: number | null;
  /** From spawning the process to its exit, seconds. */
  readonly wallS: number;
  /** From its "scanning" line to its "scanned N objects ... queued" line: the scan and enqueue alone. */
  readonly scanS: number;
  readonly jobs: number;
  readonly objects: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function indexArgs(bucket: string, collection: string, model: string, extra: readonly string[] = []): string[] {
  return ['index', '--bucket', bucket, '--collection', collection, '--model', model, ...extra];
}

/** Starts `mm-ingest index` (without --wait); resolves with the run id once it has printed it. */
export async function startIndex(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  sampler: ProcSampler,
  nodeArgs: readonly string[] = [],
): Promise<{ process: NodeProcess; runId: string; spawnedAt: number }> {
  const spawnedAt = performance.now();
  const process = spawnCli(args, env, nodeArgs);
  sampler.track(process.pid);
  const m = await process.waitFor(/^run (\S+): scanning/m, 120_000);
  return { process, runId: m[1] ?? '', spawnedAt };
}

/** Runs `mm-ingest index` to its exit (the scan and enqueue only: no --wait). */
export async function runIndex(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  sampler: ProcSampler,
  nodeArgs: readonly string[] = [],
): Promise<IndexRun> {
  const { process, runId, spawnedAt } = await startIndex(args, env, sampler, nodeArgs);
  const exitCode = await process.exited;
  const ended = performance.now();
  sampler.sample();
  const summary = /scanned (\d+) objects.*queued (\d+) in (\d+) jobs/.exec(process.output());
  if (exitCode !== 0 || !summary)
    throw new Error(`mm-ingest index failed (${exitCode}):\n${process.output().slice(-3000)}`);
  const start = process.lineTime(/: scanning s3:/) ?? spawnedAt;
  const end = process.lineTime(/: scanned \d+ objects/) ?? ended;
  return {
    runId,
    process,
    exitCode,
    wallS: (ended - spawnedAt) / 1000,
    scanS: (end - start) / 1000,
    jobs: Number(summary[3]),
    objects: Number(summary[1]),
  };
}

export interface Workers {
  readonly processes: NodeProcess[];
  /** Seconds from spawning to every worker printing "worker ready". */
  readonly readyS: number;
  /** CPU seconds the workers had used when ready (start-up: node, tsx, imports). */
  readonly startupCpu: number;
  stop(): Promise<void>;
}

/** BENCH_CPU_PROF=DIR: every worker writes a V8 CPU profile into DIR (to see what binds). */
const PROFILE_ARGS = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

export async function startWorkers(
  count: number,
  env: NodeJS.ProcessEnv,
  sampler: ProcSampler,
  nodeArgs: readonly string[] = PROFILE_ARGS,
): Promise<Workers> {
  const t0 = performance.now();
  const processes = Array.from({ length: count }, () => spawnCli(['worker', '--no-reindex'], env, nodeArgs));
  for (const p of processes) sampler.track(p.pid);
  await Promise.all(processes.map((p) => p.waitFor(/worker ready/, 120_000)));
  sampler.sample();
  return {
    processes,
    readyS: (performance.now() - t0) / 1000,
    startupCpu: processes.reduce((s, p) => s + sampler.reading(p.pid).cpu, 0),
    async stop() {
      sampler.sample();
      await Promise.all(processes.map((p) => p.stop('SIGTERM')));
    },
  };
}

/** Polls the run record until the run is finished (scan complete, every job with a result). */
export async function waitRun(
  redis: Redis,
  prefix: string,
  runId: string,
  timeoutS: number,
  pollMs = 200,
): Promise<{ run: RunState; doneAt: number }> {
  const runs = new RunStore(redis, prefix);
  const deadline = performance.now() + timeoutS * 1000;
  for (;;) {
    const run = await runs.get(runId);
    if (run && isFinished(run)) return { run, doneAt: performance.now() };
    if (performance.now() > deadline)
      throw new Error(`run ${runId} did not finish within ${timeoutS} s: ${JSON.stringify(run?.counters)}`);
    await sleep(pollMs);
  }
}

export async function runState(redis: Redis, prefix: string, runId: string): Promise<RunState | undefined> {
  return new RunStore(redis, prefix).get(runId);
}

/** Sum of CPU seconds and the largest VmHWM over some tracked processes. */
export function cost(sampler: ProcSampler, processes: readonly NodeProcess[]): { cpu: number; hwm: number } {
  let cpu = 0;
  let hwm = 0;
  for (const p of processes) {
    const r = sampler.reading(p.pid);
    cpu += r.cpu;
    hwm = Math.max(hwm, r.hwm);
  }
  return { cpu, hwm };
}
