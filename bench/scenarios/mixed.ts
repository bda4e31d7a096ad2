/**
 * Scenario 3: texts and PNG images in one bucket, every `imageEvery`-th object an image.
 * qwen3-vl-embedding takes 20 elements a request but only 1 image, so with I images and
 * T texts no plan can use fewer than max(I, ceil((I + T) / 20)) requests: that bound
 * gives the ceiling of inputs per request. Two layouts of the same objects: interleaved
 * in the listing (`mixed/`), and images and texts in folders of their own (`clustered/`),
 * as buckets are often organised.
 */
import type { BenchEnv } from '../lib/env.js';
import { newPrefix } from '../lib/env.js';
import { indexArgs, runIndex, startWorkers, waitRun } from '../lib/pipeline.js';
import type { ProcSampler } from '../lib/procs.js';
import { SimSeries, sum, throttles } from '../lib/series.js';
import { resolveModel } from '../../src/models.js';
import type { Settings } from '../settings.js';

export interface MixedLayoutResult {
  layout: string;
  prefix: string;
  objects: number;
  images: number;
  texts: number;
  requests: number;
  inputs: number;
  inputsPerRequest: number;
  ceilingInputsPerRequest: number;
  minRequests: number;
  ratio: number;
  inputsPerS: number;
  ceilingInputsPerS: number;
  imageTokens: number;
  textTokens: number;
  throttled429: Record<string, number>;
  objectsFailed: number;
}

export async function mixedScenario(
  env: BenchEnv,
  settings: Settings,
  sampler: ProcSampler,
  bucket: string,
  layouts: readonly { layout: string; prefix: string; images: number; texts: number }[],
  log: (s: string) => void,
): Promise<MixedLayoutResult[]> {
  const spec = resolveModel(settings.requestModel, settings.modelOverrides);
  const prefix = newPrefix('mixed');
  const cliEnv = env.cliEnv(prefix, { WORKER_CONCURRENCY: String(settings.concurrency) });
  const workers = await startWorkers(settings.workers, cliEnv, sampler);
  const results: MixedLayoutResult[] = [];
  try {
    for (const l of layouts) {
      await env.simReset();
      const series = new SimSeries(() => env.simStats(), env.redis, `${prefix}:embed:wait`);
      const index = await runIndex(
        indexArgs(bucket, `mixed-${l.layout}`, settings.requestModel, ['--prefix', `${l.prefix}/`]),
        cliEnv,
        sampler,
      );
      const { run, doneAt } = await waitRun(env.redis, prefix, index.runId, 900);
      await series.stop();
      const stats = await env.simStats();
      const objects = l.images + l.texts;
      const perRequest = spec.maxElements ?? objects;
      const minRequests = Math.max(
        spec.maxImagesPerRequest === null ? 0 : Math.ceil(l.images / spec.maxImagesPerRequest),
        Math.ceil(objects / perRequest),
      );
      const ceilingIpr = objects / minRequests;
      const first = series.firstActivity() ?? 0;
      const activeS = series.since(doneAt) - first;
      const r: MixedLayoutResult = {
        layout: l.layout,
        prefix: `${l.prefix}/`,
        objects,
        images: l.images,
        texts: l.texts,
        requests: stats.accepted,
        inputs: stats.inputs,
        inputsPerRequest: stats.inputs / Math.max(1, stats.accepted),
        ceilingInputsPerRequest: ceilingIpr,
        minRequests,
        ratio: stats.inputs / Math.max(1, stats.accepted) / ceilingIpr,
        inputsPerS: stats.inputs / Math.max(1e-9, activeS),
        ceilingInputsPerS: ((spec.rpm ?? 0) / 60) * ceilingIpr,
        imageTokens: stats.imageTokens,
        textTokens: stats.textTokens,
        throttled429: throttles(stats),
        objectsFailed: run.counters.objectsFailed,
      };
      log(
        `  ${l.layout}: ${r.inputsPerRequest.toFixed(2)} inputs/request (ceiling ${ceilingIpr.toFixed(2)}), ${r.requests} requests (at least ${minRequests}), 429s ${sum(r.throttled429)}`,
      );
      results.push(r);
    }
  } finally {
    await workers.stop();
  }
  return results;
}
