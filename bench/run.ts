/**
 * `npm run bench` (`-- --quick` for the short version): how close the pipeline runs to the
 * API's ceiling, and how its cost grows with the bucket. Starts s3rver, a Redis of its
 * own, the API simulator (latency, documented rate limits) and the Qdrant stand-in (or the
 * Qdrant at QDRANT_URL), fills the buckets, runs the real CLI (`mm-ingest index` and
 * `mm-ingest worker` processes), the two peers, and writes bench/results.md and
 * bench/results.json (--quick: results-quick.*). See README.md, "Benchmark".
 */
import { execFileSync } from 'node:child_process';
import { cpus, platform, release, totalmem } from 'node:os';
import { resolveModel } from '../src/models.js';
import { startBenchEnv } from './lib/env.js';
import { clustered, longTexts, mixed, seedBucket, shortTexts, verifyBucket } from './lib/fill.js';
import { ProcSampler, childPids, cliMode, machineCpu, stopChildren } from './lib/procs.js';
import { summaryText, writeResults } from './report.js';
import type { Results } from './report.js';
import { limiterProbes } from './scenarios/limiter.js';
import { listenScenario } from './scenarios/listen.js';
import { mixedScenario } from './scenarios/mixed.js';
import { peersScenario } from './scenarios/peers.js';
import { runPacing } from './scenarios/pacing-suite.js';
import { scaleSize } from './scenarios/scale.js';
import type { ScaleResult } from './scenarios/scale.js';
import { tokenBound } from './scenarios/tokens.js';
import { benchSettings } from './settings.js';

const quick = process.argv.includes('--quick');
if (process.argv.includes('--bucket-scale')) {
  // the bucket-scale scenario alone, with servers of its own (bench/scenarios/bucket-scale.ts)
  const { bucketScaleMain } = await import('./scenarios/bucket-scale.js');
  await bucketScaleMain(process.argv);
  process.exit(0);
}
if (process.argv.includes('--scan-alone')) {
  // the producer alone against a bare listing, versions in turns (bench/scenarios/scan-alone.ts)
  const { scanAloneMain } = await import('./scenarios/scan-alone.js');
  await scanAloneMain(process.argv);
  process.exit(0);
}
if (process.argv.includes('--s3-gets')) {
  // the CPU of one GetObject through the object store, alone (bench/scenarios/s3-gets.ts)
  const { s3GetsMain } = await import('./scenarios/s3-gets.js');
  await s3GetsMain(process.argv);
  process.exit(0);
}
if (process.argv.includes('--job-memory')) {
  // where a queued job's Redis memory goes, alone, with servers of its own (bench/scenarios/job-memory.ts)
  const { jobMemoryMain } = await import('./scenarios/job-memory.js');
  await jobMemoryMain(process.argv);
  process.exit(0);
}
const benchCpu = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
};
const settings = benchSettings(quick);
const t0 = performance.now();
const startedAt = new Date().toISOString();
const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s`;
const log = (s: string): void => void process.stdout.write(`[${elapsed()}] ${s}\n`);
const phases: Record<string, number> = {};
async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const start = performance.now();
  log(`${name}`);
  try {
    return await fn();
  } finally {
    phases[name] = (performance.now() - start) / 1000;
  }
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8' });
    return pattern.exec(out)?.[1] ?? out.trim();
  } catch {
    return 'unknown';
  }
}

const versions = {
  node: process.version,
  npm: version('npm', ['--version'], /^(\S+)/),
  'redis-server': version('redis-server', ['--version'], /v=(\S+)/),
  // how the mm-ingest processes ran: the compiled CLI (as installed) or the sources through tsx
  'mm-ingest CLI': cliMode() === 'compiled' ? 'compiled (bin/mm-ingest.js, dist/)' : 'tsx (src/cli/run.ts)',
};
const requestSpec = resolveModel(settings.requestModel, settings.modelOverrides);
const documented = resolveModel(settings.requestModel);
log(
  `mm-ingest benchmark${quick ? ' (--quick)' : ''}: ${settings.requestModel} at ${requestSpec.rpm} RPM / ${requestSpec.tpm} TPM (documented x ${settings.requestModelScale}), ${settings.tokenModel} at its documented limits`,
);

const cpuAtStart = machineCpu();
const benchCpuAtStart = process.cpuUsage();
const env = await startBenchEnv(settings.latency, JSON.stringify(settings.modelOverrides));
const sampler = new ProcSampler();
const servers: Record<string, number> = {
  simulator: env.sim.pid,
  redis: childPids('redis-server')[0] ?? 0,
  s3rver: childPids('s3rver-child')[0] ?? 0,
};
if (env.qdrantProcess) servers['qdrant stand-in'] = env.qdrantProcess.pid;
for (const pid of Object.values(servers)) if (pid) sampler.track(pid);
// Ctrl-C or a kill: stop the servers this run started (they would outlive it)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping the servers`);
    sampler.stop();
    stopChildren();
    void env.close().finally(() => process.exit(130));
  });
}

let results: Results | undefined;
try {
  const shortBucket = (n: number): string => `bench-short-${n}`;
  await phase('fill buckets', async () => {
    for (const n of settings.scaleSizes) {
      const objects = shortTexts(n);
      await seedBucket(env.s3client, env.s3.dir, shortBucket(n), objects);
      await verifyBucket(env.s3client, shortBucket(n), objects);
    }
    const long = longTexts(settings.longTexts);
    await seedBucket(env.s3client, env.s3.dir, 'bench-long', long);
    await verifyBucket(env.s3client, 'bench-long', long);
    const mix = mixed(settings.mixedObjects, settings.imageEvery);
    await seedBucket(env.s3client, env.s3.dir, 'bench-mixed', mix);
    await seedBucket(env.s3client, env.s3.dir, 'bench-mixed', clustered(mix), false);
    await verifyBucket(env.s3client, 'bench-mixed', [...mix, ...clustered(mix)]);
    const pacingTexts = shortTexts(settings.pacingTexts);
    await seedBucket(env.s3client, env.s3.dir, 'bench-pacing', pacingTexts);
    await verifyBucket(env.s3client, 'bench-pacing', pacingTexts);
  });

  const limiter = await phase('limiter alone', () => limiterProbes(env.redis, settings, log));

  const scale: ScaleResult[] = [];
  await phase('scenarios 5, 4, 1: scale', async () => {
    for (const [i, n] of settings.scaleSizes.entries()) {
      scale.push(
        await scaleSize(env, settings, sampler, servers, shortBucket(n), n, log, i === settings.scaleSizes.length - 1),
      );
    }
  });

  const tokens = await phase('scenario 2: token-bound', () =>
    tokenBound(env, settings, sampler, 'bench-long', settings.longTexts, log),
  );

  const images = Math.floor(settings.mixedObjects / settings.imageEvery);
  const layouts = [
    { layout: 'interleaved', prefix: 'mixed', images, texts: settings.mixedObjects - images },
    { layout: 'clustered', prefix: 'clustered', images, texts: settings.mixedObjects - images },
  ];
  const mixedResults = await phase('scenario 3: images and texts', () =>
    mixedScenario(env, settings, sampler, 'bench-mixed', layouts, log),
  );

  const pacing = await phase('scenario 8: pacing', () =>
    runPacing(env, settings, sampler, 'bench-pacing', 'bench-long', log, tokens),
  );

  const peers = await phase('scenario 6: peers', () =>
    peersScenario(env, settings, sampler, shortBucket(settings.peersBucket), settings.peersBucket, log),
  );

  const listen = await phase('scenario 7: bucket events', () =>
    listenScenario(env, settings, sampler, log, quick ? 300 : 1000),
  );

  sampler.sample();
  const cpuAtEnd = machineCpu();
  const own = benchCpu(benchCpuAtStart) + sampler.totalCpu();
  const busy = cpuAtEnd.busy - cpuAtStart.busy;
  results = {
    startedAt,
    wallS: (performance.now() - t0) / 1000,
    phasesS: phases,
    machine: {
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      memoryGB: totalmem() / 1024 ** 3,
      os: `${platform()} ${release()}`,
      // the machine's CPU use during the run: ours (bench, servers, pipeline, peers) and everything else
      busyShare: busy / (cpuAtEnd.total - cpuAtStart.total),
      benchCpuS: own,
      otherCpuS: Math.max(0, busy - own),
    },
    versions,
    settings: {
      ...settings,
      qdrant: env.realQdrant
        ? `real Qdrant at QDRANT_URL`
        : 'the in-process Qdrant stand-in (test/support/qdrant), in a process of its own',
      requestModelLimits: {
        rpm: requestSpec.rpm ?? 0,
        tpm: requestSpec.tpm ?? 0,
        documentedRpm: documented.rpm ?? 0,
        documentedTpm: documented.tpm ?? 0,
      },
    },
    limiter,
    scale,
    tokens,
    mixed: mixedResults,
    peers,
    pacing,
    listen,
  };
} finally {
  sampler.stop();
  stopChildren();
  await env.close();
}

if (!results) throw new Error('no results');
const files = writeResults(results);
process.stdout.write(
  `\n${summaryText(results)}\n\nwritten: ${files.md}, ${files.json} (${(results.wallS / 60).toFixed(1)} minutes)\n`,
);
process.exit(0);
